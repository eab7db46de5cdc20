"""Outcome points: each signed measure's total, scored once per process and kept under the
note's content hash (kaptools.outcomes.courses_outcomes)."""

from __future__ import annotations

from sqlalchemy import event, select

from kaptools import notes, outcomes
from kaptools.demo import load_demo
from kaptools.extensions import db
from kaptools.modality import get_registry
from kaptools.modality.answers import compute_scores
from kaptools.models import Course, Note, NoteState, SessionKind, TherapySession, User
from kaptools.timeutil import today


def reference(course_ids) -> dict:
    """The points as the definition gives them: every signed measure's complete total, in
    session order, scored from its stored answers."""
    found: dict = {}
    rows = db.session.execute(
        select(TherapySession.course_id, TherapySession.id, TherapySession.session_date, Note)
        .join(Note, Note.session_id == TherapySession.id)
        .where(TherapySession.course_id.in_(course_ids), Note.state == NoteState.SIGNED,
               Note.modality.in_(list(outcomes.MEASURES)))
        .order_by(TherapySession.session_date, TherapySession.id, Note.id))
    for course_id, session_id, on, note in rows:
        template = get_registry().get(note.modality, note.template_version)
        for score in compute_scores(template, note.answers):
            if score.key == "total" and score.complete:
                found.setdefault(course_id, []).append(outcomes.OutcomePoint(
                    outcomes.MEASURES[note.modality], session_id, on, score.total,
                    score.max_total, score.band))
    return found


def statements_during(call) -> list[str]:
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        call()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return seen


def test_points_are_the_signed_totals_and_a_second_page_reads_no_answers(app):
    with app.app_context():
        load_demo()
        get_registry().scored.clear()
        ids = list(db.session.scalars(select(Course.id)))
        first = outcomes.courses_outcomes(ids)
        assert first == reference(ids) and sum(map(len, first.values())) >= 6
        again: list = []
        sent = statements_during(lambda: again.append(outcomes.courses_outcomes(ids)))
        assert again[0] == first
        assert len(sent) == 1 and "answers" not in sent[0]  # scored once, kept

        # A new signed measure is scored; one entered in error leaves the points.
        course = db.session.scalar(select(Course).where(Course.format == "intensive"))
        maya = db.session.scalar(select(User).where(User.username == "maya"))
        later = TherapySession(course=course, kind=SessionKind.ASSESSMENT,
                               session_date=today())
        db.session.add(later)
        db.session.flush()
        note = notes.create_note(later, maya, get_registry().latest("phq-9"),
                                 {f"q{i}": 1 for i in range(1, 11)}, {})
        notes.sign(note, maya)
        db.session.commit()
        added = outcomes.courses_outcomes(ids)
        assert added == reference(ids)
        assert [p.total for p in added[course.id] if p.session_id == later.id] == [9]
        earlier = next(n for n in db.session.scalars(
            select(Note).join(TherapySession).where(TherapySession.course_id == course.id,
                                                    Note.modality == "gad-7",
                                                    Note.state == NoteState.SIGNED)))
        notes.mark_entered_in_error(earlier, maya, "wrong client")
        db.session.commit()
        dropped = outcomes.courses_outcomes(ids)
        assert dropped == reference(ids)
        assert sum(map(len, dropped.values())) == sum(map(len, added.values())) - 1


def test_a_full_store_loses_no_point(app, monkeypatch):
    """Past its bound the store is emptied, even in the middle of a page: every point of
    that page still comes out."""
    monkeypatch.setattr(outcomes, "_SCORED_AT_MOST", 3)
    with app.app_context():
        load_demo()
        ids = list(db.session.scalars(select(Course.id)))
        expected = reference(ids)
        assert sum(map(len, expected.values())) > 3
        for _ in range(3):
            assert outcomes.courses_outcomes(ids) == expected
            assert len(get_registry().scored) <= sum(map(len, expected.values()))


def test_the_client_page_reads_the_same_points_with_its_course_overview(app):
    """The client's page takes its points from the signed measures its course overview
    reads (``overview.course_overviews``): the same points, in the same order, as the
    definition gives them, without a statement of their own."""
    from kaptools.overview import course_overviews

    with app.app_context():
        load_demo()
        get_registry().scored.clear()
        ids = list(db.session.scalars(select(Course.id)))
        overviews = course_overviews(ids)
        signed = [m for course in overviews.values() for m in course.measures]
        assert outcomes.outcome_points(signed) == reference(ids)
        assert sum(map(len, reference(ids).values())) >= 6
        # Each measure once, and the sessions' note counts as before: every note counted.
        assert len({m.id for m in signed}) == len(signed)
        assert sum(sum(o.notes.values()) for o in overviews.values()) == db.session.scalar(
            select(db.func.count(Note.id)).join(TherapySession)
            .where(TherapySession.course_id.in_(ids), Note.discarded_at.is_(None),
                   TherapySession.discarded_at.is_(None)))
