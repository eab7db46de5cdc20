"""Signing in and out: hashing, throttling, server-side sessions, timeouts, redirects."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from kaptools.extensions import db
from kaptools.models import AuditEvent, AuthSession, User
from kaptools.timeutil import utcnow
from tests import factories


@pytest.fixture
def maya(app):
    with app.app_context():
        return factories.user("maya").id


def test_stored_password_hashes_are_argon2id(app, maya):
    with app.app_context():
        stored = db.session.get(User, maya).password_hash
    assert stored.startswith("$argon2id$v=19$")
    assert factories.PASSWORD not in stored


def test_sign_in_lands_on_dashboard_and_records_the_login(app, browser, maya):
    resp = browser.login("maya", factories.PASSWORD)
    assert resp.status_code == 302 and resp.headers["Location"] == "/"
    assert "Good to see you" in browser.get("/").get_data(as_text=True)
    with app.app_context():
        actions = db.session.scalars(select(AuditEvent.action)).all()
    assert "login" in actions


def test_wrong_password_and_unknown_user_get_the_same_message(browser, maya):
    wrong = browser.login("maya", "not the password").get_data(as_text=True)
    unknown = browser.login("nobody", "not the password").get_data(as_text=True)
    message = "That username and password do not match an active account."
    assert message in wrong and message in unknown


def test_repeated_failures_for_one_account_are_throttled(app, browser, maya):
    for _ in range(5):
        assert browser.login("maya", "wrong password!").status_code == 200
    resp = browser.login("maya", factories.PASSWORD)
    assert resp.status_code == 429
    assert "Too many failed attempts" in resp.get_data(as_text=True)
    # The right password does not get through while throttled.
    assert browser.get("/").status_code == 302


def test_failures_from_one_address_across_accounts_are_throttled(app, make_browser, maya):
    b = make_browser()
    for i in range(20):
        b.login(f"guess{i}", "wrong password!")
    assert b.login("maya", factories.PASSWORD).status_code == 429


def test_throttle_lifts_after_the_window(app, browser, maya):
    for _ in range(5):
        browser.login("maya", "wrong password!")
    assert browser.login("maya", factories.PASSWORD).status_code == 429
    # The audit log cannot be back-dated, so shrink the window instead: every failure
    # now lies outside it.
    app.config["LOGIN_FAILURE_WINDOW_MINUTES"] = 0
    assert browser.login("maya", factories.PASSWORD).status_code == 302


def test_cookie_replayed_after_logout_is_rejected(app, browser, maya):
    browser.login("maya", factories.PASSWORD)
    copied = browser.client.get_cookie("kaptools_session").value
    assert browser.get("/clients").status_code == 200
    browser.logout()
    thief = app.test_client()
    thief.set_cookie("kaptools_session", copied)
    resp = thief.get("/clients")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")


def test_password_change_ends_other_logins(app, make_browser, maya):
    laptop, tablet = make_browser(), make_browser()
    laptop.login("maya", factories.PASSWORD)
    tablet.login("maya", factories.PASSWORD)
    laptop.get("/account/password")
    resp = laptop.post("/account/password", {"current": factories.PASSWORD,
                                              "new": "a brand new passphrase",
                                              "confirm": "a brand new passphrase"})
    assert resp.status_code == 302
    assert laptop.get("/clients").status_code == 200
    assert tablet.get("/clients").status_code == 302


def test_deactivation_ends_existing_logins(app, browser, maya):
    browser.login("maya", factories.PASSWORD)
    with app.app_context():
        db.session.get(User, maya).active = False
        db.session.commit()
    assert browser.get("/clients").status_code == 302
    assert browser.login("maya", factories.PASSWORD).status_code == 200


def _age_logins(app, **ago: timedelta) -> None:
    """Set every login's timestamps that long ago (``last_seen_at=``, ``created_at=``)."""
    with app.app_context():
        for auth in db.session.scalars(select(AuthSession)):
            for column, by in ago.items():
                setattr(auth, column, utcnow() - by)
        db.session.commit()


