"""Note lifecycle: create, save with optimistic locking, sign, addenda.

Views call these functions; they add to the session and the caller commits.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, delete, inspect, select
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.datastructures import MultiDict

from . import audit
from .access import Scope, note_statements
from .extensions import db
from .i18n import _, ngettext
from .modality.schema import Template
from .models import (
    Addendum,
    Note,
    NoteAutosave,
    NoteState,
    PrivateNote,
    Review,
    Signature,
    TherapySession,
    User,
)
from .supervision import CurrentSupervision, in_force, relationships_from
from .timeutil import day, today, utcnow


class SignRefused(Exception):
    """The note may not be signed yet; ``message`` says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoteLocked(Exception):
    """The note is signed (or entered in error) and can no longer change."""


class NoteConflict(Exception):
    """The note changed since the editor loaded it."""

    def __init__(self, current: Note) -> None:
        super().__init__("note changed since it was loaded")
        self.current = current


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(note: Note) -> str:
    """SHA-256 of the note's canonical record content (never the private notes)."""
    return record_hash(note.id, note.session_id, note.author_id, note.modality,
                       note.template_version, note.answers)


def record_hash(note_id: int, session_id: int, author_id: int, modality: str,
                template_version: int, answers: dict[str, Any]) -> str:
    """The content hash of a note with these ids and answers, wherever they come from."""
    payload = {
        "note_id": note_id,
        "session_id": session_id,
        "author_id": author_id,
        "modality": modality,
        "template_version": template_version,
        "answers": answers,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def addendum_hash(note: Note, addendum: Addendum) -> str:
    """SHA-256 binding an addendum's text and time to the signed note it corrects."""
    return seal_digest(
        {"note_id": note.id, "note_hash": note.content_hash, "author_id": addendum.author_id,
         "body": addendum.body, "signed_at": addendum.signed_at.isoformat()})


def seal_digest(payload: dict[str, Any]) -> str:
    """SHA-256 of ``payload`` written canonically: what every seal is made of."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def cosign_hash(note: Note, cosigner_id: int, review_id: int, at) -> str:
    """SHA-256 binding a supervisor's co-signature to the note's content and the review."""
    return hashlib.sha256(canonical_json({
        "note_hash": content_hash(note), "cosigner_id": cosigner_id,
        "review_id": review_id, "at": at.isoformat()}).encode()).hexdigest()


@dataclass(frozen=True)
class NotePage:
    """A note as its page (the editor, or the reading view) opens it: with what else the
    page needs to know, read in the same statement as the note. Most notes have no
    addendum, co-signature, review or kept editor state: the page asks for those only
    when there is one, so a page costs the same few statements for any note."""

    note: Note
    private: dict[str, Any]  # the author's process notes ({} for anyone else)
    has_addenda: bool
    cosigned: bool
    reviewed: bool  # sent for review at least once
    autosaved: bool  # this user has an editor state kept for it
    # The author's supervision relationships in force today, when the reader is the
    # author (None for anyone else: not read).
    relationships: list[CurrentSupervision] | None = None


def _exists(model, *where):
    return select(model.id).where(model.note_id == Note.id, *where).correlate(Note).exists()


# The author's supervision relationships in force today, joined to the note only when the
# reader is its author: one row per relationship (the note's columns repeat; an author has
# one or two), or one row with none.
_IN_FORCE = in_force(bindparam("scope_user"), bindparam("scope_day")).subquery()


def _with_supervision(statement: Select) -> Select:
    return (statement.outerjoin_from(Note, _IN_FORCE, Note.author_id == bindparam("scope_user"))
            .add_columns(_IN_FORCE.c.review_mode, _IN_FORCE.c.supervisor_id,
                         _IN_FORCE.c.supervisor_name, _IN_FORCE.c.supervisor_active)
            .order_by(_IN_FORCE.c.supervisor_name, _IN_FORCE.c.supervisor_id))


# Built once for each role (``access.note_statements``). The private answers and the
# supervision come only when the reader is the note's author.
_NOTE_PAGE = {role: _with_supervision(statement) for role, statement in note_statements(
    select(PrivateNote.answers)
    .where(PrivateNote.note_id == Note.id, Note.author_id == bindparam("scope_user"))
    .correlate(Note).scalar_subquery(),
    _exists(Addendum),
    _exists(Signature, Signature.kind == "cosign"),
    _exists(Review),
    _exists(NoteAutosave, NoteAutosave.user_id == bindparam("scope_user")),
).items()}


def note_page(scope: Scope, note_id: int) -> NotePage:
    """The note ``note_id`` for its page, in one statement (404 unless visible)."""
    rows = scope.rows(_NOTE_PAGE, note_id)
    note, private, has_addenda, cosigned, reviewed, autosaved = rows[0][:6]
    if not has_addenda and "addenda" in inspect(note).unloaded:
        set_committed_value(note, "addenda", [])
    mine = note.author_id == scope.user.id
    private = dict(private) if private and mine else {}
    return NotePage(note, private, has_addenda, cosigned, reviewed, autosaved,
                    relationships_from(row[6:] for row in rows) if mine else None)


def page_of(note: Note, user: User) -> NotePage:
    """A note already loaded, for its page: what else it has is asked for there."""
    return NotePage(note, private_answers(note, user), has_addenda=True, cosigned=True,
                    reviewed=True, autosaved=True)


def private_answers(note: Note, user: User) -> dict[str, Any]:
    """The author's private process notes; empty for anyone else."""
    if note.author_id != user.id:
        return {}
    found = db.session.scalar(_PRIVATE_ANSWERS, {"note_id": note.id})
    return dict(found) if found else {}


# Built once: the author's every view of a note asks for it (only the answers, always read
# afresh from the database).
_PRIVATE_ANSWERS = select(PrivateNote.answers).where(PrivateNote.note_id == bindparam("note_id"))


def signatures(note: Note) -> list[Signature]:
    """The note's signatures, oldest first (its author's, then any co-signature)."""
    if note.state == NoteState.DRAFT:
        return []  # a draft has no signature
    return list(db.session.scalars(_SIGNATURES, {"note_id": note.id}))


# Built once: every signed note's page and every record export asks for them.
_SIGNATURES = (select(Signature).where(Signature.note_id == bindparam("note_id"))
               .order_by(Signature.signed_at, Signature.id))


def load_addenda(note: Note) -> None:
    """Give ``note.addenda`` its rows from a statement built once (none for a draft, which
    cannot have one), so the page reading it does not build a lazy load per view."""
    if "addenda" not in inspect(note).unloaded:
        return
    found = [] if note.state == NoteState.DRAFT else \
        list(db.session.scalars(_ADDENDA, {"note_id": note.id}))
    set_committed_value(note, "addenda", found)


_ADDENDA = select(Addendum).where(Addendum.note_id == bindparam("note_id")).order_by(Addendum.id)


def create_note(therapy_session: TherapySession, author: User, template: Template,
                answers: dict[str, Any] | None = None,
                private: dict[str, Any] | None = None) -> Note:
    note = Note(session=therapy_session, author=author, modality=template.slug,
                template_version=template.version, answers=answers or {},
                state=NoteState.DRAFT)
    db.session.add(note)
    db.session.flush()
    if private:
        db.session.add(PrivateNote(note_id=note.id, author_id=author.id, answers=private))
    audit.record("note.created", obj=note, user=author,
                 client_code=therapy_session.course.client.code,
                 detail={"modality": template.slug, "version": template.version})
    return note


class UnsavedElsewhere(Exception):
    """Another editor of this note holds unsaved text that differs from the note."""

    def __init__(self, pending: PendingAutosave) -> None:
        super().__init__("another editor holds unsaved changes")
        self.pending = pending


def save_answers(note: Note, author: User, record: dict[str, Any], private: dict[str, Any],
                 expected_version: int | None, editor_id: str | None = None) -> None:
    """Store new answers, refusing a locked note or a stale editor.

    The saving editor's own autosave is done with; another editor's autosave is kept
    unless it holds exactly what was saved, so a tab closed with unsaved words is offered
    for comparison when the note is opened again.
    """
    if note.state != NoteState.DRAFT:
        raise NoteLocked()
    if expected_version is not None and expected_version != note.version:
        raise NoteConflict(note)
    row = db.session.get(PrivateNote, note.id)
    if row is None and private:
        db.session.add(PrivateNote(note_id=note.id, author_id=author.id, answers=private))
    elif row is not None:
        row.answers = private
    note.answers = record
    db.session.flush()  # one UPDATE; the version counter is checked and bumped here
    _settle_autosaves(note, {**record, **private}, editor_id)
    audit.record("note.saved", obj=note, user=author, client_code=note.session.course.client.code)


# Autosave: each editor's unsaved state, stored beside the note, never in it.

AUTOSAVE_SKIP = frozenset({"csrf_token", "action", "carry_token"})
EDITOR_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,32}$")


