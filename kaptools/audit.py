"""The hash-chained audit trail. Events join the caller's transaction; never note text.

Writers are serialised on both databases by a lock on the one row of ``audit_chain``,
taken before the chain head is read, so two transactions can never link to the same
event. ``verify_chain`` walks the whole trail, lists every event that does not fit,
checks each signed note, addendum and signature against the events that recorded them,
and, given a head exported earlier (``kaptools audit head``), finds a trail that was
cut short or rewritten from the start.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from flask import current_app, has_request_context, request
from flask_login import current_user
from sqlalchemy import Connection, String, bindparam, func, insert, select, update

from .extensions import db
from .models import (
    GENESIS_HASH,
    Addendum,
    AuditChain,
    AuditEvent,
    Note,
    NoteState,
    Signature,
)
from .timeutil import utcnow

GENESIS = GENESIS_HASH


def client_address() -> str | None:
    if not has_request_context():
        return None
    return (request.remote_addr or "")[:64] or None


def record(
    action: str,
    *,
    obj: Any = None,
    object_type: str | None = None,
    object_id: int | None = None,
    client_code: str | None = None,
    user: Any = None,
    username: str | None = None,
    detail: dict[str, Any] | None = None,
    view: bool = False,
) -> None:
    """Add an audit event to the current transaction (the caller commits).

    ``view``: the event records a page shown, and the caller commits right after it.
    When the transaction holds nothing else, its commit on PostgreSQL does not wait for
    the write-ahead log to reach the disk (see ``_APPEND_VIEW``).
    """
    if user is None and has_request_context() and current_user.is_authenticated:
        user = current_user
    if obj is not None:
        object_type = object_type or obj.__tablename__
        object_id = object_id if object_id is not None else obj.id
    db.session.flush()
    values = {
        "created_at": utcnow(),
        "user_id": getattr(user, "id", None),
        "username": username or getattr(user, "username", None),
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "client_code": client_code,
        "address": client_address(),
        "detail": detail or {},
    }
    # On the transaction's connection, not through the ORM session: plain SQL on tables
    # (nothing to load as objects, no discarded rows to leave out). A plain INSERT (no unit
    # of work): the event is never changed, and nothing in this request reads it back as
    # an object. The trigger installed by ``guards`` (version 3) moves the chain's head to
    # it.
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        _append_postgresql(connection, values, view and _nothing_else_written(connection))
    else:
        values["prev_hash"] = lock_chain(connection)
        values["hash"] = event_hash(values)
        connection.execute(_INSERT_EVENT, values)


def _append_postgresql(connection: Connection, values: dict[str, Any],
                       only_a_view: bool) -> None:
    """Lock the chain, link the event to its head and insert it: one statement, so the
    lock is held for one round trip and the commit, not two.

    The event's hash is taken by PostgreSQL (``sha256``) of the same canonical text
    ``event_hash`` hashes: this side makes the text before and after the head's hash,
    the database puts the head it has just locked between them. ``verify_chain``
    recomputes every hash here, so the two can never drift apart unnoticed.
    """
    before, after = _hashed_text_around_link(values)
    inserted = connection.execute(_APPEND_VIEW if only_a_view else _APPEND,
                                  {**values, "hashed_before": before, "hashed_after": after})
    if inserted.scalar() is None:  # a database created before the chain row existed
        lock_chain(connection)  # adds the row (a write: this commit waits for the disk)
        _append_postgresql(connection, values, only_a_view=False)


def lock_chain(connection: Connection) -> str:
    """Take the chain's write lock for the rest of this transaction; the head's hash.

    PostgreSQL: ``SELECT … FOR UPDATE`` of the single ``audit_chain`` row, held until
    commit; a writer that waited for it reads the row as the last writer committed it.
    SQLite: an UPDATE of the row, which opens the write transaction, so no other writer
    can commit until this one ends. Either way the row's ``head_hash`` and ``events``
    follow every new event (a trigger, ``guards`` version 3): one statement takes the
    lock and reads the head, and the row gets one new version per event. (On PostgreSQL
    ``record`` takes the lock in the statement that inserts the event: ``_APPEND``.)
    """
    if connection.dialect.name == "postgresql":
        head = connection.scalar(_LOCK_POSTGRESQL)
    else:
        head = connection.execute(_LOCK_SQLITE).scalar()
    if head is None:  # a database created before the chain row existed
        connection.execute(_CHAIN.insert().values(id=1, events=0, head_hash=newest_hash()))
        return lock_chain(connection)
    return head


def _nothing_else_written(connection: Connection) -> bool:
    """Whether this transaction has written nothing so far (PostgreSQL: ``database``
    notes every statement that is not a SELECT), and the clinic lets a view's event
    be committed without waiting for the disk."""
    return connection.info.get("kaptools_wrote", True) is False \
        and not current_app.config["AUDIT_VIEWS_WAIT_FOR_DISK"]


# Built once (on the table: no ORM entity, no discarded rows to leave out).
_CHAIN = AuditChain.__table__
_EVENT = AuditEvent.__table__
_LOCK_POSTGRESQL = (select(_CHAIN.c.head_hash).where(_CHAIN.c.id == 1).with_for_update()
                    .execution_options(include_discarded=True))
_INSERT_EVENT = insert(_EVENT)
_LOCK_SQLITE = (update(_CHAIN).where(_CHAIN.c.id == 1)
                .values(head_hash=_CHAIN.c.head_hash).returning(_CHAIN.c.head_hash))


def _append_statement(head: Any) -> Any:
    """``WITH head AS (lock) INSERT INTO audit_event … SELECT …, head, sha256(…) FROM head``:
    no row, and no event, when the chain's row is missing."""
    content = [c.name for c in _EVENT.c if c.name not in ("id", "prev_hash", "hash")]
    hashed = (bindparam("hashed_before", type_=String) + head.c.head_hash
              + bindparam("hashed_after", type_=String))
    linked = select(*(bindparam(name, type_=_EVENT.c[name].type) for name in content),
                    head.c.head_hash,
                    func.encode(func.sha256(func.convert_to(hashed, "UTF8")), "hex"))
    return (insert(_EVENT).from_select([*content, "prev_hash", "hash"], linked)
            .returning(_EVENT.c.id).execution_options(include_discarded=True))


