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


def _commits(app) -> list[tuple[tuple[str, ...], str]]:
    """Each commit from here on: the audit actions its transaction recorded, and its
    ``synchronous_commit`` as PostgreSQL had it just before the COMMIT."""
    with app.app_context():
        engine = db.engine
    commits: list[tuple[tuple[str, ...], str]] = []
    actions: list[str] = []

    def began(conn):
        actions.clear()

    def executed(conn, cursor, statement, parameters, context, executemany):
        if "INSERT INTO audit_event" in statement:
            actions.append(parameters["action"])

    def committing(conn):
        setting = conn.connection.dbapi_connection.execute("SHOW synchronous_commit")
        commits.append((tuple(actions), setting.fetchone()[0]))

    event.listen(engine, "begin", began)
    event.listen(engine, "before_cursor_execute", executed)
    event.listen(engine, "commit", committing)
    return commits


@pytest.mark.skipif(not PG_URL, reason="synchronous_commit is PostgreSQL's")
def test_a_page_shown_commits_its_event_without_waiting_for_the_disk_and_a_change_waits(app):
    from kaptools import audit
    from kaptools.web import shown_and_recorded

    @app.get("/test-writes-then-shows/<int:client_id>")
    def writes_then_shows(client_id: int):
        db.session.execute(text("UPDATE user_account SET display_name = 'Maya L.' "
                                "WHERE username = 'maya'"))
        return shown_and_recorded("shown", "client.viewed", db.session.get(Client, client_id),
                                  "KT-0001")

    with app.app_context():
        maya = factories.user("maya")
        ids = factories.client_with_course(maya)
        db.session.commit()
    browser = signed_in(app, "maya")
    commits = _commits(app)
    client_page = f"/clients/{ids['client']}"

    # A page shown: its transaction holds the event alone, and does not wait for the disk.
    assert browser.get(client_page).status_code == 200
    assert commits[-1] == (("client.viewed",), "off")
    # A change, and its event, wait for the disk as ever.
    resp = browser.post(f"/clients/{ids['client']}/edit",
                        {"code": "KT-0001", "display_name": "Rowan", "archived": ""})
    assert resp.status_code == 302
    assert commits[-1] == (("client.updated",), "on")
    # A page shown in a transaction that also changed something waits for the disk.
    assert browser.get(f"/test-writes-then-shows/{ids['client']}").status_code == 200
    assert commits[-1] == (("client.viewed",), "on")
    # The clinic can have every view wait for the disk.
    app.config["AUDIT_VIEWS_WAIT_FOR_DISK"] = True
    assert browser.get(client_page).status_code == 200
    assert commits[-1] == (("client.viewed",), "on")
    app.config["AUDIT_VIEWS_WAIT_FOR_DISK"] = False
    # Every event is in the chain, in order, whichever way it was committed.
    with app.app_context():
        assert audit.verify_chain().ok
        shown = db.session.scalars(text("SELECT action FROM audit_event ORDER BY id")).all()
    assert shown.count("client.viewed") == 3 and "client.updated" in shown


@pytest.mark.skipif(not PG_URL, reason="one statement on PostgreSQL; SQLite's writer lock "
                                       "is its database's")
def test_an_event_takes_the_chains_lock_in_the_statement_that_inserts_it(app):
    """The chain's lock is held for one round trip and the commit: the statement that
    locks the head is the one that links the event to it and inserts it."""
    from kaptools import audit

    with app.app_context():
        maya = factories.user("maya")
        ids = factories.client_with_course(maya)
        db.session.commit()
        engine = db.engine
    browser = signed_in(app, "maya")
    chain: list[str] = []

    def executed(conn, cursor, statement, parameters, context, executemany):
        if "audit_chain" in statement or "audit_event" in statement:
            chain.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", executed)
    try:
        assert browser.get(f"/clients/{ids['client']}").status_code == 200
        shown = list(chain)
        resp = browser.post(f"/clients/{ids['client']}/edit",
                            {"code": "KT-0001", "display_name": "Rowan", "archived": ""})
        assert resp.status_code == 302
    finally:
        event.remove(engine, "before_cursor_execute", executed)
    assert len(shown) == 1, shown
    assert "FOR UPDATE" in shown[0] and "INSERT INTO audit_event" in shown[0]
    assert len(chain) == 2 and "INSERT INTO audit_event" in chain[1]
    with app.app_context():
        assert audit.verify_chain().ok
        events = db.session.scalars(text("SELECT action FROM audit_event ORDER BY id")).all()
    assert events[-2:] == ["client.viewed", "client.updated"]
