"""A supervisor and a therapist complete a review cycle in the browser, with JavaScript
and without it (every step is a plain form; scripts only make it smoother: comments go in
without a reload, irreversible actions ask first)."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from kaptools.extensions import db
from kaptools.models import Review
from tests import factories
from tests.browser.conftest import confirm as confirm_dialog
from tests.browser.conftest import shot, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def world(supervised):
    return supervised


def latest(app, note_id):
    with app.app_context():
        db.session.remove()
        return db.session.scalar(select(Review).where(Review.note_id == note_id)
                                 .order_by(Review.round.desc()))


@pytest.mark.parametrize("scripts", [True, False], ids=["with-js", "without-js"])
def test_submit_comment_return_revise_resubmit_diff_cosign(app, live_server, chromium, world,
                                                           scripts):
    base = live_server
    tablet = {"viewport": {"width": 820, "height": 1180}, "java_script_enabled": scripts}
    therapist = chromium.new_context(**tablet).new_page()
    supervisor = chromium.new_context(**tablet).new_page()

    def confirm(page):
        if scripts:
            confirm_dialog(page)

    sign_in(therapist, base, "maya", factories.PASSWORD)
    sign_in(supervisor, base, "ruth", factories.PASSWORD)
    note_url = f"{base}/notes/{world['note']}"

    # Therapist submits the draft.
    therapist.goto(note_url)
    therapist.click("button:has-text('Send for review')")
    therapist.wait_for_selector("text=Sent for review")

    # Supervisor: queue → review page → two field comments → return.
    supervisor.goto(base + "/")
    supervisor.click("section:has-text('Waiting for your review') a")
    supervisor.wait_for_load_state()
    if scripts:  # a mark that a reload would wipe out
        supervisor.evaluate("window.notReloaded = true")
    for key, body in [("evidence_against", "Add the positive review from June."),
                      ("balanced_thought", "Use the client's own words here.")]:
        supervisor.locator(f"details:has(#c-{key}) summary").click()
        supervisor.fill(f"#c-{key}", body)
        supervisor.locator(f"details:has(#c-{key}) button").click()
        thread = supervisor.locator(f'[data-comments-for="{key}"]')
        thread.get_by_text(body).wait_for()
        if scripts:
            assert supervisor.evaluate("window.notReloaded === true")
            assert supervisor.input_value(f"#c-{key}") == ""
            supervisor.locator("[role=status]", has_text="Comment added.").wait_for(
                state="attached")
        else:
            supervisor.wait_for_selector("text=Comment added.")
    # An empty comment is refused next to its box, in place.
    supervisor.locator("#general-comment").fill("   ")
    supervisor.get_by_role("button", name="Add general comment").click()
    supervisor.locator("#general-comment-error").wait_for()
    shot(supervisor, "review-commented" + ("" if scripts else "-nojs"), width=820)
    supervisor.click("button:has-text('Return for revision')")
    confirm(supervisor)
    supervisor.wait_for_selector("text=Returned to the therapist")

    # Therapist: dashboard → note with comments next to the fields → revise → sign.
    therapist.goto(base + "/")
    therapist.click("section:has-text('Returned by your supervisor') a")
    assert therapist.locator(".review-comments:has-text('positive review from June')").is_visible()
    shot(therapist, "editor-with-comments", width=820)
    therapist.fill("#evidence_against", "Last review was positive, and the June review too.")
    therapist.fill("#balanced_thought", "My manager writes short emails to everyone.")
    therapist.click("button:has-text('Save and sign')")
    confirm(therapist)
    therapist.wait_for_selector("text=Note signed.")
    therapist.click("button:has-text('Send for review')")
    therapist.wait_for_selector("text=Sent for review")

    # Supervisor: the diff between rounds, then co-sign.
    second = latest(app, world["note"])
    assert second.round == 2
    supervisor.goto(f"{base}/reviews/{second.id}")
    changes = supervisor.locator("#changes")
    assert "June review too" in changes.inner_text()
    assert "Note state" in changes.inner_text()
    shot(supervisor, "review-diff", width=820)
    supervisor.click("button:has-text('Co-sign')")
    confirm(supervisor)
    supervisor.wait_for_selector("text=Co-signed.")
    assert latest(app, world["note"]).status == "cosigned"

    # The PDF carries the co-signature.
    response = therapist.request.get(f"{base}/sessions/{world['integration']}/documents/"
                                     "summary.pdf")
    assert response.ok
    text = re.sub(r"\s+", " ", " ".join(
        p.extract_text() for p in PdfReader(io.BytesIO(response.body())).pages))
    assert "Co-signed by Ruth" in text
    therapist.goto(note_url)
    assert therapist.locator("text=Co-signed by Ruth").is_visible()
    shot(therapist, "note-cosigned", width=820)
