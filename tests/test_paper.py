"""Paper a supervisor trusts and a client keeps (issue 12): nothing a person reads under
9 pt, no number wrapped away from its unit, and a handout in the client's voice — no
record code or hash on its pages, the clinic's numbers on the crisis sheet, the client's
own words on their sheets, an intention said once, sheets that fit the session."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from kaptools import documents
from kaptools.demo import load_demo
from kaptools.extensions import db
from kaptools.models import Course, SessionKind

# Clinic and crisis numbers from Ofcom's ranges kept for fiction (they reach no one); 999 is
# the UK's emergency number.
CONTACTS = {"CLINIC_PHONE": "+44 20 7946 0321", "CLINIC_AFTER_HOURS_PHONE": "+44 20 7946 0999",
            "CRISIS_LINE": "0808 157 0142", "EMERGENCY_NUMBER": "999"}


def texts(pdf: bytes) -> list[str]:
    return [re.sub(r"\s+", " ", p.extract_text() or "") for p in PdfReader(io.BytesIO(pdf)).pages]


def text_sizes(pdf: bytes) -> list[tuple[int, float, str]]:
    """(page, printed size in pt, text) of every piece of text drawn, charts included."""
    found = []
    for number, page in enumerate(PdfReader(io.BytesIO(pdf)).pages, start=1):
        def visit(text, cm, tm, font, size, number=number):
            if text.strip():
                scale = (tm[2] ** 2 + tm[3] ** 2) ** 0.5 * (cm[2] ** 2 + cm[3] ** 2) ** 0.5
                found.append((number, size * scale, text.strip()))
        page.extract_text(visitor_text=visit)
    return found


@pytest.fixture
def demo_app(app_factory):
    app = app_factory(**CONTACTS)
    with app.app_context():
        load_demo()
    return app


def _course(kind: str = "intensive") -> Course:
    return db.session.scalar(select(Course).where(Course.format == kind))


@pytest.mark.parametrize("kind", documents.KINDS)
def test_nothing_on_paper_is_smaller_than_9_pt(demo_app, kind):
    with demo_app.test_request_context():
        pdf = documents.document_pdf(documents.build(kind, _course()))
    sizes = text_sizes(pdf)
    assert sizes, "no text found"
    small = [(page, round(size, 2), text[:30]) for page, size, text in sizes if size < 8.95]
    assert small == []


def test_numbers_stay_with_their_units(demo_app):
    with demo_app.test_request_context():
        pdf = documents.document_pdf(documents.build("summary", _course()))
    lines = [line for page in PdfReader(io.BytesIO(pdf)).pages
             for line in (page.extract_text() or "").splitlines()]
    assert any("%" in line for line in lines)
    assert [line for line in lines if re.match(r"^\s*(%|mmHg|bpm|/ \d)", line)] == []


def test_handout_speaks_to_the_client(demo_app):
    with demo_app.test_request_context():
        course = _course()
        doc = documents.build("handout", course)
        pdf = documents.document_pdf(doc)
        code = course.client.code
    pages = texts(pdf)
    whole = " ".join(pages)
    # No record code or hash on any page; the hash is in the PDF's metadata.
    assert code not in whole
    assert "SHA-256" not in whole and doc.content_hash[:8] not in whole.replace(" ", "")
    info = PdfReader(io.BytesIO(pdf)).metadata
    assert doc.content_hash in str(info.get("/Keywords")) and code not in str(info.title)
    # The crisis sheet carries the clinic's numbers.
    crisis = next(p for p in pages if "If things get hard" in p)
    for number in CONTACTS.values():
        assert number in crisis, number
    assert "write the number here" not in crisis
    # The client's own calm place on the calm-place sheet.
    calm = next(p for p in pages if "Your calm place" in p and "My word for my calm place" in p)
    assert "A wooden dock at dawn" in calm
    # The intention carried from one dosing session to the next is said once.
    assert whole.count("To meet the worry with curiosity") == 1


def test_crisis_sheet_leaves_a_line_for_numbers_not_set(app_factory):
    app = app_factory()
    with app.app_context():
        load_demo()
    with app.test_request_context():
        crisis = next(p for p in texts(documents.document_pdf(
            documents.build("handout", _course()))) if "If things get hard" in p)
    assert crisis.count("write the number here") == 4


def test_sheets_follow_the_session_kind(demo_app):
    with demo_app.test_request_context():
        course = _course()
        for sess in course.sessions:
            sheets = documents.build("handout", course, sess).practice_sheets
            assert sheets[-1] == "crisis"
            assert ("after_dosing" in sheets) == (sess.kind == SessionKind.DOSING), sess.kind


def test_an_assembled_document_carries_its_content_hash_in_its_metadata(demo_app):
    with demo_app.test_request_context():
        doc = documents.build("summary", _course())
        pdf = documents.document_pdf(doc)
    info = PdfReader(io.BytesIO(pdf)).metadata
    assert doc.content_hash in str(info.get("/Keywords"))
    # On the pages, in groups of four that a reader can compare by eye.
    grouped = " ".join(doc.content_hash[i:i + 4] for i in range(0, 64, 4))
    assert grouped[:24] in texts(pdf)[0]
