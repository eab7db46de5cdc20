"""When the database is locked, nothing typed is lost and no stack trace is shown."""

from __future__ import annotations

import sqlite3

import pytest

from kaptools.extensions import db
from kaptools.modality.registry import builtin_dir, load_registry
from kaptools.models import Note
from tests import factories
from tests.conftest import PG_URL, Browser
from tests.notes_helpers import form_payload, new_note

CBT = load_registry(builtin_dir()).latest("cbt-thought-record")

pytestmark = pytest.mark.skipif(bool(PG_URL), reason="locks the SQLite file from a second "
                                                     "connection; SQLite only")


@pytest.fixture
def locked_editor(app_factory):
    app = app_factory(SQLITE_BUSY_TIMEOUT_MS=200)
    with app.app_context():
        ids = factories.client_with_course(factories.user("maya"))
    browser = Browser(app.test_client())
    browser.login("maya", factories.PASSWORD)
    url = new_note(browser, ids["integration"], "cbt-thought-record")
    path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    return app, browser, url, path


def test_a_locked_database_keeps_the_therapists_text(locked_editor):
    app, browser, url, path = locked_editor
    browser.get(url)
    typed = {**CBT.sample, "situation": "Typed while another process held the database"}
    blocker = sqlite3.connect(path)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        resp = browser.post(url, form_payload(CBT, typed))
        autosave = browser.post(url + "/autosave", form_payload(CBT, typed))
    finally:
        blocker.rollback()
        blocker.close()
    page = resp.get_data(as_text=True)
    assert resp.status_code == 503
    assert "Nothing was lost" in page and "Traceback" not in page
    assert "Typed while another process held the database" in page
    assert autosave.status_code == 503 and autosave.json["status"] == "unavailable"
    with app.app_context():
        assert db.session.get(Note, int(url.rsplit("/", 1)[1])).answers == {}
    # Once the lock is gone the same post succeeds.
    assert browser.post(url, form_payload(CBT, typed)).status_code == 302
