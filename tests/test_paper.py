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


def _laid_out(html: str):
    """Print HTML laid out as the render children lay it out (print.css included)."""
    from kaptools.rendering import weasy

    return weasy._html_class()(string=html, base_url=weasy.BASE_URL,
                               url_fetcher=weasy.static_only_fetcher()).render(
        font_config=weasy.font_config())


def _boxes_of(document, css_class: str) -> list:
    """The boxes an element of ``css_class`` made (not its lines and text)."""
    from weasyprint.formatting_structure import boxes

    found = []
    for page in document.pages:
        for box in page._page_box.descendants():
            element = getattr(box, "element", None)
            if element is not None and css_class in (element.get("class") or "").split() \
                    and not isinstance(box, (boxes.LineBox, boxes.InlineLevelBox)):
                found.append(box)
    return found


def test_an_answer_sits_beside_its_label_and_the_next_starts_below_both(app):
    """The reading view on paper: each label in a column of its own (a third of the width),
    its answer beside it from the same line, and the next answer below whichever of the
    two is longer. Laid out as a float beside a block, not as a one-row table per answer
    (which cost a note's layout about twice as much, for the same page)."""
    from weasyprint.formatting_structure import boxes

    long_label = "A question asked at some length, so that it needs three lines " * 2
    field = ('<div class="view-field"><div class="view-label">{}</div>'
             '<div class="view-value">{}</div></div>')
    html = ('<!doctype html><html lang="en"><head><title>t</title>'
            '<link rel="stylesheet" href="/static/css/print.css"></head><body class="summary">'
            '<section class="view-section">' +
            field.format(long_label, "Yes") +
            field.format("Short", "<p>" + "An answer that runs over several lines. " * 12 +
                         "</p>") +
            field.format("Last", "No") + '</section></body></html>')
    with app.app_context():
        document = _laid_out(html)
    fields = _boxes_of(document, "view-field")
    labels, values = _boxes_of(document, "view-label"), _boxes_of(document, "view-value")
    assert len(fields) == len(labels) == len(values) == 3
    assert not any(isinstance(b, (boxes.TableBox, boxes.TableCellBox))
                   for b in fields + labels + values)
    for f, label, value in zip(fields, labels, values, strict=True):
        assert label.position_y == pytest.approx(value.position_y)  # from the same line
        assert label.border_box_x() == pytest.approx(f.content_box_x())
        # The answer column starts where the label column ends: 34 % and the 6 pt gap.
        assert value.border_box_x() == pytest.approx(
            f.content_box_x() + 0.34 * f.width + 8, abs=0.01)
        assert value.border_box_x() + value.border_width() == pytest.approx(
            f.content_box_x() + f.width)
        # The field holds both: the next one starts below the longer of the two.
        bottom = f.position_y + f.margin_height()
        assert bottom >= label.position_y + label.margin_height() - 0.01
        assert bottom >= value.position_y + value.margin_height() - 0.01
    assert labels[0].height > 2 * values[0].height  # the label is the longer here...
    assert fields[1].position_y >= labels[0].position_y + labels[0].margin_height() - 0.01
    assert values[1].height > 2 * labels[1].height  # ...and the answer here
    assert fields[2].position_y >= values[1].position_y + values[1].margin_height() - 0.01


def test_a_vitals_reading_is_plain_text_unless_it_is_out_of_range(app_factory):
    """A dosing record's readings (a dozen or more each) print as plain text, with an
    element around a reading only where it is marked: each element is laid out as a box
    of its own, and an empty one around every number cost a dosing page about a tenth of
    its layout time for nothing."""
    app = app_factory(VITALS_THRESHOLDS={"systolic": {"max": 140}, "hr": {"min": 50}})
    with app.test_request_context():
        load_demo()
        html = documents.document_html(documents.build("summary", _course()))
    tables = re.findall(r'<table class="vitals-table">.*?</table>', html, re.S)
    assert tables
    cells = [cell for table in tables for cell in re.findall(r"<td>(.*?)</td>", table, re.S)]
    assert 'class=""' not in html
    marked = [c for c in cells if "vital-out" in c]
    assert marked, "the demo has a systolic reading above 140"
    for cell in marked:
        assert re.search(r'<span class="vital-out">\d+ <span class="vital-marker">▲ high'
                         r'</span></span>', cell), cell
    # Every other reading is the number alone (a blood pressure is two, with a slash).
    readings = [c.strip() for c in cells if "vital-out" not in c and re.search(r"\d", c)]
    assert readings and all(re.fullmatch(r"[\d:]+(/\d+)?|[^<]*", r) for r in readings)
    assert not any("<span" in r for r in readings)
