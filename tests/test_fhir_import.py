"""A FHIR Questionnaire imported as a clinic template (issue 14): the published LOINC GAD-7
and PHQ-9 score as the built-in templates do, kaptools' own exports come back as they left,
and what the template language cannot hold is refused by name."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from kaptools.cli import modalities_check
from kaptools.fhir import questionnaire
from kaptools.fhir.importer import (
    ImportedTemplate,
    QuestionnaireNotImportable,
    import_questionnaire,
    template_from_questionnaire,
)
from kaptools.fhir.terms import INSTRUMENTS, LOINC_NOTICE
from kaptools.modality.answers import compute_scores
from kaptools.modality.registry import builtin_dir, clinic_dir, load_registry
from kaptools.modality.schema import Template

FIXTURES = Path(__file__).parent / "fixtures" / "fhir"
LOINC_FILES = {"gad-7": "loinc-69737-5-gad-7.json", "phq-9": "loinc-44249-1-phq-9.json"}
BUILT_IN = load_registry(builtin_dir())
TEMPLATES = sorted(BUILT_IN.templates.values(), key=lambda t: (t.slug, t.version))


def published(slug: str) -> dict[str, Any]:
    return json.loads((FIXTURES / LOINC_FILES[slug]).read_text(encoding="utf-8"))


def loaded(imported: ImportedTemplate, folder: Path) -> Template:
    """The imported template as kaptools loads it: from a clinic folder, beside the
    built-in templates, with every check of the registry."""
    (folder / imported.slug).mkdir(parents=True)
    (folder / imported.slug / "v1.toml").write_text(imported.toml, encoding="utf-8")
    registry = load_registry(builtin_dir(), folder)
    assert registry.problems == []
    template = registry.get(imported.slug, 1)
    assert template is not None
    return template


def item_keys(slug: str, imported: ImportedTemplate) -> dict[str, str]:
    """Built-in field key → the imported template's key for the same LOINC question."""
    link_ids = {c["code"]: item["linkId"] for item in published(slug)["item"]
                for c in item.get("code", [])}
    return {key: imported.keys[link_ids[code]]
            for key, code in INSTRUMENTS[slug].items.items() if code in link_ids}


def outcome(template: Template, answers: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(r.label, r.total, r.band, r.flags, r.risk)
            for r in compute_scores(template, answers)]


# ---------------------------------------------------------------------------
# The published LOINC instruments


@pytest.mark.parametrize("slug", sorted(LOINC_FILES))
def test_the_published_loinc_questionnaire_imports_as_a_template_that_loads(slug, tmp_path):
    imported = import_questionnaire(published(slug))
    template = loaded(imported, tmp_path)
    shipped = BUILT_IN.latest(slug)
    ratings = [f for f in template.fields if f.type == "scale"]
    assert len(ratings) == len(shipped.scores[0].items)
    # Each rating keeps the instrument's clinical identity and the Questionnaire's wording.
    assert {f.scale.name for f in ratings} == {shipped.fields[0].scale.name}
    labels = [label for f in ratings for _, label in f.scale.anchors]
    assert "Not at all" in labels and "Nearly every day" in labels
    assert LOINC_NOTICE in template.credit and "Pfizer" in template.credit
    assert "built-in" in imported.toml  # the borrowed score says where it comes from


@pytest.mark.parametrize("slug", sorted(LOINC_FILES))
def test_the_sample_answers_give_the_built_in_totals_and_bands(slug):
    shipped = BUILT_IN.latest(slug)
    imported = import_questionnaire(published(slug))
    keys = item_keys(slug, imported)
    answers = {keys[k]: v for k, v in shipped.sample.items() if k in shipped.scores[0].items}
    assert outcome(imported.template, answers) == outcome(shipped, shipped.sample)
    assert compute_scores(imported.template, answers)[0].band is not None


@pytest.mark.parametrize("slug", sorted(LOINC_FILES))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_answers_give_the_built_in_totals_bands_and_flags(slug, data):
    shipped = BUILT_IN.latest(slug)
    imported = import_questionnaire(published(slug))
    keys = item_keys(slug, imported)
    rating = st.one_of(st.integers(0, 3), st.integers(0, 3), st.none())  # mostly answered
    answers = {key: data.draw(rating, label=key) for key in shipped.scores[0].items}
    answers = {k: v for k, v in answers.items() if v is not None}
    theirs = outcome(imported.template, {keys[k]: v for k, v in answers.items()})
    assert theirs == outcome(shipped, answers)


