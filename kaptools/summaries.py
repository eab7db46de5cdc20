"""Documents assembled from the database as plain data, filtered for their audience.

Print templates receive these dataclasses and immutable template definitions only:
no ORM object reaches a template.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from . import notes as note_service
from . import outcomes, vitals
from .extensions import db
from .forms import FORMAT_LABELS, KIND_LABELS
from .modality import get_registry
from .modality.answers import (
    ScoreResult,
    as_date,
    compute_scores,
    display_value,
    plain_answers,
    ref_titles,
)
from .modality.schema import Field, Template
from .models import Course, Note, NoteState, Signature, SupervisionRelationship, TherapySession
from .timeutil import today

log = logging.getLogger("kaptools.summaries")

SUMMARY, HANDOUT, PACKET = "summary", "handout", "packet"
TITLES = {SUMMARY: "Integration summary", HANDOUT: "Your integration handout",
          PACKET: "Supervision packet"}


@dataclass(frozen=True)
class SignatureInfo:
    signer: str
    kind: str
    at: datetime
    content_hash: str


@dataclass(frozen=True)
class AddendumInfo:
    author: str
    at: datetime
    body: str
    content_hash: str


@dataclass(frozen=True)
class CommentInfo:
    author: str
    at: datetime
    field_label: str | None
    body: str


@dataclass
class AdverseEventRow:
    """One adverse-event record, as a row of the course's table on the front page."""

    note_id: int
    session_on: date
    session_label: str
    description: str
    onset: str
    severity: str
    relation: str
    actions: str
    outcome: str
    reported_to: str
    state: str


ADVERSE_EVENT = "adverse-event"


def _adverse_event_rows(sessions: list[SessionBlock]) -> list[AdverseEventRow]:
    rows = []
    for sess in sessions:
        for n in sess.notes:
            if n.slug != ADVERSE_EVENT:
                continue
            a, t = n.answers, n.template

            def shown(key: str, a=a, t=t) -> str:
                f = t.field(key)
                return display_value(f, a.get(key)) if f is not None else ""

            onset_on, reported_on = as_date(a.get("onset_date")), as_date(a.get("reported_on"))
            onset = " ".join(v for v in (f"{onset_on:%d %b %Y}" if onset_on else "",
                                         a.get("onset_time") or "") if v)
            actions = shown("actions")
            if a.get("rescue_medication"):
                actions += f" ({a['rescue_medication']})"
            rows.append(AdverseEventRow(
                n.id, sess.on, sess.kind_label, str(a.get("description") or "—"), onset,
                shown("severity"), shown("relation"), actions, shown("outcome"),
                shown("reported_to") + (f", {reported_on:%d %b %Y}" if reported_on else ""),
                n.state))
    return rows


@dataclass
class NoteBlock:
    id: int
    slug: str
    title: str
    version: int
    template: Template
    answers: dict[str, Any]
    refs: dict[str, str]
    state: str
    scores: list[ScoreResult] = field(default_factory=list)
    signatures: list[SignatureInfo] = field(default_factory=list)
    addenda: list[AddendumInfo] = field(default_factory=list)
    comments: list[CommentInfo] = field(default_factory=list)
    review_status: str | None = None
    content_hash: str | None = None
    hash_ok: bool | None = None
    error_reason: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    # The answers as plain (label, text) lines, printed when the block cannot be laid out.
    plain: list[tuple[str, str]] = field(default_factory=list)
    degraded: bool = False


@dataclass
class SessionBlock:
    id: int
    kind: str
    kind_label: str
    on: date
    summary: str
    follows_on: date | None
    notes: list[NoteBlock]


@dataclass
class Document:
    kind: str
    title: str
    scope_label: str
    client_code: str
    client_name: str | None
    course_title: str
    course_format: str
    course_dates: str
    intentions: str
    therapist: str
    supervisors: list[str]
    sessions: list[SessionBlock]
    outcome_changes: list[outcomes.MeasureChange]
    outcome_chart: str | None
    clinic: str
    printed_on: date
    vitals_thresholds: dict[str, Any]
    practice_sheets: list[str] = field(default_factory=list)
    content_hash: str = ""
    risk_flag: Any = None  # the client's open risk flag (summaries and packets only)
    adverse_events: list[AdverseEventRow] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Audience filtering


def client_visible(template: Template, answers: dict[str, Any]) -> dict[str, Any]:
    """Only what the template marks for the client; groups keep rows with client content."""

    def level(fields: tuple[Field, ...], values: dict[str, Any]) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for f in fields:
            if f.key not in values:
                continue
            if f.type == "group":
                shared = [g for g in f.fields if g.audience == "client" or g.type == "group"]
                rows = []
                for item in values[f.key]:
                    inner = level(f.fields, item)
                    # A row whose only client content is its title (a part's name) is
                    # left out when the group has more to say to the client.
                    personal = {k: v for k, v in inner.items() if k != f.item_title}
                    if personal or (inner and len(shared) == 1):
                        rows.append(inner)
                if rows:
                    kept[f.key] = rows
            elif f.audience == "client" and f.type != "ref":
                kept[f.key] = values[f.key]
        return kept

    return level(template.fields, answers)


