"""Supervision: submit for review, comment on fields, return, approve, co-sign, diff."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import defer, joinedload, selectinload

from . import audit
from .access import PAGE_SIZE, Scope
from .extensions import db
from .forms import KIND_LABELS
from .i18n import _
from .modality import get_registry
from .modality.answers import display_value
from .modality.schema import Template
from .models import (
    Course,
    Note,
    NoteState,
    Review,
    ReviewComment,
    ReviewMode,
    ReviewStatus,
    Signature,
    TherapySession,
    User,
)
from .notes import cosign_hash, verify_hash
from .supervision import CurrentSupervision, Supervisor, in_force, relationships_from
from .timeutil import day, today, utcnow


class ReviewError(Exception):
    """A review action that does not fit the review's state; the message says why."""


def current_relationships(supervisee: User, on: date | None = None
                          ) -> list[CurrentSupervision]:
    """The supervision relationships of ``supervisee`` in force on ``on`` (today), read as
    plain rows (a note's page reads its author's with the note: ``notes.note_page``)."""
    return relationships_from(db.session.execute(
        _RELATIONSHIPS_ON, {"supervisee": supervisee.id, "on": on or today()}))


# Built once.
_RELATIONSHIPS_ON = in_force(bindparam("supervisee"), bindparam("on")).order_by(
    User.display_name, User.id)


def current_supervisors(supervisee: User,
                        relationships: list[CurrentSupervision] | None = None
                        ) -> list[Supervisor]:
    """The active supervisors of ``supervisee`` today (from ``relationships`` when the
    caller has already read them)."""
    if relationships is None:
        relationships = current_relationships(supervisee)
    return [r.supervisor for r in relationships if r.supervisor.active]


def needs_approval_before_signing(author: User,
                                  relationships: list[CurrentSupervision] | None = None
                                  ) -> bool:
    if relationships is None:
        relationships = current_relationships(author)
    return any(r.review_mode == ReviewMode.APPROVE_BEFORE_SIGNING for r in relationships)


def note_reviews(note: Note) -> list[Review]:
    return list(db.session.scalars(_NOTE_REVIEWS, {"note_id": note.id}))


_NOTE_REVIEWS = (select(Review).where(Review.note_id == bindparam("note_id"))
                 .order_by(Review.round, Review.id))


def sign_blocker(note: Note, author: User,
                 relationships: list[CurrentSupervision] | None = None,
                 history: list[Review] | None = None) -> str | None:
    """Why this author may not sign yet (trainees need an approved review), or None.
    ``relationships`` and ``history`` (the note's reviews) when the caller has them."""
    if not needs_approval_before_signing(author, relationships):
        return None
    reviews = note_reviews(note) if history is None else history
    if reviews and reviews[-1].status == ReviewStatus.APPROVED:
        # The approval covers exactly the version the supervisor read.
        if reviews[-1].snapshot.get("version") == note.version:
            return None
        return _("The note changed after your supervisor approved it: send it for review "
                 "again and sign it once the new version is approved.")
    return _("Your supervision requires approval before signing: submit this note for review "
             "and sign it once your supervisor has approved it.")


def _snapshot(note: Note) -> dict[str, Any]:
    return {"answers": note.answers, "state": note.state, "version": note.version,
            "content_hash": note.content_hash,
            "addenda": [{"id": a.id, "body": a.body} for a in note.addenda]}


def submit_note(note: Note, author: User, reviewer_id: int) -> Review:
    """Send one note (draft or signed) to a supervisor."""
    if note.author_id != author.id:
        raise ReviewError(_("Only the note's author can submit it for review."))
    return _open_review(author, reviewer_id, note_reviews(note), _code(note),
                        _("This note is already waiting for review."),
                        note_id=note.id, snapshot=_snapshot(note))


def _open_review(author: User, reviewer_id: int, previous: list[Review], client_code: str,
                 already: str, **subject: Any) -> Review:
    """A new round of review, addressed to one of the author's current supervisors."""
    if reviewer_id not in {s.id for s in current_supervisors(author)}:
        raise ReviewError(_("Choose one of your current supervisors."))
    if previous and previous[-1].status == ReviewStatus.SUBMITTED:
        raise ReviewError(already)
    review = Review(submitted_by_id=author.id, reviewer_id=reviewer_id,
                    status=ReviewStatus.SUBMITTED, round=len(previous) + 1,
                    submitted_at=utcnow(), **subject)
    db.session.add(review)
    db.session.flush()
    audit.record("review.submitted", obj=review, user=author, client_code=client_code,
                 detail={"note_id": review.note_id, "course_id": review.course_id,
                         "round": review.round})
    return review


