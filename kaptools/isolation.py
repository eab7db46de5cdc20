"""Rendering one piece of a page or document in isolation.

A note whose data no template expects (an old import, a hand repair, a bug) must never
stop the rest of a page or document from printing: each note block is rendered on its
own, and a block that fails is shown as its escaped plain text with a visible marker.
"""

from __future__ import annotations

import logging
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


def call_isolated(macro, *args: Any, title: str = "", plain: list | None = None) -> Markup:
    """Call a Jinja macro; if it fails, show ``plain`` (label, text) lines instead."""
    try:
        return Markup(macro(*args))  # noqa: S704 — Jinja output
    except Exception:
        log.exception("a part of a page could not be laid out; shown as plain text")
        return Markup(render_template(FALLBACK, title=title, lines=plain or []))  # noqa: S704
