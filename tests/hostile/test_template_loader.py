"""A clinic's broken template is reported and left out; the app always starts."""

from __future__ import annotations

import copy
import random
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaptools import create_app
from kaptools.modality.registry import builtin_dir, load_registry
from tests import factories
from tests.conftest import FAST_ARGON2, Browser

BUILTIN = builtin_dir()
SOURCES = {p.parent.name: tomllib.loads(p.read_text())
           for p in sorted(BUILTIN.glob("*/v1.toml"))}

WEIRD = [None, 0, -1, 10**30, 1.5, float("nan"), float("inf"), "", "x", "@nope", "@sud",
         "\x00", [], [1], ["a", 2], [[]], [{}], {}, {"a": 1}, {"key": []}, True]


def _paths(obj, path=()):
    yield path
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _paths(value, path + (key,))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _paths(value, path + (i,))


def _toml_value(value) -> str:
    if value is None:
        return '"(none)"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if value != value else ("inf" if value > 0 else str(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace(
            "\x00", "\\u0000") + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + "}"


def to_toml(data: dict) -> str:
    """A small TOML writer: everything as inline values under top-level keys."""
    return "\n".join(f'"{k}" = {_toml_value(v)}' for k, v in data.items()) + "\n"


def mutate(data: dict, rng: random.Random, times: int) -> dict:
    data = copy.deepcopy(data)
    for _ in range(times):
        paths = [p for p in _paths(data) if p]
        path = rng.choice(paths)
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = copy.deepcopy(rng.choice(WEIRD))
    return data


def assert_reported(registry, folder: Path) -> None:
    assert registry.problems, "a broken template was accepted"
    for problem in registry.problems:
        assert problem.file.startswith(str(folder)) or problem.file.startswith(str(BUILTIN))
        assert problem.path, problem
        line = f"{problem.file}: {problem.path}: {problem.message}"
        assert "\n" not in line and "Traceback" not in line


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(slug=st.sampled_from(sorted(SOURCES)), seed=st.integers(0, 2**32),
       times=st.integers(1, 4))
def test_malformed_template_structures_are_reported_never_raised(tmp_path_factory, slug,
                                                                 seed, times):
    folder = tmp_path_factory.mktemp("clinic")
    broken = mutate(SOURCES[slug], random.Random(seed), times)
    broken["slug"] = "clinic-" + slug if isinstance(broken.get("slug"), str) else \
        broken.get("slug")
    target = folder / ("clinic-" + slug)
    target.mkdir()
    (target / "v1.toml").write_text(to_toml(broken))
    registry = load_registry(BUILTIN, folder)  # never raises
    if registry.problems:
        assert_reported(registry, folder)


DEEP = [
    "sections = " + "[" * 5000 + "]" * 5000,
    "sample = " + "{a = " * 3000 + "1" + "}" * 3000,
    'slug = "deep"\nversion = 1\ntitle = "Deep"\n' + "[[sections]]\nkey='s'\ntitle='S'\n"
    + "[[sections.fields]]\nkey='g'\ntype='group'\nlabel='G'\n"
    + "".join("[[sections.fields" + ".fields" * i + "]]\nkey='g'\ntype='group'\nlabel='G'\n"
              for i in range(1, 60)),
]


@pytest.mark.parametrize("content", DEEP, ids=["deep-array", "deep-table", "deep-groups"])
def test_deeply_nested_files_are_reported(tmp_path, content):
    target = tmp_path / "deep"
    target.mkdir()
    (target / "v1.toml").write_text(content)
    registry = load_registry(BUILTIN, tmp_path)
    assert_reported(registry, tmp_path)


CHOICES = ['extend = ["a"]', 'extend = "x"', "extend = 5", "extend = { nc_themes = 5 }",
           'extend = { nc_themes = [{ value = 1 }] }', "scales = {}", "[extend]\nnope = []",
           "extend = { nc_themes = [[]] }"]


@pytest.mark.parametrize("content", CHOICES)
def test_a_malformed_clinic_choice_list_is_reported(tmp_path, content):
    (tmp_path / "choices.toml").write_text(content)
    registry = load_registry(BUILTIN, tmp_path)
    assert_reported(registry, tmp_path)
    assert registry.latest("emdr-target-set") is not None  # built-ins still load


def _broken_clinic(instance: Path) -> None:
    folder = instance / "modalities" / "clinic-intake"
    folder.mkdir(parents=True)
    data = copy.deepcopy(SOURCES["phq-9"])
    data["slug"] = "clinic-intake"
    data["scores"][0]["bands"][0]["min"] = "zero"
    (folder / "v1.toml").write_text(to_toml(data))
    (instance / "modalities" / "choices.toml").write_text('extend = ["x"]')


def test_the_app_starts_and_shows_administrators_what_was_refused(databases, tmp_path):
    instance = tmp_path / "instance"
    _broken_clinic(instance)
    app = create_app({"TESTING": True, "DATABASE_URL": databases.new_url(),
                      "INSTANCE_PATH": str(instance), "SECRET_KEY": "k", **FAST_ARGON2})
    from kaptools.extensions import db

    with app.app_context():
        db.create_all()
        factories.user("admin", role="admin")
    admin = Browser(app.test_client())
    admin.login("admin", factories.PASSWORD)
    page = admin.get("/admin/templates").get_data(as_text=True)
    assert "clinic-intake" in page and "bands" in page and "choices.toml" in page
    result = app.test_cli_runner().invoke(args=["modalities", "check"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "clinic-intake/v1.toml: scores[0].bands[0]" in result.output
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
