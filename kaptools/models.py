"""The entities of kaptools as SQLAlchemy 2 typed models.

Transaction boundaries live in services and views, never in these classes.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy import event as orm_event
from sqlalchemy.orm import (
    Mapped,
    Session,
    declared_attr,
    mapped_column,
    relationship,
    with_loader_criteria,
)

from .extensions import db
from .timeutil import UTCDateTime, utcnow

# The link before the audit trail's first event.
GENESIS_HASH = "0" * 64


class Role(enum.StrEnum):
    THERAPIST = "therapist"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class CourseFormat(enum.StrEnum):
    INTENSIVE = "intensive"
    WEEKLY = "weekly"
    BIWEEKLY = "biweekly"


class SessionKind(enum.StrEnum):
    PREPARATION = "preparation"
    DOSING = "dosing"
    INTEGRATION = "integration"
    ASSESSMENT = "assessment"


class ReviewMode(enum.StrEnum):
    APPROVE_BEFORE_SIGNING = "approve_before_signing"
    COSIGN_AFTER_SIGNING = "cosign_after_signing"


class NoteState(enum.StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"
    ENTERED_IN_ERROR = "entered_in_error"


class ReviewStatus(enum.StrEnum):
    SUBMITTED = "submitted"
    RETURNED = "returned"
    APPROVED = "approved"
    COSIGNED = "cosigned"


def _enum_check(column: str, values: type[enum.StrEnum], name: str) -> CheckConstraint:
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name)


class User(db.Model):
    __tablename__ = "user_account"
    __table_args__ = (_enum_check("role", Role, "ck_user_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Two-factor sign-in (see twofactor.py): the TOTP secret once enrolled, and the last
    # time step whose code was accepted (a code is accepted once).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    # The user's own time zone (an IANA name) for pages; None: the clinic's.
    time_zone: Mapped[str | None] = mapped_column(String(64))

    # Set by the session loader: the raw token of the login this request belongs to.
    session_token = None

    # Flask-Login protocol ---------------------------------------------------
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str | None:
        return self.session_token

    def __repr__(self) -> str:
        return f"<User {self.username} ({self.role})>"


class AuthSession(db.Model):
    """A server-side login; the cookie only carries its random token."""

    __tablename__ = "auth_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    address: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship()


class RecoveryCode(db.Model):
    """A single-use code that stands in for the authenticator app, stored as a hash."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RolePolicy(db.Model):
    """What the clinic requires of every account of one role."""

    __tablename__ = "role_policy"
    __table_args__ = (_enum_check("role", Role, "ck_role_policy_role"),)

    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    requires_two_factor: Mapped[bool] = mapped_column(Boolean, default=False)


