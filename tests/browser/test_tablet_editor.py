"""The editor on a tablet (issue 13, 820×1180): tabbing through a whole EMDR note, the field
with the focus is never under the sticky save bar; a form sent back with problems puts the
focus on the first one and counts them in proper English."""

from __future__ import annotations

import pytest

from tests import factories
from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser
TABLET = {"width": 820, "height": 1180}

FOCUSED_AND_BAR = """() => {
  const el = document.activeElement;
  const bar = document.querySelector('.sticky-actions');
  if (!el || !bar || bar.contains(el) || el === document.body) { return null; }
  const shown = (el.closest('label') || el).getBoundingClientRect();
  return {tag: el.tagName, name: el.name || el.textContent.trim().slice(0, 40),
          bottom: shown.bottom, top: shown.top, bar: bar.getBoundingClientRect().top,
          height: window.innerHeight};
}"""


def start_note(chromium, base: str, session_id: int, title: str):
    """A tablet page, signed in as Maya, on a new note of ``title`` in the session."""
    page = chromium.new_context(viewport=TABLET).new_page()
    sign_in(page, base, "maya", factories.PASSWORD)
    page.goto(f"{base}/sessions/{session_id}/notes/new")
    page.get_by_role("button", name=f"Start {title}", exact=True).click()
    page.wait_for_selector(".sticky-actions")
    return page


@pytest.fixture
def world(app):
    with app.app_context():
        maya = factories.user("maya")
        return factories.client_with_course(maya)


def test_the_focused_field_is_never_under_the_save_bar(app, live_server, chromium, world):
    page = start_note(chromium, live_server, world["integration"], "EMDR target set and session")
    page.locator("h1").click()
    checked, hidden = 0, []
    for _ in range(400):
        page.keyboard.press("Tab")
        state = page.evaluate(FOCUSED_AND_BAR)
        if state is None:
            if page.evaluate("document.activeElement.closest('.sticky-actions') !== null"):
                break  # reached the save bar: the whole note has been walked
            continue
        checked += 1
        if state["bottom"] > state["bar"] + 0.5 or state["top"] < 0:
            hidden.append(state)
    assert checked > 60, checked  # the EMDR note has many stops
    assert hidden == []


def test_a_refused_sign_focuses_the_first_problem(app, live_server, chromium, world):
    page = start_note(chromium, live_server, world["integration"], "PHQ-9 depression questionnaire")
    page.check("input[name=q1][value='1']")
    page.click("button:has-text('Save and sign')")
    page.locator("dialog.confirm-dialog[open] [data-confirm-yes]").click()
    page.wait_for_selector(".form-errors")
    message = page.locator(".form-errors").inner_text()
    assert "8 answers need attention" in message, message
    focused = page.evaluate("[document.activeElement.name, "
                            "document.activeElement.getAttribute('aria-invalid')]")
    assert focused == ["q2", "true"]
    state = page.evaluate(FOCUSED_AND_BAR)
    assert state["bottom"] <= state["bar"] and state["top"] >= 0
    # The page is not reloaded under the reader: the messages stay, and autosave keeps
    # what was typed (it used to restore a copy and reload, losing the messages).
    page.wait_for_selector("[data-save-state]:has-text('Autosaved')", timeout=15000)
    assert page.locator(".form-errors").is_visible()
    assert page.locator("input[name=q1][value='1']").is_checked()


def test_reference_pickers_follow_the_rows_without_saving(app, live_server, chromium, world):
    """The EMDR "target worked on today" offers targets as they are typed, keeps the
    choice when a title changes, and the saved note refers to the right target."""
    from kaptools.extensions import db
    from kaptools.models import Note

    page = start_note(chromium, live_server, world["integration"], "EMDR target set and session")
    picker = page.locator("select[name=target_worked]")
    assert picker.locator("option").all_inner_texts() == ["— choose —"]
    page.fill("input[name='targets-0-label']", "Car crash, 2019")
    page.locator("fieldset[data-group=targets] > .add-row").click()
    page.fill("input[name='targets-1-label']", "Hospital corridor")
    assert picker.locator("option").all_inner_texts() == [
        "— choose —", "Car crash, 2019", "Hospital corridor"]
    picker.select_option(label="Hospital corridor")
    page.fill("input[name='targets-1-label']", "Hospital corridor, night")
    assert picker.locator("option:checked").inner_text() == "Hospital corridor, night"
    page.click("button:has-text('Save draft')")
    page.wait_for_selector("text=Draft saved")
    note_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    with app.app_context():
        answers = db.session.get(Note, note_id).answers
    second = answers["targets"][1]
    assert second["label"] == "Hospital corridor, night"
    assert answers["target_worked"] == second["item_id"]
