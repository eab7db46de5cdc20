"""Hypothesis strategies: answers any shipped or clinic template accepts.

Generated answers are valid by construction (types, ranges, choices, row limits,
references to existing rows) and lean towards what breaks renderers: text at its
length limit, deeply nested Markdown, long runs of brackets, a row that points at
itself. ``answers_for(template)`` draws a draft's answers; normalise them with
``round_trip`` before storing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st

from kaptools.modality.schema import Field, Template
from kaptools.textcheck import text_problem

# Words, and the characters Markdown gives meaning to.
ALPHABET = st.sampled_from(list("abcdefghij klmnop ÄéßØ漢字🙂 ") +
                           list("[]()!*_`<>&#-+.:\\|~=\"'"))
ADVERSARIAL = [
    lambda n: "1. " * (n // 3),                              # ordered lists nested on a line
    lambda n: "+ " * (n // 2),                               # bullet lists nested on a line
    lambda n: "> " * (n // 2),                               # quotes inside quotes
    lambda n: "[" * n,                                       # an unclosed link, repeated
    lambda n: "![" * (n // 2),                               # unclosed images
    lambda n: "".join("\t" * i + "- x\n" for i in range(n)),  # tab-indented nesting
    lambda n: "*a " * (n // 3),                              # emphasis that never closes
    lambda n: "<b " * (n // 3),                              # raw HTML that never closes
]


def _fits(text: str, multiline: bool) -> str | None:
    text = text.replace("\r", "").strip()
    if not multiline:
        text = " ".join(text.split())
    if not text or text_problem(text, multiline=multiline):
        return None
    return text


def text_value(f: Field, multiline: bool) -> st.SearchStrategy[str]:
    limit = f.max_length or (20000 if multiline else 300)
    plain = st.text(ALPHABET, min_size=1, max_size=min(limit, 200))
    at_limit = st.text(ALPHABET, min_size=limit, max_size=limit).map(lambda s: s[:limit])
    options = [plain, at_limit]
    if multiline:
        options.append(st.sampled_from(ADVERSARIAL).map(lambda make: make(limit)[:limit]))
        options.append(st.sampled_from(ADVERSARIAL).map(lambda make: make(60)[:limit]))
    return st.one_of(options).map(lambda s: _fits(s[:limit], multiline)).filter(
        lambda s: s is not None)


def number_value(f: Field) -> st.SearchStrategy[Any]:
    lo = int(f.min) if f.min is not None else -10_000
    hi = int(f.max) if f.max is not None else 10_000
    if f.type == "decimal":
        scale = 10 ** f.places
        return st.integers(lo * scale, hi * scale).map(lambda n: round(n / scale, f.places))
    return st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi]))


def scalar(f: Field) -> st.SearchStrategy[Any]:
    if f.type in ("text", "longtext"):
        return text_value(f, multiline=f.type == "longtext")
    if f.type in ("integer", "decimal", "percent", "duration"):
        return number_value(f)
    if f.type == "scale":
        return st.sampled_from(f.scale.values())
    if f.type == "choice":
        return st.sampled_from([c.value for c in f.choices])
    if f.type == "multichoice":
        values = [c.value for c in f.choices]
        most = f.max_selected or len(values)
        return st.lists(st.sampled_from(values), min_size=1, max_size=most, unique=True).map(
            lambda picked: [v for v in values if v in picked])
    if f.type == "yesno":
        return st.booleans()
    if f.type == "date":
        return st.dates(dt.date(1990, 1, 1), dt.date(2040, 12, 31)).map(dt.date.isoformat)
    if f.type == "time":
        return st.times().map(lambda t: t.strftime("%H:%M"))
    raise ValueError(f.type)


ITEM_ID = st.from_regex(r"\A[a-f0-9]{8}\Z")


@st.composite
def _level(draw, fields: tuple[Field, ...], rows: dict[str, list[str]], max_rows: int,
           in_row: bool = False) -> dict:
    answers: dict[str, Any] = {}
    for f in fields:
        if f.type == "group":
            count = draw(st.one_of(st.integers(0, min(3, f.max_items)),
                                   st.just(min(f.max_items, max_rows))))
            ids = draw(st.lists(ITEM_ID, min_size=count, max_size=count, unique=True))
            if ids:
                rows[f.key] = ids
                answers[f.key] = [{"item_id": i, **draw(_level(f.fields, rows, max_rows,
                                                                 in_row=True))}
                                  for i in ids]
        elif f.type == "ref":
            continue  # filled once every group's rows exist
        elif draw(st.booleans()):
            answers[f.key] = draw(scalar(f))
    if in_row and not answers:
        # A row with no answer is a blank row, which is not kept: answer one field.
        first = next(f for f in fields if f.type not in ("group", "ref") and f.show_if is None)
        answers[first.key] = draw(scalar(first))
    return answers


def fit_choices_deep(fields: tuple[Field, ...], values: dict, top: dict,
                     enclosing: dict | None = None) -> None:
    """Once references are in place: options whose conditions look through a reference
    ("from_part.role") are swapped for one that fits, or dropped."""
    from kaptools.modality.answers import choice_fits

    for f in fields:
        if f.type == "group":
            for row in values.get(f.key, []):
                fit_choices_deep(f.fields, row, top, values)
        elif f.type in ("choice", "multichoice") and f.key in values:
            fits = [c.value for c in f.choices if choice_fits(c, values, top, enclosing)]
            chosen = values[f.key]
            if f.type == "choice" and chosen not in fits:
                if fits:
                    values[f.key] = fits[-1]
                else:
                    del values[f.key]
            elif f.type == "multichoice":
                kept = [v for v in chosen if v in fits]
                if kept:
                    values[f.key] = kept
                else:
                    del values[f.key]



def _fill_refs(draw, fields: tuple[Field, ...], answers: dict, rows: dict) -> None:
    for f in fields:
        if f.type == "ref" and rows.get(f.group) and draw(st.booleans()):
            answers[f.key] = draw(st.sampled_from(rows[f.group]))  # self-links included
        elif f.type == "group":
            for item in answers.get(f.key, []):
                _fill_refs(draw, f.fields, item, rows)


@st.composite
def answers_for(draw, template: Template, max_rows: int = 6) -> dict:
    """A draft's answers for ``template``: any subset of fields, rows up to ``max_rows``."""
    rows: dict[str, list[str]] = {}
    answers = draw(_level(template.fields, rows, max_rows))
    _fill_refs(draw, template.fields, answers, rows)
    fit_choices_deep(template.fields, answers, answers)
    return answers


