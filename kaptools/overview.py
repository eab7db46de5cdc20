"""Courses at a glance: how many sessions and notes, where they stand, and which outcome
measures were signed.

Read with one aggregate query, however many courses and notes there are,
so a client's page costs the same for a client seen once as for one seen for years.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import and_, bindparam, case, func, select

from .extensions import db
from .models import Note, NoteState, TherapySession
from .outcomes import MEASURES


@dataclass(frozen=True)
class SessionPoint:
    """What a chart needs of a session: when, and what kind."""

    id: int
    session_date: date
    kind: str


@dataclass(frozen=True)
class SignedMeasure:
    """A signed outcome measure: what ``outcomes.outcome_points`` scores (once per note)."""

    course_id: int
    session_id: int
    session_date: date
    id: int  # the note's
    content_hash: str
    modality: str


@dataclass
class CourseOverview:
    sessions: list[SessionPoint] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)  # by state
    # The signed notes of the outcome measures (``outcomes.MEASURES``), in session order.
    measures: list[SignedMeasure] = field(default_factory=list)

    @property
    def last(self) -> date | None:
        return self.sessions[-1].session_date if self.sessions else None


def course_overviews(course_ids: list[int]) -> dict[int, CourseOverview]:
    found = {course_id: CourseOverview() for course_id in course_ids}
    if not course_ids:
        return found
    # One query: each session, with its notes counted by state (a session with no note
    # comes once, with no state), and each signed outcome measure on a row of its own; the
    # rows of a session come together.
    rows = db.session.execute(_SESSIONS_AND_NOTES, {"course_ids": list(course_ids)})
    last = None
    for course_id, session_id, on, kind, state, note_id, content_hash, modality, count in rows:
        overview = found[course_id]
        if session_id != last:
            overview.sessions.append(SessionPoint(session_id, on, kind))
            overview.kinds[kind] += 1
            last = session_id
        if state is not None:
            overview.notes[state] += count
        if note_id is not None:
            overview.measures.append(
                SignedMeasure(course_id, session_id, on, note_id, content_hash, modality))
    return found


def _sessions_and_notes():
    # A signed outcome measure keeps its id, hash and form: it is a group of its own.
    # Worked out per note in a subquery, so that the outer GROUP BY names plain columns.
    measure = and_(Note.state == NoteState.SIGNED, Note.modality.in_(list(MEASURES)))
    notes = (
        select(TherapySession.course_id, TherapySession.id.label("session_id"),
               TherapySession.session_date, TherapySession.kind, Note.state,
               Note.id.label("note_id"),
               case((measure, Note.id)).label("measure_id"),
               case((measure, Note.content_hash)).label("measure_hash"),
               case((measure, Note.modality)).label("measure_modality"))
        .outerjoin(Note, Note.session_id == TherapySession.id)
        .where(TherapySession.course_id.in_(bindparam("course_ids", expanding=True)))
        .subquery())
    groups = (notes.c.course_id, notes.c.session_id, notes.c.session_date, notes.c.kind,
              notes.c.state, notes.c.measure_id, notes.c.measure_hash,
              notes.c.measure_modality)
    return (select(*groups, func.count(notes.c.note_id)).group_by(*groups)
            .order_by(notes.c.session_date, notes.c.session_id, notes.c.measure_id))


# Built once: every client page asks for it.
_SESSIONS_AND_NOTES = _sessions_and_notes()

DRAFT, SIGNED = NoteState.DRAFT, NoteState.SIGNED
