"""``kaptools export``: what leaves the clinic, from the command line (audited like the UI)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask.cli import with_appcontext


@click.group("export")
def export_group() -> None:
    """Export records: a client's record (FHIR), research data (de-identified)."""


@export_group.command("record")
@click.option("--client-id", type=int, required=True, help="The client's id (see its page).")
@click.option("--reason", required=True, help="Why the record leaves (kept in the audit trail).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the FHIR JSON.")
@with_appcontext
def record_command(client_id: int, reason: str, output: Path) -> None:
    """Write one client's record as a FHIR R4 Bundle (signed notes; no private notes)."""
    from ..extensions import db
    from ..models import Client
    from .record import export_record

    client = db.session.get(Client, client_id)
    if client is None:
        raise click.ClickException(f"There is no client with id {client_id}.")
    if not reason.strip():
        raise click.ClickException("Say why the record is exported (--reason).")
    bundle = export_record(client, reason.strip())
    output.write_text(json.dumps(bundle, ensure_ascii=False, indent=1), encoding="utf-8")
    db.session.commit()
    click.echo(f"Wrote {len(bundle.get('entry', []))} FHIR resources for {client.code} "
               f"to {output}.")


@export_group.command("database")
@click.option("--reason", required=True, help="Why the database leaves (kept in the audit "
                                               "trail, and in the file).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@with_appcontext
def database_command(reason: str, output: Path) -> None:
    """Write the whole database, row for row with its audit trail, for `kaptools import`."""
    from .. import audit
    from ..extensions import db
    from .transfer import dump

    if not reason.strip():
        raise click.ClickException("Say why the database is exported (--reason).")
    if output.exists():
        raise click.ClickException(f"{output} exists; choose a new file.")
    audit.record("export.database", username="cli",
                 detail={"format": "kaptools-transfer", "reason": reason.strip(),
                         "file": output.name})
    db.session.commit()
    data = dump()
    output.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    rows = sum(len(r) for r in data["tables"].values())
    click.echo(f"Wrote {rows} rows of {len(data['tables'])} tables to {output}.")


@click.command("import")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--therapist", metavar="USERNAME",
              help="For a client's record (FHIR): the therapist whose client it becomes.")
@click.option("--reason", help="For a client's record (FHIR): why it arrives (kept in the "
                               "audit trail).")
@with_appcontext
def import_command(source: Path, therapist: str | None, reason: str | None) -> None:
    """Add what a kaptools export wrote to this database.

    A `kaptools export database` file: rows already here must be identical (nothing is
    ever overwritten); afterwards every signed note's hash and the audit chain are
    verified, or nothing is imported.

    A client's record (`kaptools export record`, or "Export record" on the client's page):
    the client becomes one of --therapist's, every signed note's answers verified against
    the hash sealed when it was signed, or nothing is imported."""
    from ..cli import upgrade_database
    from ..extensions import db

    upgrade_database()
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise click.ClickException(f"{source} is not JSON: {exc}") from exc
    if isinstance(data, dict) and data.get("resourceType") == "Bundle":
        _import_record(data, therapist, reason)
        return
    from .transfer import TransferError, load

    try:
        report = load(data)
    except (TransferError, ValueError) as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    added = sum(report.added.values())
    present = sum(report.present.values())
    click.echo(f"Added {added} rows ({present} were here already). Verified "
               f"{report.signed_notes_checked} signed notes and {report.chain_events} "
               "audit events.")


def _import_record(bundle: dict, therapist: str | None, reason: str | None) -> None:
    from sqlalchemy import select

    from ..extensions import db
    from ..models import User
    from .record_import import RecordNotImportable, import_record

    if not therapist:
        raise click.ClickException("A client's record needs --therapist: whose client it "
                                   "becomes.")
    if not (reason or "").strip():
        raise click.ClickException("Say why the record arrives (--reason).")
    user = db.session.scalar(select(User).where(User.username == therapist.strip().lower()))
    if user is None:
        raise click.ClickException(f"There is no account {therapist!r}.")
    try:
        report = import_record(bundle, user, reason.strip())
    except RecordNotImportable as exc:
        db.session.rollback()
        raise click.ClickException(f"{exc}\nNothing was imported.") from exc
    db.session.commit()
    click.echo(f"Added client {report.client.code} for {user.username}: {report.courses} "
               f"course(s), {report.sessions} session(s), {report.notes} signed note(s)"
               f"{f' ({report.in_error} entered in error)' if report.in_error else ''}; "
               f"{report.seals_verified} seal(s) verified against the answers.")


@export_group.command("research")
@click.option("--reason", required=True,
              help="Why the data leaves, e.g. the ethics approval reference (kept in the audit "
                   "trail).")
@click.option("--template", "templates", multiple=True, metavar="SLUG",
              help="A template to export (repeat for several); every template with signed "
                   "notes when left out.")
@click.option("--free-text", is_flag=True,
              help="Include free text (what therapists typed; it may name people, places "
                   "and dates).")
@click.option("--as-user", metavar="USERNAME",
              help="The administrator the audit trail names (otherwise \"cli\").")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the ZIP.")
@with_appcontext
def research_command(reason: str, templates: tuple[str, ...], free_text: bool,
                     as_user: str | None, output: Path) -> None:
    """Write de-identified research data (signed notes) as a ZIP of CSV files with a data
    dictionary: study ids instead of clients, day numbers instead of dates."""
    import os

    from sqlalchemy import select

    from .. import audit
    from ..extensions import db
    from ..models import Role, User
    from .research import build_research_export

    if not reason.strip():
        raise click.ClickException("Say why the data is exported (--reason).")
    user = None
    if as_user is not None:
        user = db.session.scalar(select(User).where(User.username == as_user.strip().lower()))
        if user is None or not user.active or user.role != Role.ADMIN:
            raise click.ClickException(f"There is no active administrator {as_user!r}.")
    try:
        export = build_research_export(templates or None, free_text=free_text)
    except ValueError as exc:
        raise click.ClickException(f"{exc} (see `kaptools modalities list`).") from exc
    audit.record("export.research", user=user, username=None if user else "cli",
                 detail=export.audit_detail(reason.strip()) | {"file": output.name})
    db.session.commit()
    # Only the person who ran the command may read it: it is research data all the same.
    with os.fdopen(os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        out.write(export.data)
    click.echo(f"Wrote {export.note_count} signed notes of {len(export.templates)} "
               f"template(s) from {len(export.client_ids)} client(s) to {output} "
               f"(export {export.export_id}{', with free text' if free_text else ''}).")
