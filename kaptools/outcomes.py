"""Outcome measures across a course, as plain data, and their chart."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from sqlalchemy import bindparam, select

from . import charts
from .i18n import _, words_key
from .modality import get_registry
from .modality.answers import compute_scores
from .models import Course, Note, NoteState, SessionKind, TherapySession

MEASURES = {"gad-7": "GAD-7", "phq-9": "PHQ-9", "pcl-5": "PCL-5",
            "pcl-5-past-week": "PCL-5 (past week)"}
MODALITY_OF = {name: slug for slug, name in MEASURES.items()}
# Remission: the latest total below this, having started at or above it.
REMISSION_BELOW = {"GAD-7": 5, "PHQ-9": 5, "PCL-5": 31}


@dataclass(frozen=True)
class OutcomePoint:
    measure: str
    session_id: int
    on: date
    total: int
    max_total: int
    band: str | None


@dataclass(frozen=True)
class MeasureChange:
    measure: str
    baseline: OutcomePoint
    latest: OutcomePoint

    @property
    def change(self) -> int:
        return self.latest.total - self.baseline.total

    @property
    def repeated(self) -> bool:
        return self.latest.session_id != self.baseline.session_id

    @property
    def response(self) -> bool:
        """A fall of at least half from the baseline total."""
        return self.repeated and self.baseline.total > 0 and \
            self.latest.total * 2 <= self.baseline.total

    @property
    def remission(self) -> bool:
        """Below the measure's remission threshold, having started at or above it."""
        below = REMISSION_BELOW.get(self.measure)
        return self.repeated and below is not None and self.baseline.total >= below > \
            self.latest.total

    @property
    def markers(self) -> str:
        return " · ".join(m for m, on in (
            (_("response (≥ %(percent)s %% lower)", percent=50), self.response),
            (_("remission"), self.remission)) if on)


def course_outcomes(course: Course) -> list[OutcomePoint]:
    """Every complete, signed outcome measure in the course, in session order."""
    return courses_outcomes([course.id]).get(course.id, [])


def courses_outcomes(course_ids: list[int]) -> dict[int, list[OutcomePoint]]:
    """The outcome points of several courses, in session order, reading only the measures'
    signed notes (never the other notes' answers; a draft is not a result yet)."""
    from .extensions import db

    if not course_ids:
        return {}
    return outcome_points(db.session.execute(_SIGNED_MEASURES,
                                             {"course_ids": list(course_ids)}).all())


def outcome_points(signed) -> dict[int, list[OutcomePoint]]:
    """The outcome points, by course, of these signed measure notes (each with ``id``,
    ``content_hash``, ``modality``, ``course_id``, ``session_id`` and ``session_date``; in
    session order: rows of ``_SIGNED_MEASURES``, or ``overview.CourseOverview.measures``).

    A signed note never changes, so its score is worked out once per process (and app) and
    kept under the note's content hash: a client page then reads which measures were
    signed, not their answers (decoding and scoring them was a quarter of the page's
    time)."""
    from .extensions import db

    registry = get_registry()
    kept = registry.scored  # per app: another app may have other templates
    words = words_key()  # a band's label is in the clinic's language
    scores = {row.id: kept.get((row.id, row.content_hash, words), _UNSCORED) for row in signed}
    unscored = [note_id for note_id, score in scores.items() if score is _UNSCORED]
    if unscored:
        if len(kept) + len(unscored) > _SCORED_AT_MOST:
            kept.clear()  # this call keeps its own scores in ``scores``
        for row in db.session.execute(select(Note.id, Note.content_hash, Note.modality,
                                             Note.template_version, Note.answers)
                                      .where(Note.id.in_(unscored))):
            template = registry.get(row.modality, row.template_version)
            total = next(iter(compute_scores(template, row.answers, only="total")), None) \
                if template is not None else None
            scores[row.id] = kept[row.id, row.content_hash, words] = \
                (total.total, total.max_total, total.band) if total and total.complete else None
    found: dict[int, list[OutcomePoint]] = {}
    for row in signed:
        if (score := scores[row.id]) is not None and score is not _UNSCORED:
            found.setdefault(row.course_id, []).append(
                OutcomePoint(MEASURES[row.modality], row.session_id, row.session_date, *score))
    return found


# Built once: the printed summary asks for it (the client page reads the same notes with
# its course overview, ``overview.course_overviews``).
_SIGNED_MEASURES = (
    select(TherapySession.course_id, TherapySession.id.label("session_id"),
           TherapySession.session_date, Note.id, Note.content_hash, Note.modality)
    .join(Note, Note.session_id == TherapySession.id)
    .where(TherapySession.course_id.in_(bindparam("course_ids", expanding=True)),
           Note.modality.in_(list(MEASURES)), Note.state == NoteState.SIGNED)
    .order_by(TherapySession.session_date, TherapySession.id, Note.id))
# Each signed measure's (total, highest total, band), or None when it has no complete total,
# kept in the registry's ``scored`` by (note id, content hash, language): about 350 bytes a
# note, so at most about 17 MiB per process, dropped all at once past the bound.
_SCORED_AT_MOST = 50_000
_UNSCORED = object()


def changes(points: list[OutcomePoint]) -> list[MeasureChange]:
    out = []
    for measure in MEASURES.values():
        series = [p for p in points if p.measure == measure]
        if len(series) >= 1:
            out.append(MeasureChange(measure, series[0], series[-1]))
    return out


def scale(measure: str) -> tuple[int, tuple]:
    """The instrument's range and cut-off bands, from its newest template."""
    modality = MODALITY_OF[measure]
    template = get_registry().latest(modality)
    for score in template.scores if template else ():
        if score.key == "total":
            return score.max_total, score.bands
    return 0, ()


def course_chart(sessions, points: list[OutcomePoint]) -> charts.Chart | None:
    """Every measure charted on a time axis over the course's sessions, dosing marked;
    the same data gives the same chart, drawn only once."""
    if not points:
        return None
    sessions = list(sessions)
    return _course_chart(
        tuple(sorted(s.session_date for s in sessions if s.kind == SessionKind.DOSING)),
        min(s.session_date for s in sessions) if sessions else points[0].on,
        max(s.session_date for s in sessions) if sessions else points[-1].on,
        tuple(points), words_key())


@lru_cache(maxsize=256)
def _course_chart(dosing_days, first, last, points, words=None) -> charts.Chart | None:
    series = []
    by_measure = {c.measure: c for c in changes(list(points))}
    for measure in MEASURES.values():
        found = tuple((p.on, p.total) for p in points if p.measure == measure)
        if not found:
            continue
        max_total, bands = scale(measure)
        change = by_measure.get(measure)
        series.append(charts.Series(measure, max_total or max(p.max_total for p in points
                                                              if p.measure == measure),
                                    bands, found, change.markers if change else ""))
    return charts.outcome_chart(series, list(dosing_days), first, last)
