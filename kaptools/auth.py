"""Server-side login sessions, throttling and the Flask-Login wiring."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app, session
from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import joinedload

from . import audit
from .extensions import db, login_manager
from .models import AuthSession, User
from .passwords import hash_password, needs_rehash, verify_password
from .timeutil import utcnow

# Refresh last_seen at most this often, to avoid a write on every request.
_TOUCH_INTERVAL = timedelta(seconds=30)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(user: User, address: str | None) -> str:
    """Create a server-side session for ``user`` and return its raw token."""
    token = secrets.token_urlsafe(32)
    db.session.add(AuthSession(token_hash=_token_hash(token), user=user, address=address))
    user.session_token = token
    return token


def end_session(token: str | None) -> None:
    if token:
        db.session.execute(delete(AuthSession).where(AuthSession.token_hash == _token_hash(token)))


def end_all_sessions(user: User) -> None:
    """Invalidate every login of ``user`` (password change, deactivation)."""
    db.session.execute(delete(AuthSession).where(AuthSession.user_id == user.id))


# Built once: every request starts with it.
_SESSION_BY_TOKEN = (select(AuthSession).where(AuthSession.token_hash == bindparam("token_hash"))
                     .options(joinedload(AuthSession.user)))


def load_session_user(token: str) -> User | None:
    """Return the user of a live session token, or None when absent or expired."""
    auth = db.session.scalar(_SESSION_BY_TOKEN, {"token_hash": _token_hash(token)})
    if auth is None:
        return None
    now = utcnow()
    cfg = current_app.config
    idle = timedelta(minutes=int(cfg["SESSION_IDLE_MINUTES"]))
    absolute = timedelta(hours=int(cfg["SESSION_ABSOLUTE_HOURS"]))
    user = auth.user
    if now - auth.last_seen_at > idle or now - auth.created_at > absolute or not user.active:
        user_id = user.id
        try:
            db.session.delete(auth)
            audit.record("session.expired", user=user, obj=user)
            db.session.commit()
        except SQLAlchemyError:
            db.session.rollback()  # a busy database: the row goes on the next request
        session["expired"] = True
        session["expired_uid"] = user_id  # text carried through sign-in is theirs alone
        return None
    if now - auth.last_seen_at > _TOUCH_INTERVAL:
        try:
            auth.last_seen_at = now
            db.session.commit()
        except SQLAlchemyError:
            # Refreshing the idle timer is bookkeeping: a locked or read-only database
            # must not turn this request away. It is refreshed on a later request.
            db.session.rollback()
    user.session_token = token
    return user


@login_manager.user_loader
def _user_loader(token: str) -> User | None:
    return load_session_user(token)


def authenticate(username: str, password: str) -> User | None:
    """Return the active user with these credentials, upgrading an outdated hash.

    Known, unknown and inactive usernames cost the same: one argon2 verification.
    """
    user = db.session.scalar(select(User).where(User.username == username.lower()))
    stored = user.password_hash if user is not None and user.active else None
    if not verify_password(stored, password):
        return None
    assert user is not None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def safe_next(target: str | None) -> str | None:
    """Accept only a relative path on this site as a post-login destination."""
    if not target or len(target) > 2000:
        return None
    if any(ch in target for ch in "\\\r\n\t") or not target.startswith("/"):
        return None
    if target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


# Carrying a note's text through sign-in after a timeout -------------------------

CARRY_SALT = "kaptools-carry"
CARRY_MAX_AGE = 3600
CARRY_SKIP = frozenset({"csrf_token", "action", "carry_name", "carry_value", "carry_to",
                        "carry_token"})


def _carry_serializer():
    from itsdangerous import URLSafeTimedSerializer

    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=CARRY_SALT)


def carry_token(user_id: int, path: str) -> str:
    return _carry_serializer().dumps({"uid": user_id, "to": path})


def carry_allowed(token: str | None, user: User, path: str | None) -> bool:
    """True only for the same user, the same note address, within the hour."""
    from itsdangerous import BadSignature

    if not token or not path:
        return False
    try:
        data = _carry_serializer().loads(token, max_age=CARRY_MAX_AGE)
    except BadSignature:
        return False
    return data.get("uid") == user.id and data.get("to") == path
