"""The one scoped data-access layer for clinical objects.

Every client, course, session and note reaches a view through a ``Scope`` built
from the current user. A foreign id and a missing id both answer 404.
"""

from __future__ import annotations

from flask import abort
from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.orm import defer, joinedload, with_expression

from .extensions import db
from .models import Client, Course, Note, Role, SupervisionRelationship, TherapySession, User
from .timeutil import today

# Lists on pages are bounded: a page shows this many rows at most (and says how many more).
PAGE_SIZE = 50


class Scope:
    """What one user may see and change."""

    def __init__(self, user: User) -> None:
        self.user = user

    # Who is visible -------------------------------------------------------
    def supervisee_ids(self) -> Select:
        on = today()
        return select(SupervisionRelationship.supervisee_id).where(
            SupervisionRelationship.supervisor_id == self.user.id,
            SupervisionRelationship.starts_on <= on,
            or_(SupervisionRelationship.ends_on.is_(None), SupervisionRelationship.ends_on >= on),
        )

    def _visible_clients(self) -> Select:
        if self.user.role == Role.ADMIN or not self.user.active:
            return select(Client).where(false())
        owned = Client.therapist_id == self.user.id
        if self.user.role == Role.SUPERVISOR:
            return select(Client).where(or_(owned, Client.therapist_id.in_(self.supervisee_ids())))
        return select(Client).where(owned)

    # Lists (each one query, whatever their length) --------------------------------
    def visible_client_ids(self) -> Select:
        return self._visible_clients().with_only_columns(Client.id)

    def clients_page(self, page: int = 1, include_archived: bool = False,
                     per_page: int = PAGE_SIZE):
        """One page of the visible clients by code, with each one's number of courses."""
        courses = (select(func.count(Course.id)).where(Course.client_id == Client.id)
                   .correlate(Client).scalar_subquery())
        query = self._visible_clients().options(joinedload(Client.therapist),
                                                with_expression(Client.course_count, courses))
        if not include_archived:
            query = query.where(Client.archived.is_(False))
        return db.paginate(query.order_by(Client.code), page=page, per_page=per_page,
                           error_out=False, count=True)

    def recent_clients(self, limit: int = 12) -> list[Client]:
        """The clients whose records changed most recently."""
        query = self._visible_clients().where(Client.archived.is_(False)) \
            .options(joinedload(Client.therapist)).order_by(Client.id.desc()).limit(limit)
        return list(db.session.scalars(query))

    def sessions_on(self, day, limit: int = PAGE_SIZE) -> list[TherapySession]:
        query = (
            select(TherapySession)
            .join(Course)
            .where(Course.client_id.in_(self.visible_client_ids()),
                   TherapySession.session_date == day)
            .options(joinedload(TherapySession.course).joinedload(Course.client))
            .order_by(TherapySession.id).limit(limit)
        )
        return list(db.session.scalars(query))

    def my_drafts(self, limit: int = 20) -> tuple[list[Note], int]:
        """Unsigned notes this user wrote, oldest first (at most ``limit``), and how many."""
        where = (Note.author_id == self.user.id, Note.state == "draft")
        query = (select(Note).where(*where)
                 .options(defer(Note.answers),
                          joinedload(Note.session).joinedload(TherapySession.course)
                          .joinedload(Course.client))
                 .order_by(Note.updated_at).limit(limit))
        total = db.session.scalar(select(func.count(Note.id)).where(*where))
        return list(db.session.scalars(query)), total

    # Single objects (404 unless visible) ------------------------------------
    # ``options`` are loader options: what the page will show, loaded with the object.
    def client(self, client_id: int, *options) -> Client:
        query = self._visible_clients().where(Client.id == client_id).options(*options)
        return _one_or_404(query)

    def course(self, course_id: int, *options) -> Course:
        query = select(Course).where(Course.id == course_id,
                                     Course.client_id.in_(self.visible_client_ids()))
        return _one_or_404(query.options(joinedload(Course.client), *options))

    def therapy_session(self, session_id: int, *options) -> TherapySession:
        query = (
            select(TherapySession)
            .join(Course)
            .where(TherapySession.id == session_id,
                   Course.client_id.in_(self.visible_client_ids()))
            .options(joinedload(TherapySession.course).joinedload(Course.client), *options)
        )
        return _one_or_404(query)

    def note(self, note_id: int, *options) -> Note:
        query = (
            select(Note)
            .join(TherapySession)
            .join(Course)
            .where(Note.id == note_id, Course.client_id.in_(self.visible_client_ids()))
            .options(joinedload(Note.session).joinedload(TherapySession.course)
                     .joinedload(Course.client), *options)
        )
        return _one_or_404(query)

    # Write access ---------------------------------------------------------
    def owns(self, client: Client) -> bool:
        return client.therapist_id == self.user.id

    def writable_client(self, client_id: int) -> Client:
        client = self.client(client_id)
        self.require_owner(client)
        return client

    def writable_course(self, course_id: int) -> Course:
        course = self.course(course_id)
        self.require_owner(course.client)
        return course

    def writable_session(self, session_id: int) -> TherapySession:
        therapy_session = self.therapy_session(session_id)
        self.require_owner(therapy_session.course.client)
        return therapy_session

    def writable_note(self, note_id: int) -> Note:
        note = self.note(note_id)
        self.require_owner(note.session.course.client)
        return note

    def require_owner(self, client: Client) -> None:
        # Visible but not owned (a supervisor reading a supervisee's client).
        if not self.owns(client):
            abort(403)


def _one_or_404(query: Select):
    found = db.session.scalar(query)
    if found is None:
        abort(404)
    return found
