"""Discarding what was started by mistake, and an administrator's restore.

A draft note, a session or a course that holds nothing signed can be discarded by the
therapist who keeps the record. Nothing is deleted: the rows are stamped with the moment
and the user (``models.Discardable``), every query leaves them out from then on, and an
administrator can restore them for ``KEEP_DAYS`` days. A session or course takes its
drafts (and a course its sessions) with it, under the same stamp, and they come back
together. Both steps are audited. Signed records are never discarded: a signed note is
corrected by an addendum or marked entered in error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from . import audit
from .extensions import db
from .i18n import _
from .models import Course, Note, NoteState, Review, ReviewStatus, TherapySession, User
from .timeutil import day, utcnow

KEEP_DAYS = 30

KINDS: dict[str, type] = {"note": Note, "session": TherapySession, "course": Course}


class DiscardError(Exception):
    """Why this record cannot be discarded or restored; the message says so."""


def refusal(obj: Course | TherapySession | Note) -> str | None:
    """Why ``obj`` cannot be discarded, or None."""
    if isinstance(obj, Note):
        if obj.state != NoteState.DRAFT:
            return _("A signed note stays in the record: add an addendum, or mark it entered "
                     "in error.")
        if _pending_review([obj.id], []):
            return _("This draft is waiting for your supervisor's review.")
        return None
    sessions = [obj] if isinstance(obj, TherapySession) else list(obj.sessions)
    session_ids = [s.id for s in sessions]
    kept = db.session.scalar(select(func.count(Note.id)).where(
        Note.session_id.in_(session_ids), Note.state != NoteState.DRAFT)) if session_ids else 0
    is_session = isinstance(obj, TherapySession)
    if kept:
        return _("This session holds signed notes, which stay in the record.") if is_session \
            else _("This course holds signed notes, which stay in the record.")
    drafts = _drafts(session_ids)
    course_ids = [obj.id] if isinstance(obj, Course) else []
    if _pending_review([n.id for n in drafts], course_ids):
        return _("A note of this session is waiting for your supervisor's review.") \
            if is_session else _("A note of this course is waiting for your supervisor's "
                                 "review.")
    if isinstance(obj, TherapySession):
        follower = db.session.scalar(select(TherapySession).where(
            TherapySession.follows_id == obj.id).limit(1))
        if follower is not None:
            return _("The integration session of %(date)s follows this dosing session: "
                     "change or discard that one first.",
                     date=day(follower.session_date, "dd MMM y"))
    return None


def discard(obj: Course | TherapySession | Note, user: User, client_code: str) -> list:
    """Discard ``obj`` (with its sessions and drafts); the caller commits."""
    problem = refusal(obj)
    if problem:
        raise DiscardError(problem)
    now = utcnow()
    if isinstance(obj, Note):
        rows: list = [obj]
    else:
        sessions = [obj] if isinstance(obj, TherapySession) else list(obj.sessions)
        rows = ([obj] if isinstance(obj, Course) else []) + sessions \
            + _drafts([s.id for s in sessions])
    for row in rows:
        row.discarded_at, row.discarded_by_id = now, user.id
    audit.record(f"{_kind(obj)}.discarded", obj=obj, user=user, client_code=client_code,
                 detail={"with": _counts(rows[1:])})
    return rows


@dataclass(frozen=True)
class Discarded:
    """One discarded record as an administrator sees it (no clinical content)."""

    kind: str
    id: int
    client_code: str
    label: str
    discarded_at: datetime
    discarded_by: str
    restorable: bool


def discarded_records(now: datetime | None = None, limit: int = 200) -> list[Discarded]:
    """Everything discarded on its own (not with a course or session), newest first: one
    query per kind with the session, course and client each row names, one for the users."""
    now = now or utcnow()
    to_course = joinedload(Course.client)
    to_session = joinedload(TherapySession.course).options(to_course)
    eager = {"note": joinedload(Note.session).options(to_session), "session": to_session,
             "course": to_course}
    rows = []
    for kind, model in KINDS.items():
        query = select(model).where(model.discarded_at.is_not(None)) \
            .order_by(model.discarded_at.desc()).limit(limit).options(eager[kind]) \
            .execution_options(include_discarded=True)
        for row in db.session.scalars(query):
            parent = _parent(row)
            if parent is not None and parent.discarded_at == row.discarded_at:
                continue  # it comes back with what it was discarded with
            rows.append((kind, row))
    user_ids = {row.discarded_by_id for _, row in rows if row.discarded_by_id}
    names = dict(db.session.execute(select(User.id, User.display_name)
                                    .where(User.id.in_(user_ids))).all()) if user_ids else {}
    found = [Discarded(kind, row.id, _client_code(row), _label(row), row.discarded_at,
                       names.get(row.discarded_by_id, "—"),
                       row.discarded_at >= now - timedelta(days=KEEP_DAYS))
             for kind, row in rows]
    return sorted(found, key=lambda d: d.discarded_at, reverse=True)[:limit]


def restore(kind: str, record_id: int, admin: User) -> Discarded:
    """Bring back a discarded record with everything discarded with it; the caller commits."""
    model = KINDS.get(kind)
    row = db.session.scalar(select(model).where(
        model.id == record_id, model.discarded_at.is_not(None))
        .execution_options(include_discarded=True)) if model else None
    if row is None:
        raise DiscardError(_("There is no such discarded record."))
    if row.discarded_at < utcnow() - timedelta(days=KEEP_DAYS):
        raise DiscardError(_("Records can be restored for %(days)s days after they were "
                             "discarded; this one was discarded earlier.", days=KEEP_DAYS))
    parent = _parent(row)
    if parent is not None and parent.discarded_at is not None:
        raise DiscardError(_("This record was discarded with its session or course: restore "
                             "that instead."))
    stamp = row.discarded_at
    shown = Discarded(kind, row.id, _client_code(row), _label(row), stamp,
                      _username(row.discarded_by_id), True)
    rows = [row] + _discarded_with(row, stamp)
    for each in rows:
        each.discarded_at, each.discarded_by_id = None, None
    audit.record(f"{kind}.restored", obj=row, user=admin, client_code=shown.client_code,
                 detail={"with": _counts(rows[1:]), "discarded_at": stamp.isoformat()})
    return shown


# Helpers --------------------------------------------------------------------------------
def _kind(row) -> str:
    return next(k for k, model in KINDS.items() if isinstance(row, model))


def _drafts(session_ids: list[int]) -> list[Note]:
    if not session_ids:
        return []
    return list(db.session.scalars(select(Note).where(
        Note.session_id.in_(session_ids), Note.state == NoteState.DRAFT)))


def _pending_review(note_ids: list[int], course_ids: list[int]) -> bool:
    waiting = Review.status == ReviewStatus.SUBMITTED
    for column, ids in ((Review.note_id, note_ids), (Review.course_id, course_ids)):
        if ids and db.session.scalar(select(Review.id).where(column.in_(ids), waiting)
                                     .limit(1)) is not None:
            return True
    return False


def _discarded_with(row, stamp: datetime) -> list:
    """The rows discarded in the same step as ``row`` (its sessions and their drafts)."""
    hidden = {"include_discarded": True}
    if isinstance(row, Note):
        return []
    if isinstance(row, Course):
        sessions = list(db.session.scalars(select(TherapySession).where(
            TherapySession.course_id == row.id, TherapySession.discarded_at == stamp)
            .execution_options(**hidden)))
    else:
        sessions = [row]
    drafts = list(db.session.scalars(select(Note).where(
        Note.session_id.in_([s.id for s in sessions]), Note.discarded_at == stamp)
        .execution_options(**hidden))) if sessions else []
    return [s for s in sessions if s is not row] + drafts


def _parent(row):
    """The session of a note, the course of a session (relationship loads see discarded
    rows, see ``models._hide_discarded``)."""
    if isinstance(row, Note):
        return row.session
    if isinstance(row, TherapySession):
        return row.course
    return None


def _client_code(row) -> str:
    course = row if isinstance(row, Course) else _parent(row)
    if isinstance(course, TherapySession):
        course = _parent(course)
    return course.client.code


def _label(row) -> str:
    if isinstance(row, Note):
        from .modality import get_registry

        session = _parent(row)
        template = get_registry().get(row.modality, row.template_version)
        title = template.title if template else row.modality
        return _("Draft “%(title)s”, %(kind)s session of %(date)s", title=title,
                 kind=f"{session.kind}", date=day(session.session_date, "dd MMM y"))
    if isinstance(row, TherapySession):
        return _("%(kind)s session of %(date)s", kind=row.kind.capitalize(),
                 date=day(row.session_date, "dd MMM y"))
    return _("Course “%(title)s” from %(date)s", title=row.title,
             date=day(row.starts_on, "dd MMM y"))


def _username(user_id: int | None) -> str:
    user = db.session.get(User, user_id) if user_id else None
    return user.display_name if user else "—"


def _counts(rows: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[_kind(row)] = counts.get(_kind(row), 0) + 1
    return counts
