"""Migrations and models describe the same schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from kaptools.cli import upgrade_database
from kaptools.extensions import db
from tests.conftest import close_app, make_app


def test_upgrading_an_empty_database_yields_the_models_schema(databases, tmp_path):
    app = make_app(databases.new_url(), tmp_path / "instance")
    with app.app_context():
        upgrade_database()
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
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
        assert db.session.execute(text("SELECT events FROM audit_chain")).scalar() == 0
    close_app(app)
