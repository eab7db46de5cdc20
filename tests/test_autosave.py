"""Autosave keeps unsaved text beside the note; a timeout never loses what was typed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from kaptools.extensions import db
from kaptools.modality.registry import builtin_dir, load_registry
from kaptools.models import AuthSession, Note, NoteAutosave
from kaptools.timeutil import utcnow
from tests import factories
from tests.notes_helpers import form_payload, new_note

TEMPLATE = load_registry(builtin_dir()).latest("cbt-thought-record")


@pytest.fixture
def editor(app, browser):
    with app.app_context():
        ids = factories.client_with_course(factories.user("maya"))
    browser.login("maya", factories.PASSWORD)
    url = new_note(browser, ids["integration"], "cbt-thought-record")
    return browser, url


def test_autosave_never_touches_the_saved_note(app, editor):
    browser, url = editor
    payload = form_payload(TEMPLATE, {**TEMPLATE.sample, "situation": "Typed, not saved"})
    resp = browser.post(url + "/autosave", payload)
    assert resp.status_code == 200 and resp.json["status"] == "saved"
    with app.app_context():
        note = db.session.get(Note, int(url.rsplit("/", 1)[1]))
        assert note.answers == {} and note.version == 1
    page = browser.get(url).get_data(as_text=True)
    assert "Restored your unsaved changes" in page and "Typed, not saved" in page
    # Saving keeps the text and clears the autosave.
    assert browser.post(url, payload).status_code == 302
    with app.app_context():
        assert db.session.get(NoteAutosave, int(url.rsplit("/", 1)[1])) is None
        assert db.session.get(Note, int(url.rsplit("/", 1)[1])).answers["situation"] == \
            "Typed, not saved"


def test_autosave_from_a_stale_tab_leads_to_a_comparison(app, editor):
    browser, url = editor
    stale = form_payload(TEMPLATE, {**TEMPLATE.sample, "situation": "From the old tab"})
    browser.post(url + "/autosave", stale)  # based on version 1
    fresh = form_payload(TEMPLATE, {**TEMPLATE.sample, "situation": "Saved in the new tab"})
    browser.post(url, fresh)  # version 1 -> 2, clears the autosave
    resp = browser.post(url + "/autosave", stale)  # the old tab keeps typing
    assert resp.json["conflict"] is True
    page = browser.get(url)
    body = page.get_data(as_text=True)
    assert page.status_code == 409
    assert "From the old tab" in body and "Saved in the new tab" in body
    with app.app_context():
        assert db.session.get(Note, int(url.rsplit("/", 1)[1])).answers["situation"] == \
            "Saved in the new tab"


def test_autosave_of_a_signed_note_is_refused(app, editor):
    browser, url = editor
    browser.post(url, form_payload(TEMPLATE, TEMPLATE.sample, action="sign"))
    resp = browser.post(url + "/autosave", form_payload(TEMPLATE, TEMPLATE.sample, version=2))
    assert resp.status_code == 409 and resp.json["status"] == "locked"


def test_autosave_after_sign_out_answers_401_json(app, editor):
    browser, url = editor
    payload = form_payload(TEMPLATE, TEMPLATE.sample)
    with app.app_context():
        for auth in db.session.scalars(select(AuthSession)):
            auth.last_seen_at = utcnow() - timedelta(hours=1)
        db.session.commit()
    resp = browser.post(url + "/autosave", payload)
    assert resp.status_code == 401 and resp.json["status"] == "signed_out"


def test_a_note_posted_after_timeout_survives_sign_in(app, editor):
    browser, url = editor
    with app.app_context():
        for auth in db.session.scalars(select(AuthSession)):
            auth.last_seen_at = utcnow() - timedelta(hours=1)
        db.session.commit()
    typed = {**TEMPLATE.sample, "situation": "Written while the session expired"}
    resp = browser.post(url, form_payload(TEMPLATE, typed))
    page = resp.get_data(as_text=True)
    assert resp.status_code == 401
    assert "What you typed is safe in this page" in page
    assert "Written while the session expired" in page
    # Sign in from that page: the carried fields come along.
    import re

    carried = re.findall(r'name="carry_(name|value)" value="([^"]*)"', page)
    names = [v for k, v in carried if k == "name"]
    values = [v for k, v in carried if k == "value"]
    from markupsafe import Markup

    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
        re.search(r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', page)
    carry_token = re.search(r'name="carry_token" value="([^"]+)"', page).group(1)
    assert 'name="carry_name" value="action"' not in page  # the button is never carried
    data = [("csrf_token", token.group(1)), ("username", "maya"),
            ("password", factories.PASSWORD), ("carry_to", url), ("carry_token", carry_token)]
    data += [("carry_name", Markup(n).unescape()) for n in names]
    data += [("carry_value", Markup(v).unescape()) for v in values]
    from werkzeug.datastructures import MultiDict

    resp = browser.client.post("/login", data=MultiDict(data))
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "Your note is ready to save" in page
    resume = MultiDict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))
    resume = MultiDict([(k, Markup(v).unescape()) for k, v in resume.items(multi=True)])
    resume.add("action", "save")
    resp = browser.client.post(url, data=resume)
    assert resp.status_code == 302, re.findall(r"<p>(.*?)</p>", resp.get_data(as_text=True))
    with app.app_context():
        note = db.session.get(Note, int(url.rsplit("/", 1)[1]))
        assert note.answers["situation"] == "Written while the session expired"


def test_carried_text_is_never_handed_to_another_account(app, editor):
    browser, url = editor
    with app.app_context():
        factories.user("tomas")
        for auth in db.session.scalars(select(AuthSession)):
            auth.last_seen_at = utcnow() - timedelta(hours=1)
        db.session.commit()
    secret = {**TEMPLATE.sample, "situation": "Only Maya may get this back"}
    page = browser.post(url, form_payload(TEMPLATE, secret, action="sign")).get_data(as_text=True)
    import re

    from werkzeug.datastructures import MultiDict

    fields = MultiDict(re.findall(r'<input type="hidden" name="(carry_[a-z]+)" value="([^"]*)">',
                                  page))
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    data = MultiDict([("csrf_token", token), ("username", "tomas"),
                      ("password", factories.PASSWORD)])
    for key, value in fields.items(multi=True):
        data.add(key, value)
    resp = browser.client.post("/login", data=data)
    assert resp.status_code == 302
    landing = browser.client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Only Maya may get this back" not in landing
    assert "was discarded" in landing
    with app.app_context():
        note = db.session.get(Note, int(url.rsplit("/", 1)[1]))
        assert note.state == "draft" and note.answers == {}
