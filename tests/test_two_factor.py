"""Two-factor sign-in: enrolment, codes from the app, recovery codes, the per-role
requirement, and a throttle shared with passwords."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select

from kaptools.extensions import db
from kaptools.models import AuditEvent, User
from tests import factories
from tests.conftest import Browser


@pytest.fixture
def people(app):
    with app.app_context():
        factories.user("maya")
        factories.user("ada", role="admin")


def secret_on(page: str) -> str:
    return re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', page).group(1).replace(" ", "")


def recovery_codes_on(page: str) -> list[str]:
    return re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", page)


def code_after(secret: str, steps: int = 0) -> str:
    """The app's code ``steps`` time steps from now (a later code, never a replayed one)."""
    totp = pyotp.TOTP(secret)
    from kaptools.timeutil import utcnow

    return totp.at(utcnow() + timedelta(seconds=steps * totp.interval))


def enrolled(app) -> tuple[Browser, str, list[str]]:
    """Maya, signed in, turns two-factor sign-in on; her secret and recovery codes."""
    maya = Browser(app.test_client())
    maya.login("maya", factories.PASSWORD)
    page = maya.get("/account/two-factor").get_data(as_text=True)
    assert 'alt="QR code that adds kaptools to an authenticator app"' in page
    assert "data:image/svg+xml" in page
    secret = secret_on(page)
    wrong = maya.post("/account/two-factor", {"code": "000000" if code_after(secret) != "000000"
                                              else "111111"})
    assert "That code does not match" in wrong.get_data(as_text=True)
    done = maya.post("/account/two-factor", {"code": code_after(secret)})
    codes = recovery_codes_on(done.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    return maya, secret, codes


def password_step(app) -> tuple[Browser, str]:
    b = Browser(app.test_client())
    first = b.login("maya", factories.PASSWORD)
    return b, first.get_data(as_text=True)


def test_enrolment_then_sign_in_with_a_code(app, people):
    maya, secret, _ = enrolled(app)
    with app.app_context():
        stored = db.session.scalar(select(User).where(User.username == "maya"))
        assert stored.totp_secret == secret and stored.totp_enrolled_at is not None
        actions = db.session.scalars(select(AuditEvent.action)).all()
        assert "two_factor.enrolled" in actions
    maya.logout()
    b, page = password_step(app)
    # The password alone opens nothing.
    assert "One more step" in page
    assert b.get("/").status_code == 302
    wrong = b.post("/login/code", {"code": "12345"})
    assert "not right" in wrong.get_data(as_text=True)
    assert b.post("/login/code", {"code": code_after(secret, 1)}).status_code == 302
    assert "Good to see you" in b.get("/").get_data(as_text=True)
    with app.app_context():
        login = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "login")
                                   .order_by(AuditEvent.id.desc())).first()
        assert login.detail == {"second_factor": "totp"}


def test_a_code_is_accepted_once(app, people):
    maya, secret, _ = enrolled(app)
    maya.logout()
    code = code_after(secret, 1)
    b, _ = password_step(app)
    assert b.post("/login/code", {"code": code}).status_code == 302
    again, _ = password_step(app)
    replay = again.post("/login/code", {"code": code})
    assert "used already" in replay.get_data(as_text=True)
    assert again.get("/").status_code == 302


def test_a_recovery_code_signs_in_once(app, people):
    maya, _, codes = enrolled(app)
    maya.logout()
    b, _ = password_step(app)
    used = b.post("/login/code", {"code": codes[3].upper()}, follow_redirects=True)
    assert "9 are left" in used.get_data(as_text=True)
    again, _ = password_step(app)
    assert "used already" in again.post("/login/code", {"code": codes[3]}) \
        .get_data(as_text=True)


