"""Clients, courses and therapy sessions: the scaffolding notes hang on."""

from __future__ import annotations

import json

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer, joinedload, selectinload

from .. import audit, discard, lists, outcomes, reviews, risk
from ..extensions import db
from ..forms import ClientForm, CourseForm, RecordExportForm, SessionForm, choice_list
from ..i18n import _
from ..models import Client, Course, Note, SessionKind, TherapySession
from ..overview import course_overviews
from ..timeutil import day
from ..web import current_scope, shown_and_recorded

bp = Blueprint("records", __name__)


def _sessions(relationship):
    """A course's sessions with their notes (not the notes' answers), in one query each."""
    return selectinload(relationship).selectinload(TherapySession.notes).defer(Note.answers)


def _timeline(courses):
    """Each course's sessions and notes, for the timelines of a client's page."""
    return selectinload(courses).options(_sessions(Course.sessions))


def _changed(action: str, obj, client: Client) -> None:
    audit.record(action, obj=obj, client_code=client.code)


@bp.get("/clients")
def clients():
    """List the clients this user may see."""
    show_archived = request.args.get("archived") == "1"
    page = lists.clients_page(current_scope(), request.args.get("page", 1, type=int) or 1,
                              include_archived=show_archived)
    return render_template("clients/list.html", page=page, show_archived=show_archived)


@bp.route("/clients/new", methods=["GET", "POST"])
def new_client():
    """Add a client under a pseudonymous code."""
    form = ClientForm()
    del form.archived
    if form.validate_on_submit():
        client = Client(therapist_id=current_user.id, code=form.code.data,
                        display_name=form.display_name.data or None)
        db.session.add(client)
        try:
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            form.code.errors.append(_("You already have a client with this code."))
        else:
            _changed("client.created", client, client)
            db.session.commit()
            flash(_("Client %(code)s added.", code=client.code), "success")
            return redirect(url_for(".client", client_id=client.id))
    return render_template("clients/form.html", form=form, client=None)


@bp.get("/clients/<int:client_id>")
def client(client_id: int):
    """Show a client: each course at a glance, with its outcome measures."""
    scope = current_scope()
    found, risk_flag = risk.client_with_courses_and_flag(scope, client_id)
    overview = course_overviews([c.id for c in found.courses])
    points_by_course = outcomes.outcome_points(
        [measure for course_ in overview.values() for measure in course_.measures])
    charts = {}
    for course_ in found.courses:
        points = points_by_course.get(course_.id, [])
        chart = outcomes.course_chart(overview[course_.id].sessions, points)
        charts[course_.id] = {
            "points": points,
            "changes": outcomes.changes(points),
            "svg": chart.uri if chart else None,
            "alt": chart.alt if chart else "",
        }
    return shown_and_recorded(
        render_template("clients/detail.html", client=found, can_edit=scope.owns(found),
                        charts=charts, overview=overview, risk_flag=risk_flag),
        "client.viewed", found, found.code)


@bp.route("/clients/<int:client_id>/edit", methods=["GET", "POST"])
def edit_client(client_id: int):
    """Change a client's code, display name or archive state."""
    found = current_scope().writable_client(client_id)
    form = ClientForm(obj=found)
    if form.validate_on_submit():
        found.code = form.code.data
        found.display_name = form.display_name.data or None
        found.archived = form.archived.data
        try:
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            found = current_scope().writable_client(client_id)
            form.code.errors.append(_("You already have a client with this code."))
        else:
            _changed("client.updated", found, found)
            db.session.commit()
            flash(_("Client saved."), "success")
            return redirect(url_for(".client", client_id=found.id))
    return render_template("clients/form.html", form=form, client=found)


@bp.route("/clients/<int:client_id>/courses/new", methods=["GET", "POST"])
def new_course(client_id: int):
    """Open a new course of treatment for a client."""
    found = current_scope().writable_client(client_id)
    form = CourseForm()
    if form.validate_on_submit():
        course = Course(client=found)
        form.populate_obj(course)
        db.session.add(course)
        db.session.flush()
        _changed("course.created", course, found)
        db.session.commit()
        flash(_("Course added."), "success")
        return redirect(url_for(".course", course_id=course.id))
    return render_template("courses/form.html", form=form, client=found, course=None)


@bp.get("/courses/<int:course_id>")
def course(course_id: int):
    """Show a course as its arc of sessions."""
    scope = current_scope()
    found = scope.course(course_id, _sessions(Course.sessions))
    history = reviews.course_reviews(found)
    return shown_and_recorded(
        render_template("courses/detail.html", course=found,
                        can_edit=scope.owns(found.client),
                        supervisors=reviews.current_supervisors(current_user)
                        if scope.owns(found.client) else [],
                        latest_review=history[-1] if history else None),
        "course.viewed", found, found.client.code)


@bp.route("/courses/<int:course_id>/edit", methods=["GET", "POST"])
def edit_course(course_id: int):
    """Change a course's format, dates or intentions."""
    found = current_scope().writable_course(course_id)
    form = CourseForm(obj=found)
    if form.validate_on_submit():
        form.populate_obj(found)
        _changed("course.updated", found, found.client)
        db.session.commit()
        flash(_("Course saved."), "success")
        return redirect(url_for(".course", course_id=found.id))
    return render_template("courses/form.html", form=form, client=found.client, course=found)


