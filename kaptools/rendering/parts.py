"""How a document is cut into parts that render on their own and are reused.

A summary or a packet is its cover plus one part per session; each part's key is the
hash of its print HTML and of everything else that shapes its pages (the print
stylesheet, the fonts, the layout engine's version). Signed notes never change, so a
session's part is laid out once and reused until something in that session changes.
A handout is short and is one part.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache

from flask import render_template

from ..i18n import catalogue_version
from ..resources import resource_dir
from ..summaries import HANDOUT, Document, document_hash
from .engine import PartJob


@dataclass(frozen=True)
class Plan:
    doc_key: str
    parts: list[PartJob]
    overlay: bool  # page numbers and the content hash are laid over the assembled pages
    title: str
    content_hash: str


@lru_cache(maxsize=1)
def render_version() -> str:
    """Changes whenever the print templates, stylesheet, fonts or layout engine change."""
    from importlib.metadata import version

    static, templates = resource_dir("static"), resource_dir("templates")
    digest = hashlib.sha256()
    for path in sorted((static / "css").glob("print*.css")) + sorted(
            (static / "fonts").glob("*")) + sorted((templates / "print").rglob("*.html")) + \
            sorted((templates / "blocks").rglob("*.html")) + \
            sorted((templates / "notes").glob("_view.html")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    digest.update(version("weasyprint").encode())
    return digest.hexdigest()


def doc_key(doc: Document) -> str:
    """The key a finished document is stored under: its content and how it prints."""
    return _sha(json.dumps({"v": render_version(), "kind": doc.kind, "scope": doc.scope_label,
                            "content": document_hash(doc),
                            "printed": doc.printed_on.isoformat(), "clinic": doc.clinic,
                            "contacts": doc.clinic_contacts,
                            "vitals": doc.vitals_thresholds, "words": catalogue_version()},
                           sort_keys=True, default=str))


def plan(doc: Document) -> Plan:
    """The parts a document is made of, each with the key it is stored under."""
    if doc.kind == HANDOUT:
        html = render_template("print/handout.html", doc=doc, links=None)
        parts = [PartJob(_part_key(html, True), html, pdf_ua=True)]
        return Plan(doc_key(doc), parts, overlay=False, title=doc.title,
                    content_hash=doc.content_hash)
    htmls = [render_template("print/part.html", doc=doc, part="cover", links=None)]
    htmls += [render_template("print/part.html", doc=doc, part="session", s=s, links=None)
              for s in doc.sessions]
    parts = []
    for html in htmls:
        key = _part_key(html, True, joined=True)
        # Made ready to be joined where it is laid out; its IDs carry its own key.
        parts.append(PartJob(key, html, pdf_ua=True, join_prefix=f"k{key[:12]}-"))
    return Plan(doc_key(doc), parts, overlay=True, title=doc.title,
                content_hash=doc.content_hash)


def overlay_jobs(plan: Plan, pages: int, chunks: int) -> list[PartJob]:
    """The page-number overlays for a document of ``pages`` pages, cut into ``chunks``
    runs of pages that lay out in parallel (each page's label is written out, so a run
    needs no page counter from the runs before it)."""
    size = max(20, -(-pages // max(1, chunks)))
    jobs = []
    for first in range(1, pages + 1, size):
        html = render_template("print/overlay.html", first=first,
                               last=min(pages, first + size - 1), total=pages,
                               content_hash=plan.content_hash)
        jobs.append(PartJob(_part_key(html, False), html))
    return jobs


# Parts made ready to be joined (assemble.prepare_part) are stored under keys of their own:
# code from before that preparation, sharing the store during a rolling deploy or after
# a rollback, never finds one and joins it the old way. A new way of preparing them gets a
# new name (join-2: a part's own Document element is no longer listed as detached).
JOIN_FORMAT = "join-2"


def _part_key(html: str, pdf_ua: bool, joined: bool = False) -> str:
    return _sha(render_version() + ("ua" if pdf_ua else "") + (JOIN_FORMAT if joined else "")
                + html)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