_APPEND = _append_statement(_LOCK_POSTGRESQL.cte("head"))
# The same, and ``synchronous_commit`` off for this transaction only, when it records a
# page shown and holds nothing else (``set_config`` with is_local true is ``SET LOCAL``; in
# the lock's own statement, no round trip of its own). Its commit, and with it the chain's
# lock, then does not wait for the disk: every page that shows a record would otherwise
# queue behind the one before it for a disk flush while holding the lock every writer in
# the clinic needs. The event is committed and in the chain before the page is sent, as
# ever; only a crash of the database server itself in the next fraction of a second
# (PostgreSQL writes its log out within three ``wal_writer_delay``, 0.6 s by default)
# could lose it, and then with everything committed after it, so the chain kept on disk is
# always whole. Any later commit that waits for the disk (every change, sign-in and print)
# writes it out too. SQLite in WAL mode with ``synchronous=NORMAL`` (``database``) already
# commits every transaction this way. ``AUDIT_VIEWS_WAIT_FOR_DISK`` turns this off.
_APPEND_VIEW = _append_statement(_LOCK_POSTGRESQL.add_columns(
    func.set_config("synchronous_commit", "off", True)).cte("head"))


def newest_hash() -> str:
    """The newest event's hash, read from the events themselves."""
    head = db.session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    return head or GENESIS


