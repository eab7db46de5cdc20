"""Summaries, handouts and supervision packets: preview in the browser, download as PDF."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, render_template, request, url_for

from .. import audit, documents
from ..extensions import db
from ..summaries import PRACTICE_SHEETS
from ..web import current_scope

bp = Blueprint("documents", __name__)
log = logging.getLogger("kaptools.documents")


def _target(course_id: int | None, session_id: int | None):
    scope = current_scope()
    if session_id is not None:
        only = scope.therapy_session(session_id)
        return only.course, only
    return scope.course(course_id), None


def _serve(kind: str, course_id: int | None = None, session_id: int | None = None,
           as_pdf: bool = False):
    if kind not in documents.KINDS:
        abort(404)
    course, only = _target(course_id, session_id)
    sheets = request.args.getlist("sheet") or None
    doc = documents.build(kind, course, only, sheets)
    endpoint = "documents.session_pdf" if only is not None else "documents.course_pdf"
    ids = {"session_id": only.id} if only is not None else {"course_id": course.id}
    query = {"sheet": sheets} if sheets else {}
    back = url_for("records.therapy_session", session_id=only.id) if only is not None else \
        url_for("records.course", course_id=course.id)
    links = {"pdf": url_for(endpoint, kind=kind, **ids, **query), "back": back}
    detail = {"kind": kind, "scope": "session" if only else "course"}
    if not as_pdf:
        audit.record("document.previewed", obj=only or course, client_code=course.client.code,
                     detail=detail)
        db.session.commit()
        return documents.document_html(doc, links)
    try:
        pdf = documents.document_pdf(doc, links)  # the same HTML as the preview
    except Exception:
        log.exception("PDF rendering failed for %s %s", kind, ids)
        db.session.rollback()
        return render_template("errors/error.html", code=500, title="The PDF could not be made",
                               message="Nothing was changed. Try again in a moment, or open "
                                       "the preview and print it from your browser."), 500
    audit.record("document.downloaded", obj=only or course, client_code=course.client.code,
                 detail=detail)
    db.session.commit()
    name = documents.download_name(kind, course, only)
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{name}"'})


@bp.get("/courses/<int:course_id>/documents/<kind>")
def course_preview(course_id: int, kind: str):
    """Show a course document exactly as it will print."""
    return _serve(kind, course_id=course_id)


@bp.get("/courses/<int:course_id>/documents/<kind>.pdf")
def course_pdf(course_id: int, kind: str):
    """Download a course document as PDF."""
    return _serve(kind, course_id=course_id, as_pdf=True)


@bp.get("/sessions/<int:session_id>/documents/<kind>")
def session_preview(session_id: int, kind: str):
    """Show one session's document exactly as it will print."""
    return _serve(kind, session_id=session_id)


@bp.get("/sessions/<int:session_id>/documents/<kind>.pdf")
def session_pdf(session_id: int, kind: str):
    """Download one session's document as PDF."""
    return _serve(kind, session_id=session_id, as_pdf=True)


@bp.get("/courses/<int:course_id>/handout-sheets")
def choose_sheets(course_id: int):
    """Pick the practice sheets that go with a client handout."""
    course = current_scope().course(course_id)
    doc = documents.build("handout", course)
    return render_template("documents/sheets.html", course=course, sheets=PRACTICE_SHEETS,
                           chosen=doc.practice_sheets)
