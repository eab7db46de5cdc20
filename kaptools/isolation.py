"""Rendering one piece of a page or document in isolation.

A note whose data no template expects (an old import, a hand repair, a bug) must never
stop the rest of a page or document from printing: each note block is rendered on its
own, and a block that fails is shown as its escaped plain text with a visible marker.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from flask import render_template
from markupsafe import Markup

log = logging.getLogger("kaptools.render")

FALLBACK = "blocks/plain_note.html"


def render_isolated(template_name: str | list[str], *, fallback: dict[str, Any],
                    **context: Any) -> Markup:
    """Render ``template_name``; if it fails, render the plain-text fallback instead.

    ``fallback`` gives the fallback its title and (label, text) lines.
    """
    try:
        return Markup(render_template(template_name, **context))  # noqa: S704 — Jinja output
    except Exception:
        log.exception("a block of %s could not be laid out; printed as plain text",
                      template_name)
        return Markup(render_template(FALLBACK, **fallback))  # noqa: S704 — Jinja output


def call_isolated(macro, *args: Any, title: str = "",
                  plain: list | Callable[[], list] | None = None) -> Markup:
    """Call a Jinja macro; if it fails, show ``plain`` (label, text) lines instead (a list,
    or a function that makes it, called only then)."""
    try:
        return Markup(macro(*args))  # noqa: S704 — Jinja output
    except Exception:
        log.exception("a part of a page could not be laid out; shown as plain text")
        lines = plain() if callable(plain) else plain
        return Markup(render_template(FALLBACK, title=title, lines=lines or []))  # noqa: S704


class LockedViews:
    """The laid-out answers of locked notes, kept per process.

    A signed note never changes (its content hash says so), and its answers are laid out
    from its template and answers alone, so the HTML is made once and reused by every
    later view. Bounded by total size; least recently used go first.
    """

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, Markup] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get_or_make(self, key: tuple, make: Callable[[], Markup]) -> Markup:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        made = make()
        with self._lock:
            if key not in self._items and len(made) <= self.max_bytes // 8:
                self._items[key] = made
                self._size += len(made)
                while self._size > self.max_bytes:
                    _, dropped = self._items.popitem(last=False)
                    self._size -= len(dropped)
        return made

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


LOCKED_VIEWS = LockedViews()


def note_answers_view(macro, note, template, answers, refs) -> Markup:
    """A note's answers laid out by ``macro`` (isolated); reused for locked notes (for as
    long as the words they are laid out in stay the same)."""
    from flask_babel import get_locale

    from .i18n import catalogue_version
    from .modality.answers import plain_answers

    def plain() -> list:
        return plain_answers(template, answers)

    if note.state == "draft" or not note.content_hash:
        return call_isolated(macro, template, answers, refs, plain=plain)
    key = (note.id, note.content_hash, template.slug, template.version, macro.name,
           str(get_locale()), catalogue_version())
    return LOCKED_VIEWS.get_or_make(
        key, lambda: call_isolated(macro, template, answers, refs, plain=plain))
