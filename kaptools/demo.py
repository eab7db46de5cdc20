"""Synthetic demo data: invented people, codes and sessions only."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select

from . import audit
from .extensions import db
from .models import (
    Client,
    Course,
    ReviewMode,
    SessionKind,
    SupervisionRelationship,
    TherapySession,
    User,
)
from .passwords import hash_password
from .timeutil import today

DEMO_LOGINS = [
    ("maya", "therapist", "demo-maya-lind"),
    ("tomas", "therapist", "demo-tomas-berg"),
    ("ruth", "supervisor", "demo-ruth-okafor"),
    ("admin", "admin", "demo-admin-kaptools"),
]
_NAMES = {
    "maya": "Maya Lind, LMFT",
    "tomas": "Tomas Berg, LCSW",
    "ruth": "Dr Ruth Okafor, PsyD",
    "admin": "Clinic administrator",
}

# An intensive retreat: preparation, baseline, four dosing sessions each followed by
# integration, a closing integration and a follow-up assessment (12 sessions), ending
# today (notes are signed on or after their session's day).
INTENSIVE_PLAN: list[tuple[int, SessionKind, str]] = [
    (-23, SessionKind.PREPARATION, "Preparation and intentions"),
    (-22, SessionKind.ASSESSMENT, "Baseline measures"),
    (-21, SessionKind.DOSING, "Dosing 1 (sublingual lozenge)"),
    (-20, SessionKind.INTEGRATION, "Integration after dosing 1"),
    (-19, SessionKind.DOSING, "Dosing 2"),
    (-18, SessionKind.INTEGRATION, "Integration after dosing 2"),
    (-17, SessionKind.DOSING, "Dosing 3"),
    (-16, SessionKind.INTEGRATION, "Integration after dosing 3"),
    (-15, SessionKind.DOSING, "Dosing 4"),
    (-14, SessionKind.INTEGRATION, "Integration after dosing 4"),
    (-13, SessionKind.INTEGRATION, "Closing integration"),
    (0, SessionKind.ASSESSMENT, "Two-week follow-up measures"),
]


def load_demo() -> bool:
    """Add the demo data to an empty database; return False if users already exist."""
    if db.session.scalar(select(func.count(User.id))):
        return False
    users = {
        username: User(username=username, display_name=_NAMES[username], role=role,
                       password_hash=hash_password(password))
        for username, role, password in DEMO_LOGINS
    }
    db.session.add_all(users.values())
    start = today()
    db.session.add(SupervisionRelationship(
        supervisor=users["ruth"], supervisee=users["maya"], starts_on=start - timedelta(days=120),
        review_mode=ReviewMode.COSIGN_AFTER_SIGNING))
    db.session.add(SupervisionRelationship(
        supervisor=users["ruth"], supervisee=users["tomas"], starts_on=start - timedelta(days=60),
        review_mode=ReviewMode.APPROVE_BEFORE_SIGNING))

    intensive_client = Client(therapist=users["maya"], code="KT-0142", display_name="Client A")
    intensive = Course(client=intensive_client, title="Autumn intensive retreat",
                       format="intensive", starts_on=start - timedelta(days=23),
                       ends_on=start - timedelta(days=13),
                       intentions="Loosen the grip of constant worry about work and health; "
                                  "sleep through the night; feel safe in my body again.")
    plan = _add_plan(intensive, start)
    db.session.add(intensive_client)
    db.session.flush()
    _add_intensive_notes(plan, users["maya"])

    weekly_client = Client(therapist=users["maya"], code="KT-0157")
    weekly = Course(client=weekly_client, title="Weekly course", format="weekly",
                    starts_on=start - timedelta(days=21),
                    intentions="Face social situations I have avoided for years.")
    prev = None
    for offset, kind in [(-21, SessionKind.PREPARATION), (-14, SessionKind.DOSING),
                         (-7, SessionKind.INTEGRATION), (0, SessionKind.DOSING)]:
        sess = TherapySession(course=weekly, kind=kind, session_date=start + timedelta(offset))
        if kind == SessionKind.INTEGRATION:
            sess.follows = prev
        prev = sess if kind == SessionKind.DOSING else prev
    db.session.add(weekly_client)
    db.session.flush()
    _add_weekly_notes(weekly, users["maya"])

    for code, therapist, fmt in [("KT-0163", "tomas", "biweekly"), ("KT-0171", "tomas", "weekly")]:
        client = Client(therapist=users[therapist], code=code)
        course = Course(client=client, title="Course 1", format=fmt,
                        starts_on=start - timedelta(days=10),
                        intentions="Less panic on public transport.")
        TherapySession(course=course, kind=SessionKind.PREPARATION,
                       session_date=start - timedelta(days=10))
        db.session.add(client)
    db.session.flush()
    audit.record("demo.loaded", username="cli")
    db.session.commit()
    return True


# Outcome measures across the course: baseline, after dosing 2 and at follow-up.
_GAD7 = {"baseline": [2, 3, 3, 2, 2, 2, 2], "mid": [2, 2, 2, 1, 1, 1, 1],
         "follow_up": [1, 1, 1, 1, 0, 1, 0]}
_PHQ9 = {"baseline": [2, 2, 2, 2, 1, 2, 1, 1, 1], "mid": [1, 1, 2, 1, 1, 1, 1, 0, 0],
         "follow_up": [1, 0, 1, 1, 0, 0, 1, 0, 0]}
# Which modality each integration session used, after the integration note itself.
_INTEGRATION_MODALITIES = ["cbt-thought-record", "emdr-target-set", "ifs-parts-map",
                           "art-script", "cbt-behavioural-experiment"]


# What each integration session brought, so the demo course reads like a real arc.
_INTEGRATION_VARIANTS = [
    {},
    {"themes": "A long corridor of doors; behind one, a younger self waiting on the stairs.",
     "insights": "The part that plans everything is tired, and it is trying to keep her safe.",
     "domain_mind": "Thank the planner out loud, then choose one task for the morning.",
     "domain_body": "Hand on the chest for three breaths when the planning starts.",
     "domain_relationships": "Ask a friend for a walk instead of cancelling.",
     "domain_nature": None,
     "practices": ["journaling", "butterfly_hug"],
     "practice_notes": "Butterfly hug before sleep; write a line to the younger self each day."},
    {"themes": "Weightlessness, then warmth; the word 'enough' repeating softly.",
     "insights": "Rest is not something to earn.",
     "domain_spirit": "Light a candle in the evening and sit for five minutes.",
     "domain_lifestyle": "Phone off at 21:00 on weekdays.",
     "domain_relationships": None, "domain_nature": None,
     "practices": ["light_stream", "4_7_8_breathing"],
     "practice_notes": "4-7-8 breathing in bed; light stream when the chest tightens."},
    {"themes": "Driving over a wide sunlit bridge; the old fear far below like a toy car.",
     "insights": "The memory is over; the body can learn that now.",
     "domain_body": "A slow walk after lunch, noticing the feet.",
     "domain_nature": "Sit by the river on Saturday and watch the water for ten minutes.",
     "domain_mind": None, "domain_relationships": None,
     "practices": ["5_4_3_2_1_grounding", "time_in_nature"],
     "practice_notes": "5-4-3-2-1 grounding before driving; river walk at the weekend."},
    {"themes": "Looking back over the week: a quieter mind, some sadness, a lot of relief.",
     "insights": "Worry still visits, but it no longer runs the house.",
     "domain_mind": "Keep the worry time to fifteen minutes at 18:00.",
     "domain_relationships": "Tell my sister what changed this week.",
     "domain_lifestyle": "Keep the Saturday river walk after the retreat ends.",
     "domain_body": None, "domain_nature": None,
     "practices": ["journaling", "box_breathing", "tices_log"],
     "practice_notes": "Keep the TICES log for two weeks and bring it to the follow-up."},
]


# Each dosing session's vitals differ: (baseline BP, HR, SpO2) and the rise at the peak.
_DOSING_VITALS = [((122, 78), 72, 98, 26), ((128, 82), 76, 97, 14), ((118, 76), 68, 98, 34),
                  ((124, 80), 70, 96, 8)]


def _dosing_vitals(number: int) -> dict:
    """Baseline and readings over the session for dosing session ``number`` (1-based)."""
    (systolic, diastolic), hr, spo2, rise = _DOSING_VITALS[(number - 1) % len(_DOSING_VITALS)]
    readings = []
    for i, (time, share, beat, sat) in enumerate([("10:00", 0, 0, 0), ("10:30", 0.8, 14, -1),
                                                  ("11:00", 1.0, 18, -2), ("11:30", 0.4, 6, 0),
                                                  ("12:15", 0.1, 1, 0)]):
        row = {"item_id": f"v{number:03d}{i:04d}", "time": time,
               "systolic": systolic + round(rise * share),
               "diastolic": diastolic + round(rise * share / 2), "hr": hr + beat,
               "spo2": spo2 + sat}
        if share == 1.0 and systolic + rise > 150:
            row["note"] = "Peak reading: rechecked in 10 minutes, settling"
        readings.append(row)
    return {"baseline_systolic": systolic, "baseline_diastolic": diastolic,
            "baseline_hr": hr, "baseline_spo2": spo2, "vitals": readings}


def _measures(kind: str, stage: str) -> dict:
    items = _GAD7[stage] if kind == "gad-7" else _PHQ9[stage]
    answers = {f"q{i + 1}": value for i, value in enumerate(items)}
    answers["difficulty"] = "very_difficult" if stage == "baseline" else "somewhat_difficult"
    if answers.get("q9"):
        answers["risk_follow_up"] = ("Item 9 answered 'several days': asked about it in the "
                                     "session; see the risk screen and safety plan.")
    return answers


def _add_intensive_notes(plan: list[TherapySession], therapist: User) -> None:
    """Fill the intensive course with signed notes of every modality (the last draft)."""
    from . import notes
    from .modality import get_registry

    registry = get_registry()

    def add(sess: TherapySession, slug: str, answers: dict | None = None, sign: bool = True):
        template = registry.latest(slug)
        if template is None:
            return None
        record = {k: v for k, v in (answers if answers is not None else template.sample).items()
                  if v is not None}
        private_keys = {f.key for f in template.fields if f.audience == "private"}
        private = {k: record.pop(k) for k in list(record) if k in private_keys}
        note = notes.create_note(sess, therapist, template, record, private)
        if sign:
            notes.sign(note, therapist)
        return note

    dosing_number = 0
    integration_number = 0
    for sess in plan:
        if sess.kind == SessionKind.PREPARATION:
            add(sess, "medical-screening")
            add(sess, "informed-consent")
            add(sess, "cbt-exposure-ladder")
        elif sess.kind == SessionKind.ASSESSMENT:
            stage = "baseline" if sess is plan[1] else "follow_up"
            add(sess, "gad-7", _measures("gad-7", stage))
            add(sess, "phq-9", _measures("phq-9", stage))
            if stage == "baseline":
                # Item 9 endorsed at baseline: screened, a safety plan, the flag followed up.
                add(sess, "suicide-risk-screen")
                add(sess, "safety-plan")
                add(sess, "risk-follow-up")
        elif sess.kind == SessionKind.DOSING:
            dosing_number += 1
            sample = dict(registry.latest("kap-dosing").sample)
            sample["session_number"] = dosing_number
            sample["dose"] = 200.0 + 50.0 * (dosing_number - 1)
            sample.update(_dosing_vitals(dosing_number))
            add(sess, "kap-dosing", sample)
            if dosing_number == 1:  # one mild adverse event in the course
                event = dict(registry.latest("adverse-event").sample)
                event.update(onset_date=sess.session_date.isoformat(),
                             reported_on=sess.session_date.isoformat())
                add(sess, "adverse-event", event)
        elif sess.kind == SessionKind.INTEGRATION:
            last = sess is plan[-2]
            integration = dict(registry.latest("integration-session").sample)
            integration.update(_INTEGRATION_VARIANTS[integration_number
                                                     % len(_INTEGRATION_VARIANTS)])
            add(sess, "integration-session", integration, sign=not last)
            if integration_number < len(_INTEGRATION_MODALITIES):
                add(sess, _INTEGRATION_MODALITIES[integration_number], sign=not last)
            if integration_number == 1:
                add(sess, "gad-7", _measures("gad-7", "mid"))
                add(sess, "phq-9", _measures("phq-9", "mid"))
            integration_number += 1


def _add_weekly_notes(course: Course, therapist: User) -> None:
    """The weekly course's preparation: screening and consent signed, and a PHQ-9 whose
    item 9 is endorsed and not yet followed up (an open risk flag in the demo)."""
    from . import notes
    from .modality import get_registry

    registry = get_registry()
    preparation = course.sessions[0]
    for slug, answers in [("medical-screening", None), ("informed-consent", None),
                          ("phq-9", {**_measures("phq-9", "baseline"), "q9": 1,
                                     "risk_follow_up": "Fleeting thoughts last week, none "
                                     "today; a follow-up call is booked."})]:
        template = registry.latest(slug)
        record = dict(answers if answers is not None else template.sample)
        notes.sign(notes.create_note(preparation, therapist, template, record, {}), therapist)


def _add_plan(course: Course, start: date) -> list[TherapySession]:
    sessions = []
    last_dosing = None
    for offset, kind, summary in INTENSIVE_PLAN:
        sess = TherapySession(course=course, kind=kind, session_date=start + timedelta(offset),
                              summary=summary)
        if kind == SessionKind.DOSING:
            last_dosing = sess
        elif kind == SessionKind.INTEGRATION:
            sess.follows = last_dosing
        sessions.append(sess)
    return sessions
