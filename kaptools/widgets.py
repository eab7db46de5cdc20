"""WTForms controls written as WTForms' own widgets write them, at a fraction of the cost.

``wtforms.widgets.html_params`` formats every attribute with ``Markup.format`` (Python's
string formatter, per attribute): on the editor of a long note that was a third of the
page's time. ``control`` writes the same string for the widgets the app uses (text, number,
date, time, hidden, password, checkbox and radio inputs, text areas, single drop-downs) and
hands any other widget to WTForms. ``FastRendering`` makes it every form's renderer
(WTForms' ``Meta.render_field`` hook), so ``{{ form.field }}`` and ``field(**attrs)`` in
templates use it too.
tests/test_editor_markup.py compares it with WTForms' widgets, string for string.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape
from wtforms import widgets
from wtforms.widgets.core import clean_key


def _params(kw: dict[str, Any]) -> str:
    """Attributes as ``wtforms.widgets.html_params`` writes them: sorted by name, ``data_`` and
    ``aria_`` names hyphenated, True as a bare attribute, False left out, values escaped."""
    out = []
    for key, value in sorted(kw.items()):
        key = clean_key(key)
        if value is True:
            out.append(key)
        elif value is not False:
            out.append(f'{key}="{str(escape(value)).replace(chr(34), "&quot;")}"')
    return " ".join(out)


def _with_flags(wt: Any, widget: Any, kw: dict[str, Any], call: bool) -> None:
    """The validators' attributes (required, maxlength, min...) the widget adds when the
    call did not give them."""
    for key, value in vars(wt.flags).items():
        if key in widget.validation_attrs and key not in kw:
            kw[key] = value() if call and callable(value) else value


def control(wt: Any, attrs: dict[str, Any] | None = None) -> Markup:
    """WTForms field ``wt`` as WTForms' own widget writes it with ``attrs`` (``wt(**attrs)``
    with WTForms' default renderer); widgets not written here are left to WTForms."""
    widget = wt.widget
    # As wtforms.meta.DefaultMeta.render_field: names cleaned (class_ → class, data_x →
    # data-x), and what the call gives wins over the field's render_kw.
    kw = {clean_key(k): v for k, v in (wt.render_kw or {}).items()}
    if attrs:
        kw.update({clean_key(k): v for k, v in attrs.items()})
    kind = type(widget)
    if "name" in kw:  # WTForms refuses it (TypeError): let it say so
        return widget(wt, **kw)
    if kind in _INPUTS and getattr(wt, "_datalist", None) is None:
        if kind in _DATE_TIME:
            _date_time_bounds(wt, kw)
        elif kind is widgets.PasswordInput and widget.hide_value:
            kw["value"] = ""
        elif kind is widgets.CheckboxInput and getattr(wt, "checked", wt.data) \
                or kind is widgets.RadioInput and wt.checked:
            kw.setdefault("checked", True)
        elif kind is widgets.NumberInput:
            for key in ("step", "min", "max"):
                if getattr(widget, key) is not None:
                    kw.setdefault(key, getattr(widget, key))
        kw.setdefault("id", wt.id)
        kw.setdefault("type", widget.input_type)
        if "value" not in kw:
            kw["value"] = wt._value()
        _with_flags(wt, widget, kw, call=True)
        kw["name"] = wt.name
        return Markup(f"<input {_params(kw)}>")
    if kind is widgets.TextArea:
        kw.setdefault("id", wt.id)
        _with_flags(wt, widget, kw, call=False)
        kw["name"] = wt.name
        return Markup(f"<textarea {_params(kw)}>\r\n{escape(wt._value())}</textarea>")
    if kind is widgets.Select and not widget.multiple and not wt.has_groups():
        kw.setdefault("id", wt.id)
        _with_flags(wt, widget, kw, call=False)
        kw["name"] = wt.name
        html = [f"<select {_params(kw)}>"]
        for choice in wt._iter_choices_normalized():
            value = str(choice.value) if isinstance(choice.value, bool) else choice.value
            option = {"value": value, **(choice.render_kw or {})}
            if choice.selected:
                option["selected"] = True
            html.append(f"<option {_params(option)}>{escape(choice.label or choice.value)}"
                        "</option>")
        html.append("</select>")
        return Markup("".join(html))
    return widget(wt, **kw)


def _date_time_bounds(wt: Any, kw: dict[str, Any]) -> None:
    """A date's or time's min and max in the field's own format, as WTForms' date and time
    inputs write them."""
    fmt = getattr(wt, "format", None)
    if fmt is None:
        return
    fmt = fmt[0] if isinstance(fmt, list) else fmt
    for key in ("min", "max"):
        value = kw.get(key, getattr(wt.flags, key, None))
        if callable(value):
            value = value()
        if hasattr(value, "strftime"):
            kw[key] = value.strftime(fmt)


# The input widgets whose whole behaviour is wtforms.widgets.Input's, with what the others
# add to it written above (a date's bounds, a hidden password, a checked box, a number's).
_DATE_TIME = frozenset({widgets.DateInput, widgets.TimeInput})
_INPUTS = frozenset({widgets.TextInput, widgets.HiddenInput, widgets.PasswordInput,
                     widgets.CheckboxInput, widgets.RadioInput, widgets.NumberInput,
                     *_DATE_TIME})


class FastRendering:
    """A form ``Meta`` mixin: fields render through ``control``."""

    def render_field(self, field: Any, render_kw: dict[str, Any]) -> Markup:
        return control(field, render_kw)
