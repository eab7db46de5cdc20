"""The editor's per-field pieces written in Python (kaptools/modality/editor_markup.py)
say what WTForms' own widgets and the old per-part macros said, for every shipped template."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, time
from html.parser import HTMLParser

import pytest
from markupsafe import escape
from werkzeug.datastructures import MultiDict
from wtforms import DateField, Form, StringField, TimeField
from wtforms.meta import DefaultMeta

from kaptools import notes
from kaptools.extensions import db
from kaptools.modality import get_registry
from kaptools.modality.answers import (
    answers_to_formdata,
    build_form,
    prepare_editor,
    validate_note,
)
from kaptools.modality.editor_markup import choice_inputs, field_parts, note_field
from kaptools.modality.registry import builtin_dir, load_registry
from kaptools.models import Note, User
from kaptools.widgets import FastRendering, control
from tests import factories
from tests.conftest import signed_in
from tests.notes_helpers import form_payload, new_note

CHOICES = ("scale", "choice", "yesno", "multichoice")


class _Tags(HTMLParser):
    """Start tags with their attributes, and the text, in order."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list = []
        self.feed(str(html))

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, sorted(attrs)))

    def handle_data(self, data):
        if data.strip():
            self.found.append(("text", data.strip()))


def wtforms_writes(wt, attrs: dict) -> str:
    """What WTForms' own widget writes for ``wt(**attrs)``, whatever renderer the form has
    (the app's forms write their controls with kaptools.widgets.control)."""
    return str(DefaultMeta.render_field(wt.meta, wt, dict(attrs)))


def _as_wtforms_writes(wt, invalid: bool) -> str:
    extra = {"aria-invalid": "true"} if invalid else {}
    return "".join(f'<label class="option">{wtforms_writes(opt, extra)}'
                   f"<span>{escape(opt.label.text)}</span></label>" for opt in wt)


def _choice_fields(fields, form):
    """The bound field of every radio and checkbox choice, rows included."""
    for f in fields:
        if f.type == "group":
            for entry in form[f.key].entries:
                yield from _choice_fields(f.fields, entry.form)
        elif f.type in CHOICES and not (f.type == "choice" and f.widget == "select"):
            yield form[f.key]


def test_options_are_written_as_wtforms_writes_them(app):
    """Every option of every choice in every template, answered and not, valid or not."""
    seen = in_rows = 0
    with app.test_request_context():
        registry = get_registry()
        for template in registry.current():
            for answers in (template.sample, {}):
                form = build_form(template, answers=answers)
                for wt in _choice_fields(template.fields, form):
                    for invalid in (False, True):
                        assert _Tags(choice_inputs(wt, invalid)).found == \
                            _Tags(_as_wtforms_writes(wt, invalid)).found, (template.slug, wt.id)
                        seen += 1
                        in_rows += "-" in wt.id
    assert seen > 100 and in_rows > 10


def _controls(fields, form):
    """Every other control (text, number, date, time, text area, drop-down), rows included,
    with each row's hidden id."""
    for f in fields:
        if f.type == "group":
            for entry in form[f.key].entries:
                yield None, entry.form.item_id
                yield from _controls(f.fields, entry.form)
        elif f.type not in CHOICES or (f.type == "choice" and f.widget == "select"):
            yield f, form[f.key]


HOSTILE = '1" onfocus="alert(1)" x=\'<b>&amp;</b>\''


def test_controls_are_written_exactly_as_wtforms_writes_them(app):
    """Each control, as the editor asks for it (with and without its described-by and
    invalid attributes, as a date or time input where the layout says so), is the very
    string WTForms' widget writes: answered, unanswered and with hostile text posted."""
    kinds: dict[str, int] = {}
    with app.test_request_context():
        for template in get_registry().current():
            hostile = answers_to_formdata(template, template.sample)
            for key in list(hostile):
                hostile.setlist(key, [HOSTILE])
            for form in (build_form(template, answers=template.sample),
                         build_form(template, answers={}),
                         build_form(template, formdata=hostile)):
                validate_note(form, complete=True)
                for f, wt in _controls(template.fields, form):
                    for attrs in ({}, {"aria-describedby": f"{wt.id}-help {wt.id}-error",
                                       "aria-invalid": "true", "list": f"{wt.id}-s",
                                       "data-ref-group": HOSTILE}):
                        if f is not None and f.type in ("date", "time"):
                            attrs = {**attrs, "type": f.type}
                        assert str(wt(**attrs)) == str(control(wt, dict(attrs))) \
                            == wtforms_writes(wt, attrs), (template.slug, wt.id)
                    kind = type(wt.widget).__name__
                    kinds[kind] = kinds.get(kind, 0) + 1
    assert {"TextInput", "TextArea", "NumberInput", "DateInput", "TimeInput", "Select",
            "HiddenInput"} <= set(kinds), kinds
    assert HOSTILE not in str(control(wt, {"data-x": HOSTILE}))


