"""The template language: strict checking, clinic extensions, versions and scores."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from kaptools.cli import modalities_check
from kaptools.modality.answers import compute_scores, validate_answers
from kaptools.modality.registry import builtin_dir, load_registry

BROKEN = Path(__file__).parent / "broken_modalities"
BUILT_IN = ["adverse-event", "art-script", "cbt-behavioural-experiment", "cbt-exposure-ladder",
            "cbt-thought-record", "emdr-target-set", "follow-up-call", "gad-7",
            "ifs-parts-map", "informed-consent", "integration-session", "kap-dosing",
            "kap-preparation", "medical-screening", "pcl-5", "pcl-5-past-week", "phq-9",
            "risk-follow-up", "safety-plan", "suicide-risk-screen"]


def test_shipped_templates_pass_the_check():
    result = CliRunner().invoke(modalities_check, [])
    assert result.exit_code == 0, result.output
    for slug in BUILT_IN:
        assert f"ok  {slug} v1" in result.output


def test_every_template_ships_a_valid_sample():
    registry = load_registry(builtin_dir())
    assert registry.problems == []
    assert sorted({slug for slug, _ in registry.templates}) == BUILT_IN
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
        assert sorted({s for s, _ in registry.templates}) == BUILT_IN
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
    # Its triage level (a language extension) works as the guide describes.
    (check,) = compute_scores(template, template.sample)
    assert (check.band, check.risk) == ("Nothing raised", False)
    (check,) = compute_scores(template, {**template.sample, "distress": 9})
    assert (check.band, check.risk) == ("Ask more today", True)
    (check,) = compute_scores(template, {"distress": 9})
    assert not check.complete


def test_the_guides_snippets_parse_as_it_says(tmp_path):
    """Every TOML snippet of the authors' guide that is a score or a requirement parses."""
    import tomllib

    guide = (builtin_dir() / "README.md").read_text()
    snippets = [part.split("```")[0] for part in guide.split("```toml")[1:]]
    levels = next(s for s in snippets if "levels = [" in s and "slug" not in s)
    criteria = next(s for s in snippets if "criteria = [" in s)
    requires = next(s for s in snippets if s.strip().startswith("requires_signed_in_course"))
    only_if = next(s for s in snippets if "only_if" in s and s.strip().startswith("choices"))
    recall = re.search(r"`(recall_days = \d+)`", guide).group(1)
    kinds = re.search(r"`(session_kinds = \[[^]`]*\])`", guide).group(1)
    template = f"""slug = "guide-check"
version = 1
title = "Guide check"
{requires}
{recall}
{kinds}
[[sections]]
key = "s"
title = "S"

[[sections.fields]]
key = "worry"
type = "scale"
scale = "sud"
label = "Worry"

[[sections.fields]]
key = "plan"
type = "yesno"
label = "Plan"

[[sections.fields]]
key = "sleep"
type = "scale"
scale = "sud"
label = "Sleep"
carry = true

[[sections.fields]]
key = "appetite"
type = "scale"
scale = "sud"
label = "Appetite"

[[sections.fields]]
key = "formulation"
type = "choice"
label = "Formulation"
carry = false
choices = ["racemic_iv", "racemic_lozenge", "racemic_tablet"]

[[sections.fields]]
key = "route"
type = "choice"
label = "Route"
{only_if}
{levels}
{criteria}
[sample]
worry = 7
plan = false
"""
    tomllib.loads(template)
    (tmp_path / "guide-check").mkdir()
    (tmp_path / "guide-check" / "v1.toml").write_text(template)
    registry = load_registry(builtin_dir(), tmp_path)
    assert registry.problems == []
    checked = registry.latest("guide-check")
    assert checked.requires_signed_in_course == ("medical-screening", "informed-consent")
    assert checked.recall_days == 14
    assert checked.session_kinds == ("integration",)
    level, rule = compute_scores(checked, {"worry": 7, "plan": True, "sleep": 6,
                                           "appetite": 2})
    assert level.band == "High"
    assert rule.band == "Rule not met" and "Sleep or appetite: 1 of 2 needed ✗" in rule.detail
    level, rule = compute_scores(checked, {"worry": 2, "plan": False, "sleep": 6,
                                           "appetite": 9})
    assert level.band == "Some concern" and rule.band == "Rule not met"
    _, rule = compute_scores(checked, {"worry": 6, "sleep": 6, "appetite": 9})
    assert rule.band == "Rule met"
    # carry: a scale stays behind unless marked, a choice comes along unless marked.
    from kaptools.modality.answers import carried_answers

    kept = carried_answers(checked.fields, {"worry": 7, "sleep": 3, "plan": True,
                                            "formulation": "racemic_iv", "route": "intravenous"})
    assert kept == {"sleep": 3, "plan": True, "route": "intravenous"}
    # only_if: a route that does not fit the formulation is refused at the field.
    problems = validate_answers(checked, {"formulation": "racemic_lozenge",
                                          "route": "intravenous"})
    assert [key for key, _ in problems] == ["route"]
    assert validate_answers(checked, {"formulation": "racemic_iv", "route": "intravenous"}) \
        == []


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
    score = compute_scores(template, _answers(values))[0]
    assert (score.total, score.max_total) == (total, 80)
    assert score.band.startswith(band)
    assert template.field("q17").label == '17. Being "superalert" or watchful or on guard?'


