"""The template language: immutable definitions and their strict validation.

A template file is TOML. Every problem found is reported with the file, the key
path and what is wrong; nothing here raises on bad input.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 256 * 1024
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
# Names the note editor posts alongside the answers.
RESERVED_KEYS = frozenset({"csrf_token", "note_version", "action", "modality", "item_id",
                           "template_version", "editor_id", "carry_token"})
SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,47}$")

AUDIENCES = ("record", "client", "private")
FIELD_TYPES = (
    "text", "longtext", "integer", "decimal", "scale", "percent", "choice", "multichoice",
    "yesno", "date", "time", "duration", "group", "ref",
)
COMMON_KEYS = {"key", "type", "label", "help", "required", "audience", "show_if", "placeholder",
               "carry"}
# Types that hold a measurement or the time of an event: never copied into a new note
# ("Start from …") unless a field says `carry = true`.
MEASUREMENT_TYPES = {"scale", "integer", "decimal", "percent", "duration", "date", "time"}
TYPE_KEYS: dict[str, set[str]] = {
    "text": {"max_length", "suggestions"},
    "longtext": {"max_length", "rows"},
    "integer": {"min", "max", "unit"},
    "decimal": {"min", "max", "unit", "places"},
    "scale": {"scale", "min", "max", "step", "anchors", "name"},
    "percent": set(),
    "choice": {"choices", "widget"},
    "multichoice": {"choices", "max_selected", "prefill"},
    "yesno": set(),
    "date": set(),
    "time": set(),
    "duration": {"unit", "min", "max"},
    "group": {"fields", "min_items", "max_items", "item_label", "item_title"},
    "ref": {"group"},
}
SHOW_IF_KEYS = {"field", "equals", "not_equals", "in", "filled", "lt", "gt"}
DEFAULT_MAX_LENGTH = {"text": 300, "longtext": 20000}
GROUP_HARD_MAX = 200


class TemplateProblem(Exception):
    """One problem in one file, at one key path."""

    def __init__(self, file: str, path: str, message: str) -> None:
        super().__init__(f"{file}: {path}: {message}")
        self.file, self.path, self.message = file, path, message


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    # The option is valid only while these conditions on other answers all hold. A
    # condition's field is a field at the same level, or "ref.field": a field of the row a
    # reference at this level points to (the role of the part a relationship starts from).
    only_if: tuple[ShowIf, ...] = ()


@dataclass(frozen=True)
class Scale:
    key: str
    name: str
    min: int
    max: int
    step: int
    anchors: tuple[tuple[int, str], ...]

    def values(self) -> list[int]:
        return list(range(self.min, self.max + 1, self.step))


@dataclass(frozen=True)
class ShowIf:
    field: str
    op: str
    value: Any

    def holds(self, answers: dict[str, Any]) -> bool:
        current = answers.get(self.field)
        if self.op == "filled":
            return _filled(current) == bool(self.value)
        if self.op == "equals":
            return current == self.value or (isinstance(current, list) and self.value in current)
        if self.op == "not_equals":
            return _filled(current) and current != self.value
        if self.op == "in":
            return current in self.value
        if self.op in ("lt", "gt"):
            if not isinstance(current, int | float) or isinstance(current, bool):
                return False
            return current < self.value if self.op == "lt" else current > self.value
        return False


def _filled(value: Any) -> bool:
    return value not in (None, "", [], {})


@dataclass(frozen=True)
class Field:
    key: str
    type: str
    label: str
    help: str = ""
    required: bool = False
    audience: str = "record"
    placeholder: str = ""
    show_if: ShowIf | None = None
    max_length: int | None = None
    rows: int = 5
    min: float | None = None
    max: float | None = None
    unit: str = ""
    places: int = 2
    scale: Scale | None = None
    choices: tuple[Choice, ...] = ()
    suggestions: tuple[str, ...] = ()
    widget: str = "radio"
    max_selected: int | None = None
    fields: tuple[Field, ...] = ()
    min_items: int = 0
    max_items: int = 50
    item_label: str = "Item"
    item_title: str | None = None
    group: str | None = None
    carry: bool | None = None  # copied by "Start from …"; None: by type (see MEASUREMENT_TYPES)
    # "session_categories": a multichoice starts with the options named like the
    # categories of the other notes written in the same session.
    prefill: str | None = None
    origin: str = field(default="", compare=False)  # key path in its file, for messages

    @property
    def carried(self) -> bool:
        return self.carry if self.carry is not None else self.type not in MEASUREMENT_TYPES

    def choice_label(self, value: Any) -> str:
        for choice in self.choices:
            if choice.value == value:
                return choice.label
        return str(value)

    def subfield(self, key: str) -> Field | None:
        return next((f for f in self.fields if f.key == key), None)


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    help: str
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Band:
    min: int
    max: int
    label: str


@dataclass(frozen=True)
class Flag:
    field: str
    op: str
    value: Any
    label: str
    risk: bool = False  # raises the client's risk flag until a follow-up is recorded


@dataclass(frozen=True)
class Level:
    """A triage level: reached when any of its conditions holds (levels are tried in
    order, so the most severe comes first)."""

    label: str
    any: tuple[Flag, ...]
    risk: bool = False


@dataclass(frozen=True)
class Criterion:
    """At least ``count`` of ``items`` rated ``rated_at_least`` or more."""

    label: str
    items: tuple[str, ...]
    rated_at_least: int
    count: int


@dataclass(frozen=True)
class Score:
    key: str
    label: str
    items: tuple[str, ...]
    bands: tuple[Band, ...]
    flags: tuple[Flag, ...]
    max_total: int
    levels: tuple[Level, ...] = ()
    otherwise: str = ""
    requires: tuple[str, ...] = ()  # answers a level score needs before it means anything
    criteria: tuple[Criterion, ...] = ()
    met: str = ""
    not_met: str = ""

    @property
    def is_levels(self) -> bool:
        return bool(self.levels)

    @property
    def is_criteria(self) -> bool:
        return bool(self.criteria)


@dataclass(frozen=True)
class Template:
    slug: str
    version: int
    title: str
    description: str
    category: str
    sections: tuple[Section, ...]
    scores: tuple[Score, ...] = ()
    credit: str = ""
    sample: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    source: str = ""
    # Templates that must have a signed note in the same course before this one is signed.
    requires_signed_in_course: tuple[str, ...] = ()
    # A questionnaire's recall period: repeating it sooner overlaps the answers.
    recall_days: int | None = None
    # The kinds of session this note is usually written in: the note chooser offers it
    # first there ("preparation", "dosing", "integration", "assessment").
    session_kinds: tuple[str, ...] = ()

    @property
    def carries_anything(self) -> bool:
        return any(f.carried for f in self.fields)

    @property
    def has_longtext(self) -> bool:
        """Whether any box of the note, in a row or not, takes Markdown."""
        def walk(fields) -> bool:
            return any(f.type == "longtext" or walk(f.fields) for f in fields)
        return walk(self.fields)

    @cached_property  # asked for on every field of every request; a template never changes
    def fields(self) -> tuple[Field, ...]:
        return tuple(f for s in self.sections for f in s.fields)

    def field(self, key: str) -> Field | None:
        return next((f for f in self.fields if f.key == key), None)


# ---------------------------------------------------------------------------
# Shared definitions: named scales and choice lists.


@dataclass
class Shared:
    scales: dict[str, Scale] = field(default_factory=dict)
    choices: dict[str, tuple[Choice, ...]] = field(default_factory=dict)


def read_toml(path: Path, problems: list[TemplateProblem]) -> dict[str, Any] | None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        problems.append(TemplateProblem(str(path), "(file)", f"cannot be read: {exc}"))
        return None
    if size > MAX_FILE_BYTES:
        problems.append(TemplateProblem(
            str(path), "(file)", f"is {size} bytes; the limit is {MAX_FILE_BYTES} bytes"))
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        problems.append(TemplateProblem(str(path), "(file)", "is not UTF-8 text"))
    except tomllib.TOMLDecodeError as exc:
        message = " ".join(str(exc).split())
        problems.append(TemplateProblem(str(path), "(file)", f"is not valid TOML ({message})"))
    except RecursionError:
        problems.append(TemplateProblem(str(path), "(file)", "nests arrays or tables too "
                                                             "deeply to be read"))
    else:
        if _depth(data) > MAX_NESTING:
            problems.append(TemplateProblem(str(path), "(file)", f"nests more than "
                                                                 f"{MAX_NESTING} levels deep"))
            return None
        return data
    return None


MAX_NESTING = 24


def _depth(value: Any, level: int = 0) -> int:
    """How deeply tables and arrays nest (stops counting past the limit)."""
    if level > MAX_NESTING:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


class _Checker:
    """Collects problems for one file while converting raw TOML into definitions."""

    def __init__(self, file: str, shared: Shared) -> None:
        self.file = file
        self.shared = shared
        self.problems: list[TemplateProblem] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(TemplateProblem(self.file, path, message))

    def unknown_keys(self, raw: dict[str, Any], allowed: set[str], path: str) -> None:
        for key in sorted(set(raw) - allowed):
            self.problem(f"{path}.{key}" if path else key, "unknown key")

    def text(self, raw: dict[str, Any], key: str, path: str, required: bool = False,
             default: str = "") -> str:
        value = raw.get(key, None)
        if value is None:
            if required:
                self.problem(f"{path}.{key}" if path else key, "is missing")
            return default
        if not isinstance(value, str):
            self.problem(f"{path}.{key}" if path else key, "must be a string")
            return default
        return value

    def integer(self, raw: dict[str, Any], key: str, path: str, default: int | None = None,
                required: bool = False) -> int | None:
        value = raw.get(key)
        if value is None:
            if required:
                self.problem(f"{path}.{key}", "is missing")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(f"{path}.{key}", "must be a whole number")
            return default
        return value

    def number(self, raw: dict[str, Any], key: str, path: str) -> float | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(f"{path}.{key}", "must be a number")
            return None
        if value != value or value in (float("inf"), float("-inf")):
            self.problem(f"{path}.{key}", "must be a finite number")
            return None
        return value

    # Scales and choices ---------------------------------------------------
    def scale_def(self, raw: Any, path: str, key: str) -> Scale | None:
        if not isinstance(raw, dict):
            self.problem(path, "must be a table")
            return None
        self.unknown_keys(raw, {"name", "min", "max", "step", "anchors", "scale"}, path)
        lo = self.integer(raw, "min", path, required=True)
        hi = self.integer(raw, "max", path, required=True)
        step = self.integer(raw, "step", path, default=1)
        if lo is None or hi is None or step is None:
            return None
        if lo > hi:
            self.problem(path, f"min ({lo}) is greater than max ({hi})")
            return None
        if step < 1 or (hi - lo) % step:
            self.problem(f"{path}.step", "must be at least 1 and divide max - min")
            return None
        anchors = []
        for i, anchor in enumerate(raw.get("anchors", []) or []):
            apath = f"{path}.anchors[{i}]"
            if not isinstance(anchor, dict) or set(anchor) != {"value", "label"}:
                self.problem(apath, "must be a table with value and label")
                continue
            value, label = anchor["value"], anchor["label"]
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                self.problem(f"{apath}.value", f"must be a whole number from {lo} to {hi}")
                continue
            if not isinstance(label, str):
                self.problem(f"{apath}.label", "must be a string")
                continue
            anchors.append((value, label))
        name = raw.get("name", key.upper())
        if not isinstance(name, str):
            self.problem(f"{path}.name", "must be a string")
            name = key
        return Scale(key=key, name=name, min=lo, max=hi, step=step, anchors=tuple(anchors))

    def choice_list(self, raw: Any, path: str) -> tuple[Choice, ...] | None:
        if isinstance(raw, str):
            if not raw.startswith("@"):
                self.problem(path, "must be a list, or @name of a shared choice list")
                return None
            name = raw[1:]
            if name not in self.shared.choices:
                self.problem(path, f"names the choice list {name!r}, which does not exist")
                return None
            return self.shared.choices[name]
        if not isinstance(raw, list) or not raw:
            self.problem(path, "must be a non-empty list of choices")
            return None
        choices: list[Choice] = []
        for i, item in enumerate(raw):
            ipath = f"{path}[{i}]"
            if isinstance(item, str):
                choices.append(Choice(_slugify(item), item))
            elif isinstance(item, dict) and set(item) <= {"value", "label", "only_if"} \
                    and "value" in item:
                value, label = item["value"], item.get("label", item["value"])
                if not isinstance(value, str) or not isinstance(label, str) or not value:
                    self.problem(ipath, "value and label must be non-empty strings")
                    continue
                raw_if = item.get("only_if", [])
                raw_if = [raw_if] if isinstance(raw_if, dict) else raw_if
                if not isinstance(raw_if, list):
                    self.problem(f"{ipath}.only_if", "must be a condition or a list of them")
                    raw_if = []
                only_if = tuple(cond for k, one in enumerate(raw_if)
                                if (cond := self.show_if(one, f"{ipath}.only_if[{k}]")))
                choices.append(Choice(value, label, only_if))
            else:
                self.problem(ipath, "must be a string or a table with value and label")
        seen: set[str] = set()
        for i, choice in enumerate(choices):
            if choice.value in seen:
                self.problem(f"{path}[{i}]", f"duplicate choice {choice.value!r}")
            seen.add(choice.value)
        return tuple(choices)

    # Fields ---------------------------------------------------------------
    def field_def(self, raw: Any, path: str, depth: int) -> Field | None:
        if not isinstance(raw, dict):
            self.problem(path, "must be a table")
            return None
        key = self.text(raw, "key", path, required=True)
        ftype = self.text(raw, "type", path, required=True)
        if key in RESERVED_KEYS:
            self.problem(f"{path}.key", f"{key!r} is reserved; choose another key")
        if key and not KEY_RE.match(key):
            self.problem(f"{path}.key", f"{key!r} must be lower-case letters, digits and "
                                        "underscores, starting with a letter")
        if ftype and ftype not in FIELD_TYPES:
            self.problem(f"{path}.type", f"unknown type {ftype!r}; use one of "
                                         + ", ".join(FIELD_TYPES))
            return None
        if not key or not ftype:
            return None
        path = f"{path}({key})"
        self.unknown_keys(raw, COMMON_KEYS | TYPE_KEYS[ftype], path)
        label = self.text(raw, "label", path, required=True)
        audience = self.text(raw, "audience", path, default="record")
        if audience not in AUDIENCES:
            self.problem(f"{path}.audience", f"must be one of {', '.join(AUDIENCES)}")
            audience = "record"
        required = raw.get("required", False)
        if not isinstance(required, bool):
            self.problem(f"{path}.required", "must be true or false")
            required = False
        carry = raw.get("carry")
        if carry is not None and not isinstance(carry, bool):
            self.problem(f"{path}.carry", "must be true or false")
            carry = None
        kwargs: dict[str, Any] = {
            "origin": path, "key": key, "type": ftype, "label": label, "audience": audience,
            "required": required, "help": self.text(raw, "help", path),
            "placeholder": self.text(raw, "placeholder", path), "carry": carry,
        }
        if "show_if" in raw:
            kwargs["show_if"] = self.show_if(raw["show_if"], f"{path}.show_if")
        builder = getattr(self, f"_type_{ftype}")
        builder(raw, path, kwargs, depth)
        return Field(**kwargs)

    def show_if(self, raw: Any, path: str) -> ShowIf | None:
        if not isinstance(raw, dict) or "field" not in raw:
            self.problem(path, "must be a table naming a field and one condition")
            return None
        self.unknown_keys(raw, SHOW_IF_KEYS, path)
        ops = [k for k in raw if k != "field" and k in SHOW_IF_KEYS]
        if len(ops) != 1:
            self.problem(path, "must have exactly one of equals, not_equals, in, filled, lt, gt")
            return None
        op = ops[0]
        if op == "in" and not isinstance(raw[op], list):
            self.problem(f"{path}.in", "must be a list")
            return None
        if op in ("lt", "gt") and (isinstance(raw[op], bool)
                                   or not isinstance(raw[op], int | float)):
            self.problem(f"{path}.{op}", "must be a number")
            return None
        value = tuple(raw[op]) if op == "in" else raw[op]
        return ShowIf(field=str(raw["field"]), op=op, value=value)

    def _length(self, raw, path, kwargs, ftype) -> None:
        limit = self.integer(raw, "max_length", path, default=DEFAULT_MAX_LENGTH[ftype])
        if limit is not None and not 1 <= limit <= 100_000:
            self.problem(f"{path}.max_length", "must be between 1 and 100000")
            limit = DEFAULT_MAX_LENGTH[ftype]
        kwargs["max_length"] = limit

    def _type_text(self, raw, path, kwargs, depth) -> None:
        self._length(raw, path, kwargs, "text")
        if "suggestions" in raw:
            choices = self.choice_list(raw["suggestions"], f"{path}.suggestions")
            kwargs["suggestions"] = tuple(c.label for c in choices or ())

    def _type_longtext(self, raw, path, kwargs, depth) -> None:
        self._length(raw, path, kwargs, "longtext")
        kwargs["rows"] = self.integer(raw, "rows", path, default=5)

    def _range(self, raw, path, kwargs) -> None:
        lo, hi = self.number(raw, "min", path), self.number(raw, "max", path)
        if lo is not None and hi is not None and lo > hi:
            self.problem(path, f"min ({lo}) is greater than max ({hi})")
        kwargs["min"], kwargs["max"] = lo, hi
        kwargs["unit"] = self.text(raw, "unit", path)

    def _type_integer(self, raw, path, kwargs, depth) -> None:
        self._range(raw, path, kwargs)
        for bound in ("min", "max"):
            if kwargs[bound] is not None and kwargs[bound] != int(kwargs[bound]):
                self.problem(f"{path}.{bound}", "must be a whole number for an integer field")

    def _type_decimal(self, raw, path, kwargs, depth) -> None:
        self._range(raw, path, kwargs)
        places = self.integer(raw, "places", path, default=2)
        if places is not None and not 0 <= places <= 6:
            self.problem(f"{path}.places", "must be between 0 and 6")
            places = 2
        kwargs["places"] = places

    def _type_duration(self, raw, path, kwargs, depth) -> None:
        self._range(raw, path, kwargs)
        unit = kwargs["unit"] or "minutes"
        if unit not in ("seconds", "minutes"):
            self.problem(f"{path}.unit", "must be seconds or minutes")
            unit = "minutes"
        kwargs["unit"] = unit
        if kwargs["min"] is None:
            kwargs["min"] = 0

    def _type_percent(self, raw, path, kwargs, depth) -> None:
        kwargs["min"], kwargs["max"], kwargs["unit"] = 0, 100, "%"

    def _type_scale(self, raw, path, kwargs, depth) -> None:
        if "scale" in raw:
            name = raw["scale"]
            if set(raw) & {"min", "max", "step", "anchors"}:
                self.problem(path, "give either a named scale or min/max/step/anchors, not both")
            if not isinstance(name, str) or name not in self.shared.scales:
                self.problem(f"{path}.scale", f"names the scale {name!r}, which does not exist")
                return
            kwargs["scale"] = self.shared.scales[name]
        else:
            inline = {k: raw[k] for k in ("min", "max", "step", "anchors", "name") if k in raw}
            kwargs["scale"] = self.scale_def(inline, path, kwargs["key"])
        if kwargs.get("scale"):
            kwargs["min"], kwargs["max"] = kwargs["scale"].min, kwargs["scale"].max

    def _type_choice(self, raw, path, kwargs, depth) -> None:
        if "choices" not in raw:
            self.problem(f"{path}.choices", "is missing")
        else:
            kwargs["choices"] = self.choice_list(raw["choices"], f"{path}.choices") or ()
        widget = self.text(raw, "widget", path, default="radio")
        if widget not in ("radio", "select"):
            self.problem(f"{path}.widget", "must be radio or select")
            widget = "radio"
        kwargs["widget"] = widget

    def _type_multichoice(self, raw, path, kwargs, depth) -> None:
        if "choices" not in raw:
            self.problem(f"{path}.choices", "is missing")
        else:
            kwargs["choices"] = self.choice_list(raw["choices"], f"{path}.choices") or ()
        kwargs["max_selected"] = self.integer(raw, "max_selected", path)
        if "prefill" in raw:
            if raw["prefill"] != "session_categories" or depth:
                self.problem(f"{path}.prefill", 'must be "session_categories", at the top level')
            else:
                kwargs["prefill"] = raw["prefill"]

    def _type_yesno(self, raw, path, kwargs, depth) -> None:
        pass

    _type_date = _type_time = _type_yesno

    def _type_ref(self, raw, path, kwargs, depth) -> None:
        kwargs["group"] = self.text(raw, "group", path, required=True) or None

    def _type_group(self, raw, path, kwargs, depth) -> None:
        if depth >= 2:
            self.problem(path, "groups nest at most two levels deep")
            return
        if kwargs["audience"] == "private":
            self.problem(f"{path}.audience", "a group cannot be private; mark its fields instead")
        lo = self.integer(raw, "min_items", path, default=0)
        hi = self.integer(raw, "max_items", path, default=50)
        if lo is not None and hi is not None:
            if lo < 0 or hi < 1 or hi > GROUP_HARD_MAX:
                self.problem(path, f"min_items/max_items must lie between 0 and {GROUP_HARD_MAX}")
            elif lo > hi:
                self.problem(path, f"min_items ({lo}) is greater than max_items ({hi})")
        kwargs["min_items"], kwargs["max_items"] = lo or 0, hi or 50
        kwargs["item_label"] = self.text(raw, "item_label", path, default="Item")
        raw_fields = raw.get("fields")
        if not isinstance(raw_fields, list) or not raw_fields:
            self.problem(f"{path}.fields", "must list at least one field")
            return
        children = self.field_list(raw_fields, f"{path}.fields", depth + 1)
        kwargs["fields"] = children
        title = raw.get("item_title")
        if title is not None and (not isinstance(title, str)
                                  or title not in {c.key for c in children}):
            self.problem(f"{path}.item_title", f"names {title!r}, which is not a field here")
            title = None
        kwargs["item_title"] = title
        for child in children:
            if child.audience == "private":
                self.problem(f"{path}.fields({child.key}).audience",
                             "private fields belong at the top level of a template")

    def field_list(self, raw_fields: list[Any], path: str, depth: int) -> tuple[Field, ...]:
        fields = []
        for i, raw_field in enumerate(raw_fields):
            built = self.field_def(raw_field, f"{path}[{i}]", depth)
            if built:
                fields.append(built)
        self.check_scope(fields, path)
        return tuple(fields)

    def check_scope(self, fields: list[Field], path: str) -> None:
        """Duplicate keys, show_if targets and references within one level."""
        seen: set[str] = set()
        for f in fields:
            if f.key in seen:
                self.problem(f"{f.origin}.key", f"duplicate field key {f.key!r}")
            seen.add(f.key)
        by_key = {f.key: f for f in fields}
        for f in fields:
            if f.show_if and f.show_if.field not in by_key:
                self.problem(f"{f.origin}.show_if.field",
                             f"names {f.show_if.field!r}, which is not a field at this level")
            elif f.show_if and f.show_if.field == f.key:
                self.problem(f"{f.origin}.show_if.field", "a field cannot depend on itself")
            for i, choice in enumerate(f.choices or ()):
                for cond in choice.only_if:
                    head = cond.field.split(".", 1)[0]
                    if head not in by_key or head == f.key or (
                            "." in cond.field and by_key[head].type != "ref"):
                        self.problem(f"{f.origin}.choices[{i}].only_if.field",
                                     f"names {cond.field!r}, which is not another field (or a "
                                     "reference's field) at this level")

    def check_refs(self, fields: tuple[Field, ...], path: str,
                   groups: dict[str, Field]) -> None:
        """A ref names a group at this level or any enclosing one."""
        here = dict(groups)
        here.update({f.key: f for f in fields if f.type == "group"})
        refs = {f.key: f for f in fields if f.type == "ref"}
        for f in fields:
            if f.type == "ref" and f.group and f.group not in here:
                self.problem(f"{f.origin}.group",
                             f"names {f.group!r}, which is not a repeating group")
            for i, choice in enumerate(f.choices or ()):
                for cond in choice.only_if:
                    head, _, tail = cond.field.partition(".")
                    ref = refs.get(head)
                    group = here.get(ref.group) if ref is not None and ref.group else None
                    if tail and group is not None and group.subfield(tail) is None:
                        self.problem(f"{f.origin}.choices[{i}].only_if.field",
                                     f"names {cond.field!r}, but the rows of {group.key!r} "
                                     f"have no field {tail!r}")
            if f.type == "group":
                self.check_refs(f.fields, f"{f.origin}.fields", here)


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:48] or "choice"


# ---------------------------------------------------------------------------
# Files


def parse_shared(data: dict[str, Any], file: str, shared: Shared,
                 extend_only: bool = False) -> list[TemplateProblem]:
    """Read named scales and choice lists; a clinic file may only extend lists."""
    checker = _Checker(file, shared)
    allowed = {"extend"} if extend_only else {"scales", "choices", "extend"}
    checker.unknown_keys(data, allowed, "")
    if extend_only:
        data = {"extend": data.get("extend") or {}}
    tables = {}
    for section in ("scales", "choices", "extend"):
        value = data.get(section) or {}
        if not isinstance(value, dict):
            checker.problem(section, "must be a table of named lists")
            value = {}
        tables[section] = value
    for name, raw in tables["scales"].items():
        scale = checker.scale_def(raw, f"scales.{name}", name)
        if scale:
            shared.scales[name] = scale
    for name, raw in tables["choices"].items():
        choices = checker.choice_list(raw, f"choices.{name}")
        if choices is not None:
            shared.choices[name] = choices
    for name, raw in tables["extend"].items():
        path = f"extend.{name}"
        if name not in shared.choices:
            checker.problem(path, f"there is no choice list {name!r} to extend")
            continue
        more = checker.choice_list(raw, path)
        if more:
            existing = {c.value for c in shared.choices[name]}
            shared.choices[name] = shared.choices[name] + tuple(
                c for c in more if c.value not in existing)
    return checker.problems


TEMPLATE_KEYS = {"slug", "version", "title", "description", "category", "sections", "scores",
                 "credit", "sample", "requires_signed_in_course", "recall_days",
                 "session_kinds"}
SESSION_KINDS = ("preparation", "dosing", "integration", "assessment")


def parse_template(data: dict[str, Any], file: str, shared: Shared,
                   expect_slug: str | None = None, expect_version: int | None = None
                   ) -> tuple[Template | None, list[TemplateProblem]]:
    c = _Checker(file, shared)
    c.unknown_keys(data, TEMPLATE_KEYS, "")
    slug = c.text(data, "slug", "", required=True)
    if slug and not SLUG_RE.match(slug):
        c.problem("slug", "must be lower-case letters, digits and dashes")
    if expect_slug and slug and slug != expect_slug:
        c.problem("slug", f"is {slug!r} but the folder is {expect_slug!r}")
    version = c.integer(data, "version", "", required=True)
    if version is not None and version < 1:
        c.problem("version", "must be 1 or more")
    if expect_version is not None and version is not None and version != expect_version:
        c.problem("version", f"is {version} but the file name says {expect_version}")
    title = c.text(data, "title", "", required=True)
    sections: list[Section] = []
    raw_sections = data.get("sections")
    if not isinstance(raw_sections, list) or not raw_sections:
        c.problem("sections", "must list at least one section")
        raw_sections = []
    all_fields: list[Field] = []
    section_keys: set[str] = set()
    for i, raw in enumerate(raw_sections):
        path = f"sections[{i}]"
        if not isinstance(raw, dict):
            c.problem(path, "must be a table")
            continue
        c.unknown_keys(raw, {"key", "title", "help", "fields"}, path)
        key = c.text(raw, "key", path, required=True)
        if key in section_keys:
            c.problem(f"{path}.key", f"duplicate section key {key!r}")
        section_keys.add(key)
        raw_fields = raw.get("fields")
        if not isinstance(raw_fields, list) or not raw_fields:
            c.problem(f"{path}.fields", "must list at least one field")
            continue
        fields = [f for j, rf in enumerate(raw_fields)
                  if (f := c.field_def(rf, f"{path}.fields[{j}]", 0))]
        all_fields.extend(fields)
        sections.append(Section(key=key, title=c.text(raw, "title", path, required=True),
                                help=c.text(raw, "help", path), fields=tuple(fields)))
    # Keys are unique across the whole template (sections are only layout).
    c.check_scope(all_fields, "fields")
    c.check_refs(tuple(all_fields), "fields", {})
    scores = _parse_scores(c, data.get("scores", []), {f.key: f for f in all_fields})
    sample = data.get("sample", {})
    if not isinstance(sample, dict):
        c.problem("sample", "must be a table of answers")
        sample = {}
    requires = data.get("requires_signed_in_course", [])
    if not isinstance(requires, list) or not all(isinstance(r, str) and SLUG_RE.match(r)
                                                 for r in requires):
        c.problem("requires_signed_in_course", "must list template slugs")
        requires = []
    elif slug in requires:
        c.problem("requires_signed_in_course", "a template cannot require itself")
    recall_days = c.integer(data, "recall_days", "")
    if recall_days is not None and not 1 <= recall_days <= 365:
        c.problem("recall_days", "must be between 1 and 365")
    kinds = data.get("session_kinds", [])
    if not isinstance(kinds, list) or not all(k in SESSION_KINDS for k in kinds):
        c.problem("session_kinds", "must list session kinds: " + ", ".join(SESSION_KINDS))
        kinds = []
    if c.problems or version is None:
        return None, c.problems
    template = Template(
        slug=slug, version=version, title=title,
        description=c.text(data, "description", ""), category=c.text(data, "category", ""),
        sections=tuple(sections), scores=scores, credit=c.text(data, "credit", ""),
        sample=sample, source=file, requires_signed_in_course=tuple(requires),
        recall_days=recall_days, session_kinds=tuple(kinds))
    return template, c.problems


def _parse_scores(c: _Checker, raw_scores: Any, fields: dict[str, Field]) -> tuple[Score, ...]:
    if not isinstance(raw_scores, list):
        c.problem("scores", "must be a list of tables")
        return ()
    scores = []
    for i, raw in enumerate(raw_scores):
        path = f"scores[{i}]"
        if not isinstance(raw, dict):
            c.problem(path, "must be a table")
            continue
        c.unknown_keys(raw, {"key", "label", "sum", "bands", "flags", "levels", "otherwise",
                             "requires", "criteria", "met", "not_met"}, path)
        if "criteria" in raw:
            if criteria_score := _parse_criteria(c, raw, path, fields):
                scores.append(criteria_score)
            continue
        if "levels" in raw:
            if level_score := _parse_levels(c, raw, path, fields):
                scores.append(level_score)
            continue
        items = raw.get("sum")
        if not isinstance(items, list) or not items or not all(isinstance(k, str) for k in items):
            c.problem(f"{path}.sum", "must list the keys of the items to add up")
            continue
        max_total = 0
        for key in items:
            f = fields.get(key)
            if f is None or f.type != "scale" or f.scale is None:
                c.problem(f"{path}.sum", f"{key!r} is not a rating-scale field of this template")
            else:
                max_total += f.scale.max
        bands = []
        raw_bands = raw.get("bands", [])
        if not isinstance(raw_bands, list):
            c.problem(f"{path}.bands", "must be a list of tables")
            raw_bands = []
        for j, band in enumerate(raw_bands):
            bpath = f"{path}.bands[{j}]"
            if not isinstance(band, dict) or set(band) != {"min", "max", "label"}:
                c.problem(bpath, "must have min, max and label")
                continue
            if any(isinstance(band[k], bool) or not isinstance(band[k], int)
                   for k in ("min", "max")) or not isinstance(band["label"], str):
                c.problem(bpath, "min and max must be whole numbers and label a string")
                continue
            if band["min"] > band["max"]:
                c.problem(bpath, f"min ({band['min']}) is greater than max ({band['max']})")
                continue
            bands.append(Band(int(band["min"]), int(band["max"]), str(band["label"])))
        ordered = sorted(bands, key=lambda b: b.min)
        for a, b in zip(ordered, ordered[1:], strict=False):
            if b.min != a.max + 1:
                c.problem(f"{path}.bands", f"bands must meet without gaps or overlaps "
                                           f"({a.label} ends at {a.max}, {b.label} starts at "
                                           f"{b.min})")
        flags = []
        raw_flags = raw.get("flags", [])
        if not isinstance(raw_flags, list):
            c.problem(f"{path}.flags", "must be a list of tables")
            raw_flags = []
        for j, flag in enumerate(raw_flags):
            fpath = f"{path}.flags[{j}]"
            if not isinstance(flag, dict) or "field" not in flag or "label" not in flag:
                c.problem(fpath, "must have field, a condition (gt or equals) and label")
                continue
            c.unknown_keys(flag, {"field", "gt", "equals", "label", "risk"}, fpath)
            if (parsed := _condition(c, flag, fpath, fields)) is None:
                continue
            if not isinstance(flag["label"], str) or not isinstance(flag.get("risk", False),
                                                                     bool):
                c.problem(fpath, "label must be a string and risk true or false")
                continue
            flags.append(Flag(parsed.field, parsed.op, parsed.value, str(flag["label"]),
                              risk=bool(flag.get("risk", False))))
        scores.append(Score(key=c.text(raw, "key", path, required=True),
                            label=c.text(raw, "label", path, required=True),
                            items=tuple(items), bands=tuple(bands), flags=tuple(flags),
                            max_total=max_total))
    return tuple(scores)


def _parse_criteria(c: _Checker, raw: dict, path: str,
                    fields: dict[str, Field]) -> Score | None:
    """A rule over rating items: every criterion needs ``count`` items rated at least
    ``rated_at_least`` (e.g. the DSM-5 rule on the PCL-5's clusters)."""
    raw_criteria = _rule_list(c, raw, path, "criteria", "criterion")
    if raw_criteria is None:
        return None
    criteria = []
    for j, item in enumerate(raw_criteria):
        cpath = f"{path}.criteria[{j}]"
        if not isinstance(item, dict):
            c.problem(cpath, "must be a table")
            continue
        c.unknown_keys(item, {"label", "items", "rated_at_least", "count"}, cpath)
        keys = item.get("items")
        if not isinstance(keys, list) or not keys or not all(
                isinstance(k, str) and k in fields and fields[k].type == "scale" for k in keys):
            c.problem(f"{cpath}.items", "must list rating-scale fields of this template")
            continue
        label = c.text(item, "label", cpath, required=True)
        at_least = c.integer(item, "rated_at_least", cpath, required=True)
        count = c.integer(item, "count", cpath, default=1)
        if at_least is None or count is None or not 1 <= count <= len(keys):
            c.problem(f"{cpath}.count", f"must be between 1 and {len(keys)}")
            continue
        criteria.append(Criterion(label, tuple(keys), at_least, count))
    met, not_met = raw.get("met", "Met"), raw.get("not_met", "Not met")
    if not isinstance(met, str) or not isinstance(not_met, str):
        c.problem(path, "met and not_met must be strings")
        return None
    items = tuple(dict.fromkeys(k for cr in criteria for k in cr.items))
    return Score(key=c.text(raw, "key", path, required=True),
                 label=c.text(raw, "label", path, required=True), items=items, bands=(),
                 flags=(), max_total=0, criteria=tuple(criteria), met=met, not_met=not_met)


def _rule_list(c: _Checker, raw: dict, path: str, key: str, one: str) -> list | None:
    """The non-empty list a rule-based score (levels, criteria) is made of; a rule-based
    score adds nothing up, so it takes no sum, bands or flags."""
    for other in ("sum", "bands", "flags", "levels", "criteria"):
        if other != key and other in raw:
            c.problem(f"{path}.{other}", f"a score with {key} takes no {other}")
    found = raw.get(key)
    if not isinstance(found, list) or not found:
        c.problem(f"{path}.{key}", f"must list at least one {one}")
        return None
    return found


def _condition(c: _Checker, raw: dict, path: str, fields: dict[str, Field]) -> Flag | None:
    """``{ field = "...", gt = n }`` or ``{ field = "...", equals = value }``."""
    ops = [k for k in ("gt", "equals") if k in raw]
    if len(ops) != 1 or not isinstance(raw.get("field"), str) or raw["field"] not in fields \
            or isinstance(raw[ops[0]], list | dict):
        c.problem(path, "needs an existing field and exactly one of gt or equals")
        return None
    return Flag(raw["field"], ops[0], raw[ops[0]], "")


def _parse_levels(c: _Checker, raw: dict, path: str, fields: dict[str, Field]) -> Score | None:
    """A triage score: the first level whose conditions hold (see the authors' guide)."""
    raw_levels = _rule_list(c, raw, path, "levels", "level")
    if raw_levels is None:
        return None
    levels = []
    for j, level in enumerate(raw_levels):
        lpath = f"{path}.levels[{j}]"
        if not isinstance(level, dict) or not isinstance(level.get("label"), str) \
                or not isinstance(level.get("any"), list) or not level["any"]:
            c.problem(lpath, "must have a label and a list `any` of conditions")
            continue
        c.unknown_keys(level, {"label", "any", "risk"}, lpath)
        if not isinstance(level.get("risk", False), bool):
            c.problem(f"{lpath}.risk", "must be true or false")
            continue
        conditions = []
        for k, item in enumerate(level["any"]):
            if not isinstance(item, dict):
                c.problem(f"{lpath}.any[{k}]", "must be a table")
            elif (cond := _condition(c, item, f"{lpath}.any[{k}]", fields)) is not None:
                conditions.append(cond)
        levels.append(Level(level["label"], tuple(conditions), bool(level.get("risk", False))))
    requires = raw.get("requires", [])
    if not isinstance(requires, list) or not all(isinstance(k, str) and k in fields
                                                 for k in requires):
        c.problem(f"{path}.requires", "must list fields of this template")
        requires = []
    otherwise = raw.get("otherwise", "")
    if not isinstance(otherwise, str):
        c.problem(f"{path}.otherwise", "must be a string")
        otherwise = ""
    return Score(key=c.text(raw, "key", path, required=True),
                 label=c.text(raw, "label", path, required=True), items=(), bands=(),
                 flags=(), max_total=0, levels=tuple(levels), otherwise=otherwise,
                 requires=tuple(requires))