def _app_forms():
    from kaptools import forms

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    return sorted(set(subclasses(forms.KapForm)), key=lambda cls: cls.__name__)


def test_every_app_forms_controls_are_written_as_wtforms_writes_them(app):
    """The app's own forms (sign-in, client, session, account, export...) render their
    fields through kaptools.widgets: the same strings, hostile values posted or not."""
    checked = set()
    with app.test_request_context(method="POST"):
        for cls in _app_forms():
            for formdata in (None, MultiDict()):
                form = cls(formdata=formdata, meta={"csrf": False})
                if formdata is not None:
                    for field in form:
                        formdata.add(field.name, HOSTILE)
                    form = cls(formdata=formdata, meta={"csrf": False})
                for field in form:
                    if getattr(field, "choices", ()) is None:  # set by the form's view
                        field.choices = [("1", "one"), ("2", f"<b>{HOSTILE}</b>")]
                if formdata is not None:
                    form.validate()
                for field in form:
                    expected = wtforms_writes(field, {"aria-invalid": "true"})
                    assert str(field(**{"aria-invalid": "true"})) == expected, \
                        (cls.__name__, field.name)
                    checked.add(type(field.widget).__name__)
    assert {"TextInput", "PasswordInput", "Select", "TextArea", "CheckboxInput"} <= checked, \
        checked


def test_a_fields_parts_name_its_help_and_its_message(app):
    with app.test_request_context():
        template = get_registry().latest("phq-9")
        form = build_form(template, formdata=MultiDict({"q1": "<b>7</b>"}))
        assert not validate_note(form, complete=False)  # a draft: only the bad answer
        f = template.field("q1")
        parts = field_parts(f, form["q1"])
        assert parts.invalid
        assert parts.described.split() == (["q1-help"] if f.help else []) + ["q1-error"]
        assert 'id="q1-error"' in parts.errors and "<b>" not in parts.errors
        untouched = field_parts(template.field("q2"), form["q2"])
        assert not untouched.invalid and "q2-error" not in untouched.described


def test_who_may_read_an_answer_is_shown_and_conditions_are_escaped(app):
    with app.test_request_context():
        template = get_registry().latest("kap-dosing")
        form = build_form(template, answers=template.sample)
        conditional = next(f for f in template.fields if f.show_if is not None
                           and isinstance(f.show_if.value, str))
        attrs = dict(_Tags(f"<x{field_parts(conditional, form[conditional.key]).show_if}>")
                     .found[0][1])
        assert attrs["data-show-field"] == conditional.show_if.field
        assert attrs["data-show-value"] == f'"{conditional.show_if.value}"'  # JSON
        assert attrs["data-prefix"] == ""
    with app.test_request_context():
        kinds = set()
        for template in get_registry().current():
            form = build_form(template, answers=template.sample)
            for f in template.fields:
                if f.type == "group":
                    continue
                badge = str(field_parts(f, form[f.key]).badge)
                expected = {"client": "aud-client", "private": "aud-private"}.get(f.audience)
                assert (f'class="badge {expected}"' in badge) if expected else badge == ""
                kinds.add(expected)
        assert {"aud-client", "aud-private"} <= kinds


