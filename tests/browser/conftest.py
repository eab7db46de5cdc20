"""Browser tests: a live kaptools server driven by Debian's Chromium through Playwright."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def shot(page, name: str, width: int = 768) -> Path:
    """Write a full-page screenshot as a test artifact."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": width, "height": 1024})
    path = ARTIFACTS / f"{name}-{width}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(base + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")


def confirm(page) -> None:
    """Accept the dialog an irreversible action opens (static/js/confirm.js)."""
    page.locator("dialog.confirm-dialog[open] [data-confirm-yes]").click()


@pytest.fixture
def supervised(app):
    """Maya (therapist) with a client, a course and a draft; Ruth supervises her."""
    from kaptools.timeutil import today
    from tests import factories

    with app.app_context():
        maya = factories.user("maya")
        ruth = factories.user("ruth", role="supervisor")
        ids = factories.client_with_course(maya)
        factories.supervise(ruth, maya, starts=today() - timedelta(days=30))
        return ids
