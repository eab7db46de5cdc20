"""Names and codes of the FHIR export: kaptools' canonical URLs and extensions, the HL7
extensions it uses, linkIds, answer codings, LOINC codes and UCUM units."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..modality.schema import Field, Score, Section, Template

# Canonical URLs name things; they need not answer in a browser, but they must never
# change once a record has travelled, so they are the same in every installation.
FHIR_BASE = "https://kaptools.org/fhir"


def kaptools_extension(name: str) -> str:
    return f"{FHIR_BASE}/StructureDefinition/{name}"


# kaptools' own extensions.
EXT_SIGNED_BY = kaptools_extension("signed-by")  # valueReference: who signed the note
EXT_SIGNED_AT = kaptools_extension("signed-at")  # valueDateTime
EXT_CONTENT_HASH = kaptools_extension("content-sha256")  # valueString: hex SHA-256 at signing
EXT_ERROR_REASON = kaptools_extension("entered-in-error-reason")  # valueString
# A signed correction: sub-extensions author (valueReference), signed-at (valueDateTime),
# text (valueString) and content-sha256 (valueString, the addendum's own seal).
EXT_ADDENDUM = kaptools_extension("addendum")
EXT_RATING_SCALE = kaptools_extension("rating-scale")  # valueString: "SUD (0–10)", "VOC (1–7)"
EXT_ROW_REFERENCE = kaptools_extension("row-reference")  # valueString: linkId of the group
EXT_AUDIENCE = kaptools_extension("audience")  # valueCode "client": may go on a handout
# A record's scaffolding, so a record export can be read back into kaptools.
EXT_COURSE_TITLE = kaptools_extension("course-title")  # valueString, on an EpisodeOfCare
EXT_COURSE_FORMAT = kaptools_extension("course-format")  # valueCode: intensive, weekly...
EXT_COURSE_INTENTIONS = kaptools_extension("course-intentions")  # valueString
EXT_SESSION_KIND = kaptools_extension("session-kind")  # valueCode, on an Encounter
EXT_SESSION_SUMMARY = kaptools_extension("session-summary")  # valueString
EXT_FOLLOWS = kaptools_extension("follows")  # valueReference: the dosing session's Encounter

# Identifier systems; the values are ids within one kaptools installation.
NOTE_IDS = f"{FHIR_BASE}/id/note"
CLIENT_IDS = f"{FHIR_BASE}/id/client"
USER_IDS = f"{FHIR_BASE}/id/user"
SESSION_IDS = f"{FHIR_BASE}/id/session"
COURSE_IDS = f"{FHIR_BASE}/id/course"
# Codes of a reference to a row: the row's item_id, unique within its note.
ROW_IDS = f"{FHIR_BASE}/id/row"

# HL7 extensions (FHIR R4 core and Structured Data Capture).
HL7_EXT = "http://hl7.org/fhir/StructureDefinition/"
EXT_ITEM_CONTROL = HL7_EXT + "questionnaire-itemControl"
ITEM_CONTROL_CODES = "http://hl7.org/fhir/questionnaire-item-control"
EXT_MIN_VALUE = HL7_EXT + "minValue"
EXT_MAX_VALUE = HL7_EXT + "maxValue"
EXT_MAX_DECIMAL_PLACES = HL7_EXT + "maxDecimalPlaces"
EXT_UNIT = HL7_EXT + "questionnaire-unit"
EXT_MIN_OCCURS = HL7_EXT + "questionnaire-minOccurs"
EXT_MAX_OCCURS = HL7_EXT + "questionnaire-maxOccurs"
EXT_ORDINAL_VALUE = HL7_EXT + "ordinalValue"
EXT_ENTRY_FORMAT = HL7_EXT + "entryFormat"
EXT_CALCULATED_EXPRESSION = ("http://hl7.org/fhir/uv/sdc/StructureDefinition/"
                             "sdc-questionnaire-calculatedExpression")


def canonical(template: Template) -> str:
    """The canonical reference to one template version: ``url|version``."""
    return f"{questionnaire_url(template)}|{template.version}"


def questionnaire_url(template: Template) -> str:
    return f"{FHIR_BASE}/Questionnaire/{template.slug}"


# ---------------------------------------------------------------------------
# linkIds. Field keys are lower-case words with underscores, unique at their level, so
# the dotted path of keys is unique in the template; sections, help texts and scores
# are told apart from fields by a dash, which no field key has.


def field_link_id(path: tuple[str, ...]) -> str:
    return ".".join(path)


def section_link_id(section: Section) -> str:
    return f"section-{section.key}"


def help_link_id(owner: str) -> str:
    return f"{owner}-help"


def score_link_id(score: Score, part: str = "") -> str:
    """The item of a score's total or level; ``part`` names its band or flags."""
    return f"score-{score.key}" + (f"-{part}" if part else "")