def test_phq9_item_9_raises_the_risk_flag_as_in_the_built_in_template():
    imported = import_questionnaire(published("phq-9"))
    keys = item_keys("phq-9", imported)
    answers = {keys[f"q{n}"]: 0 for n in range(1, 10)} | {keys["q9"]: 1}
    result = compute_scores(imported.template, answers)[0]
    assert result.total == 1 and result.band == "Minimal" and result.risk
    assert result.flags == (BUILT_IN.latest("phq-9").scores[0].flags[0].label,)


def test_an_instrument_total_whose_items_are_not_the_instruments_is_refused():
    resource = published("gad-7")
    resource["item"] = [i for i in resource["item"] if i["linkId"] != "/69736-7"]
    with pytest.raises(QuestionnaireNotImportable) as refused:
        import_questionnaire(resource)
    assert [p.link_id for p in refused.value.problems] == ["/70274-6"]
    assert "cannot compute it" in str(refused.value)


# ---------------------------------------------------------------------------
# kaptools' own Questionnaires


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: f"{t.slug}-v{t.version}")
def test_every_exported_template_comes_back_as_it_left(template, tmp_path):
    exported = questionnaire(template)
    imported = loaded(import_questionnaire(exported), tmp_path)

    def items(resource: dict[str, Any], slug: str) -> str:
        def strip(found: list[dict[str, Any]]) -> None:
            for item in found:
                item.pop("code", None)  # LOINC codes: kaptools attaches them by slug
                strip(item.get("item", []))
        found = copy.deepcopy(resource["item"])
        strip(found)
        return json.dumps(found).replace(f"/CodeSystem/{slug}/", "/CodeSystem/<slug>/")

    again = questionnaire(imported)
    assert items(again, imported.slug) == items(exported, template.slug)
    assert (again.get("description"), again.get("copyright")) == \
        (exported.get("description"), exported.get("copyright"))
    record = {k: v for k, v in template.sample.items()
              if (f := template.field(k)) is None or f.audience != "private"}
    # A triage level's risk does not travel in FHIR (see the next test); the rest does.
    assert [(r.total, r.band, () if r.is_levels else r.flags)
            for r in compute_scores(imported, record)] == \
        [(r.total, r.band, () if r.is_levels else r.flags)
         for r in compute_scores(template, record)]


def test_risk_levels_come_back_without_raising_the_risk_flag_and_the_file_says_so():
    imported = import_questionnaire(questionnaire(BUILT_IN.latest("suicide-risk-screen")))
    assert imported.template.scores[0].levels
    assert not any(level.risk for level in imported.template.scores[0].levels)
    assert "`risk = true`" in imported.toml
    assert any("risk flag" in note for note in imported.notes)


# ---------------------------------------------------------------------------
# What the template language cannot hold

REFUSED = {
    "scan": ("Upload the referral letter", {"type": "attachment"}, "attachment"),
    "gp": ("Referring clinician", {"type": "reference"}, "reference"),
    "weight": ("Body weight", {"type": "quantity"}, "quantity"),
    "onset": ("When did the panic start", {"type": "dateTime"}, "date with a time"),
    "country": ("Country of residence", {
        "type": "choice", "answerValueSet": "http://hl7.org/fhir/ValueSet/iso3166-1-2"},
        "not contained"),
    "plan": ("Plan discussed", {"type": "text", "enableWhen": [
        {"question": "calm", "operator": "exists", "answerBoolean": True},
        {"question": "sleep", "operator": "=", "answerBoolean": True}],
        "enableBehavior": "all"}, "several questions"),
    "worse": ("Worse than last week", {"type": "boolean", "enableWhen": [
        {"question": "sleep", "operator": "!=", "answerBoolean": True}]}, "unanswered"),
    "mood": ("Mood today", {"type": "choice", "answerOption": [
        {"valueCoding": {"code": c, "display": c},
         "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/ordinalValue",
                        "valueDecimal": w}]} for c, w in (("low", 0), ("ok", 1), ("good", 3))]},
        "equal steps"),
}


