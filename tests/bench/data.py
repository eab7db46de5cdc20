"""Synthetic courses for benchmarks."""

from __future__ import annotations

from datetime import date, timedelta

from kaptools import notes
from kaptools.extensions import db
from kaptools.modality import get_registry
from kaptools.models import Client, Course, TherapySession, User

INTEGRATION_MODALITIES = ["cbt-thought-record", "emdr-target-set", "ifs-parts-map",
                          "art-script", "cbt-behavioural-experiment", "cbt-exposure-ladder"]


def make_course(therapist: User, sessions: int, code: str) -> Course:
    """A course of ``sessions`` sessions: dosing, integration with a modality, measures."""
    registry = get_registry()
    client = Client(therapist=therapist, code=code)
    start = date(2026, 1, 5)
    course = Course(client=client, title=f"Benchmark course ({sessions} sessions)",
                    format="intensive", starts_on=start, intentions="Synthetic benchmark data.")
    db.session.add(client)
    last_dosing = None
    for i in range(sessions):
        kind = ["dosing", "integration", "assessment"][i % 3]
        sess = TherapySession(course=course, kind=kind, session_date=start + timedelta(days=i),
                              summary=f"Session {i + 1}")
        if kind == "dosing":
            last_dosing = sess
        elif kind == "integration":
            sess.follows = last_dosing
        db.session.add(sess)
        db.session.flush()
        slugs = {"dosing": ["kap-dosing"],
                 "integration": ["integration-session",
                                 INTEGRATION_MODALITIES[(i // 3) % len(INTEGRATION_MODALITIES)]],
                 "assessment": ["gad-7", "phq-9"]}[kind]
        for slug in slugs:
            template = registry.latest(slug)
            record = dict(template.sample)
            private = {f.key: record.pop(f.key) for f in template.fields
                       if f.audience == "private" and f.key in record}
            note = notes.create_note(sess, therapist, template, record, private)
            notes.sign(note, therapist)
    db.session.commit()
    return course


def bench_app(folder: str):
    """An app on a fresh SQLite file in ``folder`` (cheap password hashing)."""
    from pathlib import Path

    from kaptools import create_app

    return create_app({"INSTANCE_PATH": folder, "SECRET_KEY": "bench",
                       "DATABASE_URL": f"sqlite:///{Path(folder) / 'bench.sqlite3'}",
                       "ARGON2_MEMORY_COST_KIB": 1024, "ARGON2_TIME_COST": 1,
                       "ARGON2_PARALLELISM": 1})
