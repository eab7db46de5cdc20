"""Scoped access: a foreign id answers exactly like a missing one, on every route."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from kaptools.extensions import db
from kaptools.models import Client
from kaptools.timeutil import today
from tests import factories

# Every URL parameter that names a clinical object, and the fixture id it takes.
ID_PARAMS = {
    "client_id": "client",
    "course_id": "course",
    "session_id": "integration",
    "note_id": "note",
    "job_id": "job",  # a render job: its requester's alone
}


def clinical_routes(app):
    """(rule, methods) for every route that takes a clinical object's id."""
    found = []
    for rule in app.url_map.iter_rules():
        params = set(rule.arguments)
        if params and params <= set(ID_PARAMS) | {"kind"} and params & set(ID_PARAMS):
            methods = sorted(m for m in rule.methods if m in ("GET", "POST"))
            found.append((rule, methods))
    assert len(found) >= 8, "expected the client/course/session routes"
    return found


def url_for_rule(rule, ids: dict[str, int]) -> str:
    values = {name: ids[ID_PARAMS[name]] for name in rule.arguments if name in ID_PARAMS}
    if "kind" in rule.arguments:
        values["kind"] = "summary"
    return rule.build(values)[1]


@pytest.fixture
def world(app):
    with app.app_context():
        maya = factories.user("maya")
        tomas = factories.user("tomas")
        ruth = factories.user("ruth", role="supervisor")
        admin = factories.user("admin", role="admin")
        ids = factories.client_with_course(maya)
        from kaptools.models import RenderJob

        job = RenderJob(user_id=maya.id, kind="summary", course_id=ids["course"],
                        doc_key="0" * 64, status="queued", progress=0, stage="", message="")
        db.session.add(job)
        db.session.commit()
        ids["job"] = job.id
        return {"maya": maya.id, "tomas": tomas.id, "ruth": ruth.id, "admin": admin.id,
                "ids": ids}


def assert_404_everywhere(app, browser, ids):
    for rule, methods in clinical_routes(app):
        url = url_for_rule(rule, ids)
        if "GET" in methods:
            assert browser.get(url).status_code == 404, f"GET {url}"
        if "POST" in methods:
            resp = browser.post(url, {"code": "STOLEN", "title": "x"})
            assert resp.status_code == 404, f"POST {url}"


def test_owner_reaches_every_route(app, browser, world):
    browser.login("maya", factories.PASSWORD)
    for rule, methods in clinical_routes(app):
        if "GET" in methods:
            url = url_for_rule(rule, world["ids"])
            # A PDF is rendered, or its render followed, after a redirect.
            allowed = (200, 302) if "job_id" in rule.arguments or url.endswith(".pdf") else (200,)
            assert browser.get(url).status_code in allowed, url


def test_second_therapist_gets_404_everywhere(app, browser, world):
    browser.login("tomas", factories.PASSWORD)
    assert_404_everywhere(app, browser, world["ids"])
    with app.app_context():
        assert db.session.get(Client, world["ids"]["client"]).code == "KT-0001"


def test_foreign_id_and_missing_id_look_the_same(app, browser, world):
    browser.login("tomas", factories.PASSWORD)
    foreign = browser.get(f"/clients/{world['ids']['client']}")
    missing = browser.get("/clients/999999")
    assert foreign.status_code == missing.status_code == 404
    # Identical apart from the signed CSRF token, which carries a timestamp.
    strip = lambda r: re.sub(r'value="[^"]+"', "", r.get_data(as_text=True))  # noqa: E731
    assert strip(foreign) == strip(missing)


def test_foreign_clients_are_not_listed(app, browser, world):
    browser.login("tomas", factories.PASSWORD)
    assert "KT-0001" not in browser.get("/clients").get_data(as_text=True)
    assert "KT-0001" not in browser.get("/").get_data(as_text=True)


def test_denials_are_audited(app, browser, world):
    from sqlalchemy import select

    from kaptools.models import AuditEvent

    browser.login("tomas", factories.PASSWORD)
    browser.get(f"/clients/{world['ids']['client']}")
    with app.app_context():
        denied = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "access.denied")).all()
    assert denied and denied[-1].username == "tomas"


def test_admin_sees_no_clinical_content(app, browser, world):
    browser.login("admin", factories.PASSWORD)
    assert_404_everywhere(app, browser, world["ids"])


def test_supervisor_without_relationship_gets_404(app, browser, world):
    browser.login("ruth", factories.PASSWORD)
    assert_404_everywhere(app, browser, world["ids"])


def test_supervisor_with_ended_relationship_gets_404(app, browser, world):
    with app.app_context():
        from kaptools.models import User

        factories.supervise(db.session.get(User, world["ruth"]),
                            db.session.get(User, world["maya"]),
                            starts=today() - timedelta(days=60), ends=today() - timedelta(days=1))
    browser.login("ruth", factories.PASSWORD)
    assert_404_everywhere(app, browser, world["ids"])


def test_current_supervisor_reads_but_cannot_change(app, browser, world):
    with app.app_context():
        from kaptools.models import User

        factories.supervise(db.session.get(User, world["ruth"]),
                            db.session.get(User, world["maya"]),
                            starts=today() - timedelta(days=60))
    browser.login("ruth", factories.PASSWORD)
    ids = world["ids"]
    assert browser.get(f"/clients/{ids['client']}").status_code == 200
    assert browser.get(f"/courses/{ids['course']}").status_code == 200
    assert browser.get(f"/sessions/{ids['integration']}").status_code == 200
    assert browser.get(f"/clients/{ids['client']}/edit").status_code == 403
    resp = browser.post(f"/clients/{ids['client']}/edit", {"code": "CHANGED"})
    assert resp.status_code == 403
    assert browser.post(f"/courses/{ids['course']}/sessions/new",
                        {"kind": "dosing", "session_date": "2026-11-20"}).status_code == 403
    with app.app_context():
        assert db.session.get(Client, ids["client"]).code == "KT-0001"


def test_owner_cannot_be_reassigned_through_the_form(app, browser, world):
    browser.login("maya", factories.PASSWORD)
    browser.get("/clients/new")
    browser.post("/clients/new", {"code": "KT-0002", "therapist_id": world["tomas"]})
    with app.app_context():
        from sqlalchemy import select

        created = db.session.scalar(select(Client).where(Client.code == "KT-0002"))
        assert created.therapist_id == world["maya"]


def test_integration_cannot_follow_another_therapists_dosing(app, browser, world):
    with app.app_context():
        from kaptools.models import User

        other = factories.client_with_course(db.session.get(User, world["tomas"]), code="KT-9")
    browser.login("maya", factories.PASSWORD)
    url = f"/courses/{world['ids']['course']}/sessions/new"
    browser.get(url)
    resp = browser.post(url, {"kind": "integration", "session_date": "2026-11-20",
                              "follows_id": other["dosing"]})
    assert resp.status_code == 200
    assert "Not a valid choice" in resp.get_data(as_text=True)
