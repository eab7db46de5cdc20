"""The whole database moves to another instance (issue 14, acceptance 2): the demo
database, written from the embedded SQLite, imported into an empty database (PostgreSQL
when the suite runs there): row counts match, every signed note's hash and the audit
chain verify, and importing the same file again changes nothing."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from kaptools.cli import upgrade_database
from kaptools.exports.transfer import LEFT_BEHIND
from kaptools.extensions import db
from kaptools.models import AuditEvent, Note, NoteState, User
from tests import factories
from tests.conftest import close_app, demo_source_app, make_app


def counts(app) -> dict[str, int]:
    with app.app_context():
        return {t.name: db.session.scalar(select(func.count()).select_from(t))
                for t in db.metadata.sorted_tables if t.name not in LEFT_BEHIND}


def run(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result


def test_the_demo_database_moves_to_an_empty_database(databases, tmp_path):
    source = demo_source_app(tmp_path)
    with source.app_context():
        from kaptools import discard

        # Something discarded travels too, still discarded.
        maya = db.session.scalar(select(User).where(User.username == "maya"))
        draft = db.session.scalar(select(Note).where(Note.state == NoteState.DRAFT,
                                                     Note.author_id == maya.id))
        discard.discard(draft, maya, draft.session.course.client.code)
        db.session.commit()
        signed = db.session.scalar(select(func.count(Note.id)).where(
            Note.state != NoteState.DRAFT))
        assert signed > 10
    out = tmp_path / "clinic.json"
    made = run(source, "export", "database", "--reason", "Moving to PostgreSQL", "-o", str(out))
    assert made.exit_code == 0, made.output
    before = counts(source)
    close_app(source)

    target = make_app(databases.new_url(), tmp_path / "b")
    first = run(target, "import", str(out))
    assert first.exit_code == 0, first.output
    assert f"Verified {signed} signed notes" in first.output
    assert counts(target) == before
    assert run(target, "audit", "verify").exit_code == 0
    with target.app_context():
        export_event = db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "export.database"))
        assert export_event.detail["reason"] == "Moving to PostgreSQL"
        hidden = db.session.get(Note, draft.id)
        assert hidden is None  # discarded there, discarded here
        # New rows get new ids after the imported ones (PostgreSQL's counters moved on).
        factories.user("newcomer")
        assert db.session.scalar(select(User.id).where(User.username == "newcomer")) > \
            max(r["id"] for r in json.loads(out.read_text())["tables"]["user_account"])

    # The same file again: nothing added, nothing changed.
    after_first = counts(target)
    second = run(target, "import", str(out))
    assert second.exit_code == 0, second.output
    assert "Added 0 rows" in second.output
    assert counts(target) == after_first

    # A file whose row differs from what is here is refused, and nothing is written.
    data = json.loads(out.read_text())
    data["tables"]["client"][0]["display_name"] = "Someone else"
    data["tables"]["client"].append({**data["tables"]["client"][1], "id": 99999,
                                     "code": "KT-9999"})
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(data))
    refused = run(target, "import", str(changed))
    assert refused.exit_code != 0
    assert "never overwrites" in refused.output and "client 1" in refused.output
    assert counts(target) == after_first
    close_app(target)


def test_a_tampered_signed_note_is_not_imported(databases, tmp_path):
    source = make_app("sqlite:///" + str(tmp_path / "source.sqlite3"), tmp_path / "a")
    with source.app_context():
        upgrade_database()
        from kaptools.demo import load_demo

        load_demo()
    out = tmp_path / "clinic.json"
    assert run(source, "export", "database", "--reason", "test", "-o", str(out)).exit_code == 0
    close_app(source)
    data = json.loads(out.read_text())
    note = next(n for n in data["tables"]["note"] if n["state"] == "signed")
    first_key = next(iter(note["answers"]))
    note["answers"][first_key] = "changed on the way"
    (tmp_path / "tampered.json").write_text(json.dumps(data))
    target = make_app(databases.new_url(), tmp_path / "b")
    refused = run(target, "import", str(tmp_path / "tampered.json"))
    assert refused.exit_code != 0 and "does not verify" in refused.output
    assert str(note["id"]) in refused.output
    assert sum(counts(target).values()) == 0
    close_app(target)
