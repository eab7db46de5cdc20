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
            busy_ms = int(app.config.get("SQLITE_BUSY_TIMEOUT_MS", 5000))
            event.listen(engine, "connect",
                         lambda conn, record: _sqlite_pragmas(conn, busy_ms))


def _sqlite_pragmas(dbapi_connection, busy_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
