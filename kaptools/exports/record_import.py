"""A client's record back in from a FHIR Bundle that kaptools' record export wrote.

For a client moving between clinics that both run kaptools, or a clinic rebuilding one
client's record on a new instance. The Bundle is read whole before anything is written:
its pseudonymous Patient becomes a client of the therapist named, each EpisodeOfCare a
course, each Encounter a session, each QuestionnaireResponse a note of the same template
version, its answers read back item by item.

Every answer must be exactly what kaptools itself would have stored for it — the right
type, within its field's limits, the form's own rounding and trimming — as a signed
note's must (a hash is not a signature: whoever changes a file can compute a new one);
codes, titles and other text are checked as the forms check them. And every signed
note's answers are checked against the seal it carried: the SHA-256 its
signer sealed in the old instance is computed again from the answers read back and the
old ids. Only when every seal verifies is the record written; any difference (a file
changed after export, answers that could not be read back exactly) refuses the whole
import and names the notes. A note cannot be signed again by someone who was not there,
so the imported note is sealed in this instance by the therapist who imports it, and an
addendum, sealed the same way, says where it came from: who wrote and signed it, when,
every co-signature, and the original hash. Each signed correction (addendum) of the
note arrives too, checked against its own seal, as an addendum naming its original
author and time. A note entered in error stays so, with its reason. Risk signals are
worked out again as each note is sealed, so a flag raised there is raised here on the
day of the import. Nothing already here is changed: a client with the same code under the same
therapist refuses the import.

Private (psychotherapy) notes and drafts never left the old instance, so they do not
arrive; reviews and comments stay behind as well (``kaptools export database`` moves a
whole instance with all of them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from .. import audit, notes
from ..extensions import db
from ..fhir.terms import (
    CLIENT_IDS,
    EXT_ADDENDUM,
    EXT_CONTENT_HASH,
    EXT_COURSE_FORMAT,
    EXT_COURSE_INTENTIONS,
    EXT_COURSE_TITLE,
    EXT_ERROR_REASON,
    EXT_FOLLOWS,
    EXT_SESSION_KIND,
    EXT_SESSION_SUMMARY,
    EXT_SIGNED_AT,
    EXT_SIGNED_BY,
    FHIR_BASE,
    NOTE_IDS,
    SESSION_IDS,
    USER_IDS,
    field_link_id,
)
from ..modality import get_registry
from ..modality.answers import Answers, round_trip
from ..modality.forms import ITEM_ID_RE
from ..modality.schema import Field, Template
from ..models import (
    Client,
    Course,
    CourseFormat,
    Note,
    Role,
    SessionKind,
    TherapySession,
    User,
)
from ..textcheck import text_problem

Resource = dict[str, Any]
QUESTIONNAIRES = f"{FHIR_BASE}/Questionnaire/"
VERIFIER = "verifier"


class RecordNotImportable(Exception):
    """The Bundle cannot be imported; ``problems`` says why, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("The record was not imported:\n" + "\n".join(
            f"- {p}" for p in problems))


@dataclass
class RecordImport:
    client: Client
    courses: int = 0
    sessions: int = 0
    notes: int = 0
    in_error: int = 0
    seals_verified: int = 0


@dataclass
class _Response:
    resource: Resource
    template: Template
    answers: Answers
    source_note: str
    encounter: str
    signatures: list[str] = field(default_factory=list)
    addenda: list[_Addendum] = field(default_factory=list)


@dataclass
class _Addendum:
    author: str
    signed_at: datetime
    body: str


@dataclass
class _Session:
    url: str
    kind: str
    on: date
    summary: str
    follows: str | None


@dataclass
class _Course:
    title: str
    format: str
    intentions: str
    starts_on: date
    ends_on: date | None
    sessions: list[_Session] = field(default_factory=list)


