"""Writing notes through plain form posts: round-trips, messages, locking, privacy."""

from __future__ import annotations

import re
from datetime import timedelta
from unittest.mock import ANY

import pytest
from sqlalchemy import select

from kaptools import notes
from kaptools.access import Scope
from kaptools.extensions import db
from kaptools.modality import get_registry
from kaptools.modality.answers import carried_answers
from kaptools.modality.registry import builtin_dir, load_registry
from kaptools.models import AuditEvent, Note, User
from kaptools.timeutil import today
from tests import factories
from tests.conftest import Browser
from tests.notes_helpers import form_payload, new_note

REGISTRY = load_registry(builtin_dir())
SLUGS = sorted(slug for slug, _ in REGISTRY.templates)


@pytest.fixture
def world(app):
    with app.app_context():
        maya = factories.user("maya")
        factories.user("tomas")
        ruth = factories.user("ruth", role="supervisor")
        ids = factories.client_with_course(maya)
        factories.supervise(ruth, maya, starts=today() - timedelta(days=30))
        return ids


@pytest.fixture
def maya(browser, world):
    browser.login("maya", factories.PASSWORD)
    return browser


def stored(app, url: str) -> dict:
    with app.app_context():
        note = db.session.get(Note, int(url.rsplit("/", 1)[1]))
        return {**note.answers, **notes.private_answers(note, note.author)}


@pytest.mark.parametrize("slug", SLUGS)
def test_every_template_round_trips_through_the_form(app, maya, world, slug):
    template = REGISTRY.latest(slug)
    url = new_note(maya, world["integration"], slug)
    resp = maya.post(url, form_payload(template, template.sample))
    assert resp.status_code == 302, re.findall(r'class="error"[^>]*>([^<]+)',
                                               resp.get_data(as_text=True))
    first = stored(app, url)
    assert first == template.sample
    # Reload the editor and post exactly what it shows: nothing changes.
    page = maya.get(url).get_data(as_text=True)
    assert 'name="note_version" value="2"' in page
    resp = maya.post(url, form_payload(template, first, version=2))
    assert resp.status_code == 302
    assert stored(app, url) == template.sample


BAD_VALUES = [
    ("emdr-target-set", "sud_baseline", "14", "Choose a whole number from 0 to 10."),
    ("emdr-target-set", "voc_baseline", "0", "Choose a whole number from 1 to 7."),
    ("emdr-target-set", "sud_baseline", "3.5", "Choose a whole number from 0 to 10."),
    ("emdr-target-set", "nc_theme", "made_up", "Choose one of the options shown."),
    ("emdr-target-set", "nc", "I am\x00 safe", "NUL character"),
    ("cbt-thought-record", "balanced_belief", "101", "Enter a number from 0 to 100."),
    ("cbt-thought-record", "balanced_belief", "NaN", "Enter a whole number"),
    ("kap-dosing", "dose", "NaN", "Enter a number such as 12 or 0.5."),
    ("kap-dosing", "dose", "sNaN", "Enter a number such as 12 or 0.5."),
    ("kap-dosing", "dose", "inf", "Enter a number such as 12 or 0.5."),
    ("kap-dosing", "dose", "-5", "Enter a number from 0 to 2000."),
    ("kap-dosing", "time_given", "25:99", "Not a valid time value."),
    ("kap-dosing", "baseline_hr", "1e3", "Enter a whole number"),
    ("art-script", "scene_label", "x" * 121, "Keep this under 120 characters"),
    ("ifs-parts-map", "self_cs", "bravery", "Choose only from the options shown."),
]


@pytest.mark.parametrize("slug, key, value, message", BAD_VALUES)
def test_bad_values_get_a_message_and_keep_every_other_answer(app, maya, world, slug, key,
                                                               value, message):
    template = REGISTRY.latest(slug)
    url = new_note(maya, world["integration"], slug)
    payload = form_payload(template, template.sample)
    payload[key] = [value]
    resp = maya.post(url, payload)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 422
    errors = re.findall(rf'id="{key}-error">([^<]+)<', page)
    assert errors and message in errors[0], errors
    assert "Everything you typed is still here." in page
    # Another answer the therapist typed is still in the form.
    other = next(f for f in template.fields
                 if f.type in ("text", "longtext") and f.key != key and f.key in template.sample)
    from markupsafe import escape
    assert str(escape(template.sample[other.key])) in page
    assert stored(app, url) == {}


def test_too_many_rows_is_explained(app, maya, world):
    template = REGISTRY.latest("cbt-thought-record")
    answers = dict(template.sample)
    answers["moods"] = [{"item_id": f"m{i:07d}", "mood": f"Mood {i}", "intensity_before": 50}
                        for i in range(11)]
    url = new_note(maya, world["integration"], "cbt-thought-record")
    resp = maya.post(url, form_payload(template, answers))
    assert resp.status_code == 422
    assert "At most 10 are allowed; remove 1." in resp.get_data(as_text=True)


