"""Courses at a glance: how many sessions and notes, and where they stand.

Read with one aggregate query, however many courses and notes there are,
so a client's page costs the same for a client seen once as for one seen for years.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import bindparam, func, select

from .extensions import db
from .models import Note, NoteState, TherapySession


@dataclass(frozen=True)
class SessionPoint:
    """What a chart needs of a session: when, and what kind."""

    id: int
    session_date: date
    kind: str


@dataclass
class CourseOverview:
    sessions: list[SessionPoint] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)  # by state

    @property
    def last(self) -> date | None:
        return self.sessions[-1].session_date if self.sessions else None


def course_overviews(course_ids: list[int]) -> dict[int, CourseOverview]:
    found = {course_id: CourseOverview() for course_id in course_ids}
    if not course_ids:
        return found
    # One query: each session, with its notes counted by state (a session with no note
    # comes once, with no state); the rows of a session come together.
    rows = db.session.execute(_SESSIONS_AND_NOTES, {"course_ids": list(course_ids)})
    last = None
    for course_id, session_id, on, kind, state, count in rows:
        overview = found[course_id]
        if session_id != last:
            overview.sessions.append(SessionPoint(session_id, on, kind))
            overview.kinds[kind] += 1
            last = session_id
        if state is not None:
            overview.notes[state] += count
    return found


# Built once: every client page asks for it.
_SESSIONS_AND_NOTES = (
    select(TherapySession.course_id, TherapySession.id, TherapySession.session_date,
           TherapySession.kind, Note.state, func.count(Note.id))
    .outerjoin(Note, Note.session_id == TherapySession.id)
    .where(TherapySession.course_id.in_(bindparam("course_ids", expanding=True)))
    .group_by(TherapySession.course_id, TherapySession.id, TherapySession.session_date,
              TherapySession.kind, Note.state)
    .order_by(TherapySession.session_date, TherapySession.id))

DRAFT, SIGNED = NoteState.DRAFT, NoteState.SIGNED