def new_editor_id() -> str:
    return secrets.token_urlsafe(12)


def valid_editor_id(value: str | None) -> str | None:
    return value if value and EDITOR_ID_RE.match(value) else None


@dataclass(frozen=True)
class PendingAutosave:
    """What one editor kept, as plain data (safe to use after the row is gone)."""

    editor_id: str
    base_version: int
    formdata: list[tuple[str, str]]
    saved_at: Any


def autosave(note: Note, author: User, editor_id: str, pairs: list[tuple[str, str]],
             base_version: int | None) -> PendingAutosave:
    """Keep what one editor shows; the note itself is not touched."""
    if note.state != NoteState.DRAFT:
        raise NoteLocked()
    clean = [[name, value.replace("\x00", "")] for name, value in pairs
             if name not in AUTOSAVE_SKIP]
    row = db.session.scalar(select(NoteAutosave).where(NoteAutosave.note_id == note.id,
                                                       NoteAutosave.editor_id == editor_id))
    if row is None:
        row = NoteAutosave(note_id=note.id, editor_id=editor_id, user_id=author.id)
        db.session.add(row)
    row.base_version = base_version if base_version is not None else note.version
    row.formdata = clean
    row.saved_at = utcnow()
    db.session.flush()
    return _pending(row)


def _pending(row: NoteAutosave) -> PendingAutosave:
    return PendingAutosave(row.editor_id, row.base_version,
                           [(str(k), str(v)) for k, v in row.formdata], row.saved_at)


