"""Small builders for synthetic test records."""

from __future__ import annotations

from datetime import date

from kaptools.extensions import db
from kaptools.models import Client, Course, SupervisionRelationship, TherapySession, User

__all__ = ["User", "user", "client_with_course", "supervise", "screened_and_consented",
           "PASSWORD"]
from kaptools.passwords import hash_password

PASSWORD = "correct horse battery"


def user(username: str, role: str = "therapist", password: str = PASSWORD,
         active: bool = True) -> User:
    found = User(username=username, display_name=username.title(), role=role,
                 password_hash=hash_password(password), active=active)
    db.session.add(found)
    db.session.commit()
    return found


def client_with_course(therapist: User, code: str = "KT-0001") -> dict[str, int]:
    """A client, an intensive course, a dosing and an integration session; their ids."""
    client = Client(therapist=therapist, code=code)
    course = Course(client=client, title="Intensive", format="intensive",
                    starts_on=date(2026, 11, 1), intentions="Sleep better.")
    dosing = TherapySession(course=course, kind="dosing", session_date=date(2026, 11, 2))
    integration = TherapySession(course=course, kind="integration",
                                 session_date=date(2026, 11, 3), follows=dosing)
    db.session.add(client)
    db.session.flush()
    from kaptools import notes
    from kaptools.modality import get_registry

    template = get_registry().latest("cbt-thought-record")
    sample = dict(template.sample)
    private = {"process_notes": sample.pop("process_notes")}
    note = notes.create_note(integration, therapist, template, sample, private)
    db.session.commit()
    return {"client": client.id, "course": course.id, "dosing": dosing.id,
            "integration": integration.id, "note": note.id}


def supervise(supervisor: User, supervisee: User, starts: date, ends: date | None = None,
              mode: str = "cosign_after_signing") -> SupervisionRelationship:
    rel = SupervisionRelationship(supervisor=supervisor, supervisee=supervisee, starts_on=starts,
                                  ends_on=ends, review_mode=mode)
    db.session.add(rel)
    db.session.commit()
    return rel


def screened_and_consented(course_id: int, therapist: User) -> None:
    """Signed medical screening and consent in a preparation session of the course (what a
    dosing record needs before it can be signed), filled with the templates' samples."""
    from kaptools import notes
    from kaptools.modality import get_registry

    course = db.session.get(Course, course_id)
    sess = TherapySession(course=course, kind="preparation", session_date=course.starts_on)
    db.session.add(sess)
    db.session.flush()
    for slug in ("medical-screening", "informed-consent"):
        template = get_registry().latest(slug)
        notes.sign(notes.create_note(sess, therapist, template, dict(template.sample), {}),
                   therapist)
    db.session.commit()