def import_record(bundle: Resource, therapist: User, reason: str) -> RecordImport:
    """Add the record in ``bundle`` as a client of ``therapist``; audited with ``reason``.
    Raises ``RecordNotImportable`` before writing anything. The caller commits."""
    reader = _Reader(bundle)
    reader.check_therapist(therapist)
    courses = reader.courses()
    responses = reader.responses()
    if reader.problems:
        raise RecordNotImportable(reader.problems)
    try:
        with db.session.begin_nested():  # all of it, or none of it
            return _Writer(reader, therapist).write(courses, responses, reason)
    except SQLAlchemyError as exc:
        cause = type(getattr(exc, "orig", None) or exc).__name__
        raise RecordNotImportable([f"The database refused the record ({cause}); nothing "
                                   "was imported."]) from exc


def _extension(resource: Resource, url: str) -> dict[str, Any] | None:
    return next((e for e in resource.get("extension", []) if e.get("url") == url), None)


def _ext_value(resource: Resource, url: str, kind: str) -> Any:
    found = _extension(resource, url)
    return found.get(kind) if found else None


def _identifier(resource: Resource, system: str) -> str | None:
    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):
        identifiers = [identifiers]
    return next((i.get("value") for i in identifiers or [] if i.get("system") == system), None)


class _Reader:
    """The Bundle, checked and read; ``problems`` lists what stops the import."""

    def __init__(self, bundle: Resource) -> None:
        self.problems: list[str] = []
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise RecordNotImportable(["The file is not a FHIR Bundle."])
        try:
            Bundle.model_validate(bundle)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise RecordNotImportable([f"The FHIR library refuses the Bundle ({exc.error_count()} "
                                       f"problem(s); first at {where}: {first['msg']})."]
                                      ) from exc
        self.by_url: dict[str, Resource] = {}
        self.by_type: dict[str, list[tuple[str, Resource]]] = {}
        for entry in bundle.get("entry", []):
            resource = entry.get("resource") or {}
            url = entry.get("fullUrl") or ""
            self.by_url[url] = resource
            self.by_type.setdefault(resource.get("resourceType", ""), []).append((url, resource))
        patients = self.by_type.get("Patient", [])
        if len(patients) != 1:
            raise RecordNotImportable([f"A record export holds one Patient; this Bundle holds "
                                       f"{len(patients)}."])
        self.patient_url, patient = patients[0]
        self.code = _identifier(patient, CLIENT_IDS + "-code")
        if not self.code:
            raise RecordNotImportable(["The Patient has no kaptools client code: this Bundle "
                                       "was not written by kaptools' record export."])
        self.archived = patient.get("active") is False
        code_problem = _text("The client code", self.code, 32, identifier=True,
                             multiline=False)
        if code_problem is None and not CODE_RE.match(self.code):
            code_problem = ("The client code is not one kaptools takes (letters, digits, "
                            "dashes or underscores, 2 to 32).")
        if code_problem:
            raise RecordNotImportable([code_problem])

    def check_therapist(self, therapist: User) -> None:
        if not therapist.active or therapist.role == Role.ADMIN:
            raise RecordNotImportable([f"{therapist.username} cannot hold clients: name an "
                                       "active therapist or supervisor."])
        if db.session.scalar(select(Client.id).where(Client.therapist_id == therapist.id,
                                                     Client.code == self.code)) is not None:
            raise RecordNotImportable([
                f"{therapist.username} already has a client {self.code}; nothing was changed. "
                "Import the record under another therapist, or rename the existing client."])

    def courses(self) -> list[_Course]:
        """Every course with its sessions, checked as the forms check them."""
        found: list[_Course] = []
        placed: dict[str, str] = {}  # Encounter → the EpisodeOfCare it belongs to
        episodes = dict(self.by_type.get("EpisodeOfCare", []))
        for url, encounter in self.by_type.get("Encounter", []):
            parents = [r.get("reference") for r in encounter.get("episodeOfCare", [])]
            if len(parents) != 1 or parents[0] not in episodes:
                self.problems.append("A session of the Bundle belongs to no course of it, or "
                                     "to more than one.")
                continue
            placed[url] = parents[0]
        for url, episode in episodes.items():
            period = episode.get("period") or {}
            course = _Course(
                title=_ext_value(episode, EXT_COURSE_TITLE, "valueString") or "",
                format=_ext_value(episode, EXT_COURSE_FORMAT, "valueCode") or "",
                intentions=_ext_value(episode, EXT_COURSE_INTENTIONS, "valueString") or "",
                starts_on=_day(period.get("start")), ends_on=_day(period.get("end")))
            problems = [p for p in (
                _text("A course title", course.title, 120, multiline=False),
                _text("A course's intentions", course.intentions, 20_000)) if p]
            if not course.title.strip() or course.format not in set(CourseFormat):
                problems.append("A course of the Bundle has no kaptools title or format.")
            if course.starts_on is None or (period.get("end") and course.ends_on is None):
                problems.append(f"The course “{course.title}” has no readable dates.")
            elif course.ends_on is not None and course.ends_on < course.starts_on:
                problems.append(f"The course “{course.title}” ends before it starts.")
            for encounter_url in [u for u, parent in placed.items() if parent == url]:
                encounter = self.by_url[encounter_url]
                follows = (_ext_value(encounter, EXT_FOLLOWS, "valueReference") or {})
                one = _Session(
                    encounter_url, _ext_value(encounter, EXT_SESSION_KIND, "valueCode") or "",
                    _day((encounter.get("period") or {}).get("start")),
                    _ext_value(encounter, EXT_SESSION_SUMMARY, "valueString") or "",
                    follows.get("reference"))
                if one.kind not in set(SessionKind) or one.on is None:
                    problems.append(f"A session of “{course.title}” has no kaptools kind or "
                                    "no readable date.")
                if (problem := _text("A session summary", one.summary, 200,
                                     multiline=False)):
                    problems.append(problem)
                course.sessions.append(one)
            self.problems.extend(problems)
            found.append(course)
        return found

    def responses(self) -> list[_Response]:
        signatures: dict[str, list[str]] = {}
        for _, provenance in self.by_type.get("Provenance", []):
            for target in provenance.get("target", []):
                signatures.setdefault(target.get("reference", ""), []).append(
                    _signature_line(provenance))
        found = []
        seen: set[str] = set()
        registry = get_registry()
        for url, resource in self.by_type.get("QuestionnaireResponse", []):
            note_id = _identifier(resource, NOTE_IDS) or url
            name = f"Note {note_id}"
            if note_id in seen:
                self.problems.append(f"{name} is in the Bundle twice.")
                continue
            seen.add(note_id)
            canonical = resource.get("questionnaire", "")
            slug, _, version = canonical.removeprefix(QUESTIONNAIRES).partition("|")
            if not canonical.startswith(QUESTIONNAIRES) or not version.isdigit():
                self.problems.append(f"{name} answers {canonical!r}, not a kaptools template.")
                continue
            template = registry.get(slug, int(version))
            if template is None:
                self.problems.append(
                    f"{name} was written with template {slug} v{version}, which is not "
                    "installed here. Install it first (the Bundle carries its Questionnaire; "
                    "see `kaptools fhir-import questionnaire`).")
                continue
            encounter = (resource.get("encounter") or {}).get("reference", "")
            if (self.by_url.get(encounter) or {}).get("resourceType") != "Encounter":
                self.problems.append(f"{name} names no session of this Bundle.")
                continue
            try:
                answers = _AnswerReader(template).read(resource.get("item", []))
            except ValueError as exc:
                self.problems.append(f"{name} ({template.title}): {exc}")
                continue
            if (problem := _fit_problem(template, answers)) is not None:
                self.problems.append(f"{name} ({template.title}): {problem}")
                continue
            response = _Response(resource, template, answers, note_id, encounter,
                                 signatures.get(url, []))
            if (problem := self.seal_problem(response)) is not None:
                self.problems.append(f"{name} ({template.title}): {problem}")
                continue
            try:
                response.addenda = _addenda(resource, response)
            except ValueError as exc:
                self.problems.append(f"{name} ({template.title}): {exc}")
                continue
            reason = _ext_value(resource, EXT_ERROR_REASON, "valueString") or ""
            if (problem := _text("The reason it was entered in error", reason, 2000)):
                self.problems.append(f"{name}: {problem}")
                continue
            found.append(response)
        return found

    def seal_problem(self, response: _Response) -> str | None:
        """Why the answers read back are not those the signer sealed, or None."""
        resource = response.resource
        sealed = _ext_value(resource, EXT_CONTENT_HASH, "valueString")
        if resource.get("status") not in ("completed", "entered-in-error"):
            return "only signed notes travel in a record export; this one is not signed."
        if not sealed:
            return "it has no content hash to verify its answers against."
        session_id = _identifier(self.by_url[response.encounter], SESSION_IDS)
        author_id = _identifier(resource.get("author") or {}, USER_IDS)
        ids = [response.source_note, session_id, author_id]
        if not all(isinstance(i, str) and i.isdigit() for i in ids):
            return "the note, its session or its author has no kaptools id to verify against."
        digest = notes.record_hash(int(ids[0]), int(ids[1]), int(ids[2]),
                                   response.template.slug, response.template.version,
                                   response.answers)
        if digest != sealed:
            return ("its answers do not match the hash sealed when it was signed: the file "
                    "was changed after export, or held answers kaptools cannot read back "
                    "exactly.")
        return None


