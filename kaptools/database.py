"""Database wiring: timeouts, SQLite pragmas, migrations and schema-level guards.

Every connection gets bounded waits, so a lock held elsewhere or a runaway statement
ends the request with the app's own 503 page (which keeps what was typed) instead of
tying up a worker: on PostgreSQL ``lock_timeout``, ``statement_timeout`` and
``idle_in_transaction_session_timeout``; on SQLite the busy timeout, and statements
interrupted past the statement timeout.
"""

from __future__ import annotations

import time

from flask import Flask
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.orm import Session

from .extensions import db, migrate

# SQLite calls the progress handler every this many virtual-machine instructions.
_PROGRESS_STEPS = 20_000


def init_app(app: Flask) -> None:
    from . import guards, models, search  # noqa: F401  (register the tables)

    if not getattr(db.metadata, "_kaptools_guards", False):
        guards.register(db.metadata)
        search.register(db.metadata)
        db.metadata._kaptools_guards = True
    db.init_app(app)
    migrate.init_app(app, db, compare_type=True, render_as_batch=True,
                     include_object=search.include_object)
    cfg = app.config
    lock_ms = int(cfg.get("SQLITE_BUSY_TIMEOUT_MS") or cfg["DB_LOCK_TIMEOUT_MS"])
    statement_ms = int(cfg["DB_STATEMENT_TIMEOUT_MS"])
    idle_ms = int(cfg["DB_IDLE_IN_TRANSACTION_TIMEOUT_MS"])
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect",
                         lambda conn, record: _sqlite_setup(conn, record, lock_ms))
            event.listen(engine, "before_cursor_execute",
                         lambda conn, *a: _start_clock(conn, statement_ms))
            event.listen(engine, "after_cursor_execute", lambda conn, *a: _stop_clock(conn))
        elif engine.dialect.name == "postgresql":
            settings = {"lock_timeout": int(cfg["DB_LOCK_TIMEOUT_MS"]),
                        "statement_timeout": statement_ms,
                        "idle_in_transaction_session_timeout": idle_ms,
                        # The app's statements are prepared on each connection (after a
                        # few uses) and planned once: their plans do not depend on values.
                        "plan_cache_mode": "force_generic_plan"}
            event.listen(engine, "connect",
                         lambda conn, record: _postgresql_setup(conn, settings))
            event.listen(engine, "checkout", _ping_if_idle)
            event.listen(engine, "checkin", _idle_from)
            event.listen(engine, "begin", _began)
            event.listen(engine, "before_cursor_execute", _note_writes)
            app.teardown_appcontext(_end_read_only_transaction)


def _sqlite_setup(dbapi_connection, record, busy_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    clock: dict[str, float | None] = {"deadline": None}
    record.info["kaptools_clock"] = clock

    def past_deadline() -> int:
        deadline = clock["deadline"]
        return 1 if deadline is not None and time.monotonic() > deadline else 0

    dbapi_connection.set_progress_handler(past_deadline, _PROGRESS_STEPS)


def _start_clock(conn, statement_ms: int) -> None:
    clock = conn.info.get("kaptools_clock")
    if clock is not None and statement_ms > 0:
        clock["deadline"] = time.monotonic() + statement_ms / 1000


def _stop_clock(conn) -> None:
    clock = conn.info.get("kaptools_clock")
    if clock is not None:
        clock["deadline"] = None


def _postgresql_setup(dbapi_connection, settings: dict[str, int]) -> None:
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    with dbapi_connection.cursor() as cursor:
        for name, value in settings.items():
            value = int(value) if isinstance(value, int) else value
            cursor.execute(f"SET {name} = {value}")
    dbapi_connection.autocommit = autocommit


# A request that only read ends its transaction with COMMIT, not the ROLLBACK that closing
# the session sends: on PostgreSQL the two are the same for a transaction that wrote
# nothing, but psycopg forgets every prepared statement of the connection on ROLLBACK
# (it cannot tell whether one was prepared inside the rolled-back transaction). Without
# this, the statements of read-only pages would never stay prepared and be planned anew
# on every request. A transaction that wrote anything, or failed, is rolled back as ever.


def _began(conn) -> None:
    conn.info["kaptools_wrote"] = False


@event.listens_for(Session, "after_begin")
def _session_began(session, transaction, connection) -> None:
    session.info["kaptools_connection"] = connection


def _note_writes(conn, cursor, statement: str, *args) -> None:
    if not statement.lstrip()[:6].upper() == "SELECT":
        conn.info["kaptools_wrote"] = True


def _end_read_only_transaction(exc: BaseException | None) -> None:
    """Runs before Flask-SQLAlchemy's teardown closes the request's session."""
    if exc is not None or not db.session.registry.has():
        return
    session = db.session()
    if not session.in_transaction() or session.new or session.dirty or session.deleted:
        return
    conn = session.info.get("kaptools_connection")
    if conn is None or conn.closed or conn.invalidated or conn.info.get("kaptools_wrote", True):
        return
    try:
        session.commit()
    except SQLAlchemyError:
        session.rollback()


# A pooled connection is pinged before use only when it has lain idle: one that served a
# request a moment ago is alive (a ping per request would cost a round trip every time),
# while one left for longer may have been closed by a server restart or a firewall. A
# failed ping hands out a fresh connection instead (SQLAlchemy's pessimistic handling).
IDLE_BEFORE_PING_SECONDS = 2.0


def _idle_from(dbapi_connection, record) -> None:
    record.info["kaptools_idle_from"] = time.monotonic()


def _ping_if_idle(dbapi_connection, record, proxy) -> None:
    idle_from = record.info.get("kaptools_idle_from")
    if idle_from is not None and time.monotonic() - idle_from < IDLE_BEFORE_PING_SECONDS:
        return
    try:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        dbapi_connection.execute("SELECT 1")
        dbapi_connection.autocommit = autocommit
    except Exception as gone:  # any failure: this connection cannot be trusted
        raise DisconnectionError(f"a pooled connection failed its ping: {gone}") from gone
