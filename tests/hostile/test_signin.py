"""Sign-in cannot be used to find accounts or to lock a therapist out."""

from __future__ import annotations

import argon2.low_level
import pytest

from tests import factories
from tests.conftest import Browser


@pytest.fixture
def argon2_calls(monkeypatch):
    """Count the argon2 computations a request makes (the real ones still run)."""
    calls = {"n": 0}
    for name in ("hash_secret", "verify_secret"):
        real = getattr(argon2.low_level, name)

        def counted(*args, _real=real, **kwargs):
            calls["n"] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(argon2.low_level, name, counted)
        import argon2._password_hasher as ph

        monkeypatch.setattr(ph, name, counted, raising=False)
    return calls


def test_an_unknown_username_costs_the_same_as_a_wrong_password(app, world, argon2_calls):
    browser = Browser(app.test_client())
    browser.get("/login")
    # The process's first attempt also makes the decoy hash unknown names are checked
    # against, whatever name it is for; after that every attempt costs the same.
    browser.post("/login", {"username": "warm-up", "password": "not the password"})
    work = {}
    for username in ("maya", "nobody-here", "maya", "someone-else"):
        argon2_calls["n"] = 0
        resp = browser.post("/login", {"username": username, "password": "not the password"})
        assert resp.status_code == 200
        work.setdefault(username == "maya", []).append(argon2_calls["n"])
    assert set(work[True]) == set(work[False]) == {1}, work


def test_an_inactive_account_costs_the_same_as_a_wrong_password(app, world, argon2_calls):
    with app.app_context():
        factories.user("gone", active=False)
    browser = Browser(app.test_client())
    browser.get("/login")
    browser.post("/login", {"username": "maya", "password": "warm-up"})
    argon2_calls["n"] = 0
    browser.post("/login", {"username": "gone", "password": factories.PASSWORD})
    assert argon2_calls["n"] == 1


def test_someone_elses_failures_cannot_lock_a_therapist_out(app, world):
    attacker = Browser(app.test_client())
    attacker.client.environ_base["REMOTE_ADDR"] = "203.0.113.66"
    for _ in range(12):
        attacker.login("maya", "a wrong guess")
    # The attacker is slowed down...
    assert attacker.login("maya", factories.PASSWORD).status_code == 429
    # ...but Maya, at the clinic, signs in as usual.
    at_clinic = Browser(app.test_client())
    at_clinic.client.environ_base["REMOTE_ADDR"] = "192.0.2.10"
    resp = at_clinic.login("maya", factories.PASSWORD)
    assert resp.status_code == 302, resp.status_code


def test_guesses_spread_over_many_addresses_do_not_lock_out_a_known_device(app, world):
    home = Browser(app.test_client())
    home.client.environ_base["REMOTE_ADDR"] = "192.0.2.10"
    assert home.login("maya", factories.PASSWORD).status_code == 302
    home.logout()
    for i in range(60):
        botnet = Browser(app.test_client())
        botnet.client.environ_base["REMOTE_ADDR"] = f"198.51.100.{i + 1}"
        botnet.login("maya", f"guess number {i}")
    again = Browser(app.test_client())
    again.client.environ_base["REMOTE_ADDR"] = "192.0.2.10"
    assert again.login("maya", factories.PASSWORD).status_code == 302


@pytest.mark.parametrize("code", ["١٢٣٤٥٦", "12345\x00", "x" * 5000, "' OR 1=1 --", "",
                                  "000 000 000 000", "aaaaa-aaaaa", "\u202e123456"])
def test_odd_second_step_codes_get_a_message_not_a_crash(app, world, argon2_calls, code):
    from tests.test_two_factor import enrolled

    maya, _, _ = enrolled(app)
    maya.logout()
    b = Browser(app.test_client())
    b.login("maya", factories.PASSWORD)
    argon2_calls["n"] = 0
    answer = b.post("/login/code", {"code": code})
    assert answer.status_code in (200, 422)
    assert "One more step" in answer.get_data(as_text=True)
    assert b.get("/").status_code == 302  # still signed out
    # At most the ten recovery codes are tried, and only for a code shaped like one.
    assert argon2_calls["n"] <= 10
