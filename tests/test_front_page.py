"""The front page of a summary or packet (issue 12): what needs attention, every flag of
the course listed, each entry a link to the page where its note (or session) is."""

from __future__ import annotations

import io
import re

import pikepdf
from pypdf import PdfReader
from sqlalchemy import select

from kaptools import documents, reviews
from kaptools.demo import load_demo
from kaptools.extensions import db
from kaptools.models import Course, Note, NoteState, TherapySession, User


def page_texts(pdf: bytes) -> list[str]:
    return [re.sub(r"\s+", " ", p.extract_text() or "") for p in PdfReader(io.BytesIO(pdf)).pages]


def front_page_links(pdf: bytes) -> list[tuple[str, int]]:
    """(text under the link, page index it goes to) for each link on page 1."""
    doc = pikepdf.open(io.BytesIO(pdf))
    pages = {p.obj.objgen: i for i, p in enumerate(doc.pages)}
    links = []
    for annot in doc.pages[0].obj.get("/Annots", []):
        if annot.get("/Subtype") != pikepdf.Name.Link:
            continue
        action = annot.get("/A")
        assert action is not None and action.S == pikepdf.Name.GoTo, "a link that goes nowhere"
        assert not str(annot.get("/Contents", "")).startswith("kaptools-goto:")
        links.append((str(annot.get("/Contents", "")), pages[action.D[0].objgen]))
    return links


def test_packet_front_page_lists_every_flag_and_links_to_its_page(app_factory):
    app = app_factory(VITALS_THRESHOLDS={"systolic": {"max": 140}, "diastolic": {"max": 90}})
    with app.test_request_context():
        load_demo()
        course = db.session.scalar(select(Course).where(Course.format == "intensive"))
        ruth = db.session.scalar(select(User).where(User.username == "ruth"))
        maya = db.session.scalar(select(User).where(User.username == "maya"))
        # A note under review with a comment not yet answered.
        reviewed = db.session.scalar(
            select(Note).join(TherapySession).where(TherapySession.course_id == course.id,
                                                    Note.modality == "cbt-thought-record"))
        review = reviews.submit_note(reviewed, maya, ruth.id)
        reviews.comment(review, ruth, None, "Which evidence did the client find hardest?")
        db.session.commit()
        drafts = db.session.scalars(
            select(Note).join(TherapySession).where(TherapySession.course_id == course.id,
                                                    Note.state == NoteState.DRAFT)).all()
        doc = documents.build("packet", course)
        pdf = documents.document_pdf(doc)
    pages = page_texts(pdf)
    front = pages[0]
    assert "What needs attention" in front
    # Every flag of the demo course, found from the records themselves.
    expected = {
        "Risk": ["Item 9 endorsed", "Suicide risk screen"],
        "Adverse event": ["Nausea about 35 minutes after the lozenge"],
        "Vitals outside thresholds": ["Systolic BP 148", "Diastolic BP 91"],
        "Open review comments": ["CBT thought record (seven columns): 1 review comment"],
        "Unsigned draft": [d.modality for d in drafts],
    }
    assert len(drafts) >= 1
    categories = [item.category for item in doc.attention]
    assert categories.count("Unsigned draft") == len(drafts)
    for category, words in expected.items():
        assert category in categories, category
        for word in words:
            if category == "Unsigned draft":
                continue
            assert word in front, word
    for item in doc.attention:
        assert re.sub(r"\s+", " ", item.text[:30]) in front, item.text
    # Each entry links to the page its note starts on (a link that wraps onto a second
    # line is two annotations with one target).
    targets = [target for _, target in front_page_links(pdf)]
    targets = [t for i, t in enumerate(targets) if i == 0 or t != targets[i - 1]]
    linked = [i for i in doc.attention if i.anchor]
    titles = {f"note-{n.id}": n.title for s in doc.sessions for n in s.notes}
    titles |= {f"session-{s.id}": f"{s.kind_label} · {s.on:%A %d %B %Y}" for s in doc.sessions}
    named = named_destinations(pdf)
    pages_of = [named[i.anchor] for i in linked]
    assert targets == [t for k, t in enumerate(pages_of) if k == 0 or t != pages_of[k - 1]]
    for item, target in zip(linked, pages_of, strict=True):
        assert target > 0 and titles[item.anchor] in pages[target], item


def named_destinations(pdf: bytes) -> dict[str, int]:
    """The document's named destinations (kept from the parts): anchor → page index."""
    doc = pikepdf.open(io.BytesIO(pdf))
    pages = {p.obj.objgen: i for i, p in enumerate(doc.pages)}
    return {str(name): pages[dest[0].objgen]
            for name, dest in pikepdf.NameTree(doc.Root.Names.Dests).items()}


def _course_of_one_note(sign: bool):
    """A therapist and a course with one thought record (signed when asked); their ids."""
    from kaptools import notes
    from tests.factories import client_with_course, user

    therapist = user("nadia")
    ids = client_with_course(therapist)
    if sign:
        notes.sign(db.session.get(Note, ids["note"]), therapist)
        db.session.commit()
    return therapist, ids


def test_nothing_flagged_says_so(app_factory):
    app = app_factory()
    with app.test_request_context():
        _, ids = _course_of_one_note(sign=True)
        doc = documents.build("summary", db.session.get(Course, ids["course"]))
        assert doc.attention == []
        front = page_texts(documents.document_pdf(doc))[0]
    assert "Nothing flagged" in front


def test_a_measure_above_its_cut_off_links_to_its_session(app_factory):
    from datetime import timedelta

    from kaptools import notes
    from kaptools.modality import get_registry

    app = app_factory()
    with app.test_request_context():
        therapist, ids = _course_of_one_note(sign=False)
        course = db.session.get(Course, ids["course"])
        template = get_registry().latest("phq-9")
        for days, score in ((5, 2), (19, 2)):  # 16, then 16 again: above 10 both times
            sess = TherapySession(course=course, kind="assessment",
                                  session_date=course.starts_on + timedelta(days=days))
            db.session.add(sess)
            db.session.flush()
            answers = {f"q{i}": score for i in range(1, 10)} | {"q9": 0}
            notes.sign(notes.create_note(sess, therapist, template, answers, {}), therapist)
        db.session.commit()
        doc = documents.build("summary", db.session.get(Course, ids["course"]))
        pdf = documents.document_pdf(doc)
        above = [i for i in doc.attention if i.category == "Above cut-off"]
        assert len(above) == 1 and above[0].anchor == f"session-{sess.id}"
        assert "PHQ-9 16 / 27" in above[0].text and "(+0)" in above[0].text
    pages = page_texts(pdf)
    target = named_destinations(pdf)[above[0].anchor]
    assert target in [t for _, t in front_page_links(pdf)]
    assert f"{sess.session_date:%A %d %B %Y}" in pages[target]
