"""Database wiring: SQLite pragmas, migrations and schema-level guards."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import event

from .extensions import db, migrate


def init_app(app: Flask) -> None:
    from . import guards, models  # noqa: F401  (register the tables)

    if not getattr(db.metadata, "_kaptools_guards", False):
        guards.register(db.metadata)
        db.metadata._kaptools_guards = True
    db.init_app(app)
    migrate.init_app(app, db, compare_type=True, render_as_batch=True)
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
