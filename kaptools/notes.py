"""Note lifecycle: create, save with optimistic locking, sign, addenda.

Views call these functions; they add to the session and the caller commits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from . import audit
from .extensions import db
from .modality.schema import Template
from .models import (
    Addendum,
    Note,
    NoteAutosave,
    NoteState,
    PrivateNote,
    Signature,
    TherapySession,
    User,
)
from .timeutil import utcnow


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
    payload = {
        "note_id": note.id,
        "session_id": note.session_id,
        "author_id": note.author_id,
        "modality": note.modality,
        "template_version": note.template_version,
        "answers": note.answers,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def private_answers(note: Note, user: User) -> dict[str, Any]:
    """The author's private process notes; empty for anyone else."""
    if note.author_id != user.id:
        return {}
    row = db.session.get(PrivateNote, note.id)
    return dict(row.answers) if row else {}


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
    audit.record("note.created", obj=note, client_code=therapy_session.course.client.code,
                 detail={"modality": template.slug, "version": template.version})
    return note


def save_answers(note: Note, author: User, record: dict[str, Any], private: dict[str, Any],
                 expected_version: int | None) -> None:
    """Store new answers, refusing a locked note or a stale editor."""
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
    discard_autosave(note)
    audit.record("note.saved", obj=note, client_code=note.session.course.client.code)


# Autosave: the editor's unsaved state, stored beside the note, never in it.

AUTOSAVE_SKIP = frozenset({"csrf_token", "action"})


def autosave(note: Note, author: User, pairs: list[tuple[str, str]],
             base_version: int | None) -> NoteAutosave:
    """Keep what the editor shows; the note itself is not touched."""
    if note.state != NoteState.DRAFT:
        raise NoteLocked()
    clean = [[name, value.replace("\x00", "")] for name, value in pairs
             if name not in AUTOSAVE_SKIP]
    row = db.session.get(NoteAutosave, note.id)
    if row is None:
        row = NoteAutosave(note_id=note.id, user_id=author.id)
        db.session.add(row)
    row.base_version = base_version if base_version is not None else note.version
    row.formdata = clean
    row.saved_at = utcnow()
    db.session.flush()
    return row


def pending_autosave(note: Note, user: User) -> NoteAutosave | None:
    row = db.session.get(NoteAutosave, note.id)
    if row is None or row.user_id != user.id or note.state != NoteState.DRAFT:
        return None
    return row


def discard_autosave(note: Note) -> None:
    row = db.session.get(NoteAutosave, note.id)
    if row is not None:
        db.session.delete(row)


def sign(note: Note, signer: User) -> Signature:
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
    audit.record("note.signed", obj=note, client_code=note.session.course.client.code,
                 detail={"hash": digest})
    return signature


def add_addendum(note: Note, author: User, body: str) -> Addendum:
    if note.state != NoteState.SIGNED:
        raise NoteLocked()
    now = utcnow()
    digest = hashlib.sha256(canonical_json(
        {"note_id": note.id, "note_hash": note.content_hash, "author_id": author.id,
         "body": body, "signed_at": now.isoformat()}).encode()).hexdigest()
    addendum = Addendum(note=note, author=author, body=body, created_at=now, signed_at=now,
                        content_hash=digest)
    db.session.add(addendum)
    db.session.flush()
    audit.record("note.addendum", obj=note, client_code=note.session.course.client.code,
                 detail={"addendum_id": addendum.id})
    return addendum


def mark_entered_in_error(note: Note, user: User, reason: str) -> None:
    if note.state != NoteState.SIGNED:
        raise NoteLocked()
    note.state = NoteState.ENTERED_IN_ERROR
    note.error_reason = reason
    db.session.flush()
    audit.record("note.entered_in_error", obj=note,
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
