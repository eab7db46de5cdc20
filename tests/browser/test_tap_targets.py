"""Tap targets on a tablet (issue 13): at 820 px every control on every page is at least
44 × 44 px. A link inside running text is part of its sentence and is left as text (WCAG
2.5.8's inline exception); so is a link inside a printed document's own pages."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kaptools import notes, reviews
from kaptools.extensions import db
from kaptools.models import Note, User
from kaptools.timeutil import today
from tests import factories

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


@pytest.fixture
def world(app):
    with app.app_context():
        maya = factories.user("maya")
        ruth = factories.user("ruth", role="supervisor")
        factories.user("ada", role="admin")
        ids = factories.client_with_course(maya)
        factories.supervise(ruth, maya, starts=today() - timedelta(days=30))
        from kaptools.modality import get_registry

        gad = get_registry().latest("gad-7")
        author = db.session.get(User, maya.id)
        therapy_session = db.session.get(Note, ids["note"]).session
        signed = notes.create_note(therapy_session, author, gad, dict(gad.sample))
        notes.sign(signed, author)
        review = reviews.submit_note(signed, author, ruth.id)
        db.session.commit()
        return {**ids, "signed": signed.id, "review": review.id}


def test_every_control_is_at_least_44_px_on_a_tablet(app, live_server, chromium, world):
    base = live_server
    pages = {
        "maya": {"dashboard": "/", "clients": "/clients", "client": f"/clients/{world['client']}",
                 "course": f"/courses/{world['course']}",
                 "session": f"/sessions/{world['integration']}",
                 "editor": f"/notes/{world['note']}", "signed note": f"/notes/{world['signed']}",
                 "new note": f"/sessions/{world['integration']}/notes/new",
                 "account": "/account/password",
                 "print preview": f"/courses/{world['course']}/documents/summary"},
        "ruth": {"supervisor dashboard": "/", "review queue": "/reviews",
                 "review": f"/reviews/{world['review']}"},
        "ada": {"accounts": "/admin/users", "supervision": "/admin/supervision",
                "templates": "/admin/templates", "audit": "/admin/audit"},
    }
    small = {}
    visited = 0
    for who, batch in pages.items():
        page = chromium.new_context(viewport={"width": 820, "height": 1180}).new_page()
        page.goto(base + "/login")
        page.fill("#username", who)
        page.fill("#password", factories.PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        for name, path in batch.items():
            response = page.goto(base + path)
            assert response.ok, (name, path, response.status)
            visited += 1
            found = page.evaluate(SMALL_TARGETS)
            if found:
                small[name] = found
        page.context.close()
    assert visited == 17
    assert small == {}