# ---------------------------------------------------------------------------
# Answer codings: the options of a choice, multichoice or scale field are codes of a code
# system of their own, per template and field (a value means one thing in one field).


def answer_system(template: Template, link_id: str) -> str:
    return f"{FHIR_BASE}/CodeSystem/{template.slug}/{link_id}"


def option_coding(template: Template, link_id: str, f: Field, value: Any) -> dict[str, Any]:
    """The Coding of one option (or stored answer) of a choice, multichoice or scale
    field. A rating's code is its number; its display adds the anchor, if any."""
    if f.type == "scale":
        anchor = dict(f.scale.anchors).get(value) if f.scale else None
        display = f"{value} – {anchor}" if anchor else str(value)
    else:
        display = f.choice_label(value)
    return {"system": answer_system(template, link_id), "code": str(value), "display": display}


# ---------------------------------------------------------------------------
# LOINC codes of the standard instruments, by template slug (keys are permanent, so the
# codes hold for every version). Checked against LOINC's published panels: GAD-7 and
# PHQ-9 items as in HL7's Person-Centered Outcomes guide, which takes them from LOINC.
# Codes not confirmed are left out rather than guessed: the PCL-5's items, the GAD-7's
# difficulty question, and any code for the past-week PCL-5 (LOINC's PCL-5 terms ask
# about the past month).

LOINC = "http://loinc.org"
LOINC_NOTICE = ("This material contains content from LOINC® (http://loinc.org). LOINC is "
                "copyright © Regenstrief Institute, Inc. and the Logical Observation "
                "Identifiers Names and Codes (LOINC) Committee and is available at no cost "
                "under the license at http://loinc.org/license.")


@dataclass(frozen=True)
class InstrumentCodes:
    panel: str
    panel_display: str
    items: dict[str, str] = field(default_factory=dict)  # field key → LOINC code
    scores: dict[str, tuple[str, str]] = field(default_factory=dict)  # key → (code, display)


INSTRUMENTS: dict[str, InstrumentCodes] = {
    "gad-7": InstrumentCodes(
        "69737-5", "Generalized anxiety disorder 7 item (GAD-7)",
        items={"q1": "69725-0", "q2": "68509-9", "q3": "69733-4", "q4": "69734-2",
               "q5": "69735-9", "q6": "69689-8", "q7": "69736-7"},
        scores={"total": ("70274-6", "Generalized anxiety disorder 7 item (GAD-7) total "
                                     "score [Reported.PHQ]")}),
    "phq-9": InstrumentCodes(
        "44249-1", "PHQ-9 quick depression assessment panel [Reported.PHQ]",
        items={"q1": "44250-9", "q2": "44255-8", "q3": "44259-0", "q4": "44254-1",
               "q5": "44251-7", "q6": "44258-2", "q7": "44252-5", "q8": "44253-3",
               "q9": "44260-8", "difficulty": "69722-7"},
        scores={"total": ("44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total "
                                     "score [Reported]")}),
    "pcl-5": InstrumentCodes(
        "101697-1", "Post traumatic stress disorder checklist - civilian version DSM-5 "
                    "[PCL-5]",
        scores={"total": ("101698-9", "PTSD PCL-5 score [PCL-5]")}),
}


def loinc(code: str, display: str | None = None) -> dict[str, str]:
    coding = {"system": LOINC, "code": code}
    if display:
        coding["display"] = display
    return coding


# ---------------------------------------------------------------------------
# Units, as UCUM where the unit is one kaptools ships; any other is named in words.

UCUM = "http://unitsofmeasure.org"
UCUM_UNITS = {"%": "%", "mmHg": "mm[Hg]", "bpm": "/min", "breaths/min": "/min", "kg": "kg",
              "minutes": "min", "seconds": "s"}


def unit_coding(unit: str) -> dict[str, str]:
    code = UCUM_UNITS.get(unit)
    return {"system": UCUM, "code": code, "display": unit} if code else {"display": unit}
