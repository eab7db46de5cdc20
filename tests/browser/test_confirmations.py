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


def test_a_draft_and_an_empty_session_are_discarded_then_restored_by_an_admin(
        app, live_server, chromium, world):
    base = live_server
    with app.app_context():
        factories.user("ada", role="admin")
    therapist = chromium.new_context(viewport=TABLET).new_page()
    admin = chromium.new_context(viewport=TABLET).new_page()
    sign_in(therapist, base, "maya", factories.PASSWORD)
    sign_in(admin, base, "ada", factories.PASSWORD, lands_on="/admin/users")

    # The draft: asked first, then gone from the session.
    therapist.goto(f"{base}/notes/{world['note']}")
    button = therapist.get_by_role("button", name="Discard draft")
    asks_first(therapist, button, "restore it within 30 days")
    button.click()
    confirm(therapist)
    therapist.wait_for_url(f"{base}/sessions/{world['integration']}")
    assert "Draft discarded" in therapist.inner_text(".flash")
    assert therapist.locator(f"a[href='/notes/{world['note']}']").count() == 0

    # The session, now empty: asked first, then gone from the course.
    session_button = therapist.get_by_role("button", name="Discard session")
    asks_first(therapist, session_button, "restore it within 30 days")
    session_button.click()
    confirm(therapist)
    therapist.wait_for_url(f"{base}/courses/{world['course']}")
    assert therapist.locator(f"a[href='/sessions/{world['integration']}']").count() == 0
    shot(therapist, "discarded-session", width=TABLET["width"])

    # The administrator restores the session, and then the draft discarded before it.
    admin.goto(f"{base}/admin/discarded")
    shot(admin, "admin-discarded", width=TABLET["width"])
    rows = admin.locator("tbody tr")
    assert rows.count() == 2
    admin.get_by_role("button", name="Restore Integration session").click()
    assert "Restored: Integration session" in admin.inner_text(".flash")
    admin.get_by_role("button", name="Restore Draft").click()
    assert "Restored: Draft" in admin.inner_text(".flash")
    therapist.goto(f"{base}/sessions/{world['integration']}")
    assert therapist.locator(f"a[href='/notes/{world['note']}']").count() == 1
