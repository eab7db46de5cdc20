"""De-identified research export: one CSV per template, a data dictionary and a README,
in one ZIP built in memory.

What leaves, and what never does:

* Signed notes only: no drafts, nothing entered in error, nothing discarded. Private
  (psychotherapy) fields never; free text (``text`` and ``longtext`` fields) only when
  asked for. Addenda, reviews, comments, session summaries, course titles and intentions
  are not part of it.
* Clients appear as **study ids**: random per export (``secrets``), never derived from the
  client's id or code, the same for one client across the files of one export and
  different in every other export.
* **No calendar date**. Every date of a client (session days, signing days, date answers)
  is written as a day number: days from that client's first session in kaptools (day 0),
  negative before it. This is a per-client date shift that maps the first session to
  day 0; intervals stay exact. A random calendar shift (REDCap's way) was not chosen:
  a shifted date looks like a real one, can land on another real date, and a reader
  cannot tell them apart; day numbers carry the same intervals and no calendar at all.
* Structured columns only ever hold values of their declared type (a number, a choice
  code, ``HH:MM``); anything else stored there is left out rather than written.
* Cells are formula-safe: a text cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a
  carriage return (or their full-width forms) gets a leading apostrophe, as OWASP's CSV
  injection guidance says. Numbers are written as numbers, so a negative day number or
  value stays a number.

Repeating groups go to files of their own (``<slug>.<group>.csv``, one row per row of the
group, joined to their note by ``note_no``); the note's file holds ``<group>_rows``, the
number of rows. A multiple choice becomes one 0/1 column per option (REDCap's
``field___code``). Scores computed by kaptools (totals, bands, flags, triage levels) are
extra ``score_*`` columns. Every column is described in ``data_dictionary.csv``.
"""

from __future__ import annotations

import csv
import io
import math
import re
import secrets
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import func, select

from ..extensions import db
from ..modality import get_registry
from ..modality.answers import ScoreResult, as_date, compute_scores
from ..modality.schema import Field, Score, Template
from ..models import Client, Course, Note, NoteState, SessionKind, TherapySession
from ..notes import content_hash
from ..timeutil import clinic_zone

FREE_TEXT_TYPES = frozenset({"text", "longtext"})
# OWASP CSV injection: cells a spreadsheet may read as a formula (full-width forms too,
# which some spreadsheets fold to the ASCII ones).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
DICTIONARY_COLUMNS = ("variable", "form", "section", "type", "label", "choices", "validation",
                      "min", "max", "unit", "identifier", "note")
STUDY_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
# Every file in the ZIP carries this time, so not even the archive holds a real date.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
TIME_RE = re.compile(r"^[0-2][0-9]:[0-5][0-9]$")
SESSION_KIND_CHOICES = tuple((kind.value, kind.value.capitalize()) for kind in SessionKind)


def neutralise(value: Any) -> str:
    """One CSV cell: numbers as numbers, text with a leading apostrophe when a
    spreadsheet could take it for a formula, nothing as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _number(value: float) -> str:
    """A float as plain digits (never 1e-07, never nan)."""
    if not math.isfinite(value):
        return ""
    if value.is_integer():
        return str(int(value))
    return format(Decimal(repr(value)), "f")


# ---------------------------------------------------------------------------
# Columns: what each file holds, described once for the data dictionary.


@dataclass
class Column:
    """One column of one file, with its data-dictionary entry and how to fill it."""

    name: str
    type: str
    label: str
    get: Callable[[dict[str, Any], _Row], Any]
    section: str = ""
    choices: str = ""
    validation: str = ""
    min: str = ""
    max: str = ""
    unit: str = ""
    identifier: bool = False
    note: str = ""


@dataclass
class _Row:
    """What a value needs besides the answers at its level: the note's context."""

    study_id: str
    note_no: int
    day0: date
    version: int
    refs: dict[str, int]  # item_id -> row_no within its group
    parent_row: int | None = None
    row_no: int | None = None


@dataclass
class _Var:
    """A field across the template's versions present in the export (by version)."""

    name: str
    fields: dict[int, Field]
    section: str

    @property
    def newest(self) -> Field:
        return self.fields[max(self.fields)]


