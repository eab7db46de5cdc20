"""Pages do not grow with the data: the same statements per page at any size (issue 10).

Every page and document is requested on the demo database, then again after 2,000 more
notes across many clients and sessions (some of them Maya's own): each answers with
exactly as many SQL statements as before. A page that ran one query per row would fail.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
from sqlalchemy import event, select

from kaptools.demo import load_demo
from kaptools.extensions import db
from kaptools.models import Course, Note, Review
from tests.bench.data import grow
from tests.conftest import Browser


@contextmanager
def counting(app):
    """Count the SQL statements the app sends while the block runs."""
    with app.app_context():
        engine = db.engine
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def pages(app) -> dict[str, str]:
    """The pages and documents of the demo course, for Maya and for her supervisor."""
    with app.app_context():
        course = db.session.scalar(select(Course).where(Course.format == "intensive"))
        sessions = [s.id for s in course.sessions]
        signed = db.session.scalar(select(Note.id).where(Note.state == "signed",
                                                         Note.modality == "emdr-target-set"))
        draft = db.session.scalar(select(Note.id).where(Note.state == "draft",
                                                        Note.session_id.in_(sessions)))
        client = course.client_id
        course_id = course.id
    urls = {
        "dashboard": "/", "clients": "/clients", "client": f"/clients/{client}",
        "course": f"/courses/{course_id}", "session": f"/sessions/{sessions[4]}",
        "note view": f"/notes/{signed}", "note editor": f"/notes/{draft}",
        "new note": f"/sessions/{sessions[4]}/notes/new", "reviews": "/reviews",
    }
    for kind in ("summary", "packet", "handout"):
        urls[f"course {kind}"] = f"/courses/{course_id}/documents/{kind}"
        urls[f"session {kind}"] = f"/sessions/{sessions[3]}/documents/{kind}"
    return urls


def statements_per_page(app, browser, urls: dict[str, str]) -> dict[str, int]:
    counts = {}
    for name, url in urls.items():
        browser.get(url)  # warm: the first request of a page may fill caches
        with counting(app) as seen:
            resp = browser.get(url)
        assert resp.status_code == 200, (name, resp.status_code)
        counts[name] = len(seen)
    return counts


@pytest.fixture
def demo(app):
    with app.app_context():
        load_demo()
        # A review in the queue, so the supervisor's pages have something to show.
        from kaptools import reviews
        from kaptools.models import User

        maya = db.session.scalar(select(User).where(User.username == "maya"))
        ruth = db.session.scalar(select(User).where(User.username == "ruth"))
        note = db.session.scalar(select(Note).where(Note.state == "signed"))
        reviews.submit_note(note, maya, ruth.id)
        db.session.commit()


def test_statements_per_page_do_not_grow_with_the_data(app, demo):
    maya = Browser(app.test_client())
    maya.login("maya", "demo-maya-lind")
    ruth = Browser(app.test_client())
    ruth.login("ruth", "demo-ruth-okafor")
    urls = pages(app)
    with app.app_context():
        review = db.session.scalar(select(Review.id))
    supervisor_urls = {"review queue": "/reviews", "review": f"/reviews/{review}",
                       "supervisor dashboard": "/"}
    before = statements_per_page(app, maya, urls)
    before_ruth = statements_per_page(app, ruth, supervisor_urls)
    with app.app_context():
        added = grow(2000, therapists=12)
    assert added >= 2000
    after = statements_per_page(app, maya, urls)
    after_ruth = statements_per_page(app, ruth, supervisor_urls)
    grew = {name: (before[name], after[name]) for name in before if after[name] != before[name]}
    grew.update({name: (before_ruth[name], after_ruth[name]) for name in before_ruth
                 if after_ruth[name] != before_ruth[name]})
    print("statements per page:", before, before_ruth)
    assert not grew, grew


def test_a_long_course_costs_the_same_statements_as_a_short_one(app):
    """Documents and course pages load a course in a fixed number of queries."""
    from kaptools.models import User
    from tests import factories
    from tests.bench.data import make_course

    with app.app_context():
        therapist = factories.user("maya")
        short = make_course(therapist, 6, "KT-SHORT")
        long = make_course(therapist, 30, "KT-LONG")
        ids = {"short": (short.id, short.client_id), "long": (long.id, long.client_id)}
        assert db.session.scalar(select(User.id).where(User.username == "maya"))
    browser = Browser(app.test_client())
    browser.login("maya", factories.PASSWORD)
    counts = {}
    for size, (course, client) in ids.items():
        urls = {"course": f"/courses/{course}", "client": f"/clients/{client}"}
        for kind in ("summary", "packet", "handout"):
            urls[kind] = f"/courses/{course}/documents/{kind}"
        counts[size] = statements_per_page(app, browser, urls)
    assert counts["short"] == counts["long"], counts


def test_pages_that_record_a_viewing_read_everything_before_taking_the_audit_lock(app, demo):
    """Every writer in the clinic waits for the audit chain's lock, so a page that records
    its viewing takes it last: the lock returns the chain's head, and after it come only
    the event and the commit — no read for the page itself, nothing reloaded after. (On
    PostgreSQL the statement that takes the lock inserts the event: nothing comes after.)"""
    maya = Browser(app.test_client())
    maya.login("maya", "demo-maya-lind")
    ruth = Browser(app.test_client())
    ruth.login("ruth", "demo-ruth-okafor")
    urls = {name: url for name, url in pages(app).items()
            if name in ("client", "course", "session", "note view", "note editor")}
    with app.app_context():
        review = db.session.scalar(select(Review.id))
    checked = {}
    for browser, batch in ((maya, urls), (ruth, {"review": f"/reviews/{review}"})):
        for name, url in batch.items():
            browser.get(url)
            with counting(app) as seen:
                assert browser.get(url).status_code == 200
            words = [" ".join(s.split()[:3]).upper() for s in seen]
            # PostgreSQL: SELECT … FOR UPDATE; SQLite: an UPDATE opens the write transaction.
            locked = next(i for i, s in enumerate(seen) if "audit_chain" in s and (
                "FOR UPDATE" in s or s.startswith("UPDATE audit_chain")))
            after = words[locked + 1:]
            checked[name] = after
            assert "head_hash" in seen[locked], seen[locked]
            if "INSERT INTO audit_event" in seen[locked]:
                assert after == [], (name, after)
            else:
                assert len(after) == 1, (name, after)
                assert after[0].startswith("INSERT INTO AUDIT_EVENT"), (name, after)
    assert len(checked) == 6


def test_a_notes_page_asks_only_for_what_the_note_has(app, demo):
    """The note view and the editor learn with the note whether it has addenda, a
    co-signature, reviews, process notes or editor states kept elsewhere, and its author's
    supervision in force: for a note with none of them, no statement reads those tables
    on its own (and the supervision, which maya has, comes with the note)."""
    maya = Browser(app.test_client())
    maya.login("maya", "demo-maya-lind")
    with app.app_context():
        reviewed = set(db.session.scalars(select(Review.note_id)))
        signed = db.session.scalar(select(Note.id).where(Note.state == "signed",
                                                         Note.id.not_in(reviewed)))
        draft = db.session.scalar(select(Note.id).where(Note.state == "draft"))
    apart = ("addendum", "signature", "review", "note_autosave", "private_note", "supervision")
    for name, url in (("note view", f"/notes/{signed}"), ("editor", f"/notes/{draft}")):
        maya.get(url)
        with counting(app) as seen:
            assert maya.get(url).status_code == 200
        alone = [s for s in seen for table in apart
                 if re.match(rf"SELECT [^()]* FROM {table}\b", " ".join(s.split()))]
        assert not alone, (name, alone)


def test_a_clients_page_reads_the_client_and_their_courses_in_three_statements(app, demo):
    """Before recording its viewing, a client's page sends three statements whatever the
    client holds: the sign-in lookup; the client, with their therapist, courses and open
    risk flag; and the courses' sessions, with their notes counted and the signed outcome
    measures (what the charts are drawn from)."""
    from kaptools.models import Client, User

    maya = Browser(app.test_client())
    maya.login("maya", "demo-maya-lind")
    with app.app_context():
        clients = db.session.scalars(select(Client.id).join(User, Client.therapist_id == User.id)
                                     .where(User.username == "maya")).all()
    shown = {"flag": 0, "chart": 0}
    for client in clients:
        maya.get(f"/clients/{client}")
        with counting(app) as seen:
            resp = maya.get(f"/clients/{client}")
        assert resp.status_code == 200
        page = resp.get_data(as_text=True)
        shown["flag"] += "Open risk flag" in page
        shown["chart"] += '<img class="chart"' in page
        locked = next(i for i, s in enumerate(seen) if "audit_chain" in s)
        assert len(seen[:locked]) == 3, (client, seen[:locked])
        sign_in, found, sessions = (" ".join(s.split()) for s in seen[:locked])
        assert re.search(r"\bFROM auth_session\b", sign_in), sign_in
        assert re.search(r"\bFROM client\b", found) and "risk_signal" in found, found
        assert "therapy_session" in sessions and "note.content_hash" in sessions, sessions
    # The demo has a client with an open flag and courses with charted measures.
    assert shown["flag"] and shown["chart"], shown