def test_wrong_codes_are_throttled_like_wrong_passwords(app, people):
    maya, secret, _ = enrolled(app)
    maya.logout()
    b, _ = password_step(app)
    for _ in range(2):
        b.login("maya", "a wrong password")
    b, _ = password_step(app)
    for _ in range(3):  # two wrong passwords and three wrong codes: five failures
        assert b.post("/login/code", {"code": "99999x"}).status_code == 200
    blocked = b.post("/login/code", {"code": code_after(secret, 1)})
    assert blocked.status_code == 429
    assert "Too many failed attempts" in blocked.get_data(as_text=True)
    assert b.get("/").status_code == 302
    # The password step is blocked too, and the pending step is gone.
    assert b.login("maya", factories.PASSWORD).status_code == 429
    assert b.post("/login/code", {"code": code_after(secret, 1)}).status_code == 302
    assert b.get("/").status_code == 302
    with app.app_context():
        actions = db.session.scalars(select(AuditEvent.action)).all()
        assert actions.count("login.failed") == 5 and "login.throttled" in actions


def test_the_code_step_must_follow_the_password(app, people, monkeypatch):
    maya, secret, _ = enrolled(app)
    maya.logout()
    direct = Browser(app.test_client())
    direct.get("/login")
    assert direct.post("/login/code", {"code": code_after(secret)}).location == "/login"
    b, _ = password_step(app)
    from kaptools import timeutil
    from kaptools.views import auth as auth_views

    later = timeutil.utcnow() + timedelta(minutes=6)
    monkeypatch.setattr(auth_views, "utcnow", lambda: later)
    late = b.post("/login/code", {"code": code_after(secret, 1)}, follow_redirects=True)
    assert "within 5 minutes" in late.get_data(as_text=True)
    assert b.get("/").status_code == 302


def test_a_role_that_requires_it_enrols_before_any_page(app, people):
    maya = Browser(app.test_client())
    maya.login("maya", factories.PASSWORD)
    assert maya.get("/").status_code == 200
    ada = Browser(app.test_client())
    ada.login("ada", factories.PASSWORD)
    ada.get("/admin/two-factor")
    saved = ada.post("/admin/two-factor", {"therapist": "y"}, follow_redirects=True)
    assert "1 account without it was signed out" in saved.get_data(as_text=True)
    # Maya's open login ended; at her next sign-in she enrols first.
    assert maya.get("/").status_code == 302
    b = Browser(app.test_client())
    first = b.login("maya", factories.PASSWORD)
    assert first.status_code == 302 and first.location.endswith("/login/enrol")
    page = b.get("/login/enrol").get_data(as_text=True)
    assert "Your clinic asks everyone in your role" in page
    assert b.get("/").status_code == 302
    secret = secret_on(page)
    done = b.post("/login/enrol", {"code": code_after(secret)})
    assert len(recovery_codes_on(done.get_data(as_text=True))) == 10
    assert b.get("/").status_code == 200
    # Required: it cannot be turned off by the user; an administrator can reset it.
    settings = b.get("/account/two-factor").get_data(as_text=True)
    assert "cannot be turned off here" in settings
    with app.app_context():
        maya_id = db.session.scalar(select(User.id).where(User.username == "maya"))
    assert b.post("/account/two-factor", {"action": "off", "off-password": factories.PASSWORD}) \
        .status_code == 403
    ada.get("/admin/two-factor")
    ada.post(f"/admin/users/{maya_id}/two-factor/reset")
    assert b.get("/").status_code == 302
    with app.app_context():
        assert db.session.get(User, maya_id).totp_secret is None
        assert "two_factor.removed" in db.session.scalars(select(AuditEvent.action)).all()


def test_a_user_turns_it_off_with_the_password(app, people):
    maya, _, _ = enrolled(app)
    page = maya.get("/account/two-factor").get_data(as_text=True)
    assert "10 recovery codes left" in page
    wrong = maya.post("/account/two-factor", {"action": "off", "off-password": "not it at all"})
    assert "This is not your password" in wrong.get_data(as_text=True)
    off = maya.post("/account/two-factor", {"action": "off", "off-password": factories.PASSWORD})
    assert off.location.endswith("/login")
    b = Browser(app.test_client())
    assert b.login("maya", factories.PASSWORD).status_code == 302
    assert b.get("/").status_code == 200
