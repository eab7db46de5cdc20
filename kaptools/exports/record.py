"""A client's record as one FHIR R4 Bundle (type ``collection``), for a client asking
for their record or a clinic moving to another system.

The Bundle holds a pseudonymous Patient (the client code only: no name, no birth date),
an EpisodeOfCare per course, an Encounter per session, a QuestionnaireResponse per signed
or entered-in-error note (drafts are work in progress and stay), the Questionnaire of
every template version used (so the Bundle can be read without kaptools), and a
Provenance per signature (the author's and every co-signature, with the content hash
signed). Private (psychotherapy) fields never leave. References inside the Bundle are
``urn:uuid`` full URLs; every resource also carries kaptools' identifier, as the
responses' logical references do. Each resource is checked by the FHIR library, and the
Bundle as a whole too.
"""

from __future__ import annotations

import uuid
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.episodeofcare import EpisodeOfCare
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.provenance import Provenance
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .. import notes
from ..extensions import db
from ..fhir import questionnaire, questionnaire_response
from ..fhir.library import written_by_library
from ..fhir.terms import (
    CLIENT_IDS,
    COURSE_IDS,
    EXT_COURSE_FORMAT,
    EXT_COURSE_INTENTIONS,
    EXT_COURSE_TITLE,
    EXT_FOLLOWS,
    EXT_SESSION_KIND,
    EXT_SESSION_SUMMARY,
    NOTE_IDS,
    SESSION_IDS,
    USER_IDS,
    canonical,
)
from ..modality import get_registry
from ..models import Client, Course, Note, NoteState, Signature, TherapySession, User
from ..timeutil import utcnow

FORMAT = "fhir-r4-bundle"
# HL7 v3 ActCode for the kind of encounter: ambulatory.
ENCOUNTER_CLASS = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                   "code": "AMB", "display": "ambulatory"}
PROVENANCE_ACTIVITY = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def export_record(client: Client, reason: str, user: User | None = None) -> dict[str, Any]:
    """``client``'s record as a FHIR Bundle, the export recorded in the audit trail with
    who asked (``user``, or the command line) and why. The caller commits."""
    from collections import Counter

    from .. import audit

    bundle = client_bundle(client)
    kinds = Counter(e["resource"]["resourceType"] for e in bundle.get("entry", []))
    audit.record("export.record", obj=client, client_code=client.code, user=user,
                 username=None if user else "cli",
                 detail={"format": FORMAT, "reason": reason,
                         "resources": dict(sorted(kinds.items()))})
    return bundle


