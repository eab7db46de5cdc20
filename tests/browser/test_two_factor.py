"""Two-factor sign-in in the browser, at tablet width: enrol by the QR page, sign in with a
code from the app and with a recovery code; wrong codes are throttled like passwords."""

from __future__ import annotations

import pytest

from tests import factories
from tests.browser.conftest import shot
from tests.test_two_factor import code_after

pytestmark = pytest.mark.browser
TABLET = {"width": 820, "height": 1180}


def password(page, base: str) -> None:
    page.goto(base + "/login")
    page.fill("#username", "maya")
    page.fill("#password", factories.PASSWORD)
    page.click("button[type=submit]")
    page.get_by_role("heading", name="One more step").wait_for()


def code(page, value: str) -> None:
    page.fill("#code", value)
    page.get_by_role("button", name="Sign in").click()


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()


def test_enrol_then_sign_in_with_a_code_and_with_a_recovery_code(app, live_server, chromium):
    base = live_server
    with app.app_context():
        factories.user("maya")
    page = chromium.new_context(viewport=TABLET).new_page()
    page.goto(base + "/login")
    page.fill("#username", "maya")
    page.fill("#password", factories.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")

    # Enrol from the account page: the QR code, the key by hand, one code back.
    page.get_by_role("link", name="Maya").click()
    page.get_by_role("link", name="Set up two-factor sign-in").click()
    qr = page.get_by_role("img", name="QR code that adds kaptools to an authenticator app")
    assert qr.bounding_box()["width"] >= 150
    secret = page.inner_text("code.secret").replace(" ", "")
    shot(page, "two-factor-enrol", width=TABLET["width"])
    page.fill("#code", code_after(secret))
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    page.get_by_role("heading", name="Your recovery codes").wait_for()
    recovery = [c.strip() for c in page.locator(".recovery-codes code").all_inner_texts()]
    assert len(recovery) == 10
    shot(page, "two-factor-recovery-codes", width=TABLET["width"])
    page.get_by_role("link", name="I have kept them: continue").click()
    sign_out(page)

    # A code from the app.
    password(page, base)
    assert page.evaluate("document.activeElement.id") == "code"  # ready to type into
    shot(page, "two-factor-code", width=TABLET["width"])
    code(page, code_after(secret, 1))
    page.wait_for_url(base + "/")
    sign_out(page)

    # A recovery code, once.
    password(page, base)
    code(page, recovery[0])
    page.wait_for_url(base + "/")
    assert "9 are left" in page.inner_text(".flash")
    sign_out(page)

    # Wrong codes: the message sits by the field, and the fifth failure blocks even the
    # right code.
    password(page, base)
    current = {code_after(secret, step) for step in range(-1, 4)}
    wrong = next(c for c in ("000001", "000002", "000003", "000004", "000005", "000006")
                 if c not in current)
    for _ in range(5):
        code(page, wrong)
        assert "not right" in page.inner_text("#code-error")
        assert page.input_value("#code") == wrong  # what was typed stays
    code(page, code_after(secret, 2))
    assert "Too many failed attempts" in page.inner_text("main")
    assert page.url.endswith("/login/code")