# ---------------------------------------------------------------------------
# Assembly


def _sessions_of(course: Course, only: TherapySession | None) -> list[TherapySession]:
    """The sessions a document covers, with everything it prints loaded in a fixed number
    of queries (however many sessions, notes, signatures, addenda and comments)."""
    from .models import Addendum, Review, ReviewComment

    query = (select(TherapySession).where(TherapySession.course_id == course.id)
             .options(joinedload(TherapySession.follows),
                      selectinload(TherapySession.notes).options(
                          selectinload(Note.addenda).joinedload(Addendum.author),
                          selectinload(Note.signatures).joinedload(Signature.signer),
                          selectinload(Note.reviews).selectinload(Review.comments)
                          .joinedload(ReviewComment.author)))
             .order_by(TherapySession.session_date, TherapySession.id))
    if only is not None:
        query = query.where(TherapySession.id == only.id)
    return list(db.session.scalars(query))


def _supervisors(course: Course) -> list[str]:
    on = today()
    therapist_id = course.client.therapist_id
    rels = db.session.scalars(
        select(SupervisionRelationship).where(
            SupervisionRelationship.supervisee_id == therapist_id,
            SupervisionRelationship.starts_on <= on))
    return sorted({r.supervisor.display_name for r in rels if r.is_current(on)})


def _note_block(note: Note, template: Template, kind: str) -> NoteBlock:
    record = dict(note.answers) if isinstance(note.answers, dict) else {}
    try:
        answers = client_visible(template, record) if kind == HANDOUT else record
    except Exception:  # never risk the wrong thing on a client's page: leave it out
        log.exception("note %s: client-visible answers could not be picked", note.id)
        answers = {}
    block = NoteBlock(note.id, note.modality, template.title, note.template_version,
                      template, answers, {}, note.state, plain=plain_answers(template, answers))
    try:
        # Everything computed from the answers: data no template expects degrades the
        # block to plain text instead of stopping the document.
        block.refs = ref_titles(template, record)
        if kind != HANDOUT:
            block.scores = compute_scores(template, record)
            block.extras = _diagrams(note.modality, record)
    except Exception:
        log.exception("note %s could not be laid out; printing it as plain text", note.id)
        block.degraded = True
    if kind == HANDOUT:
        return block
    block.signatures = [SignatureInfo(s.signer.display_name, s.kind, s.signed_at,
                                      s.content_hash) for s in note.signatures]
    block.addenda = [AddendumInfo(a.author.display_name, a.signed_at, a.body, a.content_hash)
                     for a in note.addenda]
    if kind == PACKET:
        history = note.reviews
        for review in history:
            for c in review.comments:
                f = template.field(c.field_key) if c.field_key else None
                block.comments.append(CommentInfo(c.author.display_name, c.created_at,
                                                  f.label if f else None, c.body))
        if history:
            last = history[-1]
            block.review_status = f"round {last.round}, {last.status}"
    check = note_service.verify_hash(note)
    block.content_hash = note.content_hash
    block.hash_ok = check.ok if check else None
    block.error_reason = note.error_reason
    return block


def _diagrams(slug: str, answers: dict[str, Any]) -> dict[str, Any]:
    from . import diagrams

    if slug == "ifs-parts-map" and answers.get("parts"):
        return {"map": diagrams.ifs_map_uri(answers["parts"], answers.get("relationships", []))}
    if slug == "emdr-target-set":
        return {"trajectory": diagrams.emdr_trajectory_uri(answers)}
    return {}


