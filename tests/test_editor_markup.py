"""The editor's per-field pieces written in Python (kaptools/modality/editor_markup.py)
say what WTForms' own widgets and the old per-part macros said, for every shipped template."""

from __future__ import annotations

from html.parser import HTMLParser

from markupsafe import escape
from werkzeug.datastructures import MultiDict

from kaptools.modality import get_registry
from kaptools.modality.answers import build_form, validate_note
from kaptools.modality.editor_markup import choice_inputs, field_parts

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


def _as_wtforms_writes(wt, invalid: bool) -> str:
    extra = {"aria-invalid": "true"} if invalid else {}
    return "".join(f'<label class="option">{opt(**extra)}<span>{escape(opt.label.text)}'
                   f"</span></label>" for opt in wt)


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
