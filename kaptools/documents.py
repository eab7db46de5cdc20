"""Render documents (summary, handout, packet) to HTML and PDF."""

from __future__ import annotations

from flask import render_template

from .models import Course, TherapySession
from .summaries import HANDOUT, PRACTICE_SHEETS, Document, build_document
from .timeutil import clinic_time

KINDS = ("summary", "handout", "packet")


def document_html(doc: Document, links: dict[str, str] | None = None) -> str:
    template = "print/handout.html" if doc.kind == HANDOUT else "print/document.html"
    with clinic_time():
        return render_template(template, doc=doc, links=links)


def document_pdf(doc: Document) -> bytes:
    """Render a document to PDF now, in child processes, reusing stored parts."""
    from .rendering.jobs import render_now

    return render_now(doc)


def clean_sheets(sheets: list[str] | None) -> list[str] | None:
    """Only practice sheets that exist."""
    return [s for s in sheets if s in PRACTICE_SHEETS] if sheets is not None else None


def build(kind: str, course: Course, only: TherapySession | None = None,
          sheets: list[str] | None = None) -> Document:
    with clinic_time():
        return build_document(kind, course, only, clean_sheets(sheets))


def download_name(kind: str, course: Course, only: TherapySession | None) -> str:
    """Built from ids and dates only, never from a client's name."""
    scope = f"session-{only.id}" if only is not None else f"course-{course.id}"
    return f"kaptools-{kind}-{scope}.pdf"
