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
from .i18n import _, _l, ngettext
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
from .models import (
    Course,
    Note,
    NoteState,
    ReviewStatus,
    Signature,
    SupervisionRelationship,
    TherapySession,
)
from .timeutil import DATE, day, shown, today

log = logging.getLogger("kaptools.summaries")

SUMMARY, HANDOUT, PACKET = "summary", "handout", "packet"
TITLES = {SUMMARY: _l("Integration summary"), HANDOUT: _l("Your integration handout"),
          PACKET: _l("Supervision packet")}
# A review's status in words (the stored value is the key).
REVIEW_STATUSES = {ReviewStatus.SUBMITTED: _l("submitted"), ReviewStatus.RETURNED: _l("returned"),
                   ReviewStatus.APPROVED: _l("approved"), ReviewStatus.COSIGNED: _l("cosigned")}


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
            onset = " ".join(v for v in (day(onset_on, "dd MMM y") if onset_on else "",
                                         a.get("onset_time") or "") if v)
            actions = shown("actions")
            if a.get("rescue_medication"):
                actions += f" ({a['rescue_medication']})"
            rows.append(AdverseEventRow(
                n.id, sess.on, sess.kind_label, str(a.get("description") or "—"), onset,
                shown("severity"), shown("relation"), actions, shown("outcome"),
                shown("reported_to") + (f", {day(reported_on, 'dd MMM y')}" if reported_on
                                        else ""),
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
    review_state: str | None = None  # the latest review's status as stored ("approved")
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
    outcome_chart_alt: str
    clinic: str
    printed_on: date
    vitals_thresholds: dict[str, Any]
    practice_sheets: list[str] = field(default_factory=list)
    content_hash: str = ""
    risk_flag: Any = None  # the client's open risk flag (summaries and packets only)
    adverse_events: list[AdverseEventRow] = field(default_factory=list)
    attention: list[AttentionItem] = field(default_factory=list)
    # Handouts: the clinic's numbers for the crisis sheet, and the client's own words for
    # the practice sheets that ask for them (e.g. their calm place).
    clinic_contacts: dict[str, str] = field(default_factory=dict)
    client_words: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AttentionItem:
    """One line of "What needs attention" on a summary's or packet's front page."""
    category: str
    text: str
    where: str  # the session it is in, in words
    anchor: str  # the id of the note or session it points to


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


def _words(text: Any) -> str:
    return " ".join(str(text or "").split()).casefold()


def _drop_repeated_intention(block: NoteBlock, seen: set[str]) -> None:
    """A dosing intention carried from session to session is printed once on a handout
    (and not at all when it is the course's own intention, printed on its first page)."""
    if block.slug != "kap-dosing" or not block.answers.get("intention"):
        return
    said = _words(block.answers["intention"])
    if said in seen:
        block.answers = {k: v for k, v in block.answers.items() if k != "intention"}
    seen.add(said)


def _client_words(sessions: list[SessionBlock]) -> dict[str, str]:
    """The client's own words for the practice sheets: the latest description of their
    calm place (from the notes' client-visible answers)."""
    words: dict[str, str] = {}
    for sess in sessions:
        for n in sess.notes:
            if isinstance(n.answers.get("calm_place"), str) and n.answers["calm_place"].strip():
                words["calm_place"] = n.answers["calm_place"].strip()
    return words


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
            block.review_state = str(last.status)
            block.review_status = _("round %(round)s, %(status)s", round=last.round,
                                    status=str(REVIEW_STATUSES.get(last.status, last.status)))
    check = note_service.verify_hash(note)
    block.content_hash = note.content_hash
    block.hash_ok = check.ok if check else None
    block.error_reason = note.error_reason
    return block


def _diagrams(slug: str, answers: dict[str, Any]) -> dict[str, Any]:
    """A note's drawings. One that cannot be drawn is left out (its data still prints in
    the tables) rather than costing the note its layout."""
    try:
        return _draw(slug, answers)
    except Exception:
        log.exception("a %s diagram could not be drawn; printing the tables alone", slug)
        return {}


def _draw(slug: str, answers: dict[str, Any]) -> dict[str, Any]:
    from . import charts, diagrams

    if slug == "ifs-parts-map" and answers.get("parts"):
        drawn = diagrams.ifs_map(answers["parts"], answers.get("relationships") or [])
        if drawn is None:
            return {"map_too_large": True}
        return {"map": drawn.uri, "map_alt": drawn.alt, "map_width_pt": drawn.width_pt,
                "map_legend": {k: str(v) for k, v in diagrams.EDGE_LEGEND.items()}}
    if slug == "emdr-target-set":
        chart = charts.emdr_chart(answers)
        return {"trajectory": chart.uri, "trajectory_alt": chart.alt} if chart else {}
    return {}


def _date_range(course: Course, days: list[date]) -> str:
    """The course's dates, widened to every session the document holds (a session after
    the planned end is still in the range printed on the cover)."""
    first = min([course.starts_on, *days])
    last = max([d for d in (course.ends_on, *days) if d is not None], default=None)
    if last is None or last == first:
        return day(first, "dd MMM y")
    return _("%(first)s – %(last)s", first=day(first, "dd MMM y"), last=day(last, "dd MMM y"))


def build_document(kind: str, course: Course, only: TherapySession | None = None,
                   sheets: list[str] | None = None) -> Document:
    """Assemble a summary, handout or packet for a course (or one session of it)."""
    registry = get_registry()
    client = course.client
    sessions: list[SessionBlock] = []
    loaded = _sessions_of(course, only)
    seen_intentions = {_words(course.intentions)}
    for sess in loaded:
        blocks = []
        for note in sess.notes:
            template = registry.get(note.modality, note.template_version)
            if template is None:
                continue
            if kind == HANDOUT and note.state != NoteState.SIGNED:
                continue  # clients take home only what the therapist has signed
            block = _note_block(note, template, kind)
            if kind == HANDOUT:
                _drop_repeated_intention(block, seen_intentions)
            if kind == HANDOUT and not block.answers:
                continue
            blocks.append(block)
        if kind == HANDOUT and not blocks:
            continue
        sessions.append(SessionBlock(
            sess.id, sess.kind, str(KIND_LABELS.get(sess.kind, sess.kind)), sess.session_date,
            sess.summary, sess.follows.session_date if sess.follows else None, blocks))

    points = outcomes.course_outcomes(course) if kind != HANDOUT and only is None else []
    try:
        chart = outcomes.course_chart(loaded, points)
    except Exception:
        log.exception("the outcome chart of course %s could not be drawn", course.id)
        chart = None
    dates = _date_range(course, [s.on for s in sessions])
    scope_label = (_("%(kind)s session, %(day)s", kind=KIND_LABELS.get(only.kind, only.kind),
                     day=day(only.session_date, "dd MMM y"))
                   if only is not None else course.title)
    doc = Document(
        kind=kind, title=str(TITLES[kind]), scope_label=scope_label, client_code=client.code,
        client_name=client.display_name if kind == HANDOUT else None,
        course_title=course.title, course_format=str(FORMAT_LABELS.get(course.format)),
        course_dates=dates, intentions=course.intentions, therapist=client.therapist.display_name,
        supervisors=_supervisors(course) if kind != HANDOUT else [], sessions=sessions,
        outcome_changes=outcomes.changes(points), outcome_chart=chart.uri if chart else None,
        outcome_chart_alt=chart.alt if chart else "",
        clinic=str(current_app.config["CLINIC_NAME"]), printed_on=today(),
        vitals_thresholds=vitals.thresholds(current_app.config["VITALS_THRESHOLDS"]))
    if kind == HANDOUT:
        doc.practice_sheets = sheets if sheets is not None else default_sheets(doc, loaded)
        config = current_app.config
        doc.clinic_contacts = {key: str(config.get(setting) or "").strip() for key, setting in (
            ("phone", "CLINIC_PHONE"), ("after_hours", "CLINIC_AFTER_HOURS_PHONE"),
            ("crisis_line", "CRISIS_LINE"), ("emergency", "EMERGENCY_NUMBER"))}
        doc.client_words = _client_words(sessions)
    else:
        from .risk import flag_for

        doc.risk_flag = flag_for(client)
        doc.adverse_events = _adverse_event_rows(sessions)
        doc.attention = attention(doc, points)
    doc.content_hash = document_hash(doc)
    return doc


# Measures above these totals are listed on the front page (the usual screening cut-offs:
# moderate and above on GAD-7 and PHQ-9; the lower end of PCL-5's 31–33 cut-point).
CUT_OFFS = {"GAD-7": 10, "PHQ-9": 10, "PCL-5": 31, "PCL-5 (past week)": 31}


def attention(doc: Document, points: list[outcomes.OutcomePoint]) -> list[AttentionItem]:
    """What a supervisor should see first: risk, adverse events, vitals outside the
    practice's thresholds, measures above cut-off with their trend, unsigned drafts and
    open review comments — each pointing at the note or session it is in."""
    items: list[AttentionItem] = []
    where = {s.id: _("%(kind)s, %(day)s", kind=s.kind_label, day=day(s.on, "dd MMM y"))
             for s in doc.sessions}
    flag = doc.risk_flag
    if flag is not None:
        place = next((where[s.id] for s in doc.sessions for n in s.notes if n.id == flag.note_id),
                     _("%(title)s, signed %(day)s, outside this document", title=flag.title,
                       day=shown(flag.raised_at, DATE)))
        here = any(n.id == flag.note_id for s in doc.sessions for n in s.notes)
        items.append(AttentionItem(_("Open risk flag"),
                                   _("%(label)s — no risk follow-up signed since",
                                     label=flag.label), place,
                                   f"note-{flag.note_id}" if here else ""))
    limits = doc.vitals_thresholds
    for sess in doc.sessions:
        for n in sess.notes:
            if n.state == NoteState.ENTERED_IN_ERROR:
                continue  # retracted: its findings are not findings
            try:
                items += _note_attention(doc, n, where[sess.id], limits)
            except Exception:  # odd answers: say so rather than lose the front page
                log.exception("note %s could not be checked for the front page", n.id)
                items.append(AttentionItem(_("Could not be checked"), n.title,
                                           where[sess.id], f"note-{n.id}"))
    for e in doc.adverse_events:
        if e.state == NoteState.ENTERED_IN_ERROR:
            continue
        session = next(s for s in doc.sessions if any(n.id == e.note_id for n in s.notes))
        severity = e.severity or _("severity not recorded")
        items.append(AttentionItem(_("Adverse event"),
                                   _("%(description)s (%(severity)s)",
                                     description=e.description, severity=severity),
                                   where[session.id], f"note-{e.note_id}"))
    for change in outcomes.changes(points):
        cut = CUT_OFFS.get(change.measure)
        latest = change.latest
        if cut is None or latest.total < cut or latest.session_id not in where:
            continue
        trend = (_("from %(total)s on %(day)s (%(change)s)", total=change.baseline.total,
                   day=day(change.baseline.on, "dd MMM"), change=format(change.change, "+d"))
                 if change.repeated else _("first measurement"))
        items.append(AttentionItem(
            _("Above cut-off"),
            _("%(measure)s %(total)s / %(max)s (cut-off %(cut)s; %(band)s), %(trend)s",
              measure=change.measure, total=latest.total, max=latest.max_total, cut=cut,
              band=latest.band, trend=trend), where[latest.session_id],
            f"session-{latest.session_id}"))
    order = [_("Open risk flag"), _("Risk"), _("Adverse event"), _("Vitals outside thresholds"),
             _("Above cut-off"), _("Open review comments"), _("Unsigned draft"),
             _("Could not be checked")]
    return sorted(items, key=lambda i: order.index(i.category))


def _note_attention(doc: Document, n: NoteBlock, place: str,
                    limits: dict[str, Any]) -> list[AttentionItem]:
    items = []
    anchor = f"note-{n.id}"
    for sc in n.scores:
        if sc.risk and sc.complete:
            found = list(sc.flags) or ([sc.band] if sc.band else [])
            items += [AttentionItem(_("Risk"), _("%(title)s: %(label)s", title=n.title,
                                                 label=label), place, anchor)
                      for label in found]
    if n.slug == "kap-dosing":
        out = _vitals_out_of_range(n.answers, limits)
        if out:
            items.append(AttentionItem(_("Vitals outside thresholds"), "; ".join(out), place,
                                       anchor))
    if n.state == NoteState.DRAFT:
        items.append(AttentionItem(_("Unsigned draft"), n.title, place, anchor))
    if doc.kind == PACKET and n.comments and n.review_status and \
            n.review_state not in (ReviewStatus.APPROVED, ReviewStatus.COSIGNED):
        items.append(AttentionItem(
            _("Open review comments"),
            ngettext("%(title)s: %(num)d review comment (%(status)s)",
                     "%(title)s: %(num)d review comments (%(status)s)", len(n.comments),
                     title=n.title, status=n.review_status), place, anchor))
    return items


def _vitals_out_of_range(answers: dict[str, Any], limits: dict[str, Any]) -> list[str]:
    """The baseline and each reading of a dosing record with values outside the limits."""
    readings = answers.get("vitals")
    rows = [(_("baseline"), vitals.baseline(answers))]
    rows += [(str(v.get("time") or _("reading %(number)s", number=i + 1)), v)
             for i, v in enumerate(readings if isinstance(readings, list) else [])
             if isinstance(v, dict)]
    return [_("%(when)s: %(values)s", when=when, values=", ".join(found))
            for when, values in rows if (found := vitals.out_of_range(values, limits))]


def document_hash(doc: Document) -> str:
    """SHA-256 over the document's content, printed in every page footer."""
    payload = {
        "kind": doc.kind, "scope": doc.scope_label, "client": doc.client_code,
        "course": [doc.course_title, doc.course_format, doc.course_dates, doc.intentions],
        "people": [doc.therapist, doc.supervisors],
        "sessions": [[s.id, s.kind, s.on.isoformat(), s.summary,
                      [[n.id, n.slug, n.version, n.state, n.answers, n.content_hash,
                        [(a.body, a.content_hash) for a in n.addenda],
                        [(c.body, c.field_label) for c in n.comments], n.review_status,
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
    "calm_place": _l("Your calm place"),
    "container": _l("The container"),
    "butterfly_hug": _l("The butterfly hug"),
    "light_stream": _l("The light stream"),
    "box_breathing": _l("Box breathing"),
    "breathing_478": _l("4-7-8 breathing"),
    "progressive_muscle_relaxation": _l("Progressive muscle relaxation"),
    "grounding_54321": _l("5-4-3-2-1 grounding"),
    "tices_log": _l("Your TICES log"),
    "journaling": _l("Journaling prompts for integration"),
    "after_dosing": _l("Caring for yourself after a medicine session"),
    "at_home_lozenges": _l("Taking your lozenge at home, safely"),
    "crisis": _l("If things get hard"),
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
