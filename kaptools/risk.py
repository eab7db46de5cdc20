"""Risk flags that follow a client, and what must be on file before a note is signed.

A signed note whose scores raise a risk flag (the PHQ-9's item 9, a positive suicide risk
screen) flags its client; the flag shows on the dashboard, the client page, the course's
printed cover and the supervision packet until a clinician signs a risk follow-up. Each
signing writes one ``RiskSignal`` row, so the pages ask a small indexed table instead of
reading every note's answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

from sqlalchemy import Select, and_, bindparam, func, or_, select, true

from .access import CLIENT_WITH_COURSES, Scope, by_role
from .extensions import db
from .i18n import _
from .modality.answers import compute_scores
from .modality.schema import Template
from .models import Client, Note, NoteState, RiskSignal, TherapySession

FOLLOW_UP = "risk-follow-up"
RAISED, FOLLOWED_UP = "raised", "followed_up"


@dataclass(frozen=True)
class RiskFlag:
    client_id: int
    client_code: str
    label: str  # what raised it, e.g. "Item 9 endorsed …" or "High risk"
    raised_at: datetime
    note_id: int
    title: str  # the raising note's template title
    followed_up_at: datetime | None  # the last follow-up, older than this flag


def record_signing(note: Note, template: Template) -> None:
    """Called when ``note`` is signed: remember whether it raised or answered a flag."""
    client_id = note.session.course.client_id
    if note.modality == FOLLOW_UP:
        db.session.add(RiskSignal(client_id=client_id, note_id=note.id, kind=FOLLOWED_UP,
                                  label=_("Risk follow-up"), at=note.signed_at))
        return
    raised = [_("%(title)s: %(band)s", title=template.title, band=score.band)
              if score.is_levels else flag
              for score in compute_scores(template, note.answers) if score.risk
              for flag in (score.flags[:1] if score.is_levels else score.flags)]
    if raised:
        db.session.add(RiskSignal(client_id=client_id, note_id=note.id, kind=RAISED,
                                  label="; ".join(raised)[:300], at=note.signed_at))


def _open_flags_query(of_clients) -> Select:
    """The latest raise of each client among ``of_clients`` (a condition on
    ``RiskSignal.client_id``) whose flag is open, with its last follow-up: one statement."""
    live = and_(RiskSignal.note_id == Note.id, Note.state == NoteState.SIGNED)
    latest = (select(RiskSignal.client_id,
                     func.max(RiskSignal.at).filter(RiskSignal.kind == RAISED).label("raised"),
                     func.max(RiskSignal.at).filter(RiskSignal.kind == FOLLOWED_UP)
                     .label("followed"))
              .join(Note, live).where(of_clients).group_by(RiskSignal.client_id)
              .subquery())
    return (select(RiskSignal.client_id, RiskSignal.label, RiskSignal.at, RiskSignal.note_id,
                   Note.modality, Client.code, latest.c.followed)
            .join(Note, live).join(Client, Client.id == RiskSignal.client_id)
            .join(latest, and_(latest.c.client_id == RiskSignal.client_id,
                               latest.c.raised == RiskSignal.at))
            .where(RiskSignal.kind == RAISED,
                   or_(latest.c.followed.is_(None), latest.c.followed < latest.c.raised))
            .order_by(RiskSignal.client_id, RiskSignal.id.desc()))


def _flags(rows) -> dict[int, RiskFlag]:
    from .modality import get_registry

    registry = get_registry()
    flags: dict[int, RiskFlag] = {}
    for row in rows:
        if row.client_id in flags:
            continue  # two raises at the same moment: the later one
        template = registry.latest(row.modality)
        flags[row.client_id] = RiskFlag(row.client_id, row.code, row.label, row.at,
                                        row.note_id,
                                        template.title if template else row.modality,
                                        row.followed)
    return flags


def open_flags(client_ids: Iterable[int] | Select) -> dict[int, RiskFlag]:
    """The open risk flag of each of these clients that has one."""
    return _flags(db.session.execute(_open_flags_query(RiskSignal.client_id.in_(client_ids))))


# Built once for each role: the dashboard's flags, of every client the user sees.
_IN_SCOPE = by_role(lambda visible: _open_flags_query(
    RiskSignal.client_id.in_(select(Client.id).where(visible))))
_OF_CLIENT = _open_flags_query(RiskSignal.client_id == bindparam("client"))


def open_flags_in_scope(scope: Scope) -> dict[int, RiskFlag]:
    """The open risk flags of every client ``scope``'s user sees."""
    if (prepared := scope.prepared(_IN_SCOPE)) is None:
        return {}
    return _flags(db.session.execute(*prepared))


def flag_for(client: Client) -> RiskFlag | None:
    return _flags(db.session.execute(_OF_CLIENT, {"client": client.id})).get(client.id)


# The client's open flag (the latest raise), one row or none; ``object_id`` is the client.
_FLAG_OF_OBJECT = _open_flags_query(RiskSignal.client_id == bindparam("object_id")).limit(1) \
    .subquery()
_FLAG_COLUMNS = [column.name for column in _FLAG_OF_OBJECT.c]


def _with_flag(client_statement: Select) -> Select:
    """``client_statement`` (one client, its id the ``object_id`` parameter) with the
    client's open flag, if any, as columns ``flag_…`` of the same row."""
    return (client_statement.add_columns(*(_FLAG_OF_OBJECT.c[name].label(f"flag_{name}")
                                           for name in _FLAG_COLUMNS))
            .outerjoin(_FLAG_OF_OBJECT, true()))


# Built once for each role: the client's page, its first statement.
_CLIENT_WITH_COURSES_AND_FLAG = {role: _with_flag(statement)
                                 for role, statement in CLIENT_WITH_COURSES.items()}


def client_with_courses_and_flag(scope: Scope, client_id: int
                                 ) -> tuple[Client, RiskFlag | None]:
    """The client with their therapist and courses (404 unless ``scope`` sees them), and
    their open risk flag: one statement where there were two."""
    row = scope.rows(_CLIENT_WITH_COURSES_AND_FLAG, client_id, unique=True)[0]
    client = row[0]
    if row.flag_client_id is None:
        return client, None
    flag = SimpleNamespace(**{name: getattr(row, f"flag_{name}") for name in _FLAG_COLUMNS})
    return client, _flags([flag])[client.id]


def missing_before_signing(note: Note, template: Template) -> list[str]:
    """Titles of the templates this note needs a signed note of in its course first."""
    if not template.requires_signed_in_course:
        return []
    course_id = note.session.course_id
    signed = set(db.session.scalars(
        select(Note.modality).join(TherapySession, Note.session_id == TherapySession.id)
        .where(TherapySession.course_id == course_id, Note.state == NoteState.SIGNED,
               Note.modality.in_(template.requires_signed_in_course))))
    from .modality import get_registry

    registry = get_registry()
    missing = [slug for slug in template.requires_signed_in_course if slug not in signed]
    return [found.title if (found := registry.latest(slug)) else slug for slug in missing]

