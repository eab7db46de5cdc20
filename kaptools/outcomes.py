"""Outcome measures across a course, as plain data, and their chart."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from .modality import get_registry
from .modality.answers import compute_scores
from .models import Course, NoteState, SessionKind

MEASURES = {"gad-7": "GAD-7", "phq-9": "PHQ-9", "pcl-5": "PCL-5",
            "pcl-5-past-week": "PCL-5 (past week)"}
# Drawn on the 0–27 chart (PCL-5, 0–80, is listed in the table of changes).
CHARTED = ("GAD-7", "PHQ-9")
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
        return " · ".join(m for m, on in (("response (≥ 50 % lower)", self.response),
                                          ("remission", self.remission)) if on)


def course_outcomes(course: Course) -> list[OutcomePoint]:
    """Every complete GAD-7/PHQ-9 in the course, in session order."""
    return courses_outcomes([course.id]).get(course.id, [])


def courses_outcomes(course_ids: list[int]) -> dict[int, list[OutcomePoint]]:
    """The outcome points of several courses in one query, reading only the measures'
    notes (never the other notes' answers)."""
    from sqlalchemy import select

    from .extensions import db
    from .models import Note, TherapySession

    if not course_ids:
        return {}
    registry = get_registry()
    rows = db.session.execute(
        select(TherapySession.course_id, TherapySession.id, TherapySession.session_date,
               Note.modality, Note.template_version, Note.answers)
        .join(Note, Note.session_id == TherapySession.id)
        .where(TherapySession.course_id.in_(course_ids), Note.modality.in_(list(MEASURES)),
               Note.state != NoteState.ENTERED_IN_ERROR)
        .order_by(TherapySession.session_date, TherapySession.id, Note.id))
    found: dict[int, list[OutcomePoint]] = {}
    for course_id, session_id, on, modality, version, answers in rows:
        template = registry.get(modality, version)
        if template is None:
            continue
        for score in compute_scores(template, answers):
            if score.key == "total" and score.complete:  # not a cluster or a rule
                found.setdefault(course_id, []).append(OutcomePoint(
                    MEASURES[modality], session_id, on, score.total, score.max_total,
                    score.band))
    return found


def changes(points: list[OutcomePoint]) -> list[MeasureChange]:
    out = []
    for measure in MEASURES.values():
        series = [p for p in points if p.measure == measure]
        if len(series) >= 1:
            out.append(MeasureChange(measure, series[0], series[-1]))
    return out


def outcome_chart_svg(sessions, points: list[OutcomePoint], width: int = 720,
                      height: int = 300) -> bytes | None:
    """A line chart of GAD-7 and PHQ-9 totals by session, dosing sessions marked."""
    if not points:
        return None
    import pygal
    from pygal.style import Style

    sessions = list(sessions)
    labels = []
    for sess in sessions:
        mark = " ▲" if sess.kind == SessionKind.DOSING else ""
        labels.append(f"{sess.session_date:%d %b}{mark}")
    style = Style(background="white", plot_background="white", foreground="#1f2a33",
                  foreground_strong="#1f2a33", foreground_subtle="#d9dee2",
                  colors=("#2f6b5e", "#7a4fa0", "#c98a2b"), font_family="DejaVu Sans, sans-serif",
                  label_font_size=11, major_label_font_size=11, legend_font_size=12,
                  value_font_size=10, title_font_size=14)
    chart = pygal.Line(width=width, height=height, style=style, show_dots=True, dots_size=4,
                       x_label_rotation=35, range=(0, 27), include_x_axis=True,
                       legend_at_bottom=True, legend_at_bottom_columns=3, js=[],
                       disable_xml_declaration=False, print_values=False, truncate_label=-1,
                       show_y_guides=True, y_title="Total score")
    chart.x_labels = labels
    for measure in CHARTED:
        by_session = {p.session_id: p.total for p in points if p.measure == measure}
        chart.add(measure, [by_session.get(s.id) for s in sessions], allow_interruptions=False)
    chart.add("Dosing session ▲", [0 if s.kind == SessionKind.DOSING else None for s in sessions],
              stroke=False, dots_size=6)
    return chart.render()


def chart_uri(sessions, points: list[OutcomePoint]) -> str | None:
    """The chart as a data URI; the same data gives the same chart, drawn only once."""
    if not any(p.measure in CHARTED for p in points):
        return None
    key = (tuple((s.id, s.session_date, s.kind) for s in sessions), tuple(points))
    return _chart_uri(key)


@lru_cache(maxsize=256)
def _chart_uri(key) -> str | None:
    sessions = [_Session(*s) for s in key[0]]
    return svg_data_uri(outcome_chart_svg(sessions, list(key[1])))


@dataclass(frozen=True)
class _Session:
    id: int
    session_date: date
    kind: str


_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def stable_svg(svg: bytes) -> bytes:
    """pygal names each chart with a random UUID; name it after its content instead,
    so that the same data always gives the same document (and a PDF cache hit)."""
    found = sorted(set(_UUID.findall(svg)))
    for i, uuid in enumerate(found):
        digest = hashlib.sha256(_UUID.sub(b"", svg) + bytes([i])).hexdigest()[:12]
        svg = svg.replace(uuid, f"c{digest}".encode())
    return svg


def svg_data_uri(svg: bytes | None) -> str | None:
    if not svg:
        return None
    return "data:image/svg+xml;base64," + base64.b64encode(stable_svg(svg)).decode()
