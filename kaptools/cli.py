"""The ``kaptools`` command: database, users, demo data and serving."""

from __future__ import annotations

import os
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import select

from .extensions import db


def main() -> None:
    from . import create_app

    FlaskGroup(
        name="kaptools",
        create_app=lambda: create_app(),
        help="kaptools: structured KAP integration notes, summaries and supervision.",
    ).main(prog_name="kaptools")


def register_commands(app: Flask) -> None:
    app.cli.add_command(init_db_command)
    app.cli.add_command(create_user_command)
    app.cli.add_command(demo_command)
    app.cli.add_command(serve_command)
    app.cli.add_command(worker_command)
    app.cli.add_command(modalities_group)
    app.cli.add_command(render_command)
    app.cli.add_command(audit_group)
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)
    from .fhir.cli import fhir_import_group

    app.cli.add_command(fhir_import_group)
    from .exports.cli import export_group, import_command

    app.cli.add_command(export_group)
    app.cli.add_command(import_command)


def upgrade_database() -> None:
    """Bring the schema to the newest migration."""
    from flask_migrate import upgrade

    upgrade(directory=current_app.extensions["migrate"].directory)


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create the database or run pending migrations."""
    upgrade_database()
    click.echo(f"Database ready: {db.engine.url.render_as_string(hide_password=True)}")


@click.command("create-user")
@click.argument("username")
@click.option("--name", "display_name", required=True, help="Full name shown in the app.")
@click.option("--role", type=click.Choice(["therapist", "supervisor", "admin"]),
              default="therapist", show_default=True)
@click.password_option(help="Asked for when not given.")
@with_appcontext
def create_user_command(username: str, display_name: str, role: str, password: str) -> None:
    """Create an account."""
    from . import audit
    from .models import User
    from .passwords import hash_password, password_problem

    if problem := password_problem(password):
        raise click.BadParameter(problem, param_hint="password")
    username = username.strip().lower()
    if db.session.scalar(select(User.id).where(User.username == username)):
        raise click.ClickException(f"an account named {username!r} already exists")
    user = User(username=username, display_name=display_name, role=role,
                password_hash=hash_password(password))
    db.session.add(user)
    db.session.flush()
    audit.record("user.created", obj=user, username="cli", detail={"role": role})
    db.session.commit()
    click.echo(f"Created {role} {username}.")


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Load the demo data and stop.")
@with_appcontext
def demo_command(host: str, port: int, no_serve: bool) -> None:
    """Create the database, load synthetic demo data (once) and serve the app."""
    from .demo import DEMO_LOGINS, load_demo

    upgrade_database()
    if load_demo():
        click.echo("Loaded synthetic demo data.")
    else:
        click.echo("Demo data already present; nothing added.")
    click.echo("\nDemo logins (synthetic accounts, for trying kaptools only):")
    for username, role, password in DEMO_LOGINS:
        click.echo(f"  {role:<11} {username:<8} password: {password}")
    if not no_serve:
        _serve(current_app._get_current_object(), host, port)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def serve_command(host: str, port: int) -> None:
    """Serve kaptools on this machine (use gunicorn in production)."""
    _serve(current_app._get_current_object(), host, port)


def _serve(app: Flask, host: str, port: int) -> None:
    from werkzeug.serving import run_simple

    from .rendering.queue import queue_for

    queue = queue_for(app)
    consumer = None
    if queue.embedded:
        # The embedded queue is a file in the instance folder: this process works it.
        consumer = queue.start_embedded(int(app.config["RENDER_WORKERS"]))
    click.echo(f"\nkaptools is running: open http://{host}:{port}/  (Ctrl+C stops it)\n")
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
    finally:
        if consumer is not None:
            consumer.stop(graceful=False)


@click.command("worker")
@click.option("--workers", type=int, default=None,
              help="Render jobs worked on at once (default: RENDER_WORKERS).")
@with_appcontext
def worker_command(workers: int | None) -> None:
    """Work the render queue: lay out PDFs in child processes with hard limits."""
    from .rendering.queue import queue_for

    app = current_app._get_current_object()
    queue = queue_for(app)
    count = workers or int(app.config["RENDER_WORKERS"])
    click.echo(f"kaptools render worker: {count} job(s) at a time from "
               f"{queue.url or 'the embedded queue in ' + app.instance_path}")
    try:
        os.nice(19)  # a render host may also serve pages: they come first
    except OSError:
        pass
    queue.warm_up()
    consumer = queue.consumer(count)
    consumer._standalone = True  # the main thread: Ctrl+C and SIGTERM stop it cleanly
    consumer.run()


@click.group("modalities")
def modalities_group() -> None:
    """Check and list note templates."""


@modalities_group.command("check")
@click.argument("path", required=False, type=click.Path(file_okay=False, path_type=Path))
def modalities_check(path: Path | None) -> None:
    """Validate the templates in PATH (default: the built-in and clinic templates)."""
    from .modality.registry import builtin_dir, clinic_dir, load_registry

    if path is None:
        app = _app_if_any()
        reg = load_registry(builtin_dir(), clinic_dir(app) if app is not None else None)
    else:
        reg = load_registry(path) if (path / "_shared.toml").exists() else \
            load_registry(builtin_dir(), path)
    for problem in reg.problems:
        click.echo(f"{problem.file}: {problem.path}: {problem.message}", err=True)
    for template in sorted(reg.templates.values(), key=lambda t: (t.slug, t.version)):
        click.echo(f"ok  {template.slug} v{template.version}  {template.title}")
    if reg.problems:
        files = len({p.file for p in reg.problems})
        click.echo(f"{len(reg.problems)} problem(s) in {files} file(s); those templates are "
                   "not loaded.", err=True)
        raise click.exceptions.Exit(1)


def _app_if_any() -> Flask | None:
    """The app this command runs for, when it runs under ``kaptools`` (not standalone)."""
    from flask.cli import ScriptInfo

    info = click.get_current_context().find_object(ScriptInfo)
    if info is None:
        return None
    try:
        return info.load_app()
    except Exception:
        return None


@modalities_group.command("list")
@with_appcontext
def modalities_list() -> None:
    """List the loaded templates, newest version of each."""
    from .modality import get_registry

    for template in get_registry().current():
        click.echo(f"{template.slug:<28} v{template.version}  {template.title}")


@click.command("render")
@click.argument("scope", type=click.Choice(["course", "session"]))
@click.argument("object_id", type=int)
@click.option("--kind", type=click.Choice(["summary", "handout", "packet"]), default="summary",
              show_default=True)
@click.option("--sheet", "sheets", multiple=True, help="Practice sheet for a handout (repeat).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the PDF ('-' for standard output).")
@click.option("--html", is_flag=True, help="Write the print HTML instead of the PDF.")
@with_appcontext
def render_command(scope: str, object_id: int, kind: str, sheets: tuple[str, ...],
                   output: Path, html: bool) -> None:
    """Render a course or session document to a file (an administrator's tool)."""
    import sys

    from . import audit, documents
    from .models import Course, TherapySession

    if scope == "course":
        course, only = db.session.get(Course, object_id), None
    else:
        only = db.session.get(TherapySession, object_id)
        course = only.course if only else None
    if course is None:
        raise click.ClickException(f"no {scope} with id {object_id}")
    doc = documents.build(kind, course, only, list(sheets) or None)
    data = documents.document_html(doc).encode() if html else documents.document_pdf(doc)
    audit.record("document.exported", obj=only or course, client_code=course.client.code,
                 username="cli", detail={"kind": kind, "format": "html" if html else "pdf"})
    db.session.commit()
    if str(output) == "-":
        sys.stdout.buffer.write(data)
    else:
        output.write_bytes(data)
        click.echo(f"Wrote {len(data)} bytes to {output}", err=True)


@click.group("audit")
def audit_group() -> None:
    """Check the audit trail."""


@audit_group.command("verify")
@click.option("--head", "head_source", metavar="FILE|JSON",
              help="A head exported earlier with 'kaptools audit head': the trail must still "
                   "contain it, unchanged.")
@with_appcontext
def audit_verify(head_source: str | None) -> None:
    """Walk the whole chain, check signed records against it, and list every break."""
    import json

    from .audit import verify_chain

    head = None
    if head_source:
        text = Path(head_source).read_text() if Path(head_source).is_file() else head_source
        try:
            head = json.loads(text)
            int(head["event_id"]), str(head["hash"])
        except (ValueError, KeyError, TypeError) as exc:
            raise click.BadParameter("give the JSON printed by 'kaptools audit head', or a "
                                     "file holding it", param_hint="--head") from exc
    report = verify_chain(head=head)
    if report.ok:
        against = f" and the exported head of event {head['event_id']}" if head else ""
        click.echo(f"Audit chain intact: {report.checked} events verified{against}; "
                   f"{report.records_checked} signed notes and addenda match their events.")
        return
    first = report.breaks[0]
    where = f"at event {first.event_id}" if first.event_id is not None else \
        f"at {first.object_type} {first.object_id}"
    click.echo(f"Audit chain BROKEN {where}: {first.problem}.", err=True)
    click.echo(f"{len(report.breaks)} problem(s) found in {report.checked} events and the "
               "signed records:", err=True)
    for problem in report.breaks:
        click.echo(f"  {problem}", err=True)
    raise click.exceptions.Exit(1)


@audit_group.command("head")
@with_appcontext
def audit_head() -> None:
    """Print the chain's newest event as JSON, to keep somewhere the database's owner
    cannot change (another machine, a printed page); verify against it later."""
    import json

    from .audit import chain_head

    click.echo(json.dumps(chain_head(), sort_keys=True))


@click.command("backup")
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def backup_command(output: Path) -> None:
    """Take an online backup with the database's own tool (SQLite backup API, pg_dump)."""
    import sqlite3
    import subprocess

    url = db.engine.url
    if url.get_backend_name() == "sqlite":
        if output.exists():
            raise click.ClickException(f"{output} exists; choose a new file")
        raw = db.engine.raw_connection()
        try:
            target = sqlite3.connect(output)
            with target:
                raw.driver_connection.backup(target)
            target.close()
        finally:
            raw.close()
    elif url.get_backend_name() == "postgresql":
        plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
        subprocess.run(["pg_dump", "--format=custom", f"--file={output}", plain], check=True)
    else:
        raise click.ClickException(f"no backup method for {url.get_backend_name()}")
    output.chmod(0o600)
    click.echo(f"Backup written to {output}")


@click.command("restore")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Confirm replacing the current SQLite database.")
@with_appcontext
def restore_command(source: Path, yes: bool) -> None:
    """Replace the SQLite database with a backup (stop the app first). PostgreSQL: pg_restore."""
    import sqlite3

    if db.engine.url.get_backend_name() != "sqlite":
        raise click.ClickException("for PostgreSQL use: pg_restore --clean --dbname=URL FILE")
    if not yes:
        raise click.ClickException("this replaces every record; add --yes to confirm")
    db.session.remove()
    db.engine.dispose()
    with sqlite3.connect(source) as backup, sqlite3.connect(db.engine.url.database) as live:
        backup.backup(live)
    click.echo(f"Restored {db.engine.url.database} from {source}")