@dataclass
class _Form:
    """One CSV file: a template's notes, or the rows of one of its repeating groups."""

    name: str
    columns: list[Column] = field(default_factory=list)
    groups: list[tuple[_Var, _Form]] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)

    def add(self, column: Column) -> None:
        taken = {c.name for c in self.columns}
        base, n = column.name, 2
        while column.name in taken:
            column.name = f"{base}_{n}"
            n += 1
        self.columns.append(column)

    def write(self, values: dict[str, Any] | None, row: _Row) -> None:
        self.rows.append([neutralise(c.get(values or {}, row)) for c in self.columns])


def _choices(pairs: Iterable[tuple[Any, str]]) -> str:
    return " | ".join(f"{value}, {label}" for value, label in pairs)


def _signature(f: Field) -> tuple:
    """What must stay the same for two versions' fields to share a column."""
    scale = (f.scale.min, f.scale.max) if f.scale else None
    return (f.type, scale)


def _merge(levels: dict[int, Sequence[tuple[str, Field]]], free_text: bool) -> list[_Var]:
    """The exported fields of one level (a template, or a group) across versions, newest
    version's order first; a key whose type changed between versions gets a column per
    meaning (``key_v1``)."""
    found: list[_Var] = []
    by_key: dict[str, _Var] = {}
    for version in sorted(levels, reverse=True):
        for section, f in levels[version]:
            if f.audience == "private" or (f.type in FREE_TEXT_TYPES and not free_text):
                continue
            known = by_key.get(f.key)
            if known is not None and _signature(known.newest) == _signature(f):
                known.fields[version] = f
                continue
            var = _Var(f.key if known is None else f"{f.key}_v{version}", {version: f}, section)
            if known is None:
                by_key[f.key] = var
            found.append(var)
    return found


def _field_at(var: _Var, row: _Row) -> Field | None:
    return var.fields.get(row.version)


def _scalar(f: Field, value: Any, row: _Row) -> Any:
    """A stored answer as its column holds it; None for anything not of its type."""
    if value is None:
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if f.type in FREE_TEXT_TYPES:
        return value if isinstance(value, str) else None
    if f.type in ("integer", "percent", "duration", "scale"):
        return value if number and float(value).is_integer() else None
    if f.type == "decimal":
        return value if number and math.isfinite(value) else None
    if f.type == "yesno":
        return int(value) if isinstance(value, bool) else None
    if f.type == "date":
        day = as_date(value)
        return (day - row.day0).days if day is not None else None
    if f.type == "time":
        return value if isinstance(value, str) and TIME_RE.match(value) else None
    if f.type == "choice":
        return value if any(c.value == value for c in f.choices) else None
    if f.type == "ref":
        return row.refs.get(str(value))
    return None


def _described(var: _Var, form: str) -> dict[str, str]:
    """The dictionary entry of a one-column field."""
    f = var.newest
    out = {"type": "text", "validation": "", "min": "", "max": "", "unit": f.unit,
           "choices": "", "note": ""}
    if f.type == "text":
        out["note"] = "Free text as typed; may name people or places."
    elif f.type == "longtext":
        out.update(type="notes", note="Free text as typed (Markdown); may name people or "
                                      "places.")
    elif f.type in ("integer", "duration", "percent"):
        out["validation"] = "integer"
    elif f.type == "decimal":
        out["validation"] = "number"
    elif f.type == "scale" and f.scale is not None:
        anchors = dict(f.scale.anchors)
        values = f.scale.values()
        if len(values) <= 11:
            out.update(type="radio", choices=_choices(
                (v, f"{v} {anchors[v]}" if v in anchors else str(v)) for v in values))
        else:
            out.update(type="slider", choices=_choices(sorted(anchors.items())))
        out["validation"] = "integer"
        out["note"] = f"Rating on the {f.scale.name} scale."
    elif f.type == "yesno":
        out.update(type="yesno", choices="1, Yes | 0, No")
    elif f.type == "date":
        out.update(validation="integer", note="Day number: days from the client's first "
                                              "session (day 0); negative before it.")
    elif f.type == "time":
        out.update(validation="time", note="Time of day, HH:MM (clinic time).")
    elif f.type == "choice":
        out.update(type="dropdown" if f.widget == "select" else "radio",
                   choices=_choices(_union_choices(var)))
    elif f.type == "ref":
        out.update(validation="integer",
                   note=f"row_no of the row it points to in {form}.{f.group}.csv.")
    if f.type in ("integer", "decimal", "duration", "percent", "scale"):
        out["min"] = _number(float(f.min)) if f.min is not None else ""
        out["max"] = _number(float(f.max)) if f.max is not None else ""
    return out


