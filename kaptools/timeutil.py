"""Time helpers: every timestamp is stored timezone-aware UTC and shown in the clinic's
time zone (``CLINIC_TIMEZONE``, an IANA name such as "America/Los_Angeles"), where "today"
is also reckoned: a clinic west of Greenwich is still on today's date in its evening."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context
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


def today() -> date:
    """Today's date where the clinic is."""
    return utcnow().astimezone(clinic_zone()).date()


def local(moment: datetime) -> datetime:
    """A stored moment as a clock on the clinic's wall shows it."""
    return moment.astimezone(clinic_zone())


def shown(moment: datetime | None, pattern: str = DATE_TIME, with_zone: bool = True) -> str:
    """A stored moment written for a reader in the clinic: its local date (and time, with
    the zone's abbreviation, e.g. "26 Nov 2026, 20:00 PST"); "" for none."""
    if moment is None:
        return ""
    from babel.dates import format_datetime

    here = local(moment)
    text = format_datetime(here, pattern, tzinfo=here.tzinfo, locale=_locale())
    return f"{text} {here.strftime('%Z')}" if with_zone and "H" in pattern else text


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
