"""An expired form in the browser: the page shows the text, and the tab gives it back.

Before, the editor dropped its own copy of the text the moment the form was sent, so a
save refused for an expired token lost the words the server did not keep either.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kaptools.extensions import db
from kaptools.models import Note
from tests import factories
from tests.browser.conftest import shot, sign_in
from tests.conftest import Browser
from tests.notes_helpers import new_note

pytestmark = pytest.mark.browser


def test_a_save_refused_for_an_expired_form_is_given_back(app, live_server, page):
    with app.app_context():
        ids = factories.client_with_course(factories.user("maya"))
    http = Browser(app.test_client())
    http.login("maya", factories.PASSWORD)
    url = new_note(http, ids["integration"], "cbt-thought-record")
    page.set_viewport_size({"width": 820, "height": 1180})
    sign_in(page, live_server, "maya", factories.PASSWORD)
    page.goto(live_server + url)
    words = "Typed for twenty minutes while the form quietly expired"
    page.fill("#situation", words)
    # The token the page was given no longer holds (signed in again elsewhere, say).
    page.evaluate("document.querySelector('#note-form input[name=csrf_token]').value = 'old'")
    page.click("button:has-text('Save draft')")
    page.wait_for_selector("text=This form has expired")
    assert words in page.content()
    shot(page, "expired-form-kept", width=820)
    # Back to the note: the tab still had the text and hands it back.
    page.goto(live_server + url)
    page.wait_for_selector("text=Restored your unsaved changes")
    assert page.input_value("#situation") == words
    page.click("button:has-text('Save draft')")
    page.wait_for_selector("text=Draft saved.")
    with app.app_context():
        note = db.session.scalar(select(Note).where(Note.id == int(url.rsplit("/", 1)[1])))
        assert note.answers["situation"] == words
