"""Records that travel (issue 14): every template version as a FHIR R4 Questionnaire and
every note as a QuestionnaireResponse, each checked by the FHIR library's own models."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhir_core.fhirabstractmodel import FHIRAbstractModel

from kaptools import notes
from kaptools.extensions import db
from kaptools.fhir import FHIR_BASE, canonical, questionnaire, questionnaire_response
from kaptools.fhir.terms import (
    EXT_CALCULATED_EXPRESSION,
    EXT_CONTENT_HASH,
    EXT_ERROR_REASON,
    EXT_SIGNED_AT,
    EXT_SIGNED_BY,
    LOINC,
)
from kaptools.modality.answers import compute_scores, validate_answers
from kaptools.modality.registry import builtin_dir, load_registry
from kaptools.modality.schema import Field, Template
from kaptools.models import Note, TherapySession
from tests import factories

REGISTRY = load_registry(builtin_dir())
TEMPLATES = sorted(REGISTRY.templates.values(), key=lambda t: (t.slug, t.version))
NAMES = [f"{t.slug}-v{t.version}" for t in TEMPLATES]
WITH_PRIVATE_FIELDS = [t for t in TEMPLATES if any(f.audience == "private" for f in t.fields)]


def items_of(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item at any depth (in a response, also those nested under answers)."""
    found = []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            found.append(item)
            walk(item.get("item", []))
            for answer in item.get("answer", []):
                walk(answer.get("item", []))

    walk(resource.get("item", []))
    return found


def by_link_id(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["linkId"]: item for item in items_of(resource)}


def codes_outside_fhir_value_sets(model: FHIRAbstractModel) -> list[str]:
    """Coded elements whose value is not among those the library lists for them (the
    library records FHIR's required codes as ``enum_values`` but leaves checking them to
    its callers; a list ending in "+" is cut short, so it says nothing)."""
    wrong = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        allowed = (info.json_schema_extra or {}).get("enum_values")  # type: ignore[union-attr]
        if allowed and "+" not in allowed and value is not None and value not in allowed:
            wrong.append(f"{type(model).__name__}.{name} = {value!r}")
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, FHIRAbstractModel):
                wrong.extend(codes_outside_fhir_value_sets(child))
    return wrong


# The answer a question of each item type takes, as kaptools writes them.
ANSWER_OF_TYPE = {"string": "valueString", "text": "valueString", "open-choice": "valueString",
                  "choice": "valueCoding", "integer": "valueInteger", "decimal": "valueDecimal",
                  "boolean": "valueBoolean", "date": "valueDate", "time": "valueTime"}


def record_fields(template: Template) -> list[tuple[str, Field]]:
    """(linkId, field) of every field a record may hold, at any depth."""
    found = []

    def walk(fields: tuple[Field, ...], prefix: str) -> None:
        for f in fields:
            if f.audience != "private":
                found.append((prefix + f.key, f))
                walk(f.fields, f"{prefix}{f.key}.")

    walk(template.fields, "")
    return found


def split_sample(template: Template) -> tuple[dict[str, Any], dict[str, Any]]:
    private = {f.key for f in template.fields if f.audience == "private"}
    record = {k: v for k, v in template.sample.items() if k not in private}
    return record, {k: v for k, v in template.sample.items() if k in private}


# ---------------------------------------------------------------------------
# Templates as Questionnaires


@pytest.mark.parametrize("template", TEMPLATES, ids=NAMES)
def test_every_template_version_exports_as_a_valid_questionnaire(template):
    exported = questionnaire(template)
    parsed = Questionnaire.model_validate(exported)
    assert exported["url"] == f"{FHIR_BASE}/Questionnaire/{template.slug}"
    assert exported["version"] == str(template.version)
    assert exported["title"] == template.title and exported["status"] == "active"
    assert codes_outside_fhir_value_sets(parsed) == []
    link_ids = [item["linkId"] for item in items_of(exported)]
    assert len(link_ids) == len(set(link_ids))
    asked = by_link_id(exported)
    for link_id, f in record_fields(template):
        assert asked[link_id]["text"] == f.label
        assert asked[link_id].get("required", False) == (f.required or f.min_items > 0)
    for item in items_of(exported):
        for condition in item.get("enableWhen", []):
            assert condition["question"] in asked