def pending_autosaves(note: Note, user: User) -> list[PendingAutosave]:
    """This user's kept editor states for a draft, newest first."""
    if note.state != NoteState.DRAFT:
        return []
    rows = db.session.scalars(_AUTOSAVES, {"note_id": note.id, "user_id": user.id})
    return [_pending(row) for row in rows]


# Built once: the editor asks for it on every request.
_AUTOSAVES = (select(NoteAutosave)
              .where(NoteAutosave.note_id == bindparam("note_id"),
                     NoteAutosave.user_id == bindparam("user_id"))
              .order_by(NoteAutosave.saved_at.desc(), NoteAutosave.id.desc()))


def discard_autosave(note: Note, editor_id: str | None = None) -> None:
    """Forget one editor's kept text (or every editor's, when none is named)."""
    query = delete(NoteAutosave).where(NoteAutosave.note_id == note.id)
    if editor_id is not None:
        query = query.where(NoteAutosave.editor_id == editor_id)
    db.session.execute(query)


def _settle_autosaves(note: Note, saved: dict[str, Any], editor_id: str | None) -> None:
    for pending in pending_autosaves(note, note.author):
        if pending.editor_id == editor_id or kept_answers(note, pending) == saved:
            discard_autosave(note, pending.editor_id)


def kept_answers(note: Note, pending: PendingAutosave) -> dict[str, Any] | None:
    """The answers an autosave would save (record and private together), or None."""
    from .modality import get_registry
    from .modality.answers import build_form, collect, validate_note

    template = get_registry().get(note.modality, note.template_version)
    if template is None:
        return None
    form = build_form(template, formdata=MultiDict(pending.formdata))
    validate_note(form, complete=False)
    record, private = collect(form)
    return {**record, **private}


