"""A therapist manages clients, courses and sessions through plain form posts."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kaptools.extensions import db
from kaptools.models import AuditEvent, Client, Course, TherapySession
from tests import factories


@pytest.fixture
def signed_in(app, browser):
    with app.app_context():
        factories.user("maya")
    browser.login("maya", factories.PASSWORD)
    return browser


def test_client_course_and_sessions_end_to_end(app, signed_in):
    b = signed_in
    b.get("/clients/new")
    resp = b.post("/clients/new", {"code": "KT-0201", "display_name": "J."})
    assert resp.status_code == 302
    with app.app_context():
        client_id = db.session.scalar(select(Client.id).where(Client.code == "KT-0201"))
    b.get(f"/clients/{client_id}/courses/new")
    resp = b.post(f"/clients/{client_id}/courses/new", {
        "title": "Winter intensive", "format": "intensive", "starts_on": "2026-12-01",
        "ends_on": "2026-12-08", "intentions": "Rest; trust my body."})
    assert resp.status_code == 302
    course_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    resp = b.post(f"/courses/{course_id}/sessions/new",
                  {"kind": "dosing", "session_date": "2026-12-02", "follows_id": "0"})
    assert resp.status_code == 302
    dosing_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    resp = b.post(f"/courses/{course_id}/sessions/new",
                  {"kind": "integration", "session_date": "2026-12-03",
                   "follows_id": str(dosing_id), "summary": "First integration"})
    assert resp.status_code == 302
    page = b.get(f"/courses/{course_id}").get_data(as_text=True)
    assert "Dosing (medicine session)" in page and "First integration" in page
    with app.app_context():
        integration = db.session.scalar(
            select(TherapySession).where(TherapySession.kind == "integration"))
        assert integration.follows_id == dosing_id
        course = db.session.get(Course, course_id)
        assert course.format == "intensive" and course.intentions == "Rest; trust my body."
        actions = set(db.session.scalars(select(AuditEvent.action)))
    assert {"client.created", "course.created", "session.created"} <= actions


def test_integration_without_dosing_gets_a_message_and_keeps_input(app, signed_in):
    with app.app_context():
        ids = factories.client_with_course(db.session.scalar(select(factories.User)))
    url = f"/courses/{ids['course']}/sessions/new"
    signed_in.get(url)
    resp = signed_in.post(url, {"kind": "integration", "session_date": "2026-12-03",
                                "follows_id": "0", "summary": "Keep this text"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "Choose the dosing session this integration follows." in page
    assert 'value="Keep this text"' in page and 'value="2026-12-03"' in page


@pytest.mark.parametrize("code, message", [
    ("", "This field is required."),
    ("K", "Field must be between 2 and 32 characters long."),
    ("KT 01", "Use letters, digits, dashes or underscores"),
    ("KT-\u202e01", "Use letters, digits, dashes or underscores"),
])
def test_bad_client_codes_are_explained(signed_in, code, message):
    signed_in.get("/clients/new")
    resp = signed_in.post("/clients/new", {"code": code, "display_name": "Kept name"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert message in page
    assert 'value="Kept name"' in page


def test_display_name_rejects_nul_and_bidi(signed_in):
    signed_in.get("/clients/new")
    for bad in ("A\x00B", "Ann\u202eA"):
        resp = signed_in.post("/clients/new", {"code": "KT-5", "display_name": bad})
        assert resp.status_code == 200
        assert "display_name-error" in resp.get_data(as_text=True)


def test_duplicate_code_is_explained(app, signed_in):
    signed_in.get("/clients/new")
    signed_in.post("/clients/new", {"code": "KT-7"})
    resp = signed_in.post("/clients/new", {"code": "KT-7"})
    assert "You already have a client with this code." in resp.get_data(as_text=True)


def test_course_end_before_start_is_refused(app, signed_in):
    with app.app_context():
        ids = factories.client_with_course(db.session.scalar(select(factories.User)))
    url = f"/clients/{ids['client']}/courses/new"
    signed_in.get(url)
    resp = signed_in.post(url, {"title": "T", "format": "weekly", "starts_on": "2026-12-05",
                                "ends_on": "2026-12-01"})
    assert "The last day cannot come before the first day." in resp.get_data(as_text=True)


def test_audit_log_never_holds_free_text(app, signed_in):
    signed_in.get("/clients/new")
    signed_in.post("/clients/new", {"code": "KT-8"})
    with app.app_context():
        cid = db.session.scalar(select(Client.id))
    signed_in.post(f"/clients/{cid}/courses/new", {
        "title": "Course", "format": "weekly", "starts_on": "2026-12-01",
        "intentions": "secret intention words"})
    with app.app_context():
        for event in db.session.scalars(select(AuditEvent)):
            assert "secret intention words" not in repr(event.detail)


def test_course_overviews_count_what_each_course_holds(app):
    """The client page's one aggregate query, against counting note by note (the demo:
    drafts, signed notes, a note entered in error, sessions with no note; and one draft
    discarded, which no longer counts)."""
    from collections import Counter

    from kaptools import discard
    from kaptools.demo import load_demo
    from kaptools.models import Note, NoteState
    from kaptools.overview import course_overviews

    with app.app_context():
        load_demo()
        draft = db.session.scalar(select(Note).where(Note.state == NoteState.DRAFT))
        assert discard.refusal(draft) is None
        discard.discard(draft, draft.author, draft.session.course.client.code)
        db.session.commit()
        db.session.expire_all()
        courses = db.session.scalars(select(Course)).all()
        found = course_overviews([c.id for c in courses])
        empty_sessions = 0
        for course in courses:
            sessions = sorted(course.sessions, key=lambda s: (s.session_date, s.id))
            notes = [n for s in sessions for n in s.notes]
            empty_sessions += sum(1 for s in sessions if not s.notes)
            overview = found[course.id]
            assert [p.id for p in overview.sessions] == [s.id for s in sessions]
            assert overview.kinds == Counter(s.kind for s in sessions)
            assert overview.notes == Counter(n.state for n in notes)
        assert empty_sessions  # the demo has sessions with no note: they still count
        assert draft.id not in {n.id for c in courses for s in c.sessions for n in s.notes}


def test_the_clients_list_pages_through_visible_clients_with_their_live_courses(app, signed_in):
    """Fifty clients a page, by code; archived ones only when asked for; a course that was
    discarded is not counted; another therapist's clients never appear."""
    from datetime import date

    from kaptools.timeutil import utcnow

    with app.app_context():
        maya = db.session.scalar(select(factories.User).where(factories.User.username == "maya"))
        other = factories.user("omar")
        for i in range(52):
            client = Client(therapist=maya, code=f"KT-{1000 + i}", display_name=f"C{i}",
                            archived=i == 7)
            db.session.add(client)
            for n in range(i % 3):
                db.session.add(Course(client=client, title=f"Course {n}", format="intensive",
                                      starts_on=date(2026, 1, 1 + n)))
        gone = Course(client=db.session.scalar(select(Client).where(Client.code == "KT-1002")),
                      title="Started by mistake", format="intensive",
                      starts_on=date(2026, 2, 1), discarded_at=utcnow())
        db.session.add_all([gone, Client(therapist=other, code="KT-0999")])
        db.session.commit()
        ids = dict(db.session.execute(select(Client.code, Client.id)).all())

    def rows(page: str) -> list[tuple[str, str, str, str]]:
        import re

        return re.findall(r'<tr>\s*<td><a href="/clients/(\d+)">([^<]+)</a>.*?</td>\s*'
                          r"<td>([^<]*)</td>\s*<td>([^<]*)</td>\s*<td>(\d+)</td>", page, re.S)

    first = signed_in.get("/clients").get_data(as_text=True)
    shown = rows(first)
    assert len(shown) == 50
    assert [code for _, code, *_ in shown] == sorted(
        f"KT-{1000 + i}" for i in range(52) if i != 7)[:50]
    assert ("KT-0999" not in first) and ("KT-1007" not in first)
    by_code = {code: (int(id_), name, therapist, int(count))
               for id_, code, name, therapist, count in shown}
    assert by_code["KT-1004"] == (ids["KT-1004"], "C4", "Maya", 1)
    assert by_code["KT-1005"][3] == 2
    assert by_code["KT-1002"][3] == 2  # its discarded course is not counted
    assert "Page 1 of 2 · 51 clients" in first
    assert 'href="/clients?page=2"' in first and "?page=0" not in first

    second = signed_in.get("/clients?page=2").get_data(as_text=True)
    assert [code for _, code, *_ in rows(second)] == ["KT-1051"]
    assert "Page 2 of 2 · 51 clients" in second
    assert 'href="/clients?page=1"' in second and "?page=3" not in second

    archived = signed_in.get("/clients?archived=1").get_data(as_text=True)
    assert "KT-1007" in archived and "Page 1 of 2 · 52 clients" in archived
    assert 'href="/clients?page=2&amp;archived=1"' in archived

    beyond = signed_in.get("/clients?page=9")
    assert beyond.status_code == 200 and "No clients to show." in beyond.get_data(as_text=True)

    # A supervisor sees their supervisee's clients too, each under its therapist's name.
    with app.app_context():
        ruth = factories.user("ruth", role="supervisor")
        factories.supervise(ruth, db.session.scalar(
            select(factories.User).where(factories.User.username == "maya")), date(2026, 1, 1))
    signed_in.logout()
    signed_in.login("ruth", factories.PASSWORD)
    theirs = signed_in.get("/clients").get_data(as_text=True)
    assert "Page 1 of 2 · 51 clients" in theirs and "KT-0999" not in theirs
    assert {therapist for *_, therapist, _ in rows(theirs)} == {"Maya"}
