"""The small pieces the editor writes for every field and every option, in Python.

A note has dozens of fields and a scale up to eleven options; written as Jinja macros, these
pieces cost more to call than the markup they write (a macro call builds a context and binds
its arguments each time). ``templates/notes/_fields.html`` lays a field out and asks this
module for its parts once per field, and for a choice's options in one call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup, escape

from ..i18n import _


@dataclass(frozen=True, slots=True)
class FieldParts:
    """What a field's layout needs besides its control."""

    invalid: bool  # it has a message of its own (a group's rows have theirs)
    described: str  # ids for aria-describedby: its help and its message ('' for none)
    badge: Markup  # who may read the answer, when not only the clinical record
    show_if: Markup  # the data-show-* attributes (with their leading space) or ''
    help: Markup  # the help line, with the id ``described`` names
    errors: Markup  # the message lines, with the id ``described`` names


def field_parts(f: Any, wt: Any) -> FieldParts:
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
        badge=audience_badge(f.audience),
        show_if=_show_if(f, wt) if f.show_if else Markup(""),
        help=Markup(f'<p class="help" id="{fid}-help">{escape(f.help)}</p>')
        if f.help else Markup(""),
        errors=Markup("".join(f'<p class="error" id="{fid}-error">{escape(m)}</p>'
                              for m in messages)),
    )


def audience_badge(audience: str | None) -> Markup:
    if audience == "client":
        title, text = _("May appear on the client's handout"), _("client handout")
    elif audience == "private":
        title, text = _("Only you can see this; never printed or reviewed"), \
            _("private · only you")
    else:
        return Markup("")
    return Markup(f'<span class="badge aud-{audience}" title="{escape(title)}">'
                  f'{escape(text)}</span>')


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