def _union_choices(var: _Var) -> list[tuple[str, str]]:
    """Every option of a choice field, newest version's order and labels first."""
    seen: dict[str, str] = {}
    for version in sorted(var.fields, reverse=True):
        for choice in var.fields[version].choices:
            seen.setdefault(choice.value, choice.label)
    return list(seen.items())


def _code_name(value: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", value.lower()).strip("_") or "option"


def _add_fields(form: _Form, variables: list[_Var], free_text: bool, slug: str) -> None:
    """Columns (and group files) for the fields of one level."""
    for var in variables:
        f = var.newest
        if f.type == "group":
            form.add(Column(f"{var.name}_rows", "text", f"{f.label}: number of rows",
                            _group_count(var), section=var.section, validation="integer",
                            min="0", note=f"Rows are in {form.name}.{var.name}.csv."))
            child = _Form(f"{form.name}.{var.name}")
            _group_columns(child, nested=form.name != slug)
            _add_fields(child, _merge({v: [(var.section, s) for s in g.fields]
                                       for v, g in var.fields.items()}, free_text),
                        free_text, slug)
            form.groups.append((var, child))
        elif f.type == "multichoice":
            for value, label in _union_choices(var):
                form.add(Column(f"{var.name}___{_code_name(value)}", "checkbox",
                                f"{f.label}: {label}", _option(var, value),
                                section=var.section, choices="1, Chosen | 0, Not chosen",
                                note=f"Option {value!r} of {var.name}."))
        else:
            entry = _described(var, slug)
            form.add(Column(var.name, entry.pop("type"), f.label, _value(var),
                            section=var.section, identifier=f.type in FREE_TEXT_TYPES,
                            **entry))


def _value(var: _Var) -> Callable[[dict[str, Any], _Row], Any]:
    def get(values: dict[str, Any], row: _Row) -> Any:
        f = _field_at(var, row)
        return _scalar(f, values.get(f.key), row) if f is not None else None
    return get


def _option(var: _Var, option: str) -> Callable[[dict[str, Any], _Row], Any]:
    def get(values: dict[str, Any], row: _Row) -> Any:
        f = _field_at(var, row)
        if f is None or not any(c.value == option for c in f.choices):
            return None  # the note's version did not offer it
        chosen = values.get(f.key)
        return int(isinstance(chosen, list) and option in chosen)
    return get


def _group_count(var: _Var) -> Callable[[dict[str, Any], _Row], Any]:
    def get(values: dict[str, Any], row: _Row) -> Any:
        f = _field_at(var, row)
        if f is None:
            return None
        items = values.get(f.key)
        return len([i for i in items if isinstance(i, dict)]) if isinstance(items, list) else 0
    return get


def _fixed(name: str, type_: str, label: str, get: Callable[[_Row], Any], **entry: Any
           ) -> Column:
    return Column(name, type_, label, lambda values, row: get(row), **entry)


STUDY_ID_NOTE = ("Random per export: the same client has the same study id in every file of "
                 "this export, and a different one in any other export.")


def _group_columns(form: _Form, nested: bool) -> None:
    form.add(_fixed("study_id", "text", "Study id", lambda r: r.study_id, note=STUDY_ID_NOTE))
    form.add(_fixed("note_no", "text", "Note", lambda r: r.note_no, validation="integer",
                    note="note_no of the note in the template's file."))
    if nested:
        form.add(_fixed("parent_row_no", "text", "Row of the enclosing group",
                        lambda r: r.parent_row, validation="integer"))
    form.add(_fixed("row_no", "text", "Row", lambda r: r.row_no, validation="integer",
                    min="1", note="Position of the row in the note, from 1."))


@dataclass
class _Note:
    """A signed note as the export reads it (plain values, no ORM object)."""

    note_id: int
    client_id: int
    template: Template
    answers: dict[str, Any]
    day: int
    signed_day: int | None
    course_no: int
    kind: str
    day0: date
    study_id: str = ""
    _scores: dict[str, ScoreResult] | None = None

    @property
    def scores(self) -> dict[str, ScoreResult]:
        """The template's scores of this note, computed once."""
        if self._scores is None:
            self._scores = {r.key: r for r in compute_scores(self.template, self.answers)}
        return self._scores


def _note_columns(form: _Form, variables: list[_Var], scores: list[Score],
                  free_text: bool, slug: str) -> dict[int, _Note]:
    """The columns of a template's file; returns where each row's context is kept."""
    context: dict[int, _Note] = {}

    def of(row: _Row) -> _Note:
        return context[row.note_no]

    form.add(_fixed("study_id", "text", "Study id", lambda r: r.study_id, note=STUDY_ID_NOTE))
    form.add(_fixed("note_no", "text", "Note", lambda r: r.note_no, validation="integer",
                    min="1", note="Number of the note in this file; rows of its repeating "
                                  "groups carry the same note_no."))
    form.add(_fixed("course_no", "text", "Course", lambda r: of(r).course_no,
                    validation="integer", min="1",
                    note="The client's course of treatment, 1 for the first (counted over "
                         "all the client's courses)."))
    form.add(_fixed("day", "text", "Day of the session", lambda r: of(r).day,
                    validation="integer", note="Days from the client's first session "
                                               "(day 0)."))
    form.add(_fixed("signed_day", "text", "Day the note was signed",
                    lambda r: of(r).signed_day, validation="integer",
                    note="Days from the client's first session (day 0), in clinic time."))
    form.add(_fixed("session_kind", "dropdown", "Kind of session", lambda r: of(r).kind,
                    choices=_choices(SESSION_KIND_CHOICES)))
    form.add(_fixed("template_version", "text", "Template version", lambda r: r.version,
                    validation="integer", min="1",
                    note="The version of the template the note was written in; a field "
                         "absent from that version is empty."))
    _add_fields(form, variables, free_text, slug)
    for score in scores:
        _score_columns(form, score, of)
    return context


def _score_columns(form: _Form, score: Score, of: Callable[[_Row], _Note]) -> None:
    def result(row: _Row) -> ScoreResult | None:
        return of(row).scores.get(score.key)

    base = f"score_{score.key}"
    note = "Computed by kaptools from the answers; empty until every item is answered."
    if score.is_levels or score.is_criteria:
        labels = [lv.label for lv in score.levels] + ([score.otherwise] if score.otherwise
                                                       else [])
        if score.is_criteria:
            labels = [score.met, score.not_met]
        form.add(_fixed(base, "text", score.label,
                        lambda r: getattr(result(r), "band", None),
                        choices=_choices((label, label) for label in labels), note=note))
        return
    form.add(_fixed(base, "calc", score.label, lambda r: getattr(result(r), "total", None),
                    validation="integer", min="0", max=str(score.max_total),
                    note=note + " Sum of " + ", ".join(score.items) + "."))
    if score.bands:
        form.add(_fixed(f"{base}_band", "text", f"{score.label}: band",
                        lambda r: getattr(result(r), "band", None),
                        choices=_choices((b.label, f"{b.label} ({b.min}–{b.max})")
                                         for b in score.bands), note=note))
    if score.flags:
        form.add(_fixed(f"{base}_flags", "text", f"{score.label}: flags raised",
                        lambda r: "; ".join(getattr(result(r), "flags", ())) or None,
                        choices=_choices((fl.label, fl.label) for fl in score.flags),
                        note="Labels of the flags the answers raise, separated by '; '."))


def _merged_scores(templates: dict[int, Template]) -> list[Score]:
    seen: dict[str, Score] = {}
    for version in sorted(templates, reverse=True):
        for score in templates[version].scores:
            seen.setdefault(score.key, score)
    return list(seen.values())


# ---------------------------------------------------------------------------
# Reading the record.


@dataclass(frozen=True)
class ResearchExport:
    """A finished export: the ZIP and what the audit trail records about it."""

    export_id: str
    data: bytes
    templates: tuple[str, ...]
    free_text: bool
    notes: dict[str, int]
    client_ids: tuple[int, ...]
    left_out: dict[str, int]
    files: tuple[str, ...]

    @property
    def note_count(self) -> int:
        return sum(self.notes.values())

    @property
    def filename(self) -> str:
        return f"kaptools-research-{self.export_id}.zip"

    def audit_detail(self, reason: str) -> dict[str, Any]:
        """Who is added by the audit record; this is what and why."""
        return {"export_id": self.export_id, "templates": list(self.templates),
                "free_text": self.free_text, "reason": reason, "notes": self.note_count,
                "notes_by_template": self.notes, "clients": len(self.client_ids),
                "client_ids": list(self.client_ids), "left_out": self.left_out,
                "files": list(self.files)}


def signed_note_counts() -> dict[str, int]:
    """Signed notes per template slug (what the export page offers)."""
    rows = db.session.execute(
        select(Note.modality, func.count(Note.id))
        .join(TherapySession, Note.session_id == TherapySession.id)
        .join(Course, TherapySession.course_id == Course.id)
        .where(Note.state == NoteState.SIGNED).group_by(Note.modality))
    return {slug: count for slug, count in rows}


class _StudyIds:
    """Random study ids, one per client, unique in the export and never a client code."""

    def __init__(self) -> None:
        self.by_client: dict[int, str] = {}
        self.codes = {code.upper() for code in db.session.scalars(select(Client.code))}

    def __call__(self, client_id: int) -> str:
        if client_id not in self.by_client:
            taken = set(self.by_client.values()) | self.codes
            while (made := "".join(secrets.choice(STUDY_ID_ALPHABET)
                                   for _ in range(8))) in taken:
                pass
            self.by_client[client_id] = made
        return self.by_client[client_id]


def _timelines() -> tuple[dict[int, date], dict[int, int]]:
    """Each client's day 0 (first session) and each course's number for its client."""
    day0 = dict(db.session.execute(
        select(Course.client_id, func.min(TherapySession.session_date))
        .join(TherapySession, TherapySession.course_id == Course.id)
        .group_by(Course.client_id)).all())
    numbers: dict[int, int] = {}
    counted: dict[int, int] = {}
    for course_id, client_id in db.session.execute(
            select(Course.id, Course.client_id).order_by(Course.client_id, Course.starts_on,
                                                         Course.id)):
        counted[client_id] = counted.get(client_id, 0) + 1
        numbers[course_id] = counted[client_id]
    return day0, numbers


def _signed_notes(slug: str) -> Iterable[Any]:
    return db.session.execute(
        select(Note.id, Note.session_id, Note.author_id, Note.modality, Note.template_version,
               Note.answers, Note.content_hash, Note.signed_at, TherapySession.session_date,
               TherapySession.kind, Course.id.label("course_id"), Course.client_id)
        .join(TherapySession, Note.session_id == TherapySession.id)
        .join(Course, TherapySession.course_id == Course.id)
        .where(Note.modality == slug, Note.state == NoteState.SIGNED)
        .order_by(Note.id).execution_options(yield_per=500))


def _sealed(row: Any) -> bool:
    """Whether the note still holds what was signed (its SHA-256 matches)."""
    stand_in = SimpleNamespace(id=row.id, session_id=row.session_id, author_id=row.author_id,
                               modality=row.modality, template_version=row.template_version,
                               answers=row.answers)
    return row.content_hash is not None and content_hash(cast(Note, stand_in)) == \
        row.content_hash


def _item_rows(fields: tuple[Field, ...], values: Any, refs: dict[str, int]) -> None:
    """item_id -> row number, for every row of every group (what refs point to)."""
    if not isinstance(values, dict):
        return
    for f in fields:
        items = values.get(f.key)
        if f.type != "group" or not isinstance(items, list):
            continue
        for n, item in enumerate((i for i in items if isinstance(i, dict)), start=1):
            if item.get("item_id") is not None:
                refs[str(item["item_id"])] = n
            _item_rows(f.fields, item, refs)


def _write_groups(form: _Form, values: dict[str, Any], row: _Row) -> None:
    for var, child in form.groups:
        f = _field_at(var, row)
        items = values.get(f.key) if f is not None else None
        if not isinstance(items, list):
            continue
        for n, item in enumerate((i for i in items if isinstance(i, dict)), start=1):
            at = _Row(row.study_id, row.note_no, row.day0, row.version, row.refs,
                      parent_row=row.row_no, row_no=n)
            child.write(item, at)
            _write_groups(child, item, at)


def _all_forms(form: _Form) -> Iterable[_Form]:
    yield form
    for _, child in form.groups:
        yield from _all_forms(child)


class _Builder:
    """The state one export shares across its templates: study ids, timelines, counts."""

    def __init__(self, free_text: bool) -> None:
        self.registry = get_registry()
        self.free_text = free_text
        self.study_id = _StudyIds()
        self.day0, self.course_numbers = _timelines()
        self.zone = clinic_zone()
        self.counts: dict[str, int] = {}
        self.versions: dict[str, list[int]] = {}
        self.clients: set[int] = set()
        self.left_out = {"content_changed_since_signing": 0, "template_version_unknown": 0}

    def read(self, slug: str) -> tuple[list[_Note], dict[int, Template]]:
        """The template's signed notes that still hold what was signed, and its versions."""
        found: list[_Note] = []
        templates: dict[int, Template] = {}
        for row in _signed_notes(slug):
            template = self.registry.get(slug, row.template_version)
            if template is None:
                self.left_out["template_version_unknown"] += 1
                continue
            if not _sealed(row):
                self.left_out["content_changed_since_signing"] += 1
                continue
            templates[template.version] = template
            first = self.day0[row.client_id]
            signed = row.signed_at.astimezone(self.zone).date() if row.signed_at else None
            found.append(_Note(row.id, row.client_id, template,
                               row.answers if isinstance(row.answers, dict) else {},
                               (row.session_date - first).days,
                               (signed - first).days if signed else None,
                               self.course_numbers[row.course_id], row.kind, first))
        return found, templates

    def template_files(self, slug: str) -> list[_Form]:
        """The template's file and the files of its repeating groups, filled."""
        found, templates = self.read(slug)
        if not templates:  # no notes: the file's columns from the current version
            latest = cast(Template, self.registry.latest(slug))
            templates = {latest.version: latest}
        self.versions[slug] = sorted(templates)
        form = _Form(slug)
        levels = {v: [(s.title, f) for s in t.sections for f in s.fields]
                  for v, t in templates.items()}
        context = _note_columns(form, _merge(levels, self.free_text),
                                _merged_scores(templates), self.free_text, slug)
        for note in found:
            note.study_id = self.study_id(note.client_id)
            self.clients.add(note.client_id)
        found.sort(key=lambda n: (n.study_id, n.day, n.signed_day or 0, n.note_id))
        for number, note in enumerate(found, start=1):
            context[number] = note
            refs: dict[str, int] = {}
            _item_rows(note.template.fields, note.answers, refs)
            row = _Row(note.study_id, number, note.day0, note.template.version, refs)
            form.write(note.answers, row)
            _write_groups(form, note.answers, row)
        self.counts[slug] = len(found)
        return list(_all_forms(form))


def build_research_export(slugs: Iterable[str] | None = None,
                          free_text: bool = False) -> ResearchExport:
    """The de-identified export of the signed notes of ``slugs`` (when None: every
    template that has signed notes), free text included only when ``free_text``. The
    caller audits and commits."""
    known = sorted({s for s, _ in get_registry().templates})
    chosen = sorted(set(slugs)) if slugs is not None else [
        s for s in known if signed_note_counts().get(s)]
    if unknown := [s for s in chosen if s not in known]:
        raise ValueError("no such template: " + ", ".join(unknown))
    export_id = "".join(secrets.choice(STUDY_ID_ALPHABET) for _ in range(10))
    builder = _Builder(free_text)
    forms = [form for slug in chosen for form in builder.template_files(slug)]
    files = [f"{f.name}.csv" for f in forms] + ["data_dictionary.csv", "README.txt"]
    left_out = {k: v for k, v in builder.left_out.items() if v}
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in forms:
            _add(zf, f"{f.name}.csv", _csv([c.name for c in f.columns], f.rows))
        _add(zf, "data_dictionary.csv", _dictionary(forms))
        _add(zf, "README.txt", _readme(export_id, chosen, builder, left_out, files))
    return ResearchExport(export_id, archive.getvalue(), tuple(chosen), free_text,
                          builder.counts, tuple(sorted(builder.clients)), left_out,
                          tuple(files))


def _csv(header: list[str], rows: Iterable[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([neutralise(h) for h in header])
    writer.writerows(rows)
    return out.getvalue()


def _add(zf: zipfile.ZipFile, name: str, text: str) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o600 << 16
    zf.writestr(info, text.encode("utf-8"))


def _dictionary(forms: list[_Form]) -> str:
    rows = []
    for form in forms:
        for c in form.columns:
            rows.append([neutralise(v) for v in (
                c.name, form.name, c.section, c.type, c.label, c.choices, c.validation, c.min,
                c.max, c.unit, "y" if c.identifier else "", c.note)])
    return _csv(list(DICTIONARY_COLUMNS), rows)


def _readme(export_id: str, slugs: list[str], builder: _Builder, left_out: dict[str, int],
            files: list[str]) -> str:
    counts, versions, free_text = builder.counts, builder.versions, builder.free_text
    registry = get_registry()
    lines = [
        f"kaptools research export {export_id}",
        "=" * len(f"kaptools research export {export_id}"),
        "",
        "De-identified data from signed notes, one CSV file per note template, described",
        "column by column in data_dictionary.csv (REDCap-style: variable, form, section,",
        "type, label, choices, validation, min, max, unit, identifier, note). The export",
        "id above is kept in kaptools' audit trail with who exported it and why.",
        "",
        f"Notes: {sum(counts.values())} from {len(builder.clients)} client(s).",
    ]
    for slug in slugs:
        template = registry.latest(slug)
        title = template.title if template else slug
        shown = ", ".join(str(v) for v in versions.get(slug, []))
        lines.append(f"  {slug}.csv  {counts.get(slug, 0)} note(s)  {title} "
                     f"(template version {shown})")
    if left_out:
        lines.append("Left out: " + "; ".join(f"{n} note(s): {why.replace('_', ' ')}"
                                              for why, n in left_out.items()) + ".")
    lines += [
        "",
        "Files:",
        *(f"  {name}" for name in files),
        "",
        "How the data was de-identified",
        "------------------------------",
        "* Clients appear only as study_id: random for this export, the same for one",
        "  client in every file of it, different in any other export. It is not derived",
        "  from the client's code or any kaptools id; no file holds a client code, name,",
        "  therapist, or course or session title.",
        "* There are no calendar dates. Every date of a client is shifted by the same",
        "  amount, so that the client's first session in kaptools is day 0, and written",
        "  as a day number (negative before day 0): the session's `day`, the",
        "  `signed_day`, and every date answer. Intervals between a client's dates are",
        "  exact. Times of day (HH:MM) are kept.",
        "* Only signed notes: no drafts, notes entered in error or discarded records.",
        "  Private process notes never leave kaptools; addenda, supervisors' comments",
        "  and reviews are not exported.",
    ]
    if free_text:
        lines += [
            "* FREE TEXT IS INCLUDED (text and notes columns, marked identifier = y in the",
            "  dictionary). It is what therapists typed and MAY CONTAIN NAMES, PLACES,",
            "  DATES OR OTHER IDENTIFIERS. Review it before it is shared.",
        ]
    else:
        lines += [
            "* Free text is left out: no text or notes field (what therapists typed) is",
            "  exported, only numbers, ratings, choices, yes/no, times and day numbers.",
        ]
    lines += [
        "",
        "Reading the files",
        "-----------------",
        "* UTF-8, comma-separated, one header row; an empty cell is an unanswered",
        "  question, or a field the note's template version does not have.",
        "* Repeating groups are in files of their own, <template>.<group>.csv, one row",
        "  per row of the group, joined to their note by study_id and note_no (and",
        "  parent_row_no for a group inside a group); the note's file says how many rows",
        "  each group has (<group>_rows). A reference to a row holds its row_no.",
        "* A multiple choice is one column per option, <field>___<option>, 1 when",
        "  chosen and 0 when not.",
        "* Choice answers hold the option's code; the dictionary lists code and label.",
        "* score_* columns are computed by kaptools from the answers (totals, bands,",
        "  flags, triage levels).",
        "* Formula-safe: a text cell that begins with = + - @, a tab or a carriage",
        "  return starts with an apostrophe ('), so a spreadsheet shows it as text.",
        "  Numbers, negative ones included, are written as plain numbers.",
        "",
    ]
    return "\r\n".join(lines)
