"""Supervision relationships in force: who reviews a supervisee's notes, and how.

Both the note pages (in the note's own statement, ``notes.note_page``) and the review
workflow (``reviews``) read them; this module is what they share.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, or_, select

from .models import SupervisionRelationship, User


@dataclass(frozen=True)
class Supervisor:
    id: int
    display_name: str
    active: bool


@dataclass(frozen=True)
class CurrentSupervision:
    """A supervision relationship in force, as the note pages use it: how its supervisee's
    notes are reviewed, and by whom."""

    review_mode: str
    supervisor: Supervisor


def in_force(supervisee: ColumnElement, on: ColumnElement) -> Select:
    """The relationships of ``supervisee`` in force on the day ``on`` (both bound
    parameters): review mode, then the supervisor's id, name and whether active."""
    return (select(SupervisionRelationship.review_mode, User.id.label("supervisor_id"),
                   User.display_name.label("supervisor_name"),
                   User.active.label("supervisor_active"))
            .join(User, User.id == SupervisionRelationship.supervisor_id)
            .where(SupervisionRelationship.supervisee_id == supervisee,
                   SupervisionRelationship.starts_on <= on,
                   or_(SupervisionRelationship.ends_on.is_(None),
                       SupervisionRelationship.ends_on >= on)))


def relationships_from(rows) -> list[CurrentSupervision]:
    """``CurrentSupervision`` from rows of (review mode, supervisor id, name, active);
    rows without a review mode (an outer join that found none) are left out."""
    return [CurrentSupervision(mode, Supervisor(supervisor_id, name, active))
            for mode, supervisor_id, name, active in rows if mode is not None]
