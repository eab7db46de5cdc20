"""The template language: strict checking, clinic extensions, versions and scores."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from kaptools.cli import modalities_check
from kaptools.modality.answers import compute_scores, validate_answers
from kaptools.modality.registry import builtin_dir, load_registry

BROKEN = Path(__file__).parent / "broken_modalities"
BUILT_IN = ["art-script", "cbt-behavioural-experiment", "cbt-exposure-ladder",
            "cbt-thought-record", "emdr-target-set", "gad-7", "ifs-parts-map",
            "integration-session", "kap-dosing", "pcl-5", "phq-9"]


def test_shipped_templates_pass_the_check():
    result = CliRunner().invoke(modalities_check, [])
    assert result.exit_code == 0, result.output
    for slug in BUILT_IN:
        assert f"ok  {slug} v1" in result.output


def test_every_template_ships_a_valid_sample():
    registry = load_registry(builtin_dir())
    assert registry.problems == []
    assert sorted(slug for slug, _ in registry.templates) == BUILT_IN
    for template in registry.templates.values():
        assert template.sample, template.slug
        assert validate_answers(template, template.sample) == []


EXPECTED_PROBLEMS = [
    ("bad-fields/v1.toml", "colour", "unknown key"),
    ("bad-fields/v1.toml", "sections[0].fields[0].type", "unknown type 'slider'"),
    ("bad-fields/v1.toml", "sections[0].fields[1](doses)", "min (10) is greater than max (2)"),
    ("bad-fields/v1.toml", "sections[0].fields[2](mood).choices", "is missing"),
    ("bad-fields/v1.toml", "sections[0].fields[3](mood).key", "duplicate field key 'mood'"),
    ("bad-fields/v1.toml", "sections[0].fields[4](feeling).scale", "'nonexistent'"),
    ("bad-fields/v1.toml", "sections[0].fields[5](emotion).choices", "'no_such_list'"),
    ("bad-toml/v1.toml", "(file)", "is not valid TOML"),
    ("misnamed/v1.toml", "slug", "the folder is 'misnamed'"),
    ("misnamed/v1.toml", "version", "the file name says 1"),
    ("bad-refs/v1.toml", "sections[0].fields[0](parts)", "min_items (5) is greater than"),
    ("bad-refs/v1.toml", "sections[0].fields[1](hot).group", "not a repeating group"),
    ("bad-refs/v1.toml", "sections[0].fields[2](detail).show_if.field", "'missing'"),
    ("bad-sample/v1.toml", "sample.sud", "from 0 to 10"),
    ("huge/v1.toml", "(file)", "the limit is 262144 bytes"),
]


def test_broken_templates_get_one_clear_message_each(tmp_path):
    folder = tmp_path / "clinic"
    shutil.copytree(BROKEN, folder)
    (folder / "huge").mkdir()
    (folder / "huge" / "v1.toml").write_text("# padding\n" * 30000)
    result = CliRunner().invoke(modalities_check, [str(folder)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if ".toml: " in line]
    for file, path, message in EXPECTED_PROBLEMS:
        matching = [ln for ln in lines
                    if f"{file}: {path}" in ln and message in ln]
        assert len(matching) == 1, (file, path, message, lines)
    assert len(lines) == len(EXPECTED_PROBLEMS)
    assert "15 problem(s) in 6 file(s)" in result.output


def test_a_bad_clinic_template_never_takes_the_others_down(app_factory):
    app = app_factory(MODALITIES_EXTRA_DIR=str(BROKEN))
    from kaptools.modality import get_registry

    with app.app_context():
        registry = get_registry()
        assert sorted(s for s, _ in registry.templates) == BUILT_IN
        assert len(registry.problems) == 14


def test_a_clinic_extends_a_choice_list_without_editing_templates(tmp_path):
    (tmp_path / "choices.toml").write_text('[extend]\nemotions = ["Awe", "Fear"]\n')
    registry = load_registry(builtin_dir(), tmp_path)
    assert registry.problems == []
    emotions = registry.latest("integration-session").field("emotions")
    values = [c.value for c in emotions.choices]
    assert values[-1] == "awe" and values.count("fear") == 1


def test_a_clinic_file_may_not_redefine_lists(tmp_path):
    (tmp_path / "choices.toml").write_text('[choices]\nemotions = ["Only this"]\n')
    registry = load_registry(builtin_dir(), tmp_path)
    assert [p.path for p in registry.problems] == ["choices"]
    assert len(registry.latest("integration-session").field("emotions").choices) > 1


# --- scores, checked against hand-computed cases ----------------------------

def _answers(values):
    return {f"q{i + 1}": v for i, v in enumerate(values)}


@pytest.mark.parametrize("values, total, band", [
    ([0, 0, 0, 0, 0, 0, 0], 0, "Minimal"),
    ([1, 1, 1, 1, 0, 0, 0], 4, "Minimal"),
    ([1, 1, 1, 1, 1, 0, 0], 5, "Mild"),
    ([2, 2, 2, 1, 1, 1, 0], 9, "Mild"),
    ([2, 2, 2, 2, 1, 1, 0], 10, "Moderate"),
    ([2, 2, 2, 2, 2, 2, 2], 14, "Moderate"),
    ([3, 2, 2, 2, 2, 2, 2], 15, "Severe"),
    ([3, 3, 3, 3, 3, 3, 3], 21, "Severe"),
])
def test_gad7_total_and_band(values, total, band):
    template = load_registry(builtin_dir()).latest("gad-7")
    (score,) = compute_scores(template, _answers(values))
    assert (score.total, score.band, score.max_total) == (total, band, 21)
    assert score.flags == ()


@pytest.mark.parametrize("values, total, band, flagged", [
    ([0] * 9, 0, "Minimal", False),
    ([1, 1, 1, 1, 0, 0, 0, 0, 0], 4, "Minimal", False),
    ([1, 1, 1, 1, 1, 0, 0, 0, 0], 5, "Mild", False),
    ([2, 2, 2, 2, 1, 1, 0, 0, 0], 10, "Moderate", False),
    ([2, 2, 2, 2, 2, 2, 2, 0, 0], 14, "Moderate", False),
    ([2, 2, 2, 2, 2, 2, 2, 1, 0], 15, "Moderately severe", False),
    ([3, 3, 3, 2, 2, 2, 2, 2, 0], 19, "Moderately severe", False),
    ([3, 3, 3, 3, 2, 2, 2, 1, 1], 20, "Severe", True),
    ([3] * 9, 27, "Severe", True),
    ([0, 0, 0, 0, 0, 0, 0, 0, 1], 1, "Minimal", True),
])
def test_phq9_total_band_and_item9_flag(values, total, band, flagged):
    template = load_registry(builtin_dir()).latest("phq-9")
    (score,) = compute_scores(template, _answers(values))
    assert (score.total, score.band, score.max_total) == (total, band, 27)
    assert bool(score.flags) is flagged


def test_incomplete_questionnaire_has_no_total():
    template = load_registry(builtin_dir()).latest("gad-7")
    (score,) = compute_scores(template, {"q1": 3, "q2": 3})
    assert score.total is None and score.band is None and score.answered == 2


def test_questionnaire_items_are_verbatim_with_credit():
    registry = load_registry(builtin_dir())
    gad = registry.latest("gad-7")
    assert gad.field("q7").label == "7. Feeling afraid, as if something awful might happen"
    assert "Spitzer" in gad.credit and "No permission required" in gad.credit
    phq = registry.latest("phq-9")
    assert phq.field("q9").label == ("9. Thoughts that you would be better off dead or of "
                                     "hurting yourself in some way")
    assert [a for a in phq.field("q1").scale.anchors] == [
        (0, "Not at all"), (1, "Several days"), (2, "More than half the days"),
        (3, "Nearly every day")]


def test_scales_keep_their_identity():
    registry = load_registry(builtin_dir())
    emdr = registry.latest("emdr-target-set")
    assert (emdr.field("sud_baseline").scale.min, emdr.field("sud_baseline").scale.max) == (0, 10)
    assert (emdr.field("voc_baseline").scale.min, emdr.field("voc_baseline").scale.max) == (1, 7)
    ladder = registry.latest("cbt-exposure-ladder").field("steps")
    assert ladder.subfield("expected_suds").scale.max == 100


def test_the_worked_example_in_the_authors_guide_is_valid(tmp_path):
    guide = (builtin_dir() / "README.md").read_text()
    example = guide.split("## A complete worked example")[1].split("```toml")[1].split("```")[0]
    (tmp_path / "arrival-check-in").mkdir()
    (tmp_path / "arrival-check-in" / "v1.toml").write_text(example)
    registry = load_registry(builtin_dir(), tmp_path)
    assert registry.problems == []
    template = registry.latest("arrival-check-in")
    assert {f.type for f in template.fields} >= {"decimal", "scale", "multichoice", "group",
                                                 "ref", "text", "longtext"}


@pytest.mark.parametrize("values, total, band", [
    ([0] * 20, 0, "Below"),
    ([1] * 10 + [2] * 10, 30, "Below"),
    ([1] * 9 + [2] * 11, 31, "At the usual cut-point"),
    ([1] * 7 + [2] * 13, 33, "At the usual cut-point"),
    ([1] * 6 + [2] * 14, 34, "Above"),
    ([4] * 20, 80, "Above"),
])
def test_pcl5_total_and_band(values, total, band):
    template = load_registry(builtin_dir()).latest("pcl-5")
    (score,) = compute_scores(template, _answers(values))
    assert (score.total, score.max_total) == (total, 80)
    assert score.band.startswith(band)
    assert template.field("q17").label == '17. Being "superalert" or watchful or on guard?'