def _signature_line(provenance: Resource) -> str:
    agent = (provenance.get("agent") or [{}])[0]
    who = (agent.get("who") or {}).get("display", "someone")
    codes = [c.get("code") for c in (agent.get("type") or {}).get("coding", [])]
    what = "Co-signed" if VERIFIER in codes else "Signed"
    when = provenance.get("recorded", "")
    sealed = ""
    for entity in provenance.get("entity", []):
        display = (entity.get("what") or {}).get("display", "")
        if "SHA-256" in display:
            sealed = display.rsplit(" ", 1)[-1]
    return f"{what} by {who} at {when}" + (f" (SHA-256 {sealed})" if sealed else "")


CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,31}$")


def _day(value: Any) -> date | None:
    """A FHIR date (or the date of a dateTime) as a day; None when there is none or it
    names only a year or a month."""
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _text(what: str, value: Any, limit: int, **rules: bool) -> str | None:
    """What is wrong with an imported text, as the forms would say it; None if nothing."""
    if not isinstance(value, str):
        return f"{what} is not text."
    if len(value) > limit:
        return f"{what} is longer than the {limit} characters kaptools keeps."
    if (problem := text_problem(value, **rules)) is not None:
        return f"{what}: {problem}"
    return None


def _fit_problem(template: Template, answers: Answers) -> str | None:
    """Why ``answers`` are not what kaptools would have stored for a signed note of
    ``template`` (types, limits, rounding, trimming, conditions), or None."""
    try:
        stored = round_trip(template, answers)
    except ValueError as exc:
        errors = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
        first = f"; first, {errors[0][0]}: {errors[0][1]}" if errors else ""
        return f"its answers do not fit the template ({len(errors)} problem(s){first})."
    if stored != answers:
        changed = sorted(k for k in set(stored) | set(answers)
                         if stored.get(k) != answers.get(k))
        return ("its answers are not what kaptools stores for them (wrong type, rounding "
                f"or spacing): {', '.join(changed[:5])}.")
    return None


