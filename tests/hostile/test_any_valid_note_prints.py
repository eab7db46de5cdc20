"""Whatever valid answers a note holds, every page and document shows it (acceptance 2).

Hypothesis draws answers for every shipped template — empty drafts, text at its limit,
deeply nested Markdown, long bracket runs, rows that point at themselves — and every
page that shows the note, and every summary, handout and packet of its session and
course, answers 200. A second test fills every template to its limits and prints PDFs.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaptools import notes
from kaptools.extensions import db
from kaptools.modality.answers import round_trip, validate_answers
from kaptools.models import Course, TherapySession, User
from tests import factories
from tests.conftest import Browser
from tests.hostile.conftest import REGISTRY
from tests.strategies import answers_at_limits, answers_for

TEMPLATES = sorted(REGISTRY.current(), key=lambda t: t.slug)
KINDS = ("summary", "handout", "packet")
# Each example's session gets a day in a fixed stretch of the past, never after
# 27 October 2026: a note is signed only on or after its session's day, and a counter that
# grew without end put the later examples' sessions in the future once that day came.
_days = itertools.cycle(range(300))


@pytest.fixture
def desk(app):
    """Maya signed in, with a course whose sessions the examples add notes to."""
    with app.app_context():
        maya = factories.user("maya")
        ids = factories.client_with_course(maya)
        factories.screened_and_consented(ids["course"], maya)
    browser = Browser(app.test_client())
    browser.login("maya", factories.PASSWORD)
    return app, browser, ids


def store(app, course_id: int, template, answers: dict) -> tuple[int, int, bool]:
    """A new session with one note of these answers; signed when it may be."""
    normal = round_trip(template, answers, complete=False)
    with app.app_context():
        course = db.session.get(Course, course_id)
        author = db.session.get(User, course.client.therapist_id)
        sess = TherapySession(course=course, kind="integration",
                              session_date=date(2026, 1, 1) + timedelta(days=next(_days)))
        db.session.add(sess)
        db.session.flush()
        private_keys = {f.key for f in template.fields if f.audience == "private"}
        note = notes.create_note(sess, author, template,
                                 {k: v for k, v in normal.items() if k not in private_keys},
                                 {k: v for k, v in normal.items() if k in private_keys})
        signed = not validate_answers(template, normal)
        if signed:
            notes.sign(note, author)
        db.session.commit()
        return sess.id, note.id, signed


def views(ids: dict, session_id: int, note_id: int, pdf: bool) -> list[str]:
    urls = [f"/notes/{note_id}", f"/sessions/{session_id}", f"/courses/{ids['course']}",
            f"/clients/{ids['client']}"]
    for kind in KINDS:
        for scope in (f"/sessions/{session_id}", f"/courses/{ids['course']}"):
            urls.append(f"{scope}/documents/{kind}")
            if pdf:
                urls.append(f"{scope}/documents/{kind}.pdf")
    return urls


@pytest.mark.parametrize("template", TEMPLATES, ids=[t.slug for t in TEMPLATES])
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_any_valid_note_is_shown_and_printed(desk, template, data):
    app, browser, ids = desk
    answers = data.draw(answers_for(template), label="answers")
    session_id, note_id, _ = store(app, ids["course"], template, answers)
    for url in views(ids, session_id, note_id, pdf=False):
        resp = browser.get(url)
        assert resp.status_code == 200, (url, resp.status_code)


@pytest.mark.parametrize("template", TEMPLATES, ids=[t.slug for t in TEMPLATES])
def test_a_note_filled_to_its_limits_prints(desk, template):
    app, browser, ids = desk
    session_id, note_id, signed = store(app, ids["course"], template,
                                        answers_at_limits(template))
    assert signed, validate_answers(template, answers_at_limits(template))
    for url in views(ids, session_id, note_id, pdf=True):
        if "/courses/" in url and url.endswith(".pdf"):
            continue  # the course's documents are the session's plus the sample note
        resp = browser.get(url)
        assert resp.status_code == 200, (url, resp.status_code)
