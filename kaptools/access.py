"""The one scoped data-access layer for clinical objects.

Every client, course, session and note reaches a view through a ``Scope`` built
from the current user. A foreign id and a missing id both answer 404.
"""

from __future__ import annotations

from flask import abort
from sqlalchemy import Select, bindparam, false, or_, select
from sqlalchemy.orm import joinedload

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
        return _supervisee_ids(self.user.id, today())

    def _visible_clients(self) -> Select:
        if self.user.role == Role.ADMIN or not self.user.active:
            return select(Client).where(false())
        return select(Client).where(_visible(self.user.role, self.user.id, today()))

    # Lists (each one query, whatever their length) --------------------------------
    def visible_client_ids(self) -> Select:
        return self._visible_clients().with_only_columns(Client.id)

    # Single objects (404 unless visible) ------------------------------------
    # ``options`` are loader options: what the page will show, loaded with the object.
    def client(self, client_id: int, *options) -> Client:
        if not options and (prepared := self.prepared(_CLIENT)) is not None:
            return _one_or_404(prepared[0], {**prepared[1], "object_id": client_id})
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
        if not options and (prepared := self.prepared(_NOTE)) is not None:
            return _one_or_404(prepared[0], {**prepared[1], "object_id": note_id})
        query = (
            select(Note)
            .join(TherapySession)
            .join(Course)
            .where(Note.id == note_id, Course.client_id.in_(self.visible_client_ids()))
            .options(joinedload(Note.session).joinedload(TherapySession.course)
                     .joinedload(Course.client), *options)
        )
        return _one_or_404(query)

    def rows(self, statements: dict[str, Select], object_id: int, unique: bool = False
             ) -> list:
        """The rows of ``statements`` (built by ``by_role``, with an ``object_id``
        parameter) for this object; 404 unless the user may see it. For a note's
        statements (``note_statements``): each row the note, then the columns asked for
        (one row, or one per row of anything joined in). ``unique``: a collection is
        joined in, so an object comes on several rows."""
        if (prepared := self.prepared(statements)) is None:
            abort(404)  # no client is visible to an administrator or a deactivated account
        result = db.session.execute(prepared[0], {**prepared[1], "object_id": object_id})
        rows = (result.unique() if unique else result).all()
        if not rows:
            abort(404)
        return rows

    def prepared(self, statements: dict[str, Select]) -> tuple[Select, dict] | None:
        """The statement built once for this user's role (see ``by_role``), and its
        parameters (None for an administrator or a deactivated account: they see no
        client)."""
        if not self.user.active or self.user.role not in statements:
            return None
        return statements[self.user.role], {"scope_user": self.user.id, "scope_day": today()}

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


def _supervisee_ids(supervisor_id, on) -> Select:
    """Who ``supervisor_id`` supervises on the day ``on`` (values or bound parameters)."""
    return select(SupervisionRelationship.supervisee_id).where(
        SupervisionRelationship.supervisor_id == supervisor_id,
        SupervisionRelationship.starts_on <= on,
        or_(SupervisionRelationship.ends_on.is_(None), SupervisionRelationship.ends_on >= on),
    )


def _visible(role: str, user_id, on):
    """The clients a therapist or supervisor sees (values or bound parameters)."""
    owned = Client.therapist_id == user_id
    if role == Role.SUPERVISOR:
        return or_(owned, Client.therapist_id.in_(_supervisee_ids(user_id, on)))
    return owned


def by_role(build) -> dict[str, Select]:
    """``build(which clients are visible)`` for each role that sees clients, built once,
    with the user and the day as parameters: the lookups every record page starts with,
    and the lists of the busiest pages. The condition is on ``Client``; ``Scope.prepared``
    picks the user's statement and gives its parameters.

    A statement built once is not built again on every request, and SQLAlchemy keeps the
    cache key it worked out for it: on a page of a few short queries, building each
    query and working out its key cost about as much as running it."""
    user, on = bindparam("scope_user"), bindparam("scope_day")
    return {role: build(_visible(role, user, on)) for role in (Role.THERAPIST, Role.SUPERVISOR)}


_CLIENT = by_role(lambda visible: select(Client).where(visible,
                                                       Client.id == bindparam("object_id")))
# The client's page (``risk.client_with_courses_and_flag``): a client with their therapist
# and courses, joined in the same statement (a client has a handful, and the page is one
# round trip shorter than with a second SELECT for them).
_WITH_COURSES = (joinedload(Client.therapist), joinedload(Client.courses))
CLIENT_WITH_COURSES = {role: query.options(*_WITH_COURSES) for role, query in _CLIENT.items()}


def note_statements(*columns) -> dict[str, Select]:
    """The scoped lookup of one note (with its session, course and client), and
    ``columns`` worked out in the same statement, built once for each role (see
    ``Scope.rows``). A column may use the ``scope_user`` parameter. The statement
    starts from the note explicitly, so that a table joined in later (``notes.note_page``)
    leaves no doubt which side the session is joined from."""
    return by_role(lambda visible: (
        select(Note, *columns).select_from(Note).join(TherapySession).join(Course)
        .where(Note.id == bindparam("object_id"),
               Course.client_id.in_(select(Client.id).where(visible)))
        .options(joinedload(Note.session).joinedload(TherapySession.course)
                 .joinedload(Course.client))))


_NOTE = note_statements()


def _one_or_404(query: Select, params: dict | None = None):
    # unique(): an object with a collection joined in comes on several rows.
    found = db.session.execute(query, params).unique().scalar_one_or_none()
    if found is None:
        abort(404)
    return found
