"""Hostile and unlucky input (issue 9): shared set-up.

Every test in this folder reproduces a way in which a typed word could be lost, a record
could stop printing, one user could stall everyone, or the record's integrity could be
quietly broken. The suite runs them on SQLite and again on PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from kaptools.modality.registry import builtin_dir, load_registry
from tests import factories
from tests.conftest import Browser

REGISTRY = load_registry(builtin_dir())


@pytest.fixture
def world(app):
    """Maya (therapist) with a client, a course, a dosing and an integration session."""
    with app.app_context():
        maya = factories.user("maya")
        factories.user("tomas")
        return factories.client_with_course(maya)


@pytest.fixture
def maya(app, world) -> Browser:
    browser = Browser(app.test_client())
    browser.login("maya", factories.PASSWORD)
    return browser


def note_id(url: str) -> int:
    return int(url.rstrip("/").rsplit("/", 1)[1])


def other_engine(app):
    """A second, unpooled way into the same database, as another process would have."""
    return create_engine(app.config["SQLALCHEMY_DATABASE_URI"], poolclass=NullPool)


@contextmanager
def write_lock(app, release_after: float = 8.0) -> Iterator[None]:
    """Hold the database's write lock from another connection, as a long job would.

    SQLite: BEGIN IMMEDIATE (readers go on, writers wait). PostgreSQL: every table locked
    in EXCLUSIVE mode (plain reads go on, writes and row locks wait). The lock is let go
    after ``release_after`` seconds in any case, so code that waits without a timeout ends
    up waiting that long instead of forever.
    """
    engine = other_engine(app)
    raw = engine.raw_connection()
    driver = raw.driver_connection
    if engine.dialect.name == "sqlite":
        driver.isolation_level = None
        driver.execute("BEGIN IMMEDIATE")
    else:
        from kaptools.extensions import db

        names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        driver.execute(f"LOCK TABLE {names} IN EXCLUSIVE MODE")
    released = threading.Event()
    lock = threading.Lock()

    def release() -> None:
        with lock:
            if not released.is_set():
                released.set()
                driver.rollback() if engine.dialect.name != "sqlite" else driver.execute(
                    "ROLLBACK")
                raw.close()
                engine.dispose()

    timer = threading.Timer(release_after, release)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        release()


def run_sql(app, sql: str, **params) -> None:
    """Run one statement from another connection and commit it."""
    engine = other_engine(app)
    with engine.begin() as conn:
        conn.execute(text(sql), params)
    engine.dispose()
