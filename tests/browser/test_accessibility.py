"""axe-core finds no serious or critical problems on the therapist's main pages."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from kaptools import notes
from kaptools.extensions import db
from kaptools.models import Note, User
from tests import factories
from tests.browser.conftest import shot, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def seeded(app):
    with app.app_context():
        maya = factories.user("maya")
        ids = factories.client_with_course(maya)
        from kaptools.modality import get_registry

        gad = get_registry().latest("gad-7")
        therapy_session = db.session.get(Note, ids["note"]).session
        author = db.session.get(User, maya.id)
        signed = notes.create_note(therapy_session, author, gad, dict(gad.sample))
        notes.sign(signed, author)
        db.session.commit()
        return {**ids, "signed": signed.id}


def serious(results) -> list[str]:
    return [f"{v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(n["target"][0] for n in v["nodes"][:3])
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("width", [768, 390])
def test_main_pages_have_no_serious_accessibility_violations(app, live_server, page, seeded,
                                                               width):
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, live_server, "maya", factories.PASSWORD)
    axe = Axe()
    pages = {
        "dashboard": "/",
        "client": f"/clients/{seeded['client']}",
        "session": f"/sessions/{seeded['integration']}",
        "editor": f"/notes/{seeded['note']}",
        "signed-note": f"/notes/{seeded['signed']}",
        "new-note": f"/sessions/{seeded['integration']}/notes/new",
    }
    problems = {}
    for name, path in pages.items():
        page.goto(live_server + path)
        found = serious(axe.run(page))
        if found:
            problems[name] = found
        if width == 390:
            shot(page, f"a11y-{name}", width=390)
    assert problems == {}
