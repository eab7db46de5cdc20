"""Property-based checks: arbitrary input never breaks the form engine or the server."""

from __future__ import annotations

import datetime as dt
import tomllib
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from kaptools.modality.answers import (
    build_form,
    collect,
    iter_errors,
    round_trip,
    validate_note,
)
from kaptools.modality.registry import builtin_dir, load_registry
from kaptools.modality.schema import parse_template
from kaptools.textcheck import text_problem

SHARED = load_registry(builtin_dir()).shared

EVERY_TYPE = """
slug = "every-type"
version = 1
title = "Every field type"

[[sections]]
key = "all"
title = "All"

[[sections.fields]]
key = "text"
type = "text"
label = "Text"
max_length = 40

[[sections.fields]]
key = "long"
type = "longtext"
label = "Long"
max_length = 200

[[sections.fields]]
key = "count"
type = "integer"
label = "Count"
min = -5
max = 500

[[sections.fields]]
key = "weight"
type = "decimal"
label = "Weight"
min = 0
max = 400
places = 1

[[sections.fields]]
key = "sud"
type = "scale"
scale = "sud"
label = "SUD"

[[sections.fields]]
key = "belief"
type = "percent"
label = "Belief"

[[sections.fields]]
key = "pick"
type = "choice"
label = "Pick"
choices = ["Alpha", "Beta", "Gamma"]

[[sections.fields]]
key = "picks"
type = "multichoice"
label = "Picks"
choices = ["Red", "Green", "Blue"]

[[sections.fields]]
key = "flag"
type = "yesno"
label = "Flag"

[[sections.fields]]
key = "day"
type = "date"
label = "Day"

[[sections.fields]]
key = "at"
type = "time"
label = "At"

[[sections.fields]]
key = "minutes"
type = "duration"
label = "Minutes"
max = 600

[[sections.fields]]
key = "rows"
type = "group"
label = "Rows"
max_items = 4
item_title = "name"

  [[sections.fields.fields]]
  key = "name"
  type = "text"
  label = "Name"
  max_length = 30

  [[sections.fields.fields]]
  key = "score"
  type = "scale"
  scale = "voc"
  label = "VOC"

[[sections.fields]]
key = "link"
type = "ref"
group = "rows"
label = "Link"
"""

TEMPLATE, _PROBLEMS = parse_template(tomllib.loads(EVERY_TYPE), "every-type.toml", SHARED)
assert TEMPLATE is not None, _PROBLEMS
SCALAR_KEYS = [f.key for f in TEMPLATE.fields if f.type not in ("group", "ref")]

anything = st.one_of(
    st.text(max_size=60),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["NaN", "sNaN", "-inf", "Infinity", "1e999", "3.5", "", " ", "\x00",
                     "\ud800", "\u202e", "2026-02-30", "24:00", "yes", "alpha", "-0"]),
)


def _post(key: str, value: str):
    form = build_form(TEMPLATE, formdata=MultiDict({key: value}))
    ok = validate_note(form, complete=False)
    return form, ok


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(SCALAR_KEYS), value=anything)
def test_any_string_in_any_field_is_either_refused_or_round_trips(key, value):
    form, ok = _post(key, value)
    if not ok:
        messages = [m for path, m in iter_errors(form)]
        assert messages and all(isinstance(m, str) and m for m in messages)
        return
    record, private = collect(form)
    answers = {**record, **private}
    assert round_trip(TEMPLATE, answers) == answers


def _clean_text(max_size: int):
    return st.text(min_size=1, max_size=max_size).map(str.strip).filter(
        lambda s: s and text_problem(s, multiline=False) is None and "\r" not in s)


valid_answers = st.fixed_dictionaries({}, optional={
    "text": _clean_text(40),
    "long": st.text(min_size=1, max_size=200).map(
        lambda s: s.replace("\r", "").strip()).filter(
        lambda s: s and text_problem(s) is None),
    "count": st.integers(-5, 500),
    "weight": st.integers(0, 4000).map(lambda n: n / 10),
    "sud": st.integers(0, 10),
    "belief": st.integers(0, 100),
    "pick": st.sampled_from(["alpha", "beta", "gamma"]),
    "picks": st.lists(st.sampled_from(["red", "green", "blue"]), min_size=1, unique=True).map(
        lambda xs: [c for c in ("red", "green", "blue") if c in xs]),
    "flag": st.booleans(),
    "day": st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31)).map(dt.date.isoformat),
    "at": st.times().map(lambda t: t.strftime("%H:%M")),
    "minutes": st.integers(0, 600),
    "rows": st.lists(st.fixed_dictionaries(
        {"item_id": st.from_regex(r"\A[a-f0-9]{8}\Z"), "name": _clean_text(30)},
        optional={"score": st.integers(1, 7)}), min_size=1, max_size=4,
        unique_by=lambda r: r["item_id"]),
})


@settings(max_examples=200, deadline=None)
@given(answers=valid_answers, data=st.data())
def test_valid_answers_round_trip_exactly(answers, data):
    if answers.get("rows"):
        answers["link"] = data.draw(st.sampled_from([r["item_id"] for r in answers["rows"]]))
    assert round_trip(TEMPLATE, answers) == answers


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(SCALAR_KEYS + ["rows-0-score", "rows-0-name", "link"]),
       value=anything)
def test_the_server_never_answers_500(signed_in_editor, key, value):
    browser, url, template = signed_in_editor
    # Encode as a browser would send bytes; lone surrogates become invalid UTF-8.
    body = urlencode({key: value.encode("utf-8", "surrogatepass"), "note_version": b"1",
                      "action": b"save", "csrf_token": browser.token.encode()})
    resp = browser.client.post(url, data=body,
                               content_type="application/x-www-form-urlencoded")
    assert resp.status_code in (302, 409, 422), resp.status_code


import pytest  # noqa: E402

from tests import factories  # noqa: E402
from tests.notes_helpers import new_note  # noqa: E402


@pytest.fixture
def signed_in_editor(app, browser, tmp_path):
    """An editor for a note of the every-type template, through HTTP."""
    folder = tmp_path / "extra" / "every-type"
    folder.mkdir(parents=True)
    (folder / "v1.toml").write_text(EVERY_TYPE)
    from kaptools.modality.registry import load_registry as load

    with app.app_context():
        app.extensions["kaptools_registry"] = load(builtin_dir(), tmp_path / "extra")
        ids = factories.client_with_course(factories.user("maya"))
    browser.login("maya", factories.PASSWORD)
    url = new_note(browser, ids["integration"], "every-type")
    return browser, url, TEMPLATE
