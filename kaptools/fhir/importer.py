"""A FHIR R4 Questionnaire as a clinic template (TOML), or a clear refusal.

The importer reads the item types the template language has and nothing else:

- ``string`` and ``text``: ``text`` and ``longtext`` (``maxLength``); an ``open-choice``:
  ``text`` suggesting its answers;
- ``integer``: ``integer`` (``minValue``, ``maxValue``, unit), or ``duration`` for a UCUM
  ``min``/``s`` unit and ``percent`` for ``%`` from 0 to 100; ``decimal``: ``decimal``
  (bounds, unit, ``maxDecimalPlaces``, else the language's 2 places);
- ``boolean``, ``date``, ``time``: ``yesno``, ``date``, ``time``;
- ``choice``: ``choice`` (``multichoice`` when it repeats); a ``scale`` when every answer
  carries a weight (``ordinalValue``, ``itemWeight``, ``iso21090-CO-value``): the weights
  are the ratings and the answers' displays their anchors, with kaptools' named scale when
  it is one (by kaptools' rating-scale extension, or by the LOINC code of a built-in
  instrument's item);
- ``group``: a section at the top level (a section takes no condition), else a ``group``
  field (repeating or not);
- ``display``: help text of the question, group or section it belongs to.

``required``, ``prefix``, ``enableWhen`` (one condition, or several ``=`` on one question, as
kaptools writes them), ``entryFormat`` (placeholder), answer lists in a contained ValueSet,
and kaptools' own extensions (rating scale, row reference, client audience) come across too.

Computed items become scores, which kaptools always computes itself:

* an item carrying the LOINC code of a standard instrument's total (GAD-7 70274-6, PHQ-9
  44261-6, see ``terms.INSTRUMENTS``) whose rating items match that instrument's, by LOINC
  item code, takes the score of kaptools' built-in template: its items, bands and flags
  (the published LOINC Questionnaires state none of them);
* any other calculated (``calculatedExpression``) number that adds up rating items is their
  total, without bands;
* the band, flag, triage-level and rule items kaptools' own export writes (see ``scoring``)
  are read back as the score they came from. FHIR does not say which flag or level raises
  the client's risk flag, so none does; the generated file says so.

Anything else is refused, item by item, with the reason (``QuestionnaireNotImportable``):
attachments, references, quantities, date-times, URLs, answers that repeat outside a choice
or group, conditions the language cannot state (several questions combined, ``!=`` alone,
expressions), answer lists in an external ValueSet, weights that are not whole numbers in
equal steps, calculations other than sums, groups nested deeper than the language allows.
Nothing is imported partially. The generated TOML is checked with the template language's
own parser before it is returned.
"""

from __future__ import annotations

import functools
import json
import re
import textwrap
import tomllib
from dataclasses import dataclass, field
from typing import Any

from ..modality.schema import (
    DEFAULT_MAX_LENGTH,
    KEY_RE,
    RESERVED_KEYS,
    Scale,
    Shared,
    Template,
    parse_template,
)
from .terms import (
    EXT_AUDIENCE,
    EXT_CALCULATED_EXPRESSION,
    EXT_ENTRY_FORMAT,
    EXT_ITEM_CONTROL,
    EXT_MAX_DECIMAL_PLACES,
    EXT_MAX_OCCURS,
    EXT_MAX_VALUE,
    EXT_MIN_OCCURS,
    EXT_MIN_VALUE,
    EXT_ORDINAL_VALUE,
    EXT_RATING_SCALE,
    EXT_ROW_REFERENCE,
    EXT_UNIT,
    HL7_EXT,
    INSTRUMENTS,
    LOINC,
    LOINC_NOTICE,
    UCUM,
    UCUM_UNITS,
)

# Answer weights, under the names FHIR has given them over the years.
WEIGHT_EXTENSIONS = (EXT_ORDINAL_VALUE, HL7_EXT + "itemWeight", HL7_EXT + "iso21090-CO-value",
                     HL7_EXT + "valueset-ordinalValue")
SDC_EXT = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
# Extensions whose logic the template language cannot carry out.
EXPRESSION_EXTENSIONS = {
    SDC_EXT + "sdc-questionnaire-enableWhenExpression": "shown by an expression",
    SDC_EXT + "sdc-questionnaire-answerExpression": "its answers come from an expression",
    SDC_EXT + "sdc-questionnaire-initialExpression": "its answer is filled by an expression",
    SDC_EXT + "sdc-questionnaire-candidateExpression": "its answers come from an expression",
    HL7_EXT + "questionnaire-hidden": "it is hidden from the person answering",
}
REFUSED_TYPES = {
    "attachment": "an attachment (a file) is not a field type of the template language",
    "reference": "a reference to another FHIR resource is not a field type of the template "
                 "language",
    "quantity": "a quantity with a choice of units is not a field type of the template "
                "language (a number field has one fixed unit)",
    "dateTime": "a date with a time of day is two fields in the template language (date, "
                "time)",
    "url": "a web address is not a field type of the template language",
    "question": "'question' is not an R4 item type",
    "coding": "'coding' is an R5 item type; give an R4 Questionnaire",
}
MAX_PLACES = 6
MAX_LENGTH = 100_000
GROUP_DEPTH = 2  # a group field may hold one more level of groups (schema: depth < 2)
DEFAULT_ITEMS = 50  # max_items of a repeating group that sets no maximum
NUMBER_KINDS = ("integer", "percent", "duration", "decimal")
NO_RISK = ("FHIR does not say which {what} should raise the client's risk flag, so none does: "
           "add `risk = true` to each {what} that should.")

Item = dict[str, Any]
Table = dict[str, Any]


# ---------------------------------------------------------------------------
# What the caller gets


@dataclass(frozen=True)
class ItemProblem:
    """One item the template language cannot represent, and why."""

    link_id: str
    text: str
    reason: str

    def __str__(self) -> str:
        shown = f" (“{_shorten(self.text)}”)" if self.text else ""
        return f"{self.link_id or '(questionnaire)'}{shown}: {self.reason}"