def event_hash(event: AuditEvent | Mapping[str, Any]) -> str:
    """The SHA-256 of an event's content and its link (an event, or its column values)."""
    get = event.get if isinstance(event, Mapping) else partial(getattr, event)
    payload = {"prev": get("prev_hash"), **_hashed_content(get)}
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


def _hashed_text_around_link(values: Mapping[str, Any]) -> tuple[str, str]:
    """The canonical text of a new event's hash, before and after its link (``prev``).

    The text is JSON with sorted keys, so ``prev`` falls between ``object_type`` and
    ``user_id`` at the top level; the link is a chain head, 64 hex digits, which JSON
    writes as they are. ``before + head + after`` is the text ``event_hash`` hashes.
    """
    content = _hashed_content(values.get)
    before = _canonical({k: v for k, v in content.items() if k < "prev"})
    after = _canonical({k: v for k, v in content.items() if k > "prev"})
    return before[:-1] + ',"prev":"', '",' + after[1:]


def _hashed_content(get) -> dict[str, Any]:
    created_at = get("created_at")
    return {
        "at": created_at.isoformat(timespec="microseconds") if created_at else None,
        "user_id": get("user_id"),
        "username": get("username"),
        "action": get("action"),
        "object_type": get("object_type"),
        "object_id": get("object_id"),
        "client_code": get("client_code"),
        "address": get("address"),
        "detail": get("detail"),
    }


def _canonical(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_head() -> dict[str, Any]:
    """The newest event's id and hash and the number of events, to keep somewhere else."""
    head = db.session.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
    count = db.session.scalar(select(func.count(AuditEvent.id)))
    if head is None:
        return {"event_id": 0, "hash": GENESIS, "count": 0, "at": None}
    return {"event_id": head.id, "hash": head.hash, "count": count,
            "at": head.created_at.isoformat(timespec="seconds")}


# ---------------------------------------------------------------------------
# Verification


@dataclass(frozen=True)
class Break:
    """One thing that does not fit: an event, or a record checked against its events."""

    problem: str
    event_id: int | None = None
    object_type: str | None = None
    object_id: int | None = None

    def __str__(self) -> str:
        where = f"event {self.event_id}" if self.event_id is not None else \
            f"{self.object_type} {self.object_id}"
        return f"{where}: {self.problem}"


@dataclass
class ChainReport:
    checked: int = 0
    records_checked: int = 0
    breaks: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def broken_id(self) -> int | None:  # the first broken event, if any
        return next((b.event_id for b in self.breaks if b.event_id is not None), None)


def verify_chain(head: dict[str, Any] | None = None) -> ChainReport:
    """Walk the whole chain, then check signed records against it; list every break."""
    report = ChainReport()
    signed_events: dict[int, list[AuditEvent]] = defaultdict(list)
    addendum_events: dict[int, AuditEvent] = {}
    cosign_reviews: list[AuditEvent] = []
    previous = GENESIS
    seen_head = head is None
    result = db.session.scalars(
        select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=500))
    try:
        for event in result:
            if event.prev_hash != previous:
                report.breaks.append(Break("its link to the previous event is broken "
                                           "(an event before it was removed or changed)",
                                           event_id=event.id))
            if event_hash(event) != event.hash:
                report.breaks.append(Break("its content does not match its hash",
                                           event_id=event.id))
            if head is not None and event.id == head.get("event_id"):
                seen_head = True
                if event.hash != head.get("hash"):
                    report.breaks.append(Break("differs from the exported head: the trail "
                                               "was rewritten", event_id=event.id))
                elif report.checked + 1 != head.get("count", report.checked + 1):
                    report.breaks.append(Break("the number of events up to the exported head "
                                               "differs: events were removed or added",
                                               event_id=event.id))
            previous = event.hash
            report.checked += 1
            _remember(event, signed_events, addendum_events, cosign_reviews)
            db.session.expunge(event)
    finally:
        result.close()  # a server-side cursor on PostgreSQL
    chain = db.session.get(AuditChain, 1)
    if chain is not None and chain.head_hash != previous:
        report.breaks.append(Break("the chain's head is not the newest event: events were "
                                   "removed from the end of the trail, or added past it",
                                   object_type="audit_chain", object_id=1))
    if not seen_head:
        report.breaks.append(Break(f"the exported head (event {head.get('event_id')}) is "
                                   "missing: the trail was cut short or replaced",
                                   event_id=head.get("event_id")))
    _check_signed_records(report, signed_events, addendum_events, cosign_reviews)
    return report


