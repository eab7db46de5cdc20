"""``kaptools fhir-import``: clinic templates made from FHIR resources."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext


@click.group("fhir-import")
def fhir_import_group() -> None:
    """Make clinic templates from FHIR resources."""


@fhir_import_group.command("questionnaire")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--slug", help="The new template's name (default: from the Questionnaire's "
                             "name, id or title).")
@click.option("--into", "folder", type=click.Path(file_okay=False, path_type=Path),
              help="The folder of clinic templates (default: the instance's, or "
                   "MODALITIES_EXTRA_DIR).")
@with_appcontext
def questionnaire_command(source: Path, slug: str | None, folder: Path | None) -> None:
    """Make a clinic template from the FHIR R4 Questionnaire (JSON) in SOURCE.

    The template is written as <folder>/<slug>/v1.toml; an existing template is never
    overwritten. A Questionnaire with items the template language cannot represent is
    refused as a whole, each such item named with the reason."""
    from ..modality.registry import builtin_dir, clinic_dir
    from ..modality.schema import SLUG_RE
    from .importer import QuestionnaireNotImportable, import_questionnaire

    if slug is not None and not SLUG_RE.match(slug):
        raise click.BadParameter("lower-case letters, digits and dashes, from a letter",
                                 param_hint="--slug")
    try:
        resource = json.loads(source.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise click.ClickException(f"{source} is not JSON: {exc}") from exc
    try:
        imported = import_questionnaire(resource, slug=slug)
    except QuestionnaireNotImportable as exc:
        raise click.ClickException(f"{exc}\nNothing was written.") from exc
    folder = folder if folder is not None else clinic_dir(current_app)
    target = folder / imported.slug / "v1.toml"
    built_in = (builtin_dir() / imported.slug).is_dir()
    if built_in or target.parent.exists():
        where = "among kaptools' own" if built_in else f"in {folder}"
        raise click.ClickException(
            f"a template named {imported.slug!r} already exists {where}; nothing was written. "
            "Give the new one another name with --slug.")
    target.parent.mkdir(parents=True)
    target.write_text(imported.toml, encoding="utf-8")

    template = imported.template
    click.echo(f"Created {target}\n  {template.title}: {len(template.fields)} question(s) in "
               f"{len(template.sections)} section(s), {len(template.scores)} score(s).")
    for note in imported.notes:
        click.echo(f"  Note: {note}")
    click.echo("Read it through against the original, add a [sample] of synthetic answers, "
               "then run `kaptools modalities check` and restart kaptools to offer it.")