def _addenda(resource: Resource, response: _Response) -> list[_Addendum]:
    """The note's signed corrections, each checked against its own seal."""
    found = []
    sealed_note = _ext_value(resource, EXT_CONTENT_HASH, "valueString")
    for extension in resource.get("extension", []):
        if extension.get("url") != EXT_ADDENDUM:
            continue
        parts = {e.get("url"): e for e in extension.get("extension", [])}
        author = (parts.get("author") or {}).get("valueReference") or {}
        author_id = _identifier(author, USER_IDS)
        body = (parts.get("text") or {}).get("valueString")
        sealed = (parts.get("content-sha256") or {}).get("valueString")
        try:
            signed_at = datetime.fromisoformat(
                (parts.get("signed-at") or {}).get("valueDateTime", ""))
        except ValueError:
            signed_at = None
        if signed_at is None or signed_at.tzinfo is None or not (author_id or "").isdigit():
            raise ValueError("an addendum has no author or time to verify it by.")
        if (problem := _text("An addendum", body, 20_000)) is not None:
            raise ValueError(problem)
        digest = notes.seal_digest({"note_id": int(response.source_note),
                                    "note_hash": sealed_note, "author_id": int(author_id),
                                    "body": body, "signed_at": signed_at.isoformat()})
        if digest != sealed:
            raise ValueError("an addendum does not match the hash sealed when it was "
                             "signed: the file was changed after export.")
        found.append(_Addendum(author.get("display") or "someone", signed_at, body))
    return found


