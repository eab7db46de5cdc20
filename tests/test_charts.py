"""Charts that tell the truth (issue 12): each chart's SVG is read back — x positions
proportional to dates, the y-range equal to the instrument's range, cut-off bands present,
no point where nothing was measured, dosing drawn as the alternative text says."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from kaptools import charts, documents, notes, outcomes
from kaptools.demo import load_demo
from kaptools.extensions import db
from kaptools.modality import get_registry
from kaptools.models import Course, SessionKind, TherapySession, User

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"


def _group(root: ET.Element, gid: str) -> ET.Element | None:
    return next((g for g in root.iter(f"{SVG}g") if g.get("id") == gid), None)


def markers(root: ET.Element, gid: str) -> list[tuple[float, float]]:
    """The marker positions drawn by one series (one <use> per point)."""
    group = _group(root, gid)
    if group is None:
        return []
    return [(float(u.get("x")), float(u.get("y"))) for u in group.iter(f"{SVG}use")]


def path_numbers(group: ET.Element) -> list[list[tuple[float, float]]]:
    """The subpaths of a group's first path, as lists of points."""
    d = next(group.iter(f"{SVG}path")).get("d")
    subpaths = []
    for chunk in re.split(r"(?=M )", d.strip()):
        nums = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", chunk)]
        if nums:
            subpaths.append(list(zip(nums[::2], nums[1::2], strict=True)))
    return subpaths


def y_extent(root: ET.Element, gid: str) -> tuple[float, float]:
    ys = [y for sub in path_numbers(_group(root, gid)) for _, y in sub]
    return min(ys), max(ys)  # SVG y grows downwards: (top, bottom)


def phq9() -> charts.Series:
    return charts.Series(
        "PHQ-9", 27, outcomes.scale("PHQ-9")[1],
        ((date(2026, 11, 27), 18), (date(2026, 11, 28), 12), (date(2026, 12, 10), 6)))


def test_outcome_chart_spaces_points_by_days_and_spans_the_whole_range(app):
    with app.app_context():
        series = phq9()
        chart = charts.outcome_chart([series], [date(2026, 11, 28)], date(2026, 11, 27),
                                     date(2026, 12, 10))
    root = ET.fromstring(chart.svg)
    points = markers(root, "points-phq-9")
    assert len(points) == 3  # a point per measurement, no more
    (x0, _), (x1, _), (x2, _) = points
    # 27 Nov → 28 Nov is one day of the thirteen to 10 Dec: not a third of the width.
    assert (x1 - x0) / (x2 - x0) == pytest.approx(1 / 13, abs=0.005)
    top, bottom = y_extent(root, "plot-phq-9")
    for (_, y), (_, total) in zip(points, series.points, strict=True):
        assert y == pytest.approx(bottom - total / 27 * (bottom - top), abs=0.05)
    # The bands: one per severity band, meeting at the cut-offs, together the whole axis.
    bands = [y_extent(root, f"band-phq-9-{i}") for i in range(5)]
    assert _group(root, "band-phq-9-5") is None
    assert bands[0][1] == pytest.approx(bottom) and bands[-1][0] == pytest.approx(top)
    for i, cut in enumerate((5, 10, 15, 20), start=1):
        assert bands[i][1] == pytest.approx(bottom - cut / 27 * (bottom - top), abs=0.05)
        assert bands[i][1] == pytest.approx(bands[i - 1][0])
    # Dosing: drawn as the triangles the alternative text names, on the dosing day.
    dosing = markers(root, "dosing-phq-9")
    assert len(dosing) == 1 and dosing[0][0] == pytest.approx(x1)
    assert "triangles" in chart.alt and "18 on 27 Nov 2026" in chart.alt
    assert "cut-offs at 5, 10, 15, 20" in chart.alt


