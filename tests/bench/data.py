"""Synthetic courses for benchmarks."""

from __future__ import annotations

from datetime import date, timedelta

from kaptools import notes
from kaptools.extensions import db
from kaptools.modality import get_registry
from kaptools.models import Client, Course, TherapySession, User

INTEGRATION_MODALITIES = ["cbt-thought-record", "emdr-target-set", "ifs-parts-map",
                          "art-script", "cbt-behavioural-experiment", "cbt-exposure-ladder"]


# Made-up display names (the same few again and again), for quick-find to look through.
SYNTHETIC_NAMES = ("Alder Quill", "Birch Wren", "Cedar Lark", "Elm Finch", "Hazel Dunn",
                   "Juniper Moss", "Linden Pike", "Rowan Vale")


def make_course(therapist: User, sessions: int, code: str) -> Course:
    """A course of ``sessions`` sessions: dosing, integration with a modality, measures."""
    client = Client(therapist=therapist, code=code)
    course = Course(client=client, title=f"Benchmark course ({sessions} sessions)",
                    format="intensive", starts_on=COURSE_START,
                    intentions="Synthetic benchmark data.")
    db.session.add(client)
    db.session.flush()
    screen_and_consent(course, therapist)
    for _ in range(sessions):
        add_signed_session(course, therapist, commit=False)
    db.session.commit()
    return course


COURSE_START = date(2026, 1, 5)


def screen_and_consent(course: Course, therapist: User) -> None:
    """Signed screening and consent at the start of the course (dosing records need them)."""
    registry = get_registry()
    sess = TherapySession(course=course, kind="preparation", session_date=COURSE_START,
                          summary="Screening and consent")
    db.session.add(sess)
    db.session.flush()
    for slug in ("medical-screening", "informed-consent"):
        template = registry.latest(slug)
        notes.sign(notes.create_note(sess, therapist, template, dict(template.sample), {}),
                   therapist)


def add_signed_session(course: Course, therapist: User, commit: bool = True) -> TherapySession:
    """The course's next session (dosing, integration or assessment in turn), its notes
    filled with the templates' samples and signed."""
    registry = get_registry()
    i = len(course.sessions)
    kind = ["dosing", "integration", "assessment"][i % 3]
    sess = TherapySession(course=course, kind=kind,
                          session_date=COURSE_START + timedelta(days=i),
                          summary=f"Session {i + 1}")
    if kind == "integration":
        sess.follows = next((s for s in reversed(course.sessions[:-1]) if s.kind == "dosing"),
                            None)
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
    if commit:
        db.session.commit()
    return sess


def bench_app(folder: str):
    """An app on a fresh SQLite file in ``folder`` (cheap password hashing)."""
    from pathlib import Path

    from kaptools import create_app

    return create_app({"INSTANCE_PATH": folder, "SECRET_KEY": "bench",
                       "DATABASE_URL": f"sqlite:///{Path(folder) / 'bench.sqlite3'}",
                       "ARGON2_MEMORY_COST_KIB": 1024, "ARGON2_TIME_COST": 1,
                       "ARGON2_PARALLELISM": 1})


# ---------------------------------------------------------------------------
# Growing a database: many therapists, clients, sessions and notes, through the app's
# own services (valid notes, signatures, reviews and audit events as in real use).

SESSION_NOTES = {
    "preparation": ["medical-screening", "informed-consent", "cbt-exposure-ladder"],
    "dosing": ["kap-dosing"],
    "integration": ["integration-session", "cbt-thought-record", "emdr-target-set",
                    "ifs-parts-map", "art-script", "cbt-behavioural-experiment"],
    "assessment": ["gad-7", "phq-9"],
}
CYCLE = ["preparation", "assessment", "dosing", "integration", "dosing", "integration",
         "assessment"]