def intake() -> dict[str, Any]:
    items = [{"linkId": "calm", "text": "Calm today", "type": "integer"},
             {"linkId": "sleep", "text": "Slept well", "type": "boolean"}]
    items += [{"linkId": link_id, "text": text, **item}
              for link_id, (text, item, _) in REFUSED.items()]
    return {"resourceType": "Questionnaire", "title": "Clinic intake", "status": "active",
            "item": items}


def test_items_the_language_cannot_hold_are_refused_by_name_and_nothing_is_written():
    with pytest.raises(QuestionnaireNotImportable) as refused:
        template_from_questionnaire(intake())
    problems = {p.link_id: p for p in refused.value.problems}
    assert sorted(problems) == sorted(REFUSED)  # every one, and only those
    message = str(refused.value)
    for link_id, (text, _, reason) in REFUSED.items():
        assert problems[link_id].text == text and reason in problems[link_id].reason
        assert f"{link_id} (“{text}”)" in message


def test_what_it_can_hold_imports_with_its_conditions_and_answer_lists(tmp_path):
    resource = intake()
    resource["item"] = resource["item"][:2] + [
        {"linkId": "why", "text": "What helped", "type": "string",
         "enableWhen": [{"question": "sleep", "operator": "=", "answerBoolean": True}]},
        {"linkId": "tense", "text": "Tension", "type": "choice", "required": True,
         "answerValueSet": "#tension"},
        {"linkId": "people", "text": "People present", "type": "group", "repeats": True,
         "item": [{"linkId": "people.role", "text": "Role", "type": "string"}]}]
    resource["contained"] = [{"resourceType": "ValueSet", "id": "tension", "status": "active",
                              "expansion": {"contains": [
                                  {"code": "none", "display": "None"},
                                  {"code": "some", "display": "Some"}]}}]
    text = template_from_questionnaire(resource)
    template = loaded(import_questionnaire(resource), tmp_path)
    assert template.field("why").show_if.holds({"sleep": True})
    assert [c.value for c in template.field("tense").choices] == ["none", "some"]
    assert template.field("tense").required
    assert [f.key for f in template.field("people").fields] == ["role"]
    assert text.startswith("# Imported from the FHIR Questionnaire “Clinic intake”")


def test_something_that_is_not_a_questionnaire_is_refused():
    with pytest.raises(QuestionnaireNotImportable, match="not a FHIR Questionnaire"):
        template_from_questionnaire({"resourceType": "Bundle"})


# ---------------------------------------------------------------------------
# The command


def test_the_command_writes_a_clinic_template_and_never_overwrites_one(app, tmp_path):
    runner = app.test_cli_runner()
    source = FIXTURES / LOINC_FILES["gad-7"]
    result = runner.invoke(args=["fhir-import", "questionnaire", str(source),
                                 "--slug", "gad-7-loinc"])
    assert result.exit_code == 0, result.output
    written = clinic_dir(app) / "gad-7-loinc" / "v1.toml"
    assert f"Created {written}" in result.output
    assert "kaptools modalities check" in result.output
    registry = load_registry(builtin_dir(), clinic_dir(app))
    assert registry.problems == [] and registry.get("gad-7-loinc", 1) is not None
    checked = CliRunner().invoke(modalities_check, [str(clinic_dir(app))])
    assert checked.exit_code == 0 and "ok  gad-7-loinc v1" in checked.output

    before = written.read_text(encoding="utf-8")
    again = runner.invoke(args=["fhir-import", "questionnaire", str(source),
                                "--slug", "gad-7-loinc"])
    assert again.exit_code != 0 and "already exists" in again.output
    assert written.read_text(encoding="utf-8") == before
    built_in = runner.invoke(args=["fhir-import", "questionnaire", str(source),
                                   "--slug", "gad-7"])
    assert built_in.exit_code != 0 and "already exists" in built_in.output


def test_the_command_refuses_a_questionnaire_it_cannot_import_and_writes_nothing(
        app, tmp_path):
    source = tmp_path / "intake.json"
    source.write_text(json.dumps(intake()), encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["fhir-import", "questionnaire", str(source)])
    assert result.exit_code != 0
    assert "scan (“Upload the referral letter”)" in result.output
    assert "Nothing was written" in result.output
    assert not clinic_dir(app).exists() or not any(clinic_dir(app).iterdir())
