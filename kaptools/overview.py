"""Courses at a glance: how many sessions and notes, and where they stand.

Read with a fixed number of aggregate queries, however many courses and notes there are,
so a client's page costs the same for a client seen once as for one seen for years.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select

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
    sessions = db.session.execute(
        select(TherapySession.course_id, TherapySession.id, TherapySession.session_date,
               TherapySession.kind)
        .where(TherapySession.course_id.in_(course_ids))
        .order_by(TherapySession.session_date, TherapySession.id))
    for course_id, session_id, on, kind in sessions:
        found[course_id].sessions.append(SessionPoint(session_id, on, kind))
        found[course_id].kinds[kind] += 1
    notes = db.session.execute(
        select(TherapySession.course_id, Note.state, func.count(Note.id))
        .join(Note, Note.session_id == TherapySession.id)
        .where(TherapySession.course_id.in_(course_ids))
        .group_by(TherapySession.course_id, Note.state))
    for course_id, state, count in notes:
        found[course_id].notes[state] += count
    return found


DRAFT, SIGNED = NoteState.DRAFT, NoteState.SIGNED
