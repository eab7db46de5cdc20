"""Migrations and models describe the same schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from kaptools import search
from kaptools.cli import upgrade_database
from kaptools.extensions import db
from tests.conftest import close_app, make_app


def test_upgrading_an_empty_database_yields_the_models_schema(databases, tmp_path):
    app = make_app(databases.new_url(), tmp_path / "instance")
    with app.app_context():
        upgrade_database()
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True, "include_object": search.include_object})
            diff = compare_metadata(context, db.metadata)
            tables = set(inspect(conn).get_table_names())
    close_app(app)
    assert diff == []
    assert {t.name for t in db.metadata.sorted_tables} <= tables


def test_the_migrated_schema_keeps_its_guards(databases, tmp_path):
    """Table changes in later migrations must not drop the triggers that guard the record."""
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DatabaseError

    app = make_app(databases.new_url(), tmp_path / "instance")
    with app.app_context():
        upgrade_database()
        db.session.execute(text("INSERT INTO audit_event (created_at, action, detail, "
                                "prev_hash, hash) VALUES (CURRENT_TIMESTAMP, 'x', '{}', "
                                "'0', '1')"))
        db.session.commit()
        for sql in ("UPDATE audit_event SET action = 'y'", "DELETE FROM audit_event"):
            with pytest.raises(DatabaseError):
                db.session.execute(text(sql))
            db.session.rollback()
        # The chain's row follows every event, however it was inserted (guards v3).
        assert db.session.execute(text("SELECT events, head_hash FROM audit_chain")).one() \
            == (1, "1")
    close_app(app)


def test_existing_phq9_item9_answers_raise_flags_when_upgrading(databases, tmp_path):
    """A clinic upgrading keeps every endorsed item 9 flagged (risk signals backfilled)."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from kaptools import risk

    app = make_app(databases.new_url(), tmp_path / "instance")
    directory = None
    with app.app_context():
        directory = app.extensions["migrate"].directory
        upgrade(directory=directory, revision="0006")
        now = "2026-11-20 10:00:00"
        for sql in [
            "INSERT INTO user_account (id, username, display_name, role, password_hash, "
            "active, created_at, password_changed_at) VALUES (1, 'maya', 'Maya', 'therapist', 'x', "
            "true, :now, :now)",
            "INSERT INTO client (id, therapist_id, code, created_at, archived) "
            "VALUES (1, 1, 'KT-1', :now, false), (2, 1, 'KT-2', :now, false)",
            "INSERT INTO course (id, client_id, title, format, starts_on, intentions, "
            "created_at) VALUES (1, 1, 'C', 'weekly', '2026-11-01', '', :now), "
            "(2, 2, 'C', 'weekly', '2026-11-01', '', :now)",
            "INSERT INTO therapy_session (id, course_id, kind, session_date, summary, "
            "created_at) VALUES (1, 1, 'assessment', '2026-11-02', '', :now), "
            "(2, 2, 'assessment', '2026-11-02', '', :now)",
        ]:
            db.session.execute(text(sql), {"now": now})
        for note_id, session_id, q9 in [(1, 1, 2), (2, 2, 0)]:
            db.session.execute(text(
                "INSERT INTO note (id, session_id, author_id, modality, template_version, "
                "answers, state, version, created_at, updated_at, signed_at, signed_by_id, "
                "content_hash) VALUES (:id, :s, 1, 'phq-9', 1, :answers, 'signed', 1, :now, "
                ":now, :now, 1, 'h')"),
                {"id": note_id, "s": session_id, "answers": f'{{"q9": {q9}}}', "now": now})
        db.session.commit()
        upgrade(directory=directory)
        flags = risk.open_flags([1, 2])
        assert list(flags) == [1]
        assert flags[1].label.startswith("Item 9 endorsed")
    close_app(app)