def _code(note: Note) -> str:
    return note.session.course.client.code


def _course_snapshot(course: Course) -> dict[str, Any]:
    registry = get_registry()
    notes = {}
    for sess in course.sessions:
        for note in sess.notes:
            template = registry.get(note.modality, note.template_version)
            notes[str(note.id)] = {
                "title": template.title if template else note.modality,
                "session": f"{KIND_LABELS.get(sess.kind, sess.kind)} · "
                           f"{day(sess.session_date, 'dd MMM y')}",
                "modality": note.modality, "version": note.template_version,
                "answers": note.answers, "state": note.state,
                "content_hash": note.content_hash}
    return {"notes": notes}


def course_reviews(course: Course) -> list[Review]:
    return list(db.session.scalars(select(Review).where(Review.course_id == course.id)
                                   .order_by(Review.round, Review.id)))


def submit_course(course: Course, author: User, reviewer_id: int) -> Review:
    """Send a whole course summary to a supervisor."""
    if course.client.therapist_id != author.id:
        raise ReviewError(_("Only the treating therapist can submit this course."))
    return _open_review(author, reviewer_id, course_reviews(course), course.client.code,
                        _("This course summary is already waiting for review."),
                        course_id=course.id, snapshot=_course_snapshot(course))


def review_client_code(review: Review) -> str:
    if review.note_id is not None:
        return _code(db.session.get(Note, review.note_id))
    return db.session.get(Course, review.course_id).client.code


def parse_course_anchor(review: Review, anchor: str | None) -> tuple[str | None, str | None]:
    """'note:<id>' or 'note:<id>:<field>' → (note id, field key), checked against the review."""
    if not anchor:
        return None, None
    parts = anchor.split(":")
    if parts[0] != "note" or len(parts) not in (2, 3):
        raise ReviewError(_("Comment on one of the course's notes, or leave a general "
                            "comment."))
    entry = review.snapshot.get("notes", {}).get(parts[1])
    if entry is None:
        raise ReviewError(_("That note is not part of this submission."))
    key = parts[2] if len(parts) == 3 else None
    if key:
        template = get_registry().get(entry["modality"], entry["version"])
        f = template.field(key) if template else None
        if f is None or f.audience == "private":
            raise ReviewError(_("Comment on one of the note's fields."))
    return parts[1], key


def _require_open(review: Review) -> None:
    if review.status != ReviewStatus.SUBMITTED:
        raise ReviewError(_("This review has already been decided."))


def comment(review: Review, supervisor: User, field_key: str | None, body: str) -> ReviewComment:
    _require_open(review)
    if review.course_id is not None:
        parse_course_anchor(review, field_key)
    else:
        note = db.session.get(Note, review.note_id)
        template = get_registry().get(note.modality, note.template_version)
        if field_key and (template is None or template.field(field_key) is None
                          or template.field(field_key).audience == "private"):
            raise ReviewError(_("Comment on one of the note's fields, or leave a general "
                                "comment."))
    found = ReviewComment(review=review, author_id=supervisor.id, field_key=field_key or None,
                          body=body, created_at=utcnow())
    db.session.add(found)
    db.session.flush()
    audit.record("review.commented", obj=review, user=supervisor,
                 client_code=review_client_code(review),
                 detail={"comment_id": found.id, "field": field_key or None})
    return found