class _AnswerReader:
    """A response's items as kaptools answers: the inverse of ``fhir.response``."""

    def __init__(self, template: Template) -> None:
        self.template = template
        self.sections = {f"section-{s.key}": s for s in template.sections}

    def read(self, items: list[Resource]) -> Answers:
        answers: Answers = {}
        for item in items:
            link_id = item.get("linkId", "")
            if link_id.startswith("score-"):
                continue  # computed again from the answers, never stored
            section = self.sections.get(link_id)
            if section is None:
                raise ValueError(f"item {link_id!r} is not a section of the template.")
            self.level(section.fields, item.get("item", []), (), answers)
        return answers

    def level(self, fields: tuple[Field, ...], items: list[Resource], path: tuple[str, ...],
              answers: Answers) -> Answers:
        by_link = {field_link_id((*path, f.key)): f for f in fields}
        for item in items:
            link_id = item.get("linkId", "")
            f = by_link.get(link_id)
            if f is None or f.audience == "private":
                raise ValueError(f"item {link_id!r} is not a question of the template here.")
            if f.type == "group":
                row_id = item.get("id")
                if not isinstance(row_id, str) or not ITEM_ID_RE.match(row_id):
                    raise ValueError(f"a row of {f.label!r} has no row id.")
                row = self.level(f.fields, item.get("item", []), (*path, f.key), {})
                answers.setdefault(f.key, []).append({"item_id": row_id, **row})
                continue
            if f.key in answers:
                raise ValueError(f"{f.label!r} is answered twice.")
            values = [self.value(f, answer) for answer in item.get("answer", [])]
            if not values:
                raise ValueError(f"{f.label!r} is listed without an answer.")
            if f.type == "multichoice":
                answers[f.key] = values
            elif len(values) > 1:
                raise ValueError(f"{f.label!r} takes one answer, not {len(values)}.")
            else:
                answers[f.key] = values[0]
        return answers

    def value(self, f: Field, answer: Resource) -> Any:
        expected = {"text": "valueString", "longtext": "valueString",
                    "integer": "valueInteger", "percent": "valueInteger",
                    "duration": "valueInteger", "decimal": "valueDecimal",
                    "yesno": "valueBoolean", "date": "valueDate", "time": "valueTime",
                    "scale": "valueCoding", "choice": "valueCoding",
                    "multichoice": "valueCoding", "ref": "valueCoding"}[f.type]
        if expected not in answer:
            raise ValueError(f"{f.label!r} should be answered with {expected}.")
        value = answer[expected]
        kind = {"valueString": str, "valueDate": str, "valueTime": str,
                "valueBoolean": bool, "valueCoding": dict}.get(expected)
        numeric = expected in ("valueInteger", "valueDecimal")
        if (kind is not None and not isinstance(value, kind)) or (numeric and (
                isinstance(value, bool) or not isinstance(value, (int, float)))) or (
                expected == "valueInteger" and not isinstance(value, int)):
            raise ValueError(f"{f.label!r} is answered with a value of the wrong type.")
        if f.type == "decimal":
            return float(value)
        if f.type == "time":
            if not re.match(r"^\d{2}:\d{2}(:00)?$", value):
                raise ValueError(f"{f.label!r} is not a time kaptools stores (hh:mm).")
            return value[:5]
        if expected != "valueCoding":
            return value
        code = str(value.get("code", ""))
        if f.type == "ref":
            return code
        options = f.scale.values() if f.type == "scale" and f.scale else \
            [choice.value for choice in f.choices]
        for option in options:
            if str(option) == code:
                return option
        raise ValueError(f"{f.label!r} has no option {code!r}.")


