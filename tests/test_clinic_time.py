"""The clinic's own time (issue 13): "today" is the clinic's date and every time is shown in
its zone, on pages and on paper. A clinic in Los Angeles at 20:00 on 26 November (04:00 UTC
on the 27th) is still on the 26th."""

from __future__ import annotations

import io
import re
import sys
from datetime import UTC, date, datetime

import pytest
from pypdf import PdfReader

from kaptools import documents, notes, timeutil
from kaptools.extensions import db
from kaptools.models import Course, Note, TherapySession
from tests import factories
from tests.conftest import Browser

EVENING_IN_LOS_ANGELES = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)  # 20:00 PST on the 26th


@pytest.fixture
def clinic(app_factory, monkeypatch):
    """An app whose every "now" is 04:00 UTC on 27 November 2026 (sessions and column
    defaults aside, which keep the real clock: sign-in sessions do not expire here)."""

    def build(**config):
        app = app_factory(SESSION_IDLE_MINUTES=60 * 24 * 3650,
                          SESSION_ABSOLUTE_HOURS=24 * 3650, **config)
        original = timeutil.utcnow
        for name, module in list(sys.modules.items()):
            if name.startswith("kaptools") and getattr(module, "utcnow", None) is original:
                monkeypatch.setattr(module, "utcnow", lambda: EVENING_IN_LOS_ANGELES)
        return app

    return build


def _sessions_on_the_26th_and_27th(app):
    with app.app_context():
        maya = factories.user("maya")
        ids = factories.client_with_course(maya)
        course = db.session.get(Course, ids["course"])
        evening = TherapySession(course=course, kind="integration",
                                 session_date=date(2026, 11, 26), summary="Tonight's session")
        tomorrow = TherapySession(course=course, kind="integration",
                                  session_date=date(2026, 11, 27), summary="Tomorrow's session")
        db.session.add_all([evening, tomorrow])
        db.session.flush()
        from kaptools.modality import get_registry

        template = get_registry().latest("phq-9")
        tonight = notes.create_note(evening, maya, template, dict(template.sample), {})
        later = notes.create_note(tomorrow, maya, template, dict(template.sample), {})
        db.session.commit()
        return {**ids, "tonight": tonight.id, "later": later.id, "evening": evening.id}


def test_los_angeles_in_the_evening_is_still_today_there(clinic):
    app = clinic(CLINIC_TIMEZONE="America/Los_Angeles")
    ids = _sessions_on_the_26th_and_27th(app)
    with app.app_context():
        assert timeutil.today() == date(2026, 11, 26)
        # The note of the 27th belongs to a session that has not happened yet there.
        later = db.session.get(Note, ids["later"])
        assert "in the future" in (notes.sign_refusal(later) or "")
        tonight = db.session.get(Note, ids["tonight"])
        notes.sign(tonight, tonight.author)
        db.session.commit()

    maya = Browser(app.test_client())
    maya.login("maya", factories.PASSWORD)
    dashboard = maya.get("/").get_data(as_text=True)
    assert "Thursday 26 November 2026" in dashboard
    assert "Tonight&#39;s session" in dashboard or "Tonight's session" in dashboard
    assert "Tomorrow" not in dashboard
    page = maya.get(f"/notes/{ids['tonight']}").get_data(as_text=True)
    assert "on 26 Nov 2026, 20:00 PST" in page
    assert "UTC" not in page and "04:00" not in page

    with app.test_request_context():
        doc = documents.build("summary", db.session.get(Course, ids["course"]))
        pdf = documents.document_pdf(doc)
    text = " ".join(re.sub(r"\s+", " ", p.extract_text() or "")
                    for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "26 Nov 2026, 20:00 PST" in text
    assert "26 November 2026" in text  # printed on the clinic's date
    assert "04:00" not in text


def test_a_user_in_another_zone_sees_pages_in_it_and_prints_the_clinics(clinic):
    app = clinic(CLINIC_TIMEZONE="America/Los_Angeles")
    ids = _sessions_on_the_26th_and_27th(app)
    with app.app_context():
        tonight = db.session.get(Note, ids["tonight"])
        notes.sign(tonight, tonight.author)
        db.session.commit()
    maya = Browser(app.test_client())
    maya.login("maya", factories.PASSWORD)
    account = maya.get("/account/password").get_data(as_text=True)
    assert "The clinic&#39;s (America/Los_Angeles)" in account
    refused = maya.post("/account/time-zone", {"tz-time_zone": "Mars/Olympus_Mons"})
    assert refused.status_code == 422 and "Not a valid choice" in refused.get_data(as_text=True)
    assert maya.post("/account/time-zone", {"tz-time_zone": "Europe/Berlin"}).status_code == 302
    # 04:00 UTC is 05:00 on the 27th in Berlin: her "today" and her pages follow her zone.
    dashboard = maya.get("/").get_data(as_text=True)
    assert "Friday 27 November 2026" in dashboard and "Tomorrow&#39;s session" in dashboard
    assert "on 27 Nov 2026, 05:00 CET" in maya.get(f"/notes/{ids['tonight']}") \
        .get_data(as_text=True)
    # The printed summary keeps the clinic's zone and date, whoever prints it.
    preview = maya.get(f"/courses/{ids['course']}/documents/summary").get_data(as_text=True)
    assert "26 Nov 2026, 20:00 PST" in preview and "CET" not in preview
    # Back to the clinic's zone.
    maya.post("/account/time-zone", {"tz-time_zone": ""})
    assert "Thursday 26 November 2026" in maya.get("/").get_data(as_text=True)


def test_the_same_moment_in_a_clinic_on_utc(clinic):
    app = clinic()  # CLINIC_TIMEZONE defaults to UTC
    ids = _sessions_on_the_26th_and_27th(app)
    with app.app_context():
        assert timeutil.today() == date(2026, 11, 27)
        later = db.session.get(Note, ids["later"])
        assert notes.sign_refusal(later) is None
        assert timeutil.shown(EVENING_IN_LOS_ANGELES) == "27 Nov 2026, 04:00 UTC"


@pytest.mark.parametrize("pattern, expected", [
    ("d MMM y", "26 Nov 2026"),                       # a date alone carries no zone
    ("d MMM y 'at home'", "26 Nov 2026 at home"),     # quoted letters are not time fields
    ("HH:mm", "20:00 PST"),
    ("h:mm a", "8:00 pm PST"),                       # en_GB writes the day period small
])
def test_a_zone_is_named_exactly_when_a_time_of_day_is_shown(clinic, pattern, expected):
    app = clinic(CLINIC_TIMEZONE="America/Los_Angeles")
    with app.app_context():
        assert timeutil.shown(EVENING_IN_LOS_ANGELES, pattern) == expected


def test_an_unknown_time_zone_is_refused_at_start(app_factory):
    with pytest.raises(RuntimeError, match="CLINIC_TIMEZONE 'Mars/Olympus_Mons'"):
        app_factory(CLINIC_TIMEZONE="Mars/Olympus_Mons")