def decide(review: Review, supervisor: User, action: str) -> Signature | None:
    """Return for revision, approve, or co-sign (signed notes only)."""
    _require_open(review)
    if review.course_id is not None:
        return _decide_course(review, supervisor, action)
    note = db.session.get(Note, review.note_id)
    signature = None
    if action == "return":
        review.status = ReviewStatus.RETURNED
    elif action == "approve":
        review.status = ReviewStatus.APPROVED
    elif action == "cosign":
        if note.state != NoteState.SIGNED:
            raise ReviewError(_("Only a signed note can be co-signed; approve a draft "
                                "instead."))
        check = verify_hash(note)
        if check is None or not check.ok:
            raise ReviewError(_("The note does not match its signed hash; it cannot be "
                                "co-signed."))
        if review.snapshot.get("content_hash") != note.content_hash:
            raise ReviewError(_("The note was signed or changed after it was submitted, so "
                                "what you read is not what would be co-signed. Return it and "
                                "ask for the signed version to be sent again."))
        signature = _cosign(note, supervisor, review)
        review.status = ReviewStatus.COSIGNED
    else:
        raise ReviewError(_("Unknown review action."))
    review.decided_at = utcnow()
    db.session.flush()
    audit.record(f"review.{review.status}", obj=review, user=supervisor, client_code=_code(note),
                 detail={"note_id": note.id, "round": review.round})
    return signature


def _cosign(note: Note, supervisor: User, review: Review) -> Signature:
    now = utcnow()
    digest = cosign_hash(note, supervisor.id, review.id, now)
    signature = Signature(note_id=note.id, signer_id=supervisor.id, kind="cosign",
                          signed_at=now, content_hash=digest)
    db.session.add(signature)
    return signature


def _decide_course(review: Review, supervisor: User, action: str) -> None:
    """A course summary is returned, approved, or co-signed note by note."""
    course = db.session.get(Course, review.course_id)
    if action == "return":
        review.status = ReviewStatus.RETURNED
    elif action == "approve":
        review.status = ReviewStatus.APPROVED
    elif action == "cosign":
        entries = review.snapshot.get("notes", {})
        notes = [db.session.get(Note, int(note_id)) for note_id in entries]
        for note, entry in zip(notes, entries.values(), strict=True):
            check = verify_hash(note) if note is not None else None
            if note is None or note.state != NoteState.SIGNED or check is None or not check.ok \
                    or entry.get("content_hash") != note.content_hash:
                raise ReviewError(_("Every note in the course must have been signed when it "
                                    "was submitted, and be unchanged since, to co-sign the "
                                    "summary."))
        for note in notes:
            _cosign(note, supervisor, review)
        review.status = ReviewStatus.COSIGNED
    else:
        raise ReviewError(_("Unknown review action."))
    review.decided_at = utcnow()
    db.session.flush()
    audit.record(f"review.{review.status}", obj=review, user=supervisor,
                 client_code=course.client.code,
                 detail={"course_id": course.id, "round": review.round})


def cosigned_note_ids(event) -> list[int]:
    """The notes a ``review.cosigned`` audit event co-signed."""
    detail = event.detail or {}
    if isinstance(detail.get("note_id"), int):
        return [detail["note_id"]]
    review = db.session.get(Review, event.object_id) if event.object_id else None
    if review is None or review.course_id is None:
        return []
    return [int(n) for n in review.snapshot.get("notes", {}) if str(n).isdigit()]


# ---------------------------------------------------------------------------
# Queues


@dataclass(frozen=True)
class QueueFilter:
    supervisee_id: int | None = None
    status: str | None = None
    since: date | None = None
    until: date | None = None


def _with_subjects(query):
    """Load what review lists show with the reviews: subjects, clients, people, comments."""
    return query.options(
        defer(Review.snapshot),
        selectinload(Review.note).options(defer(Note.answers)).joinedload(Note.session)
        .joinedload(TherapySession.course).joinedload(Course.client),
        selectinload(Review.course).joinedload(Course.client),
        joinedload(Review.submitter), joinedload(Review.reviewer),
        selectinload(Review.comments))


def _visible_subject(scope: Scope):
    """Reviews whose note or course the scope's user may still see."""
    clients = scope.visible_client_ids()
    notes = select(Note.id).join(TherapySession).join(Course).where(
        Course.client_id.in_(clients))
    courses = select(Course.id).where(Course.client_id.in_(clients))
    return or_(Review.note_id.in_(notes), Review.course_id.in_(courses))


def queue(scope: Scope, filters: QueueFilter, limit: int = PAGE_SIZE) -> list[Review]:
    """Reviews addressed to this supervisor whose notes they may still see, newest first."""
    query = select(Review).where(Review.reviewer_id == scope.user.id, _visible_subject(scope))
    if filters.supervisee_id:
        query = query.where(Review.submitted_by_id == filters.supervisee_id)
    if filters.status:
        query = query.where(Review.status == filters.status)
    if filters.since:
        query = query.where(Review.submitted_at >= datetime.combine(filters.since, time.min,
                                                                     tzinfo=UTC))
    if filters.until:
        query = query.where(Review.submitted_at <= datetime.combine(filters.until, time.max,
                                                                     tzinfo=UTC))
    query = _with_subjects(query.order_by(Review.submitted_at.desc()).limit(limit))
    return list(db.session.scalars(query))