class _EditorForm(HTMLParser):
    """What a browser would send from the note's form: every named control's value(s) (checked
    boxes only, the selected option, a text area's text), outside the rows' <template>."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[list[tuple[str, str]]] = []
        self.in_template = 0
        self.select: tuple[str, list, list] | None = None  # name, options, selected
        self.option: str | None = None
        self.textarea: list | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "template":
            self.in_template += 1
        if self.in_template or (tag != "form" and not self.forms):
            return
        fields = self.forms[-1] if self.forms else None
        if tag == "form":
            self.forms.append([])
        elif "disabled" in a or not a.get("name") and tag != "option":
            return
        elif tag == "input":
            kind = a.get("type", "text")
            if kind in ("radio", "checkbox"):
                if "checked" in a:
                    fields.append((a["name"], a.get("value", "on")))
            elif kind not in ("submit", "button", "reset"):
                fields.append((a["name"], a.get("value", "")))
        elif tag == "textarea":
            self.textarea = [a["name"], ""]
        elif tag == "select":
            self.select = (a["name"], [], [])
        elif tag == "option" and self.select is not None:
            self.select[1].append(a.get("value", ""))
            if "selected" in a:
                self.select[2].append(a.get("value", ""))

    def handle_endtag(self, tag):
        if tag == "template":
            self.in_template -= 1
        elif self.in_template:
            return
        elif tag == "textarea" and self.textarea is not None:
            name, text = self.textarea
            text = text[1:] if text.startswith("\n") else text  # as HTML parsing drops it
            self.forms[-1].append((name, text))
            self.textarea = None
        elif tag == "select" and self.select is not None:
            name, options, selected = self.select
            for value in selected or options[:1]:
                self.forms[-1].append((name, value))
            self.select = None

    def handle_data(self, data):
        if self.textarea is not None and not self.in_template:
            self.textarea[1] += data.replace("\r\n", "\n")


@pytest.fixture
def integration_session(app):
    with app.app_context():
        maya = factories.user("maya")
        return maya.id, factories.client_with_course(maya)["integration"]


@pytest.mark.parametrize("slug", sorted(slug for slug, _ in
                                        load_registry(builtin_dir()).templates))
def test_what_the_editor_shows_is_what_it_keeps(app, integration_session, slug):
    """Every template's editor, filled with its sample answers and sent back by a browser as
    it stands, changes nothing: every answer is in a control the page writes, named and
    checked as the form reads it (rows included)."""
    author_id, session_id = integration_session
    browser = signed_in(app, "maya")
    template = load_registry(builtin_dir()).latest(slug)
    url = new_note(browser, session_id, slug)
    assert browser.post(url, form_payload(template, template.sample)).status_code == 302

    def stored():
        with app.app_context():
            note = db.session.get(Note, int(url.rsplit("/", 1)[1]))
            return note.version, {**note.answers, **notes.private_answers(
                note, db.session.get(User, author_id))}

    version, first = stored()
    assert first == template.sample
    page = browser.get(url).get_data(as_text=True)
    form = next(f for f in _EditorForm(page).forms if any(k == "note_version" for k, _ in f))
    sent = MultiDict(form)
    sent.setlist("action", ["save"])
    assert len(sent) > 3
    resp = browser.client.post(url, data=sent)
    assert resp.status_code == 302, re.findall(r'class="error"[^>]*>([^<]+)',
                                               resp.get_data(as_text=True))
    assert stored() == (version, template.sample)  # not even a new version: nothing changed


MARK = '<i>x</i>"\'&'


def _hostile_field(f):
    """``f`` with every word a template author writes carrying markup and quotes."""
    changes = {"label": f.label + MARK, "help": f.help + MARK if f.help else f.help,
               "unit": f.unit + MARK if f.unit else f.unit,
               "placeholder": f.placeholder + MARK if f.placeholder else f.placeholder,
               "suggestions": tuple(s + MARK for s in f.suggestions),
               "choices": tuple(dataclasses.replace(c, label=c.label + MARK)
                                for c in f.choices),
               "fields": tuple(_hostile_field(sub) for sub in f.fields)}
    if f.type == "group":
        changes["item_label"] = f.item_label + MARK
    if f.scale is not None:
        changes["scale"] = dataclasses.replace(
            f.scale, name=f.scale.name + MARK,
            anchors=tuple((value, label + MARK) for value, label in f.scale.anchors))
    return dataclasses.replace(f, **changes)


def test_the_editor_escapes_every_word_a_template_brings(app):
    """Labels, help, units, placeholders, suggestions, options, scale names and anchors, row
    names and a group's messages: markup in them is shown as text, never taken as markup."""
    with app.test_request_context():
        for shipped in get_registry().current():
            template = dataclasses.replace(shipped, sections=tuple(
                dataclasses.replace(s, fields=tuple(_hostile_field(f) for f in s.fields))
                for s in shipped.sections))
            form = build_form(template, answers=template.sample)
            prepare_editor(form)
            html = "".join(str(note_field(f, form[f.key], {form[f.key].name: [MARK]}))
                           for f in template.fields)
            assert "<i>" not in html, template.slug
            assert "&lt;i&gt;x&lt;/i&gt;&#34;&#39;&amp;" in html, template.slug


class _Bounds:
    """A validator that only sets flags (as a date-range check would set min and max)."""

    def __init__(self, **flags) -> None:
        self.field_flags = flags

    def __call__(self, form, field) -> None:
        pass


def test_attribute_names_date_bounds_and_refusals_follow_wtforms(app):
    """render_kw and call attributes with class_/data_ names (the call wins), a date's and a
    time's bounds in the field's format, and a name WTForms refuses."""

    class Sample(Form):
        class Meta(FastRendering):
            pass

        day = DateField(render_kw={"class": "rk", "data_x": "1"},
                        validators=[_Bounds(min=date(2026, 1, 2), max=date(2026, 12, 31))])
        at = TimeField(validators=[_Bounds(min=time(9, 30))])
        words = StringField(render_kw={"class_": "rk", "data-y": "2"})

    with app.test_request_context():
        form = Sample()
        for field in form:
            for attrs in ({}, {"class_": "call", "data_y": HOSTILE, "aria_invalid": "true"},
                          {"max": date(2027, 3, 4), "min": time(8, 5)}):
                assert str(field(**attrs)) == wtforms_writes(field, attrs), (field.name, attrs)
        assert 'min="09:30"' in str(form.at()) and 'min="2026-01-02"' in str(form.day())
        with pytest.raises(TypeError):
            form.words(name="elsewhere")
