"""The kaptools command: database, accounts and demo data."""

from __future__ import annotations

from sqlalchemy import func, select

from kaptools.extensions import db
from kaptools.models import Client, Course, SupervisionRelationship, TherapySession, User
from tests.conftest import close_app, make_app


def _fresh_app(databases, tmp_path):
    return make_app(databases.new_url(), tmp_path / "instance")


def test_demo_loads_once_and_prints_logins(databases, tmp_path):
    app = _fresh_app(databases, tmp_path)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["demo", "--no-serve"])
    assert result.exit_code == 0, result.output
    assert "maya" in result.output and "demo-maya-lind" in result.output
    with app.app_context():
        roles = sorted(db.session.scalars(select(User.role)))
        assert roles.count("therapist") >= 2 and "supervisor" in roles and "admin" in roles
        assert db.session.scalar(select(func.count(Client.id))) >= 3
        intensive = db.session.scalar(select(Course).where(Course.format == "intensive"))
        kinds = [s.kind for s in intensive.sessions]
        assert len(kinds) == 12 and kinds.count("dosing") == 4
        integrations = [s for s in intensive.sessions if s.kind == "integration"]
        assert all(s.follows is not None and s.follows.kind == "dosing" for s in integrations)
        assert db.session.scalar(select(func.count(SupervisionRelationship.id))) == 2
        count = db.session.scalar(select(func.count(TherapySession.id)))
    again = runner.invoke(args=["demo", "--no-serve"])
    assert "already present" in again.output
    with app.app_context():
        assert db.session.scalar(select(func.count(TherapySession.id))) == count
    close_app(app)


def test_demo_login_works(databases, tmp_path):
    app = _fresh_app(databases, tmp_path)
    app.test_cli_runner().invoke(args=["demo", "--no-serve"])
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    from tests.conftest import csrf_from

    resp = client.post("/login", data={"csrf_token": csrf_from(page), "username": "maya",
                                       "password": "demo-maya-lind"})
    assert resp.status_code == 302
    assert "KT-0142" in client.get("/").get_data(as_text=True)
    close_app(app)


def test_create_user_hashes_and_refuses_duplicates(databases, tmp_path):
    app = _fresh_app(databases, tmp_path)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["init-db"]).exit_code == 0
    args = ["create-user", "Lena", "--name", "Lena Park", "--role", "supervisor",
            "--password", "a long enough password"]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "lena"))
        assert user.role == "supervisor" and user.password_hash.startswith("$argon2id$")
    again = runner.invoke(args=args)
    assert again.exit_code != 0 and "already exists" in again.output
    short = runner.invoke(args=["create-user", "x1", "--name", "X", "--password", "short"])
    assert short.exit_code != 0 and "12 characters" in short.output
    close_app(app)


def test_secret_key_is_generated_into_the_instance_folder(tmp_path, databases):
    from kaptools import create_app

    instance = tmp_path / "inst"
    app = create_app({"INSTANCE_PATH": str(instance), "DATABASE_URL": databases.new_url()})
    key_file = instance / "secret_key"
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert app.config["SECRET_KEY"] == key_file.read_text().strip()
    again = create_app({"INSTANCE_PATH": str(instance), "DATABASE_URL": databases.new_url()})
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"]


def test_database_url_comes_from_the_environment(monkeypatch, tmp_path):
    from kaptools import create_app

    monkeypatch.setenv("KAPTOOLS_DATABASE_URL", "postgresql://someone@db.internal/kap")
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://someone@db.internal/kap"


def test_default_database_is_sqlite_in_the_instance_folder(monkeypatch, tmp_path):
    from kaptools import create_app

    monkeypatch.delenv("KAPTOOLS_DATABASE_URL", raising=False)
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/kaptools.sqlite3"
    with app.app_context():
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    close_app(app)


def test_backup_and_restore_round_trip(databases, tmp_path):
    import pytest

    from kaptools.models import Client

    if databases.dialect != "sqlite":
        pytest.skip("pg_dump/pg_restore are exercised by hand; this test drives SQLite's API")
    app = _fresh_app(databases, tmp_path)
    runner = app.test_cli_runner()
    runner.invoke(args=["demo", "--no-serve"])
    backup = tmp_path / "backup.sqlite3"
    result = runner.invoke(args=["backup", str(backup)])
    assert result.exit_code == 0, result.output
    assert oct(backup.stat().st_mode & 0o777) == "0o600"
    with app.app_context():
        before = db.session.scalar(select(func.count(Client.id)))
        db.session.add(Client(therapist_id=1, code="KT-LOST"))
        db.session.commit()
    assert runner.invoke(args=["restore", str(backup)]).exit_code != 0  # needs --yes
    result = runner.invoke(args=["restore", str(backup), "--yes"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(Client.id))) == before
        assert db.session.scalar(select(Client).where(Client.code == "KT-LOST")) is None
    assert app.test_cli_runner().invoke(args=["audit", "verify"]).exit_code == 0
    close_app(app)


def test_demo_notes_are_valid_and_in_normal_form(databases, tmp_path):
    from kaptools import notes
    from kaptools.modality import get_registry
    from kaptools.modality.answers import round_trip, validate_answers
    from kaptools.models import Note

    app = _fresh_app(databases, tmp_path)
    app.test_cli_runner().invoke(args=["demo", "--no-serve"])
    with app.app_context():
        registry = get_registry()
        all_notes = db.session.scalars(select(Note)).all()
        assert {n.modality for n in all_notes} >= {"emdr-target-set", "ifs-parts-map",
                                                    "cbt-thought-record", "art-script"}
        for note in all_notes:
            template = registry.get(note.modality, note.template_version)
            answers = {**note.answers, **notes.private_answers(note, note.author)}
            assert validate_answers(template, answers) == [], note.modality
            assert round_trip(template, answers) == answers, note.modality
    close_app(app)