def _dosing_choices(course: Course, exclude: int | None = None) -> list:
    dosing = db.session.scalars(
        select(TherapySession)
        .where(TherapySession.course_id == course.id, TherapySession.kind == SessionKind.DOSING)
        .order_by(TherapySession.session_date, TherapySession.id)
    )
    choices = [(0, _("— none —"))]
    choices += [(s.id, _("Dosing session of %(date)s", date=day(s.session_date, "dd MMM y")))
                for s in dosing if s.id != exclude]
    return choice_list(choices)


def _apply_session_form(form: SessionForm, target: TherapySession) -> None:
    target.kind = form.kind.data
    target.session_date = form.session_date.data
    target.summary = form.summary.data or ""
    target.follows_id = (form.follows_id.data or None) if form.kind.data == "integration" else None


@bp.route("/courses/<int:course_id>/sessions/new", methods=["GET", "POST"])
def new_session(course_id: int):
    """Add a preparation, dosing, integration or assessment session to a course."""
    found = current_scope().writable_course(course_id)
    form = SessionForm()
    form.follows_id.choices = _dosing_choices(found)
    if form.validate_on_submit():
        created = TherapySession(course=found)
        _apply_session_form(form, created)
        db.session.add(created)
        db.session.flush()
        _changed("session.created", created, found.client)
        db.session.commit()
        flash(_("Session added."), "success")
        return redirect(url_for(".therapy_session", session_id=created.id))
    return render_template("sessions/form.html", form=form, course=found, therapy_session=None)


@bp.get("/sessions/<int:session_id>")
def therapy_session(session_id: int):
    """Show a therapy session and its notes."""
    scope = current_scope()
    found = scope.therapy_session(session_id, joinedload(TherapySession.follows),
                                  selectinload(TherapySession.notes).options(
                                      defer(Note.answers), joinedload(Note.author)))
    return shown_and_recorded(
        render_template("sessions/detail.html", therapy_session=found,
                        can_edit=scope.owns(found.course.client)),
        "session.viewed", found, found.course.client.code)


@bp.route("/sessions/<int:session_id>/edit", methods=["GET", "POST"])
def edit_session(session_id: int):
    """Change a session's kind, date or the dosing session it follows."""
    found = current_scope().writable_session(session_id)
    form = SessionForm(obj=found)
    form.follows_id.choices = _dosing_choices(found.course, exclude=found.id)
    if request.method == "GET":
        form.follows_id.data = found.follows_id or 0
    if form.validate_on_submit():
        _apply_session_form(form, found)
        _changed("session.updated", found, found.course.client)
        db.session.commit()
        flash(_("Session saved."), "success")
        return redirect(url_for(".therapy_session", session_id=found.id))
    return render_template("sessions/form.html", form=form, course=found.course,
                           therapy_session=found)


# A client's record out, as a FHIR Bundle (see kaptools/exports/record.py) ----------------
@bp.route("/clients/<int:client_id>/export", methods=["GET", "POST"])
def export_record(client_id: int):
    """Download the client's record (signed notes) as FHIR R4 JSON, saying why."""
    found = current_scope().writable_client(client_id)
    form = RecordExportForm()
    if form.validate_on_submit():
        from ..exports.record import export_record as bundle_of

        bundle = bundle_of(found, form.reason.data, current_user)
        db.session.commit()
        response = Response(json.dumps(bundle, ensure_ascii=False, indent=1),
                            mimetype="application/fhir+json")
        response.headers["Content-Disposition"] = \
            f'attachment; filename="kaptools-record-client-{found.id}.fhir.json"'
        return response
    return render_template("clients/export.html", client=found, form=form), \
        422 if form.is_submitted() else 200


# Discarding what was started by mistake (see kaptools/discard.py) -------------------------
@bp.post("/notes/<int:note_id>/discard-draft")
def discard_note(note_id: int):
    """Discard a draft its author started by mistake."""
    found = current_scope().writable_note(note_id)
    if found.author_id != current_user.id:
        abort(403)
    back = url_for(".therapy_session", session_id=found.session_id)
    return _discard(found, found.session.course.client, back,
                    url_for("notes.note", note_id=found.id), _("Draft discarded."))


@bp.post("/sessions/<int:session_id>/discard")
def discard_session(session_id: int):
    """Discard a session that holds nothing signed, with its drafts."""
    found = current_scope().writable_session(session_id)
    return _discard(found, found.course.client,
                    url_for(".course", course_id=found.course_id),
                    url_for(".therapy_session", session_id=found.id),
                    _("Session discarded."))


@bp.post("/courses/<int:course_id>/discard")
def discard_course(course_id: int):
    """Discard a course that holds nothing signed, with its sessions and drafts."""
    found = current_scope().writable_course(course_id)
    return _discard(found, found.client, url_for(".client", client_id=found.client_id),
                    url_for(".course", course_id=found.id), _("Course discarded."))


def _discard(obj, client: Client, done_url: str, here_url: str, message: str):
    try:
        discard.discard(obj, current_user, client.code)
    except discard.DiscardError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(here_url)
    db.session.commit()
    flash(_("%(done)s An administrator can restore it within %(days)s days.", done=message,
            days=discard.KEEP_DAYS), "success")
    return redirect(done_url)
