"""No typed word is ever lost: other tabs, locked or absent databases, expired forms."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from kaptools.extensions import db
from kaptools.models import AuthSession, Note
from kaptools.timeutil import utcnow
from tests import factories
from tests.conftest import PG_URL, Browser, close_app, make_app
from tests.hostile.conftest import REGISTRY, note_id, other_engine, write_lock
from tests.notes_helpers import form_payload, new_note

CBT = REGISTRY.latest("cbt-thought-record")


def typed(situation: str) -> dict:
    return {**CBT.sample, "situation": situation}


def page_text(resp) -> str:
    return resp.get_data(as_text=True)


def assert_own_page_with_text(resp, status: int, words: str) -> None:
    body = page_text(resp)
    assert resp.status_code == status, (resp.status_code, body[:400])
    assert "Traceback" not in body and "Internal Server Error" not in body
    assert "kaptools" in body  # the app's own page, not a bare server error
    assert words in body, "the typed text is not on the page"


# ---------------------------------------------------------------------------
# Other tabs and devices


def editor_of(browser, url: str) -> str:
    """Open the editor as a tab does; the page names its editor."""
    page = page_text(browser.get(url))
    found = re.search(r'name="editor_id" value="([^"]+)"', page)
    return found.group(1) if found else ""


def test_a_closed_tabs_autosave_survives_a_save_from_another_device(app, world, maya):
    url = new_note(maya, world["integration"], "cbt-thought-record")
    # The note is open on the tablet and in a tab on the desktop.
    tablet = Browser(app.test_client())
    tablet.login("maya", factories.PASSWORD)
    on_tablet = editor_of(tablet, url)
    tab = editor_of(maya, url)
    assert on_tablet != tab or not tab
    # The tab types; the server answers "saved" to its autosave; then the tab is closed.
    resp = maya.post(url + "/autosave", {**form_payload(CBT, typed("Typed in the closed tab")),
                                         "editor_id": tab})
    assert resp.json["status"] == "saved"
    # Later the tablet saves what it shows, based on the same version.
    resp = tablet.post(url, {**form_payload(CBT, typed("Saved on the tablet")),
                             "editor_id": on_tablet})
    assert resp.status_code == 302
    # Reopening the note offers both versions side by side: nothing was thrown away.
    resp = maya.get(url)
    body = page_text(resp)
    assert "Typed in the closed tab" in body and "Saved on the tablet" in body


def test_reopening_a_note_while_another_tab_saves_it_never_fails(app, world, maya):
    url = new_note(maya, world["integration"], "cbt-thought-record")
    maya.post(url + "/autosave", form_payload(CBT, typed("Unsaved words")))
    other = other_engine(app)

    def another_tab_saves(session) -> None:
        # The other tab's save lands between reading the autosave and drawing the page.
        with other.begin() as conn:
            conn.execute(text("DELETE FROM note_autosave WHERE note_id = :n"),
                         {"n": note_id(url)})

    event.listen(Session, "after_commit", another_tab_saves, once=True)
    try:
        resp = maya.get(url)
    finally:
        if event.contains(Session, "after_commit", another_tab_saves):
            event.remove(Session, "after_commit", another_tab_saves)
        other.dispose()
    assert resp.status_code in (200, 409), resp.status_code
    assert 'id="note-form"' in page_text(resp) or resp.status_code == 409


def test_signing_by_address_requires_the_version_the_signer_read(app, world, maya):
    url = new_note(maya, world["integration"], "cbt-thought-record")
    assert maya.post(url, form_payload(CBT, typed("What Maya read"))).status_code == 302
    tablet = Browser(app.test_client())
    tablet.login("maya", factories.PASSWORD)
    tablet.get(url)
    tablet.post(url, form_payload(CBT, typed("Changed on the tablet"), version=2))
    # A sign request based on version 2 (what Maya read) must not sign version 3.
    resp = maya.post(url + "/sign", {"note_version": "2"})
    assert resp.status_code in (302, 409)
    resp_none = maya.post(url + "/sign", {})
    assert resp_none.status_code in (302, 400, 409)
    with app.app_context():
        note = db.session.get(Note, note_id(url))
        assert note.state == "draft", "a version the signer never saw was signed"
    # With the version it shows, signing works.
    assert maya.post(url + "/sign", {"note_version": "3"}).status_code == 302
    with app.app_context():
        assert db.session.get(Note, note_id(url)).state == "signed"


# ---------------------------------------------------------------------------
# A database that is locked, slow or gone


@pytest.fixture
def unreachable_db_url(tmp_path) -> str:
    if PG_URL:
        return "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2"
    return "sqlite:///" + str(tmp_path / "no-such-folder" / "kaptools.sqlite3")


def test_a_save_while_the_database_is_down_keeps_the_typed_text(app, world, maya, tmp_path,
                                                               unreachable_db_url):
    url = new_note(maya, world["integration"], "cbt-thought-record")
    maya.get(url)
    cookie = maya.client.get_cookie("kaptools_session").value
    # The same site, moments later, with its database gone.
    down = make_app(unreachable_db_url, tmp_path / "instance")
    try:
        client = down.test_client()
        client.set_cookie("kaptools_session", cookie)
        words = "Written while the database was down"
        payload = {"csrf_token": maya.token, **form_payload(CBT, typed(words))}
        resp = client.post(url, data=payload)
        assert_own_page_with_text(resp, 503, words)
        # The page can send the same text again once the database is back.
        assert 'name="situation"' in page_text(resp)
        # Autosave answers in JSON, and a page view gets the app's own page too.
        auto = client.post(url + "/autosave", data=payload)
        assert auto.status_code == 503 and auto.json["status"] == "unavailable"
        view = client.get("/clients")
        assert view.status_code == 503 and "kaptools" in page_text(view)
    finally:
        close_app(down)


@pytest.fixture
def impatient_editor(app_factory):
    """Maya's editor on a site that waits 0.3 s for a lock before giving up."""
    app = app_factory(DB_LOCK_TIMEOUT_MS=300, SQLITE_BUSY_TIMEOUT_MS=300)
    with app.app_context():
        ids = factories.client_with_course(factories.user("maya"))
    browser = Browser(app.test_client())
    browser.login("maya", factories.PASSWORD)
    url = new_note(browser, ids["integration"], "cbt-thought-record")
    browser.get(url)
    return app, browser, url


