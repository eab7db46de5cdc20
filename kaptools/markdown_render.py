"""The only way user text becomes markup: Markdown, then nh3 with a narrow allow-list."""

from __future__ import annotations

import markdown
import nh3
from markupsafe import Markup

ALLOWED_TAGS = {"p", "br", "em", "strong", "ul", "ol", "li", "blockquote", "code", "pre",
                "h3", "h4", "h5", "h6", "hr"}


def render_markdown(text: str | None) -> Markup:
    """Render a note's Markdown; no links, images, raw HTML or attributes survive."""
    if not text:
        return Markup("")
    html = markdown.markdown(text, extensions=["sane_lists", "nl2br"], output_format="html")
    cleaned = nh3.clean(html, tags=ALLOWED_TAGS, attributes={}, url_schemes=set(),
                        link_rel=None, strip_comments=True)
    return Markup(cleaned)  # noqa: S704 — sanitised by nh3 just above
