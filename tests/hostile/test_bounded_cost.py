"""No single input can make the server work without bound."""

from __future__ import annotations

import sys

import pytest
from sqlalchemy import func, select

from kaptools.extensions import db
from kaptools.markdown_render import render_markdown
from kaptools.models import AuditEvent, Note
from tests import factories
from tests.conftest import Browser
from tests.hostile.conftest import REGISTRY, note_id
from tests.notes_helpers import form_payload, new_note


def python_lines_run(fn, *args) -> int:
    """How many lines of Python a call executes: a measure of work that is not a clock."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        fn(*args)
    finally:
        sys.settrace(None)
    return count


@pytest.mark.parametrize("unit", ["[", "![", "[a](", "<", "&", "*", "_", "`", "1. ", "+ ",
                                  "> ", "\\[", "[x]: y\n", "<a ", "**", "\t- x\n"])
def test_markdown_work_grows_linearly_with_the_text(unit):
    small = python_lines_run(render_markdown, unit * 400)
    large = python_lines_run(render_markdown, unit * 1600)
    # Four times the text may cost up to about four times the work, never sixteen.
    assert large <= 5 * small + 20_000, (unit, small, large)


@pytest.mark.parametrize("text", ["1. " * 6000, "+ " * 9000, "> " * 9000, "> 1. " * 4000,
                                  "".join("\t" * i + "- x\n" for i in range(400))])
def test_markdown_nesting_never_breaks_rendering(text):
    html = render_markdown(text)
    assert html  # rendered (depth capped), never a RecursionError


def test_preview_of_a_bracket_run_is_linear(app, maya):
    resp = maya.post("/preview", {"text": "[" * 8000})
    assert resp.status_code == 200 and "[[[" in resp.json["html"]


def test_thousands_of_rows_posted_in_one_form_are_refused_with_a_message(app, world, maya):
    template = REGISTRY.latest("ifs-parts-map")
    url = new_note(maya, world["integration"], "ifs-parts-map")
    payload = form_payload(template, template.sample)
    for i in range(10, 10_010):
        payload[f"parts-{i}-name"] = "P"
        payload[f"parts-{i}-role"] = "exile"
    resp = maya.post(url, payload)  # url-encoded, well under the 2 MB limit
    body = resp.get_data(as_text=True)
    assert resp.status_code == 422, resp.status_code
    assert "At most 40" in body
    with app.app_context():
        assert db.session.get(Note, note_id(url)).answers == {}


def test_rows_are_bounded_before_any_form_is_built():
    from werkzeug.datastructures import MultiDict

    from kaptools.modality.answers import build_form

    template = REGISTRY.latest("ifs-parts-map")
    formdata = MultiDict()
    for i in range(10_000):
        formdata.add(f"parts-{i}-name", "P")
        formdata.add(f"parts-{i}-role", "exile")
        formdata.add(f"relationships-{i}-kind", "allied")
    form = build_form(template, formdata=formdata)
    # A handful over the limit are kept for the therapist to remove; no more are built.
    assert len(form.parts.entries) <= 40 + 5 and len(form.relationships.entries) <= 60 + 5


def test_row_indices_far_apart_do_not_build_huge_forms(app, world, maya):
    template = REGISTRY.latest("cbt-thought-record")
    url = new_note(maya, world["integration"], "cbt-thought-record")
    payload = form_payload(template, {k: v for k, v in template.sample.items()
                                      if k != "moods"})
    payload["moods-0-mood"] = "anxious"
    payload["moods-99999999999-mood"] = "sad"
    resp = maya.post(url, payload)
    assert resp.status_code == 302
    with app.app_context():
        moods = db.session.get(Note, note_id(url)).answers["moods"]
    assert [m["mood"] for m in moods] == ["anxious", "sad"]


@pytest.mark.parametrize("field", ["username", "password"])
def test_control_characters_in_the_sign_in_form_get_a_field_message(app, world, field):
    browser = Browser(app.test_client())
    browser.get("/login")
    data = {"username": "maya", "password": factories.PASSWORD}
    data[field] = data[field][:3] + "\x00" + data[field][3:]
    resp = browser.post("/login", data)
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200, resp.status_code
    assert "control character" in body or "NUL" in body
    assert 'value="maya' in body or field == "username"


@pytest.mark.parametrize("param", ["user", "client", "action", "since"])
def test_control_characters_in_audit_filters_get_a_field_message(app, world, param):
    with app.app_context():
        factories.user("admin", role="admin")
    admin = Browser(app.test_client())
    admin.login("admin", factories.PASSWORD)
    resp = admin.get("/admin/audit", query_string={param: "ma\x00ya"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200, resp.status_code
    assert "control character" in body or "NUL" in body


def test_failed_sign_ins_cannot_grow_the_audit_trail_without_bound(app, world):
    with app.app_context():
        before = db.session.scalar(select(func.count(AuditEvent.id)))
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        browser = Browser(app.test_client())
        browser.client.environ_base["REMOTE_ADDR"] = address
        for i in range(120):
            browser.get("/login") if i == 0 else None
            browser.post("/login", {"username": f"guess{i}", "password": "wrong password"})
    with app.app_context():
        added = db.session.scalar(select(func.count(AuditEvent.id))) - before
    # 360 attempts from three addresses: each address's failures are recorded up to its
    # limit, then summarised, so the trail grows by tens of rows, not hundreds.
    assert added <= 120, added
