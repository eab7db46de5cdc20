"""A template version as a FHIR R4 Questionnaire.

Sections become groups; each field an item whose type follows the field's type:

| template | Questionnaire item |
|---|---|
| text | ``string``, ``maxLength``; ``open-choice`` offering its suggestions |
| longtext | ``text``, ``maxLength`` |
| integer, percent, duration | ``integer``, ``minValue``/``maxValue``, ``questionnaire-unit`` |
| decimal | ``decimal``, the same, and ``maxDecimalPlaces`` |
| scale | ``choice``, one option per rating: code the number, ``ordinalValue`` |
| choice, multichoice | ``choice`` (``repeats`` for multichoice), options coded per field |
| yesno, date, time | ``boolean``, ``date``, ``time`` |
| group | ``group``, ``repeats``, ``questionnaire-minOccurs``/``-maxOccurs``, its fields |
| ref | ``choice`` answered by a row's item_id (kaptools' ``row-reference``) |

A rating scale keeps its identity (a SUD is never a SUDS) in kaptools' ``rating-scale``
extension. The standard instruments carry their LOINC codes (see ``terms``).

``show_if`` becomes ``enableWhen``; help text a ``display`` item shown as help; a
placeholder ``entryFormat``; scores read-only items computed by FHIRPath (see
``scoring``). Private fields are left out. What FHIR R4 cannot say is not exported: an
option's ``only_if`` (kaptools checks it when a note is saved), and editor behaviour
(``carry``, ``prefill``, ``rows``, row labels, recall periods, session kinds,
notes required before signing).
"""

from __future__ import annotations

import math
from typing import Any

from ..modality.schema import Field, Section, ShowIf, Template
from .library import Questionnaire, written_by_library
from .scoring import score_items
from .terms import (
    EXT_AUDIENCE,
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
    INSTRUMENTS,
    ITEM_CONTROL_CODES,
    LOINC_NOTICE,
    ROW_IDS,
    InstrumentCodes,
    field_link_id,
    help_link_id,
    loinc,
    option_coding,
    questionnaire_url,
    section_link_id,
    unit_coding,
)

ITEM_TYPES = {
    "text": "string", "longtext": "text", "integer": "integer", "decimal": "decimal",
    "scale": "choice", "percent": "integer", "choice": "choice", "multichoice": "choice",
    "yesno": "boolean", "date": "date", "time": "time", "duration": "integer",
    "group": "group", "ref": "choice",
}

# The enableWhen element that holds what an answer is compared with, by field type.
WHEN_ANSWERS = {
    "text": "answerString", "longtext": "answerString", "integer": "answerInteger",
    "decimal": "answerDecimal", "scale": "answerCoding", "percent": "answerInteger",
    "choice": "answerCoding", "multichoice": "answerCoding", "yesno": "answerBoolean",
    "date": "answerDate", "time": "answerTime", "duration": "answerInteger",
    "ref": "answerCoding",
}
NUMBERS = {t: WHEN_ANSWERS[t] for t in ("integer", "percent", "duration", "decimal")}

Item = dict[str, Any]
# The fields a condition may name, by key: those at the same level, with their linkIds.
Scope = dict[str, tuple[Field, str]]


def questionnaire(template: Template) -> dict[str, Any]:
    """``template`` as a FHIR R4 Questionnaire (JSON), checked by the FHIR library."""
    codes = INSTRUMENTS.get(template.slug)
    builder = _Builder(template, codes)
    items = [item for section in template.sections if (item := builder.section(section))]
    items.extend(score_items(template, codes))
    resource: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": f"{template.slug}-v{template.version}",
        "url": questionnaire_url(template),
        "version": str(template.version),
        "title": template.title,
        "status": "active",
        "subjectType": ["Patient"],
    }
    if template.description:
        resource["description"] = template.description
    notices = [template.credit] if template.credit else []
    if codes is not None:
        resource["code"] = [loinc(codes.panel, codes.panel_display)]
        notices.append(LOINC_NOTICE)
    if notices:
        resource["copyright"] = "\n\n".join(notices)
    resource["item"] = items
    _check_link_ids(items)
    return written_by_library(Questionnaire, resource)


def _check_link_ids(items: list[Item], seen: set[str] | None = None) -> None:
    """Section and score keys are free text, so a template could make two linkIds alike;
    refuse it rather than export a questionnaire whose answers cannot be told apart."""
    seen = set() if seen is None else seen
    for item in items:
        if item["linkId"] in seen:
            raise ValueError(f"two items would have the linkId {item['linkId']!r}")
        seen.add(item["linkId"])
        _check_link_ids(item.get("item", []), seen)


