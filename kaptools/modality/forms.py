"""Build a WTForms form class from a template: one builder per field type.

A fresh class is built per (modality, version) and cached; classes are never
mutated after they are built.
"""

from __future__ import annotations

import decimal
import re
import secrets
from collections.abc import Callable
from typing import Any

from wtforms import (
    DateField,
    DecimalField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms import validators as v
from wtforms.widgets import CheckboxInput, ListWidget

from ..i18n import _, _l
from ..textcheck import text_problem
from ..widgets import FastRendering
from .schema import Field, Template

ITEM_ID_RE = re.compile(r"^[a-z0-9]{4,16}$")


def new_item_id() -> str:
    return secrets.token_hex(4)


# ---------------------------------------------------------------------------
# Field classes with clinician-friendly messages.


class WholeNumberField(IntegerField):
    def process_formdata(self, valuelist):
        if not valuelist or not valuelist[0].strip():
            self.data = None
            return
        raw = valuelist[0].strip()
        if not re.fullmatch(r"[+-]?\d{1,12}", raw):
            self.data = None
            raise ValueError(_("Enter a whole number (no decimals or letters)."))
        self.data = int(raw)


class FiniteDecimalField(DecimalField):
    def process_formdata(self, valuelist):
        if not valuelist or not valuelist[0].strip():
            self.data = None
            return
        raw = valuelist[0].strip().replace(",", ".")
        if not re.fullmatch(r"[+-]?(\d{1,12}(\.\d*)?|\.\d+)", raw):
            self.data = None
            raise ValueError(_("Enter a number such as 12 or 0.5."))
        try:
            self.data = decimal.Decimal(raw)
        except decimal.InvalidOperation as exc:
            self.data = None
            raise ValueError(_("Enter a number such as 12 or 0.5.")) from exc


class ScaleField(RadioField):
    """A rating scale rendered as one-tap radio buttons; stores an int."""

    def __init__(self, *args, scale_min: int = 0, scale_max: int = 10, **kwargs):
        super().__init__(*args, coerce=int, **kwargs)
        self.scale_min, self.scale_max = scale_min, scale_max

    def _message(self) -> str:
        return _("Choose a whole number from %(min)s to %(max)s.", min=self.scale_min,
                 max=self.scale_max)

    def process_formdata(self, valuelist):
        if not valuelist or valuelist[0] == "":
            self.data = None
            return
        if not re.fullmatch(r"[+-]?\d{1,6}", valuelist[0].strip()):
            self.data = None
            raise ValueError(self._message())
        self.data = int(valuelist[0])

    def pre_validate(self, form):
        if self.data is None:
            return
        if self.data not in {c.value for c in self.choices}:
            raise v.StopValidation(self._message())


class _MayBeUnanswered:
    """A choice that may be left empty; anything not offered gets a plain message."""

    def process_formdata(self, valuelist):
        if not valuelist or valuelist[0] == "":
            self.data = None
            return
        super().process_formdata(valuelist)

    def pre_validate(self, form):
        if self.data is None:
            return
        if self.data not in {c.value for c in self.choices}:
            raise v.StopValidation(_("Choose one of the options shown."))


class OptionalRadioField(_MayBeUnanswered, RadioField):
    """A radio group that may be left unanswered."""


class OptionalSelectField(_MayBeUnanswered, SelectField):
    """A drop-down that may be left unanswered."""


class RefField(SelectField):
    """Points at an item of a repeating group; checked by the note form."""

    def process_formdata(self, valuelist):
        self.data = valuelist[0] if valuelist and valuelist[0] else None

    def pre_validate(self, form):
        pass


class CheckboxesField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def pre_validate(self, form):
        allowed = {c.value for c in self.choices}
        for value in self.data or ():
            if value not in allowed:
                raise v.StopValidation(_("Choose only from the options shown."))


class ItemIdField(HiddenField):
    def process_formdata(self, valuelist):
        value = valuelist[0] if valuelist else ""
        self.data = value if ITEM_ID_RE.match(value or "") else None


def _text_check(multiline: bool):
    def check(form, field) -> None:
        if isinstance(field.data, str) and (problem := text_problem(field.data,
                                                                     multiline=multiline)):
            raise v.StopValidation(problem)

    return check


def _finite(form, field) -> None:
    if isinstance(field.data, decimal.Decimal) and not field.data.is_finite():
        raise v.StopValidation(_("Enter an ordinary number."))


def _range_validator(f: Field, whole: bool):
    if f.min is None and f.max is None:
        return None
    fmt = (lambda x: str(int(x))) if whole else (lambda x: f"{x:g}")
    # Built once per template version and kept: lazy, so each request reads its language.
    if f.min is not None and f.max is not None:
        message = _l("Enter a number from %(min)s to %(max)s.", min=fmt(f.min), max=fmt(f.max))
    elif f.min is not None:
        message = _l("Enter a number of at least %(min)s.", min=fmt(f.min))
    else:
        message = _l("Enter a number of at most %(max)s.", max=fmt(f.max))
    return v.NumberRange(min=f.min, max=f.max, message=message)


def _choices(f: Field) -> list[SelectChoice]:
    return [SelectChoice(c.value, c.label) for c in f.choices]


# ---------------------------------------------------------------------------
# One builder per field type. Each returns an unbound WTForms field.

Builder = Callable[[Field], Any]


def _kw(f: Field, validators: list | None = None, **render) -> dict[str, Any]:
    render_kw = {k: val for k, val in render.items() if val is not None}
    if f.placeholder:
        render_kw["placeholder"] = f.placeholder
    return {"label": f.label, "description": f.help, "render_kw": render_kw,
            "validators": [v.Optional(), *(validators or [])]}


def _build_text(f: Field):
    return StringField(**_kw(f, [v.Length(max=f.max_length, message=_too_long(f)),
                                 _text_check(False)], maxlength=f.max_length))


def _build_longtext(f: Field):
    return TextAreaField(**_kw(f, [v.Length(max=f.max_length, message=_too_long(f)),
                                   _text_check(True)], rows=f.rows))


def _too_long(f: Field):
    return _l("Keep this under %(max)s characters (shorten it or split it).",
              max=f.max_length)


def _build_integer(f: Field):
    rng = _range_validator(f, whole=True)
    return WholeNumberField(**_kw(f, [rng] if rng else [], inputmode="numeric",
                                  min=_num(f.min), max=_num(f.max)))


def _build_duration(f: Field):
    return _build_integer(f)


def _build_percent(f: Field):
    return _build_integer(f)


def _build_decimal(f: Field):
    rng = _range_validator(f, whole=False)
    return FiniteDecimalField(places=f.places,
                              **_kw(f, [_finite] + ([rng] if rng else []), inputmode="decimal"))


def _num(value: float | None) -> str | None:
    if value is None:
        return None
    return str(int(value)) if value == int(value) else str(value)


def _build_scale(f: Field):
    assert f.scale is not None
    choices = [SelectChoice(n, str(n)) for n in f.scale.values()]
    kw = _kw(f)
    kw["validators"] = []
    return ScaleField(choices=choices, scale_min=f.scale.min, scale_max=f.scale.max, **kw)


def _build_choice(f: Field):
    kw = _kw(f)
    kw["validators"] = []
    if f.widget == "select":
        return OptionalSelectField(choices=[SelectChoice("", _l("— choose —")), *_choices(f)],
                                   **kw)
    return OptionalRadioField(choices=_choices(f), **kw)


def _build_multichoice(f: Field):
    kw = _kw(f)
    kw["validators"] = []
    return CheckboxesField(choices=_choices(f), **kw)


def _build_yesno(f: Field):
    kw = _kw(f)
    kw["validators"] = []
    return OptionalRadioField(choices=[SelectChoice("yes", _l("Yes")),
                                       SelectChoice("no", _l("No"))], **kw)


def _build_date(f: Field):
    kw = _kw(f)
    kw["validators"] = [v.Optional()]
    return DateField(format="%Y-%m-%d", **kw)


def _build_time(f: Field):
    kw = _kw(f)
    kw["validators"] = [v.Optional()]
    return TimeField(format="%H:%M", **kw)


def _build_ref(f: Field):
    kw = _kw(f)
    kw["validators"] = []
    return RefField(choices=[], validate_choice=False, **kw)


def _build_group(f: Field):
    item_class = _item_form_class(f)
    return FieldList(FormField(item_class), label=f.label, description=f.help, min_entries=0)


BUILDERS: dict[str, Builder] = {
    "text": _build_text,
    "longtext": _build_longtext,
    "integer": _build_integer,
    "decimal": _build_decimal,
    "scale": _build_scale,
    "percent": _build_percent,
    "choice": _build_choice,
    "multichoice": _build_multichoice,
    "yesno": _build_yesno,
    "date": _build_date,
    "time": _build_time,
    "duration": _build_duration,
    "group": _build_group,
    "ref": _build_ref,
}


class ItemForm(Form):
    """One row of a repeating group."""

    item_id = ItemIdField()

    class Meta(FastRendering):
        pass


def _item_form_class(group: Field) -> type[Form]:
    attrs = {sub.key: BUILDERS[sub.type](sub) for sub in group.fields}
    return type(f"Item_{group.key}", (ItemForm,), attrs)


class NoteForm(Form):
    """Base of every generated note form; ``template`` is set on each subclass."""

    template: Template

    class Meta(FastRendering):  # controls written by kaptools.widgets
        csrf = False  # CSRFProtect guards every POST application-wide


_CLASSES: dict[int, tuple[Template, type[NoteForm]]] = {}


def build_form_class(template: Template) -> type[NoteForm]:
    """Build a new form class for one template version."""
    attrs: dict[str, Any] = {f.key: BUILDERS[f.type](f) for f in template.fields}
    attrs["template"] = template
    name = "Note_" + re.sub(r"\W", "_", f"{template.slug}_v{template.version}")
    return type(name, (NoteForm,), attrs)


def form_class(template: Template) -> type[NoteForm]:
    """The form class of a loaded template version, built once and then reused."""
    cached = _CLASSES.get(id(template))
    if cached is None or cached[0] is not template:
        cached = (template, build_form_class(template))
        _CLASSES[id(template)] = cached
    return cached[1]
