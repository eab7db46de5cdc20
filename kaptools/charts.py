"""Charts for paper and screen, drawn with matplotlib's SVG backend.

What a reader of a chart is owed, and what the tests check in the SVG:
- time on a true time axis: two sessions a week apart are a week apart on the page;
- every measure on its own axis over the instrument's whole range (PHQ-9 0–27, GAD-7 0–21,
  PCL-5 0–80; SUD 0–10 and VOC 1–7), with its cut-off bands shaded and the cut-offs ticked;
- a point only where something was measured, and a line only between neighbouring
  measurements;
- dosing sessions marked the way the alternative text describes them (triangles).

Each drawn element carries an id (``points-phq-9``, ``band-phq-9-2``, ``plot-phq-9``...),
so tests read the positions back from the SVG. Text stays text (``svg.fonttype: none``),
at 9 pt or more at the printed width, and the same data always gives the same bytes.
"""

from __future__ import annotations

import base64
import io
import re
import threading
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from . import timeutil
from .i18n import _, words_key
from .modality.schema import Band  # an instrument's band: min, max (totals) and label

# The printed width of a chart (print.css: .chart max-width 170 mm) in inches: text sizes
# below are true point sizes on paper.
WIDTH_IN = 6.69
FONT_PT = 9.0  # DejaVu Sans at 9 pt reads like the body text at 9.6 pt
INK = "#1f2a33"
MUTED = "#5b6770"
SERIES = {"GAD-7": "#2f6b5e", "PHQ-9": "#7a4fa0", "PCL-5": "#b5542d",
          "PCL-5 (past week)": "#8a5a00"}
# Cut-off bands, from the lowest band to the highest: light to darker warm tints.
BAND_TINTS = ("#f4f8f5", "#fbf6e6", "#fcefdc", "#fbe3d3", "#f8d6d0", "#f4c9c9")
SUD_COLOUR, VOC_COLOUR = "#b3261e", "#2f6b5e"


@dataclass(frozen=True)
class Series:
    """One instrument's measurements: (date, total) in time order."""
    measure: str
    max_total: int
    bands: tuple[Band, ...]
    points: tuple[tuple[date, int], ...]
    note: str = ""  # e.g. "response · remission"


@dataclass(frozen=True)
class Chart:
    svg: bytes
    alt: str

    @property
    def uri(self) -> str:
        return svg_data_uri(self.svg)