def grow(notes_wanted: int, therapists: int = 20, share_for: str | None = "maya",
         share: float = 0.1, start: date = date(2025, 1, 6), clients: int | None = None,
         sessions_per_course: int = len(CYCLE)) -> int:
    """Add about ``notes_wanted`` notes; ``share`` of the clients are ``share_for``'s.

    With ``clients``, the notes are spread over that many clients (each session then
    holds several notes, as when measures are repeated); otherwise each session holds
    the one or two notes of its kind. Returns how many notes were added; commits as it
    goes.
    """
    from sqlalchemy import select

    from kaptools.models import ReviewMode, SupervisionRelationship
    from kaptools.passwords import hash_password

    registry = get_registry()
    supervisor = db.session.scalar(select(User).where(User.role == "supervisor"))
    password = hash_password("benchmark password")
    staff = []
    for i in range(therapists):
        name = f"bench{i:02d}"
        user = db.session.scalar(select(User).where(User.username == name))
        if user is None:
            user = User(username=name, display_name=f"Bench Therapist {i:02d}",
                        role="therapist", password_hash=password)
            db.session.add(user)
            if supervisor is not None:
                db.session.add(SupervisionRelationship(
                    supervisor=supervisor, supervisee=user, starts_on=start,
                    review_mode=ReviewMode.COSIGN_AFTER_SIGNING))
        staff.append(user)
    db.session.commit()
    owner = db.session.scalar(select(User).where(User.username == share_for)) \
        if share_for else None
    added = client_no = 0
    analysed_at = 500
    per_session = 1
    if clients:
        per_session = max(1, -(-notes_wanted // (clients * sessions_per_course)))
    while added < notes_wanted:
        therapist = owner if owner is not None and client_no % round(1 / share) == 0 else \
            staff[client_no % len(staff)]
        client = Client(therapist=therapist, code=f"BN-{client_no:05d}",
                        display_name=f"{SYNTHETIC_NAMES[client_no % len(SYNTHETIC_NAMES)]} "
                                     f"{client_no:05d}")
        course = Course(client=client, title="Weekly course", format="weekly",
                        starts_on=start + timedelta(days=client_no % 300),
                        intentions="Synthetic benchmark data.")
        db.session.add(client)
        last_dosing = None
        for i in range(sessions_per_course):
            kind = CYCLE[i % len(CYCLE)]
            sess = TherapySession(course=course, kind=kind,
                                  session_date=course.starts_on + timedelta(days=7 * i))
            if kind == "dosing":
                last_dosing = sess
            elif kind == "integration":
                sess.follows = last_dosing
            db.session.add(sess)
            db.session.flush()
            slugs = SESSION_NOTES[kind]
            chosen = slugs if kind != "integration" else \
                [slugs[0], slugs[1 + (client_no + i) % (len(slugs) - 1)]]
            if per_session > len(chosen):
                chosen = [chosen[k % len(chosen)] for k in range(per_session)]
            for j, slug in enumerate(chosen):
                if added >= notes_wanted:
                    break
                template = registry.latest(slug)
                record = dict(template.sample)
                private = {f.key: record.pop(f.key) for f in template.fields
                           if f.audience == "private" and f.key in record}
                note = notes.create_note(sess, therapist, template, record, private)
                # Most notes are signed, some stay drafts; screening and consent are
                # always signed (dosing records need them).
                if (client_no + i + j) % 9 or slug in ("medical-screening",
                                                       "informed-consent"):
                    notes.sign(note, therapist)
                added += 1
        db.session.commit()
        client_no += 1
        if added >= analysed_at:
            # The planner's figures kept up to date as the tables grow, whether or not the
            # server runs autovacuum (test servers often do not): on figures from when the
            # tables were empty, each note added scans all the notes before it.
            _analyse()
            analysed_at = 2 * added
    _analyse()
    return added


def _analyse() -> None:
    from sqlalchemy import text

    if db.engine.dialect.name == "postgresql":
        tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        db.session.execute(text(f"ANALYZE {tables}"))  # this schema's, not the database's
        db.session.commit()
