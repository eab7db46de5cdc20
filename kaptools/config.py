"""Configuration: defaults, then the instance config file, then KAPTOOLS_* variables."""

from __future__ import annotations

import os
import secrets
import tomllib
from datetime import timedelta
from pathlib import Path

from flask import Flask

DEFAULTS: dict[str, object] = {
    # An SQLAlchemy URL; empty means a SQLite file in the instance folder.
    "DATABASE_URL": "",
    "SECRET_KEY_FILE": "",  # a file holding the secret key several hosts share
    "SESSION_IDLE_MINUTES": 30,
    "SESSION_ABSOLUTE_HOURS": 12,
    "LOGIN_MAX_FAILURES_PER_ACCOUNT": 5,
    "LOGIN_MAX_FAILURES_PER_ADDRESS": 20,
    # Guesses spread over many addresses: past this, only addresses that have signed in
    # to the account before may keep trying (so nobody can lock a therapist out).
    "LOGIN_MAX_FAILURES_PER_ACCOUNT_EVERYWHERE": 50,
    "LOGIN_FAILURE_WINDOW_MINUTES": 15,
    # argon2id cost; the defaults follow OWASP's password storage guidance.
    "ARGON2_TIME_COST": 3,
    "ARGON2_MEMORY_COST_KIB": 65536,
    "ARGON2_PARALLELISM": 2,
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    # Secure is added automatically for HTTPS requests; set true to insist on it.
    "SESSION_COOKIE_SECURE": False,
    # Set true behind one TLS-terminating reverse proxy (trusts X-Forwarded-Proto/For).
    "BEHIND_PROXY": False,
    "SESSION_COOKIE_NAME": "kaptools_session",
    "WTF_CSRF_TIME_LIMIT": None,
    # Pages send no Referer (Referrer-Policy: no-referrer), so Flask-WTF's HTTPS referrer
    # check would refuse every form; the token plus SameSite cookies carry the protection.
    "WTF_CSRF_SSL_STRICT": False,
    # PostgreSQL connections are checked before use when they have been idle (see
    # kaptools/database.py, ``_ping_if_idle``), not before every request.
    "SQLALCHEMY_ENGINE_OPTIONS": {},
    # How long a statement may wait for a lock, and run at all, before the request gives
    # up with a 503 that keeps what was typed (PostgreSQL settings; on SQLite the lock
    # wait is the busy timeout and long statements are interrupted).
    "DB_LOCK_TIMEOUT_MS": 5000,
    "DB_STATEMENT_TIMEOUT_MS": 20000,
    "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS": 60000,
    # PostgreSQL: a transaction that only records that a page was shown commits without
    # waiting for the disk (the event is in the chain before the page is sent; see
    # kaptools/audit.py, ``_APPEND_VIEW``). True makes each one wait, at some cost in speed.
    "AUDIT_VIEWS_WAIT_FOR_DISK": False,
    # The practice's own vitals thresholds (see kaptools/vitals.py), e.g.
    # {"systolic": {"min": 90, "max": 160}, "spo2": {"min": 94}}. None by default: kaptools
    # gives no clinical limits of its own, and the print says when none are set.
    "VITALS_THRESHOLDS": {},
    "CLINIC_NAME": "kaptools clinic",
    # Where the clinic is: every date and time is shown in this zone and "today" is its
    # date (an IANA name, e.g. "Europe/London", "America/Los_Angeles"); and the
    # convention dates are written in (a Babel locale).
    "CLINIC_TIMEZONE": "UTC",
    "CLINIC_LOCALE": "en_GB",
    # Printed on the client handout's crisis sheet; each one left empty prints a line to
    # write the number on by hand.
    "CLINIC_PHONE": "",
    "CLINIC_AFTER_HOURS_PHONE": "",
    "CRISIS_LINE": "",
    "EMERGENCY_NUMBER": "",
    # Rendering: empty = an embedded queue (a SQLite file in the instance folder, worked
    # by `kaptools serve`); redis://host:6379/0 for a clinic network with `kaptools worker`.
    "TASK_QUEUE_URL": "",
    "RENDER_TIME_LIMIT_S": 180,
    "RENDER_MEMORY_LIMIT_MB": 1536,
    "RENDER_PROCESSES": 0,  # 0: one per CPU core
    "RENDER_MAX_PAGES": 1500,
    "RENDER_STORE_MAX_MB": 512,
    # A web process moves what it keeps out of the garbage collector's way after serving
    # this many requests (see kaptools/collector.py); 0 never does (the default in tests).
    "GC_FREEZE_AFTER_REQUESTS": 200,
    "RENDER_WORKERS": 2,  # jobs worked on at once by `kaptools serve` or `kaptools worker`
}

INSTANCE_CONFIG_FILE = "kaptools.toml"
SECRET_KEY_FILE = "secret_key"


def load_config(app: Flask, test_config: dict[str, object] | None) -> None:
    """Fill ``app.config`` from defaults, the instance file, the environment and tests."""
    app.config.from_mapping(DEFAULTS)
    app.config.from_file(INSTANCE_CONFIG_FILE, load=_load_toml, silent=True, text=False)
    app.config.from_prefixed_env("KAPTOOLS")
    if test_config:
        if test_config.get("TESTING"):
            app.config["GC_FREEZE_AFTER_REQUESTS"] = 0
        app.config.from_mapping(test_config)

    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config.get("SECRET_KEY") and app.config.get("SECRET_KEY_FILE"):
        # Several hosts share one key (a mounted secret); it must exist and not be empty.
        key = Path(str(app.config["SECRET_KEY_FILE"])).read_text().strip()
        if not key:
            raise RuntimeError(f"the secret key file {app.config['SECRET_KEY_FILE']} is empty")
        app.config["SECRET_KEY"] = key
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret_key(Path(app.instance_path))

    url = str(app.config.get("DATABASE_URL") or "")
    if not url:
        url = "sqlite:///" + str(Path(app.instance_path) / "kaptools.sqlite3")
    app.config["SQLALCHEMY_DATABASE_URI"] = _normalise_db_url(url)
    _check_clinic_zone(app)
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(
        hours=int(app.config["SESSION_ABSOLUTE_HOURS"])
    )


def _check_clinic_zone(app: Flask) -> None:
    """Refuse to start with a time zone or locale that does not exist, naming it."""
    from zoneinfo import ZoneInfoNotFoundError

    from babel import Locale, UnknownLocaleError

    name = str(app.config.get("CLINIC_TIMEZONE") or "UTC")
    try:
        from .timeutil import zone

        zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuntimeError(f"CLINIC_TIMEZONE {name!r} is not a time zone; use an IANA name "
                           "such as 'Europe/London' or 'America/Los_Angeles'") from None
    try:
        Locale.parse(str(app.config.get("CLINIC_LOCALE") or "en_GB"))
    except (UnknownLocaleError, ValueError):
        raise RuntimeError(f"CLINIC_LOCALE {app.config.get('CLINIC_LOCALE')!r} is not a "
                           "locale; use e.g. 'en_GB' or 'en_US'") from None


def _load_toml(handle) -> dict[str, object]:
    return {key.upper(): value for key, value in tomllib.load(handle).items()}


def _normalise_db_url(url: str) -> str:
    # Plain postgresql:// URLs would pick psycopg2; we ship psycopg 3.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _instance_secret_key(instance: Path) -> str:
    """Read the instance's secret key, creating it (mode 0600) on first run."""
    path = instance / SECRET_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key
