"""Vital signs against the practice's own thresholds, lower and upper.

The thresholds are the practice's protocol, never kaptools' advice: with none configured,
nothing is marked and the printed record says that no thresholds are set. A value out of
range is marked with a symbol and a word ("▲ high", "▼ low"), so it reads in greyscale.

``VITALS_THRESHOLDS`` maps each measure to its limits, e.g.
``{"systolic": {"min": 90, "max": 160}, "spo2": {"min": 94}}``; the older flat keys
(``systolic_max``, ``heart_rate_max``, ``spo2_min``…) are read too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .i18n import _, _l

# Measure key (as in the dosing record's vitals rows) → label and unit.
MEASURES = {
    "systolic": (_l("Systolic BP"), "mmHg"),
    "diastolic": (_l("Diastolic BP"), "mmHg"),
    "hr": (_l("Heart rate"), _l("bpm")),
    "rr": (_l("Respiratory rate"), _l("breaths/min")),
    "spo2": ("SpO₂", "%"),
}
_ALIASES = {"heart_rate": "hr", "respiratory_rate": "rr", "resp_rate": "rr"}


@dataclass(frozen=True)
class Reading:
    value: Any
    status: str  # "ok", "high", "low" or "unset" (no threshold for this measure)

    @property
    def marker(self) -> str:
        if self.status == "high":
            return _("▲ high")
        return _("▼ low") if self.status == "low" else ""

    @property
    def out_of_range(self) -> bool:
        return self.status in ("high", "low")


def thresholds(config: Mapping[str, Any] | None) -> dict[str, dict[str, float]]:
    """The practice's limits per measure, from either spelling; bad entries are ignored."""
    limits: dict[str, dict[str, float]] = {}
    for key, value in (config or {}).items():
        if isinstance(value, Mapping):
            measure = _ALIASES.get(key, key)
            for bound in ("min", "max"):
                if _number(value.get(bound)):
                    limits.setdefault(measure, {})[bound] = value[bound]
        elif key.endswith(("_min", "_max")) and _number(value):
            measure, bound = key.rsplit("_", 1)
            measure = _ALIASES.get(measure, measure)
            limits.setdefault(measure, {})[bound] = value
    return {m: b for m, b in limits.items() if m in MEASURES}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check(measure: str, value: Any, limits: Mapping[str, Mapping[str, float]]) -> Reading:
    bounds = limits.get(measure)
    if not _number(value) or not bounds:
        return Reading(value, "unset" if not bounds else "ok")
    if "max" in bounds and value > bounds["max"]:
        return Reading(value, "high")
    if "min" in bounds and value < bounds["min"]:
        return Reading(value, "low")
    return Reading(value, "ok")


def describe(limits: Mapping[str, Mapping[str, float]]) -> str:
    """The practice's thresholds in words, for the printed key."""
    parts = []
    for measure, (label, unit) in MEASURES.items():
        bounds = limits.get(measure)
        if not bounds:
            continue
        if "min" in bounds and "max" in bounds:
            parts.append(_("%(measure)s %(min)s–%(max)s %(unit)s", measure=label,
                           min=format(bounds["min"], "g"), max=format(bounds["max"], "g"),
                           unit=unit))
        elif "max" in bounds:
            parts.append(_("%(measure)s up to %(max)s %(unit)s", measure=label,
                           max=format(bounds["max"], "g"), unit=unit))
        else:
            parts.append(_("%(measure)s from %(min)s %(unit)s", measure=label,
                           min=format(bounds["min"], "g"), unit=unit))
    return "; ".join(parts)


def baseline(answers: Mapping[str, Any]) -> dict[str, Any]:
    """The dosing record's baseline vitals, keyed like a row of readings."""
    return {"systolic": answers.get("baseline_systolic"),
            "diastolic": answers.get("baseline_diastolic"),
            "hr": answers.get("baseline_hr"), "spo2": answers.get("baseline_spo2"),
            "rr": answers.get("baseline_rr")}


def out_of_range(values: Mapping[str, Any],
                 limits: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Each value of one row of readings outside the practice's limits, in words."""
    out = []
    for measure, (label, unit) in MEASURES.items():
        reading = check(measure, values.get(measure), limits)
        if reading.out_of_range:
            out.append(_("%(measure)s %(value)s\u00a0%(unit)s (%(marker)s)", measure=label,
                         value=format(reading.value, "g"), unit=unit, marker=reading.marker))
    return out


def baseline_check(answers: Mapping[str, Any],
                   limits: Mapping[str, Mapping[str, float]]) -> tuple[str, list[str]]:
    """The go / no-go reading of the baseline vitals before dosing: ("go", []),
    ("review", [what is out of range]), ("incomplete", [what is missing]) or
    ("unset", []) when the practice has set no thresholds."""
    if not limits:
        return "unset", []
    found = baseline(answers)
    missing = [str(MEASURES[m][0]) for m in limits if m in found and found[m] is None]
    out = out_of_range(found, limits)
    if out:
        return "review", out
    if missing:
        return "incomplete", missing
    return "go", []