def test_a_locked_database_while_the_session_is_refreshed_keeps_the_text(impatient_editor):
    app, browser, url = impatient_editor
    with app.app_context():
        # The last request was a while ago: this one refreshes the session (a write).
        for auth in db.session.scalars(select(AuthSession)):
            auth.last_seen_at = utcnow() - timedelta(minutes=5)
        db.session.commit()
    words = "Typed while a backup held the database"
    with write_lock(app):
        resp = browser.post(url, form_payload(CBT, typed(words)))
    assert_own_page_with_text(resp, 503, words)
    with app.app_context():
        assert db.session.get(Note, note_id(url)).answers == {}


def test_a_lock_held_longer_than_the_timeout_answers_503_with_the_text(impatient_editor):
    app, browser, url = impatient_editor
    words = "Typed while a row was locked elsewhere"
    with write_lock(app):
        resp = browser.post(url, form_payload(CBT, typed(words)))
    assert_own_page_with_text(resp, 503, words)
    # Once the lock is gone the same text saves.
    assert browser.post(url, form_payload(CBT, typed(words))).status_code == 302


def test_database_timeouts_are_configured(app):
    with app.app_context():
        with db.engine.connect() as conn:
            if db.engine.dialect.name == "postgresql":
                lock = conn.execute(text("SHOW lock_timeout")).scalar()
                statement = conn.execute(text("SHOW statement_timeout")).scalar()
                assert lock not in ("0", "0ms") and statement not in ("0", "0ms")
            else:
                busy = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
                assert busy > 0


# ---------------------------------------------------------------------------
# An expired form


def test_an_expired_form_keeps_the_typed_text(app, world, maya):
    url = new_note(maya, world["integration"], "cbt-thought-record")
    page = page_text(maya.get(url))
    words = "Typed into a form whose token had expired"
    payload = {**form_payload(CBT, typed(words)), "csrf_token": "expired-token"}
    carry = re.search(r'name="carry_token" value="([^"]+)"', page)
    if carry:
        payload["carry_token"] = carry.group(1)
    resp = maya.client.post(url, data=payload)
    assert_own_page_with_text(resp, 400, words)
    # Signed in as the same person, the page offers to send the text again.
    assert 'name="csrf_token"' in page_text(resp) and 'name="situation"' in page_text(resp)
    with app.app_context():
        assert db.session.get(Note, note_id(url)).answers == {}


def test_an_expired_form_from_elsewhere_shows_the_text_but_offers_no_resend(app, world, maya):
    url = new_note(maya, world["integration"], "cbt-thought-record")
    words = "Posted by another site"
    resp = maya.client.post(url, data={**form_payload(CBT, typed(words)),
                                       "csrf_token": "forged"})
    body = page_text(resp)
    assert resp.status_code == 400 and words in body
    assert "Send it again" not in body