@pytest.mark.parametrize("template", WITH_PRIVATE_FIELDS, ids=lambda t: f"{t.slug}-v{t.version}")
def test_private_fields_are_not_part_of_the_questionnaire(template):
    exported = questionnaire(template)
    asked, text = by_link_id(exported), json.dumps(exported, ensure_ascii=False)
    for f in template.fields:
        if f.audience == "private":
            assert f.key not in asked
            assert f.label not in text and (not f.help or f.help not in text)


def test_each_kind_of_field_is_asked_as_its_fhir_type(tmp_path):
    """The worked example of the authors' guide has most kinds of field; the dosing record
    and the thought record the rest."""
    guide = (builtin_dir() / "README.md").read_text()
    example = guide.split("## A complete worked example")[1].split("```toml")[1].split("```")[0]
    (tmp_path / "arrival-check-in").mkdir()
    (tmp_path / "arrival-check-in" / "v1.toml").write_text(example)
    check_in = by_link_id(questionnaire(load_registry(builtin_dir(), tmp_path)
                                        .latest("arrival-check-in")))
    hours = check_in["slept_hours"]
    assert hours["type"] == "decimal"
    assert extension(hours, "maxDecimalPlaces") == {"valueInteger": 1}
    assert extension(hours, "maxValue") == {"valueDecimal": 24.0}
    distress = check_in["distress"]
    assert distress["type"] == "choice" and distress["required"] is True
    assert [o["valueCoding"]["code"] for o in distress["answerOption"]] == \
        [str(n) for n in range(11)]
    assert distress["answerOption"][10]["valueCoding"]["display"] == "10 – Worst imaginable"
    assert [o["extension"][0]["valueDecimal"] for o in distress["answerOption"]] == \
        list(range(11))
    assert extension(distress, "rating-scale") == {"valueString": "SUD (0–10)"}
    areas = check_in["body_areas"]
    assert areas["type"] == "choice" and areas["repeats"] is True
    moments = check_in["since_last"]
    assert moments["type"] == "group" and moments["repeats"] is True
    assert extension(moments, "questionnaire-maxOccurs") == {"valueInteger": 5}
    assert [child["linkId"] for child in moments["item"]] == \
        ["since_last.what", "since_last.coped", "since_last.practice"]
    assert check_in["since_last.what"]["type"] == "string"
    assert check_in["since_last.what"]["maxLength"] == 200
    assert check_in["since_last.coped"]["type"] == "boolean"
    assert check_in["since_last.practice"]["enableWhen"] == [
        {"question": "since_last.coped", "operator": "=", "answerBoolean": True}]
    hardest = check_in["hardest"]
    assert hardest["type"] == "choice"
    assert extension(hardest, "row-reference") == {"valueString": "since_last"}
    assert extension(check_in["intention"], "audience") == {"valueCode": "client"}
    assert "impressions" not in check_in  # private
    triage = check_in["score-check"]
    assert triage["type"] == "string" and triage["readOnly"] is True
    assert "'Ask more today'" in calculated(triage)

    dosing = by_link_id(questionnaire(REGISTRY.latest("kap-dosing")))
    assert dosing["vitals.time"]["type"] == "time"
    assert dosing["vitals.systolic"]["type"] == "integer"
    assert extension(dosing["vitals.systolic"], "questionnaire-unit") == {"valueCoding": {
        "system": "http://unitsofmeasure.org", "code": "mm[Hg]", "display": "mmHg"}}
    thought_record = by_link_id(questionnaire(REGISTRY.latest("cbt-thought-record")))
    assert thought_record["balanced_belief"]["type"] == "integer"
    assert extension(thought_record["balanced_belief"], "maxValue") == {"valueInteger": 100}
    assert "process_notes" not in thought_record  # private