def test_a_long_course_chart_draws_its_dosing_days_in_one_path_and_no_bare_groups(app):
    """A 33-dosing course: each dosing day's dotted line stands at its triangle, all of
    them in one path, and matplotlib's bare wrapper groups (a third of the elements a PDF
    renderer must draw, drawing nothing) are gone; every group left draws or is named."""
    with app.app_context():
        start = date(2026, 1, 5)
        dosing_days = [start + timedelta(days=3 * i) for i in range(33)]
        series = charts.Series("PHQ-9", 27, outcomes.scale("PHQ-9")[1],
                               tuple((d - timedelta(days=1), 10 + i % 5)
                                     for i, d in enumerate(dosing_days)))
        chart = charts.outcome_chart([series], dosing_days, start, dosing_days[-1])
    root = ET.fromstring(chart.svg)
    triangles = [x for x, _ in markers(root, "dosing-phq-9")]
    assert len(triangles) == 33
    lines = path_numbers(_group(root, "dosing-days-phq-9"))
    assert len(lines) == 33 and len(list(_group(root, "dosing-days-phq-9").iter(
        f"{SVG}path"))) == 1
    top, bottom = y_extent(root, "plot-phq-9")
    for (a, b), x in zip(lines, triangles, strict=True):
        assert a[0] == pytest.approx(x) and b[0] == pytest.approx(x)  # upright, at the day
        assert sorted((a[1], b[1])) == pytest.approx([top, bottom])  # across the panel
    bare = [g.get("id") for g in root.iter(f"{SVG}g") if set(g.attrib) <= {"id"} and
            "-" not in (g.get("id") or "-")]
    assert bare == []
    assert len(list(root.iter())) < 300  # was 470 elements


def test_each_instrument_gets_its_own_axis_over_its_own_range(app):
    with app.app_context():
        days = [date(2026, 1, 5) + timedelta(days=d) for d in (0, 9, 30)]
        series = [charts.Series(m, outcomes.scale(m)[0], outcomes.scale(m)[1],
                                tuple(zip(days, values, strict=True)))
                  for m, values in (("GAD-7", (15, 9, 4)), ("PCL-5", (52, 40, 29)))]
        chart = charts.outcome_chart(series, [], days[0], days[-1])
    root = ET.fromstring(chart.svg)
    for key, series_, max_total in (("gad-7", series[0], 21), ("pcl-5", series[1], 80)):
        assert series_.max_total == max_total
        top, bottom = y_extent(root, f"plot-{key}")
        for (_, y), (_, total) in zip(markers(root, f"points-{key}"), series_.points,
                                      strict=True):
            assert y == pytest.approx(bottom - total / max_total * (bottom - top), abs=0.05)
    # PCL-5's cut-point band (31–33) is shaded.
    top, bottom = y_extent(root, "plot-pcl-5")
    assert y_extent(root, "band-pcl-5-1")[1] == pytest.approx(bottom - 31 / 80 * (bottom - top),
                                                              abs=0.05)


def emdr_answers(**extra):
    answers = {"sud_baseline": 8, "voc_baseline": 2,
               "bls_sets": [{"set_number": 1, "sud": None}, {"set_number": 2, "sud": 6},
                            {"set_number": 3, "sud": None}, {"set_number": 4, "sud": 3},
                            {"set_number": 5, "sud": 1}],
               "voc_before": 5, "voc_after": 6, "sud_end": 1}
    answers.update(extra)
    return answers


