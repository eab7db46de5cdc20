"""Browser tests: a live kaptools server driven by Debian's Chromium through Playwright."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from kaptools import notes, reviews
from kaptools.extensions import db
from kaptools.modality import get_registry
from kaptools.models import Course, Note, TherapySession, User
from tests import factories

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def shot(page, name: str, width: int = 768) -> Path:
    """Write a full-page screenshot as a test artifact."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": width, "height": 1024})
    path = ARTIFACTS / f"{name}-{width}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, base: str, username: str, password: str, lands_on: str = "/") -> None:
    page.goto(base + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(base + lands_on)


def confirm(page) -> None:
    """Accept the dialog an irreversible action opens (static/js/confirm.js)."""
    page.locator("dialog.confirm-dialog[open] [data-confirm-yes]").click()


@pytest.fixture
def supervised(app):
    """Maya (therapist) with a client, a course and a draft; Ruth supervises her."""
    from kaptools.timeutil import today

    with app.app_context():
        maya = factories.user("maya")
        ruth = factories.user("ruth", role="supervisor")
        ids = factories.client_with_course(maya)
        factories.supervise(ruth, maya, starts=today() - timedelta(days=30))
        return ids


@pytest.fixture
def every_page(app, supervised):
    """Something on every page a therapist, a supervisor and an administrator can reach
    (``pages_for``): a screening and consent, outcome measures for the chart, a draft of
    every template, signed notes, reviews waiting, one returned with comments and one in
    its second round, and a course summary under review."""
    with app.app_context():
        factories.user("ada", role="admin")
        maya = db.session.scalar(db.select(User).where(User.username == "maya"))
        ruth = db.session.scalar(db.select(User).where(User.username == "ruth"))
        registry = get_registry()
        course = db.session.get(Course, supervised["course"])
        factories.screened_and_consented(course.id, maya)
        dosing = db.session.get(TherapySession, supervised["dosing"])
        integration = db.session.get(TherapySession, supervised["integration"])
        preparation = next(s for s in course.sessions if s.kind == "preparation")

        def signed(sess, slug, **changes):
            template = registry.latest(slug)
            note = notes.create_note(sess, maya, template, {**template.sample, **changes})
            notes.sign(note, maya)
            return note

        # Outcome measures before and after dosing: the client page's chart.
        signed(preparation, "gad-7")
        signed(preparation, "phq-9")
        gad = signed(integration, "gad-7", **{f"q{i}": 0 for i in range(1, 4)})
        # Item 9 endorsed: the client's open risk flag shows on their pages.
        signed(integration, "phq-9", q9=1, risk_follow_up="Screened; safety plan reviewed.")
        emdr = signed(integration, "emdr-target-set")
        ifs = signed(integration, "ifs-parts-map")
        dose = signed(dosing, "kap-dosing")
        drafts = {}
        for template in registry.current():
            sess = dosing if "dosing" in template.session_kinds[:1] else integration
            drafts[template.slug] = notes.create_note(sess, maya, template,
                                                      dict(template.sample)).id
        drafts["cbt-thought-record"] = supervised["note"]

        waiting = reviews.submit_note(gad, maya, ruth.id)
        # Returned with comments, then revised and sent again: a second round with changes.
        cbt = db.session.get(Note, supervised["note"])
        first = reviews.submit_note(cbt, maya, ruth.id)
        reviews.comment(first, ruth, "balanced_thought", "Use the client's own words here.")
        reviews.comment(first, ruth, None, "Clear and careful overall.")
        reviews.decide(first, ruth, "return")
        notes.save_answers(cbt, maya, {**cbt.answers, "balanced_thought": "In her words."},
                           notes.private_answers(cbt, maya), None)
        second = reviews.submit_note(cbt, maya, ruth.id)
        # Returned and not yet revised: the editor shows the comments beside the fields.
        plan = db.session.get(Note, drafts["safety-plan"])
        returned = reviews.submit_note(plan, maya, ruth.id)
        reviews.comment(returned, ruth, None, "Add a second person to call.")
        reviews.decide(returned, ruth, "return")
        summary = reviews.submit_course(course, maya, ruth.id)
        db.session.commit()
        return {**supervised, "drafts": drafts, "gad": gad.id, "emdr": emdr.id, "ifs": ifs.id,
                "dose": dose.id, "waiting": waiting.id, "second": second.id,
                "course_review": summary.id, "maya": maya.id}


def pages_for(w) -> dict[str | None, dict[str, str]]:
    course, client, integration = w["course"], w["client"], w["integration"]
    maya = {
        "dashboard": "/", "clients": "/clients", "new client": "/clients/new",
        "client": f"/clients/{client}", "client edit": f"/clients/{client}/edit",
        "export record": f"/clients/{client}/export",
        "new course": f"/clients/{client}/courses/new", "course": f"/courses/{course}",
        "course edit": f"/courses/{course}/edit",
        "new session": f"/courses/{course}/sessions/new",
        "session": f"/sessions/{integration}", "dosing session": f"/sessions/{w['dosing']}",
        "session edit": f"/sessions/{integration}/edit",
        "new note": f"/sessions/{integration}/notes/new",
        "new dosing note": f"/sessions/{w['dosing']}/notes/new",
        **{f"editor {slug}": f"/notes/{note}" for slug, note in w["drafts"].items()},
        "signed gad-7": f"/notes/{w['gad']}", "signed emdr": f"/notes/{w['emdr']}",
        "signed ifs": f"/notes/{w['ifs']}", "signed dosing": f"/notes/{w['dose']}",
        "sent reviews": "/reviews", "find": "/find", "find results": "/find?q=KT-0001",
        "account": "/account/password", "two-factor setup": "/account/two-factor",
        "summary preview": f"/courses/{course}/documents/summary",
        "packet preview": f"/courses/{course}/documents/packet",
        "handout sheets": f"/courses/{course}/handout-sheets",
        "session handout sheets": f"/sessions/{integration}/handout-sheets",
        "session handout preview": f"/sessions/{integration}/documents/handout",
        "not found": "/clients/999999",
    }
    ruth = {
        "supervisor dashboard": "/", "review queue": "/reviews",
        "review queue (all)": "/reviews?status=", "review": f"/reviews/{w['waiting']}",
        "review (round 2)": f"/reviews/{w['second']}",
        "course review": f"/reviews/{w['course_review']}",
        "supervisee client": f"/clients/{client}",
    }
    ada = {"accounts": "/admin/users", "new account": "/admin/users/new",
           "account edit": f"/admin/users/{w['maya']}/edit",
           "supervision admin": "/admin/supervision", "templates": "/admin/templates",
           "audit": "/admin/audit", "discarded": "/admin/discarded",
           "research export": "/admin/exports/research",
           "two-factor policy": "/admin/two-factor"}
    return {None: {"login": "/login"}, "maya": maya, "ruth": ruth, "ada": ada}
