"""The record's integrity: a serialised audit chain, guards below the ORM, and a verifier
that finds every owner-level change."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager

import pytest
from sqlalchemy import select, text

from kaptools import audit, guards, notes
from kaptools.extensions import db
from kaptools.models import Addendum, AuditEvent, Note, PrivateNote
from tests import factories
from tests.conftest import PG_URL, Browser
from tests.hostile.conftest import other_engine

# ---------------------------------------------------------------------------
# Many writers at once


def test_eight_writers_at_once_keep_one_unbroken_chain(app, world):
    errors: list[BaseException] = []

    def therapist_at_work() -> None:
        try:
            browser = Browser(app.test_client())
            browser.login("maya", factories.PASSWORD)
            for _ in range(12):
                assert browser.get(f"/clients/{world['client']}").status_code == 200
                assert browser.get(f"/courses/{world['course']}").status_code == 200
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=therapist_at_work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    with app.app_context():
        report = audit.verify_chain()
        count = db.session.scalar(select(db.func.count(AuditEvent.id)))
    assert report.ok, report
    assert count >= 8 * 25


HOSTILE_EVENTS = [
    {"username": 'o\'brien"; --', "detail": {"q": '","prev":"' + "f" * 64 + '"'}},
    {"username": "\\\u2028\u202e", "detail": {"prev": "0" * 64, "nul": "a\u0000b"}},
    {"client_code": "KT-\u00e9\u0301\U0001f600", "detail": {"nested": [{"a": None}, 1.5, -0,
                                                                    2 ** 53, "</script>"]}},
    {"username": "z" * 64, "detail": {}},
]


@pytest.mark.parametrize("values", HOSTILE_EVENTS, ids=range(len(HOSTILE_EVENTS)))
def test_every_event_hashes_as_the_verifier_hashes_it_whatever_it_holds(app, world, values):
    """On PostgreSQL the database hashes the text this side makes around the head it
    locked (``audit._append_postgresql``); quotes, escapes, a ``prev`` key of its own,
    characters outside the BMP: the verifier must come to the same hash."""
    with app.app_context():
        audit.record("hostile.event", object_type="client", object_id=world["client"],
                     **values)
        audit.record("hostile.after", detail={"n": 1})  # links to the event above
        db.session.commit()
        events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())
                                    .limit(2)).all()
        assert [e.action for e in events] == ["hostile.after", "hostile.event"]
        assert all(e.hash == audit.event_hash(e) for e in events)
        assert events[0].prev_hash == events[1].hash
        assert audit.verify_chain().ok


# ---------------------------------------------------------------------------
# Guards below the ORM


@pytest.fixture
def signed(app, world, maya):
    """A signed note with a private process note and an addendum, read a few times."""
    with app.app_context():
        note = db.session.get(Note, world["note"])
        notes.sign(note, note.author)
        notes.add_addendum(note, note.author, "Corrected the date of the situation.")
        db.session.commit()
    for _ in range(3):
        assert maya.get(f"/notes/{world['note']}").status_code == 200
        assert maya.get(f"/clients/{world['client']}").status_code == 200
    return world["note"]


GUARDED = [
    ("UPDATE signature SET content_hash = 'f' WHERE note_id = :n", "signature"),
    ("DELETE FROM signature WHERE note_id = :n", "signature"),
    ("UPDATE addendum SET body = 'rewritten' WHERE note_id = :n", "addendum"),
    ("DELETE FROM addendum WHERE note_id = :n", "addendum"),
    ("UPDATE private_note SET answers = '{}' WHERE note_id = :n", "private note"),
    ("DELETE FROM private_note WHERE note_id = :n", "private note"),
    ("DELETE FROM audit_event", "audit"),
    ("UPDATE audit_event SET detail = '{}'", "audit"),
]


@pytest.mark.parametrize("sql,what", GUARDED, ids=[f"{i}-{w}" for i, (_, w) in
                                                 enumerate(GUARDED)])
def test_the_database_refuses_changes_to_what_was_signed(app, signed, sql, what):
    engine = other_engine(app)
    with pytest.raises(Exception) as refused, engine.begin() as conn:
        conn.execute(text(sql), {"n": signed})
    engine.dispose()
    assert "cannot" in str(refused.value) or "append-only" in str(refused.value)


def test_a_draft_keeps_its_private_notes_editable(app, world):
    engine = other_engine(app)
    with engine.begin() as conn:
        conn.execute(text("UPDATE private_note SET answers = '{}' WHERE note_id = :n"),
                     {"n": world["note"]})
    engine.dispose()


@pytest.mark.skipif(not PG_URL, reason="TRUNCATE is a PostgreSQL statement")
@pytest.mark.parametrize("table", ["audit_event", "note", "signature", "addendum",
                                   "private_note"])
def test_truncate_is_refused(app, signed, table):
    engine = other_engine(app)
    with pytest.raises(Exception) as refused, engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {table} CASCADE"))
    engine.dispose()
    assert "cannot" in str(refused.value) or "append-only" in str(refused.value)


# ---------------------------------------------------------------------------
# What an owner of the database could still do, and how verify finds it


@contextmanager
def as_owner(app):
    """A connection that bypasses the guards, as the database's owner could."""
    engine = other_engine(app)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            for sql in guards.statements("sqlite", drop=True):
                conn.exec_driver_sql(sql)
        yield conn
        if engine.dialect.name == "sqlite":
            for sql in guards.statements("sqlite"):
                conn.exec_driver_sql(sql)
    engine.dispose()