def test_an_infusion_time_travels_in_minutes(app, world):
    """No sample holds a duration: an intravenous dose does."""
    template = REGISTRY.latest("kap-dosing")
    asked = by_link_id(questionnaire(template))["infusion_minutes"]
    assert asked["type"] == "integer"
    assert extension(asked, "questionnaire-unit") == {"valueCoding": {
        "system": "http://unitsofmeasure.org", "code": "min", "display": "minutes"}}
    with app.app_context():
        note = write_note(world["dosing"], template, formulation="racemic_iv",
                          route="intravenous", infusion_minutes=40)
        response = questionnaire_response(note)
        assert by_link_id(response)["infusion_minutes"]["answer"] == [{"valueInteger": 40}]
        assert read_back(template, response) == note.answers


def test_an_endorsed_item_9_travels_with_its_flag(app, world):
    template = REGISTRY.latest("phq-9")
    with app.app_context():
        note = write_note(world["integration"], template, q9=1, risk_follow_up=(
            "Synthetic: passing thoughts, no plan or intent; safety plan reviewed."))
        response = questionnaire_response(note)
        (result,) = compute_scores(template, note.answers)
        assert result.flags
        assert by_link_id(response)["score-total-flags"]["answer"] == \
            [{"valueString": flag} for flag in result.flags]
        assert read_back(template, response) == note.answers


def test_keys_that_would_share_a_link_id_are_refused(tmp_path):
    (tmp_path / "clash").mkdir()
    (tmp_path / "clash" / "v1.toml").write_text('''
slug = "clash"
version = 1
title = "Two sections, one linkId"

[[sections]]
key = "notes"
title = "Notes"
help = "Its help is the item section-notes-help."

[[sections.fields]]
key = "first"
type = "text"
label = "First"

[[sections]]
key = "notes-help"
title = "So is this section"

[[sections.fields]]
key = "second"
type = "text"
label = "Second"
''')
    registry = load_registry(builtin_dir(), tmp_path)
    assert registry.problems == []
    with pytest.raises(ValueError, match="section-notes-help"):
        questionnaire(registry.latest("clash"))


