"""Dose arithmetic for the dosing record: a dose given in mg or in mg/kg, shown in both."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .i18n import _


def _number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _fmt(value: float, places: int) -> str:
    text = f"{value:.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def dose_in_both_units(dose: Any, unit: Any, weight_kg: Any) -> str | None:
    """"34 mg (0.5 mg/kg at 68 kg)" from either unit; None without a dose or a weight."""
    if not _number(dose) or not _number(weight_kg) or weight_kg <= 0:
        return None
    dose, weight_kg = float(dose), float(weight_kg)
    if unit == "mg":
        return _("%(dose)s mg = %(per_kg)s mg/kg at %(weight)s kg", dose=_fmt(dose, 2),
                 per_kg=_fmt(dose / weight_kg, 2), weight=_fmt(weight_kg, 1))
    if unit == "mg_per_kg":
        return _("%(per_kg)s mg/kg = %(dose)s mg at %(weight)s kg", per_kg=_fmt(dose, 2),
                 dose=_fmt(dose * weight_kg, 1), weight=_fmt(weight_kg, 1))
    return None