def test_the_language_extensions_report_mistakes_at_their_key_path(tmp_path):
    folder = tmp_path / "mistakes"
    folder.mkdir()
    (folder / "v1.toml").write_text('''slug = "mistakes"
version = 1
title = "Mistakes"
requires_signed_in_course = ["mistakes"]
recall_days = 400
session_kinds = ["dosing", "party"]

[[sections]]
key = "s"
title = "S"

[[sections.fields]]
key = "worry"
type = "scale"
scale = "sud"
label = "Worry"
carry = "yes"

[[sections.fields]]
key = "note"
type = "text"
label = "Note"

[[sections.fields]]
key = "route"
type = "choice"
label = "Route"
choices = [{ value = "iv", label = "IV", only_if = { field = "nowhere", equals = "x" } }]

[[scores]]
key = "both"
label = "Both"
sum = ["worry"]
levels = [{ label = "High", any = [{ field = "worry", gt = 5 }] }]

[[scores]]
key = "rule"
label = "Rule"
criteria = [{ label = "A", items = ["note"], rated_at_least = 2 }]

[[scores]]
key = "unknown"
label = "Unknown"
levels = [{ label = "High", any = [{ field = "missing", equals = true }] }]

[sample]
''')
    registry = load_registry(builtin_dir(), tmp_path)
    found = {(p.path, p.message.split(" ")[0]) for p in registry.problems}
    paths = {path for path, _ in found}
    assert "requires_signed_in_course" in paths
    assert ".recall_days" in paths or "recall_days" in paths
    assert "session_kinds" in paths
    assert any(p.endswith("(worry).carry") for p in paths)
    assert any(p.endswith("(route).choices[0].only_if.field") for p in paths)
    assert "scores[0].sum" in paths  # a level score takes no sum
    assert "scores[1].criteria[0].items" in paths  # only rating items count
    assert "scores[2].levels[0].any[0]" in paths
    assert registry.latest("mistakes") is None


def test_the_template_language_knows_every_kind_of_session():
    from kaptools.modality.schema import SESSION_KINDS
    from kaptools.models import SessionKind

    assert set(SESSION_KINDS) == {k.value for k in SessionKind}


@pytest.mark.parametrize("kind, first, also, not_suggested", [
    ("integration", "integration-session",
     ["emdr-target-set", "art-script", "ifs-parts-map", "cbt-thought-record", "phq-9"],
     ["kap-dosing", "informed-consent"]),
    ("dosing", "kap-dosing", ["adverse-event"], ["emdr-target-set", "phq-9"]),
    ("preparation", "kap-preparation", ["informed-consent", "medical-screening", "gad-7"],
     ["kap-dosing", "ifs-parts-map"]),
    ("assessment", None, ["gad-7", "phq-9", "pcl-5", "suicide-risk-screen"],
     ["kap-dosing", "emdr-target-set"]),
])
def test_the_note_chooser_offers_first_what_fits_the_session(kind, first, also,
                                                             not_suggested):
    registry = load_registry(builtin_dir())
    main, also_offered, others = registry.for_session(kind)
    suggested = main + also_offered
    slugs = [t.slug for t in suggested]
    assert all(t.session_kinds[0] == kind for t in main)
    assert all(t.session_kinds[0] != kind for t in also_offered)
    if first:
        assert slugs[0] == first, slugs
    assert set(also) <= set(slugs), slugs
    assert not set(not_suggested) & set(slugs), slugs
    # Every template is offered once, the others in title order.
    assert sorted(slugs + [t.slug for t in others]) == sorted(BUILT_IN)
    assert [t.title for t in others] == sorted(t.title for t in others)
    if kind == "assessment":  # the questionnaires come before the medicine and risk notes
        assert slugs.index("phq-9") < slugs.index("suicide-risk-screen")
