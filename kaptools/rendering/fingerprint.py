"""A document's fingerprint: what it is made of, read without reading the notes.

Asking for a PDF must not cost the web process the work of assembling the document (a
long course takes seconds): the request computes this fingerprint from a few small
queries — the course and its sessions, each note's id and version counter (which moves
with every save and with signing), the ids of signatures, addenda and comments, the
reviews' states — and finds the PDF stored under it, or queues a job that renders it.
"""

from __future__ import annotations

import hashlib
import json

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..i18n import catalogue_version
from ..models import (
    Addendum,
    Course,
    Note,
    Review,
    ReviewComment,
    Signature,
    SupervisionRelationship,
    TherapySession,
    User,
)
from ..timeutil import clinic_time, today
from .parts import render_version


@clinic_time()  # the document's own dates are the clinic's, whoever asks for it
def fingerprint(kind: str, course: Course, only: TherapySession | None,
                sheets: list[str] | None) -> str:
    sessions = select(TherapySession.id).where(TherapySession.course_id == course.id)
    if only is not None:
        sessions = sessions.where(TherapySession.id == only.id)
    session_rows = db.session.execute(
        select(TherapySession.id, TherapySession.kind, TherapySession.session_date,
               TherapySession.summary, TherapySession.follows_id)
        .where(TherapySession.id.in_(sessions)).order_by(TherapySession.id)).all()
    notes = select(Note.id).where(Note.session_id.in_(sessions))
    note_rows = db.session.execute(
        select(Note.id, Note.version, Note.state, Note.template_version)
        .where(Note.id.in_(notes)).order_by(Note.id)).all()
    signatures = db.session.scalars(select(Signature.id).where(Signature.note_id.in_(notes))
                                    .order_by(Signature.id)).all()
    addenda = db.session.scalars(select(Addendum.id).where(Addendum.note_id.in_(notes))
                                 .order_by(Addendum.id)).all()
    reviews = db.session.execute(
        select(Review.id, Review.status, Review.round).where(Review.note_id.in_(notes))
        .order_by(Review.id)).all()
    comments = db.session.scalars(
        select(ReviewComment.id).join(Review).where(Review.note_id.in_(notes))
        .order_by(ReviewComment.id)).all() if kind == "packet" else []
    supervisors = db.session.scalars(
        select(User.display_name).join(SupervisionRelationship,
                                       SupervisionRelationship.supervisor_id == User.id)
        .where(SupervisionRelationship.supervisee_id == course.client.therapist_id,
               SupervisionRelationship.starts_on <= today(),
               (SupervisionRelationship.ends_on.is_(None)) |
               (SupervisionRelationship.ends_on >= today()))
        .order_by(User.display_name)).all()
    client = course.client
    from ..risk import flag_for

    flag = flag_for(client) if kind != "handout" else None
    payload = {
        "v": render_version(), "kind": kind, "only": only.id if only else None,
        "sheets": sheets, "printed": today().isoformat(),
        "course": [course.id, course.title, course.format, str(course.starts_on),
                   str(course.ends_on), course.intentions],
        "client": [client.code, client.display_name, client.therapist.display_name],
        "supervisors": supervisors, "sessions": [list(map(str, r)) for r in session_rows],
        "notes": [list(r) for r in note_rows], "signatures": signatures, "addenda": addenda,
        "reviews": [list(r) for r in reviews], "comments": comments,
        "clinic": current_app.config["CLINIC_NAME"],
        "contacts": [current_app.config.get(key) for key in (
            "CLINIC_PHONE", "CLINIC_AFTER_HOURS_PHONE", "CRISIS_LINE", "EMERGENCY_NUMBER")],
        "vitals": current_app.config["VITALS_THRESHOLDS"],
        # Times print in the clinic's zone and convention: another zone, another PDF.
        "zone": [current_app.config.get("CLINIC_TIMEZONE"),
                 current_app.config.get("CLINIC_LOCALE")],
        "words": catalogue_version(),  # a new translation, another PDF
        "risk": [flag.label, flag.raised_at, flag.note_id, flag.followed_up_at] if flag else None,
    }
    encoded = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()
