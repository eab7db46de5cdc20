"""The hash-chained audit trail. Events join the caller's transaction; never note text."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy import select, text

from .extensions import db
from .models import AuditEvent
from .timeutil import utcnow

GENESIS = "0" * 64
_CHAIN_LOCK_KEY = 0x6B6170  # arbitrary advisory-lock id for the chain head on PostgreSQL


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
) -> AuditEvent:
    """Add an audit event to the current transaction (the caller commits)."""
    if user is None and has_request_context() and current_user.is_authenticated:
        user = current_user
    if obj is not None:
        object_type = object_type or obj.__tablename__
        object_id = object_id if object_id is not None else obj.id
    _lock_chain_head()
    event = AuditEvent(
        created_at=utcnow(),
        user_id=getattr(user, "id", None),
        username=username or getattr(user, "username", None),
        action=action,
        object_type=object_type,
        object_id=object_id,
        client_code=client_code,
        address=client_address(),
        detail=detail or {},
    )
    event.prev_hash = _head_hash()
    event.hash = event_hash(event)
    db.session.add(event)
    db.session.flush()
    return event


def _lock_chain_head() -> None:
    # Serialise writers on PostgreSQL so two transactions never fork the chain.
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK_KEY})


def _head_hash() -> str:
    db.session.flush()
    head = db.session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    return head or GENESIS


def event_hash(event: AuditEvent) -> str:
    payload = {
        "prev": event.prev_hash,
        "at": event.created_at.isoformat(timespec="microseconds") if event.created_at else None,
        "user_id": event.user_id,
        "username": event.username,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "client_code": event.client_code,
        "address": event.address,
        "detail": event.detail,
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken_id: int | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.broken_id is None


def verify_chain() -> ChainReport:
    """Walk the chain in id order and report the first event that does not fit."""
    previous = GENESIS
    checked = 0
    result = db.session.scalars(
        select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=500))
    try:
        for event in result:
            if event.prev_hash != previous:
                return ChainReport(checked, event.id, "its link to the previous event is broken")
            if event_hash(event) != event.hash:
                return ChainReport(checked, event.id, "its content does not match its hash")
            previous = event.hash
            checked += 1
    finally:
        result.close()  # a server-side cursor on PostgreSQL
    return ChainReport(checked, None, None)
