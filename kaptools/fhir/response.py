"""A note as a FHIR R4 QuestionnaireResponse of its template version.

Answers follow the Questionnaire's items (see ``questionnaire``): sections as groups, a
repeating group as one item per row (the row's ``item_id`` as the item's id), ratings
and choices as Codings, references to rows as Codings of the row's ``item_id``, times
with seconds. Scores carry the values kaptools computed. The signature travels in
kaptools' extensions: who signed, when, and the SHA-256 content hash sealed at signing,
and every signed addendum (author, time, text and its own seal).
Private fields are never exported, even if an answer to one were stored with the
record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..modality.answers import Answers, ref_titles
from ..modality.schema import Field, Template
from ..models import Note, NoteState, User
from .library import QuestionnaireResponse, written_by_library
from .scoring import score_answers
from .terms import (
    CLIENT_IDS,
    EXT_ADDENDUM,
    EXT_CONTENT_HASH,
    EXT_ERROR_REASON,
    EXT_SIGNED_AT,
    EXT_SIGNED_BY,
    NOTE_IDS,
    ROW_IDS,
    SESSION_IDS,
    USER_IDS,
    canonical,
    field_link_id,
    option_coding,
    section_link_id,
)

STATUS = {NoteState.DRAFT: "in-progress", NoteState.SIGNED: "completed",
          NoteState.ENTERED_IN_ERROR: "entered-in-error"}

Item = dict[str, Any]


def questionnaire_response(note: Note, template: Template | None = None) -> dict[str, Any]:
    """``note`` as a FHIR R4 QuestionnaireResponse (JSON), checked by the FHIR library.

    ``template`` is the note's template version, looked up in the registry when not given.
    """
    if template is None:
        from ..modality import get_registry

        template = get_registry().get(note.modality, note.template_version)
        if template is None:
            raise LookupError(f"template {note.modality} v{note.template_version} is not "
                              "loaded; a note cannot be exported without its template")
    if (template.slug, template.version) != (note.modality, note.template_version):
        raise ValueError(f"note {note.id} was written with {note.modality} "
                         f"v{note.template_version}, not {template.slug} v{template.version}")
    answers = _record_only(template, note.answers)
    session = note.session
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": f"note-{note.id}",
        "identifier": {"system": NOTE_IDS, "value": str(note.id)},
        "questionnaire": canonical(template),
        "status": STATUS[NoteState(note.state)],
        "subject": {"type": "Patient", "display": session.course.client.code,
                    "identifier": {"system": CLIENT_IDS, "value": str(session.course.client_id)}},
        "encounter": {"type": "Encounter",
                      "display": f"{session.kind.title()} session, {session.session_date:%Y-%m-%d}",
                      "identifier": {"system": SESSION_IDS, "value": str(session.id)}},
        "authored": _instant(note.signed_at or note.updated_at),
        "author": _practitioner(note.author),
    }
    if extensions := _signature(note):
        resource["extension"] = extensions
    items = _Answers(template, answers).sections()
    items.extend(score_answers(template, answers))
    if items:
        resource["item"] = items
    return written_by_library(QuestionnaireResponse, resource)


def _record_only(template: Template, answers: Answers) -> Answers:
    """The record answers: private ones are stored apart, and dropped here whatever is
    stored with the record."""
    private = {f.key for f in template.fields if f.audience == "private"}
    return {k: v for k, v in (answers or {}).items() if k not in private}


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _practitioner(user: User) -> dict[str, Any]:
    return {"type": "Practitioner", "display": user.display_name,
            "identifier": {"system": USER_IDS, "value": str(user.id)}}


def _signature(note: Note) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if note.signed_at is not None and note.signed_by is not None:
        found.append({"url": EXT_SIGNED_BY, "valueReference": _practitioner(note.signed_by)})
        found.append({"url": EXT_SIGNED_AT, "valueDateTime": _instant(note.signed_at)})
    if note.content_hash:
        found.append({"url": EXT_CONTENT_HASH, "valueString": note.content_hash})
    if note.state == NoteState.ENTERED_IN_ERROR and note.error_reason:
        found.append({"url": EXT_ERROR_REASON, "valueString": note.error_reason})
    for addendum in note.addenda if note.signed_at is not None else ():
        found.append({"url": EXT_ADDENDUM, "extension": [
            {"url": "author", "valueReference": _practitioner(addendum.author)},
            {"url": "signed-at", "valueDateTime": addendum.signed_at.isoformat()},
            {"url": "text", "valueString": addendum.body},
            {"url": "content-sha256", "valueString": addendum.content_hash}]})
    return found


class _Answers:
    """Response items for one note's record answers, shaped like its Questionnaire."""

    def __init__(self, template: Template, answers: Answers) -> None:
        self.template = template
        self.answers = answers
        self.rows = ref_titles(template, answers)

    def sections(self) -> list[Item]:
        items = []
        for section in self.template.sections:
            children = self.level(section.fields, self.answers, ())
            if children:
                items.append({"linkId": section_link_id(section), "text": section.title,
                              "item": children})
        return items

    def level(self, fields: tuple[Field, ...], values: Answers, path: tuple[str, ...]
              ) -> list[Item]:
        items = []
        for f in fields:
            value = values.get(f.key)
            if f.audience == "private" or value in (None, "", []):
                continue
            link_id = field_link_id((*path, f.key))
            if f.type == "group":
                items.extend(self.group_rows(f, value, (*path, f.key)))
                continue
            answer = self.values(f, link_id, value)
            if answer:
                items.append({"linkId": link_id, "text": f.label, "answer": answer})
        return items

    def group_rows(self, f: Field, rows: Any, path: tuple[str, ...]) -> list[Item]:
        items = []
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, dict):
                continue
            children = self.level(f.fields, row, path)
            if not children:
                continue
            item: Item = {"linkId": field_link_id(path), "text": f.label, "item": children}
            if isinstance(row.get("item_id"), str):
                item["id"] = row["item_id"]
            items.append(item)
        return items

    def values(self, f: Field, link_id: str, value: Any) -> list[dict[str, Any]]:
        """The answers to one field: one, or one per option chosen."""
        if f.type in ("text", "longtext"):
            return [{"valueString": value}]
        if f.type in ("integer", "percent", "duration"):
            return [{"valueInteger": value}]
        if f.type == "decimal":
            return [{"valueDecimal": value}]
        if f.type == "yesno":
            return [{"valueBoolean": value}]
        if f.type == "date":
            return [{"valueDate": value}]
        if f.type == "time":
            return [{"valueTime": f"{value}:00"}]
        if f.type in ("scale", "choice"):
            return [{"valueCoding": option_coding(self.template, link_id, f, value)}]
        if f.type == "multichoice":
            return [{"valueCoding": option_coding(self.template, link_id, f, chosen)}
                    for chosen in value]
        if f.type == "ref":
            title = self.rows.get(value, "(removed item)")
            return [{"valueCoding": {"system": ROW_IDS, "code": value, "display": title}}]
        return []
