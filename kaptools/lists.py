"""What list pages show, read as plain rows: one query a list, only the columns shown.

Lists (today's sessions, drafts, clients, reviews) are the busiest pages; reading them
as rows rather than as objects with their relationships keeps them cheap and their cost
the same at any size of database. Every query goes through the user's scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, or_, select
from sqlalchemy import null as sa_null
from sqlalchemy.orm import aliased

from .access import Scope
from .extensions import db
from .models import (
    Client,
    Course,
    Note,
    NoteState,
    Review,
    ReviewComment,
    ReviewStatus,
    TherapySession,
    User,
)


@dataclass(frozen=True)
class SessionRow:
    id: int
    kind: str
    summary: str
    client_code: str


@dataclass(frozen=True)
class DraftRow:
    id: int
    modality: str
    template_version: int
    client_code: str
    session_date: date


@dataclass(frozen=True)
class ClientRow:
    id: int
    code: str
    display_name: str | None
    therapist: str
    own: bool


@dataclass(frozen=True)
class ReviewRow:
    id: int
    note_id: int | None
    course_id: int | None
    modality: str | None
    template_version: int | None
    course_title: str
    client_code: str
    submitter: str
    reviewer: str
    round: int
    status: str
    submitted_at: datetime
    comments: int


def todays_sessions(scope: Scope, day: date, limit: int = 50) -> list[SessionRow]:
    rows = db.session.execute(
        select(TherapySession.id, TherapySession.kind, TherapySession.summary, Client.code)
        .join(Course, Course.id == TherapySession.course_id)
        .join(Client, Client.id == Course.client_id)
        .where(TherapySession.session_date == day, Client.id.in_(scope.visible_client_ids()))
        .order_by(TherapySession.id).limit(limit))
    return [SessionRow(*row) for row in rows]


def drafts(scope: Scope, limit: int = 20) -> tuple[list[DraftRow], int]:
    """The user's unsigned notes, oldest first, and how many there are."""
    where = (Note.author_id == scope.user.id, Note.state == NoteState.DRAFT)
    rows = db.session.execute(
        select(Note.id, Note.modality, Note.template_version, Client.code,
               TherapySession.session_date)
        .join(TherapySession, TherapySession.id == Note.session_id)
        .join(Course, Course.id == TherapySession.course_id)
        .join(Client, Client.id == Course.client_id)
        .where(*where).order_by(Note.updated_at).limit(limit))
    total = db.session.scalar(select(func.count()).select_from(Note).where(*where))
    return [DraftRow(*row) for row in rows], total


def recent_clients(scope: Scope, limit: int = 12) -> list[ClientRow]:
    rows = db.session.execute(
        select(Client.id, Client.code, Client.display_name, User.display_name,
               Client.therapist_id == scope.user.id)
        .join(User, User.id == Client.therapist_id)
        .where(Client.id.in_(scope.visible_client_ids()), Client.archived.is_(False))
        .order_by(Client.id.desc()).limit(limit))
    return [ClientRow(*row) for row in rows]


def _review_columns(course, client):
    submitter, reviewer = aliased(User), aliased(User)
    comments = (select(func.count(ReviewComment.id))
                .where(ReviewComment.review_id == Review.id).correlate(Review)
                .scalar_subquery())
    columns = (Review.id, Review.note_id, Review.course_id, course.title, client.code,
               submitter.display_name, reviewer.display_name, Review.round, Review.status,
               Review.submitted_at, comments)
    joins = ((submitter, submitter.id == Review.submitted_by_id),
             (reviewer, reviewer.id == Review.reviewer_id))
    return columns, joins


def review_rows(scope: Scope, *where, newest=Review.submitted_at, limit: int = 50
                ) -> list[ReviewRow]:
    """Reviews matching ``where`` whose subjects the user may still see, newest first.

    First the matching ids (one table, its indexes; usually none), then what the list
    shows of them, in two plain queries (reviews of notes, reviews of courses).
    """
    ids = db.session.scalars(select(Review.id).where(*where).order_by(newest.desc())
                             .limit(limit)).all()
    if not ids:
        return []
    visible = scope.visible_client_ids()
    columns, joins = _review_columns(Course, Client)
    of_notes = (select(*columns[:3], Note.modality, Note.template_version, *columns[3:])
                .join(Note, Note.id == Review.note_id)
                .join(TherapySession, TherapySession.id == Note.session_id)
                .join(Course, Course.id == TherapySession.course_id)
                .join(Client, Client.id == Course.client_id))
    of_courses = (select(*columns[:3], sa_null(), sa_null(), *columns[3:])
                  .join(Course, Course.id == Review.course_id)
                  .join(Client, Client.id == Course.client_id))
    found = {}
    for query in (of_notes, of_courses):
        for target, on in joins:
            query = query.join(target, on)
        for row in db.session.execute(query.where(Review.id.in_(ids),
                                                  Client.id.in_(visible))):
            found[row[0]] = ReviewRow(*row)
    return [found[i] for i in ids if i in found]


def waiting_for(scope: Scope, limit: int = 20) -> list[ReviewRow]:
    """Reviews waiting for this supervisor."""
    return review_rows(scope, Review.reviewer_id == scope.user.id,
                       Review.status == ReviewStatus.SUBMITTED, limit=limit)


def returned_to(scope: Scope, limit: int = 20) -> list[ReviewRow]:
    """The user's notes and courses a supervisor returned, not yet sent again."""
    returned = review_rows(scope, Review.submitted_by_id == scope.user.id,
                           Review.status == ReviewStatus.RETURNED,
                           newest=Review.decided_at, limit=limit)
    if not returned:
        return []
    # Only the latest round of each note or course counts (a later one may be waiting).
    note_ids = [r.note_id for r in returned if r.note_id is not None]
    course_ids = [r.course_id for r in returned if r.course_id is not None]
    latest = {(note_id, course_id): last for note_id, course_id, last in db.session.execute(
        select(Review.note_id, Review.course_id, func.max(Review.id))
        .where(Review.submitted_by_id == scope.user.id,
               or_(Review.note_id.in_(note_ids), Review.course_id.in_(course_ids)))
        .group_by(Review.note_id, Review.course_id))}
    return [r for r in returned if latest.get((r.note_id, r.course_id)) == r.id]
