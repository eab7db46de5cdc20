"""argon2id password hashing with the cost set in configuration."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

from .i18n import _

# Verified against when the username is unknown, so the failure path costs the same.
_DUMMY_PASSWORD = "kaptools-not-a-real-password"


def _hasher() -> PasswordHasher:
    cfg = current_app.config
    return PasswordHasher(
        time_cost=int(cfg["ARGON2_TIME_COST"]),
        memory_cost=int(cfg["ARGON2_MEMORY_COST_KIB"]),
        parallelism=int(cfg["ARGON2_PARALLELISM"]),
        type=Type.ID,
    )


def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash made once per process with the current cost, so the unknown-user path
    costs exactly one verification, like a wrong password."""
    cache = current_app.extensions.setdefault("kaptools_dummy_hash", {})
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism)
    if key not in cache:
        cache[key] = hasher.hash(_DUMMY_PASSWORD)
    return cache[key]


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Check ``password``; with no stored hash, spend the same effort and fail."""
    hasher = _hasher()
    dummy = _dummy_hash(hasher)  # made on the first attempt, whoever it is for
    if stored_hash is None:
        try:
            hasher.verify(dummy, password + "x")
        except VerificationError:
            pass
        return False
    try:
        return hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher().check_needs_rehash(stored_hash)


def password_problem(password: str) -> str | None:
    """Explain why a new password is unacceptable, or return None."""
    if len(password) < 12:
        return _("Use at least 12 characters.")
    if len(password) > 256:
        return _("Use at most 256 characters.")
    return None
