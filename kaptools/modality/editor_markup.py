"""The note editor's fields, written in Python.

A note has dozens of fields (a target set or a parts map, with its rows, well over a
hundred) and a scale up to eleven options. Laid out by Jinja macros, the calls cost more
than the markup they wrote: a macro call builds a context and binds its arguments, and
WTForms formats each attribute of each control on its own. ``note_field`` writes a field,
its rows and their fields in one call; its controls are written as WTForms' own widgets
write them (``kaptools.widgets.control``, ``choice_inputs``), and
tests/test_editor_markup.py holds them to that.

The markup's hooks are static/js/editor.js's (data-row, data-group, data-show-*, the row
template) and static/css/app.css's; change them together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup, escape

from ..i18n import _, words_key
from ..widgets import control

NUMBER_TYPES = ("integer", "percent", "duration", "decimal")


@dataclass(frozen=True, slots=True)
class FieldParts:
    """What a field's layout needs besides its control."""

    invalid: bool  # it has a message of its own (a group's rows have theirs)
    described: str  # ids for aria-describedby: its help and its message ('' for none)
    badge: Markup  # who may read the answer, when not only the clinical record
    show_if: Markup  # the data-show-* attributes (with their leading space) or ''
    help: Markup  # the help line, with the id ``described`` names
    errors: Markup  # the message lines, with the id ``described`` names


def field_parts(f: Any, wt: Any, words: _Words | None = None) -> FieldParts:
    """The parts of template field ``f`` bound to the WTForms field ``wt``."""
    raw = wt.errors
    messages = [e for e in raw if isinstance(e, str)] \
        if isinstance(raw, list | tuple) else []
    fid = escape(wt.id)
    ids = []
    if f.help:
        ids.append(f"{wt.id}-help")
    if raw:
        ids.append(f"{wt.id}-error")
    return FieldParts(
        invalid=bool(messages),
        described=" ".join(ids),
        badge=(words or _words(words_key())).badges.get(f.audience, Markup("")),
        show_if=_show_if(f, wt) if f.show_if else Markup(""),
        help=Markup(f'<p class="help" id="{fid}-help">{escape(f.help)}</p>')
        if f.help else Markup(""),
        errors=Markup("".join(f'<p class="error" id="{fid}-error">{escape(m)}</p>'
                              for m in messages)),
    )


@dataclass(frozen=True, slots=True)
class _Words:
    """The editor's fixed words in the clinic's language, escaped: every field asks for
    some of them, so they are translated once per language and catalogue, not per field."""

    badges: dict[str, Markup]
    required: str  # the "required" mark after a label
    not_rated: Markup
    no_answer: Markup


@lru_cache(maxsize=8)
def _words(key: tuple[str, str]) -> _Words:
    badges = {audience: Markup(f'<span class="badge aud-{audience}" title="{escape(title)}">'
                               f"{escape(text)}</span>")
              for audience, title, text in (
                  ("client", _("May appear on the client's handout"), _("client handout")),
                  ("private", _("Only you can see this; never printed or reviewed"),
                   _("private · only you")))}
    return _Words(badges=badges, required=f' <span class="req">{Markup(_("required"))}</span>',
                  not_rated=Markup(_("not rated")), no_answer=Markup(_("no answer")))


def _said(translated: str, **values: Any) -> Markup:
    """A message (``_(message)``, not yet filled in) as a page template says it: the
    catalogue's text is trusted (it may hold markup, as {% trans %} allows); the values put
    into it are escaped."""
    return Markup(translated) % values


def _show_if(f: Any, wt: Any) -> Markup:
    """Where a field hangs on another's answer (static/js/editor.js shows and hides it)."""
    cond = f.show_if
    value = escape(str(htmlsafe_json_dumps(cond.value, dumps=json.dumps, sort_keys=True)))
    prefix = wt.name[:len(wt.name) - len(f.key)]
    return Markup(f' data-show-field="{escape(cond.field)}" data-show-op="{escape(cond.op)}" '
                  f'data-show-value="{value}" data-prefix="{escape(prefix)}"')


def choice_inputs(wt: Any, invalid: bool = False) -> Markup:
    """Every option of a radio or checkbox field, each in its label, as WTForms' own option
    widget writes them (ids ``<field id>-<n>``)."""
    kind = escape(wt.option_widget.input_type)
    fid, name = escape(wt.id), escape(wt.name)
    head = ' aria-invalid="true"' if invalid else ""
    out = []
    for i, choice in enumerate(wt.iter_choices()):
        value, label, selected = (choice.value, choice.label, choice.selected) \
            if not isinstance(choice, tuple) else choice[:3]
        out.append(f'<label class="option"><input{head}{" checked" if selected else ""} '
                   f'id="{fid}-{i}" name="{name}" type="{kind}" value="{escape(str(value))}">'
                   f'<span>{escape(label or value)}</span></label>')
    return Markup("\n".join(out))


def note_field(f: Any, wt: Any, group_errors: dict[str, list[str]]) -> Markup:
    """Template field ``f`` bound to WTForms field ``wt``, laid out for the editor: label,
    audience badge, control, help and messages; a group with its rows and the blank row its
    "add" button copies. ``group_errors`` holds each group's own messages, by field name."""
    out: list[str] = []
    _field(out, f, wt, group_errors, _words(words_key()))
    return Markup("".join(out))