def unsaved_elsewhere(note: Note, signer: User, editor_id: str | None) -> PendingAutosave | None:
    """Another editor's kept text that the note does not hold, if any."""
    others = [p for p in pending_autosaves(note, signer) if p.editor_id != editor_id]
    if not others:
        return None
    saved = {**note.answers, **private_answers(note, signer)}
    return next((p for p in others if kept_answers(note, p) != saved), None)


def sign_refusal(note: Note) -> str | None:
    """Why this draft may not be signed now (whoever signs it), or None."""
    from .modality import get_registry
    from .risk import missing_before_signing

    session = note.session
    if session.session_date > today():
        dated = day(session.session_date, "d MMMM y")
        return _("The session is dated %(date)s, in the future: a note is signed on or after "
                 "the day of its session. Correct the session's date if it is wrong.",
                 date=dated)
    template = get_registry().get(note.modality, note.template_version)
    if template is not None and (missing := missing_before_signing(note, template)):
        needed = [m.lower() for m in missing]
        listed = needed[0]
        for title in needed[1:]:
            listed = _("%(earlier)s and a signed %(next)s", earlier=listed, next=title)
        return ngettext("%(title)s cannot be signed until this course has a signed "
                        "%(missing)s. Write and sign it first (in this or an earlier session "
                        "of the course).",
                        "%(title)s cannot be signed until this course has a signed "
                        "%(missing)s. Write and sign them first (in this or an earlier session "
                        "of the course).",
                        len(missing), title=template.title, missing=listed)
    return None


def session_prefill(therapy_session: TherapySession, template: Template,
                    answers: dict[str, Any], exclude_note_id: int | None = None
                    ) -> dict[str, Any]:
    """``answers`` with each unanswered ``prefill = "session_categories"`` field filled from
    the other notes of the session (EMDR, ART, IFS, CBT… as actually written today)."""
    fields = [f for f in template.fields if f.prefill == "session_categories"
              and not answers.get(f.key)]
    if not fields:
        return answers
    from .modality import get_registry

    registry = get_registry()
    categories = set()
    for other in therapy_session.notes:
        if other.id != exclude_note_id and other.state != NoteState.ENTERED_IN_ERROR:
            found = registry.get(other.modality, other.template_version)
            if found is not None and found.slug != template.slug:
                categories.add(found.category.strip().lower())
    filled = dict(answers)
    for f in fields:
        chosen = [c.value for c in f.choices if c.label.strip().lower() in categories]
        if chosen:
            filled[f.key] = chosen
    return filled


def recall_overlap(note: Note) -> str | None:
    """A warning when the same questionnaire was taken within its recall period before
    this note's session (the two sets of answers would cover some of the same days)."""
    from datetime import timedelta

    from .modality import get_registry
    from .models import Course

    template = get_registry().get(note.modality, note.template_version)
    if template is None or not template.recall_days:
        return None
    on = note.session.session_date
    row = db.session.execute(
        select(TherapySession.session_date)
        .join(Note, Note.session_id == TherapySession.id)
        .join(Course, Course.id == TherapySession.course_id)
        .where(Course.client_id == note.session.course.client_id, Note.id != note.id,
               Note.modality == note.modality, Note.state == NoteState.SIGNED,
               TherapySession.session_date <= on,
               TherapySession.session_date > on - timedelta(days=template.recall_days))
        .order_by(TherapySession.session_date.desc()).limit(1)).first()
    if row is None:
        return None
    earlier = row.session_date
    gap = (on - earlier).days
    when = _("the same day") if gap == 0 else ngettext("%(num)d day earlier",
                                                       "%(num)d days earlier", gap)
    taken = day(earlier, "d MMMM y")
    repeat = day(earlier + timedelta(days=template.recall_days), "d MMMM")
    return _("A %(title)s was already taken on %(date)s (%(when)s). Its questions cover the "
             "last %(days)s days, so the two sets of answers overlap; a repeat is usually "
             "taken from %(repeat)s on.", title=template.title, date=taken, when=when,
             days=template.recall_days, repeat=repeat)


