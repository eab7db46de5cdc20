"""Every record can always be read and printed, whatever a note holds."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader

from kaptools import notes
from kaptools.extensions import db
from kaptools.models import Note, TherapySession, User
from tests.hostile.conftest import REGISTRY

DEEP_ORDERED = "1. " * 1300  # 1,300 nested ordered lists on one line
DEEP_PLUS = "+ " * 4000      # 4,000 nested bullet lists


def pdf_text(data: bytes) -> str:
    pages = PdfReader(io.BytesIO(data)).pages
    return re.sub(r"\s+", " ", " ".join(page.extract_text() or "" for page in pages))


def add_note(session_id: int, slug: str, answers: dict, *, sign: bool = True) -> int:
    template = REGISTRY.latest(slug)
    sess = db.session.get(TherapySession, session_id)
    author = db.session.get(User, sess.course.client.therapist_id)
    private_keys = {f.key for f in template.fields if f.audience == "private"}
    record = {k: v for k, v in answers.items() if k not in private_keys}
    private = {k: v for k, v in answers.items() if k in private_keys}
    note = notes.create_note(sess, author, template, record, private)
    if sign:
        notes.sign(note, author)
    db.session.commit()
    return note.id


def every_view(browser, ids: dict, note_ids: list[int]) -> dict[str, object]:
    """Every page and document that shows these notes, with its response."""
    urls = [f"/notes/{n}" for n in note_ids]
    urls += [f"/sessions/{ids['integration']}", f"/sessions/{ids['dosing']}",
             f"/courses/{ids['course']}", f"/clients/{ids['client']}"]
    for kind in ("summary", "handout", "packet"):
        for scope in (f"/sessions/{ids['integration']}", f"/sessions/{ids['dosing']}",
                      f"/courses/{ids['course']}"):
            urls += [f"{scope}/documents/{kind}", f"{scope}/documents/{kind}.pdf"]
    return {url: browser.get(url) for url in urls}


def assert_all_print(responses: dict) -> None:
    failed = {url: r.status_code for url, r in responses.items() if r.status_code != 200}
    assert not failed, failed


def test_deeply_nested_markdown_prints_everywhere(app, world, maya):
    with app.app_context():
        sample = dict(REGISTRY.latest("integration-session").sample)
        nested = add_note(world["integration"], "integration-session",
                          {**sample, "themes": DEEP_ORDERED})
        note = db.session.get(Note, nested)
        notes.add_addendum(note, note.author, DEEP_PLUS)
        db.session.commit()
    responses = every_view(maya, world, [nested])
    assert_all_print(responses)
    course_pdf = pdf_text(responses[f"/courses/{world['course']}/documents/summary.pdf"].data)
    assert "Integration" in course_pdf


def test_a_part_related_to_itself_prints_everywhere(app, world, maya):
    with app.app_context():
        sample = dict(REGISTRY.latest("ifs-parts-map").sample)
        first = sample["parts"][0]["item_id"]
        sample["relationships"] = [{"item_id": "rself001", "from_part": first,
                                    "kind": "polarised", "to_part": first}]
        ifs = add_note(world["integration"], "ifs-parts-map", sample)
    responses = every_view(maya, world, [ifs])
    assert_all_print(responses)
    assert "The Planner" in pdf_text(
        responses[f"/sessions/{world['integration']}/documents/summary.pdf"].data)


@pytest.mark.parametrize("answers", [
    {},
    {"session_number": 2, "setting": "office"},
    {"session_number": 3, "boosters": [{"item_id": "b0000001", "time": "10:40"}],
     "vitals": [{"item_id": "v0000001", "time": "10:00"}]},
], ids=["empty", "no-dose", "booster-without-dose"])
def test_an_unfinished_dosing_draft_never_stops_the_course_printing(app, world, maya, answers):
    with app.app_context():
        draft = add_note(world["dosing"], "kap-dosing", answers, sign=False)
    assert_all_print(every_view(maya, world, [draft]))


def test_a_note_that_cannot_be_laid_out_prints_as_plain_text(app, world, maya):
    """Data no template expects (an old import, a hand repair) degrades; the rest prints."""
    with app.app_context():
        good = add_note(world["integration"], "cbt-thought-record",
                        dict(REGISTRY.latest("cbt-thought-record").sample))
        broken = add_note(world["dosing"], "kap-dosing", {}, sign=False)
        note = db.session.get(Note, broken)
        note.answers = {"dose": "a generous amount", "session_number": "first",
                        "vitals": "taken", "boosters": [{"dose": "x"}]}
        db.session.commit()
    responses = every_view(maya, world, [good, broken])
    assert_all_print(responses)
    text = pdf_text(responses[f"/courses/{world['course']}/documents/summary.pdf"].data)
    assert "a generous amount" in text  # the broken note's content, as plain text
    assert "could not be laid out" in text  # with a visible marker
    assert "I am going to be fired" in text  # and the rest of the course prints as usual


def test_a_word_longer_than_its_column_stays_on_the_page(app, world, maya, tmp_path):
    """The dosing record's and the vitals' columns have fixed widths: a word longer than
    its column wraps inside it, all of it on the paper, never past the page's edge."""
    import subprocess

    lot, remark = "L" * 160, "Q" * 160
    with app.app_context():
        sample = dict(REGISTRY.latest("kap-dosing").sample)
        vitals = [{**sample["vitals"][0], "note": remark}]
        add_note(world["dosing"], "kap-dosing", {**sample, "lot_number": lot, "vitals": vitals},
                 sign=False)
    resp = maya.get(f"/sessions/{world['dosing']}/documents/summary.pdf")
    assert resp.status_code == 200
    text = pdf_text(resp.data)
    assert text.replace(" ", "").count(lot) == 1 and text.replace(" ", "").count(remark) == 1
    (tmp_path / "doc.pdf").write_bytes(resp.data)
    subprocess.run(["pdftotext", "-bbox", str(tmp_path / "doc.pdf"), str(tmp_path / "b.html")],
                   check=True)
    boxes = (tmp_path / "b.html").read_text()
    width = float(re.search(r'<page width="([\d.]+)"', boxes).group(1))
    ends = [float(x) for x in re.findall(r'xMax="([\d.]+)"', boxes)]
    assert ends and max(ends) <= width - 16 * 72 / 25.4 + 1  # inside the right margin
