"""Time helpers: every timestamp is stored timezone-aware UTC and shown in the clinic's
time zone (``CLINIC_TIMEZONE``, an IANA name such as "America/Los_Angeles"), where "today"
is also reckoned: a clinic west of Greenwich is still on today's date in its evening.

A user may choose their own zone (a therapist working remotely from another one): pages
they see, and their "today", follow it. Documents always follow the clinic's zone, so a
printed summary reads the same whoever prints it (``clinic_time``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from flask import current_app, g, has_app_context, has_request_context
from flask_login import current_user
from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator

# Dates and times are written the clinic's way (day month year, 24-hour clock), by Babel,
# so that another language or convention is a setting away.
DATE_TIME = "d MMM y, HH:mm"
DATE = "d MMM y"


def utcnow() -> datetime:
    return datetime.now(UTC)


@lru_cache(maxsize=16)
def zone(name: str) -> ZoneInfo:
    """The time zone called ``name`` (ZoneInfoNotFoundError names an unknown one)."""
    return ZoneInfo(name)


def clinic_zone() -> ZoneInfo:
    """The clinic's time zone; UTC outside the application."""
    if has_app_context():
        return zone(str(current_app.config.get("CLINIC_TIMEZONE") or "UTC"))
    return zone("UTC")


def viewer_zone() -> ZoneInfo:
    """The zone of the user this request is for, when they chose one; else the clinic's."""
    if has_request_context() and not g.get("clinic_time"):
        chosen = getattr(current_user, "time_zone", None)
        if chosen:
            return zone(chosen)
    return clinic_zone()


@contextmanager
def clinic_time() -> Iterator[None]:
    """Within this block, times are the clinic's whoever asks (documents)."""
    outer = g.get("clinic_time") if has_app_context() else None
    if has_app_context():
        g.clinic_time = True
    try:
        yield
    finally:
        if has_app_context():
            g.clinic_time = outer


@lru_cache(maxsize=1)
def zone_names() -> list[str]:
    """The IANA zone names a user can choose from, sorted."""
    return sorted(n for n in available_timezones() if "/" in n and not n.startswith(
        ("Etc/", "SystemV/", "US/", "posix/", "right/"))) + ["UTC"]


def today() -> date:
    """Today's date where the clinic (or the user, if they chose a zone) is."""
    return utcnow().astimezone(viewer_zone()).date()


def local(moment: datetime) -> datetime:
    """A stored moment as a clock on the clinic's (or the user's) wall shows it."""
    return moment.astimezone(viewer_zone())


def shown(moment: datetime | None, pattern: str = DATE_TIME, with_zone: bool = True) -> str:
    """A stored moment written for a reader in the clinic: its local date (and, where the
    pattern shows a time of day, the time with the zone's abbreviation, e.g.
    "26 Nov 2026, 20:00 PST"); "" for none."""
    if moment is None:
        return ""
    from babel.dates import format_datetime

    here = local(moment)
    text = format_datetime(here, pattern, tzinfo=here.tzinfo, locale=_locale())
    return f"{text} {here.strftime('%Z')}" if with_zone and _shows_time(pattern) else text


def day(value: date | None, pattern: str = "d MMM y") -> str:
    """A calendar date (a session's, a course's) as the clinic writes dates, with month
    and day names in its language: {{ d|day("EEEE dd MMMM y") }} (Babel patterns)."""
    if value is None:
        return ""
    return _day(value, pattern, _locale())


@lru_cache(maxsize=4096)
def _day(value: date, pattern: str, locale: str) -> str:
    from babel.dates import format_date

    return format_date(value, pattern, locale=locale)


# Babel pattern fields that tell the time of day (hours, minutes, seconds, day period).
_TIME_FIELDS = frozenset("hHkKmsSaAbB")


@lru_cache(maxsize=64)
def _shows_time(pattern: str) -> bool:
    from babel.dates import tokenize_pattern

    return any(kind == "field" and value[0] in _TIME_FIELDS
               for kind, value in tokenize_pattern(pattern))


def _locale() -> str:
    if has_app_context():
        return str(current_app.config.get("CLINIC_LOCALE") or "en_GB")
    return "en_GB"


class UTCDateTime(TypeDecorator[datetime]):
    """Store naive UTC, hand back aware UTC, on SQLite and PostgreSQL alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)
