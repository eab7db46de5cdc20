"""Scores in FHIR: read-only items computed by FHIRPath in the Questionnaire (SDC
``calculatedExpression``), and in a response the values kaptools itself computed.

A score of a template adds up, ranks or counts top-level rating items. In a response a
rating's answer is a Coding whose code is the number, so the expressions read
``code.toInteger()``. Each expression is empty (no answer) exactly when kaptools shows
the score as incomplete.
"""

from __future__ import annotations

import decimal
import json
from typing import Any

from ..modality.answers import Answers, ScoreResult, compute_scores
from ..modality.schema import Field, Flag, Score, Template
from .terms import EXT_CALCULATED_EXPRESSION, EXT_MAX_VALUE, InstrumentCodes, loinc, score_link_id

# ---------------------------------------------------------------------------
# FHIRPath


def _literal(value: Any) -> str:
    """A FHIRPath literal for a value a template compares an answer with."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format(decimal.Decimal(repr(value)), "f")  # never exponent notation
    # FHIRPath strings take the same escapes as JSON, in single quotes.
    return "'" + json.dumps(str(value), ensure_ascii=False)[1:-1].replace("'", "\\'") + "'"


def _answer(f: Field) -> str:
    """The answer to top-level field ``f`` in the response, as kaptools compares it."""
    path = f"%resource.repeat(item).where(linkId = {_literal(f.key)}).answer.value"
    if f.type == "scale":
        return path + ".code.toInteger()"
    if f.type in ("choice", "multichoice", "ref"):
        return path + ".code"
    return path


def _ratings(keys: tuple[str, ...]) -> str:
    ids = " | ".join(_literal(k) for k in keys)
    # toInteger() converts one item; select() applies it to each rating in turn.
    return (f"%resource.repeat(item).where(linkId in ({ids}))"
            ".answer.value.select(code.toInteger())")


def _condition(fields: dict[str, Field], flag: Flag) -> str:
    f = fields[flag.field]
    if flag.op == "gt":
        return f"{_answer(f)} > {_literal(flag.value)}"
    value = _literal(flag.value)
    if f.type == "date":
        value = f"@{flag.value}"
    elif f.type == "time":
        value = f"@T{flag.value}:00"
    return f"{_answer(f)} = {value}"


def _total(score: Score) -> str:
    ratings = _ratings(score.items)
    return (f"iif({ratings}.count() = {len(score.items)}, "
            f"{ratings}.aggregate($this + $total, 0), {{}})")


def _band(score: Score) -> str:
    ranked = "{}"
    for band in reversed(score.bands):
        ranked = (f"iif($this >= {band.min} and $this <= {band.max}, "
                  f"{_literal(band.label)}, {ranked})")
    return f"{_total(score)}.select({ranked})"


def _flags(score: Score, fields: dict[str, Field]) -> str:
    return " | ".join(f"iif({_condition(fields, flag)}, {_literal(flag.label)}, {{}})"
                      for flag in score.flags)


def _level(score: Score, fields: dict[str, Field]) -> str:
    ranked = _literal(score.otherwise) if score.otherwise else "{}"
    for level in reversed(score.levels):
        held = " or ".join(f"({_condition(fields, cond)})" for cond in level.any)
        ranked = f"iif({held}, {_literal(level.label)}, {ranked})"
    if not score.requires:
        return ranked
    answered = " and ".join(f"%resource.repeat(item).where(linkId = {_literal(k)})"
                            ".answer.exists()" for k in score.requires)
    return f"iif({answered}, {ranked}, {{}})"


def _rule(score: Score) -> str:
    met = " and ".join(f"({_ratings(cr.items)}.where($this >= {cr.rated_at_least}).count()"
                       f" >= {cr.count})" for cr in score.criteria)
    return (f"iif({_ratings(score.items)}.count() = {len(score.items)}, "
            f"iif({met}, {_literal(score.met)}, {_literal(score.not_met)}), {{}})")


def _calculated(expression: str) -> dict[str, Any]:
    return {"url": EXT_CALCULATED_EXPRESSION,
            "valueExpression": {"language": "text/fhirpath", "expression": expression}}


# ---------------------------------------------------------------------------
# Questionnaire items and response answers


def score_items(template: Template, codes: InstrumentCodes | None) -> list[dict[str, Any]]:
    """Read-only items for the template's scores: a total (with its band and flags, when
    it has them), or the level or rule reached."""
    fields = {f.key: f for f in template.fields}
    items: list[dict[str, Any]] = []
    for score in template.scores:
        if score.is_levels or score.is_criteria:
            expression = _level(score, fields) if score.is_levels else _rule(score)
            items.append(_read_only(score_link_id(score), score.label, "string", expression))
            continue
        total = _read_only(score_link_id(score), score.label, "integer", _total(score))
        total["extension"].append({"url": EXT_MAX_VALUE, "valueInteger": score.max_total})
        if codes is not None and score.key in codes.scores:
            total["code"] = [loinc(*codes.scores[score.key])]
        items.append(total)
        if score.bands:
            items.append(_read_only(score_link_id(score, "band"), f"{score.label}: band",
                                    "string", _band(score)))
        if score.flags:
            flags = _read_only(score_link_id(score, "flags"), f"{score.label}: flags",
                               "string", _flags(score, fields))
            flags["repeats"] = True
            items.append(flags)
    return items


def _read_only(link_id: str, text: str, item_type: str, expression: str) -> dict[str, Any]:
    return {"linkId": link_id, "text": text, "type": item_type, "readOnly": True,
            "extension": [_calculated(expression)]}


def score_answers(template: Template, answers: Answers) -> list[dict[str, Any]]:
    """Response items holding the scores kaptools computed from ``answers`` (a score that
    is incomplete has no answer and so no item)."""
    items: list[dict[str, Any]] = []
    for score, result in zip(template.scores, compute_scores(template, answers), strict=True):
        items.extend(_result_items(score, result))
    return items


def _result_items(score: Score, result: ScoreResult) -> list[dict[str, Any]]:
    if result.is_levels:
        return [_answered(score_link_id(score), result.label, [{"valueString": result.band}])
                ] if result.band else []
    found = []
    if result.total is not None:
        found.append(_answered(score_link_id(score), result.label,
                               [{"valueInteger": result.total}]))
    if result.band:
        found.append(_answered(score_link_id(score, "band"), f"{result.label}: band",
                               [{"valueString": result.band}]))
    if result.flags:
        found.append(_answered(score_link_id(score, "flags"), f"{result.label}: flags",
                               [{"valueString": flag} for flag in result.flags]))
    return found


def _answered(link_id: str, text: str, answer: list[dict[str, Any]]) -> dict[str, Any]:
    return {"linkId": link_id, "text": text, "answer": answer}
