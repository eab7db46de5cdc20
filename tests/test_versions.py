"""Changing a template never changes old notes: they keep their own version."""

from __future__ import annotations

from kaptools.extensions import db
from kaptools.modality import get_registry
from kaptools.modality.answers import validate_answers
from kaptools.models import Note
from tests import factories
from tests.notes_helpers import form_payload, new_note

V1 = """
slug = "mood-check"
version = 1
title = "Mood check"

[[sections]]
key = "main"
title = "Main"

[[sections.fields]]
key = "mood"
type = "text"
label = "Mood in one word"
required = true

[[sections.fields]]
key = "sud"
type = "scale"
scale = "sud"
label = "SUD now"
"""

V2 = V1.replace("version = 1", "version = 2").replace(
    'label = "Mood in one word"', 'label = "How the client named the mood"') + """
[[sections.fields]]
key = "sleep_hours"
type = "decimal"
label = "Hours slept last night"
min = 0
max = 24
"""


def test_an_old_note_keeps_validating_and_rendering_with_its_version(app_factory, tmp_path):
    extra = tmp_path / "clinic"
    (extra / "mood-check").mkdir(parents=True)
    (extra / "mood-check" / "v1.toml").write_text(V1)
    app = app_factory(MODALITIES_EXTRA_DIR=str(extra))
    with app.app_context():
        ids = factories.client_with_course(factories.user("maya"))
        v1 = get_registry().latest("mood-check")
    browser = _browser(app)
    url = new_note(browser, ids["integration"], "mood-check")
    assert browser.post(url, form_payload(v1, {"mood": "Restless", "sud": 6})).status_code == 302

    # The clinic publishes version 2: a renamed label and a new field.
    (extra / "mood-check" / "v2.toml").write_text(V2)
    app2 = app_factory(MODALITIES_EXTRA_DIR=str(extra), DATABASE_URL=app.config["DATABASE_URL"])
    with app2.app_context():
        registry = get_registry()
        assert registry.latest("mood-check").version == 2
        note = db.session.get(Note, int(url.rsplit("/", 1)[1]))
        assert note.template_version == 1
        old = registry.get("mood-check", note.template_version)
        assert validate_answers(old, note.answers) == []
    browser2 = _browser(app2)
    page = browser2.get(url).get_data(as_text=True)
    assert "Mood in one word" in page and "How the client named the mood" not in page
    assert "Hours slept" not in page
    assert "Template version 1" in page
    # Saving the old note keeps it on version 1.
    resp = browser2.post(url, form_payload(old, {"mood": "Calmer", "sud": 3}, version=2))
    assert resp.status_code == 302
    # A new note uses version 2, with the new label and field.
    url2 = new_note(browser2, ids["integration"], "mood-check")
    page = browser2.get(url2).get_data(as_text=True)
    assert "How the client named the mood" in page and "Hours slept last night" in page
    with app2.app_context():
        assert db.session.get(Note, int(url.rsplit("/", 1)[1])).template_version == 1
        assert db.session.get(Note, int(url2.rsplit("/", 1)[1])).template_version == 2


def _browser(app):
    from tests.conftest import Browser

    browser = Browser(app.test_client())
    browser.login("maya", factories.PASSWORD)
    return browser
