"""Dose arithmetic for the dosing record: a dose given in mg or in mg/kg, shown in both."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


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
        return f"{_fmt(dose, 2)} mg = {_fmt(dose / weight_kg, 2)} mg/kg at {_fmt(weight_kg, 1)} kg"
    if unit == "mg_per_kg":
        return f"{_fmt(dose, 2)} mg/kg = {_fmt(dose * weight_kg, 1)} mg at {_fmt(weight_kg, 1)} kg"
    return None
