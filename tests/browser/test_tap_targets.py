"""Tap targets on a tablet (issue 13): at 820 px every control on every page is at least
44 × 44 px. A link inside running text is part of its sentence and is left as text (WCAG
2.5.8's inline exception); so is a link inside a printed document's own pages."""

from __future__ import annotations

import pytest

from tests import factories
from tests.browser.conftest import pages_for, sign_in

pytestmark = pytest.mark.browser

SMALL_TARGETS = """() => {
  const inText = (el) => {
    if (el.tagName !== 'A') { return false; }
    const block = el.parentElement.closest('p, li, td, th, dd, h1, h2, h3');
    return block !== null && block.textContent.trim().length > el.textContent.trim().length + 3;
  };
  // A document's own pages (the print preview) are paper: only its screen bar is checked.
  const paper = document.querySelector('link[href$="print.css"]') !== null;
  return [...document.querySelectorAll(
      'a[href], button, summary, select, textarea, input:not([type=hidden])')]
    .filter((el) => {
      const style = getComputedStyle(el);
      const box = el.getBoundingClientRect();
      return box.width > 0 && box.height > 0 && style.visibility !== 'hidden'
        && !el.closest('dialog:not([open])') && !(paper && !el.closest('.screen-only'))
        && !(el.classList.contains('skip-link') && box.left < 0);
    })
    .filter((el) => !inText(el))
    .map((el) => {
      const target = (el.type === 'radio' || el.type === 'checkbox') && el.closest('label')
        ? el.closest('label') : el;
      const box = target.getBoundingClientRect();
      return [el.tagName, (el.textContent || el.name || '').trim().slice(0, 40),
              Math.round(box.width), Math.round(box.height)];
    })
    .filter(([, , w, h]) => w < 44 || h < 44);
}"""


def test_every_control_is_at_least_44_px_on_a_tablet(app, live_server, chromium, every_page):
    """Every page of ``pages_for``: each role's, the print previews and the error page."""
    small = {}
    visited = 0
    for who, batch in pages_for(every_page).items():
        page = chromium.new_context(viewport={"width": 820, "height": 1180}).new_page()
        if who:
            sign_in(page, live_server, who, factories.PASSWORD,
                    lands_on="/admin/users" if who == "ada" else "/")
        for name, path in batch.items():
            response = page.goto(live_server + path)
            assert response.status == (404 if name == "not found" else 200), (name, path)
            visited += 1
            found = page.evaluate(SMALL_TARGETS)
            if found:
                small[name] = found
        page.context.close()
    assert visited >= 60
    assert small == {}
