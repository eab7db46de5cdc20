"""The multi-host deployment files (kaptools/deploy/) parse and name real things."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from kaptools import create_app

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "kaptools" / "deploy"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_the_compose_file_puts_each_role_on_its_own_hosts():
    services = compose()["services"]
    assert {"web", "worker", "db", "queue", "migrate"} <= set(services)
    placed = {name: services[name]["deploy"]["placement"]["constraints"]
              for name in ("web", "worker", "db", "queue")}
    assert placed["web"] != placed["worker"] != placed["db"]
    assert services["web"]["deploy"]["replicas"] >= 2
    assert services["worker"]["deploy"]["replicas"] >= 2


def test_web_and_workers_share_the_database_queue_and_key():
    services = compose()["services"]
    web, worker = services["web"]["environment"], services["worker"]["environment"]
    for key in ("KAPTOOLS_DATABASE_URL", "KAPTOOLS_TASK_QUEUE_URL", "KAPTOOLS_SECRET_KEY_FILE"):
        assert web[key] == worker[key], key
    assert web["KAPTOOLS_TASK_QUEUE_URL"].startswith("redis://queue:")
    assert "@db:" in web["KAPTOOLS_DATABASE_URL"]


def test_every_setting_and_command_in_the_compose_file_exists(tmp_path):
    from kaptools.config import DEFAULTS

    app = create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": "sqlite://",
                      "INSTANCE_PATH": str(tmp_path)})
    commands = set(app.cli.list_commands(None))
    for name, service in compose()["services"].items():
        for key in service.get("environment", {}):
            if key.startswith("KAPTOOLS_"):
                assert key[len("KAPTOOLS_"):] in DEFAULTS, (name, key)
        command = service.get("command", [])
        if command[:1] == ["kaptools"]:
            assert command[1] in commands, (name, command)
        if command[:1] == ["gunicorn"]:
            assert command[-1] == "kaptools:create_app()"


def test_the_image_copies_what_exists():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (\S+)", dockerfile, re.M):
        assert (ROOT / source).exists(), source
    assert compose()["x-kaptools"]["build"]["dockerfile"] == "kaptools/deploy/Dockerfile"
    assert (DEPLOY / compose()["x-kaptools"]["build"]["context"]).resolve() == ROOT


def test_a_shared_secret_key_file_is_read_and_an_empty_one_refused(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("shared-key-for-every-host\n")
    app = create_app({"TESTING": True, "DATABASE_URL": "sqlite://",
                      "INSTANCE_PATH": str(tmp_path / "instance"),
                      "SECRET_KEY_FILE": str(key_file)})
    assert app.config["SECRET_KEY"] == "shared-key-for-every-host"
    assert not (tmp_path / "instance" / "secret_key").exists()
    key_file.write_text("\n")
    try:
        create_app({"TESTING": True, "DATABASE_URL": "sqlite://",
                    "INSTANCE_PATH": str(tmp_path / "instance"),
                    "SECRET_KEY_FILE": str(key_file)})
    except RuntimeError as exc:
        assert "empty" in str(exc)
    else:
        raise AssertionError("an empty secret key file was accepted")