def _remember(event: AuditEvent, signed: dict, addenda: dict, cosigns: list) -> None:
    if event.action == "note.signed" and event.object_id is not None:
        signed[event.object_id].append(event)
    elif event.action == "note.addendum":
        addendum_id = (event.detail or {}).get("addendum_id")
        if isinstance(addendum_id, int):
            addenda[addendum_id] = event
    elif event.action == "review.cosigned":
        cosigns.append(event)


def _check_signed_records(report: ChainReport, signed_events: dict, addendum_events: dict,
                          cosign_reviews: list) -> None:
    from .notes import addendum_hash, content_hash, cosign_hash
    from .reviews import cosigned_note_ids

    def broken(kind: str, object_id: int, problem: str) -> None:
        report.breaks.append(Break(problem, object_type=kind, object_id=object_id))

    signatures: dict[int, list[Signature]] = defaultdict(list)
    for sig in db.session.scalars(select(Signature).order_by(Signature.id)):
        signatures[sig.note_id].append(sig)

    signed_notes = db.session.scalars(select(Note).where(Note.state != NoteState.DRAFT)
                                      .order_by(Note.id)).all()
    signed_ids = set()
    for note in signed_notes:
        signed_ids.add(note.id)
        report.records_checked += 1
        if note.content_hash != content_hash(note):
            broken("note", note.id, "its content does not match its signed hash")
        events = signed_events.get(note.id, [])
        if not any((e.detail or {}).get("hash") == note.content_hash for e in events):
            broken("note", note.id, "no signing event records its hash: it was signed "
                                    "outside kaptools or changed after signing")
        elif not any(e.user_id == note.signed_by_id for e in events):
            broken("note", note.id, "its signer differs from the one recorded at signing")
        authors = [s for s in signatures.get(note.id, []) if s.kind == "author"]
        if not any(s.content_hash == note.content_hash and s.signer_id == note.signed_by_id
                   and s.signed_at == note.signed_at for s in authors):
            broken("note", note.id, "its author signature is missing or altered")
    for note_id in signed_events:
        if note_id not in signed_ids:
            broken("note", note_id, "was recorded as signed but is no longer signed")

    notes_by_id = {n.id: n for n in signed_notes}
    addenda = db.session.scalars(select(Addendum).order_by(Addendum.id)).all()
    for addendum in addenda:
        report.records_checked += 1
        note = notes_by_id.get(addendum.note_id)
        if note is None or addendum.content_hash != addendum_hash(note, addendum):
            broken("addendum", addendum.id, "its text or date does not match its hash")
        event = addendum_events.get(addendum.id)
        if event is None or (event.detail.get("hash") not in (None, addendum.content_hash)):
            broken("addendum", addendum.id, "does not match the event that recorded it")
    present = {a.id for a in addenda}
    for addendum_id in addendum_events:
        if addendum_id not in present:
            broken("addendum", addendum_id, "was recorded but has been removed")

    for event in cosign_reviews:
        for note_id in cosigned_note_ids(event):
            note = notes_by_id.get(note_id)
            sigs = [s for s in signatures.get(note_id, []) if s.kind == "cosign"]
            if note is None or not any(
                    s.content_hash == cosign_hash(note, s.signer_id, event.object_id,
                                                  s.signed_at) for s in sigs):
                broken("note", note_id, f"the co-signature recorded by event {event.id} is "
                                        "missing or altered")
