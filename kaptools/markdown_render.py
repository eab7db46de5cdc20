"""The only way user text becomes markup: Markdown, then nh3 with a narrow allow-list.

Notes are written by people and read by people, so the renderer keeps only what notes
need (paragraphs, emphasis, lists, quotes, headings, code) and is made safe for any
input: the syntax whose parsing can grow faster than the text (links, images, reference
definitions, raw HTML) is switched off, container nesting is capped before parsing, and
a text that still cannot be rendered is shown as plain, escaped text. Rendering time is
linear in the length of the text.
"""

from __future__ import annotations

import logging
import re
import threading

import markdown
import nh3
from markupsafe import Markup, escape

log = logging.getLogger("kaptools.markdown")

ALLOWED_TAGS = {"p", "br", "em", "strong", "ul", "ol", "li", "blockquote", "code", "pre",
                "h3", "h4", "h5", "h6", "hr"}
_USER_HEADING = re.compile(r"<h([3-6])>(.*?)</h\1>", re.S)
# Lists and quotes inside one another deeper than this are written as plain text.
MAX_NESTING = 8
# Longer texts are cut here (no field holds more than 100,000 characters).
MAX_CHARS = 100_000

# Syntax a note never needs and nh3 would strip anyway; its parsers are the slow ones.
_OFF_INLINE = ("reference", "link", "image_link", "image_reference", "short_reference",
               "short_image_ref", "autolink", "automail", "html")
_OFF_BLOCK = ("reference",)
_OFF_PRE = ("html_block",)

_CONTAINER = re.compile(r" {0,3}(?:>|[-*+](?=[ \t])|\d{1,9}[.)](?=[ \t]))[ \t]*")
_local = threading.local()


def _renderer() -> markdown.Markdown:
    """One configured Markdown instance per thread (instances are not thread-safe)."""
    md = getattr(_local, "md", None)
    if md is None:
        md = markdown.Markdown(extensions=["sane_lists", "nl2br"], output_format="html")
        for name in _OFF_INLINE:
            md.inlinePatterns.deregister(name, strict=False)
        for name in _OFF_BLOCK:
            md.parser.blockprocessors.deregister(name, strict=False)
        for name in _OFF_PRE:
            md.preprocessors.deregister(name, strict=False)
        _local.md = md
    return md


def cap_nesting(text: str, depth: int = MAX_NESTING) -> str:
    """Keep lists and quotes at most ``depth`` levels deep; deeper markers become text."""
    out = []
    limit = depth * 4
    for line in text.split("\n"):
        line = line.expandtabs(4)
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        if indent > limit:
            line = " " * limit + stripped
            indent = limit
        level = indent // 4
        pos = indent
        while True:
            match = _CONTAINER.match(line, pos)
            if match is None or match.end() == pos:
                break
            level += 1
            if level > depth:
                marker = match.start() + len(match.group(0)) - len(match.group(0).lstrip())
                while line[marker].isdigit():
                    marker += 1  # escape the "." of "1." (a backslash before "1" shows)
                line = line[:marker] + "\\" + line[marker:]
                break
            pos = match.end()
        out.append(line)
    return "\n".join(out)


def _plain(text: str) -> Markup:
    paragraphs = [p for p in re.split(r"\n{2,}", text) if p.strip()]
    return Markup("").join(
        Markup('<p class="plain-text">{}</p>').format(Markup("<br>").join(
            escape(line) for line in p.split("\n"))) for p in paragraphs)


def render_markdown(text: str | None) -> Markup:
    """Render a note's Markdown; no links, images, raw HTML or attributes survive."""
    if not text:
        return Markup("")
    text = text[:MAX_CHARS]
    md = _renderer()
    try:
        html = md.reset().convert(cap_nesting(text))
    except Exception:  # RecursionError or a parser bug: the words still show
        log.exception("Markdown could not be rendered; showing plain text")
        md.reset()
        return _plain(text)
    cleaned = nh3.clean(html, tags=ALLOWED_TAGS, attributes={}, url_schemes=set(),
                        link_rel=None, strip_comments=True)
    # A heading typed in a field is emphasis inside the field, not a heading of the
    # record: as a real heading it would break the outline of the page and the PDF.
    cleaned = _USER_HEADING.sub(r'<p class="md-heading"><strong>\2</strong></p>', cleaned)
    return Markup(cleaned)  # noqa: S704 — sanitised by nh3 just above
