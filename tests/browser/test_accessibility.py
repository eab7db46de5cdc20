"""axe-core (every WCAG 2.2 A and AA rule) finds nothing, of any impact, on every page a
therapist, a supervisor and an administrator can reach, in the light theme and in the dark
one that follows the system setting (issue 13: dosing rooms are dim)."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests import factories
from tests.browser.conftest import ARTIFACTS, pages_for, shot, sign_in

pytestmark = pytest.mark.browser

WCAG_22_AA = {"runOnly": {"type": "tag",
                          "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]},
              "resultTypes": ["violations"]}
THEMES = ("light", "dark")
# Dark-theme screenshots worth looking at (saved under tests/artifacts/dark-*.png).
DARK_SHOTS = {"dashboard", "client", "editor emdr-target-set", "review (round 2)"}


def violations(results) -> list[str]:
    return [f"{v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(" ".join(n["target"]) for n in v["nodes"][:4])
            for v in results.response["violations"]]


def report(problems: dict[str, list[str]]) -> str:
    return "\n".join(f"{where}:\n  " + "\n  ".join(found) for where, found in problems.items())


def check(axe, page, name: str, problems: dict) -> None:
    """Run axe on the page as it is, in each theme. The viewport is made as tall as the page
    first (same width): the editor's save bar is sticky, and axe judges what scrolls under
    it by where this one scroll position leaves it (a checkbox half under a button fails
    target-size; text under the bar is left "incomplete" for contrast, i.e. unchecked)."""
    size = page.viewport_size
    height = page.evaluate("() => document.documentElement.scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    try:
        for theme in THEMES:
            page.emulate_media(color_scheme=theme)
            found = violations(axe.run(page, options=WCAG_22_AA))
            if found:
                problems[f"{name} ({theme})"] = found
    finally:
        page.set_viewport_size(size)


def test_every_page_passes_axe_in_both_themes(app, live_server, chromium, every_page):
    world = every_page
    axe = Axe()
    ARTIFACTS.mkdir(exist_ok=True)
    problems: dict[str, list[str]] = {}
    for who, batch in pages_for(world).items():
        context = chromium.new_context(viewport={"width": 820, "height": 1180})
        page = context.new_page()
        page.set_default_timeout(15000)
        if who:
            page.goto(live_server + "/login")
            page.fill("#username", who)
            page.fill("#password", factories.PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state()
        for name, path in batch.items():
            response = page.goto(live_server + path)
            expected = 404 if name == "not found" else 200
            assert response.status == expected, (name, path, response.status)
            check(axe, page, name, problems)
            if name in DARK_SHOTS:
                page.emulate_media(color_scheme="dark")
                page.screenshot(path=str(ARTIFACTS / f"dark-{name.replace(' ', '-')}.png"),
                                full_page=True)
            if name == "editor kap-dosing":
                # The dialog an irreversible action opens first (static/js/confirm.js).
                page.locator("button:has-text('Save and sign')").click()
                page.wait_for_selector("dialog.confirm-dialog[open]")
                check(axe, page, "sign dialog", problems)
                page.keyboard.press("Escape")
        context.close()
    assert problems == {}, report(problems)


@pytest.mark.parametrize("width", [768, 390])
def test_main_pages_pass_axe_on_a_tablet_and_a_phone(live_server, page, every_page, width):
    world = every_page
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, live_server, "maya", factories.PASSWORD)
    axe = Axe()
    pages = {
        "dashboard": "/",
        "client": f"/clients/{world['client']}",
        "session": f"/sessions/{world['integration']}",
        "editor": f"/notes/{world['note']}",
        "emdr editor": f"/notes/{world['drafts']['emdr-target-set']}",
        "signed-note": f"/notes/{world['gad']}",
        "new-note": f"/sessions/{world['integration']}/notes/new",
    }
    problems: dict[str, list[str]] = {}
    for name, path in pages.items():
        page.goto(live_server + path)
        check(axe, page, name, problems)
        if width == 390:
            page.emulate_media(color_scheme="light")
            shot(page, f"a11y-{name}", width=390)
    assert problems == {}, report(problems)

