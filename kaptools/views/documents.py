"""Summaries, handouts and supervision packets: preview in the browser, download as PDF."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from .. import audit, documents
from ..extensions import db
from ..models import RenderStatus
from ..rendering.jobs import CAUSES, job_for, request_document, result
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
    endpoint = "documents.session_pdf" if only is not None else "documents.course_pdf"
    ids = {"session_id": only.id} if only is not None else {"course_id": course.id}
    query = {"sheet": sheets} if sheets else {}
    detail = {"kind": kind, "scope": "session" if only else "course"}
    if not as_pdf:
        doc = documents.build(kind, course, only, sheets)
        back = url_for("records.therapy_session", session_id=only.id) if only is not None \
            else url_for("records.course", course_id=course.id)
        links = {"pdf": url_for(endpoint, kind=kind, **ids, **query), "back": back,
                 "home": url_for("main.dashboard")}
        audit.record("document.previewed", obj=only or course, client_code=course.client.code,
                     detail=detail)
        db.session.commit()
        return documents.document_html(doc, links)
    # PDFs are rendered by a background worker; a document rendered before (by any
    # process) is served at once.
    asked = request_document(kind, course, only, documents.clean_sheets(sheets),
                             current_user)
    if asked.pdf is None:
        audit.record("document.requested", obj=only or course, client_code=course.client.code,
                     detail={**detail, "job": asked.job.id})
        db.session.commit()
        return redirect(url_for("documents.render_status", job_id=asked.job.id))
    return _send_pdf(asked.pdf, kind, course, only, detail)


def _send_pdf(pdf: bytes, kind: str, course, only, detail: dict):
    audit.record("document.downloaded", obj=only or course, client_code=course.client.code,
                 detail=detail)
    db.session.commit()
    name = documents.download_name(kind, course, only)
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{name}"'})


@bp.get("/renders/<int:job_id>")
def render_status(job_id: int):
    """Follow a PDF being rendered; when it is ready, open it."""
    job, course, only = _job(job_id)
    if job.status == RenderStatus.DONE:
        return redirect(url_for("documents.render_pdf", job_id=job.id))
    sessions = [s for s in course.sessions] if job.status == RenderStatus.FAILED and \
        only is None else []
    return render_template("documents/render.html", job=job, course=course, only=only,
                           sessions=sessions, causes=CAUSES), \
        200 if job.status != RenderStatus.FAILED else 422


@bp.get("/renders/<int:job_id>.json")
def render_status_json(job_id: int):
    """The state of a render, for the page that follows it."""
    job, _, _ = _job(job_id)
    return jsonify(status=job.status, progress=job.progress, stage=job.stage,
                   message=job.message, pdf=url_for("documents.render_pdf", job_id=job.id)
                   if job.status == RenderStatus.DONE else None)


@bp.get("/renders/<int:job_id>/pdf")
def render_pdf(job_id: int):
    """The finished PDF of a render (its owner only, while they may still see the record)."""
    job, course, only = _job(job_id)
    pdf = result(job)
    if pdf is None:
        return redirect(url_for("documents.render_status", job_id=job.id))
    return _send_pdf(pdf, job.kind, course, only,
                     {"kind": job.kind, "scope": "session" if only else "course",
                      "job": job.id})


def _job(job_id: int):
    """A render of the signed-in user's, for a course they may still see; else 404."""
    job = job_for(job_id, current_user)
    if job is None:
        abort(404)
    scope = current_scope()
    if job.session_id is not None:
        only = scope.therapy_session(job.session_id)
        return job, only.course, only
    return job, scope.course(job.course_id), None


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
    return _sheet_chooser(current_scope().course(course_id))


@bp.get("/sessions/<int:session_id>/handout-sheets")
def choose_session_sheets(session_id: int):
    """Pick the practice sheets that go with one session's client handout."""
    only = current_scope().therapy_session(session_id)
    return _sheet_chooser(only.course, only)


def _sheet_chooser(course, only=None):
    doc = documents.build("handout", course, only)
    action = (url_for("documents.session_preview", session_id=only.id, kind="handout") if only
              else url_for("documents.course_preview", course_id=course.id, kind="handout"))
    return render_template("documents/sheets.html", course=course, only=only,
                           sheets=PRACTICE_SHEETS, chosen=doc.practice_sheets, action=action)
