"""How a document is cut into parts that render on their own and are reused.

A summary or a packet is its cover plus one part per session; each part's key is the
hash of its print HTML and of everything else that shapes its pages (the print
stylesheet, the fonts, the layout engine's version). Signed notes never change, so a
session's part is laid out once and reused until something in that session changes.
A handout is short and is one part. What a document's pages carry besides their
content (running heads, feet, the content hash: ``frame_job``; "Page x of y": composed
from ``numbers_sample_job``, or ``overlay_jobs`` when the sample cannot be used) is laid
out apart from the parts and laid over the assembled pages.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache

from flask import render_template

from ..i18n import catalogue_version
from ..resources import resource_dir
from ..summaries import HANDOUT, Document, document_hash
from . import numbers
from .engine import PartJob
from .weasy import LAYOUT_RULES


@dataclass(frozen=True)
class Plan:
    doc: Document
    doc_key: str
    overlay: bool  # page numbers and the content hash are laid over the assembled pages
    title: str
    content_hash: str

    def jobs(self) -> Iterator[PartJob]:
        """The document's parts in order, each made (its print HTML rendered) only when
        it is asked for: the first can be laid out while the others are still made."""
        doc = self.doc
        if doc.kind == HANDOUT:
            html = render_template("print/handout.html", doc=doc, links=None)
            yield PartJob(_part_key(html, True), html, pdf_ua=True)
            return
        yield _joined_part(render_template("print/part.html", doc=doc, part="cover",
                                           links=None))
        for s in doc.sessions:
            yield _joined_part(render_template("print/part.html", doc=doc, part="session", s=s,
                                               links=None))

    @cached_property
    def parts(self) -> list[PartJob]:
        return list(self.jobs())


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
    digest.update(LAYOUT_RULES.encode())
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
    return Plan(doc, doc_key(doc), overlay=doc.kind != HANDOUT, title=doc.title,
                content_hash=doc.content_hash)


def frame_job(plan: Plan) -> PartJob:
    """The page furniture of an assembled document (print/frame.html): its first page's
    and every other page's, laid over the pages with the numbers."""
    html = render_template("print/frame.html", doc=plan.doc, links=None)
    return PartJob(_part_key(html, False), html)


def overlay_jobs(pages: int, chunks: int) -> list[PartJob]:
    """The page-number overlays for a document of ``pages`` pages, cut into ``chunks``
    runs of pages that lay out in parallel (each page's label is written out, so a run
    needs no page counter from the runs before it)."""
    size = max(20, -(-pages // max(1, chunks)))
    jobs = []
    for first in range(1, pages + 1, size):
        html = render_template("print/overlay.html",
                               labels=numbers.labels(first, min(pages, first + size - 1), pages))
        jobs.append(PartJob(_part_key(html, False), html))
    return jobs


def numbers_sample_job() -> PartJob:
    """The labels every page number of an assembled document is composed from (see
    numbers.py): the same for every document in a language, so it is stored and reused."""
    html = render_template("print/overlay.html", labels=numbers.sample_labels())
    return PartJob(_part_key(html, False), html)


# Parts made ready to be joined (assemble.prepare_for_joining) are stored under keys of
# their own: code from before that preparation, sharing the store during a rolling deploy
# or after a rollback, never finds one and joins it the old way. A new way of preparing
# them gets a new name (join-2: a part's own Document element is no longer listed as
# detached). Preparing them as they are written, not by writing them again, leaves the
# same entries: the same name.
JOIN_FORMAT = "join-2"


def _joined_part(html: str) -> PartJob:
    """A part of a longer document, made ready to be joined where it is laid out (its
    element IDs carry its own key)."""
    key = _part_key(html, True, joined=True)
    return PartJob(key, html, pdf_ua=True, join_prefix=f"k{key[:12]}-")


def _part_key(html: str, pdf_ua: bool, joined: bool = False) -> str:
    return _sha(render_version() + ("ua" if pdf_ua else "") + (JOIN_FORMAT if joined else "")
                + html)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
