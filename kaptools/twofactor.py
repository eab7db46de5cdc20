"""Two-factor sign-in: time-based one-time codes (RFC 6238, by pyotp) and recovery codes.

A user enrols by scanning a QR code into an authenticator app and typing one code
back; ten single-use recovery codes are shown once and stored only as Argon2 hashes.
At sign-in the password comes first, then a code from the app or a recovery code; a
wrong code counts against the same throttle as a wrong password (``throttle``). A code
is accepted once: the time step it belongs to is remembered, so a code seen over a
shoulder cannot be replayed. An administrator can require two-factor sign-in per role;
a user of such a role who has not enrolled enrols right after their password, before any
page opens.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

import pyotp
from sqlalchemy import delete, select

from . import audit
from .auth import end_all_sessions
from .extensions import db
from .models import RecoveryCode, Role, RolePolicy, User
from .passwords import hash_password, verify_password
from .timeutil import utcnow

ISSUER = "kaptools"
RECOVERY_CODES = 10
# Codes from the step before and after the current one are accepted (clock drift).
DRIFT_STEPS = 1
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(user: User, secret: str, issuer: str = ISSUER) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The enrolment QR code as an SVG data URI (dark modules on white, with a margin)."""
    import segno

    return segno.make(uri, error="m").svg_data_uri(scale=5, border=4, dark="#111111",
                                                   light="#ffffff")


def _clean(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def matching_step(secret: str, code: str) -> int | None:
    """The time step whose code ``code`` is (within the allowed drift), or None."""
    code = _clean(code)
    if not re.fullmatch(r"[0-9]{6}", code):  # ASCII digits only (str.isdigit takes ١٢٣)
        return None
    totp = pyotp.TOTP(secret)
    now = utcnow()
    for offset in range(-DRIFT_STEPS, DRIFT_STEPS + 1):
        moment = now + timedelta(seconds=offset * totp.interval)
        if secrets.compare_digest(totp.at(moment), code):
            return totp.timecode(moment)
    return None


def check_code(user: User, code: str) -> str | None:
    """Accept a code from the app or an unused recovery code; the caller commits.

    Returns "totp" or "recovery" for an accepted code, None for anything else (a used
    recovery code, a code already used, a wrong or malformed one)."""
    if not user.totp_secret:
        return None
    step = matching_step(user.totp_secret, code)
    if step is not None:
        if user.totp_last_step is not None and step <= user.totp_last_step:
            return None  # replayed
        user.totp_last_step = step
        return "totp"
    cleaned = _clean(code)
    if not re.fullmatch(f"[{_RECOVERY_ALPHABET}]{{10}}", cleaned):
        return None
    for stored in db.session.scalars(select(RecoveryCode).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))):
        if verify_password(stored.code_hash, cleaned):
            stored.used_at = utcnow()
            return "recovery"
    return None


def recovery_codes_left(user: User) -> int:
    return len(db.session.scalars(select(RecoveryCode.id).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))).all())


def new_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes; the new ones are returned to be shown once."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.session.add(RecoveryCode(user_id=user.id, code_hash=hash_password(raw)))
    return codes


def enrol(user: User, secret: str, code: str) -> list[str] | None:
    """Turn two-factor sign-in on when ``code`` matches ``secret``; the recovery codes."""
    step = matching_step(secret, code)
    if step is None:
        return None
    user.totp_secret, user.totp_last_step, user.totp_enrolled_at = secret, step, utcnow()
    codes = new_recovery_codes(user)
    audit.record("two_factor.enrolled", obj=user, user=user)
    return codes


def turn_off(user: User, by: User) -> None:
    """Remove the user's second factor (by themselves, or by an administrator when a
    phone is lost); every login of the user ends."""
    user.totp_secret = user.totp_last_step = user.totp_enrolled_at = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    end_all_sessions(user)
    audit.record("two_factor.removed", obj=user, user=by,
                 detail={"by_admin": by.id != user.id})


def required_roles() -> set[str]:
    return set(db.session.scalars(select(RolePolicy.role).where(
        RolePolicy.requires_two_factor.is_(True))))


def required_for(user: User) -> bool:
    return bool(db.session.scalar(select(RolePolicy.requires_two_factor).where(
        RolePolicy.role == user.role)))


def set_required(roles: set[str], admin: User) -> list[str]:
    """Require two-factor sign-in for exactly ``roles``. Users of a newly required role
    who have not enrolled are signed out, to enrol at their next sign-in. Returns the
    usernames signed out."""
    before = required_roles()
    for role in Role:
        policy = db.session.get(RolePolicy, role.value) or RolePolicy(role=role.value)
        policy.requires_two_factor = role.value in roles
        db.session.add(policy)
    added = roles - before
    signed_out = []
    if added:
        for user in db.session.scalars(select(User).where(User.role.in_(added),
                                                          User.totp_secret.is_(None))):
            end_all_sessions(user)
            signed_out.append(user.username)
    if roles != before:
        audit.record("two_factor.policy", user=admin,
                     detail={"required": sorted(roles), "signed_out": signed_out})
    return signed_out
