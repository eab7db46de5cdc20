"""How a request uses its database connection (issue 10).

A request that only read ends with COMMIT, which keeps what PostgreSQL prepared for the
connection (psycopg forgets every prepared statement on ROLLBACK); a request that wrote
anything it did not commit, or that failed, is rolled back as before. A pooled
connection that lay idle is pinged before use, and replaced when the server has gone.
"""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select, text

from kaptools.extensions import db
from kaptools.models import Client, User
from tests import factories
from tests.conftest import PG_URL, Browser, signed_in


def maya_signed_in(app) -> Browser:
    with app.app_context():
        factories.user("maya")
        db.session.commit()
    return signed_in(app, "maya")


def _one_connection(app):
    """The pooled connection every request of this test uses (there is only one)."""
    with app.app_context():
        engine = db.engine
    used: set[int] = set()
    event.listen(engine, "checkout", lambda dbapi, record, proxy: used.add(id(dbapi)))
    return used


@pytest.mark.skipif(not PG_URL, reason="prepared statements are PostgreSQL's")
def test_a_read_only_page_keeps_its_statements_prepared(app):
    browser = maya_signed_in(app)
    used = _one_connection(app)
    for _ in range(8):  # psycopg prepares a statement on its sixth use
        assert browser.get("/clients").status_code == 200
    assert len(used) == 1
    with app.app_context():
        prepared = db.session.scalars(text("SELECT statement FROM pg_prepared_statements"))
        statements = " ".join(prepared)
    # The sign-in lookup and the list's own query, both kept across requests.
    assert "FROM auth_session" in statements
    assert "FROM client" in statements


def test_a_request_that_wrote_without_committing_leaves_nothing(app):
    @app.get("/test-writes-and-returns")
    def writes_and_returns():
        user = db.session.scalar(select(User).where(User.username == "maya"))
        db.session.add(Client(therapist_id=user.id, code="KT-NEVER"))
        db.session.flush()
        return "written, not committed"

    @app.get("/test-writes-then-fails")
    def writes_then_fails():
        db.session.execute(text("UPDATE user_account SET display_name = 'Changed' "
                                "WHERE username = 'maya'"))
        raise RuntimeError("the page failed")

    browser = maya_signed_in(app)
    assert browser.get("/test-writes-and-returns").status_code == 200
    assert browser.get("/test-writes-then-fails").status_code == 500
    with app.app_context():
        assert db.session.scalar(select(func.count(Client.id))) == 0
        assert db.session.scalar(select(User.display_name).where(User.username == "maya")) \
            != "Changed"


@pytest.mark.skipif(not PG_URL, reason="a PostgreSQL server ending a connection")
def test_a_connection_the_server_closed_is_replaced_before_a_page_uses_it(app, monkeypatch):
    from kaptools import database

    browser = maya_signed_in(app)
    assert browser.get("/clients").status_code == 200
    with app.app_context():  # the pool's one connection, ended by the server
        pid = db.session.scalar(text("SELECT pg_backend_pid()"))
        db.session.commit()
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))
    monkeypatch.setattr(database, "IDLE_BEFORE_PING_SECONDS", 0.0)  # as after a pause
    assert browser.get("/clients").status_code == 200