class QuestionnaireNotImportable(ValueError):
    """The Questionnaire holds items the template language cannot represent; nothing is
    imported. ``problems`` names every one of them."""

    def __init__(self, problems: list[ItemProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"This Questionnaire cannot be imported as a template; "
                         f"{len(problems)} item(s) cannot be represented:\n{lines}")


@dataclass(frozen=True)
class ImportedTemplate:
    """The clinic template made from a Questionnaire."""

    slug: str
    title: str
    toml: str
    template: Template  # as the template language reads ``toml``
    keys: dict[str, str] = field(default_factory=dict)  # linkId → field key
    notes: tuple[str, ...] = ()  # what the author should know before using it


def template_from_questionnaire(resource: dict[str, Any]) -> str:
    """The TOML text of a clinic template asking what ``resource`` (a FHIR R4
    Questionnaire, as JSON) asks; raises ``QuestionnaireNotImportable``."""
    return import_questionnaire(resource).toml


def import_questionnaire(resource: dict[str, Any], slug: str | None = None,
                         builtin: dict[str, Template] | None = None,
                         shared: Shared | None = None) -> ImportedTemplate:
    """``resource`` as a clinic template named ``slug`` (default: from the Questionnaire's
    name, id or title). ``builtin`` (slug → template) are the templates whose scores a
    standard instrument borrows, and ``shared`` the named scales; both default to those
    kaptools ships."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Questionnaire":
        raise QuestionnaireNotImportable([ItemProblem(
            "", "", "this is not a FHIR Questionnaire (resourceType must be 'Questionnaire')")])
    if builtin is None or shared is None:
        found_builtin, found_shared = _shipped()
        builtin = found_builtin if builtin is None else builtin
        shared = found_shared if shared is None else shared
    return _Importer(resource, builtin, shared).run(slug)


@functools.lru_cache(maxsize=1)
def _shipped() -> tuple[dict[str, Template], Shared]:
    """The built-in templates (newest version of each) and shared definitions."""
    from ..modality.registry import builtin_dir, load_registry

    registry = load_registry(builtin_dir())
    return {t.slug: t for t in registry.current()}, registry.shared


# ---------------------------------------------------------------------------
# Small helpers


def _shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _ext(element: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next((e for e in element.get("extension", []) or []
                 if isinstance(e, dict) and e.get("url") == url), None)


def _ext_value(element: dict[str, Any], url: str) -> Any:
    found = _ext(element, url)
    if found is None:
        return None
    return next((v for k, v in found.items() if k.startswith("value")), None)


def _item_control(item: Item) -> str | None:
    concept = _ext_value(item, EXT_ITEM_CONTROL) or {}
    return next((c.get("code") for c in concept.get("coding", []) if c.get("code")), None)


def _is_loinc(coding: dict[str, Any]) -> bool:
    # NLM's form builder leaves out the system on some exports; a LOINC code is unmistakable.
    return coding.get("system") in (LOINC, None) and bool(
        re.fullmatch(r"\d{1,7}-\d", str(coding.get("code", ""))))


def _loinc_codes(item: Item) -> list[str]:
    return [str(c["code"]) for c in item.get("code", []) or []
            if isinstance(c, dict) and _is_loinc(c)]


def _slugify(text: str, sep: str) -> str:
    return re.sub(r"[^a-z0-9]+", sep, text.lower()).strip(sep)


def _normal(label: str) -> str:
    return " ".join(label.lower().split())


def _whole(value: Any) -> int | None:
    """``value`` as a whole number, or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if value == int(value) else None


def _weight(option: dict[str, Any]) -> Any:
    for url in WEIGHT_EXTENSIONS:
        found = _ext_value(option, url)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------------------
# FHIRPath as kaptools writes it (``scoring``): read back, never evaluated.

_Q = r"'(?:[^'\\]|\\.)*'"
_ANSWER = (r"%resource\.repeat\(item\)\.where\(linkId = (" + _Q + r")\)\.answer\.value"
           r"(?:\.code\.toInteger\(\)|\.code)?")
_LITERAL = _Q + r"|-?\d+(?:\.\d+)?|true|false|@T[0-9:.]+|@[0-9-]+"
_CONDITION = re.compile(_ANSWER + r" (>|=) (" + _LITERAL + r")")
_RATINGS = (r"%resource\.repeat\(item\)\.where\(linkId in \((" + _Q + r"(?: \| " + _Q
            + r")*)\)\)\.answer\.value\.select\(code\.toInteger\(\)\)")
_BAND = re.compile(r"iif\(\$this >= (-?\d+) and \$this <= (-?\d+), (" + _Q + r"), ")
_FLAG = re.compile(r"iif\((" + _CONDITION.pattern + r"), (" + _Q + r"), \{\}\)")
_CRITERION = re.compile(r"\(" + _RATINGS + r"\.where\(\$this >= (\d+)\)\.count\(\) >= (\d+)\)")
_RULE = re.compile(r"iif\(" + _RATINGS + r"\.count\(\) = \d+, iif\(((?:" + _CRITERION.pattern
                   + r"(?: and )?)+), (" + _Q + r"), (" + _Q + r")\), \{\}\)")
_EXISTS = r"%resource\.repeat\(item\)\.where\(linkId = (" + _Q + r")\)\.answer\.exists\(\)"
_REQUIRES = re.compile(r"iif\(((?:" + _EXISTS + r"(?: and )?)+), ")


def _unquote(literal: str) -> str:
    """A FHIRPath string literal's text: ``\\'`` is a quote, the other escapes are JSON's."""
    out, chars = [], iter(literal[1:-1])
    for char in chars:
        if char == "\\":
            escaped = next(chars, "\\")
            out.append("'" if escaped == "'" else "\\" + escaped)
        else:
            out.append('\\"' if char == '"' else char)
    try:
        return json.loads('"' + "".join(out) + '"')
    except ValueError:
        return literal[1:-1]


def _quoted(expression: str) -> list[str]:
    return [_unquote(m) for m in re.findall(_Q, expression)]


def _literal_value(literal: str) -> Any:
    if literal.startswith("'"):
        return _unquote(literal)
    if literal in ("true", "false"):
        return literal == "true"
    if literal.startswith("@T"):
        return literal[2:7]
    if literal.startswith("@"):
        return literal[1:]
    return float(literal) if "." in literal else int(literal)


# ---------------------------------------------------------------------------
# The import


@dataclass
class _Field:
    """A field being built: its TOML table, where it sits, and its raw condition."""

    link_id: str
    key: str
    kind: str
    table: Table
    scope: str  # "" at the top level, else the linkId of the group whose rows hold it
    item: Item
    options: dict[tuple[str | None, str], Any] = field(default_factory=dict)  # code → value
    scale: Scale | None = None


@dataclass
class _Calculated:
    """A computed item, read as (part of) a score once every field is known."""

    item: Item
    expression: str
    kind: str  # "total" or "string"


class _Importer:
    def __init__(self, resource: dict[str, Any], builtin: dict[str, Template],
                 shared: Shared) -> None:
        self.resource = resource
        self.builtin = builtin
        self.shared = shared
        self.problems: list[ItemProblem] = []
        self.notes: list[str] = []
        self.fields: dict[str, _Field] = {}  # by linkId
        self.keys_in_scope: dict[str, set[str]] = {}
        self.calculated: list[_Calculated] = []
        self.instrument_totals: list[tuple[str, str, Item]] = []  # (slug, score key, item)
        self.borrowed_from: str | None = None
        self.contained = {r.get("id"): r for r in resource.get("contained", []) or []
                          if isinstance(r, dict) and r.get("resourceType") == "ValueSet"}

    def refuse(self, item: Item, reason: str) -> None:
        self.problems.append(ItemProblem(str(item.get("linkId", "")),
                                         str(item.get("text") or ""), reason))

    # The whole Questionnaire ------------------------------------------------
    def run(self, slug: str | None) -> ImportedTemplate:
        items = self.resource.get("item")
        if not isinstance(items, list) or not items:
            raise QuestionnaireNotImportable([ItemProblem("", "", "the Questionnaire has no "
                                                                  "items")])
        title = str(self.resource.get("title") or self.resource.get("name")
                    or self.resource.get("id") or "Imported questionnaire")
        sections = self.sections(items, title)
        for pending in list(self.fields.values()):
            self.condition(pending)
        scores = self.scores()
        if self.problems:
            raise QuestionnaireNotImportable(self.problems)
        slug = slug or self.slug()
        data = self.template_table(slug, title, sections, scores)
        text = _Writer(self.header(title)).document(data)
        template, problems = parse_template(tomllib.loads(text), f"{slug}/v1.toml", self.shared,
                                            expect_slug=slug, expect_version=1)
        if template is None:
            raise QuestionnaireNotImportable([ItemProblem(
                "", "", f"the template made from it does not pass the checks: {p.path}: "
                        f"{p.message}") for p in problems])
        keys = {f.link_id: f.key for f in self.fields.values()}
        return ImportedTemplate(slug, title, text, template, keys, tuple(self.notes))

    def slug(self) -> str:
        for source in ("name", "id", "title"):
            value = self.resource.get(source)
            if isinstance(value, str) and (found := _slugify(value, "-")):
                found = found if found[0].isalpha() else f"q-{found}"
                if len(found) > 48:
                    found = found[:48].rsplit("-", 1)[0]
                if len(found) >= 2:
                    return found
        return "imported-questionnaire"

    def header(self, title: str) -> list[str]:
        origin = f"Imported from the FHIR Questionnaire “{title}”"
        url = self.resource.get("url")
        if url:
            version = self.resource.get("version")
            origin += f" ({url}{'|' + str(version) if version else ''})"
        lines = [origin + ".",
                 "Before it is used: read every label and choice against the original, add a "
                 "[sample] of synthetic answers, and run `kaptools modalities check`. Field "
                 "keys are permanent once notes use them; a comment above a field gives its "
                 "FHIR linkId when the key differs."]
        return lines + [f"Note: {note}" for note in self.notes]

    def template_table(self, slug: str, title: str, sections: list[Table],
                       scores: list[Table]) -> Table:
        description = self.resource.get("description") or self.resource.get("purpose") or \
            f"Imported from the FHIR Questionnaire “{title}”."
        credit = str(self.resource.get("copyright") or "")
        if self.borrowed_from and not credit:
            credit = self.builtin[self.borrowed_from].credit
        if self.uses_loinc() and LOINC_NOTICE not in credit:
            credit = f"{credit}\n\n{LOINC_NOTICE}" if credit else LOINC_NOTICE
        data: Table = {"slug": slug, "version": 1, "title": title,
                       "category": "Outcome measures" if scores else "Clinic",
                       "description": " ".join(str(description).split())}
        if credit:
            data["credit"] = credit
        data["sections"] = sections
        if scores:
            data["scores"] = scores
        return data

    def uses_loinc(self) -> bool:
        def walk(items: list[Item]) -> bool:
            return any(_loinc_codes(i) or walk(i.get("item", []) or []) for i in items)
        panel = [c for c in self.resource.get("code", []) or [] if _is_loinc(c)]
        return bool(panel) or walk(self.resource.get("item", []))

    # Sections -----------------------------------------------------------------
    def sections(self, items: list[Item], title: str) -> list[Table]:
        """Top-level groups that do not repeat are sections; the other items, in runs
        between them, are gathered into sections of their own."""
        sections: list[Table] = []
        loose: list[Item] = []
        pending_help: list[str] = []
        used_keys: set[str] = set()

        def close_loose() -> None:
            if not loose:
                return
            fields = self.field_list(loose, "", 0)
            if fields:
                name = title if not sections else "More questions"
                sections.append(self.section_table(_unique("items", used_keys), name,
                                                   pending_help, fields))
            loose.clear()

        for item in items:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "display" and not loose:
                pending_help.append(str(item.get("text") or ""))
                continue
            if item.get("type") == "group" and not item.get("repeats") \
                    and not self.is_calculated(item):
                close_loose()
                self.check_item(item)
                if item.get("enableWhen"):
                    self.refuse(item, "a section shown only on a condition: the template "
                                      "language puts conditions on fields, not on sections")
                children = [c for c in item.get("item", []) or [] if isinstance(c, dict)]
                helps = [str(c.get("text") or "") for c in children
                         if c.get("type") == "display"]
                fields = self.field_list([c for c in children if c.get("type") != "display"],
                                         "", 0)
                if not fields:
                    pending_help.extend([str(item.get("text") or "")] + helps)
                    continue
                key = _unique(_key_text(_strip_prefix(str(item.get("linkId", "")), "section-")),
                              used_keys)
                sections.append(self.section_table(
                    key, str(item.get("text") or f"Section {len(sections) + 1}"),
                    pending_help + helps, fields))
                pending_help = []
            else:
                loose.append(item)
        close_loose()
        if pending_help and sections:
            sections[-1]["help"] = "\n\n".join(
                filter(None, [sections[-1].get("help", ""), *pending_help]))
        if not sections and not self.problems:
            self.refuse({}, "the Questionnaire asks no question the template language can "
                            "hold")
        return sections

    def section_table(self, key: str, title: str, helps: list[str], fields: list[Table]
                      ) -> Table:
        table: Table = {"key": key, "title": title}
        if text := "\n\n".join(h for h in helps if h):
            table["help"] = text
        table["fields"] = fields
        return table

    # Fields -------------------------------------------------------------------
    def field_list(self, items: list[Item], scope: str, depth: int) -> list[Table]:
        """The fields for ``items`` at one level; display items become help of the field
        before them (or of the first field, when they lead)."""
        tables: list[Table] = []
        leading: list[str] = []
        for item in items:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "display":
                if tables:
                    _add_help(tables[-1], str(item.get("text") or ""))
                else:
                    leading.append(str(item.get("text") or ""))
                continue
            if self.is_calculated(item):
                continue
            built = self.field(item, scope, depth)
            if built is not None:
                tables.append(built)
        if tables and leading:
            for text in reversed(leading):
                _add_help(tables[0], text, first=True)
        return tables

    def is_calculated(self, item: Item) -> bool:
        """A score kaptools computes: noted for later, never a field."""
        if any(item is known for _, _, known in self.instrument_totals) or any(
                item is calc.item for calc in self.calculated):
            return True
        for slug, codes in INSTRUMENTS.items():
            for score_key, (code, _display) in codes.scores.items():
                if code in _loinc_codes(item) and slug in self.builtin:
                    self.instrument_totals.append((slug, score_key, item))
                    return True
        expression = (_ext_value(item, EXT_CALCULATED_EXPRESSION) or {}).get("expression")
        if expression is None:
            return False
        kind = "total" if item.get("type") in ("integer", "decimal") else "string"
        self.calculated.append(_Calculated(item, str(expression), kind))
        return True

    def check_item(self, item: Item) -> bool:
        """Refuse what no field type can hold, whatever the item's type."""
        ok = True
        for url, reason in EXPRESSION_EXTENSIONS.items():
            if _ext(item, url) is not None:
                self.refuse(item, reason + ", which the template language cannot do")
                ok = False
        if not isinstance(item.get("linkId"), str) or not item.get("linkId"):
            self.refuse(item, "has no linkId")
            ok = False
        return ok

    def field(self, item: Item, scope: str, depth: int) -> Table | None:
        kind = item.get("type")
        if kind in REFUSED_TYPES:
            self.refuse(item, REFUSED_TYPES[kind])
            return None
        if not self.check_item(item):
            return None
        if item.get("readOnly"):
            self.refuse(item, "a read-only answer that is not calculated: the template "
                              "language has no field that is filled in for the therapist")
            return None
        if kind != "group" and any(isinstance(c, dict) and c.get("type") != "display"
                                   for c in item.get("item", []) or []):
            self.refuse(item, "questions nested under a question: the template language "
                              "nests fields only in repeating groups")
            return None
        if item.get("repeats") and kind not in ("choice", "group"):
            self.refuse(item, "takes several answers: a template field takes one (put it in "
                              "a repeating group instead)")
            return None
        label = str(item.get("text") or "").strip() or next(
            (str(c.get("display")) for c in item.get("code", []) or [] if c.get("display")), "")
        if not label:
            self.refuse(item, "has no text to show as the field's label")
            return None
        if item.get("prefix"):
            label = f"{item['prefix']} {label}"
        link_id = str(item["linkId"])
        if link_id in self.fields:
            self.refuse(item, "another item has the same linkId")
            return None
        keys = self.keys_in_scope.setdefault(scope, set())
        key = _unique(_key_text(_inner_link_id(link_id, scope)), keys)
        shown = key != _inner_link_id(link_id, scope)
        table: Table = {"_comment": f"linkId {json.dumps(link_id, ensure_ascii=False)}"
                        if shown else "", "key": key}
        built = _Field(link_id, key, "", table, scope, item)
        builder = getattr(self, f"_type_{str(kind).replace('-', '_')}", None)
        if builder is None:
            self.refuse(item, f"the item type {kind!r} is not one the template language has")
            return None
        if builder(item, built, label, depth) is False:
            return None
        if item.get("required") and built.kind != "group":
            table["required"] = True
        if placeholder := _ext_value(item, EXT_ENTRY_FORMAT):
            table["placeholder"] = str(placeholder)
        if _ext_value(item, EXT_AUDIENCE) == "client":
            table["audience"] = "client"
        if "initial" in item:
            self.notes.append(f"the initial answer of {link_id!r} is not kept: templates "
                              "start empty")
        helps = [str(c.get("text") or "") for c in item.get("item", []) or []
                 if isinstance(c, dict) and c.get("type") == "display"]
        for text in helps:
            _add_help(table, text)
        self.fields[link_id] = built
        return table

    def _start(self, built: _Field, kind: str, label: str) -> Table:
        built.kind = kind
        built.table.update(type=kind, label=label)
        return built.table

    # One method per item type ---------------------------------------------
    def _type_string(self, item: Item, built: _Field, label: str, depth: int) -> bool:
        table = self._start(built, "text", label)
        return self._length(item, table, "text")

    def _type_text(self, item: Item, built: _Field, label: str, depth: int) -> bool:
        table = self._start(built, "longtext", label)
        return self._length(item, table, "longtext")

    def _length(self, item: Item, table: Table, kind: str) -> bool:
        limit = _whole(item.get("maxLength"))
        if limit is not None and not 1 <= limit <= MAX_LENGTH:
            self.refuse(item, f"maxLength {limit} is outside what a text field allows "
                              f"(1 to {MAX_LENGTH})")
            return False
        if limit is not None and limit != DEFAULT_MAX_LENGTH[kind]:
            table["max_length"] = limit
        return True

    def _type_open_choice(self, item: Item, built: _Field, label: str, depth: int) -> bool:
        if item.get("repeats"):
            self.refuse(item, "an open choice with several answers: a text field takes one")
            return False
        options = self.options(item)
        if options is None:
            return False
        table = self._start(built, "text", label)
        table["suggestions"] = [o[1] for o in options]
        return self._length(item, table, "text")

    def _type_integer(self, item: Item, built: _Field, label: str, depth: int) -> bool:
        lo, hi = _ext_value(item, EXT_MIN_VALUE), _ext_value(item, EXT_MAX_VALUE)
        unit = _ext_value(item, EXT_UNIT) or {}
        code, shown = unit.get("code"), unit.get("display") or unit.get("code") or ""
        if unit.get("system") == UCUM and code in ("min", "s") and (lo is None or lo >= 0):
            table = self._start(built, "duration", label)
            table["unit"] = "minutes" if code == "min" else "seconds"
            _bounds(table, lo if lo not in (None, 0) else None, hi)
        elif shown == "%" and lo == 0 and hi == 100:
            self._start(built, "percent", label)
        else:
            table = self._start(built, "integer", label)
            _bounds(table, lo, hi)
            if shown:
                table["unit"] = _unit_name(unit)
        return True

    def _type_decimal(self, item: Item, built: _Field, label: str, depth: int) -> bool:
        table = self._start(built, "decimal", label)
        _bounds(table, _ext_value(item, EXT_MIN_VALUE), _ext_value(item, EXT_MAX_VALUE))
        unit = _ext_value(item, EXT_UNIT) or {}
        if unit.get("display") or unit.get("code"):
            table["unit"] = _unit_name(unit)
        places = _ext_value(item, EXT_MAX_DECIMAL_PLACES)
        if places is not None:
            if _whole(places) is None or not 0 <= places <= MAX_PLACES:
                self.refuse(item, f"keeps {places} decimal places; a decimal field keeps 0 to "
                                  f"{MAX_PLACES}")
                return False
            if places != 2:
                table["places"] = int(places)
        return True

    def _type_boolean(self, item: Item, built: _Field, label: str, depth: int) -> bool:
        self._start(built, "yesno", label)
        return True

    def _type_date(self, item: Item, built: _Field, label: str, depth: int) -> bool:
        self._start(built, "date", label)
        return True

    def _type_time(self, item: Item, built: _Field, label: str, depth: int) -> bool:
        self._start(built, "time", label)
        return True

    def _type_choice(self, item: Item, built: _Field, label: str, depth: int) -> bool:
        if (group := _ext_value(item, EXT_ROW_REFERENCE)) is not None:
            table = self._start(built, "ref", label)
            table["_ref"] = str(group)  # a linkId, made a key once every field is known
            return True
        options = self.options(item)
        if options is None:
            return False
        weights = [w for _, _, w in options]
        if not item.get("repeats") and any(w is not None for w in weights):
            return self.scale(item, built, label, options)
        kind = "multichoice" if item.get("repeats") else "choice"
        table = self._start(built, kind, label)
        seen: set[str] = set()
        choices: list[Any] = []
        for (system, code), display, _weight in options:
            value = code
            if value in seen:
                self.refuse(item, f"two answers share the code {value!r}")
                return False
            seen.add(value)
            built.options[(system, code)] = value
            choices.append(display if _slugify(display, "_")[:48] == value and display
                           else {"value": value, "label": display or value})
        table["choices"] = choices
        if _item_control(item) == "drop-down" and kind == "choice":
            table["widget"] = "select"
        if kind == "multichoice" and (most := _whole(_ext_value(item, EXT_MAX_OCCURS))):
            table["max_selected"] = most
        return True

    def scale(self, item: Item, built: _Field, label: str,
              options: list[tuple[tuple[str | None, str], str, Any]]) -> bool:
        """A choice whose answers carry weights: a rating scale of those weights."""
        weights = [_whole(w) for _, _, w in options]
        if any(w is None for w in weights):
            self.refuse(item, "some answers carry no weight or one that is not a whole "
                              "number; a rating scale rates in whole numbers")
            return False
        values = sorted(w for w in weights if w is not None)
        step = values[1] - values[0] if len(values) > 1 else 1
        if len(set(values)) != len(values) or step < 1 or values != list(
                range(values[0], values[-1] + 1, step)):
            self.refuse(item, "answer weights " + ", ".join(map(str, values)) + " are not "
                              "one answer per step from the lowest to the highest; a rating "
                              "scale rates in equal steps")
            return False
        anchors = []
        for ((system, code), display, weight) in options:
            value = int(weight)
            built.options[(system, code)] = value
            text = re.sub(rf"^{value}\s*[–-]\s*", "", display).strip()
            if text and text != str(value):
                anchors.append((value, text))
        anchors.sort()
        scale = Scale("", "", values[0], values[-1], step, tuple(anchors))
        built.scale = scale
        table = self._start(built, "scale", label)
        named = self.named_scale(item, scale)
        if named is not None and named.anchors == scale.anchors:
            table["scale"] = named.key
            return True
        name = named.name if named is not None else str(
            _ext_value(item, EXT_RATING_SCALE) or f"{self.title_for_scale()} "
                                                  f"({values[0]}–{values[-1]})")
        table.update(min=values[0], max=values[-1])
        if step != 1:
            table["step"] = step
        table["anchors"] = [{"value": v, "label": t} for v, t in anchors]
        table["name"] = name
        return True

    def title_for_scale(self) -> str:
        return str(self.resource.get("title") or self.resource.get("name") or "Rating")

    def named_scale(self, item: Item, scale: Scale) -> Scale | None:
        """The shared scale this rating is: named by kaptools' rating-scale extension, or
        the scale of the built-in instrument item with the same LOINC code."""
        def same(named: Scale) -> bool:
            return (named.min, named.max, named.step) == (scale.min, scale.max, scale.step)

        name = _ext_value(item, EXT_RATING_SCALE)
        for named in self.shared.scales.values():
            if name and named.name == name and same(named):
                return _with_labels(named, scale)
        codes = set(_loinc_codes(item))
        for slug, instrument in INSTRUMENTS.items():
            shipped = self.builtin.get(slug)
            for key, code in instrument.items.items():
                f = shipped.field(key) if shipped else None
                if code in codes and f is not None and f.scale is not None and same(f.scale):
                    return _with_labels(f.scale, scale)
        return None

    def _type_group(self, item: Item, built: _Field, label: str, depth: int) -> bool:
        if depth >= GROUP_DEPTH:
            self.refuse(item, "groups nested deeper than the template language allows "
                              "(a section, a group, and one group within it)")
            return False
        table = self._start(built, "group", label)
        repeats = bool(item.get("repeats"))
        lo = _whole(_ext_value(item, EXT_MIN_OCCURS))
        hi = _whole(_ext_value(item, EXT_MAX_OCCURS))
        lo = lo if lo is not None else (1 if item.get("required") else 0)
        hi = (hi if hi is not None else DEFAULT_ITEMS) if repeats else 1
        if lo:
            table["min_items"] = lo
        if hi != DEFAULT_ITEMS:
            table["max_items"] = hi
        children = [c for c in item.get("item", []) or [] if isinstance(c, dict)]
        helps = [str(c.get("text") or "") for c in children if c.get("type") == "display"]
        fields = self.field_list([c for c in children if c.get("type") != "display"],
                                 str(item["linkId"]), depth + 1)
        if not fields:
            self.refuse(item, "a group without questions the template language can hold")
            return False
        for text in helps:
            _add_help(table, text)
        table["fields"] = fields
        return True

    # Answer lists ---------------------------------------------------------
    def options(self, item: Item) -> list[tuple[tuple[str | None, str], str, Any]] | None:
        """((system, code), display, weight) of each answer, from ``answerOption`` or a
        contained ValueSet; None (refused) when there is no list to read."""
        raw = item.get("answerOption")
        if raw is None and item.get("answerValueSet"):
            raw = self.value_set(item, str(item["answerValueSet"]))
            if raw is None:
                return None
        if not raw:
            self.refuse(item, "a choice without a list of answers")
            return None
        found = []
        for option in raw:
            value = next(((k, v) for k, v in option.items() if k.startswith("value")), None)
            if value is None:
                self.refuse(item, "an answer without a value")
                return None
            kind, content = value
            if kind == "valueCoding":
                code = str(content.get("code") or "")
                if not code:
                    self.refuse(item, "an answer coded without a code")
                    return None
                found.append(((content.get("system"), code),
                              str(content.get("display") or code), _weight(option)))
            elif kind in ("valueString", "valueInteger", "valueDate", "valueTime"):
                text = str(content)
                found.append(((None, _slugify(text, "_")[:48] or text), text, _weight(option)))
            else:
                self.refuse(item, f"an answer given as {kind}, which a choice cannot offer")
                return None
        return found

    def value_set(self, item: Item, reference: str) -> list[dict[str, Any]] | None:
        """Answers of a ValueSet contained in the Questionnaire (``#id``), as answerOptions."""
        value_set = self.contained.get(reference[1:]) if reference.startswith("#") else None
        if value_set is None:
            self.refuse(item, f"its answers are in the ValueSet {reference}, which is not "
                              "contained in the Questionnaire; the template language needs "
                              "the list itself (expand it into answerOption)")
            return None
        concepts = (value_set.get("expansion") or {}).get("contains")
        if not concepts:
            concepts = [{**c, "system": inc.get("system")}
                        for inc in (value_set.get("compose") or {}).get("include", [])
                        for c in inc.get("concept", []) or []]
        if not concepts:
            self.refuse(item, f"the contained ValueSet {reference} lists no codes (an "
                              "intensional ValueSet must be expanded)")
            return None
        return [{"valueCoding": {k: c[k] for k in ("system", "code", "display") if c.get(k)},
                 "extension": c.get("extension", [])} for c in concepts]

    # Conditions -----------------------------------------------------------
    def condition(self, built: _Field) -> None:
        """enableWhen as show_if (once every field, and so every answer, is known)."""
        whens = built.item.get("enableWhen")
        if built.kind == "ref":
            self.reference(built)
        if not whens:
            return
        item = built.item
        questions = {w.get("question") for w in whens}
        if len(questions) != 1:
            self.refuse(item, "shown on conditions about several questions; a field's "
                              "condition names one")
            return
        target = self.fields.get(str(next(iter(questions))))
        if target is None or target.scope != built.scope:
            self.refuse(item, "shown on a condition about an item that is not a field at "
                              "the same level (or could not be imported); a condition names "
                              "a field at its own level")
            return
        ops = [w.get("operator") for w in whens]
        behaviour = built.item.get("enableBehavior", "any")
        show_if: Table | None = None
        if len(whens) == 1:
            show_if = self.one_condition(item, target, whens[0])
        elif set(ops) == {"="} and behaviour == "any" and target.kind != "multichoice":
            values = [self.answer(item, target, w) for w in whens]
            if all(v is not _NO for v in values):
                show_if = {"field": target.key, "in": values}
        elif sorted(map(str, ops)) == ["!=", "exists"] and behaviour == "all" and any(
                w.get("operator") == "exists" and w.get("answerBoolean") is True
                for w in whens):
            value = self.answer(item, target, next(w for w in whens if w["operator"] == "!="))
            if value is not _NO:
                show_if = {"field": target.key, "not_equals": value}
        else:
            self.refuse(item, "shown when several conditions combine, which the template "
                              "language cannot say (one condition per field)")
            return
        if show_if is not None:
            built.table["show_if"] = show_if

    def one_condition(self, item: Item, target: _Field, when: dict[str, Any]) -> Table | None:
        op = when.get("operator")
        if op == "exists":
            return {"field": target.key, "filled": bool(when.get("answerBoolean"))}
        if op == "=":
            value = self.answer(item, target, when)
            return None if value is _NO else {"field": target.key, "equals": value}
        if op in ("<", ">", "<=", ">=") and target.kind in NUMBER_KINDS:
            value = self.answer(item, target, when)
            if value is _NO:
                return None
            if op in ("<=", ">="):
                if target.kind == "decimal":
                    self.refuse(item, f"shown when a decimal answer is {op} {value}; the "
                                      "template language compares with < and > only")
                    return None
                op, value = ("<", value + 1) if op == "<=" else (">", value - 1)
            return {"field": target.key, "lt" if op == "<" else "gt": value}
        if op == "!=":
            self.refuse(item, "shown when an answer differs ('!='), which in FHIR R4 also "
                              "holds while the question is unanswered; the template language "
                              "cannot say that")
            return None
        self.refuse(item, f"shown on the comparison {op!r} of a {target.kind} answer, which "
                          "the template language cannot make")
        return None

    def answer(self, item: Item, target: _Field, when: dict[str, Any]) -> Any:
        """The enableWhen answer as the stored value of ``target``; _NO when refused."""
        kind, value = next(((k, v) for k, v in when.items() if k.startswith("answer")),
                           (None, None))
        if kind == "answerCoding" and target.kind == "ref":
            return str(value.get("code"))
        if kind == "answerCoding" and target.options:
            key = (value.get("system"), str(value.get("code")))
            found = target.options.get(key)
            if found is None:  # a coding that gives no system matches the code alone
                found = next((v for (s, c), v in target.options.items()
                              if c == key[1] and (key[0] is None or s is None)), None)
            if found is not None:
                return found
        elif kind == "answerString" and target.kind in ("choice", "multichoice"):
            found = target.options.get((None, _slugify(str(value), "_")[:48] or str(value)))
            if found is not None:
                return found
        elif kind == "answerBoolean" and target.kind == "yesno":
            return bool(value)
        elif kind in ("answerInteger", "answerDecimal") and target.kind in NUMBER_KINDS:
            number = value if target.kind == "decimal" else _whole(value)
            if isinstance(number, int | float) and not isinstance(number, bool):
                return number
        elif kind in ("answerString",) and target.kind in ("text", "longtext"):
            return str(value)
        elif kind == "answerDate" and target.kind == "date":
            return str(value)
        elif kind == "answerTime" and target.kind == "time" and str(value).endswith(":00"):
            return str(value)[:5]
        self.refuse(item, f"shown when {target.link_id!r} has an answer ({kind}) that it "
                          "cannot give")
        return _NO

    def reference(self, built: _Field) -> None:
        """A row reference names its group by linkId; the template by key."""
        group = self.fields.get(built.table.pop("_ref"))
        if group is None or group.kind != "group":
            self.refuse(built.item, "refers to rows of an item that is not a repeating group")
            return
        built.table["group"] = group.key

    # Scores ---------------------------------------------------------------
    def scores(self) -> list[Table]:
        scores: list[Table] = []
        totals: dict[str, Table] = {}  # linkId → score table
        expressions: dict[str, Table] = {}  # a total's expression → its score table
        keys: set[str] = set()

        def add(table: Table | None, calc: _Calculated) -> None:
            if table is not None:
                scores.append(table)
                totals[str(calc.item.get("linkId"))] = table
                expressions[calc.expression] = table

        for slug, score_key, item in self.instrument_totals:
            expression = (_ext_value(item, EXT_CALCULATED_EXPRESSION) or {}).get("expression")
            calc = _Calculated(item, str(expression or ""), "total")
            borrowed = self.borrowed(slug, score_key, item, keys)
            if borrowed is not None:
                add(borrowed, calc)
            elif expression:  # not the instrument's items: read it as any other total
                add(self.total(calc, keys), calc)
            else:
                shipped = self.builtin[slug]
                self.refuse(item, f"carries the LOINC code of the {shipped.title} score, but "
                                  "its rating items are not that instrument's (by LOINC code "
                                  "and scale) and it says nothing of how it is calculated, so "
                                  "kaptools cannot compute it")
        for calc in self.calculated:
            if calc.kind == "total":
                add(self.total(calc, keys), calc)
        for calc in self.calculated:
            if calc.kind == "string":
                self.string_score(calc, scores, totals, expressions, keys)
        return scores

    def top_field(self, link_id: str) -> _Field | None:
        found = self.fields.get(link_id)
        return found if found is not None and found.scope == "" else None

    def borrowed(self, slug: str, score_key: str, item: Item, keys: set[str]) -> Table | None:
        """The built-in instrument's score, when this Questionnaire's rating items are that
        instrument's (by LOINC code) and rate on the same scale."""
        shipped = self.builtin[slug]
        score = next((s for s in shipped.scores if s.key == score_key), None)
        codes = INSTRUMENTS[slug]
        by_code = {code: f for f in self.fields.values() if f.scope == ""
                   for code in _loinc_codes(f.item)}
        mapped: dict[str, _Field] = {}
        if score is None or score.is_levels or score.is_criteria:
            return None
        for key in score.items + tuple(flag.field for flag in score.flags):
            mine = by_code.get(codes.items.get(key, ""))
            theirs = shipped.field(key)
            if mine is None or theirs is None or theirs.scale is None or mine.scale is None \
                    or (mine.scale.min, mine.scale.max) != (theirs.scale.min, theirs.scale.max):
                return None
            mapped[key] = mine
        self.borrowed_from = slug
        table: Table = {"key": _unique(score.key, keys), "label": score.label,
                        "sum": [mapped[k].key for k in score.items]}
        if score.bands:
            table["bands"] = [{"min": b.min, "max": b.max, "label": b.label}
                              for b in score.bands]
        if score.flags:
            table["flags"] = [{"field": mapped[f.field].key, f.op: f.value, "label": f.label,
                               **({"risk": True} if f.risk else {})} for f in score.flags]
        parts = "items, bands and flags" if score.flags else "items and bands"
        table["_comment"] = (f"As kaptools' built-in {shipped.slug} template scores it ({parts}"
                             "), matched by LOINC codes: the Questionnaire does not state them.")
        self.notes.append(
            f"the score “{score.label}” (LOINC {codes.scores[score_key][0]}) is that of "
            f"kaptools' built-in {shipped.slug} template; like it, it is given only once every "
            "item is answered.")
        return table

    def total(self, calc: _Calculated, keys: set[str]) -> Table | None:
        """A calculated number that adds up rating items: their total."""
        named = [f for text in _quoted(calc.expression) + self.variables(calc.item)
                 if (f := self.fields.get(text)) is not None]
        named = list({id(f): f for f in named}.values())
        stripped = re.sub(r"%[A-Za-z_][\w.-]*", "", re.sub(_Q, "''", calc.expression))
        not_a_sum = re.search(r"[*/-]|\b(?:div|mod|avg|min|max)\b", stripped)
        if not named or not_a_sum or any(f.kind != "scale" or f.scope for f in named):
            self.refuse(calc.item, "a calculated value other than a total of rating items at "
                                   "the top level; kaptools computes only such totals (and "
                                   "its own bands, flags and rules)")
            return None
        link_id = str(calc.item.get("linkId"))
        return {"key": _unique(_key_text(_strip_prefix(link_id, "score-")), keys),
                "label": str(calc.item.get("text") or "Total"),
                "sum": [f.key for f in named]}

    def variables(self, item: Item) -> list[str]:
        """The strings quoted in the item's and the Questionnaire's variables."""
        found = []
        for owner in (item, self.resource):
            for ext in owner.get("extension", []) or []:
                if ext.get("url") == HL7_EXT + "variable":
                    found += _quoted(str((ext.get("valueExpression") or {}).get("expression",
                                                                                 "")))
        return found

    def string_score(self, calc: _Calculated, scores: list[Table], totals: dict[str, Table],
                     expressions: dict[str, Table], keys: set[str]) -> None:
        """kaptools' own band, flags, triage level or rule items (see ``scoring``)."""
        expr, item = calc.expression, calc.item
        for total_expression, table in expressions.items():
            if expr.startswith(total_expression + ".select(") and expr.endswith(")"):
                bands = [{"min": int(lo), "max": int(hi), "label": _unquote(label)}
                         for lo, hi, label in _BAND.findall(expr)]
                if bands:
                    table.setdefault("bands", bands)
                    return
        if _FLAG.fullmatch(expr.split(" | ")[0]):
            flags = [self.flag(m) for m in _FLAG.finditer(expr)]
            owner = totals.get(_strip_suffix(str(item.get("linkId")), "-flags"))
            rebuilt = " | ".join(m.group(0) for m in _FLAG.finditer(expr))
            if owner is not None and rebuilt == expr and all(f is not None for f in flags):
                if "flags" not in owner:
                    owner["flags"] = flags
                    owner["_comment"] = NO_RISK.format(what="flag")
                    self.notes.append(f"the flags of “{owner['label']}” do not raise the "
                                      "client's risk flag; see the comment above the score.")
                return
        if (rule := self.rule(expr, totals)) is not None or \
                (rule := self.levels(expr)) is not None:
            link_id = str(item.get("linkId"))
            table = {"key": _unique(_key_text(_strip_prefix(link_id, "score-")), keys),
                     "label": str(item.get("text") or "Result"), **rule}
            if "levels" in rule:
                table["_comment"] = NO_RISK.format(what="level")
                self.notes.append(f"the levels of “{table['label']}” do not raise the "
                                  "client's risk flag; see the comment above the score.")
            scores.append(table)
            return
        self.refuse(item, "a calculated text kaptools cannot read as a band, flag, triage "
                          "level or rule of a score; kaptools computes its scores itself")

    def flag(self, match: re.Match[str]) -> Table | None:
        cond = self.condition_table(match.group(1))
        return None if cond is None else {**cond, "label": _unquote(match.group(5))}

    def condition_table(self, text: str) -> Table | None:
        m = _CONDITION.fullmatch(text)
        if m is None:
            return None
        target = self.top_field(_unquote(m.group(1)))
        if target is None:
            return None
        value = _literal_value(m.group(3))
        if target.kind in ("choice", "multichoice") and isinstance(value, str):
            value = target.options.get((None, value), next(
                (v for (_, c), v in target.options.items() if c == value), value))
        return {"field": target.key, "gt" if m.group(2) == ">" else "equals": value}

    def rule(self, expr: str, totals: dict[str, Table]) -> Table | None:
        m = _RULE.fullmatch(expr)
        if m is None:
            return None
        criteria = []
        for n, crit in enumerate(_CRITERION.finditer(m.group(2)), start=1):
            fields = [self.top_field(_unquote(q)) for q in re.findall(_Q, crit.group(1))]
            if any(f is None or f.kind != "scale" for f in fields):
                return None
            keys = [f.key for f in fields if f is not None]
            label = next((t["label"] for t in totals.values() if t.get("sum") == keys),
                         f"Criterion {n}")
            criteria.append({"label": label, "items": keys,
                             "rated_at_least": int(crit.group(2)), "count": int(crit.group(3))})
        return {"criteria": criteria, "met": _unquote(m.group(len(m.groups()) - 1)),
                "not_met": _unquote(m.group(len(m.groups())))}

    def levels(self, expr: str) -> Table | None:
        requires: list[str] = []
        if (head := _REQUIRES.match(expr)) is not None and expr.endswith(", {})"):
            for q in re.findall(_EXISTS, head.group(1)):
                target = self.top_field(_unquote(q))
                if target is None:
                    return None
                requires.append(target.key)
            expr = expr[head.end():-len(", {})")]
        parsed = self.ranked(expr)
        if parsed is None or not parsed[0]:
            return None
        levels, otherwise = parsed
        table: Table = {"levels": levels}
        if otherwise:
            table["otherwise"] = otherwise
        if requires:
            table["requires"] = requires
        return table

    def ranked(self, expr: str) -> tuple[list[Table], str] | None:
        """``iif((cond) or (cond), 'label', <ranked>)``, ending in a label or ``{}``."""
        levels: list[Table] = []
        while expr.startswith("iif(("):
            conditions: list[Table] = []
            rest = expr[4:]
            while rest.startswith("("):
                m = _CONDITION.match(rest, 1)
                if m is None or not rest.startswith(")", m.end()):
                    return None
                cond = self.condition_table(m.group(0))
                if cond is None:
                    return None
                conditions.append(cond)
                rest = rest[m.end() + 1:]
                rest = rest[4:] if rest.startswith(" or ") else rest
            label = re.match(r", (" + _Q + r"), ", rest)
            if label is None or not rest.endswith(")"):
                return None
            levels.append({"label": _unquote(label.group(1)), "any": conditions})
            expr = rest[label.end():-1]
        if expr == "{}":
            return levels, ""
        if re.fullmatch(_Q, expr):
            return levels, _unquote(expr)
        return None


_NO = object()  # an answer that could not be read (and was refused)


def _with_labels(named: Scale, scale: Scale) -> Scale:
    """``named``, or — when the Questionnaire words its anchors differently — the same
    scale with the Questionnaire's anchors (its wording is what the client reads)."""
    if [(v, _normal(t)) for v, t in named.anchors] == [(v, _normal(t)) for v, t in
                                                       scale.anchors]:
        return named
    return Scale(named.key, named.name, named.min, named.max, named.step, ())


def _bounds(table: Table, lo: Any, hi: Any) -> None:
    for name, bound in (("min", lo), ("max", hi)):
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            table[name] = bound


def _unit_name(unit: dict[str, Any]) -> str:
    """kaptools' name for a unit: its display, or the word for a UCUM code it ships."""
    reverse = {code: name for name, code in UCUM_UNITS.items() if code != "/min"}
    return str(unit.get("display") or reverse.get(str(unit.get("code")), unit.get("code")))


def _add_help(table: Table, text: str, first: bool = False) -> None:
    text = text.strip()
    if not text:
        return
    parts = [table["help"]] if table.get("help") else []
    parts.insert(0 if first else len(parts), text)
    table["help"] = "\n\n".join(parts)


def _inner_link_id(link_id: str, parent: str) -> str:
    """A row field's own part of its linkId (``since_last.what`` → ``what``)."""
    for sep in (".", "/"):
        if parent and link_id.startswith(parent + sep) and len(link_id) > len(parent) + 1:
            return link_id[len(parent) + 1:]
    return link_id


def _strip_prefix(text: str, prefix: str) -> str:
    return text[len(prefix):] if text.startswith(prefix) else text


def _strip_suffix(text: str, suffix: str) -> str:
    return text[:-len(suffix)] if text.endswith(suffix) else text


def _key_text(link_id: str) -> str:
    """A field key made from a linkId: lower-case words and underscores, from a letter."""
    key = _slugify(link_id, "_") or "item"
    if not key[0].isalpha():
        key = f"q_{key}"
    return key[:48].rstrip("_")


def _unique(key: str, used: set[str]) -> str:
    """``key``, or ``key_2``, ``key_3``… when taken or reserved."""
    found, n = key, 1
    while found in used or found in RESERVED_KEYS or not KEY_RE.match(found):
        n += 1
        found = f"{key[:44]}_{n}"
    used.add(found)
    return found


# ---------------------------------------------------------------------------
# TOML, laid out like the shipped templates


class _Writer:
    """Writes the template's tables: ``[[sections]]`` and ``[[sections.fields]]`` as tables,
    everything else inline; ``_comment`` keys become comments above their table."""

    TABLE_ARRAYS = ("sections", "fields", "scores")

    def __init__(self, header: list[str]) -> None:
        self.lines = [line for text in header for line in _comment(text, "")] + [""]

    def document(self, data: Table) -> str:
        self.table(data, "", "")
        return "\n".join(self.lines).rstrip() + "\n"

    def table(self, data: Table, path: str, indent: str) -> None:
        nested = []
        for key, value in data.items():
            if key.startswith("_"):
                continue
            if key in self.TABLE_ARRAYS and isinstance(value, list):
                nested.append((key, value))
            else:
                self.lines.append(f"{indent}{key} = {self.value(value, indent)}")
        for key, rows in nested:
            inner = f"{path}.{key}" if path else key
            deeper = indent + ("  " if key == "fields" and path.endswith("fields") else "")
            for row in rows:
                self.lines.append("")
                if row.get("_comment"):
                    self.lines.extend(_comment(row["_comment"], deeper))
                self.lines.append(f"{deeper}[[{inner}]]")
                self.table(row, inner, deeper)

    def value(self, value: Any, indent: str, inline: bool = False) -> str:
        """``value`` in TOML; lists of tables one per line, except inside a table."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return repr(value)
        if isinstance(value, str):
            return _toml_string(value)
        if isinstance(value, dict):
            return "{ " + ", ".join(f"{k} = {self.value(v, indent, inline=True)}"
                                    for k, v in value.items() if not k.startswith("_")) + " }"
        if isinstance(value, list):
            parts = [self.value(v, indent, inline) for v in value]
            if inline or all(not isinstance(v, dict) for v in value) and \
                    sum(map(len, parts)) < 80:
                return "[" + ", ".join(parts) + "]"
            return "[\n" + "".join(f"{indent}  {p},\n" for p in parts) + f"{indent}]"
        raise TypeError(f"cannot write {value!r} as TOML")


def _comment(text: str, indent: str) -> list[str]:
    """``text`` as comment lines; a `quoted` span is never split."""
    kept = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(" ", "\u00a0"), " ".join(text.split()))
    lines = textwrap.wrap(kept, width=92, initial_indent=f"{indent}# ",
                          subsequent_indent=f"{indent}#   ", break_on_hyphens=False)
    return [line.replace("\u00a0", " ") for line in lines]


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, and DEL must be escaped too."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")

