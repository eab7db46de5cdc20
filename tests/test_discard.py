"""Drafts, sessions and courses started by mistake are discarded, audited, hidden from
every list and document, and restorable by an administrator for 30 days."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from kaptools import notes
from kaptools.extensions import db
from kaptools.modality import get_registry
from kaptools.models import AuditEvent, Course, Note, TherapySession, User
from kaptools.timeutil import today, utcnow
from tests import factories
from tests.conftest import Browser, signed_in


@pytest.fixture
def clinic(app):
    """Maya with a course (a dosing session, and an integration session with a draft),
    Ruth supervising her, Sam another therapist, and an administrator."""
    with app.app_context():
        maya = factories.user("maya")
        ruth = factories.user("ruth", role="supervisor")
        factories.user("sam")
        factories.user("ada", role="admin")
        ids = factories.client_with_course(maya)
        factories.supervise(ruth, maya, starts=today() - timedelta(days=30))
        course = db.session.get(Course, ids["course"])
        spare = TherapySession(course=course, kind="assessment", session_date=date(2026, 11, 5))
        db.session.add(spare)
        db.session.flush()
        gad = get_registry().latest("gad-7")
        spare_draft = notes.create_note(spare, maya, gad, dict(gad.sample))
        db.session.commit()
        return {**ids, "spare": spare.id, "spare_draft": spare_draft.id}


def events(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def restore(admin: Browser, kind: str, record_id: int):
    page = admin.get("/admin/discarded").get_data(as_text=True)
    assert f"/admin/discarded/{kind}/{record_id}/restore" in page
    return admin.post(f"/admin/discarded/{kind}/{record_id}/restore")


def test_a_draft_started_by_mistake_is_discarded_and_restored(app, clinic):
    maya, ada = signed_in(app, "maya"), signed_in(app, "ada")
    note_url = f"/notes/{clinic['note']}"
    assert "Discard draft" in maya.get(note_url).get_data(as_text=True)
    done = maya.post(f"{note_url}/discard-draft")
    assert done.status_code == 302 and done.location.endswith(f"/sessions/{clinic['integration']}")
    # Gone from the note's address, the session, the start page's drafts and the summary.
    assert maya.get(note_url).status_code == 404
    assert note_url not in maya.get(f"/sessions/{clinic['integration']}").get_data(as_text=True)
    assert note_url not in maya.get("/").get_data(as_text=True)
    summary = maya.get(f"/courses/{clinic['course']}/documents/summary").get_data(as_text=True)
    assert "I am going to be fired" not in summary
    [event] = events(app, "note.discarded")
    assert (event.object_id, event.username, event.client_code) == (clinic["note"], "maya",
                                                                    "KT-0001")
    # The administrator sees what it was, not what it says, and brings it back.
    listing = ada.get("/admin/discarded").get_data(as_text=True)
    assert "Draft “CBT thought record (seven columns)”, integration session" in listing
    assert "KT-0001" in listing
    assert "I am going to be fired" not in listing
    assert restore(ada, "note", clinic["note"]).status_code == 302
    assert maya.get(note_url).status_code == 200
    assert note_url in maya.get("/").get_data(as_text=True)
    assert [e.username for e in events(app, "note.restored")] == ["ada"]
    assert "Nothing has been discarded" in ada.get("/admin/discarded").get_data(as_text=True)


def test_a_session_goes_with_its_drafts_and_comes_back_with_them(app, clinic):
    maya, ada = signed_in(app, "maya"), signed_in(app, "ada")
    session_url = f"/sessions/{clinic['spare']}"
    assert "Discard session" in maya.get(session_url).get_data(as_text=True)
    assert maya.post(f"{session_url}/discard").status_code == 302
    assert maya.get(session_url).status_code == 404
    assert maya.get(f"/notes/{clinic['spare_draft']}").status_code == 404
    assert session_url not in maya.get(f"/courses/{clinic['course']}").get_data(as_text=True)
    with app.app_context():
        hidden = db.session.scalars(select(Note).where(Note.id == clinic["spare_draft"])
                                    .execution_options(include_discarded=True)).one()
        assert hidden.discarded_at is not None
    [event] = events(app, "session.discarded")
    assert event.detail == {"with": {"note": 1}}
    # The draft went with its session: it is listed with it, and restored only with it.
    listing = ada.get("/admin/discarded").get_data(as_text=True)
    assert f"/admin/discarded/note/{clinic['spare_draft']}/restore" not in listing
    refused = ada.post(f"/admin/discarded/note/{clinic['spare_draft']}/restore",
                       follow_redirects=True).get_data(as_text=True)
    assert "restore that instead" in refused
    restore(ada, "session", clinic["spare"])
    assert maya.get(session_url).status_code == 200
    assert maya.get(f"/notes/{clinic['spare_draft']}").status_code == 200


def test_a_course_goes_with_its_sessions_and_drafts(app, clinic):
    maya, ada = signed_in(app, "maya"), signed_in(app, "ada")
    course_url = f"/courses/{clinic['course']}"
    assert "Discard course" in maya.get(course_url).get_data(as_text=True)
    assert maya.post(f"{course_url}/discard").status_code == 302
    for url in (course_url, f"/sessions/{clinic['integration']}", f"/notes/{clinic['note']}"):
        assert maya.get(url).status_code == 404, url
    assert course_url not in maya.get(f"/clients/{clinic['client']}").get_data(as_text=True)
    [event] = events(app, "course.discarded")
    assert event.detail == {"with": {"session": 3, "note": 2}}
    restore(ada, "course", clinic["course"])
    for url in (course_url, f"/sessions/{clinic['integration']}", f"/notes/{clinic['note']}"):
        assert maya.get(url).status_code == 200, url


def test_nothing_signed_is_ever_discarded(app, clinic):
    maya = signed_in(app, "maya")
    with app.app_context():
        draft = db.session.get(Note, clinic["spare_draft"])
        notes.sign(draft, draft.author)
        db.session.commit()
    note_page = maya.get(f"/notes/{clinic['spare_draft']}").get_data(as_text=True)
    assert "Discard draft" not in note_page
    refused = maya.post(f"/notes/{clinic['spare_draft']}/discard-draft", follow_redirects=True)
    assert "addendum" in refused.get_data(as_text=True)
    assert "Discard session" not in maya.get(f"/sessions/{clinic['spare']}").get_data(as_text=True)
    for url in (f"/sessions/{clinic['spare']}/discard", f"/courses/{clinic['course']}/discard"):
        answer = maya.post(url, follow_redirects=True).get_data(as_text=True)
        assert "holds signed notes, which stay in the record" in answer
    assert maya.get(f"/sessions/{clinic['spare']}").status_code == 200
    assert events(app, "session.discarded") == events(app, "course.discarded") == []


def test_a_dosing_session_that_an_integration_follows_stays(app, clinic):
    maya = signed_in(app, "maya")
    answer = maya.post(f"/sessions/{clinic['dosing']}/discard", follow_redirects=True)
    assert "follows this dosing session" in answer.get_data(as_text=True)
    assert maya.get(f"/sessions/{clinic['dosing']}").status_code == 200


def test_a_draft_waiting_for_review_stays(app, clinic):
    maya = signed_in(app, "maya")
    with app.app_context():
        ruth_id = db.session.scalar(select(User.id).where(User.username == "ruth"))
    maya.get(f"/notes/{clinic['note']}")
    maya.post(f"/notes/{clinic['note']}/submit", {"reviewer_id": str(ruth_id)})
    assert "Discard draft" not in maya.get(f"/notes/{clinic['note']}").get_data(as_text=True)
    answer = maya.post(f"/notes/{clinic['note']}/discard-draft", follow_redirects=True)
    assert "waiting for your supervisor" in answer.get_data(as_text=True)
    assert maya.get(f"/notes/{clinic['note']}").status_code == 200


def test_only_the_record_keeper_discards(app, clinic):
    ruth, sam = signed_in(app, "ruth"), signed_in(app, "sam")
    # The supervisor reads the session but may not discard it; another therapist sees nothing.
    assert "Discard" not in ruth.get(f"/sessions/{clinic['spare']}").get_data(as_text=True)
    assert ruth.post(f"/sessions/{clinic['spare']}/discard").status_code == 403
    assert ruth.post(f"/notes/{clinic['note']}/discard-draft").status_code == 403
    assert sam.post(f"/courses/{clinic['course']}/discard").status_code == 404
    assert sam.post(f"/notes/{clinic['note']}/discard-draft").status_code == 404
    # Only administrators restore; to anyone else the page does not exist.
    maya = signed_in(app, "maya")
    maya.post(f"/sessions/{clinic['spare']}/discard")
    assert maya.get("/admin/discarded").status_code == 404
    assert maya.post(f"/admin/discarded/session/{clinic['spare']}/restore").status_code == 404
    assert maya.get(f"/sessions/{clinic['spare']}").status_code == 404


def test_after_thirty_days_a_discard_stays(app, clinic):
    maya, ada = signed_in(app, "maya"), signed_in(app, "ada")
    maya.post(f"/sessions/{clinic['spare']}/discard")
    with app.app_context():
        long_ago = utcnow() - timedelta(days=31)
        for model in (TherapySession, Note):
            db.session.execute(update(model).where(model.discarded_at.is_not(None))
                               .values(discarded_at=long_ago)
                               .execution_options(include_discarded=True))
        db.session.commit()
    listing = ada.get("/admin/discarded").get_data(as_text=True)
    assert "Kept past 30 days" in listing
    assert f"/admin/discarded/session/{clinic['spare']}/restore" not in listing
    refused = ada.post(f"/admin/discarded/session/{clinic['spare']}/restore",
                       follow_redirects=True).get_data(as_text=True)
    assert "for 30 days" in refused
    assert maya.get(f"/sessions/{clinic['spare']}").status_code == 404