def _field(out: list[str], f: Any, wt: Any, group_errors: dict, words: _Words) -> None:
    parts = field_parts(f, wt, words)
    if f.type == "group":
        _group(out, f, wt, parts, group_errors, words)
        return
    required = words.required if f.required else ""
    error_class = "has-error" if parts.invalid else ""
    key = escape(f.key)
    if f.type in ("scale", "choice", "yesno") and not (f.type == "choice"
                                                      and f.widget == "select"):
        scale = f.type == "scale"
        described = f' aria-describedby="{escape(parts.described)}"' if parts.described else ""
        out.append(
            f'<fieldset class="field choice-field {error_class} '
            f'{"scale-field" if scale else ""}" data-key="{key}"{parts.show_if}{described}>\n'
            f"<legend>{escape(f.label)}{required} {parts.badge}")
        if f.scale:
            out.append(f' <span class="scale-name">{escape(f.scale.name)}</span>')
        out.append(f'</legend>\n<div class="options {"scale-options" if scale else ""}">\n'
                   f"{choice_inputs(wt, parts.invalid)}\n")
        if not f.required:
            out.append(f'<label class="option clear-option"><input type="radio" '
                       f'name="{escape(wt.name)}" value=""'
                       f'{" checked" if wt.data is None else ""}>'
                       f"<span>{words.not_rated if scale else words.no_answer}</span></label>\n")
        out.append("</div>\n")
        if f.scale and f.scale.anchors:
            out.append('<p class="anchors">' + "".join(
                f"<span><strong>{escape(value)}</strong> {escape(label)}</span>"
                for value, label in f.scale.anchors) + "</p>\n")
        out.append(f"{parts.help}{parts.errors}\n</fieldset>\n")
    elif f.type == "multichoice":
        out.append(f'<fieldset class="field choice-field {error_class}" data-key="{key}"'
                   f"{parts.show_if}>\n<legend>{escape(f.label)}{required} {parts.badge}"
                   f'</legend>\n<div class="options checks">\n{choice_inputs(wt)}\n</div>\n'
                   f"{parts.help}{parts.errors}\n</fieldset>\n")
    else:
        fid = escape(wt.id)
        unit = f' <span class="unit">({escape(f.unit)})</span>' \
            if f.unit and f.type != "percent" else ""
        out.append(f'<div class="field {error_class} type-{escape(f.type)}" data-key="{key}"'
                   f'{parts.show_if}>\n<label for="{fid}">{escape(f.label)}{unit}{required} '
                   f"{parts.badge}</label>\n")
        attrs: dict[str, Any] = {"aria-describedby": parts.described or False,
                                 "aria-invalid": "true" if parts.invalid else False}
        suggestions = f.type == "text" and f.suggestions
        if suggestions:
            attrs["list"] = f"{wt.id}-suggestions"
        if f.type == "ref":
            attrs["data-ref-group"] = f.group
        if f.type in ("date", "time"):
            attrs["type"] = f.type
        if f.type in NUMBER_TYPES:
            after = '<span class="unit">%</span>' if f.type == "percent" else \
                f'<span class="unit">{escape(f.unit)}</span>' if f.type == "duration" else ""
            out.append(f'<span class="with-unit">{control(wt, attrs)}{after}</span>\n')
        else:
            out.append(f"{control(wt, attrs)}\n")
        if suggestions:
            out.append(f'<datalist id="{fid}-suggestions">' + "".join(
                f'<option value="{escape(s)}"></option>' for s in f.suggestions)
                + "</datalist>\n")
        out.append(f"{parts.help}{parts.errors}\n</div>\n")


def _group(out: list[str], f: Any, wt: Any, parts: FieldParts, group_errors: dict,
           words: _Words) -> None:
    at_least = f' <span class="req">{_said(_("at least %(number)s"), number=f.min_items)}' \
        "</span>" if f.min_items else ""
    out.append(
        f'<fieldset class="group" id="{escape(wt.id)}" data-group="{escape(f.key)}" '
        f'data-max="{escape(f.max_items)}" data-min="{escape(f.min_items)}" '
        f'data-item-label="{escape(f.item_label)}" data-item-title="{escape(f.item_title or "")}"'
        f"{parts.show_if}>\n<legend>{escape(f.label)} {parts.badge}{at_least}</legend>\n")
    if f.help:
        out.append(f'<p class="help">{escape(f.help)}</p>\n')
    out.extend(f'<p class="error">{escape(e)}</p>' for e in group_errors.get(wt.name, []))
    out.append('<ol class="rows">\n')
    for i, entry in enumerate(wt.entries):
        _row(out, f, entry.form, i, i + 1, group_errors, words)
    out.append("</ol>\n")
    blank = getattr(wt, "blank_row", None)
    if blank:
        placeholder = escape(wt.row_placeholder)
        out.append(f'<template data-row-template data-placeholder="{placeholder}">')
        _row(out, f, blank, wt.row_placeholder, "", {}, words)
        out.append("</template>\n")
    adding = _said(_("To add a %(item)s, fill the empty one and save; to remove one, clear "
                     "its answers and save."), item=f.item_label.lower())
    out.append(f'<p class="help no-js-only">{adding}</p>\n</fieldset>\n')


def _row(out: list[str], f: Any, row_form: Any, index: Any, number: Any,
         group_errors: dict, words: _Words) -> None:
    out.append(f'<li class="row" data-row data-index="{escape(index)}">\n'
               f'<div class="row-head">\n<span class="row-title">{escape(f.item_label)} '
               f'{escape(number)}</span>\n<span class="row-tools" data-row-tools></span>\n'
               f'</div>\n{control(row_form.item_id)}\n<div class="row-fields">\n')
    for sub in f.fields:
        _field(out, sub, row_form[sub.key], group_errors, words)
    out.append("</div>\n</li>\n")
