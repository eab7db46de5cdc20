"""What list pages show, read as plain rows: one query a list, only the columns shown.

Lists (today's sessions, drafts, clients, reviews) are the busiest pages; reading them
as rows rather than as objects with their relationships keeps them cheap and their cost
the same at any size of database. Every query goes through the user's scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import partial

from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy import null as sa_null
from sqlalchemy.orm import aliased

from .access import PAGE_SIZE, Scope, by_role
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
class ClientListRow:
    id: int
    code: str
    display_name: str | None
    archived: bool
    therapist: str
    courses: int


@dataclass(frozen=True)
class Found:
    """One page of a list: its rows, which page it is, and how many rows there are in all."""

    rows: list
    page: int
    total: int
    per_page: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


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


_TODAYS_SESSIONS = by_role(lambda visible: (
    select(TherapySession.id, TherapySession.kind, TherapySession.summary, Client.code)
    .join(Course, Course.id == TherapySession.course_id)
    .join(Client, Client.id == Course.client_id)
    .where(TherapySession.session_date == bindparam("day"), visible)
    .order_by(TherapySession.id).limit(bindparam("limit"))))


def todays_sessions(scope: Scope, day: date, limit: int = 50) -> list[SessionRow]:
    if (prepared := scope.prepared(_TODAYS_SESSIONS)) is None:
        return []
    statement, params = prepared
    rows = db.session.execute(statement, {**params, "day": day, "limit": limit})
    return [SessionRow(*row) for row in rows]


def _mine(note) -> tuple:
    return note.author_id == bindparam("author"), note.state == NoteState.DRAFT


_COUNTED = aliased(Note)
# How many there are, in the same statement (evaluated once, from the index of notes in
# use): counting in a window over the rows would join every draft to its session first.
_DRAFTS = (select(Note.id, Note.modality, Note.template_version, Client.code,
                  TherapySession.session_date,
                  select(func.count()).select_from(_COUNTED).where(*_mine(_COUNTED))
                  .scalar_subquery())
           .join(TherapySession, TherapySession.id == Note.session_id)
           .join(Course, Course.id == TherapySession.course_id)
           .join(Client, Client.id == Course.client_id)
           .where(*_mine(Note)).order_by(Note.updated_at).limit(bindparam("limit")))


def drafts(scope: Scope, limit: int = 20) -> tuple[list[DraftRow], int]:
    """The user's unsigned notes, oldest first, and how many there are."""
    rows = db.session.execute(_DRAFTS, {"author": scope.user.id, "limit": limit}).all()
    return [DraftRow(*row[:-1]) for row in rows], rows[0][-1] if rows else 0


_RECENT_CLIENTS = by_role(lambda visible: (
    select(Client.id, Client.code, Client.display_name, User.display_name,
           Client.therapist_id == bindparam("scope_user"))
    .join(User, User.id == Client.therapist_id)
    .where(visible, Client.archived.is_(False))
    .order_by(Client.id.desc()).limit(bindparam("limit"))))


def recent_clients(scope: Scope, limit: int = 12) -> list[ClientRow]:
    if (prepared := scope.prepared(_RECENT_CLIENTS)) is None:
        return []
    statement, params = prepared
    rows = db.session.execute(statement, {**params, "limit": limit})
    return [ClientRow(*row) for row in rows]


def _clients_page(visible, include_archived: bool) -> Select:
    shown = (visible,) if include_archived else (visible, Client.archived.is_(False))
    courses = (select(func.count(Course.id)).where(Course.client_id == Client.id)
               .correlate(Client).scalar_subquery())
    # How many there are, in the same statement (not correlated: worked out once).
    total = select(func.count(Client.id)).where(*shown).correlate(None).scalar_subquery()
    return (select(Client.id, Client.code, Client.display_name, Client.archived,
                   User.display_name, courses, total)
            .join(User, User.id == Client.therapist_id)
            .where(*shown).order_by(Client.code, Client.id)
            .limit(bindparam("limit")).offset(bindparam("offset")))


_CLIENTS_PAGE = {archived: by_role(partial(_clients_page, include_archived=archived))
                 for archived in (False, True)}


def clients_page(scope: Scope, page: int = 1, include_archived: bool = False,
                 per_page: int = PAGE_SIZE) -> Found:
    """One page of the visible clients by code, with each one's number of courses."""
    page = max(1, page)
    if (prepared := scope.prepared(_CLIENTS_PAGE[include_archived])) is None:
        return Found([], page, 0, per_page)
    statement, params = prepared
    rows = db.session.execute(statement, {**params, "limit": per_page,
                                          "offset": (page - 1) * per_page}).all()
    # No rows: none visible, or a page past the last (an old link); the page says so.
    return Found([ClientListRow(*row[:-1]) for row in rows], page,
                 rows[0][-1] if rows else 0, per_page)


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


def review_rows(scope: Scope, ids_query: Select, params: dict) -> list[ReviewRow]:
    """The reviews ``ids_query`` finds whose subjects the user may still see, in its order.

    First the matching ids (one table, its indexes; usually none), then what the list
    shows of them, in two plain queries (reviews of notes, reviews of courses).
    """
    ids = db.session.scalars(ids_query, params).all()
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


def _review_ids(*where, newest) -> Select:
    return select(Review.id).where(*where).order_by(newest.desc()).limit(bindparam("limit"))


_WAITING = _review_ids(Review.reviewer_id == bindparam("user"),
                       Review.status == ReviewStatus.SUBMITTED, newest=Review.submitted_at)
_RETURNED = _review_ids(Review.submitted_by_id == bindparam("user"),
                        Review.status == ReviewStatus.RETURNED, newest=Review.decided_at)


def waiting_for(scope: Scope, limit: int = 20) -> list[ReviewRow]:
    """Reviews waiting for this supervisor, newest first."""
    return review_rows(scope, _WAITING, {"user": scope.user.id, "limit": limit})


def returned_to(scope: Scope, limit: int = 20) -> list[ReviewRow]:
    """The user's notes and courses a supervisor returned, not yet sent again."""
    returned = review_rows(scope, _RETURNED, {"user": scope.user.id, "limit": limit})
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
