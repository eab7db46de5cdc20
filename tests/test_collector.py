"""A web process moves what it keeps out of the garbage collector's way once it is warm
(kaptools/collector.py, issue 10)."""

from __future__ import annotations

import gc

import pytest

from kaptools import collector, create_app


@pytest.fixture
def fresh_collector():
    collector.forget()
    yield
    collector.forget()


def test_a_web_process_freezes_what_it_holds_after_its_first_requests(app_factory,
                                                                       fresh_collector):
    app = app_factory(GC_FREEZE_AFTER_REQUESTS=3)
    client = app.test_client()
    for _ in range(2):
        assert client.get("/login").status_code == 200
    assert gc.get_freeze_count() == 0
    assert client.get("/login").status_code == 200
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # the modules, the app, its compiled templates...
    assert client.get("/login").status_code == 200
    # Once per process, not every few requests (what is frozen and then freed leaves).
    assert gc.get_freeze_count() <= frozen


def test_cycles_made_after_the_freeze_are_still_collected(fresh_collector):
    assert collector.freeze_after(1)

    class Node:
        pass

    def make_cycle():
        a, b = Node(), Node()
        a.other, b.other = b, a

    for _ in range(100):
        make_cycle()
    assert gc.collect() >= 200


def test_tests_never_freeze_unless_asked_and_servers_do(tmp_path):
    testing = create_app({"TESTING": True, "INSTANCE_PATH": str(tmp_path / "a"),
                          "SECRET_KEY": "x"})
    assert testing.config["GC_FREEZE_AFTER_REQUESTS"] == 0
    serving = create_app({"INSTANCE_PATH": str(tmp_path / "b"), "SECRET_KEY": "x"})
    assert serving.config["GC_FREEZE_AFTER_REQUESTS"] == 200