class _Writer:
    def __init__(self, reader: _Reader, therapist: User) -> None:
        self.reader = reader
        self.therapist = therapist

    def write(self, courses: list[_Course], responses: list[_Response],
              reason: str) -> RecordImport:
        reader, therapist = self.reader, self.therapist
        client = Client(therapist_id=therapist.id, code=reader.code, archived=reader.archived)
        db.session.add(client)
        db.session.flush()
        audit.record("client.created", obj=client, user=therapist, client_code=client.code,
                     detail={"imported": "fhir-r4-bundle"})
        report = RecordImport(client)
        sessions: dict[str, TherapySession] = {}
        for planned in courses:
            course = Course(client=client, title=planned.title, format=planned.format,
                            intentions=planned.intentions, starts_on=planned.starts_on,
                            ends_on=planned.ends_on)
            db.session.add(course)
            db.session.flush()
            audit.record("course.created", obj=course, user=therapist, client_code=client.code)
            report.courses += 1
            for one in planned.sessions:
                follows = sessions.get(one.follows or "")
                made = TherapySession(course=course, kind=one.kind, session_date=one.on,
                                      summary=one.summary,
                                      follows_id=follows.id if follows else None)
                db.session.add(made)
                db.session.flush()
                audit.record("session.created", obj=made, user=therapist,
                             client_code=client.code)
                sessions[one.url] = made
                report.sessions += 1
        for response in responses:
            self.note(sessions[response.encounter], response, report)
        audit.record("import.record", obj=client, user=therapist, client_code=client.code,
                     detail={"format": "fhir-r4-bundle", "reason": reason,
                             "courses": report.courses, "sessions": report.sessions,
                             "notes": report.notes, "seals_verified": report.seals_verified})
        return report

    def note(self, therapy_session: TherapySession, response: _Response,
             report: RecordImport) -> Note:
        resource = response.resource
        note = notes.create_note(therapy_session, self.therapist, response.template,
                                 response.answers)
        notes.seal(note, self.therapist)
        report.seals_verified += 1
        notes.add_addendum(note, self.therapist, _provenance_text(response))
        for addendum in response.addenda:
            notes.add_addendum(note, self.therapist, (
                f"Addendum by {addendum.author}, signed "
                f"{addendum.signed_at:%Y-%m-%d %H:%M} UTC in the instance this note came "
                f"from (its seal verified):\n\n{addendum.body}"))
        if resource.get("status") == "entered-in-error":
            notes.mark_entered_in_error(
                note, self.therapist,
                _ext_value(resource, EXT_ERROR_REASON, "valueString")
                or "Entered in error in the instance it came from.")
            report.in_error += 1
        report.notes += 1
        return note


def _provenance_text(response: _Response) -> str:
    resource = response.resource
    author = (resource.get("author") or {}).get("display", "someone")
    signer = (_ext_value(resource, EXT_SIGNED_BY, "valueReference") or {}).get("display")
    signed_at = _ext_value(resource, EXT_SIGNED_AT, "valueDateTime")
    sealed = _ext_value(resource, EXT_CONTENT_HASH, "valueString")
    lines = [
        "Imported from a kaptools record export (FHIR). This note was written by "
        f"{author} in another kaptools instance"
        + (f" and signed by {signer} at {signed_at}" if signer and signed_at else "") + ".",
        "",
        f"Its answers were checked against the hash sealed when it was signed there "
        f"(SHA-256 {sealed}) and match it exactly. It is sealed here by the person who "
        "imported it, which records the import, not authorship.",
    ]
    if response.signatures:
        lines += ["", "Signatures there:"] + [f"- {line}" for line in response.signatures]
    return "\n".join(lines)