def test_drafts_may_be_incomplete_but_signing_needs_required_answers(app, maya, world):
    template = REGISTRY.latest("phq-9")
    url = new_note(maya, world["integration"], "phq-9")
    resp = maya.post(url, form_payload(template, {"q1": 2, "q9": 1}))
    assert resp.status_code == 302
    resp = maya.post(url, form_payload(template, {"q1": 2, "q9": 1}, version=2, action="sign"))
    page = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "The note was not signed" in page
    assert re.search(r'id="q2-error">Please answer this.<', page)
    # Item 9 above zero makes its follow-up field required.
    assert re.search(r'id="risk_follow_up-error">Please answer this.<', page)


def test_hidden_conditional_answers_are_not_kept(app, maya, world):
    template = REGISTRY.latest("art-script")
    answers = {**template.sample, "no_disclosure": True, "scene_description": "Shared text"}
    url = new_note(maya, world["integration"], "art-script")
    assert maya.post(url, form_payload(template, answers)).status_code == 302
    assert "scene_description" not in stored(app, url)


def test_signing_locks_the_note_and_a_raw_post_changes_nothing(app, maya, world):
    template = REGISTRY.latest("cbt-thought-record")
    url = new_note(maya, world["integration"], "cbt-thought-record")
    maya.post(url, form_payload(template, template.sample))
    resp = maya.post(url, form_payload(template, template.sample, version=2, action="sign"))
    assert resp.status_code == 302
    page = maya.get(url).get_data(as_text=True)
    assert "Signed by Maya" in page and "verified" in page
    with app.app_context():
        note = db.session.get(Note, int(url.rsplit("/", 1)[1]))
        assert note.state == "signed" and len(note.content_hash) == 64
        before = (note.answers, note.version)
    tampered = form_payload(template, {**template.sample, "situation": "Rewritten"}, version=3)
    resp = maya.post(url, tampered)
    assert resp.status_code == 409
    assert "signed and locked; nothing was changed" in resp.get_data(as_text=True)
    with app.app_context():
        note = db.session.get(Note, int(url.rsplit("/", 1)[1]))
        assert (note.answers, note.version) == before


def test_addendum_on_a_signed_note(app, maya, world):
    template = REGISTRY.latest("gad-7")
    url = new_note(maya, world["integration"], "gad-7")
    maya.post(url, form_payload(template, template.sample, action="sign"))
    resp = maya.post(url + "/addenda", {"body": "Client clarified item 4 afterwards."})
    assert resp.status_code == 302
    page = maya.get(url).get_data(as_text=True)
    assert "Client clarified item 4 afterwards." in page


def test_only_the_author_of_a_signed_note_is_offered_an_addendum_or_entered_in_error(
        app, maya, world, make_browser):
    template = REGISTRY.latest("gad-7")
    url = new_note(maya, world["integration"], "gad-7")
    offers = (f'action="{url}/addenda"', f'action="{url}/entered-in-error"',
              "Mark this note as entered in error")

    def offered(resp, status: int = 200) -> list[bool]:
        assert resp.status_code == status
        page = resp.get_data(as_text=True)
        assert "Signed by" in page
        return [offer in page for offer in offers]

    maya.post(url, form_payload(template, template.sample, action="sign"))
    assert offered(maya.get(url)) == [True] * 3
    # An empty addendum comes back with its message, the offers still there.
    assert offered(maya.post(url + "/addenda", {"body": "   "}), 422) == [True] * 3
    ruth = make_browser()
    ruth.login("ruth", factories.PASSWORD)
    assert offered(ruth.get(url)) == [False] * 3
    maya.post(url + "/entered-in-error", {"reason": "Synthetic: wrong client."})
    assert offered(maya.get(url)) == [False] * 3


def test_two_tabs_get_a_conflict_view_and_nothing_is_overwritten(app, maya, world):
    template = REGISTRY.latest("cbt-thought-record")
    url = new_note(maya, world["integration"], "cbt-thought-record")
    first = {**template.sample, "situation": "Version from tab one"}
    second = {**template.sample, "situation": "Version from tab two"}
    assert maya.post(url, form_payload(template, first, version=1)).status_code == 302
    resp = maya.post(url, form_payload(template, second, version=1))
    page = resp.get_data(as_text=True)
    assert resp.status_code == 409
    assert "changed elsewhere" in page
    assert "Version from tab one" in page and "Version from tab two" in page
    assert stored(app, url)["situation"] == "Version from tab one"


def test_private_notes_are_the_authors_alone(app, browser, world):
    browser.login("ruth", factories.PASSWORD)
    page = browser.get(f"/notes/{world['note']}").get_data(as_text=True)
    assert "I am going to be fired" in page  # record content is visible to the supervisor
    assert "client smiled" not in page and "Process notes" not in page


def test_supervisor_cannot_edit_a_note(app, browser, world):
    browser.login("ruth", factories.PASSWORD)
    template = REGISTRY.latest("cbt-thought-record")
    resp = browser.post(f"/notes/{world['note']}",
                        form_payload(template, {**template.sample, "situation": "Edited"}))
    assert resp.status_code == 403
    with app.app_context():
        assert db.session.get(Note, world["note"]).answers["situation"] != "Edited"