class SupervisionRelationship(db.Model):
    __tablename__ = "supervision"
    __table_args__ = (
        _enum_check("review_mode", ReviewMode, "ck_supervision_review_mode"),
        CheckConstraint("supervisor_id <> supervisee_id", name="ck_supervision_not_self"),
        CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name="ck_supervision_dates"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    supervisor_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    supervisee_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    review_mode: Mapped[str] = mapped_column(String(32), default=ReviewMode.COSIGN_AFTER_SIGNING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    supervisor: Mapped[User] = relationship(foreign_keys=[supervisor_id])
    supervisee: Mapped[User] = relationship(foreign_keys=[supervisee_id])

    def is_current(self, on: date) -> bool:
        return self.starts_on <= on and (self.ends_on is None or self.ends_on >= on)


class Client(db.Model):
    """A client known by a pseudonymous code; the display name is optional."""

    __tablename__ = "client"
    __table_args__ = (UniqueConstraint("therapist_id", "code", name="uq_client_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    therapist_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    display_name: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)

    therapist: Mapped[User] = relationship()
    courses: Mapped[list[Course]] = relationship(
        back_populates="client", order_by="Course.starts_on"
    )


class Discardable:
    """A record started by mistake that can be discarded while it holds nothing signed.

    A discarded row stays in the database, hidden from every query (see
    ``_hide_discarded``), and an administrator can restore it for ``discard.KEEP_DAYS``
    days. Rows discarded together (a course with its sessions and drafts) share one
    ``discarded_at`` and are restored together.
    """

    discarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)

    @declared_attr
    def discarded_by_id(cls) -> Mapped[int | None]:  # noqa: N805 - a declared attribute
        return mapped_column(ForeignKey("user_account.id"))


@orm_event.listens_for(Session, "do_orm_execute")
def _hide_discarded(state) -> None:
    """Leave discarded rows out of every ORM query, in joins and relationship loads too,
    unless the query asks for them with ``execution_options(include_discarded=True)``."""
    if state.is_select and not state.is_column_load and not state.is_relationship_load \
            and not state.execution_options.get("include_discarded", False):
        statement = state.statement
        try:
            state.statement = _LIVE_ONLY_STATEMENTS[statement]
        except KeyError:
            state.statement = _LIVE_ONLY_STATEMENTS[statement] = statement.options(_LIVE_ONLY)
        except TypeError:  # not weakly referable: a statement made for this query alone
            state.statement = statement.options(_LIVE_ONLY)


_LIVE_ONLY = with_loader_criteria(Discardable, lambda cls: cls.discarded_at.is_(None),
                                  include_aliases=True)
# A statement built once and run on every request (the busiest pages' selects) gets its
# criteria once, and keeps the cache key SQLAlchemy worked out for it.
_LIVE_ONLY_STATEMENTS: WeakKeyDictionary = WeakKeyDictionary()


class Course(Discardable, db.Model):
    """A course of treatment: preparation, dosing and integration."""

    __tablename__ = "course"
    __table_args__ = (
        _enum_check("format", CourseFormat, "ck_course_format"),
        CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name="ck_course_dates"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    format: Mapped[str] = mapped_column(String(16))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    intentions: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    client: Mapped[Client] = relationship(back_populates="courses")
    sessions: Mapped[list[TherapySession]] = relationship(
        back_populates="course",
        order_by="(TherapySession.session_date, TherapySession.id)",
        foreign_keys="TherapySession.course_id",
    )


class TherapySession(Discardable, db.Model):
    __tablename__ = "therapy_session"
    __table_args__ = (_enum_check("kind", SessionKind, "ck_session_kind"),
                      Index("ix_session_date_course", "session_date", "course_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    session_date: Mapped[date] = mapped_column(Date)
    # An integration session names the dosing session it follows.
    follows_id: Mapped[int | None] = mapped_column(ForeignKey("therapy_session.id"))
    summary: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    course: Mapped[Course] = relationship(back_populates="sessions", foreign_keys=[course_id])
    follows: Mapped[TherapySession | None] = relationship(remote_side=[id])
    notes: Mapped[list[Note]] = relationship(back_populates="session", order_by="Note.id")


class Note(Discardable, db.Model):
    """Structured record content of one modality, written against one template version."""

    __tablename__ = "note"
    __table_args__ = (_enum_check("state", NoteState, "ck_note_state"),
                      # A therapist's drafts, oldest first, and how many (the start page):
                      # only notes in use, so counting them never visits the table.
                      Index("ix_note_author_state_live", "author_id", "state", "updated_at",
                            sqlite_where=text("discarded_at IS NULL"),
                            postgresql_where=text("discarded_at IS NULL")),
                      # Outcome measures of a course, without reading any other note.
                      Index("ix_note_session_modality", "session_id", "modality"))

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("therapy_session.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    modality: Mapped[str] = mapped_column(String(64))
    template_version: Mapped[int] = mapped_column(Integer)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(20), default=NoteState.DRAFT)
    # Optimistic locking: every UPDATE checks and bumps this counter.
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    signed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    error_reason: Mapped[str | None] = mapped_column(Text)

    session: Mapped[TherapySession] = relationship(back_populates="notes")
    author: Mapped[User] = relationship(foreign_keys=[author_id])
    signed_by: Mapped[User | None] = relationship(foreign_keys=[signed_by_id])
    addenda: Mapped[list[Addendum]] = relationship(back_populates="note", order_by="Addendum.id")
    signatures: Mapped[list[Signature]] = relationship(
        order_by="(Signature.signed_at, Signature.id)", viewonly=True)
    reviews: Mapped[list[Review]] = relationship(
        order_by="(Review.round, Review.id)", viewonly=True,
        primaryjoin="Review.note_id == Note.id")

    __mapper_args__ = {"version_id_col": version}


class PrivateNote(db.Model):
    """Psychotherapy (process) notes: kept apart from the record, author only."""

    __tablename__ = "private_note"

    note_id: Mapped[int] = mapped_column(
        ForeignKey("note.id", ondelete="CASCADE"), primary_key=True
    )
    author_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class NoteAutosave(db.Model):
    """One editor's latest unsaved state, kept apart so it never overwrites the note.

    Each open editor (a tab on one device) has its own row, so a save from one tab
    never throws away what another tab kept. ``formdata`` holds the posted fields as
    [name, value] pairs, exactly as typed.
    """

    __tablename__ = "note_autosave"
    __table_args__ = (UniqueConstraint("note_id", "editor_id", name="uq_note_autosave_editor"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("note.id", ondelete="CASCADE"), index=True)
    editor_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    base_version: Mapped[int] = mapped_column(Integer)
    formdata: Mapped[list[Any]] = mapped_column(JSON, default=list)
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LoginThrottle(db.Model):
    """Recent failed sign-ins per account and address, per address, and per account.

    Not part of the audit trail: rows older than the throttling window are removed, so
    the table stays small whatever an attacker sends.
    """

    __tablename__ = "login_throttle"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_login_throttle_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(160))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Addendum(db.Model):
    __tablename__ = "addendum"

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("note.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    content_hash: Mapped[str] = mapped_column(String(64))

    note: Mapped[Note] = relationship(back_populates="addenda")
    author: Mapped[User] = relationship()


class Signature(db.Model):
    """A signature on a note: the author's, or a supervisor's co-signature."""

    __tablename__ = "signature"
    __table_args__ = (CheckConstraint("kind IN ('author', 'cosign')", name="ck_signature_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("note.id"), index=True)
    signer_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    kind: Mapped[str] = mapped_column(String(10))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    content_hash: Mapped[str] = mapped_column(String(64))

    signer: Mapped[User] = relationship()


class Review(db.Model):
    """A note or a course summary submitted to a supervisor."""

    __tablename__ = "review"
    __table_args__ = (
        _enum_check("status", ReviewStatus, "ck_review_status"),
        CheckConstraint(
            "(note_id IS NULL) <> (course_id IS NULL)", name="ck_review_one_subject"
        ),
        # The supervisor's queue and the therapist's returned items.
        Index("ix_review_reviewer_status_submitted", "reviewer_id", "status", "submitted_at"),
        Index("ix_review_submitter_status", "submitted_by_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int | None] = mapped_column(ForeignKey("note.id"), index=True)
    course_id: Mapped[int | None] = mapped_column(ForeignKey("course.id"), index=True)
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=ReviewStatus.SUBMITTED)
    round: Mapped[int] = mapped_column(Integer, default=1)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    comments: Mapped[list[ReviewComment]] = relationship(
        back_populates="review", order_by="ReviewComment.id"
    )
    note: Mapped[Note | None] = relationship()
    course: Mapped[Course | None] = relationship()
    reviewer: Mapped[User] = relationship(foreign_keys=[reviewer_id])
    submitter: Mapped[User] = relationship(foreign_keys=[submitted_by_id])


class ReviewComment(db.Model):
    """A supervisor's comment, anchored to one field of a note or general."""

    __tablename__ = "review_comment"

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("review.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    field_key: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    review: Mapped[Review] = relationship(back_populates="comments")
    author: Mapped[User] = relationship()


class RenderStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class RenderJob(db.Model):
    """A document someone asked for, rendered by a background worker."""

    __tablename__ = "render_job"
    __table_args__ = (_enum_check("status", RenderStatus, "ck_render_job_status"),
                      Index("ix_render_job_user_created", "user_id", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    kind: Mapped[str] = mapped_column(String(16))
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("therapy_session.id"))
    sheets: Mapped[list[str] | None] = mapped_column(JSON)
    # SHA-256 of everything the PDF is made from; the finished PDF is stored under it.
    doc_key: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default=RenderStatus.QUEUED)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    stage: Mapped[str] = mapped_column(String(120), default="")
    # Why a render failed: "time", "memory", "pages" or "error" (message says more).
    failure: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
    pages: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RenderedPdf(db.Model):
    """A finished PDF, or one part of one, stored under the hash of what it was made from.

    Kept in the database (never on disk) so every web process and worker finds it; the
    least recently used are removed past the configured size.
    """

    __tablename__ = "rendered_pdf"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # "document" or "part"
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    pages: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class AuditChain(db.Model):
    """The audit chain's one row: writers lock it, so events are linked one at a time."""

    __tablename__ = "audit_chain"
    __table_args__ = (CheckConstraint("id = 1", name="ck_audit_chain_single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    events: Mapped[int] = mapped_column(Integer, default=0)
    # The newest event's hash, moved on by a trigger on every insert (``guards``, v3), so
    # a writer takes the lock and reads the head in one statement.
    head_hash: Mapped[str] = mapped_column(String(64), default=GENESIS_HASH,
                                           server_default=GENESIS_HASH)


class AuditEvent(db.Model):
    """One hash-chained, append-only audit record. Never holds note text."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_action_time", "action", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    username: Mapped[str | None] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(48))
    object_type: Mapped[str | None] = mapped_column(String(32))
    object_id: Mapped[int | None] = mapped_column(Integer)
    client_code: Mapped[str | None] = mapped_column(String(32), index=True)
    address: Mapped[str | None] = mapped_column(String(64), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class RiskSignal(db.Model):
    """A signed note that raised a client's risk flag, or recorded a follow-up to one.

    Written when the note is signed. A client's flag is open while its latest raising
    note (still signed, not entered in error) is newer than its latest follow-up.
    """

    __tablename__ = "risk_signal"
    __table_args__ = (Index("ix_risk_signal_client_kind_at", "client_id", "kind", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"))
    note_id: Mapped[int] = mapped_column(ForeignKey("note.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # "raised" or "followed_up"
    label: Mapped[str] = mapped_column(String(300), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    note: Mapped[Note] = relationship()
