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

from . import audit
from .extensions import db
from .models import Course, Note, NoteState, Review, ReviewStatus, TherapySession, User
from .timeutil import utcnow

KEEP_DAYS = 30

KINDS: dict[str, type] = {"note": Note, "session": TherapySession, "course": Course}


class DiscardError(Exception):
    """Why this record cannot be discarded or restored; the message says so."""


def refusal(obj: Course | TherapySession | Note) -> str | None:
    """Why ``obj`` cannot be discarded, or None."""
    if isinstance(obj, Note):
        if obj.state != NoteState.DRAFT:
            return ("A signed note stays in the record: add an addendum, or mark it entered "
                    "in error.")
        if _pending_review([obj.id], []):
            return "This draft is waiting for your supervisor's review."
        return None
    sessions = [obj] if isinstance(obj, TherapySession) else list(obj.sessions)
    session_ids = [s.id for s in sessions]
    kept = db.session.scalar(select(func.count(Note.id)).where(
        Note.session_id.in_(session_ids), Note.state != NoteState.DRAFT)) if session_ids else 0
    what = "session" if isinstance(obj, TherapySession) else "course"
    if kept:
        return f"This {what} holds signed notes, which stay in the record."
    drafts = _drafts(session_ids)
    course_ids = [obj.id] if isinstance(obj, Course) else []
    if _pending_review([n.id for n in drafts], course_ids):
        return f"A note of this {what} is waiting for your supervisor's review."
    if isinstance(obj, TherapySession):
        follower = db.session.scalar(select(TherapySession).where(
            TherapySession.follows_id == obj.id).limit(1))
        if follower is not None:
            return (f"The integration session of {follower.session_date:%d %b %Y} follows this "
                    "dosing session: change or discard that one first.")
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
    """Everything discarded on its own (not with a course or session), newest first."""
    now = now or utcnow()
    found: list[Discarded] = []
    for kind, model in KINDS.items():
        query = select(model).where(model.discarded_at.is_not(None)) \
            .order_by(model.discarded_at.desc()).limit(limit) \
            .execution_options(include_discarded=True)
        for row in db.session.scalars(query):
            parent = _parent(row)
            if parent is not None and parent.discarded_at == row.discarded_at:
                continue  # it comes back with what it was discarded with
            found.append(Discarded(
                kind, row.id, _client_code(row), _label(row), row.discarded_at,
                _username(row.discarded_by_id),
                row.discarded_at >= now - timedelta(days=KEEP_DAYS)))
    return sorted(found, key=lambda d: d.discarded_at, reverse=True)[:limit]


def restore(kind: str, record_id: int, admin: User) -> Discarded:
    """Bring back a discarded record with everything discarded with it; the caller commits."""
    model = KINDS.get(kind)
    row = db.session.scalar(select(model).where(
        model.id == record_id, model.discarded_at.is_not(None))
        .execution_options(include_discarded=True)) if model else None
    if row is None:
        raise DiscardError("There is no such discarded record.")
    if row.discarded_at < utcnow() - timedelta(days=KEEP_DAYS):
        raise DiscardError(f"Records can be restored for {KEEP_DAYS} days after they were "
                           "discarded; this one was discarded earlier.")
    parent = _parent(row)
    if parent is not None and parent.discarded_at is not None:
        raise DiscardError("This record was discarded with its session or course: restore "
                           "that instead.")
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
    hidden = {"include_discarded": True}
    if isinstance(row, Note):
        return db.session.scalar(select(TherapySession).where(
            TherapySession.id == row.session_id).execution_options(**hidden))
    if isinstance(row, TherapySession):
        return db.session.scalar(select(Course).where(
            Course.id == row.course_id).execution_options(**hidden))
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
        return f"Draft “{title}”, {session.kind} session of {session.session_date:%d %b %Y}"
    if isinstance(row, TherapySession):
        return f"{row.kind.capitalize()} session of {row.session_date:%d %b %Y}"
    return f"Course “{row.title}” from {row.starts_on:%d %b %Y}"


def _username(user_id: int | None) -> str:
    user = db.session.get(User, user_id) if user_id else None
    return user.display_name if user else "—"


def _counts(rows: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[_kind(row)] = counts.get(_kind(row), 0) + 1
    return counts
