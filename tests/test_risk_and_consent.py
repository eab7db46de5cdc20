"""The medicine side of KAP (issue 11): risk flags that follow the client, screening and
consent before dosing, no signing of future sessions, and the triage levels of the
suicide risk screen."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from kaptools import notes
from kaptools.extensions import db
from kaptools.modality.answers import compute_scores
from kaptools.modality.registry import builtin_dir, load_registry
from kaptools.models import Course, Note, TherapySession, User
from kaptools.timeutil import today
from tests import factories
from tests.conftest import Browser
from tests.test_rendering import wait_for_pdf

REGISTRY = load_registry(builtin_dir())
SCREEN = REGISTRY.latest("suicide-risk-screen")
NO = {"wish_dead_month": False, "thoughts_month": False, "behaviour_lifetime": False}


def triage(**answers) -> tuple[str | None, bool]:
    (score,) = compute_scores(SCREEN, {**NO, **answers})
    return score.band, score.risk


@pytest.mark.parametrize(("answers", "level", "risk"), [
    # Nothing endorsed: no level of risk, and no flag.
    ({}, "No risk indicated in the past month", False),
    # Topic 1 or 2 alone: low.
    ({"wish_dead_month": True}, "Low risk", True),
    ({"thoughts_month": True, "method_month": False, "intent_month": False,
      "plan_month": False}, "Low risk", True),
    # A method (topic 3): moderate; so is behaviour longer ago than three months.
    ({"thoughts_month": True, "method_month": True, "intent_month": False,
      "plan_month": False}, "Moderate risk", True),
    ({"behaviour_lifetime": True, "behaviour_3_months": False}, "Moderate risk", True),
    # Intent (4), a plan (5) or behaviour within three months: high, whatever else.
    ({"thoughts_month": True, "method_month": False, "intent_month": True,
      "plan_month": False}, "High risk", True),
    ({"thoughts_month": True, "method_month": True, "intent_month": True,
      "plan_month": True}, "High risk", True),
    ({"behaviour_lifetime": True, "behaviour_3_months": True}, "High risk", True),
    # Lifetime-only ideation sets no recent level.
    ({"wish_dead_lifetime": True, "thoughts_lifetime": True, "intent_lifetime": True},
     "No risk indicated in the past month", False),
])
def test_the_risk_screen_triages_as_the_screener_does(answers, level, risk):
    assert triage(**answers) == (level, risk)


def test_an_unfinished_screen_has_no_level():
    (score,) = compute_scores(SCREEN, {"wish_dead_month": True})
    assert score.band is None and not score.complete and not score.risk
    assert (score.answered, score.items) == (1, 3)


def test_topics_3_to_5_are_asked_only_after_topic_2():
    fields = {f.key: f for f in SCREEN.fields}
    for key in ("method_month", "intent_month", "plan_month"):
        assert fields[key].show_if.field == "thoughts_month"


@pytest.fixture
def world(app):
    with app.app_context():
        maya = factories.user("maya")
        ids = factories.client_with_course(maya)
        return ids


@pytest.fixture
def maya(browser, world):
    browser.login("maya", factories.PASSWORD)
    return browser


def add_note(session_id: int, slug: str, answers: dict | None = None,
             sign: bool = True) -> int:
    sess = db.session.get(TherapySession, session_id)
    author = db.session.get(User, sess.course.client.therapist_id)
    template = REGISTRY.latest(slug)
    note = notes.create_note(sess, author, template, dict(answers or template.sample), {})
    if sign:
        notes.sign(note, author)
    db.session.commit()
    return note.id


def test_a_dosing_record_waits_for_screening_and_consent(app, maya, world):
    with app.app_context():
        note_id = add_note(world["dosing"], "kap-dosing", sign=False)
    page = maya.get(f"/notes/{note_id}").get_data(as_text=True)
    assert "Not ready to sign yet" in page
    assert "medical screening for ketamine and a signed informed consent record" in page
    resp = maya.post(f"/notes/{note_id}/sign", {"note_version": "1"})
    assert resp.status_code == 302
    page = maya.get(f"/notes/{note_id}").get_data(as_text=True)
    assert "The note was not signed." in page
    with app.app_context():
        assert db.session.get(Note, note_id).state == "draft"
        # Screening alone is not enough.
        add_note(world["dosing"], "medical-screening")
        with pytest.raises(notes.SignRefused, match="informed consent record"):
            notes.sign(db.session.get(Note, note_id), db.session.get(User, 1))
        db.session.rollback()
        add_note(world["dosing"], "informed-consent")
    page = maya.get(f"/notes/{note_id}").get_data(as_text=True)
    assert "Not ready to sign yet" not in page
    assert maya.post(f"/notes/{note_id}/sign", {"note_version": "1"}).status_code == 302
    with app.app_context():
        assert db.session.get(Note, note_id).state == "signed"


def test_save_and_sign_keeps_the_answers_when_signing_must_wait(app, maya, world):
    from tests.notes_helpers import form_payload

    template = REGISTRY.latest("kap-dosing")
    with app.app_context():
        note_id = add_note(world["dosing"], "kap-dosing", {"session_number": 1}, sign=False)
    answers = dict(template.sample)
    resp = maya.post(f"/notes/{note_id}", form_payload(template, answers, action="sign"))
    assert resp.status_code == 302
    page = maya.get(f"/notes/{note_id}").get_data(as_text=True)
    assert "Draft saved, but not signed." in page
    with app.app_context():
        note = db.session.get(Note, note_id)
        assert note.state == "draft" and note.answers["dose"] == answers["dose"]


def test_a_note_of_a_future_session_cannot_be_signed(app, maya, world):
    with app.app_context():
        course = db.session.get(Course, world["course"])
        later = TherapySession(course=course, kind="integration",
                               session_date=today() + timedelta(days=3))
        db.session.add(later)
        db.session.commit()
        note_id = add_note(later.id, "gad-7", sign=False)
    page = maya.get(f"/notes/{note_id}").get_data(as_text=True)
    assert "in the future" in page
    maya.post(f"/notes/{note_id}/sign", {"note_version": "1"})
    page = maya.get(f"/notes/{note_id}").get_data(as_text=True)
    assert "The note was not signed." in page and "in the future" in page
    with app.app_context():
        assert db.session.get(Note, note_id).state == "draft"
        db.session.get(TherapySession, later.id).session_date = today()
        db.session.commit()
        notes.sign(db.session.get(Note, note_id), db.session.get(User, 1))  # on the day: fine
        db.session.commit()


def phq9(item9: int) -> dict:
    answers = {f"q{i}": 1 for i in range(1, 9)}
    answers.update(q9=item9, difficulty="somewhat_difficult")
    if item9:
        answers["risk_follow_up"] = "Asked in session."
    return answers


def pdf_text(pdf: bytes) -> str:
    return " ".join(re.sub(r"\s+", " ", p.extract_text() or "")
                    for p in PdfReader(io.BytesIO(pdf)).pages[:2])


def test_a_risk_flag_follows_the_client_until_a_follow_up_is_signed(app, maya, world):
    client, course = world["client"], world["course"]
    with app.app_context():
        add_note(world["integration"], "phq-9", phq9(0))
    assert "Risk flags to follow up" not in maya.get("/").get_data(as_text=True)
    with app.app_context():
        raising = add_note(world["integration"], "phq-9", phq9(2))
        draft_follow_up = add_note(world["integration"], "risk-follow-up", sign=False)
    # Everywhere the clinician or supervisor looks first.
    dashboard = maya.get("/").get_data(as_text=True)
    assert "Risk flags to follow up" in dashboard and "KT-0001" in dashboard
    assert "Item 9 endorsed" in dashboard
    client_page = maya.get(f"/clients/{client}").get_data(as_text=True)
    assert "Open risk flag" in client_page and f"/notes/{raising}" in client_page
    for kind in ("summary", "packet"):
        front = pdf_text(wait_for_pdf(maya, f"/courses/{course}/documents/{kind}.pdf"))
        assert "Open risk flag" in front and "Item 9 endorsed" in front, kind
    handout = pdf_text(wait_for_pdf(maya, f"/courses/{course}/documents/handout.pdf"))
    assert "risk flag" not in handout.lower()
    # A draft follow-up does not clear it; a signed one does.
    assert "Open risk flag" in maya.get(f"/clients/{client}").get_data(as_text=True)
    with app.app_context():
        notes.sign(db.session.get(Note, draft_follow_up), db.session.get(User, 1))
        db.session.commit()
    assert "Open risk flag" not in maya.get(f"/clients/{client}").get_data(as_text=True)
    assert "Risk flags to follow up" not in maya.get("/").get_data(as_text=True)
    front = pdf_text(wait_for_pdf(maya, f"/courses/{course}/documents/packet.pdf"))
    assert "Open risk flag" not in front
    # A new positive screen raises it again.
    with app.app_context():
        add_note(world["integration"], "suicide-risk-screen",
                 {**NO, "thoughts_month": True, "method_month": True, "intent_month": False,
                  "plan_month": False})
    client_page = maya.get(f"/clients/{client}").get_data(as_text=True)
    assert "Suicide risk screen: Moderate risk" in client_page


def test_the_flag_is_seen_by_the_supervisor_and_no_one_else(app, world):
    with app.app_context():
        maya = db.session.scalar(select(User).where(User.username == "maya"))
        ruth = factories.user("ruth", role="supervisor")
        factories.user("tomas")
        factories.supervise(ruth, maya, starts=date(2026, 1, 1))
        add_note(world["integration"], "phq-9", phq9(1))
    ruth_page = Browser(app.test_client())
    ruth_page.login("ruth", factories.PASSWORD)
    assert "KT-0001" in ruth_page.get("/").get_data(as_text=True)
    tomas = Browser(app.test_client())
    tomas.login("tomas", factories.PASSWORD)
    page = tomas.get("/").get_data(as_text=True)
    assert "Risk flags to follow up" not in page and "KT-0001" not in page


def test_the_demo_shows_an_open_flag_and_a_followed_up_one(app):
    from kaptools import risk
    from kaptools.demo import load_demo
    from kaptools.models import Client

    with app.app_context():
        load_demo()
        clients = {c.code: c.id for c in db.session.scalars(select(Client))}
        flags = risk.open_flags(list(clients.values()))
        assert set(flags) == {clients["KT-0157"]}  # KT-0142's flag was followed up
        assert "Item 9" in flags[clients["KT-0157"]].label


THRESHOLDS = {"systolic": {"min": 90, "max": 140}, "diastolic": {"max": 90},
              "hr": {"min": 50, "max": 100}, "spo2": {"min": 95}}


def dosing_page_text(app, maya, world, vitals_rows: list[dict], baseline: dict) -> str:
    template = REGISTRY.latest("kap-dosing")
    with app.app_context():
        add_note(world["dosing"], "medical-screening")
        add_note(world["dosing"], "informed-consent")
        answers = {**template.sample, **baseline, "vitals": vitals_rows}
        add_note(world["dosing"], "kap-dosing", answers)
    pdf = wait_for_pdf(maya, f"/sessions/{world['dosing']}/documents/summary.pdf")
    pages = PdfReader(io.BytesIO(pdf)).pages
    return " ".join(re.sub(r"\s+", " ", p.extract_text() or "") for p in pages)


def test_out_of_range_vitals_print_with_a_symbol_and_words(app, world, tmp_path):
    import subprocess

    app.config["VITALS_THRESHOLDS"] = THRESHOLDS
    maya = Browser(app.test_client())
    maya.login("maya", factories.PASSWORD)
    rows = [{"item_id": "v1", "time": "10:00", "systolic": 150, "diastolic": 95, "hr": 45,
             "spo2": 93},
            {"item_id": "v2", "time": "10:30", "systolic": 85, "diastolic": 60, "hr": 70,
             "spo2": 97}]
    text = dosing_page_text(app, maya, world, rows,
                            {"baseline_systolic": 150, "baseline_diastolic": 80,
                             "baseline_hr": 72, "baseline_spo2": 98})
    for marked in ("150 ▲ high", "95 ▲ high", "45 ▼ low", "93 ▼ low", "85 ▼ low"):
        assert marked in text, marked
    for plain in ("60", "70", "97"):
        assert f"{plain} ▲" not in text and f"{plain} ▼" not in text
    assert "Baseline outside the practice's thresholds" in text
    assert "Systolic BP 150 mmHg (▲ high)" in text
    assert "Systolic BP 90–140 mmHg" in text  # the key names the practice's own limits
    # The markers are words and shapes, so a greyscale print keeps them (look at it too).
    pdf = wait_for_pdf(maya, f"/sessions/{world['dosing']}/documents/summary.pdf")
    (tmp_path / "dosing.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-gray", "-r", "50", "-png", str(tmp_path / "dosing.pdf"),
                    str(tmp_path / "page")], check=True)
    assert list(tmp_path.glob("page-*.png"))


def test_without_thresholds_nothing_is_marked_and_the_print_says_so(app, maya, world):
    app.config["VITALS_THRESHOLDS"] = {}
    rows = [{"item_id": "v1", "time": "10:00", "systolic": 190, "diastolic": 120, "hr": 130,
             "spo2": 85}]
    text = dosing_page_text(app, maya, world, rows, {})
    assert "▲" not in text and "▼" not in text
    assert "No vitals thresholds are set for this practice" in text
    assert "configured thresholds" not in text


def test_thresholds_read_both_spellings():
    from kaptools import vitals

    assert vitals.thresholds({"systolic_max": 160, "heart_rate_max": 110, "spo2_min": 94,
                              "hr": {"min": 45}, "junk": 3, "rr": {"max": "x"}}) == \
        {"systolic": {"max": 160}, "hr": {"max": 110, "min": 45}, "spo2": {"min": 94}}
    limits = vitals.thresholds(THRESHOLDS)
    assert vitals.check("systolic", 140, limits).status == "ok"  # the limit itself is in range
    assert vitals.check("systolic", 141, limits).marker == "▲ high"
    assert vitals.check("spo2", 94, limits).marker == "▼ low"
    assert vitals.check("rr", 40, limits).status == "unset"
    assert vitals.baseline_check({"baseline_systolic": 120}, limits)[0] == "incomplete"
    assert vitals.baseline_check({}, {}) == ("unset", [])


def test_adverse_events_are_tabled_on_the_front_page(app, maya, world):
    course = world["course"]
    front = pdf_text(wait_for_pdf(maya, f"/courses/{course}/documents/summary.pdf"))
    assert "Adverse events in this course" in front and "None recorded." in front
    sample = REGISTRY.latest("adverse-event").sample
    with app.app_context():
        add_note(world["dosing"], "adverse-event")
        add_note(world["integration"], "adverse-event",
                 {**sample, "description": "Headache the next morning", "kind": ["headache"],
                  "severity": "grade_2", "actions": ["observed"], "outcome": "resolving",
                  "onset_date": "2026-11-03"}, sign=False)
    for kind in ("summary", "packet"):
        front = pdf_text(wait_for_pdf(maya, f"/courses/{course}/documents/{kind}.pdf"))
        assert "None recorded." not in front
        for text in ("Nausea about 35 minutes", "Grade 1 — mild", "Ondansetron 4 mg",
                     "Resolved", "Prescriber, 05 Nov 2026", "Headache the next morning",
                     "Grade 2 — moderate", "draft"):
            assert text in front, (kind, text)
    handout = pdf_text(wait_for_pdf(maya, f"/courses/{course}/documents/handout.pdf"))
    assert "Adverse events" not in handout


def test_a_route_that_does_not_fit_the_formulation_is_refused_at_the_field(app, maya, world):
    from tests.notes_helpers import form_payload

    template = REGISTRY.latest("kap-dosing")
    assert template.version >= 2
    with app.app_context():
        note_id = add_note(world["dosing"], "kap-dosing", {"session_number": 1}, sign=False)
    answers = {**template.sample, "formulation": "racemic_iv", "route": "intranasal"}
    resp = maya.post(f"/notes/{note_id}", form_payload(template, answers))
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "“Intranasal” does not go with the answer to “Drug and formulation”" in page
    assert 'value="racemic_iv" selected' in page or "racemic_iv" in page  # nothing typed lost
    answers["route"] = "intravenous"
    assert maya.post(f"/notes/{note_id}", form_payload(template, answers)).status_code == 302


def test_the_dose_prints_in_mg_and_per_kilogram():
    from kaptools.dosing import dose_in_both_units

    assert dose_in_both_units(34, "mg", 68) == "34 mg = 0.5 mg/kg at 68 kg"
    assert dose_in_both_units(0.5, "mg_per_kg", 68) == "0.5 mg/kg = 34 mg at 68 kg"
    assert dose_in_both_units(200, "mg", 70) == "200 mg = 2.86 mg/kg at 70 kg"
    assert dose_in_both_units(200, "mg", None) is None
    assert dose_in_both_units(200, "mg", 0) is None
    assert dose_in_both_units(None, "mg", 70) is None


def test_a_dosing_record_prints_who_what_lot_and_the_course_of_the_effect(app, maya, world):
    text = dosing_page_text(app, maya, world, REGISTRY.latest("kap-dosing").sample["vitals"],
                            {})
    for expected in ("Prescribed by Dr Jonas Amari", "given by Sam Ortiz", "lot KL-2611-07",
                     "200 mg = 2.94 mg/kg at 68 kg", "Onset 10:14", "peak 10:40",
                     "back to baseline 11:50", "4 / 5"):
        assert expected in text, expected


def start_from(browser, session_id: int, slug: str, from_note: int) -> int:
    resp = browser.post(f"/sessions/{session_id}/notes/new",
                        {"modality": slug, "from_note": str(from_note)})
    assert resp.status_code == 302, resp.status_code
    return int(resp.headers["Location"].rsplit("/", 1)[1])


def test_start_from_never_copies_measurements_vitals_items_or_events(app, maya, world):
    with app.app_context():
        add_note(world["dosing"], "medical-screening")
        add_note(world["dosing"], "informed-consent")
        dosing = add_note(world["dosing"], "kap-dosing")
        emdr = add_note(world["integration"], "emdr-target-set")
        phq = add_note(world["integration"], "phq-9", phq9(1))
        course = db.session.get(Course, world["course"])
        later = TherapySession(course=course, kind="dosing", session_date=today())
        db.session.add(later)
        db.session.commit()
        later_id = later.id
    copy = start_from(maya, later_id, "kap-dosing", dosing)
    with app.app_context():
        answers = db.session.get(Note, copy).answers
        template = REGISTRY.latest("kap-dosing")
        # Lasting facts come along; nothing measured or observed that day does.
        assert answers["formulation"] == template.sample["formulation"]
        assert answers["prescriber"] == template.sample["prescriber"]
        for key in ("vitals", "baseline_systolic", "baseline_hr", "body_weight_kg",
                    "adverse_effects", "adverse_notes", "dose", "time_given", "boosters",
                    "lot_number", "sedation_deepest", "onset_time", "fasting",
                    "discharge_time", "released_to"):
            assert key not in answers, key
    copy = start_from(maya, later_id, "emdr-target-set", emdr)
    with app.app_context():
        answers = db.session.get(Note, copy).answers
        assert "bls_sets" not in answers
        assert answers.get("targets")  # the target set itself is what carries on
        assert "sud_baseline" not in answers and "voc_baseline" not in answers
        assert answers["nc"] == REGISTRY.latest("emdr-target-set").sample["nc"]
    # A questionnaire carries nothing, so the chooser does not offer to start from one.
    page = maya.get(f"/sessions/{later_id}/notes/new").get_data(as_text=True)
    phq_actions = page.split('id="t-phq-9"')[1].split('class="actions">')[1].split("</div>")[0]
    assert "Start" in phq_actions and "Start from" not in phq_actions
    copy = start_from(maya, later_id, "phq-9", phq)
    with app.app_context():
        assert not any(k.startswith("q") for k in db.session.get(Note, copy).answers)


def test_a_questionnaire_repeated_inside_its_recall_period_warns(app, maya, world):
    with app.app_context():
        add_note(world["dosing"], "phq-9", phq9(0))  # 2 November
        course = db.session.get(Course, world["course"])
        soon = TherapySession(course=course, kind="assessment", session_date=date(2026, 11, 10))
        later = TherapySession(course=course, kind="assessment", session_date=date(2026, 11, 20))
        db.session.add_all([soon, later])
        db.session.commit()
        soon_note = add_note(soon.id, "phq-9", phq9(0), sign=False)
        later_note = add_note(later.id, "phq-9", phq9(0), sign=False)
    page = maya.get(f"/notes/{soon_note}").get_data(as_text=True)
    assert "Inside the recall period." in page and "2 November 2026 (8 days earlier)" in page
    assert "from 16 November on" in page
    assert "Inside the recall period." not in maya.get(f"/notes/{later_note}").get_data(
        as_text=True)


PCL5 = REGISTRY.latest("pcl-5")


def pcl5(**items) -> dict:
    answers = {f"q{i}": 0 for i in range(1, 21)}
    answers.update({k: v for k, v in items.items()})
    return answers


def pcl5_scores(answers: dict) -> dict:
    return {s.key: s for s in compute_scores(PCL5, answers)}


@pytest.mark.parametrize(("items", "met", "clusters"), [
    # Everything at 0: no symptom in any cluster.
    ({}, False, (0, 0, 0, 0)),
    # The minimum that meets the rule: 1 B, 1 C, 2 D, 2 E, each rated exactly 2.
    ({"q1": 2, "q6": 2, "q8": 2, "q9": 2, "q15": 2, "q16": 2}, True, (2, 2, 4, 4)),
    # One short in D (a 1 does not count as a symptom).
    ({"q1": 2, "q6": 2, "q8": 2, "q9": 1, "q15": 2, "q16": 2}, False, (2, 2, 3, 4)),
    # Nothing in C, however high the rest.
    ({"q1": 4, "q2": 4, "q8": 4, "q9": 4, "q15": 4, "q16": 4}, False, (8, 0, 8, 8)),
    # High totals are not the rule: all items at 1 is 20 and nothing is met.
    ({f"q{i}": 1 for i in range(1, 21)}, False, (5, 2, 7, 6)),
])
def test_pcl5_clusters_and_the_dsm5_rule(items, met, clusters):
    scores = pcl5_scores(pcl5(**items))
    assert tuple(scores[k].total for k in ("cluster_b", "cluster_c", "cluster_d",
                                           "cluster_e")) == clusters
    rule = scores["dsm5"]
    assert rule.complete
    assert rule.band.startswith("Met") is met
    assert "D: " in rule.detail and ("✗" in rule.detail) is not met
    assert scores["total"].total == sum(clusters)


def test_the_dsm5_rule_waits_for_every_item():
    answers = pcl5()
    del answers["q20"]
    rule = pcl5_scores(answers)["dsm5"]
    assert not rule.complete and rule.band is None and (rule.answered, rule.items) == (19, 20)


@pytest.mark.parametrize(("measure", "baseline", "latest", "response", "remission"), [
    ("PHQ-9", 14, 7, True, False),    # exactly half: a response
    ("PHQ-9", 14, 8, False, False),   # just short of half
    ("PHQ-9", 9, 4, True, True),      # below 5 from 5 or more: remission
    ("PHQ-9", 4, 2, True, False),     # started below 5: no remission to speak of
    ("GAD-7", 16, 5, True, False),    # 5 is not below 5
    ("GAD-7", 16, 4, True, True),
    ("PCL-5", 50, 30, False, True),   # under 31 without halving
    ("PCL-5", 50, 25, True, True),
    ("PCL-5", 30, 10, True, False),   # began below the cut-point
    ("PHQ-9", 0, 0, False, False),
])
def test_response_and_remission_against_baseline(measure, baseline, latest, response,
                                                 remission):
    from kaptools.outcomes import MeasureChange, OutcomePoint

    first = OutcomePoint(measure, 1, date(2026, 11, 1), baseline, 27, "")
    last = OutcomePoint(measure, 2, date(2026, 11, 29), latest, 27, "")
    change = MeasureChange(measure, first, last)
    assert (change.response, change.remission) == (response, remission)
    assert not MeasureChange(measure, first, first).response  # one point is not a change


def errors_of(slug: str, answers: dict, version: int | None = None) -> dict:
    from kaptools.modality.answers import validate_answers

    template = REGISTRY.get(slug, version) if version else REGISTRY.latest(slug)
    return dict(validate_answers(template, answers))


def test_an_exile_cannot_be_polarised_or_protect():
    ifs = REGISTRY.latest("ifs-parts-map")
    sample = ifs.sample
    exile = next(p["item_id"] for p in sample["parts"] if p["role"] == "exile")
    manager = next(p["item_id"] for p in sample["parts"] if p["role"] == "manager")
    for kind, start, end in [("polarised", exile, manager), ("polarised", manager, exile),
                             ("protects", exile, manager)]:
        rows = [{"item_id": "r1", "from_part": start, "kind": kind, "to_part": end}]
        problems = errors_of("ifs-parts-map", {**sample, "relationships": rows})
        [(path, message)] = [(p, m) for p, m in problems.items() if "relationships" in p]
        assert path.endswith("kind") and "does not go with" in message and "role" in message
    fine = [{"item_id": "r1", "from_part": manager, "kind": "protects", "to_part": exile},
            {"item_id": "r2", "from_part": exile, "kind": "allied", "to_part": manager}]
    assert errors_of("ifs-parts-map", {**sample, "relationships": fine}) == {}
    # Notes of the first version keep their own rules.
    assert errors_of("ifs-parts-map", {**REGISTRY.get("ifs-parts-map", 1).sample,
                                       "relationships": [{"item_id": "r1", "from_part": exile,
                                                          "kind": "polarised",
                                                          "to_part": manager}]},
                     version=1) == {}


def test_emdr_completion_needs_a_clear_body_scan_or_a_stated_reason():
    emdr = REGISTRY.latest("emdr-target-set")
    base = {**emdr.sample, "body_scan_clear": False, "residual_sensation": "Throat"}
    base.pop("ecological_reason", None)
    problems = errors_of("emdr-target-set", {**base, "session_complete": "complete"})
    assert "does not go with" in problems["session_complete"]
    problems = errors_of("emdr-target-set", {**base, "session_complete": "ecological"})
    assert problems.get("ecological_reason") == "Please answer this."
    assert errors_of("emdr-target-set", {**base, "session_complete": "ecological",
                                         "ecological_reason": "A realistic doubt"}) == {}
    clear = {**emdr.sample, "body_scan_clear": True, "session_complete": "complete"}
    clear.pop("ecological_reason", None)
    assert errors_of("emdr-target-set", clear) == {}
    for key in ("dissociation_screen", "ready", "debriefed"):
        assert emdr.field(key).required


def test_art_in_no_disclosure_mode_requires_nothing_that_discloses():
    art = REGISTRY.latest("art-script")
    answers = {k: v for k, v in art.sample.items()
               if k not in ("replacement_script", "scene_description")}
    answers.update(no_disclosure=True, replacement_made=True)
    assert errors_of("art-script", answers) == {}
    without = {k: v for k, v in answers.items() if k != "replacement_made"}
    assert "replacement_made" in errors_of("art-script", without)
    problems = errors_of("art-script", {**answers, "abreaction": True})
    assert problems.get("abreaction_notes") == "Please answer this."


def test_a_behavioural_experiments_prediction_reaches_the_handout(app, maya, world):
    template = REGISTRY.latest("cbt-behavioural-experiment")
    assert template.field("prediction").audience == "client"
    with app.app_context():
        add_note(world["integration"], "cbt-behavioural-experiment")
    handout = pdf_text_all(wait_for_pdf(
        maya, f"/sessions/{world['integration']}/documents/handout.pdf"))
    assert "My lead will be annoyed" in handout
    assert "Saying no clearly is normal" in handout


def test_the_integration_note_starts_with_the_approaches_written_that_session(app, maya,
                                                                              world):
    with app.app_context():  # the session already holds a CBT thought record
        add_note(world["integration"], "emdr-target-set", sign=False)
        add_note(world["integration"], "ifs-parts-map", sign=False)
    resp = maya.post(f"/sessions/{world['integration']}/notes/new",
                     {"modality": "integration-session"})
    note_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    with app.app_context():
        assert db.session.get(Note, note_id).answers["modalities_used"] == ["emdr", "ifs",
                                                                            "cbt"]
        add_note(world["integration"], "art-script", sign=False)
        draft = db.session.get(Note, note_id)
        draft.answers = {k: v for k, v in draft.answers.items() if k != "modalities_used"}
        db.session.commit()
    page = maya.get(f"/notes/{note_id}").get_data(as_text=True)
    for value in ("emdr", "art", "ifs", "cbt"):
        assert re.search(rf'checked id="modalities_used-\d" name="modalities_used" '
                         rf'type="checkbox" value="{value}"', page), value
    assert not re.search(r'checked[^>]*value="somatic_work"', page)


def test_the_pcl5_keeps_its_instructions_and_has_a_past_week_version():
    monthly, weekly = REGISTRY.latest("pcl-5"), REGISTRY.latest("pcl-5-past-week")
    assert monthly.sections[0].help.endswith(
        "indicate how much you have been bothered by that problem in the past month.")
    assert weekly.sections[0].help.endswith("by that problem in the past week.")
    assert (monthly.recall_days, weekly.recall_days) == (30, 7)
    assert [f.label for f in monthly.fields if f.type == "scale"] == \
        [f.label for f in weekly.fields if f.type == "scale"]
    assert "dsm5" in {s.key for s in monthly.scores}
    assert "dsm5" not in {s.key for s in weekly.scores}
    assert not next(s for s in weekly.scores if s.key == "total").bands


def test_the_safety_plan_goes_home_with_every_step(app, maya, world):
    with app.app_context():
        add_note(world["integration"], "safety-plan")
    handout = pdf_text_all(wait_for_pdf(
        maya, f"/sessions/{world['integration']}/documents/handout.pdf"))
    for text in ("Your safety plan", "1. Signs that a crisis may be building",
                 "Not answering messages for a whole day",
                 "2. Things I can do on my own", "3. People and places",
                 "The café at the library", "4. People I can ask for help", "555-0100",
                 "5. Professionals and crisis lines", "Crisis line — 555-0199 (Any time)",
                 "6. Making my surroundings safer", "My nephew's football on Saturdays."):
        assert text in handout, text


def test_a_dose_taken_at_home_brings_the_lozenge_safety_sheet(app, maya, world):
    with app.app_context():
        add_note(world["dosing"], "medical-screening")
        add_note(world["dosing"], "informed-consent")
        add_note(world["dosing"], "kap-dosing", {**REGISTRY.latest("kap-dosing").sample,
                                                 "setting": "home_supervised"})
    handout = pdf_text_all(wait_for_pdf(
        maya, f"/sessions/{world['dosing']}/documents/handout.pdf"))
    assert "Taking your lozenge at home, safely" in handout
    assert "Do not take a second lozenge on the same day" in handout
    office = pdf_text_all(wait_for_pdf(
        maya, f"/sessions/{world['integration']}/documents/handout.pdf"))
    assert "Taking your lozenge at home" not in office


def test_a_safety_concern_on_the_follow_up_call_raises_the_flag(app, maya, world):
    call = REGISTRY.latest("follow-up-call").sample
    with app.app_context():
        add_note(world["integration"], "follow-up-call", call)
    assert "Open risk flag" not in maya.get(f"/clients/{world['client']}").get_data(
        as_text=True)
    with app.app_context():
        add_note(world["integration"], "follow-up-call", {**call, "safety_concern": True})
    page = maya.get(f"/clients/{world['client']}").get_data(as_text=True)
    assert "Follow-up call after dosing: Concern for safety raised" in page


def pdf_text_all(pdf: bytes) -> str:
    return " ".join(re.sub(r"\s+", " ", p.extract_text() or "")
                    for p in PdfReader(io.BytesIO(pdf)).pages)
