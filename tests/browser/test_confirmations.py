"""Irreversible actions ask first (issue 13), at tablet width: signing, adding an addendum,
marking a note entered in error, returning, approving and co-signing. Cancel (or Escape)
sends nothing and gives focus back; the dialog's own button carries the action out. With
JavaScript off the same buttons still work (progressive enhancement)."""

from __future__ import annotations

import pytest

from kaptools.extensions import db
from kaptools.models import Note, Review
from tests import factories
from tests.browser.conftest import confirm, shot, sign_in

pytestmark = pytest.mark.browser
TABLET = {"width": 820, "height": 1180}


@pytest.fixture
def world(supervised):
    return supervised


def note_state(app, note_id: int) -> str:
    with app.app_context():
        db.session.remove()
        return db.session.get(Note, note_id).state


def asks_first(page, button, words: str) -> None:
    """The button opens a dialog that says ``words``; Cancel and Escape change nothing."""
    button.click()
    dialog = page.locator("dialog.confirm-dialog[open]")
    dialog.wait_for()
    assert words in dialog.inner_text()
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Cancel"  # the safe choice is the default
    box = dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= TABLET["width"]
    for target in dialog.locator("button").all():
        assert target.bounding_box()["height"] >= 44
    page.keyboard.press("Escape")
    assert page.locator("dialog.confirm-dialog[open]").count() == 0
    button.click()
    page.locator("dialog.confirm-dialog[open] [data-confirm-no]").click()
    assert page.locator("dialog.confirm-dialog[open]").count() == 0
    assert page.evaluate("document.activeElement.textContent.trim()") == \
        button.inner_text().strip()


def test_every_irreversible_action_asks_first(app, live_server, chromium, world):
    base = live_server
    therapist = chromium.new_context(viewport=TABLET).new_page()
    supervisor = chromium.new_context(viewport=TABLET).new_page()
    sign_in(therapist, base, "maya", factories.PASSWORD)
    sign_in(supervisor, base, "ruth", factories.PASSWORD)
    note = world["note"]

    # Sign: asked, cancelled twice, nothing signed; then confirmed.
    therapist.goto(f"{base}/notes/{note}")
    sign = therapist.locator("main button:has-text('Save and sign')")
    asks_first(therapist, sign, "correction is a signed addendum")
    assert note_state(app, note) == "draft"
    sign.click()
    shot(therapist, "confirm-sign", width=820)
    confirm(therapist)
    therapist.wait_for_selector("text=Note signed.")
    assert note_state(app, note) == "signed"

    # Addendum and entered in error.
    therapist.fill("#addendum-body", "The client called: the date of the review was 3 June.")
    add = therapist.locator("main button:has-text('Sign and add addendum')")
    asks_first(therapist, add, "cannot be edited or removed")
    add.click()
    confirm(therapist)
    therapist.wait_for_selector("text=Addendum signed and added.")
    therapist.click("summary:has-text('Mark this note as entered in error')")
    therapist.fill("[name=reason]", "Written in the wrong client's record.")
    error = therapist.locator("main button:has-text('Mark as entered in error')")
    asks_first(therapist, error, "cannot be undone")
    assert note_state(app, note) == "signed"

    # The supervisor's decisions: return, then co-sign a second round.
    therapist.click("button:has-text('Send for review')")
    therapist.wait_for_selector("text=Sent for review")
    with app.app_context():
        review = db.session.query(Review).filter_by(note_id=note).one()
    supervisor.goto(f"{base}/reviews/{review.id}")
    back = supervisor.locator("main button:has-text('Return for revision')")
    asks_first(supervisor, back, "therapist revises")
    cosign = supervisor.locator("main button:has-text('Co-sign')")
    asks_first(supervisor, cosign, "cannot be withdrawn")
    with app.app_context():
        db.session.remove()
        assert db.session.get(Review, review.id).status == "submitted"
    cosign.click()
    confirm(supervisor)
    supervisor.wait_for_selector("text=Co-signed.")


def test_without_javascript_the_buttons_still_work(app, live_server, chromium, world):
    page = chromium.new_context(viewport=TABLET, java_script_enabled=False).new_page()
    sign_in(page, live_server, "maya", factories.PASSWORD)
    page.goto(f"{live_server}/notes/{world['note']}")
    page.click("button:has-text('Save and sign')")
    page.wait_for_selector("text=Note signed.")
    assert note_state(app, world["note"]) == "signed"