def test_emdr_chart_puts_sud_and_voc_on_honest_axes_and_points_only_where_measured():
    chart = charts.emdr_chart(emdr_answers())
    root = ET.fromstring(chart.svg)
    # Steps: assessment, set 2, set 4, set 5, installation, end (sets with no SUD are left out).
    sud, voc = markers(root, "points-sud"), markers(root, "points-voc")
    assert len(sud) == 5 and len(voc) == 3
    top, bottom = y_extent(root, "plot-sud")
    for (_, y), value in zip(sud, (8, 6, 3, 1, 1), strict=True):
        assert y == pytest.approx(bottom - value / 10 * (bottom - top), abs=0.05)
    top, bottom = y_extent(root, "plot-voc")
    for (_, y), value in zip(voc, (2, 5, 6), strict=True):  # VOC runs 1–7, not 0–7
        assert y == pytest.approx(bottom - (value - 1) / 6 * (bottom - top), abs=0.05)
    # No line through the sets where no VOC was taken: assessment's point stands alone,
    # installation joins the end.
    drawn = [s for s in path_numbers(_group(root, "line-voc")) if len(s) > 1]  # a lone
    assert [len(s) for s in drawn] == [2]  # moveto draws nothing
    assert drawn[0][0][0] == pytest.approx(voc[1][0])
    # The SUD axis is ticked in whole numbers (no 0.7, 1.4 …).
    labels = {t.text for t in root.iter(f"{SVG}text")}
    assert not any(re.fullmatch(r"\d\.\d", text or "") for text in labels)
    assert "SUD (0–10) through the session: 8 at assessment, 6 at Set 2" in chart.alt
    assert "VOC (1–7): 2 at assessment, 5 at installation, 6 at end" in chart.alt


def test_emdr_chart_is_not_drawn_for_a_single_measurement():
    assert charts.emdr_chart({"sud_baseline": 7}) is None
    assert charts.emdr_chart({"sud_baseline": 7, "voc_baseline": 3}) is None
    assert charts.emdr_chart({"sud_baseline": 7, "sud_end": 2}) is not None


def test_same_data_gives_the_same_chart():
    first = charts.emdr_chart(emdr_answers()).svg
    charts._emdr_chart_once.cache_clear()  # drawn again, not the kept one
    assert charts.emdr_chart(emdr_answers()).svg == first


def test_a_sessions_chart_is_drawn_once_however_often_it_prints(app, monkeypatch):
    """A signed EMDR session prints in every summary of its course: its chart is drawn the
    first time and kept (per language: its titles and alternative text are translated)."""
    drawn = []
    real = charts._emdr_chart
    monkeypatch.setattr(charts, "_emdr_chart", lambda *args: drawn.append(1) or real(*args))
    charts._emdr_chart_once.cache_clear()
    with app.app_context():
        first = charts.emdr_chart(emdr_answers())
        assert charts.emdr_chart(emdr_answers()) is first
        assert len(drawn) == 1
        assert charts.emdr_chart(emdr_answers(sud_end=2)) is not first  # other answers
        assert len(drawn) == 2
        app.config["CLINIC_LOCALE"] = "de"
        assert charts.emdr_chart(emdr_answers()) is not first
        assert len(drawn) == 3


def _svg_of(uri: str) -> ET.Element:
    return ET.fromstring(base64.b64decode(uri.split(",", 1)[1]))


def test_course_chart_counts_signed_measures_only_and_dates_cover_every_session(app):
    with app.app_context():
        load_demo()
        course = db.session.scalar(select(Course).where(Course.format == "intensive"))
        maya = db.session.scalar(select(User).where(User.username == "maya"))
        before = documents.build("summary", course)
        signed = [c for c in before.outcome_changes if c.measure == "PHQ-9"][0]
        phq_points = len(markers(_svg_of(before.outcome_chart), "points-phq-9"))
        # A draft PHQ-9 after the last session: not a result, not the "latest".
        last = max(s.session_date for s in course.sessions)
        later = TherapySession(course=course, kind=SessionKind.ASSESSMENT,
                               session_date=last + timedelta(days=14))
        db.session.add(later)
        db.session.flush()
        template = get_registry().latest("phq-9")
        notes.create_note(later, maya, template, {f"q{i}": 3 for i in range(1, 10)}, {})
        db.session.commit()
        db.session.expire_all()
        course = db.session.get(Course, course.id)
        after = documents.build("summary", course)
        still = [c for c in after.outcome_changes if c.measure == "PHQ-9"][0]
        assert still.latest == signed.latest
        assert len(markers(_svg_of(after.outcome_chart), "points-phq-9")) == phq_points
        # The cover's dates run to the added session, past the course's planned end.
        assert after.course_dates.endswith(f"{later.session_date:%d %b %Y}")
        assert f"{course.starts_on:%d %b %Y}" in after.course_dates