def sent_by(scope: Scope, limit: int = PAGE_SIZE) -> list[Review]:
    """What this user sent for review, newest first (subjects still visible to them)."""
    query = select(Review).where(Review.submitted_by_id == scope.user.id,
                                 _visible_subject(scope))
    return list(db.session.scalars(_with_subjects(
        query.order_by(Review.submitted_at.desc()).limit(limit))))


def visible(scope: Scope, review: Review) -> bool:
    from werkzeug.exceptions import NotFound

    try:
        if review.note_id is not None:
            scope.note(review.note_id)
        else:
            scope.course(review.course_id)
    except NotFound:
        return False
    return review.reviewer_id == scope.user.id or review.submitted_by_id == scope.user.id


def returned_to(user: User, limit: int = PAGE_SIZE) -> list[Review]:
    """The user's items a supervisor returned, still waiting for a resubmission."""
    latest = (select(func.max(Review.id)).where(Review.submitted_by_id == user.id)
              .group_by(Review.note_id, Review.course_id))
    query = (select(Review).where(Review.id.in_(latest),
                                  Review.status == ReviewStatus.RETURNED)
             .order_by(Review.decided_at.desc()).limit(limit))
    return list(db.session.scalars(_with_subjects(query)))


def comments_by_field(review: Review | None) -> dict[str, list[ReviewComment]]:
    out: dict[str, list[ReviewComment]] = {}
    for c in (review.comments if review else []):
        out.setdefault(c.field_key or "", []).append(c)
    return out


# ---------------------------------------------------------------------------
# What changed between two submissions


@dataclass(frozen=True)
class Change:
    label: str
    before: str
    after: str


def _show(template: Template, key: str, value: Any, refs: dict[str, str]) -> str:
    f = template.field(key)
    if value is None:
        return "—"
    if f is None:
        return str(value)
    if f.type == "group":
        parts = []
        for i, item in enumerate(value):
            title = item.get(f.item_title) if f.item_title else None
            bits = [display_value(sub, item.get(sub.key), refs) for sub in f.fields
                    if item.get(sub.key) is not None and sub.key != f.item_title]
            parts.append(f"{title or f'{f.item_label} {i + 1}'}: " + "; ".join(bits))
        return " | ".join(parts)
    return display_value(f, value, refs) if f.type != "longtext" else str(value)


def diff(template: Template, before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """Field-by-field changes between two snapshots of a note."""
    from .modality.answers import ref_titles

    old, new = before.get("answers", {}), after.get("answers", {})
    refs = {**ref_titles(template, old), **ref_titles(template, new)}
    changes = []
    for f in template.fields:
        if old.get(f.key) != new.get(f.key):
            changes.append(Change(f.label, _show(template, f.key, old.get(f.key), refs),
                                  _show(template, f.key, new.get(f.key), refs)))
    if before.get("state") != after.get("state"):
        changes.append(Change(_("Note state"), str(before.get("state")),
                              str(after.get("state"))))
    old_add = {a["id"] for a in before.get("addenda", [])}
    for add in after.get("addenda", []):
        if add["id"] not in old_add:
            changes.append(Change(_("New addendum"), "—", add["body"]))
    return changes


def course_diff(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """Changes between two submissions of a course summary, note by note."""
    registry = get_registry()
    old, new = before.get("notes", {}), after.get("notes", {})
    changes: list[Change] = []
    for note_id, entry in new.items():
        label = f"{entry['title']} ({entry['session']})"
        if note_id not in old:
            changes.append(Change(label, "—", _("added to the course")))
            continue
        template = registry.get(entry["modality"], entry["version"])
        if template is None:
            continue
        for change in diff(template, old[note_id], entry):
            changes.append(Change(f"{label}: {change.label}", change.before, change.after))
    for note_id, entry in old.items():
        if note_id not in new:
            changes.append(Change(f"{entry['title']} ({entry['session']})", _("present"),
                                  _("no longer in the course")))
    return changes
