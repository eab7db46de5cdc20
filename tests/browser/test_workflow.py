"""A therapist's day in the browser: from a new client to signed notes, nothing lost."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from kaptools.extensions import db
from kaptools.models import Note, NoteAutosave
from kaptools.timeutil import today
from tests import factories
from tests.browser.conftest import confirm, shot, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def therapist(app):
    with app.app_context():
        factories.user("maya")


def note_id_from(url: str) -> int:
    return int(re.search(r"/notes/(\d+)", url).group(1))


def add_rows(page, group: str, count: int) -> None:
    """Click 'Add …' until the group has ``count`` rows (one blank row is already shown)."""
    fieldset = page.locator(f'fieldset[data-group="{group}"]').first
    while fieldset.locator(":scope > .rows > .row").count() < count:
        fieldset.locator(":scope > .add-row").click()


def pick(page, name: str, value: str) -> None:
    page.locator(f'label.option:has(input[name="{name}"][value="{value}"])').click()


def test_a_therapist_documents_an_intensive_course(app, live_server, page, therapist):
    base = live_server
    sign_in(page, base, "maya", factories.PASSWORD)
    shot(page, "dashboard")

    # Client, course, dosing and integration sessions -------------------------
    page.click("text=Add a client")
    page.fill("#code", "KT-0300")
    page.fill("#display_name", "R.")
    page.click("button:has-text('Save client')")
    page.click("text=New course")
    page.fill("#title", "Winter intensive")
    page.select_option("#format", "intensive")
    # Dates in the recent past: notes are signed on or after their session's day.
    start = today() - timedelta(days=10)
    page.fill("#starts_on", start.isoformat())
    page.fill("#intentions", "Sleep through the night; meet worry with curiosity.")
    page.click("button:has-text('Save course')")
    page.click("text=Add session")
    page.select_option("#kind", "dosing")
    page.fill("#session_date", (start + timedelta(days=1)).isoformat())
    page.click("button:has-text('Save session')")
    dosing_url = page.url
    page.goto(dosing_url.rsplit("/sessions", 1)[0] + "/courses/1")
    page.click("text=Add session")
    page.select_option("#kind", "integration")
    page.fill("#session_date", (start + timedelta(days=2)).isoformat())
    page.select_option("#follows_id",
                       label=f"Dosing session of {start + timedelta(days=1):%d %b %Y}")
    page.fill("#summary", "First integration")
    page.click("button:has-text('Save session')")
    session_url = page.url
    shot(page, "session")

    # CBT thought record: 3 moods and 4 automatic thoughts -------------------
    page.click("text=Add a note")
    page.get_by_role("button", name="Start CBT thought record (seven columns)", exact=True).click()
    page.fill("#situation", "Sunday evening, an email titled 'Quick chat tomorrow'.")
    add_rows(page, "moods", 3)
    for i, (mood, before, after) in enumerate([("Anxiety", 85, 40), ("Shame", 50, 20),
                                                ("Sadness", 30, 25)]):
        page.fill(f"#moods-{i}-mood", mood)
        page.fill(f"#moods-{i}-intensity_before", str(before))
        page.fill(f"#moods-{i}-intensity_after", str(after))
    add_rows(page, "thoughts", 4)
    thoughts = ["Something is wrong.", "I am going to be fired.",
                "Everyone can see I am not coping.", "I should shrug this off."]
    for i, text in enumerate(thoughts):
        page.fill(f"#thoughts-{i}-thought", text)
    page.check('input[name="thoughts-1-distortions"][value="catastrophising"]')
    page.fill("#balanced_thought", "A short email is how my manager writes to everyone.")
    page.click("button:has-text('Save draft')")
    page.wait_for_selector("text=Draft saved.")
    page.select_option("#hot_thought", label="I am going to be fired.")
    page.click("button:has-text('Save draft')")
    page.wait_for_selector("text=Draft saved.")
    cbt_id = note_id_from(page.url)
    shot(page, "editor-cbt")
    with app.app_context():
        answers = db.session.get(Note, cbt_id).answers
    assert [m["mood"] for m in answers["moods"]] == ["Anxiety", "Shame", "Sadness"]
    assert [t["thought"] for t in answers["thoughts"]] == thoughts
    hot = next(t for t in answers["thoughts"] if t["item_id"] == answers["hot_thought"])
    assert hot["thought"] == "I am going to be fired."
    assert answers["thoughts"][1]["distortions"] == ["catastrophising"]

    # EMDR: a target and 5 BLS sets, SUD falling -------------------------------
    page.goto(session_url)
    page.click("text=Add a note")
    page.get_by_role("button", name="Start EMDR target set and session", exact=True).click()
    page.fill("#targets-0-label", "Failed exam at 16")
    pick(page, "targets-0-prong", "past")
    page.click("button:has-text('Save draft')")
    page.wait_for_selector("text=Draft saved.")
    page.select_option("#target_worked", label="Failed exam at 16")
    pick(page, "sud_baseline", "7")
    pick(page, "voc_baseline", "2")
    add_rows(page, "bls_sets", 5)
    suds = [6, 5, 3, 2, 1]
    for i, sud in enumerate(suds):
        page.fill(f"#bls_sets-{i}-set_number", str(i + 1))
        page.fill(f"#bls_sets-{i}-report", f"Report after set {i + 1}")
        pick(page, f"bls_sets-{i}-returned_to_target", "yes")
        # The SUD appears only once 'returned to target' is answered yes.
        pick(page, f"bls_sets-{i}-sud", str(sud))
    page.click("button:has-text('Save draft')")
    page.wait_for_selector("text=Draft saved.")
    emdr_id = note_id_from(page.url)
    shot(page, "editor-emdr")
    with app.app_context():
        answers = db.session.get(Note, emdr_id).answers
    assert [s["sud"] for s in answers["bls_sets"]] == suds
    assert answers["sud_baseline"] == 7 and answers["voc_baseline"] == 2

    # IFS: 4 parts, then 3 relationships between them --------------------------
    page.goto(session_url)
    page.click("text=Add a note")
    page.get_by_role("button", name="Start IFS parts map", exact=True).click()
    add_rows(page, "parts", 4)
    parts = [("The Planner", "manager"), ("The Critic", "manager"),
             ("The Scroller", "firefighter"), ("Little one", "exile")]
    for i, (name, role) in enumerate(parts):
        page.fill(f"#parts-{i}-name", name)
        pick(page, f"parts-{i}-role", role)
    page.click("button:has-text('Save draft')")
    page.wait_for_selector("text=Draft saved.")
    add_rows(page, "relationships", 3)
    links = [("The Planner", "protects", "Little one"),
             ("The Scroller", "protects", "Little one"),
             ("The Planner", "polarised", "The Scroller")]
    for i, (a, kind, b) in enumerate(links):
        page.select_option(f"#relationships-{i}-from_part", label=a)
        pick(page, f"relationships-{i}-kind", kind)
        page.select_option(f"#relationships-{i}-to_part", label=b)
    page.click("button:has-text('Save draft')")
    page.wait_for_selector("text=Draft saved.")
    ifs_id = note_id_from(page.url)
    shot(page, "editor-ifs")
    with app.app_context():
        answers = db.session.get(Note, ifs_id).answers
    names = {p["item_id"]: p["name"] for p in answers["parts"]}
    assert [(names[r["from_part"]], r["kind"], names[r["to_part"]])
            for r in answers["relationships"]] == links

    # Close the tab mid-typing; the text is there when the note is reopened ----
    page.goto(f"{base}/notes/{cbt_id}")
    page.fill("#evidence_against", "The last review was positive and warm.")
    page.close()
    with app.app_context():
        for _ in range(50):
            db.session.remove()
            if db.session.get(NoteAutosave, cbt_id) is not None:
                break
            import time

            time.sleep(0.1)
    page = page.context.new_page()
    page.goto(f"{base}/notes/{cbt_id}")
    assert page.input_value("#evidence_against") == "The last review was positive and warm."
    assert page.locator("[data-restored]").is_visible()
    shot(page, "editor-restored")

    # Sign, then add an addendum ----------------------------------------------
    page.fill("#next_steps", "Name the first worry thought and return to the evening.")
    page.click("button:has-text('Save and sign')")
    confirm(page)
    page.wait_for_selector("text=Note signed.")
    assert page.locator("text=Content hash (SHA-256)").is_visible()
    with app.app_context():
        signed = db.session.get(Note, cbt_id)
        assert signed.state == "signed"
        assert signed.answers["evidence_against"] == "The last review was positive and warm."
        assert db.session.get(NoteAutosave, cbt_id) is None
    page.fill("#addendum-body", "Client emailed: the Monday chat was about holiday cover.")
    page.click("button:has-text('Sign and add addendum')")
    confirm(page)
    page.wait_for_selector("text=Addendum signed and added.")
    assert page.locator("text=holiday cover").is_visible()
    shot(page, "note-signed")
    shot(page, "note-signed", width=390)

    page.goto(base + "/clients/1")
    shot(page, "client")
    with app.app_context():
        states = dict(db.session.execute(select(Note.id, Note.state)).all())
    assert states[cbt_id] == "signed" and states[emdr_id] == "draft"
