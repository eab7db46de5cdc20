"""Load every template at start-up; a bad file is reported and skipped, never fatal."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask, current_app

from ..resources import resource_dir
from .schema import Shared, Template, TemplateProblem, parse_shared, parse_template, read_toml

log = logging.getLogger("kaptools.modalities")
VERSION_FILE = re.compile(r"^v([1-9][0-9]{0,3})\.toml$")
SHARED_FILE = "_shared.toml"
CLINIC_CHOICES_FILE = "choices.toml"


@dataclass
class Registry:
    shared: Shared = field(default_factory=Shared)
    templates: dict[tuple[str, int], Template] = field(default_factory=dict)
    problems: list[TemplateProblem] = field(default_factory=list)

    def get(self, slug: str, version: int) -> Template | None:
        return self.templates.get((slug, version))

    def latest(self, slug: str) -> Template | None:
        versions = [v for (s, v) in self.templates if s == slug]
        return self.templates[(slug, max(versions))] if versions else None

    def current(self) -> list[Template]:
        """The newest version of each modality, in title order."""
        slugs = sorted({s for s, _ in self.templates})
        found = [self.latest(s) for s in slugs]
        return sorted((t for t in found if t), key=lambda t: (t.category, t.title))


def load_registry(builtin: Path, extra: Path | None = None) -> Registry:
    """Read the shared definitions, clinic extensions and every template version."""
    reg = Registry()
    _load_shared(builtin / SHARED_FILE, reg, extend_only=False)
    if extra is not None and (extra / CLINIC_CHOICES_FILE).is_file():
        _load_shared(extra / CLINIC_CHOICES_FILE, reg, extend_only=True)
    for root in (builtin, extra):
        if root is None or not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            _load_folder(folder, reg)
    _check_samples(reg)
    return reg


def _load_shared(path: Path, reg: Registry, extend_only: bool) -> None:
    if not path.is_file():
        if not extend_only:
            reg.problems.append(TemplateProblem(str(path), "(file)", "is missing"))
        return
    data = read_toml(path, reg.problems)
    if data is not None:
        reg.problems.extend(parse_shared(data, str(path), reg.shared, extend_only=extend_only))


def _load_folder(folder: Path, reg: Registry) -> None:
    for path in sorted(folder.iterdir()):
        if path.suffix != ".toml":
            continue
        match = VERSION_FILE.match(path.name)
        if not match:
            reg.problems.append(TemplateProblem(
                str(path), "(file)", "template files are named v1.toml, v2.toml, ..."))
            continue
        data = read_toml(path, reg.problems)
        if data is None:
            continue
        template, problems = parse_template(data, str(path), reg.shared,
                                            expect_slug=folder.name,
                                            expect_version=int(match.group(1)))
        reg.problems.extend(problems)
        if template is None:
            continue
        if (template.slug, template.version) in reg.templates:
            reg.problems.append(TemplateProblem(
                str(path), "version", f"{template.slug} v{template.version} is defined twice"))
            continue
        reg.templates[(template.slug, template.version)] = template


def _check_samples(reg: Registry) -> None:
    """A template's sample answers must pass its own validation."""
    from .answers import round_trip, validate_answers

    for template in list(reg.templates.values()):
        if not template.sample:
            continue
        problems = validate_answers(template, template.sample)
        for path, message in problems:
            reg.problems.append(TemplateProblem(template.source, f"sample.{path}", message))
        if not problems and round_trip(template, template.sample) != template.sample:
            problems = [("(all)", "is not in normal form (e.g. choices out of list order, "
                                  "empty answers, or text with surrounding spaces)")]
            reg.problems.append(TemplateProblem(template.source, "sample", problems[0][1]))
        if problems:
            del reg.templates[(template.slug, template.version)]


def builtin_dir() -> Path:
    return resource_dir("modalities")


def init_app(app: Flask) -> None:
    extra_setting = app.config.get("MODALITIES_EXTRA_DIR")
    extra = Path(extra_setting) if extra_setting else Path(app.instance_path) / "modalities"
    reg = load_registry(builtin_dir(), extra)
    for problem in reg.problems:
        log.error("modality template refused: %s", problem)
    app.extensions["kaptools_registry"] = reg


def get_registry() -> Registry:
    return current_app.extensions["kaptools_registry"]
