"""The dosing record on a tablet: why it cannot be signed yet, and the dose in both units."""

from __future__ import annotations

import pytest

from kaptools import notes
from kaptools.extensions import db
from kaptools.modality import get_registry
from kaptools.models import TherapySession, User
from tests import factories
from tests.browser.conftest import shot, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def draft(app):
    with app.app_context():
        maya = factories.user("maya")
        ids = factories.client_with_course(maya)
        sess = db.session.get(TherapySession, ids["dosing"])
        template = get_registry().latest("kap-dosing")
        answers = {k: v for k, v in template.sample.items()
                   if k not in ("dose", "body_weight_kg")}
        note = notes.create_note(sess, db.session.get(User, maya.id), template, answers, {})
        db.session.commit()
        return note.id


def test_the_dose_shows_in_mg_and_per_kilogram_while_typing(live_server, page, draft):
    page.set_viewport_size({"width": 820, "height": 1180})
    sign_in(page, live_server, "maya", factories.PASSWORD)
    page.goto(f"{live_server}/notes/{draft}")
    # Signing must wait for screening and consent, and the page says so up front.
    assert page.locator(".sign-refusal").is_visible()
    assert "medical screening" in page.locator(".sign-refusal").inner_text()
    both = page.locator("[data-dose-both]")
    assert "enter the dose" in both.inner_text()
    page.fill("#body_weight_kg", "68")
    page.fill("#dose", "0.5")
    page.check("input[name=dose_unit][value=mg_per_kg]")
    assert both.inner_text() == "0.5 mg/kg = 34 mg at 68 kg"
    page.check("input[name=dose_unit][value=mg]")
    page.fill("#dose", "200")
    assert both.inner_text() == "200 mg = 2.94 mg/kg at 68 kg"
    shot(page, "dosing-editor", width=820)
    # What the server writes after a save is the same line.
    page.click("button:has-text('Save draft')")
    page.wait_for_selector("text=Draft saved.")
    assert page.locator("[data-dose-both]").inner_text() == "200 mg = 2.94 mg/kg at 68 kg"