# What an owner rewriting the trail would also do: point the chain's row at the new head.
MOVE_HEAD = ("UPDATE audit_chain SET head_hash = (SELECT hash FROM audit_event "
             "ORDER BY id DESC LIMIT 1)")


def verify(app, head: dict | None = None) -> audit.ChainReport:
    with app.app_context():
        db.session.remove()
        return audit.verify_chain(head=head)


def current_head(app) -> dict:
    with app.app_context():
        return audit.chain_head()


def test_verify_lists_every_rewritten_event_not_just_the_first(app, signed):
    assert verify(app).ok
    with app.app_context():
        ids = db.session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).all()
    with as_owner(app) as conn:
        for event_id in (ids[1], ids[-2]):
            conn.execute(text("UPDATE audit_event SET address = '6.6.6.6' WHERE id = :i"),
                         {"i": event_id})
    report = verify(app)
    assert not report.ok
    assert {ids[1], ids[-2]} <= {b.event_id for b in report.breaks}


def test_a_deleted_event_breaks_the_chain(app, signed):
    with app.app_context():
        ids = db.session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).all()
    with as_owner(app) as conn:
        conn.execute(text("DELETE FROM audit_event WHERE id = :i"), {"i": ids[-4]})
    report = verify(app)
    assert not report.ok and ids[-3] in {b.event_id for b in report.breaks}


def test_truncation_is_found_against_an_exported_head(app, signed):
    head = current_head(app)
    with as_owner(app) as conn:
        conn.execute(text("DELETE FROM audit_event WHERE id >= :i"),
                     {"i": head["event_id"] - 3})
    report = verify(app)  # the chain's row still names the head that was cut off
    assert not report.ok
    assert [(b.object_type, b.event_id) for b in report.breaks] == [("audit_chain", None)]
    with as_owner(app) as conn:  # an owner who moves the row's head back as well
        conn.execute(text(MOVE_HEAD))
    assert verify(app).ok  # what is left is a valid chain on its own...
    report = verify(app, head=head)
    assert not report.ok  # ...but not the one whose head was exported


def test_a_chain_rewritten_from_the_start_is_found_against_an_exported_head(app, signed):
    head = current_head(app)
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        rows = [(e.id, e) for e in events]
        previous = audit.GENESIS
        rewritten = []
        for event_id, event in rows:
            event.address = "6.6.6.6"
            event.prev_hash = previous
            previous = audit.event_hash(event)
            rewritten.append((event_id, event.prev_hash, previous))
        db.session.rollback()
    with as_owner(app) as conn:
        for event_id, prev, new in rewritten:
            conn.execute(text("UPDATE audit_event SET address = '6.6.6.6', prev_hash = :p, "
                              "hash = :h WHERE id = :i"), {"p": prev, "h": new, "i": event_id})
        conn.execute(text(MOVE_HEAD))
    assert verify(app).ok
    assert not verify(app, head=head).ok


def test_a_signed_note_forged_with_a_recomputed_hash_is_found(app, signed):
    with app.app_context():
        note = db.session.get(Note, signed)
        forged_answers = {**note.answers, "situation": "Something that never happened"}
        note.answers = forged_answers
        forged_hash = notes.content_hash(note)
        db.session.rollback()
    with as_owner(app) as conn:
        conn.execute(text("UPDATE note SET answers = :a, content_hash = :h WHERE id = :n"),
                     {"a": json.dumps(forged_answers), "h": forged_hash, "n": signed})
    report = verify(app)
    assert not report.ok
    assert any(b.object_type == "note" and b.object_id == signed for b in report.breaks)


@pytest.mark.parametrize("sql", [
    "UPDATE addendum SET body = 'Rewritten later' WHERE note_id = :n",
    "DELETE FROM addendum WHERE note_id = :n",
    "UPDATE signature SET signed_at = signed_at WHERE note_id = :n AND kind = 'author'; "
    "UPDATE signature SET content_hash = :fake WHERE note_id = :n AND kind = 'author'",
    "DELETE FROM signature WHERE note_id = :n AND kind = 'author'",
    "UPDATE note SET signed_by_id = (SELECT id FROM user_account WHERE username = 'tomas') "
    "WHERE id = :n",
], ids=["addendum-rewritten", "addendum-deleted", "signature-rewritten", "signature-deleted",
        "signer-changed"])
def test_changes_to_addenda_and_signatures_are_found(app, signed, sql):
    with as_owner(app) as conn:
        for statement in sql.split("; "):
            conn.execute(text(statement), {"n": signed, "fake": "0" * 64})
    assert not verify(app).ok


def test_the_head_command_and_verify_with_a_head(app, signed, tmp_path):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["audit", "head"])
    assert result.exit_code == 0, result.output
    head = json.loads(result.output)
    assert {"event_id", "hash", "count"} <= set(head)
    path = tmp_path / "head.json"
    path.write_text(result.output)
    ok = runner.invoke(args=["audit", "verify", "--head", str(path)])
    assert ok.exit_code == 0, ok.output
    with as_owner(app) as conn:
        conn.execute(text("DELETE FROM audit_event WHERE id = :i"), {"i": head["event_id"]})
    broken = runner.invoke(args=["audit", "verify", "--head", str(path)])
    assert broken.exit_code == 1 and "BROKEN" in broken.output


def test_private_notes_are_not_in_the_audit_trail(app, signed):
    with app.app_context():
        private = db.session.get(PrivateNote, signed).answers
        details = " ".join(json.dumps(e.detail) for e in db.session.scalars(select(AuditEvent)))
        bodies = [a.body for a in db.session.scalars(select(Addendum))]
    for value in [*private.values(), *bodies]:
        assert str(value) not in details
