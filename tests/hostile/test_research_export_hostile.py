"""The research export against hostile and unlucky data: a clinic template written to run
formulas in a spreadsheet, and signed answers that are not of their field's type (as an
old import or a bug could have stored them). Nothing runs, and a structured column only
ever carries values of its own type, so no stray text or date leaves through it."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import date, timedelta

from sqlalchemy import text

from kaptools import notes
from kaptools.exports.research import build_research_export
from kaptools.extensions import db
from kaptools.modality import get_registry
from kaptools.models import TherapySession
from tests import factories
from tests.hostile.test_integrity import as_owner

FORMULA_TEMPLATE = '''
slug = "formula-probe"
version = 1
title = "=HYPERLINK(\\"http://evil.example\\",\\"Formula probe\\")"
category = "+Probe"

[[sections]]
key = "one"
title = "@SUM(1+1)"

[[sections.fields]]
key = "pick"
type = "choice"
label = "-2+3 pick one"
choices = [{ value = "=cmd|' /C calc'!A0", label = "@cmd" }, { value = "plain", label = "Plain" }]

[[sections.fields]]
key = "many"
type = "multichoice"
label = "=1+1 many"
choices = [{ value = "+evil", label = "=evil" }, { value = "good", label = "Good" }]

[[sections.fields]]
key = "rating"
type = "scale"
label = "Rating"
min = -5
max = 5
'''


def files_of(data: bytes) -> dict[str, list[list[str]]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: list(csv.reader(io.StringIO(zf.read(n).decode())))
                for n in zf.namelist() if n.endswith(".csv")}


def signed_notes(*wanted: tuple[str, dict]) -> None:
    """Signed notes of one client holding these answers exactly as given (no validation)."""
    maya = factories.user("maya")
    ids = factories.client_with_course(maya)
    factories.screened_and_consented(ids["course"], maya)
    sess = db.session.get(TherapySession, ids["integration"])
    sess.session_date = date.today() - timedelta(days=1)
    for slug, answers in wanted:
        template = get_registry().latest(slug)
        notes.sign(notes.create_note(sess, maya, template, answers), maya)
    db.session.commit()


def test_a_clinic_template_cannot_plant_formulas(app_factory, tmp_path):
    folder = tmp_path / "clinic-modalities" / "formula-probe"
    folder.mkdir(parents=True)
    (folder / "v1.toml").write_text(FORMULA_TEMPLATE, encoding="utf-8")
    app = app_factory(MODALITIES_EXTRA_DIR=str(folder.parent))
    with app.app_context():
        assert get_registry().latest("formula-probe") is not None, get_registry().problems
        signed_notes(("formula-probe", {"pick": "=cmd|' /C calc'!A0", "many": ["+evil"],
                                        "rating": -4}))
        export = build_research_export(["formula-probe"])
    files = files_of(export.data)
    header, row = files["formula-probe.csv"]
    data = dict(zip(header, row, strict=True))
    assert data["pick"] == "'=cmd|' /C calc'!A0"
    assert data["many___evil"] == "1" and data["many___good"] == "0"
    assert data["rating"] == "-4"  # a number, negative, written as one
    for name, rows in files.items():
        for cells in rows:
            for cell in cells:
                assert not cell.startswith(("=", "+", "@", "\t", "\r")), (name, cell)
                assert not cell.startswith("-") or re.fullmatch(r"-\d+", cell), (name, cell)
    dictionary = {r[0]: r for r in files["data_dictionary.csv"][1:]}
    assert dictionary["pick"][2] == "'@SUM(1+1)" and dictionary["pick"][4] == "'-2+3 pick one"
    assert dictionary["pick"][5] == "'=cmd|' /C calc'!A0, @cmd | plain, Plain"


def test_answers_of_the_wrong_type_never_leave_through_a_structured_column(app):
    with app.app_context():
        signed_notes(("adverse-event", {
            "onset_date": "03/11/2026",  # not ISO: no day number can be trusted
            "reported_on": "KT-0142",
            "onset_time": "2026-11-03",
            "relation": "Jordan Avery",  # not one of the choices
            "severity": ["grade_1"],
            "kind": "nausea",  # a multiple choice that is not a list
            "actions": ["observed", "=1+1"],
        }), ("kap-dosing", {
            "session_number": "=1+1", "baseline_systolic": 12.5, "baseline_hr": True,
            "dose": "NaN", "fasting": "yes", "vitals": "not a list",
            "boosters": [{"item_id": "b1", "time": "9 Nov", "dose": "lots"}, "junk"],
        }))
        export = build_research_export(["adverse-event", "kap-dosing"])
    files = files_of(export.data)
    for name in ("adverse-event.csv", "kap-dosing.csv", "kap-dosing.boosters.csv"):
        header, *rows = files[name]
        [row] = rows
        data = dict(zip(header, row, strict=True))
        fixed = {"study_id", "note_no", "course_no", "day", "signed_day", "session_kind",
                 "template_version", "row_no"}
        for column, cell in data.items():
            if column in fixed:
                continue
            if column in ("actions___observed", "vitals_rows", "boosters_rows"):
                continue
            assert cell in ("", "0"), (name, column, cell)
        if name == "adverse-event.csv":
            assert data["actions___observed"] == "1"
        if name == "kap-dosing.csv":
            assert data["vitals_rows"] == "0" and data["boosters_rows"] == "1"


def test_a_note_changed_after_signing_is_left_out_and_said_so(app):
    """Its content no longer matches the hash sealed at signing (changed below the app,
    past the database's guards): the export leaves it out rather than pass it on."""
    with app.app_context():
        signed_notes(("gad-7", {f"q{i}": 1 for i in range(1, 8)}),
                     ("gad-7", {f"q{i}": 2 for i in range(1, 8)}))
        tampered = db.session.scalar(text("SELECT max(id) FROM note WHERE modality = 'gad-7'"))
    with as_owner(app) as conn:
        conn.execute(text("UPDATE note SET answers = :a WHERE id = :n"),
                     {"a": json.dumps({f"q{i}": 0 for i in range(1, 8)}), "n": tampered})
    with app.app_context():
        export = build_research_export(["gad-7"])
    header, *rows = files_of(export.data)["gad-7.csv"]
    assert [dict(zip(header, r, strict=True))["score_total"] for r in rows] == ["7"]
    assert export.left_out == {"content_changed_since_signing": 1}
    with zipfile.ZipFile(io.BytesIO(export.data)) as zf:
        assert "1 note(s): content changed since signing" in zf.read("README.txt").decode()
