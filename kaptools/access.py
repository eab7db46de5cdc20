"""The one scoped data-access layer for clinical objects.

Every client, course, session and note reaches a view through a ``Scope`` built
from the current user. A foreign id and a missing id both answer 404.
"""

from __future__ import annotations

from flask import abort
from sqlalchemy import Select, false, or_, select

from .extensions import db
from .models import Client, Course, Note, Role, SupervisionRelationship, TherapySession, User
from .timeutil import today


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

    # Lists ----------------------------------------------------------------
    def clients(self, include_archived: bool = False) -> list[Client]:
        query = self._visible_clients()
        if not include_archived:
            query = query.where(Client.archived.is_(False))
        return list(db.session.scalars(query.order_by(Client.code)))

    def sessions_on(self, day) -> list[TherapySession]:
        visible = self._visible_clients().with_only_columns(Client.id)
        query = (
            select(TherapySession)
            .join(Course)
            .where(Course.client_id.in_(visible), TherapySession.session_date == day)
            .order_by(TherapySession.id)
        )
        return list(db.session.scalars(query))

    def my_drafts(self) -> list[Note]:
        """Unsigned notes this user wrote, oldest first."""
        query = (select(Note).where(Note.author_id == self.user.id, Note.state == "draft")
                 .order_by(Note.updated_at))
        return list(db.session.scalars(query))

    # Single objects (404 unless visible) ------------------------------------
    def client(self, client_id: int) -> Client:
        query = self._visible_clients().where(Client.id == client_id)
        return _one_or_404(query)

    def course(self, course_id: int) -> Course:
        visible = self._visible_clients().with_only_columns(Client.id)
        query = select(Course).where(Course.id == course_id, Course.client_id.in_(visible))
        return _one_or_404(query)

    def therapy_session(self, session_id: int) -> TherapySession:
        visible = self._visible_clients().with_only_columns(Client.id)
        query = (
            select(TherapySession)
            .join(Course)
            .where(TherapySession.id == session_id, Course.client_id.in_(visible))
        )
        return _one_or_404(query)

    def note(self, note_id: int) -> Note:
        visible = self._visible_clients().with_only_columns(Client.id)
        query = (
            select(Note)
            .join(TherapySession)
            .join(Course)
            .where(Note.id == note_id, Course.client_id.in_(visible))
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
