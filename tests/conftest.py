"""Fixtures: a fresh app and database per test, on SQLite or PostgreSQL.

Set KAPTOOLS_TEST_DATABASE_URL to a PostgreSQL URL to run the suite there; each
run works in a schema of its own, dropped at the end.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, text
from werkzeug.serving import make_server

from kaptools import create_app
from kaptools.extensions import db

PG_URL = os.environ.get("KAPTOOLS_TEST_DATABASE_URL", "")

FAST_ARGON2 = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST_KIB": 1024, "ARGON2_PARALLELISM": 1}


def _pg_url() -> str:
    url = PG_URL
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix):]
    return url


class Databases:
    """Hands out empty databases: SQLite files or PostgreSQL schemas."""

    def __init__(self, tmp_factory: pytest.TempPathFactory) -> None:
        self.tmp_factory = tmp_factory
        self.schemas: list[str] = []
        self.admin = create_engine(_pg_url(), isolation_level="AUTOCOMMIT") if PG_URL else None

    @property
    def dialect(self) -> str:
        return "postgresql" if PG_URL else "sqlite"

    def new_url(self) -> str:
        if self.admin is None:
            return "sqlite:///" + str(self.tmp_factory.mktemp("db") / "kaptools.sqlite3")
        schema = "kt_" + uuid.uuid4().hex[:12]
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        self.schemas.append(schema)
        sep = "&" if "?" in _pg_url() else "?"
        return f"{_pg_url()}{sep}options=-csearch_path%3D{schema}"

    def close(self) -> None:
        if self.admin is None:
            return
        with self.admin.connect() as conn:
            for schema in self.schemas:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory)
    yield dbs
    dbs.close()


@pytest.fixture(scope="session")
def shared_pg_url(databases: Databases) -> str | None:
    """One PostgreSQL schema with tables, truncated between tests."""
    if databases.admin is None:
        return None
    url = databases.new_url()
    app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "x"})
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    return url


def make_app(url: str, instance, **overrides):
    config = {
        "TESTING": True,
        "DATABASE_URL": url,
        "INSTANCE_PATH": str(instance),
        "SECRET_KEY": "test-secret-key",
        # Render jobs run inside the request that asks for them (still in child
        # processes with their limits); tests of the queue itself choose a real one.
        "TASK_QUEUE_URL": "immediate",
        **FAST_ARGON2,
        **overrides,
    }
    return create_app(config)


@pytest.fixture
def app_factory(databases: Databases, shared_pg_url, tmp_path) -> Iterator[Callable]:
    """Build apps on a fresh, empty schema with tables created."""
    made = []

    def build(**overrides):
        if shared_pg_url:
            url = shared_pg_url
        else:
            url = overrides.pop("DATABASE_URL", None) or databases.new_url()
        app = make_app(url, tmp_path / "instance", **overrides)
        with app.app_context():
            if shared_pg_url:
                if not made:
                    _truncate_all()
            else:
                db.create_all()
        made.append(app)
        return app

    yield build
    for app in made:
        close_app(app)


def close_app(app) -> None:
    """Return every connection and close the app's pool."""
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _truncate_all() -> None:
    """Empty every table between tests, as the database's owner (past the guards that
    refuse TRUNCATE), then put back the audit chain's row."""
    names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
    db.session.execute(text("SET LOCAL session_replication_role = replica"))
    db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    db.session.execute(text("INSERT INTO audit_chain (id, events) VALUES (1, 0)"))
    db.session.commit()


@pytest.fixture
def app(app_factory):
    return app_factory()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


class Browser:
    """A test client that signs in and posts forms with their CSRF token."""

    def __init__(self, client) -> None:
        self.client = client
        self.token: str | None = None

    def get(self, url: str, **kw):
        resp = self.client.get(url, **kw)
        if resp.mimetype == "text/html":
            body = resp.get_data(as_text=True)
            if 'name="csrf_token"' in body:
                self.token = csrf_from(body)
        return resp

    def post(self, url: str, data: dict | None = None, **kw):
        if self.token is None:
            self.get("/login")
        payload = {"csrf_token": self.token, **(data or {})}
        return self.client.post(url, data=payload, **kw)

    def login(self, username: str, password: str, next_url: str | None = None):
        self.get("/login")
        url = "/login" + (f"?next={next_url}" if next_url is not None else "")
        resp = self.post(url, {"username": username, "password": password})
        self.get("/")
        return resp

    def logout(self):
        return self.post("/logout")


def demo_source_app(tmp_path):
    """A second instance (its own SQLite file) holding the demo, to send records from."""
    from kaptools.cli import upgrade_database
    from kaptools.demo import load_demo

    source = make_app("sqlite:///" + str(tmp_path / "source.sqlite3"), tmp_path / "a")
    with source.app_context():
        upgrade_database()
        load_demo()
    return source


def signed_in(app, username: str, password: str | None = None) -> Browser:
    """A test client signed in as ``username`` (the factories' password by default)."""
    from tests import factories

    browser = Browser(app.test_client())
    browser.login(username, password or factories.PASSWORD)
    return browser


@pytest.fixture
def browser(client) -> Browser:
    return Browser(client)


@pytest.fixture
def make_browser(app):
    return lambda: Browser(app.test_client())


# Browser tests: a live kaptools server driven by Debian's Chromium through Playwright. ---

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture
def live_server(app):
    """Serve the test app on a free local port for the duration of one test."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
    with app.app_context():
        db.session.remove()


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is not installed: run `bash .ci/system-deps`")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 768, "height": 1024})
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


@pytest.fixture(autouse=True)
def _collect_garbage():
    """Collect after each test so a leaked connection is blamed on the test that leaked it.

    What survives a collection is frozen (``gc.freeze``): the next collection then looks
    only at what later tests made, instead of walking every module, compiled template and
    cache again after each test (which was a large part of the suite's time)."""
    yield
    import gc

    gc.collect()
    gc.freeze()
