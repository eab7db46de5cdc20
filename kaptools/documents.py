"""Render documents (summary, handout, packet) to HTML and PDF."""

from __future__ import annotations

from flask import render_template

from . import pdf
from .models import Course, TherapySession
from .summaries import HANDOUT, PRACTICE_SHEETS, Document, build_document

KINDS = ("summary", "handout", "packet")


def document_html(doc: Document, links: dict[str, str] | None = None) -> str:
    template = "print/handout.html" if doc.kind == HANDOUT else "print/document.html"
    return render_template(template, doc=doc, links=links)


def document_pdf(doc: Document, links: dict[str, str] | None = None) -> bytes:
    return pdf.html_to_pdf(document_html(doc, links), pdf_ua=doc.kind == HANDOUT)


def build(kind: str, course: Course, only: TherapySession | None = None,
          sheets: list[str] | None = None) -> Document:
    if sheets is not None:
        sheets = [s for s in sheets if s in PRACTICE_SHEETS]
    return build_document(kind, course, only, sheets)


def download_name(kind: str, course: Course, only: TherapySession | None) -> str:
    """Built from ids and dates only, never from a client's name."""
    scope = f"session-{only.id}" if only is not None else f"course-{course.id}"
    return f"kaptools-{kind}-{scope}.pdf"