def build_document(kind: str, course: Course, only: TherapySession | None = None,
                   sheets: list[str] | None = None) -> Document:
    """Assemble a summary, handout or packet for a course (or one session of it)."""
    registry = get_registry()
    client = course.client
    sessions: list[SessionBlock] = []
    loaded = _sessions_of(course, only)
    for sess in loaded:
        blocks = []
        for note in sess.notes:
            template = registry.get(note.modality, note.template_version)
            if template is None:
                continue
            if kind == HANDOUT and note.state != NoteState.SIGNED:
                continue  # clients take home only what the therapist has signed
            block = _note_block(note, template, kind)
            if kind == HANDOUT and not block.answers:
                continue
            blocks.append(block)
        if kind == HANDOUT and not blocks:
            continue
        sessions.append(SessionBlock(
            sess.id, sess.kind, KIND_LABELS.get(sess.kind, sess.kind), sess.session_date,
            sess.summary, sess.follows.session_date if sess.follows else None, blocks))

    points = outcomes.course_outcomes(course) if kind != HANDOUT and only is None else []
    try:
        chart = outcomes.svg_data_uri(outcomes.outcome_chart_svg(loaded, points)) \
            if any(p.measure in outcomes.CHARTED for p in points) else None
    except Exception:
        log.exception("the outcome chart of course %s could not be drawn", course.id)
        chart = None
    dates = f"{course.starts_on:%d %b %Y}" + (f" – {course.ends_on:%d %b %Y}"
                                              if course.ends_on else "")
    scope_label = (f"{KIND_LABELS.get(only.kind, only.kind)} session, {only.session_date:%d %b %Y}"
                   if only is not None else course.title)
    doc = Document(
        kind=kind, title=TITLES[kind], scope_label=scope_label, client_code=client.code,
        client_name=client.display_name if kind == HANDOUT else None,
        course_title=course.title, course_format=str(FORMAT_LABELS.get(course.format)),
        course_dates=dates, intentions=course.intentions, therapist=client.therapist.display_name,
        supervisors=_supervisors(course) if kind != HANDOUT else [], sessions=sessions,
        outcome_changes=outcomes.changes(points), outcome_chart=chart,
        clinic=str(current_app.config["CLINIC_NAME"]), printed_on=today(),
        vitals_thresholds=vitals.thresholds(current_app.config["VITALS_THRESHOLDS"]))
    if kind == HANDOUT:
        doc.practice_sheets = sheets if sheets is not None else default_sheets(doc, loaded)
    else:
        from .risk import flag_for

        doc.risk_flag = flag_for(client)
        doc.adverse_events = _adverse_event_rows(sessions)
    doc.content_hash = document_hash(doc)
    return doc


def document_hash(doc: Document) -> str:
    """SHA-256 over the document's content, printed in every page footer."""
    payload = {
        "kind": doc.kind, "scope": doc.scope_label, "client": doc.client_code,
        "course": [doc.course_title, doc.course_format, doc.course_dates, doc.intentions],
        "people": [doc.therapist, doc.supervisors],
        "sessions": [[s.id, s.kind, s.on.isoformat(), s.summary,
                      [[n.id, n.slug, n.version, n.state, n.answers, n.content_hash,
                        [(a.body, a.content_hash) for a in n.addenda],
                        [(c.body, c.field_label) for c in n.comments],
                        [(g.kind, g.content_hash) for g in n.signatures]]
                       for n in s.notes]] for s in doc.sessions],
        "sheets": doc.practice_sheets,
        "risk": [doc.risk_flag.label, doc.risk_flag.raised_at.isoformat(),
                 doc.risk_flag.title] if doc.risk_flag else None,
    }
    encoded = json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


# ---------------------------------------------------------------------------
# Practice sheets for handouts

PRACTICE_SHEETS = {
    "calm_place": "Your calm place",
    "container": "The container",
    "butterfly_hug": "The butterfly hug",
    "light_stream": "The light stream",
    "box_breathing": "Box breathing",
    "breathing_478": "4-7-8 breathing",
    "progressive_muscle_relaxation": "Progressive muscle relaxation",
    "grounding_54321": "5-4-3-2-1 grounding",
    "tices_log": "Your TICES log",
    "journaling": "Journaling prompts for integration",
    "after_dosing": "Caring for yourself after a medicine session",
    "at_home_lozenges": "Taking your lozenge at home, safely",
    "crisis": "If things get hard",
}
# Integration practices (choice values) that have a sheet of their own.
PRACTICE_TO_SHEET = {
    "calm_place": "calm_place", "container": "container", "butterfly_hug": "butterfly_hug",
    "light_stream": "light_stream", "box_breathing": "box_breathing",
    "4_7_8_breathing": "breathing_478",
    "progressive_muscle_relaxation": "progressive_muscle_relaxation",
    "5_4_3_2_1_grounding": "grounding_54321", "tices_log": "tices_log",
    "journaling": "journaling",
}


def default_sheets(doc: Document, sessions: list[TherapySession]) -> list[str]:
    """Sheets for the practices assigned, after-dosing care, and always the crisis sheet."""
    chosen: list[str] = []
    for sess in doc.sessions:
        for note in sess.notes:
            practices = note.answers.get("practices")
            for practice in practices if isinstance(practices, list) else []:
                sheet = PRACTICE_TO_SHEET.get(practice) if isinstance(practice, str) else None
                if sheet and sheet not in chosen:
                    chosen.append(sheet)
            if note.answers.get("calm_place") and "calm_place" not in chosen:
                chosen.append("calm_place")
    if any(s.kind == "dosing" for s in sessions):
        chosen.append("after_dosing")
    at_home = ("home_supervised", "telehealth")
    if any(n.modality == "kap-dosing" and n.state == NoteState.SIGNED
           and (n.answers or {}).get("setting") in at_home
           for s in sessions for n in s.notes):
        chosen.append("at_home_lozenges")
    chosen.append("crisis")
    return chosen