def client_bundle(client: Client) -> dict[str, Any]:
    """``client``'s whole record as a FHIR Bundle (JSON), checked by the FHIR library."""
    registry = get_registry()
    entries: list[dict[str, Any]] = []

    def add(model, resource: dict[str, Any]) -> str:
        full_url = _urn()
        entries.append({"fullUrl": full_url, "resource": written_by_library(model, resource)})
        return full_url

    patient = add(Patient, {
        "resourceType": "Patient",
        "identifier": [{"system": CLIENT_IDS, "value": str(client.id)},
                       {"system": CLIENT_IDS + "-code", "value": client.code}],
        "active": not client.archived,
    })
    courses = db.session.scalars(
        select(Course).where(Course.client_id == client.id).order_by(Course.starts_on)
        .options(selectinload(Course.sessions).selectinload(TherapySession.notes))).all()
    used: dict[tuple[str, int], Any] = {}
    for course in courses:
        period = {"start": course.starts_on.isoformat()}
        if course.ends_on:
            period["end"] = course.ends_on.isoformat()
        course_facts = [{"url": EXT_COURSE_TITLE, "valueString": course.title},
                        {"url": EXT_COURSE_FORMAT, "valueCode": course.format}]
        if course.intentions:
            course_facts.append({"url": EXT_COURSE_INTENTIONS, "valueString": course.intentions})
        episode = add(EpisodeOfCare, {
            "resourceType": "EpisodeOfCare", "extension": course_facts,
            "identifier": [{"system": COURSE_IDS, "value": str(course.id)}],
            "status": "finished" if course.ends_on else "active",
            "type": [{"text": f"Ketamine-assisted psychotherapy: {course.format}"}],
            "patient": {"reference": patient}, "period": period,
        })
        encounters: dict[int, str] = {}
        for therapy_session in course.sessions:
            session_facts = [{"url": EXT_SESSION_KIND, "valueCode": therapy_session.kind}]
            if therapy_session.summary:
                session_facts.append({"url": EXT_SESSION_SUMMARY,
                                      "valueString": therapy_session.summary})
            if therapy_session.follows_id in encounters:
                session_facts.append({"url": EXT_FOLLOWS, "valueReference": {
                    "reference": encounters[therapy_session.follows_id]}})
            encounter = add(Encounter, {
                "resourceType": "Encounter", "extension": session_facts,
                "identifier": [{"system": SESSION_IDS, "value": str(therapy_session.id)}],
                "status": "finished", "class": ENCOUNTER_CLASS,
                "type": [{"text": f"{therapy_session.kind.capitalize()} session"}],
                "subject": {"reference": patient},
                "episodeOfCare": [{"reference": episode}],
                "period": {"start": therapy_session.session_date.isoformat()},
            })
            encounters[therapy_session.id] = encounter
            for note in therapy_session.notes:
                if note.state == NoteState.DRAFT:
                    continue
                template = registry.get(note.modality, note.template_version)
                if template is None:
                    raise LookupError(f"note {note.id}: template {note.modality} "
                                      f"v{note.template_version} is not loaded")
                used[(template.slug, template.version)] = template
                response = questionnaire_response(note, template)
                response["subject"] = {"reference": patient, "type": "Patient"}
                response["encounter"] = {"reference": encounter, "type": "Encounter"}
                target = _add_prebuilt(entries, response)
                for signature in notes.signatures(note):
                    add(Provenance, _provenance(target, note, signature))
    for template in used.values():
        _add_prebuilt(entries, questionnaire(template))
    bundle = {"resourceType": "Bundle", "type": "collection",
              "identifier": {"system": "urn:ietf:rfc:3986", "value": _urn()},
              "timestamp": utcnow().isoformat(timespec="seconds"), "entry": entries}
    return written_by_library(Bundle, bundle)


def _add_prebuilt(entries: list, resource: dict[str, Any]) -> str:
    full_url = _urn()
    resource.pop("id", None)  # the full URL names it inside the Bundle
    entries.append({"fullUrl": full_url, "resource": resource})
    return full_url


def _provenance(target: str, note: Note, signature: Signature) -> dict[str, Any]:
    cosign = signature.kind == "cosign"
    return {
        "resourceType": "Provenance",
        "target": [{"reference": target}],
        "recorded": signature.signed_at.isoformat(timespec="seconds"),
        "activity": {"coding": [{"system": PROVENANCE_ACTIVITY, "code": "UPDATE" if cosign
                                 else "CREATE", "display": "co-signed" if cosign
                                 else "signed"}]},
        "agent": [{
            "type": {"coding": [{"system": PARTICIPATION,
                                 "code": "verifier" if cosign else "author"}]},
            "who": {"type": "Practitioner", "display": signature.signer.display_name,
                    "identifier": {"system": USER_IDS, "value": str(signature.signer_id)}},
        }],
        "entity": [{"role": "source", "what": {
            "identifier": {"system": NOTE_IDS, "value": str(note.id)},
            "display": f"{canonical_display(note)} sealed with SHA-256 "
                       f"{signature.content_hash}"}}],
    }


def canonical_display(note: Note) -> str:
    template = get_registry().get(note.modality, note.template_version)
    return canonical(template) if template else f"{note.modality} v{note.template_version}"