class _Builder:
    """Items for one template; one method per field type, as in the form builder."""

    def __init__(self, template: Template, codes: InstrumentCodes | None) -> None:
        self.template = template
        self.item_codes = codes.items if codes is not None else {}
        fields = [f for f in template.fields if f.audience != "private"]
        self.top: Scope = {f.key: (f, field_link_id((f.key,))) for f in fields}

    def section(self, section: Section) -> Item | None:
        children = [self.field(f, (f.key,), self.top) for f in section.fields
                    if f.audience != "private"]
        if not children:
            return None  # a section of private fields only
        link_id = section_link_id(section)
        if section.help:
            children.insert(0, _help(link_id, section.help))
        return {"linkId": link_id, "text": section.title, "type": "group", "item": children}

    def field(self, f: Field, path: tuple[str, ...], scope: Scope) -> Item:
        link_id = field_link_id(path)
        item: Item = {"linkId": link_id, "text": f.label, "type": ITEM_TYPES[f.type]}
        if f.key in self.item_codes and len(path) == 1:
            item["code"] = [loinc(self.item_codes[f.key])]
        if f.required:
            item["required"] = True
        extensions: list[dict[str, Any]] = []
        if f.placeholder:
            extensions.append({"url": EXT_ENTRY_FORMAT, "valueString": f.placeholder})
        if f.audience == "client":
            extensions.append({"url": EXT_AUDIENCE, "valueCode": "client"})
        getattr(self, f"_type_{f.type}")(f, path, item, extensions, scope)
        if extensions:
            item["extension"] = extensions + item.get("extension", [])
        if f.show_if is not None:
            self.enable_when(item, f.show_if, scope)
        if f.help:
            item["item"] = [_help(link_id, f.help), *item.get("item", [])]
        return item

    # One method per field type ----------------------------------------------
    def _type_text(self, f, path, item, extensions, scope) -> None:
        item["maxLength"] = f.max_length
        if f.suggestions:
            item["type"] = "open-choice"
            item["answerOption"] = [{"valueString": s} for s in f.suggestions]
            extensions.append(_item_control("autocomplete"))

    def _type_longtext(self, f, path, item, extensions, scope) -> None:
        item["maxLength"] = f.max_length

    def _type_integer(self, f, path, item, extensions, scope) -> None:
        extensions.extend(_bounds(f, "valueInteger", int))
        if f.unit:
            extensions.append({"url": EXT_UNIT, "valueCoding": unit_coding(f.unit)})

    _type_percent = _type_duration = _type_integer

    def _type_decimal(self, f, path, item, extensions, scope) -> None:
        extensions.extend(_bounds(f, "valueDecimal", float))
        extensions.append({"url": EXT_MAX_DECIMAL_PLACES, "valueInteger": f.places})
        if f.unit:
            extensions.append({"url": EXT_UNIT, "valueCoding": unit_coding(f.unit)})

    def _type_scale(self, f, path, item, extensions, scope) -> None:
        link_id = field_link_id(path)
        values = f.scale.values() if f.scale else []
        item["answerOption"] = [
            {"valueCoding": option_coding(self.template, link_id, f, value),
             "extension": [{"url": EXT_ORDINAL_VALUE, "valueDecimal": value}]}
            for value in values]
        if f.scale:
            extensions.append({"url": EXT_RATING_SCALE, "valueString": f.scale.name})
        extensions.append(_item_control("radio-button"))

    def _type_choice(self, f, path, item, extensions, scope) -> None:
        link_id = field_link_id(path)
        item["answerOption"] = [
            {"valueCoding": option_coding(self.template, link_id, f, choice.value)}
            for choice in f.choices]
        extensions.append(_item_control("drop-down" if f.widget == "select"
                                        else "radio-button"))

    def _type_multichoice(self, f, path, item, extensions, scope) -> None:
        link_id = field_link_id(path)
        item["repeats"] = True
        item["answerOption"] = [
            {"valueCoding": option_coding(self.template, link_id, f, choice.value)}
            for choice in f.choices]
        extensions.append(_item_control("check-box"))
        if f.max_selected and f.max_selected > 1:
            extensions.append({"url": EXT_MAX_OCCURS, "valueInteger": f.max_selected})

    def _type_yesno(self, f, path, item, extensions, scope) -> None:
        pass

    _type_date = _type_time = _type_yesno

    def _type_ref(self, f, path, item, extensions, scope) -> None:
        target = scope.get(f.group or "")
        if target is not None:
            extensions.append({"url": EXT_ROW_REFERENCE, "valueString": target[1]})

    def _type_group(self, f, path, item, extensions, scope) -> None:
        # A row's conditions name fields of the same row; its references, groups of the
        # row or of any level above.
        inner: Scope = {**{k: v for k, v in scope.items() if v[0].type == "group"},
                        **{c.key: (c, field_link_id((*path, c.key))) for c in f.fields}}
        item["item"] = [self.field(child, (*path, child.key), inner) for child in f.fields]
        item["repeats"] = f.max_items > 1
        if f.min_items >= 1:
            item["required"] = True
        if f.min_items > 1:
            extensions.append({"url": EXT_MIN_OCCURS, "valueInteger": f.min_items})
        if f.max_items > 1:
            extensions.append({"url": EXT_MAX_OCCURS, "valueInteger": f.max_items})

    # show_if → enableWhen --------------------------------------------------
    def enable_when(self, item: Item, cond: ShowIf, scope: Scope) -> None:
        """The condition as ``enableWhen``, meaning what ``ShowIf.holds`` means."""
        if cond.field not in scope:
            return  # it depends on a private field, which is not exported
        target, question = scope[cond.field]
        behaviour = "any"
        if cond.op == "filled":
            whens = [_exists(question, bool(cond.value))]
        elif cond.op in ("equals", "in"):
            values = list(cond.value) if cond.op == "in" else [cond.value]
            whens = self._equal_to(target, question, values)
        elif cond.op == "not_equals":
            # kaptools asks for an answer that differs; R4's "!=" alone holds when empty too.
            behaviour = "all"
            whens = [_exists(question, True)]
            if (answer := self._answer(target, question, cond.value)) is not None:
                whens.append({"question": question, "operator": "!=", **answer})
        elif target.type == "scale" and target.scale is not None:
            # A rating is a coded answer, unordered in FHIR: list the ratings that hold.
            below = cond.op == "lt"
            holds = [v for v in target.scale.values()
                     if (v < cond.value if below else v > cond.value)]
            whens = self._equal_to(target, question, holds)
        elif target.type in NUMBERS:
            whens = [_compared(target, question, cond.op, cond.value)]
        else:
            whens = []  # kaptools compares only numbers with lt and gt
        if not whens:  # kaptools' condition can never hold
            behaviour, whens = "all", [_exists(question, True), _exists(question, False)]
        item["enableWhen"] = whens
        if len(whens) > 1:
            item["enableBehavior"] = behaviour

    def _equal_to(self, target: Field, question: str, values: list[Any]
                  ) -> list[dict[str, Any]]:
        return [{"question": question, "operator": "=", **answer} for value in values
                if (answer := self._answer(target, question, value)) is not None]

    def _answer(self, target: Field, question: str, value: Any) -> dict[str, Any] | None:
        """``value`` as an enableWhen answer to ``target``, or None when no answer to it
        can equal ``value``."""
        if not _can_equal(target, value):
            return None
        kind = WHEN_ANSWERS[target.type]
        if target.type == "ref":
            value = {"system": ROW_IDS, "code": value}
        elif kind == "answerCoding":
            value = option_coding(self.template, question, target, value)
        elif target.type == "time":
            value = f"{value}:00"
        return {kind: value}


