"""Sign-in throttling that slows guessing down without letting anyone lock a user out.

Failures are counted in three ways within a sliding window:

* per account and address: the usual case of one person mistyping, or one attacker
  guessing one password; five failures block that pair only;
* per address: one machine guessing many accounts; twenty failures block that address;
* per account from everywhere: guesses spread over many addresses; past a high limit,
  sign-in to that account is refused only from addresses that have never signed in to
  it successfully, so the therapist's own devices keep working.

The counters live in ``login_throttle``, not in the audit trail, and rows older than the
window are removed. Failed sign-ins are written to the audit trail up to the limits, then
summarised by one ``login.throttled`` event per blocked key and window, and never more
than a fixed number of anonymous events a minute: the trail cannot be flooded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from . import audit
from .extensions import db
from .models import AuditEvent, LoginThrottle
from .timeutil import utcnow

LOGIN_FAILED = "login.failed"
LOGIN_THROTTLED = "login.throttled"
PAIR, ADDRESS, ACCOUNT = "pair", "address", "account"
# Anonymous audit events (failed sign-ins) allowed per minute across the whole site.
ANONYMOUS_EVENTS_PER_MINUTE = 120
# An address counts as the account's own when it signed in successfully this recently.
KNOWN_ADDRESS_DAYS = 90


@dataclass(frozen=True)
class Limits:
    window: timedelta
    pair: int
    address: int
    account: int

    @classmethod
    def from_config(cls) -> Limits:
        cfg = current_app.config
        return cls(window=timedelta(minutes=int(cfg["LOGIN_FAILURE_WINDOW_MINUTES"])),
                   pair=int(cfg["LOGIN_MAX_FAILURES_PER_ACCOUNT"]),
                   address=int(cfg["LOGIN_MAX_FAILURES_PER_ADDRESS"]),
                   account=int(cfg["LOGIN_MAX_FAILURES_PER_ACCOUNT_EVERYWHERE"]))

    def of(self, scope: str) -> int:
        return {PAIR: self.pair, ADDRESS: self.address, ACCOUNT: self.account}[scope]


def _keys(username: str, address: str | None) -> dict[str, str]:
    keys = {ACCOUNT: username[:160]}
    if address:
        keys[PAIR] = f"{username}|{address}"[:160]
        keys[ADDRESS] = address[:160]
    return keys


def _counts(keys: dict[str, str], since: datetime) -> dict[str, int]:
    rows = db.session.execute(select(LoginThrottle.scope, LoginThrottle.key,
                                     LoginThrottle.failures)
                              .where(LoginThrottle.key.in_(list(keys.values())),
                                     LoginThrottle.first_at >= since))
    found = {(scope, key): failures for scope, key, failures in rows}
    return {scope: found.get((scope, key), 0) for scope, key in keys.items()}


def is_known_address(username: str, address: str | None) -> bool:
    """True when this account signed in successfully from this address recently."""
    if not address:
        return False
    since = utcnow() - timedelta(days=KNOWN_ADDRESS_DAYS)
    return db.session.scalar(select(AuditEvent.id).where(
        AuditEvent.action == "login", AuditEvent.username == username,
        AuditEvent.address == address, AuditEvent.created_at >= since).limit(1)) is not None


def blocked(username: str, address: str | None) -> str | None:
    """The scope that currently blocks this attempt, or None."""
    limits = Limits.from_config()
    counts = _counts(_keys(username, address), utcnow() - limits.window)
    if counts.get(PAIR, 0) >= limits.pair:
        return PAIR
    if counts.get(ADDRESS, 0) >= limits.address:
        return ADDRESS
    if counts[ACCOUNT] >= limits.account and not is_known_address(username, address):
        return ACCOUNT
    return None


def record_blocked(username: str, address: str | None, scope: str) -> None:
    """A refused attempt: counted, and audited once per blocked key and window."""
    _count_failure(username, address, audit_if_first_over=scope)


def record_failure(username: str, address: str | None) -> None:
    """A wrong password or unknown username."""
    _count_failure(username, address, audit_if_first_over=None)


def _count_failure(username: str, address: str | None, audit_if_first_over: str | None) -> None:
    limits = Limits.from_config()
    now = utcnow()
    since = now - limits.window
    db.session.execute(delete(LoginThrottle).where(LoginThrottle.last_at < since))
    keys = _keys(username, address)
    after = {scope: _bump(scope, key, now, since) for scope, key in keys.items()}
    under_limits = all(after[scope] <= limits.of(scope) for scope in after)
    if audit_if_first_over is None and under_limits and _anonymous_budget_left(now):
        audit.record(LOGIN_FAILED, username=username[:64])
        return
    newly_over = [scope for scope in after if after[scope] == limits.of(scope) + 1]
    if newly_over and _anonymous_budget_left(now):
        audit.record(LOGIN_THROTTLED, username=username[:64],
                     detail={"scope": newly_over[0], "limit": limits.of(newly_over[0])})


def _bump(scope: str, key: str, now: datetime, since: datetime) -> int:
    query = select(LoginThrottle).where(LoginThrottle.scope == scope,
                                        LoginThrottle.key == key).with_for_update()
    row = db.session.scalar(query)
    if row is None:
        try:
            with db.session.begin_nested():  # another request may add the same key now
                db.session.add(LoginThrottle(scope=scope, key=key, failures=0, first_at=now,
                                             last_at=now))
        except IntegrityError:
            pass
        row = db.session.scalar(query)
    if row.first_at < since:
        row.failures, row.first_at = 0, now
    row.failures += 1
    row.last_at = now
    db.session.flush()
    return row.failures


def _anonymous_budget_left(now: datetime) -> bool:
    recent = db.session.scalar(select(func.count(AuditEvent.id)).where(
        AuditEvent.action.in_((LOGIN_FAILED, LOGIN_THROTTLED)),
        AuditEvent.created_at >= now - timedelta(minutes=1)))
    return recent < ANONYMOUS_EVENTS_PER_MINUTE


def record_success(username: str, address: str | None) -> None:
    """A successful sign-in clears this account's counter for this address."""
    keys = _keys(username, address)
    if PAIR in keys:
        db.session.execute(delete(LoginThrottle).where(LoginThrottle.scope == PAIR,
                                                       LoginThrottle.key == keys[PAIR]))