def test_idle_timeout_signs_out_and_says_why(app, browser, maya):
    browser.login("maya", factories.PASSWORD)
    _age_logins(app, last_seen_at=timedelta(minutes=31))
    resp = browser.get("/clients")
    assert resp.status_code == 302
    page = browser.get(resp.headers["Location"]).get_data(as_text=True)
    assert "period of inactivity" in page


def test_an_expired_login_is_deleted_and_its_end_audited(app, browser, maya):
    browser.login("maya", factories.PASSWORD)
    _age_logins(app, last_seen_at=timedelta(minutes=31))
    assert browser.get("/clients").status_code == 302
    with app.app_context():
        assert db.session.scalars(select(AuthSession)).all() == []
        ended = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "session.expired")).all()
        assert [(e.username, e.object_type) for e in ended] == [("maya", "user_account")]


def test_a_request_refreshes_the_idle_timer_at_most_every_half_minute(app, browser, maya):
    browser.login("maya", factories.PASSWORD)

    def last_seen():
        with app.app_context():
            return db.session.scalars(select(AuthSession.last_seen_at)).one()

    _age_logins(app, last_seen_at=timedelta(minutes=10))
    stale = last_seen()
    assert browser.get("/clients").status_code == 200
    refreshed = last_seen()
    assert refreshed - stale >= timedelta(minutes=9)
    assert utcnow() - refreshed < timedelta(minutes=1)
    assert browser.get("/clients").status_code == 200
    assert last_seen() == refreshed  # within half a minute: not written again


def test_absolute_timeout_applies_even_when_active(app, browser, maya):
    browser.login("maya", factories.PASSWORD)
    _age_logins(app, created_at=timedelta(hours=13))
    assert browser.get("/clients").status_code == 302


@pytest.mark.parametrize("target", [
    "//evil.example", "https://evil.example", "http://evil.example/x", "/\\evil.example",
    "javascript:alert(1)", "evil.example", "///evil.example",
])
def test_next_accepts_only_relative_paths(browser, maya, target):
    resp = browser.login("maya", factories.PASSWORD, next_url=target)
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/"


def test_next_relative_path_is_followed(browser, maya):
    resp = browser.login("maya", factories.PASSWORD, next_url="/clients")
    assert resp.headers["Location"] == "/clients"


def test_post_without_csrf_token_is_refused(app, browser, maya):
    browser.login("maya", factories.PASSWORD)
    resp = browser.client.post("/clients/new", data={"code": "KT-9"})
    assert resp.status_code == 400
    assert "nothing was saved" in resp.get_data(as_text=True)
    resp = browser.client.post("/logout")
    assert resp.status_code == 400
    assert browser.get("/clients").status_code == 200


def test_logout_is_post_only(browser, maya):
    browser.login("maya", factories.PASSWORD)
    assert browser.client.get("/logout").status_code == 405
    assert browser.get("/clients").status_code == 200


def test_security_headers_on_clinical_pages(browser, maya):
    browser.login("maya", factories.PASSWORD)
    resp = browser.get("/clients")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["Cache-Control"] == "no-store"


def test_session_cookie_flags(browser, maya):
    browser.login("maya", factories.PASSWORD)
    cookie = browser.client.get_cookie("kaptools_session")
    assert cookie.http_only and cookie.same_site == "Lax"


def test_oversize_request_gets_a_friendly_page(browser, maya):
    browser.login("maya", factories.PASSWORD)
    resp = browser.post("/clients/new", {"code": "x" * (3 * 1024 * 1024)})
    assert resp.status_code == 413
    assert "larger than kaptools accepts" in resp.get_data(as_text=True)


def test_https_requests_get_a_secure_cookie_and_hsts(app, maya):
    client = app.test_client()
    page = client.get("/login", base_url="https://kaptools.example")
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    from tests.conftest import csrf_from

    resp = client.post("/login", base_url="https://kaptools.example",
                       data={"csrf_token": csrf_from(page.get_data(as_text=True)),
                             "username": "maya", "password": factories.PASSWORD})
    assert resp.status_code == 302
    assert "Secure" in resp.headers["Set-Cookie"]
    plain = app.test_client().get("/login")
    assert "Strict-Transport-Security" not in plain.headers