def _can_equal(target: Field, value: Any) -> bool:
    """Whether an answer to ``target`` can equal ``value`` as kaptools compares them."""
    if target.type not in WHEN_ANSWERS:
        return False  # a group: only whether it has rows can be asked
    if target.type == "yesno" or isinstance(value, bool):
        return target.type == "yesno" and isinstance(value, bool)
    if target.type in ("integer", "percent", "duration"):
        return isinstance(value, int)
    if target.type == "decimal":
        return isinstance(value, int | float)
    if target.type == "scale":
        return isinstance(value, int) and target.scale is not None and \
            value in target.scale.values()
    if target.type in ("choice", "multichoice"):
        return value in {c.value for c in target.choices}
    return isinstance(value, str)


def _compared(target: Field, question: str, op: str, bound: float) -> dict[str, Any]:
    """``answer < bound`` (or ``>``); a whole-number answer is compared with a whole
    number that makes no difference (below 7.5 is below 8, above 7.5 above 7)."""
    if target.type != "decimal":
        bound = math.ceil(bound) if op == "lt" else math.floor(bound)
    return {"question": question, "operator": "<" if op == "lt" else ">",
            NUMBERS[target.type]: bound}


def _exists(question: str, answered: bool) -> dict[str, Any]:
    return {"question": question, "operator": "exists", "answerBoolean": answered}


def _help(owner: str, text: str) -> Item:
    return {"linkId": help_link_id(owner), "text": text, "type": "display",
            "extension": [_item_control("help")]}


def _item_control(code: str) -> dict[str, Any]:
    return {"url": EXT_ITEM_CONTROL,
            "valueCodeableConcept": {"coding": [{"system": ITEM_CONTROL_CODES, "code": code}]}}


def _bounds(f: Field, key: str, kind: type) -> list[dict[str, Any]]:
    return [{"url": url, key: kind(bound)}
            for url, bound in ((EXT_MIN_VALUE, f.min), (EXT_MAX_VALUE, f.max))
            if bound is not None]