def extension(item: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The value of the extension whose URL ends with ``name`` (at most one)."""
    found = [{k: v for k, v in ext.items() if k != "url"} for ext in item.get("extension", [])
             if ext["url"].rsplit("/", 1)[-1] == name]
    assert len(found) <= 1
    return found[0] if found else None


def calculated(item: dict[str, Any]) -> str:
    (ext,) = [e for e in item["extension"] if e["url"] == EXT_CALCULATED_EXPRESSION]
    assert ext["valueExpression"]["language"] == "text/fhirpath"
    return ext["valueExpression"]["expression"]


def test_conditions_are_enable_when_with_the_same_meaning():
    phq9 = by_link_id(questionnaire(REGISTRY.latest("phq-9")))
    # Item 9 above 0: the ratings 1, 2 and 3 of item 9.
    follow_up = phq9["risk_follow_up"]
    assert [c["answerCoding"]["code"] for c in follow_up["enableWhen"]] == ["1", "2", "3"]
    assert {c["question"] for c in follow_up["enableWhen"]} == {"q9"}
    assert follow_up["enableBehavior"] == "any"
    emdr = by_link_id(questionnaire(REGISTRY.get("emdr-target-set", 2)))
    # A blocking belief is asked while the VOC is below 7.
    assert [c["answerCoding"]["code"] for c in emdr["blocking_belief"]["enableWhen"]] == \
        ["1", "2", "3", "4", "5", "6"]
    # "Not yet" excluded, and only once the screen is answered.
    screen_tool = emdr["screen_tool"]
    assert screen_tool["enableBehavior"] == "all"
    assert [(c["operator"], c.get("answerCoding", {}).get("code")) for c in
            screen_tool["enableWhen"]] == [("exists", None), ("!=", "not_yet")]
    assert emdr["reeval_sud"]["enableWhen"] == [
        {"question": "reeval_target", "operator": "exists", "answerBoolean": True}]


def test_the_standard_instruments_carry_their_loinc_codes():
    expected = {("gad-7", 1): ("69737-5", "70274-6"), ("phq-9", 1): ("44249-1", "44261-6"),
                ("pcl-5", 1): ("101697-1", "101698-9"), ("pcl-5", 2): ("101697-1", "101698-9")}
    for template in TEMPLATES:
        exported = questionnaire(template)
        panel, total = expected.get((template.slug, template.version), (None, None))
        loinc_codes = [c["code"] for c in exported.get("code", []) if c["system"] == LOINC]
        assert loinc_codes == ([panel] if panel else []), template.slug
        scores = by_link_id(exported)
        if total:
            (code,) = scores["score-total"]["code"]
            assert (code["system"], code["code"]) == (LOINC, total)
            assert "loinc.org/license" in exported["copyright"]
        else:  # no LOINC code anywhere else either (the past-week PCL-5 among them)
            assert LOINC not in json.dumps(exported)
    gad7 = by_link_id(questionnaire(REGISTRY.latest("gad-7")))
    assert [gad7[f"q{n}"]["code"][0]["code"] for n in range(1, 8)] == \
        ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
    phq9 = questionnaire(REGISTRY.latest("phq-9"))
    assert by_link_id(phq9)["q9"]["code"] == [{"system": LOINC, "code": "44260-8"}]
    assert phq9["copyright"].startswith("PHQ-9: developed by Drs. Robert L. Spitzer")


def test_scores_are_read_only_items_calculated_from_the_ratings():
    phq9 = by_link_id(questionnaire(REGISTRY.latest("phq-9")))
    total = phq9["score-total"]
    assert (total["type"], total["readOnly"]) == ("integer", True)
    assert "aggregate($this + $total, 0)" in calculated(total)
    assert "'Moderately severe'" in calculated(phq9["score-total-band"])
    assert phq9["score-total-flags"]["repeats"] is True
    assert "linkId = 'q9'" in calculated(phq9["score-total-flags"])
    pcl5 = by_link_id(questionnaire(REGISTRY.latest("pcl-5")))
    assert ".where($this >= 2).count() >= 2" in calculated(pcl5["score-dsm5"])


# ---------------------------------------------------------------------------
# Notes as QuestionnaireResponses


@pytest.fixture
def world(app):
    """A therapist's course whose dosing record may be signed (screened, consented)."""
    with app.app_context():
        maya = factories.user("maya")
        ids = factories.client_with_course(maya)
        factories.screened_and_consented(ids["course"], maya)
        return ids


def write_note(session_id: int, template: Template, sign: bool = True,
               misfiled_private: bool = False, **changes: Any) -> Note:
    """A note filled with the template's sample (with ``changes``); its private answers
    kept apart (or, with ``misfiled_private``, stored with the record as if by mistake)."""
    session = db.session.get(TherapySession, session_id)
    author = session.course.client.therapist
    record, private = split_sample(template)
    record.update(changes)
    assert validate_answers(template, {**record, **private}) == []
    if misfiled_private:
        record, private = {**record, **private}, {}
    note = notes.create_note(session, author, template, record, private)
    if sign:
        notes.sign(note, author)
    db.session.commit()
    return note


def read_back(template: Template, response: dict[str, Any]) -> dict[str, Any]:
    """The answers a response holds, in kaptools' own form."""
    sections = [s for s in response.get("item", []) if s["linkId"].startswith("section-")]
    return _read_level(template.fields, [item for s in sections for item in s["item"]])


def _read_level(fields: tuple[Field, ...], items: list[dict[str, Any]]) -> dict[str, Any]:
    by_key = {f.key: f for f in fields}
    answers: dict[str, Any] = {}
    for item in items:
        f = by_key[item["linkId"].rsplit(".", 1)[-1]]
        if f.type == "group":
            row = {"item_id": item["id"], **_read_level(f.fields, item["item"])}
            answers.setdefault(f.key, []).append(row)
        elif f.type == "multichoice":
            answers[f.key] = [answer["valueCoding"]["code"] for answer in item["answer"]]
        else:
            (answer,) = item["answer"]
            answers[f.key] = _read_value(f, answer)
    return answers


def _read_value(f: Field, answer: dict[str, Any]) -> Any:
    ((_, value),) = answer.items()
    if f.type == "scale":
        return int(value["code"])
    if f.type in ("choice", "ref"):
        return value["code"]
    if f.type == "time":
        assert value.endswith(":00")
        return value[:5]
    return value


@pytest.mark.parametrize("template", TEMPLATES, ids=NAMES)
def test_every_note_exports_as_a_valid_response_holding_its_answers(app, world, template):
    with app.app_context():
        note = write_note(world["integration"], template)
        response = questionnaire_response(note)
        parsed = QuestionnaireResponse.model_validate(response)
        assert codes_outside_fhir_value_sets(parsed) == []
        assert response["questionnaire"] == canonical(template) == \
            f"{FHIR_BASE}/Questionnaire/{template.slug}|{template.version}"
        assert response["status"] == "completed"
        assert response["author"]["display"] == "Maya"
        record, private = split_sample(template)
        assert note.answers == record
        assert read_back(template, response) == record
        # The scores kaptools computed travel with the answers.
        answered = by_link_id(response)
        for result in compute_scores(template, record):
            if result.total is not None:
                assert answered[f"score-{result.key}"]["answer"] == \
                    [{"valueInteger": result.total}]
            if result.band:
                link = f"score-{result.key}" + ("" if result.is_levels else "-band")
                assert answered[link]["answer"] == [{"valueString": result.band}]
            if result.flags and not result.is_levels:
                assert answered[f"score-{result.key}-flags"]["answer"] == \
                    [{"valueString": flag} for flag in result.flags]
        # Every answer is one its question in the Questionnaire takes.
        asked = by_link_id(questionnaire(template))
        for item in items_of(response):
            question = asked[item["linkId"]]
            for answer in item.get("answer", []):
                (kind,) = answer
                assert kind == ANSWER_OF_TYPE[question["type"]]
                if question["type"] == "choice" and "answerOption" in question:
                    assert answer["valueCoding"] in \
                        [option["valueCoding"] for option in question["answerOption"]]
        exported = json.dumps(response, ensure_ascii=False)
        for value in private.values():
            assert str(value) not in exported


@pytest.mark.parametrize("template", WITH_PRIVATE_FIELDS, ids=lambda t: f"{t.slug}-v{t.version}")
def test_private_answers_never_leave_even_when_stored_with_the_record(app, world, template):
    with app.app_context():
        note = write_note(world["integration"], template, misfiled_private=True)
        _, private = split_sample(template)
        assert private and all(note.answers[k] == v for k, v in private.items())
        response = questionnaire_response(note)
        exported = json.dumps(response, ensure_ascii=False)
        for key, value in private.items():
            assert key not in by_link_id(response)
            assert str(value) not in exported


def test_a_response_says_where_the_note_is_in_its_life(app, world):
    template = REGISTRY.latest("gad-7")
    with app.app_context():
        note = write_note(world["integration"], template, sign=False)
        draft = questionnaire_response(note)
        assert draft["status"] == "in-progress"
        assert "extension" not in draft  # nobody has signed it

        notes.sign(note, note.author)
        db.session.commit()
        signed = questionnaire_response(note)
        assert signed["status"] == "completed"
        signature = extension_values(signed)
        assert signature[EXT_SIGNED_BY] == {"valueReference": {
            "type": "Practitioner", "display": "Maya",
            "identifier": {"system": f"{FHIR_BASE}/id/user", "value": str(note.author_id)}}}
        signed_at = note.signed_at.replace(microsecond=0)
        assert moment(signature[EXT_SIGNED_AT]["valueDateTime"]) == signed_at
        assert signature[EXT_CONTENT_HASH] == {"valueString": note.content_hash}
        assert moment(signed["authored"]) == signed_at
        assert notes.verify_hash(note).ok

        notes.mark_entered_in_error(note, note.author, "Wrong client's answers.")
        db.session.commit()
        withdrawn = questionnaire_response(note)
        assert withdrawn["status"] == "entered-in-error"
        assert extension_values(withdrawn)[EXT_ERROR_REASON] == \
            {"valueString": "Wrong client's answers."}
        assert read_back(template, withdrawn) == note.answers


def moment(value: str) -> datetime:
    found = datetime.fromisoformat(value)
    assert found.tzinfo is not None
    return found


def extension_values(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {ext["url"]: {k: v for k, v in ext.items() if k != "url"}
            for ext in resource.get("extension", [])}


def test_a_reference_to_a_row_names_the_row_of_the_same_note(app, world):
    template = REGISTRY.latest("cbt-thought-record")
    with app.app_context():
        response = questionnaire_response(write_note(world["integration"], template))
    items = by_link_id(response)
    hot = items["hot_thought"]["answer"][0]["valueCoding"]
    rows = [item for item in items_of(response) if item["linkId"] == "thoughts"]
    (row,) = [row for row in rows if row["id"] == hot["code"]]
    thought = next(child for child in row["item"] if child["linkId"] == "thoughts.thought")
    assert hot["display"] == thought["answer"][0]["valueString"]


@pytest.mark.parametrize("template", [t for t in TEMPLATES if t.scores], ids=lambda t: t.slug)
def test_score_expressions_compute_what_kaptools_computes(template):
    """The exported FHIRPath, run by a FHIRPath engine on a response, gives kaptools' own
    totals, bands and flags: on the sample, and on random, partly unanswered ratings."""
    import random

    from fhirpathpy import evaluate
    from fhirpathpy.models import models

    from kaptools.fhir.response import _Answers
    from kaptools.fhir.terms import EXT_CALCULATED_EXPRESSION
    from kaptools.modality.answers import compute_scores

    calculated = {item["linkId"]: ext["valueExpression"]["expression"]
                  for item in questionnaire(template)["item"]
                  for ext in item.get("extension", []) if ext["url"] == EXT_CALCULATED_EXPRESSION}
    rng = random.Random(template.slug)
    for trial in range(25):
        answers = dict(template.sample)
        for f in template.fields if trial else []:
            if f.type == "scale":
                answers[f.key] = rng.choice(f.scale.values())
                if rng.random() < 0.1:
                    answers.pop(f.key)
            elif f.type == "yesno":
                answers[f.key] = rng.random() < 0.5
                if rng.random() < 0.1:
                    answers.pop(f.key)
        response = {"resourceType": "QuestionnaireResponse", "status": "completed",
                    "item": _Answers(template, answers).sections()}

        def run(link_id, response=response):
            return evaluate(response, calculated[link_id], {"resource": response},
                            models["r4"])

        for result in compute_scores(template, answers):
            base = f"score-{result.key}"
            if result.is_levels:
                assert run(base) == ([result.band] if result.band else []), (base, answers)
            else:
                assert run(base) == ([result.total] if result.total is not None else []), \
                    (base, answers)
            if base + "-band" in calculated:
                assert run(base + "-band") == ([result.band] if result.band else [])
            if base + "-flags" in calculated:
                assert run(base + "-flags") == list(result.flags)