def sign(note: Note, signer: User, editor_id: str | None = None) -> Signature:
    """Sign a draft; refused while another tab or device holds unsaved changes, for a
    session dated in the future, and before what the template requires is on file."""
    if note.state != NoteState.DRAFT:
        raise NoteLocked()
    if (refusal := sign_refusal(note)) is not None:
        raise SignRefused(refusal)
    if (elsewhere := unsaved_elsewhere(note, signer, editor_id)) is not None:
        raise UnsavedElsewhere(elsewhere)
    return seal(note, signer)


def seal(note: Note, signer: User) -> Signature:
    """Lock ``note`` under its content hash, signed by ``signer`` now. ``sign`` checks
    first what a therapist's signature needs; a record import seals what it verified."""
    if note.state != NoteState.DRAFT:
        raise NoteLocked()
    now = utcnow()
    digest = content_hash(note)
    note.state = NoteState.SIGNED
    note.signed_at = now
    note.signed_by_id = signer.id
    note.content_hash = digest
    signature = Signature(note_id=note.id, signer_id=signer.id, kind="author", signed_at=now,
                          content_hash=digest)
    db.session.add(signature)
    discard_autosave(note)  # unsaved editor state has no place beside a signed note
    db.session.flush()
    from .modality import get_registry
    from .risk import record_signing

    if (template := get_registry().get(note.modality, note.template_version)) is not None:
        record_signing(note, template)
    audit.record("note.signed", obj=note, user=signer, client_code=note.session.course.client.code,
                 detail={"hash": digest})
    return signature


def add_addendum(note: Note, author: User, body: str) -> Addendum:
    if note.state != NoteState.SIGNED:
        raise NoteLocked()
    now = utcnow()
    addendum = Addendum(note=note, author=author, author_id=author.id, body=body,
                        created_at=now, signed_at=now)
    addendum.content_hash = addendum_hash(note, addendum)
    db.session.add(addendum)
    db.session.flush()
    audit.record("note.addendum", obj=note, user=author,
                 client_code=note.session.course.client.code,
                 detail={"addendum_id": addendum.id, "hash": addendum.content_hash})
    return addendum


def mark_entered_in_error(note: Note, user: User, reason: str) -> None:
    if note.state != NoteState.SIGNED:
        raise NoteLocked()
    note.state = NoteState.ENTERED_IN_ERROR
    note.error_reason = reason
    db.session.flush()
    audit.record("note.entered_in_error", obj=note, user=user,
                 client_code=note.session.course.client.code)


@dataclass(frozen=True)
class HashCheck:
    ok: bool
    stored: str | None
    computed: str


def verify_hash(note: Note) -> HashCheck | None:
    """For signed notes, recompute the content hash and compare it to the stored one."""
    if note.content_hash is None:
        return None
    computed = content_hash(note)
    return HashCheck(computed == note.content_hash, note.content_hash, computed)


def previous_notes(therapy_session: TherapySession, modality: str) -> list[Note]:
    """Earlier notes of this modality in the same course, newest first."""
    from .models import Course

    course: Course = therapy_session.course
    ids = [s.id for s in course.sessions if s.id != therapy_session.id]
    if not ids:
        return []
    query = (select(Note).where(Note.session_id.in_(ids), Note.modality == modality,
                                Note.state != NoteState.ENTERED_IN_ERROR)
             .order_by(Note.created_at.desc(), Note.id.desc()))
    return list(db.session.scalars(query))