def test_start_from_previous_carries_the_map_forward(app, maya, world):
    with app.app_context():
        from kaptools.models import TherapySession

        later = TherapySession(course_id=world["course"], kind="integration",
                               session_date=today(), follows_id=world["dosing"])
        db.session.add(later)
        db.session.commit()
        later_id = later.id
    maya.get(f"/sessions/{later_id}/notes/new")
    resp = maya.post(f"/sessions/{later_id}/notes/new",
                     {"modality": "cbt-thought-record", "from_note": world["note"]})
    assert resp.status_code == 302
    carried = stored(app, resp.headers["Location"])
    template = REGISTRY.latest("cbt-thought-record")
    # The map comes along (situation, thoughts, distortions); ratings taken that day do not.
    assert carried == carried_answers(template.fields, template.sample)
    assert carried["thoughts"] and "belief" not in carried["thoughts"][0]
    assert carried["situation"] == template.sample["situation"]


def test_audit_records_note_actions_without_their_text(app, maya, world):
    template = REGISTRY.latest("cbt-thought-record")
    url = new_note(maya, world["integration"], "cbt-thought-record")
    maya.post(url, form_payload(template, template.sample, action="sign"))
    with app.app_context():
        events = list(db.session.scalars(select(AuditEvent)))
        actions = {e.action for e in events}
        assert {"note.created", "note.saved", "note.signed"} <= actions
        dump = repr([(e.detail, e.object_type) for e in events])
        for value in ("manager", "fired", "Anxiety"):
            assert value not in dump


def test_registry_is_loaded_in_the_app(app):
    with app.app_context():
        assert get_registry().latest("gad-7").title.startswith("GAD-7")
        assert db.session.scalar(select(User).limit(1)) is None


def test_the_note_chooser_starts_with_what_fits_the_session_and_keeps_names(app, maya, world):
    """On an integration session the integration note comes first, the dosing record is
    among the other notes, and titles keep their capitals on every button."""
    page = maya.get(f"/sessions/{world['integration']}/notes/new").get_data(as_text=True)
    suggested, others = page.split('id="others"')
    first_card = suggested.split('class="card modality-card"')[1]
    assert "Integration session note" in first_card
    assert 'aria-label="Start EMDR target set and session"' in suggested
    assert 'aria-label="Start KAP dosing session record"' in others
    assert "emdr target" not in page and "Start pcl" not in page
    page = maya.get(f"/sessions/{world['dosing']}/notes/new").get_data(as_text=True)
    first_card = page.split('id="others"')[0].split('class="card modality-card"')[1]
    assert "KAP dosing session record" in first_card


def test_a_long_note_has_a_map_of_its_sections_and_one_markdown_hint(app, maya, world):
    emdr = load_registry(builtin_dir()).latest("emdr-target-set")
    page = maya.get(new_note(maya, world["integration"], "emdr-target-set")).get_data(
        as_text=True)
    links = re.findall(r'<a href="#(section-[\w-]+)">', page.split('class="note-map"')[1]
                       .split("</nav>")[0])
    assert links == [f"section-{s.key}" for s in emdr.sections]
    assert all(f'id="{anchor}"' in page for anchor in links)
    assert page.count("take Markdown") == 1 and page.count("lists with") == 1


def test_a_notes_page_shows_all_it_has_whoever_reads_it(app, maya, world):
    """The editor and the reading view learn in the statement that finds the note whether
    it has process notes, addenda, a co-signature, reviews or kept editor states; each
    shows on the page when there is one, and only for whom it is."""
    url = f"/notes/{world['note']}"
    private = "client smiled at the manager"
    assert private in maya.get(url).get_data(as_text=True)  # the author's editor
    template = REGISTRY.latest("cbt-thought-record")
    answers = {**template.sample}
    assert maya.post(url, form_payload(template, answers, action="sign")).status_code == 302
    page = maya.get(url).get_data(as_text=True)
    assert "Process notes" in page and private in page  # the author's reading view
    assert "Addenda" not in page and "Co-signed by" not in page
    maya.post(url + "/addenda", {"body": "Synthetic: the client called to add a detail."})
    page = maya.get(url).get_data(as_text=True)
    assert "Addenda" in page and "the client called to add a detail" in page
    ruth = Browser(app.test_client())
    ruth.login("ruth", factories.PASSWORD)
    page = ruth.get(url).get_data(as_text=True)
    assert "the client called to add a detail" in page  # a supervisor reads the addenda,
    assert "Process notes" not in page and private not in page  # never the process notes,
    with app.app_context():  # which do not even reach her page (whatever it would show)
        for username, expected in (("ruth", {}), ("maya", {"process_notes": ANY})):
            user = db.session.scalar(select(User).where(User.username == username))
            found = notes.note_page(Scope(user), world["note"])
            assert found.private == expected and found.has_addenda and not found.cosigned