def answers_at_limits(template: Template, longtext=lambda n: ("1. " * n)[:n]) -> dict:
    """Every field answered and every group full: the largest note the template allows."""
    rows: dict[str, list[str]] = {}

    def level(fields: tuple[Field, ...]) -> dict:
        out: dict[str, Any] = {}
        for f in fields:
            if f.type == "group":
                ids = [f"{len(rows):02x}{i:06x}" for i in range(f.max_items)]
                rows[f.key] = ids
                out[f.key] = [{"item_id": i, **level(f.fields)} for i in ids]
            elif f.type in ("text", "longtext"):
                limit = f.max_length or 300
                out[f.key] = longtext(limit) if f.type == "longtext" else \
                    ("Word " * limit)[:limit].strip()
            elif f.type in ("integer", "decimal", "percent", "duration"):
                out[f.key] = f.max if f.max is not None else 10_000
                if f.type != "decimal":
                    out[f.key] = int(out[f.key])
                else:
                    out[f.key] = float(out[f.key])
            elif f.type == "scale":
                out[f.key] = f.scale.max
            elif f.type == "choice":
                out[f.key] = f.choices[-1].value
            elif f.type == "multichoice":
                out[f.key] = [c.value for c in f.choices][:f.max_selected or None]
            elif f.type == "yesno":
                out[f.key] = True
            elif f.type == "date":
                out[f.key] = "2026-11-30"
            elif f.type == "time":
                out[f.key] = "23:59"
        return out

    answers = level(template.fields)

    def refs(fields: tuple[Field, ...], values: dict) -> None:
        for f in fields:
            if f.type == "ref" and rows.get(f.group):
                values[f.key] = rows[f.group][0]  # every reference to the first row
            elif f.type == "group":
                for item in values.get(f.key, []):
                    refs(f.fields, item)

    refs(template.fields, answers)
    fit_choices_deep(template.fields, answers, answers)
    return answers