def svg_data_uri(svg: bytes) -> str:
    """An SVG drawing as a data URI, for an <img> on a page or in print."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _figure(height_in: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(WIDTH_IN, height_in), dpi=72)


# matplotlib's settings (rc_context) are process-wide: one chart is drawn at a time, so a
# chart drawn in a web request never sees another thread's settings half-restored.
_LOCK = threading.Lock()


def _render(fig) -> bytes:
    import matplotlib

    out = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "kaptools",
                                "svg.id": None}):
        fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    return _without_bare_groups(out.getvalue())


SVG_NS, XLINK_NS = "http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"
# The ids matplotlib gives the groups it wraps every artist in (figure_1, line2d_12,
# xtick_3, matplotlib.axis_1...); ours (set_gid: "points-phq-9") always have a hyphen.
_MATPLOTLIB_ID = re.compile(r"[A-Za-z0-9.]+_[0-9]+", re.ASCII)


def _without_bare_groups(svg: bytes) -> bytes:
    """The SVG with matplotlib's bare groups (a <g> with nothing but its own id, which no
    reference names) replaced by what they hold. They were a third or more of a chart's
    elements, and the PDF's layout engine draws each element in Python, a group costing
    about as much as a shape. Nothing drawn changes (the printed pages are the same to the
    pixel)."""
    from xml.etree import ElementTree as ET

    group = f"{{{SVG_NS}}}g"
    root = ET.fromstring(svg)

    def flatten(parent) -> None:
        kept = []
        for child in parent:
            flatten(child)
            if child.tag == group and child.attrib.keys() == {"id"} and \
                    _MATPLOTLIB_ID.fullmatch(child.get("id")):
                kept.extend(child)
            else:
                kept.append(child)
        parent[:] = kept

    flatten(root)
    # Written as matplotlib wrote it: SVG the default namespace, "xlink" for links (not
    # ElementTree's ns0 and ns1; its default_namespace option refuses the unprefixed
    # attributes every SVG has). The prefixes are process-wide; nothing else here writes
    # XML with ElementTree.
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _style_axes(ax) -> None:
    ax.tick_params(labelsize=FONT_PT, colors=INK, length=3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(MUTED)


def _font():
    return {"family": ["DejaVu Sans", "sans-serif"], "size": FONT_PT}


def band_ranges(bands: tuple[Band, ...], max_total: int) -> list[tuple[float, float, Band]]:
    """Where each band is shaded: from its lowest total up to the next band's (a total of
    10 sits on the cut-off line of the band that starts at 10)."""
    ordered = sorted(bands, key=lambda b: b.min)
    return [(b.min, ordered[i + 1].min if i + 1 < len(ordered) else max_total, b)
            for i, b in enumerate(ordered)]


def outcome_chart(series: list[Series], dosing_days: list[date],
                  first: date, last: date) -> Chart | None:
    """One panel per instrument, stacked, sharing a time axis from ``first`` to ``last``."""
    series = [s for s in series if s.points]
    if not series:
        return None
    with _LOCK:
        return _outcome_chart(series, dosing_days, first, last)


def _outcome_chart(series: list[Series], dosing_days: list[date],
                   first: date, last: date) -> Chart:
    import matplotlib.dates as mdates
    from matplotlib import rc_context
    from matplotlib.ticker import FuncFormatter

    first = min([first] + [d for s in series for d, _ in s.points])
    last = max([last] + [d for s in series for d, _ in s.points] + list(dosing_days))
    pad = max(1, (last - first).days // 30)
    x_lo, x_hi = first - timedelta(days=pad), last + timedelta(days=pad)
    with rc_context({"font.family": _font()["family"], "font.size": FONT_PT}):
        fig = _figure(0.5 + 1.2 * len(series))
        axes = fig.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
        # Room on the right for the band names, outside the plotted data.
        fig.subplots_adjust(left=0.065, right=0.8, top=1 - 0.3 / fig.get_figheight(),
                            bottom=0.3 / fig.get_figheight(), hspace=0.5)
        for ax, s in zip(axes, series, strict=True):
            key = slug(s.measure)
            ax.set_gid(f"axes-{key}")
            ax.patch.set_gid(f"plot-{key}")
            _style_axes(ax)
            ax.set_xlim(x_lo, x_hi)
            ax.set_ylim(0, s.max_total)
            ranges = band_ranges(s.bands, s.max_total)
            ax.set_yticks(sorted({0, s.max_total} | {int(lo) for lo, _, _ in ranges}))
            for i, (lo, hi, band) in enumerate(ranges):
                ax.axhspan(lo, hi, color=BAND_TINTS[min(i, len(BAND_TINTS) - 1)], lw=0,
                           zorder=0, gid=f"band-{key}-{i}")
                if i:
                    ax.axhline(lo, color="#9aa5ad", lw=0.6, zorder=1, gid=f"cutoff-{key}-{i}")
                # Label the band where the label fits inside it (the caption lists all).
                height_pt = (hi - lo) / s.max_total * ax.get_position().height * \
                    fig.get_figheight() * 72
                if height_pt >= FONT_PT * 1.2:
                    ax.text(1.01, (lo + hi) / 2, band.label, transform=ax.get_yaxis_transform(),
                            ha="left", va="center", fontsize=FONT_PT, color=MUTED,
                            clip_on=False)
            # Every dosing day's dotted line in one path (a line each was 33 elements more
            # to draw in a long course), from the bottom of the panel to its top.
            if dosing_days:
                xs, ys = [], []
                for day in mdates.date2num(dosing_days):
                    xs += [day, day, float("nan")]
                    ys += [0, 1, float("nan")]
                ax.plot(xs, ys, transform=ax.get_xaxis_transform(), color="#c98a2b", lw=0.8,
                        ls=(0, (2, 2)), zorder=1, gid=f"dosing-days-{key}")
            ax.plot([day for day in dosing_days], [s.max_total] * len(dosing_days),
                    ls="none", marker="v", ms=7, color="#c98a2b", clip_on=False, zorder=4,
                    gid=f"dosing-{key}")
            xs = [d for d, _ in s.points]
            ys = [v for _, v in s.points]
            colour = SERIES.get(s.measure, INK)
            ax.plot(xs, ys, color=colour, lw=1.8, marker="o", ms=5.5, zorder=5,
                    gid=f"points-{key}")
            title = (_("%(measure)s (0–%(max)s): %(first)s → %(last)s", measure=s.measure,
                       max=s.max_total, first=ys[0], last=ys[-1]) if len(ys) > 1 else
                     _("%(measure)s (0–%(max)s)", measure=s.measure, max=s.max_total))
            if s.note:
                title = _("%(title)s · %(note)s", title=title, note=s.note)
            ax.set_title(title, loc="left", fontsize=FONT_PT + 0.5, color=INK,
                         fontweight="bold", pad=8)
        locator = mdates.AutoDateLocator(minticks=3, maxticks=9)
        axes[-1].xaxis.set_major_locator(locator)
        axes[-1].xaxis.set_major_formatter(FuncFormatter(_tick_day))
        svg = _render(fig)
    return Chart(svg, _outcome_alt(series, dosing_days))


def _tick_day(x: float, _pos=None) -> str:
    """A date tick as the clinic writes it ("3 Nov"), month names in its language."""
    import matplotlib.dates as mdates

    return timeutil.day(mdates.num2date(x).date(), "d MMM")


def _day(d: date) -> str:
    return timeutil.day(d, "d MMM y")


def _outcome_alt(series: list[Series], dosing_days: list[date]) -> str:
    parts = []
    for s in series:
        values = ", ".join(_("%(value)s on %(day)s", value=v, day=_day(d)) for d, v in s.points)
        cut = ", ".join(str(b.min) for b in sorted(s.bands, key=lambda b: b.min)[1:])
        text = (_("%(measure)s (0–%(max)s; cut-offs at %(cutoffs)s): %(values)s",
                  measure=s.measure, max=s.max_total, cutoffs=cut, values=values) if cut else
                _("%(measure)s (0–%(max)s): %(values)s", measure=s.measure, max=s.max_total,
                  values=values))
        parts.append(_("%(text)s (%(note)s)", text=text, note=s.note) if s.note else text)
    if dosing_days:
        parts.append(_("dosing sessions, marked with triangles along the top: %(days)s",
                       days=", ".join(_day(d) for d in dosing_days)))
    return _("Outcome measures over time. %(measures)s.", measures="; ".join(parts))


@dataclass(frozen=True)
class Step:
    label: str
    sud: int | None
    voc: int | None


def emdr_steps(answers: dict[str, Any]) -> list[Step]:
    """The session's measurements in order: assessment, each set's SUD check, installation,
    end. A step appears only where something was measured."""
    steps = []
    if answers.get("sud_baseline") is not None or answers.get("voc_baseline") is not None:
        steps.append(Step(_("Assessment"), answers.get("sud_baseline"),
                          answers.get("voc_baseline")))
    for i, item in enumerate(answers.get("bls_sets") or []):
        if isinstance(item, dict) and item.get("sud") is not None:
            steps.append(Step(_("Set %(number)s", number=item.get("set_number") or i + 1),
                              item["sud"], None))
    if answers.get("voc_before") is not None:
        steps.append(Step(_("Installation"), None, answers["voc_before"]))
    if answers.get("voc_after") is not None or answers.get("sud_end") is not None:
        steps.append(Step(_("End"), answers.get("sud_end"), answers.get("voc_after")))
    return steps


def emdr_chart(answers: dict[str, Any]) -> Chart | None:
    """SUD (0–10) above, VOC (1–7) below, on the same sequence of steps; drawn when some
    measure was taken at least twice."""
    steps = emdr_steps(answers)
    suds = [(i, s.sud) for i, s in enumerate(steps) if s.sud is not None]
    vocs = [(i, s.voc) for i, s in enumerate(steps) if s.voc is not None]
    if max(len(suds), len(vocs)) < 2:
        return None
    return _emdr_chart_once(tuple(steps), words_key())


@lru_cache(maxsize=128)
def _emdr_chart_once(steps: tuple[Step, ...], words: tuple[str, str]) -> Chart:
    """A signed session's chart never changes: it is drawn once per process and language,
    not again for every document that prints the session (``words``: see ``words_key``)."""
    suds = [(i, s.sud) for i, s in enumerate(steps) if s.sud is not None]
    vocs = [(i, s.voc) for i, s in enumerate(steps) if s.voc is not None]
    with _LOCK:
        return _emdr_chart(list(steps), suds, vocs)


def _emdr_chart(steps: list[Step], suds: list[tuple[int, int]],
                vocs: list[tuple[int, int]]) -> Chart:
    from matplotlib import rc_context

    with rc_context({"font.family": _font()["family"], "font.size": FONT_PT}):
        fig = _figure(2.9)
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(10, 6))
        for ax, key, label, lo, hi, found, colour in (
                (top, "sud", "SUD (0–10)", 0, 10, suds, SUD_COLOUR),
                (bottom, "voc", "VOC (1–7)", 1, 7, vocs, VOC_COLOUR)):
            ax.set_gid(f"axes-{key}")
            ax.patch.set_gid(f"plot-{key}")
            _style_axes(ax)
            ax.set_ylim(lo, hi)
            ax.set_yticks(range(lo, hi + 1, 2 if hi - lo > 6 else 1))
            ax.set_xlim(-0.5, len(steps) - 0.5)
            ax.grid(axis="y", color="#e3e7ea", lw=0.6)
            ax.set_ylabel(label, fontsize=FONT_PT, color=INK)
            # A line joins neighbouring measurements only; a gap stays a gap.
            ys = [float("nan")] * len(steps)
            for i, v in found:
                ys[i] = v
            ax.plot(range(len(steps)), ys, color=colour, lw=1.8, zorder=4, gid=f"line-{key}")
            ax.plot([i for i, _ in found], [v for _, v in found], ls="none", marker="o",
                    ms=5.5, color=colour, clip_on=False, zorder=5, gid=f"points-{key}")
        bottom.set_xticks(range(len(steps)), [s.label for s in steps],
                          rotation=35 if len(steps) > 8 else 0,
                          ha="right" if len(steps) > 8 else "center")
        fig.subplots_adjust(left=0.1, right=0.98, top=0.96,
                            bottom=0.28 if len(steps) > 8 else 0.12, hspace=0.18)
        svg = _render(fig)
    return Chart(svg, _emdr_alt(steps))


def _emdr_alt(steps: list[Step]) -> str:
    # The steps named within a sentence ("6 at end"); a set keeps its label ("at Set 2").
    within = {_("Assessment"): _("assessment"), _("Installation"): _("installation"),
              _("End"): _("end")}

    def listed(attr: str) -> str:
        found = [_("%(value)s at %(step)s", value=getattr(s, attr),
                   step=within.get(s.label, s.label))
                 for s in steps if getattr(s, attr) is not None]
        return ", ".join(found) or _("not measured")

    return _("SUD (0–10) through the session: %(sud)s. VOC (1–7): %(voc)s.",
             sud=listed("sud"), voc=listed("voc"))
