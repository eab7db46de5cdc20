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
    # Scores of signed notes, kept by kaptools.outcomes for as long as these templates are
    # the app's (a signed note never changes; see outcome_points).
    scored: dict = field(default_factory=dict, repr=False, compare=False)

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

    def for_session(self, kind: str) -> tuple[list[Template], list[Template], list[Template]]:
        """The current templates for a session of this kind, in three lists: those it is
        mainly for; the others written in such a session (the programme's own notes, the
        therapies, measures, medicine and risk, in that order); every other one in title
        order."""
        current = self.current()
        fits = [t for t in current if kind in t.session_kinds]
        fits.sort(key=lambda t: (t.session_kinds[0] != kind,
                                 CATEGORY_ORDER.get(t.category, len(CATEGORY_ORDER)), t.title))
        main = [t for t in fits if t.session_kinds[0] == kind]
        also = [t for t in fits if t.session_kinds[0] != kind]
        return main, also, sorted((t for t in current if kind not in t.session_kinds),
                                  key=lambda t: t.title)


# Where a category comes among the notes suggested for a session (others after these).
CATEGORY_ORDER = {"KAP": 0, "EMDR": 1, "ART": 1, "IFS": 1, "CBT": 1, "Outcome measures": 2,
                  "Medicine": 3, "Risk and safety": 4}


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


def _guarded(path: Path, reg: Registry, read) -> None:
    """Run one file's reading; whatever goes wrong is that file's problem, never fatal."""
    try:
        read()
    except Exception as exc:  # a checker gap: reported like any problem, the app starts
        log.exception("unexpected error reading %s", path)
        reg.problems.append(TemplateProblem(
            str(path), "(file)", f"could not be read ({exc.__class__.__name__}); check its "
                                 "structure against the authors' guide"))


def _load_shared(path: Path, reg: Registry, extend_only: bool) -> None:
    if not path.is_file():
        if not extend_only:
            reg.problems.append(TemplateProblem(str(path), "(file)", "is missing"))
        return

    def read() -> None:
        data = read_toml(path, reg.problems)
        if data is None:
            return
        before = {name: choices for name, choices in reg.shared.choices.items()}
        problems = parse_shared(data, str(path), reg.shared, extend_only=extend_only)
        if problems and extend_only:
            reg.shared.choices = before  # a clinic file with problems extends nothing
        reg.problems.extend(problems)

    _guarded(path, reg, read)


def _load_folder(folder: Path, reg: Registry) -> None:
    for path in sorted(folder.iterdir()):
        if path.suffix != ".toml":
            continue
        match = VERSION_FILE.match(path.name)
        if not match:
            reg.problems.append(TemplateProblem(
                str(path), "(file)", "template files are named v1.toml, v2.toml, ..."))
            continue
        _guarded(path, reg, lambda path=path, match=match: _load_template(path, match, folder,
                                                                            reg))


def _load_template(path: Path, match: re.Match, folder: Path, reg: Registry) -> None:
    data = read_toml(path, reg.problems)
    if data is None:
        return
    template, problems = parse_template(data, str(path), reg.shared, expect_slug=folder.name,
                                        expect_version=int(match.group(1)))
    reg.problems.extend(problems)
    if template is None:
        return
    if (template.slug, template.version) in reg.templates:
        reg.problems.append(TemplateProblem(
            str(path), "version", f"{template.slug} v{template.version} is defined twice"))
        return
    reg.templates[(template.slug, template.version)] = template


def _check_samples(reg: Registry) -> None:
    """A template's sample answers must pass its own validation, in normal form."""
    for template in list(reg.templates.values()):
        if not template.sample:
            continue
        try:
            problems = _sample_problems(template)
        except Exception as exc:
            log.exception("unexpected error checking the sample of %s", template.source)
            problems = [TemplateProblem(template.source, "sample",
                                        f"could not be checked ({exc.__class__.__name__})")]
        if problems:
            reg.problems.extend(problems)
            del reg.templates[(template.slug, template.version)]


def _sample_problems(template: Template) -> list[TemplateProblem]:
    from .answers import round_trip, validate_answers

    found = [TemplateProblem(template.source, f"sample.{path}", message)
             for path, message in validate_answers(template, template.sample)]
    if not found and round_trip(template, template.sample) != template.sample:
        found.append(TemplateProblem(template.source, "sample", "is not in normal form (e.g. "
                                     "choices out of list order, empty answers, or text with "
                                     "surrounding spaces)"))
    return found


def builtin_dir() -> Path:
    return resource_dir("modalities")


def clinic_dir(app: Flask) -> Path:
    """Where a clinic keeps its own templates and choice lists."""
    extra_setting = app.config.get("MODALITIES_EXTRA_DIR")
    return Path(extra_setting) if extra_setting else Path(app.instance_path) / "modalities"


def init_app(app: Flask) -> None:
    reg = load_registry(builtin_dir(), clinic_dir(app))
    for problem in reg.problems:
        log.error("modality template refused: %s", problem)
    app.extensions["kaptools_registry"] = reg


def get_registry() -> Registry:
    return current_app.extensions["kaptools_registry"]
