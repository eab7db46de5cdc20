"""Printed documents: clinical values on paper, nothing private on a handout, and a
locked-down fetcher that never leaks server files or reaches the network."""

from __future__ import annotations

import io
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from kaptools import documents, notes
from kaptools.demo import load_demo
from kaptools.extensions import db
from kaptools.modality import get_registry
from kaptools.models import Course, Note, TherapySession, User
from kaptools.rendering import store
from kaptools.rendering.weasy import html_to_pdf, static_only_fetcher
from tests.conftest import Browser


def pdf_text(pdf: bytes) -> list[str]:
    return [re.sub(r"\s+", " ", page.extract_text() or "")
            for page in PdfReader(io.BytesIO(pdf)).pages]


@pytest.fixture
def demo(app):
    with app.app_context():
        load_demo()
        course = db.session.scalar(select(Course).where(Course.format == "intensive"))
        return {"course": course.id, "sessions": [s.id for s in course.sessions]}


@pytest.fixture
def maya(app, demo):
    browser = Browser(app.test_client())
    browser.login("maya", "demo-maya-lind")
    return browser


def test_course_summary_carries_the_clinical_record(app, maya, demo):
    resp = maya.get(f"/courses/{demo['course']}/documents/summary.pdf")
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    assert resp.headers["Cache-Control"] == "no-store"
    assert "KT-0142" not in resp.headers["Content-Disposition"]
    pages = pdf_text(resp.data)
    text = " ".join(pages)
    for expected in [
        "KT-0142", "Autumn intensive retreat", "Maya Lind, LMFT", "Dr Ruth Okafor, PsyD",
        "GAD-7", "16 / 21", "Severe → Mild", "PHQ-9", "14 / 27",
        "Racemic ketamine lozenge", "250 mg", "148/91",  # dose of dosing 2, vitals above threshold
        "Failed exam at 16", "I am not good enough", "Whose job was it to prepare",  # EMDR
        "The Planner", "Little one", "polarised",  # IFS
        "I am going to be fired and I will never find work again.",  # CBT hot thought
        "The car on the bridge", "The bridge is wide and sunlit",  # ART
        "Content hash verified",
    ]:
        assert expected in text, expected
    total = len(pages)
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {total}" in page
        assert "Confidential health record" in page
        assert "Content SHA-256" in page
        if number > 1:
            assert "KT-0142" in page
    # Private process notes never print.
    assert "Synthetic sample:" not in text


def test_handout_holds_only_what_is_meant_for_the_client(app, maya, demo):
    resp = maya.get(f"/courses/{demo['course']}/documents/handout.pdf")
    assert resp.status_code == 200
    reader = PdfReader(io.BytesIO(resp.data))
    text = re.sub(r"\s+", " ", " ".join(p.extract_text() or "" for p in reader.pages))
    for expected in ["Your calm place", "A wooden dock at dawn",
                     "A short email is how my manager writes to everyone",
                     "The bridge is wide and sunlit", "The Planner works hard for me",
                     "Walk by the river on Saturday mornings", "If things get hard",
                     "Caring for yourself after a medicine session", "Box breathing"]:
        assert expected in text, expected
    # Nothing from record-only or private fields of the same notes.
    with app.app_context():
        registry = get_registry()
        leaked = []
        for note in db.session.scalars(select(Note)):
            template = registry.get(note.modality, note.template_version)
            client_values = set(_strings(template, note.answers, client=True))
            for value in _strings(template, note.answers, client=False):
                if len(value) > 12 and value not in client_values and value in text:
                    leaked.append((note.modality, value))
            private = notes.private_answers(note, note.author)
            leaked += [(note.modality, v) for v in private.values() if v in text]
    assert leaked == []
    for forbidden in ["GAD-7 total", "PHQ-9", "/ 21", "Item 9", "mmHg", "Dose", "SUD"]:
        assert forbidden not in text, forbidden
    # Tagged PDF/UA-1.
    root = reader.trailer["/Root"]
    assert "/StructTreeRoot" in root and root["/MarkInfo"]["/Marked"]
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data()
    assert b'pdfuaid:part="1"' in xmp


def _strings(template, answers, client: bool):
    for f in template.fields:
        value = answers.get(f.key)
        if f.type == "group":
            for item in value or []:
                for sub in f.fields:
                    v = item.get(sub.key)
                    if isinstance(v, str) and (sub.audience == "client") == client \
                            and sub.type != "ref":
                        yield v
        elif isinstance(value, str) and (f.audience == "client") == client and f.type != "ref":
            yield value


def test_every_document_kind_renders_for_course_and_session(app, maya, demo):
    for kind in documents.KINDS:
        page = maya.get(f"/courses/{demo['course']}/documents/{kind}")
        assert page.status_code == 200 and "Download PDF" in page.get_data(as_text=True)
        assert maya.get(f"/courses/{demo['course']}/documents/{kind}.pdf").status_code == 200
        session_id = demo["sessions"][3]
        resp = maya.get(f"/sessions/{session_id}/documents/{kind}.pdf")
        assert resp.status_code == 200 and resp.data.startswith(b"%PDF")
    assert maya.get(f"/courses/{demo['course']}/documents/nonsense").status_code == 404


def test_preview_and_pdf_come_from_the_same_html(app, demo):
    with app.test_request_context():
        course = db.session.get(Course, demo["course"])
        doc = documents.build("summary", course)
        html = documents.document_html(doc)
        assert html == documents.document_html(documents.build("summary", course))
        assert doc.content_hash in html


def test_a_changed_note_changes_the_document_and_misses_the_cache(app, demo):
    with app.test_request_context():
        course = db.session.get(Course, demo["course"])
        first = documents.build("summary", course)
        pdf = documents.document_pdf(first)
        assert documents.document_pdf(documents.build("summary", course)) == pdf  # stored
        draft = db.session.scalar(select(Note).where(Note.state == "draft"))
        draft.answers = {**draft.answers, "themes": "A different theme altogether"}
        db.session.commit()
        second = documents.build("summary", course)
        assert second.content_hash != first.content_hash
        assert documents.document_pdf(second) != pdf


def test_cli_renders_a_document_to_a_file(app, demo, tmp_path):
    out = tmp_path / "summary.pdf"
    result = app.test_cli_runner().invoke(
        args=["render", "course", str(demo["course"]), "--kind", "handout", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"%PDF")
    assert "If things get hard" in " ".join(pdf_text(out.read_bytes()))


# --- safety -------------------------------------------------------------------

class Listener:
    """A local HTTP server that records every request it receives."""

    def __init__(self) -> None:
        requests = self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/css")
                self.end_headers()
                self.wfile.write(b"body{}")

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def hostile_markup(url: str) -> str:
    return (f'<img src="file:///etc/passwd"> <a rel="attachment" href="file:///etc/passwd">x</a> '
            f'<link rel="attachment" href="file:///etc/passwd"> <img src="{url}/img.png"> '
            f'<link rel="stylesheet" href="{url}/style.css"> <a rel="attachment" '
            f'href="{url}/attach.txt">y</a> <iframe src="{url}/frame"></iframe> '
            f'<object data="{url}/obj"></object> <svg><image href="{url}/svg.png"/></svg>'
            f"\n\n![passwd](file:///etc/passwd) ![remote]({url}/md.png) [link]({url}/md)")


def assert_clean(pdf: bytes, listener: Listener) -> None:
    reader = PdfReader(io.BytesIO(pdf))
    assert reader.attachments == {}
    assert b"/EmbeddedFile" not in pdf and b"/FileAttachment" not in pdf
    assert b"root:x:0:0" not in pdf
    text = " ".join(pdf_text(pdf))
    assert "root:x:0:0" not in text
    assert listener.requests == []


def test_hostile_note_text_cannot_reach_files_or_the_network(app, maya, demo, listener):
    with app.app_context():
        note = db.session.scalar(select(Note).where(Note.state == "draft",
                                                    Note.modality == "integration-session"))
        note.answers = {**note.answers, "themes": hostile_markup(listener.url),
                        "domain_mind": hostile_markup(listener.url)}
        db.session.commit()
        session_id = note.session_id
    with app.app_context():
        store.clear()
        db.session.commit()
    for kind in documents.KINDS:
        resp = maya.get(f"/sessions/{session_id}/documents/{kind}.pdf")
        assert resp.status_code == 200
        assert_clean(resp.data, listener)
        body = maya.get(f"/sessions/{session_id}/documents/{kind}").get_data(as_text=True)
        body = body.split("</head>", 1)[1]
        # The note's markup is shown as text, never as elements or attributes.
        found = markup_in(body)
        assert not {"iframe", "object", "link", "image", "img"} & {t for t, _ in found}
        for _, attrs in found:
            for value in attrs.values():
                assert not (value or "").startswith(("file:", listener.url)), value


def markup_in(html: str) -> list[tuple[str, dict]]:
    """Every element of a page with its attributes."""
    from html.parser import HTMLParser

    found: list[tuple[str, dict]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    Collect().feed(html)
    return found


def test_the_fetcher_refuses_everything_but_bundled_files(listener):
    # Straight to WeasyPrint, bypassing the Markdown sanitiser: the fetcher alone must hold.
    html = f"<!doctype html><html lang=en><head><title>t</title></head><body>" \
           f"{hostile_markup(listener.url)}<p>Text</p></body></html>"
    pdf = html_to_pdf(html)
    assert_clean(pdf, listener)
    fetcher = static_only_fetcher()
    for url in ["file:///etc/passwd", f"{listener.url}/x", "https://kaptools.invalid/etc/passwd",
                "https://kaptools.invalid/static/../../../../etc/passwd",
                "https://kaptools.invalid/static/%2e%2e/%2e%2e/pyproject.toml",
                "https://example.com/static/css/print.css", "ftp://127.0.0.1/x"]:
        with pytest.raises(ValueError):
            fetcher.fetch(url)
    assert fetcher.fetch("https://kaptools.invalid/static/css/print.css").read().startswith(
        b"/* kaptools print")
    assert fetcher.fetch("data:text/plain,hello").read() == b"hello"
    assert listener.requests == []


@pytest.mark.parametrize("limit,cause", [
    ({"RENDER_MEMORY_LIMIT_MB": 40}, "more memory than a render may use"),
    ({"RENDER_TIME_LIMIT_S": 0.2}, "longer than a render may take"),
    ({"RENDER_MAX_PAGES": 3}, "more pages than one document may have"),
])
def test_a_render_over_its_limits_names_the_cause_and_offers_sessions(app, maya, demo,
                                                                     limit, cause):
    app.config.update(limit)
    resp = maya.get(f"/courses/{demo['course']}/documents/summary.pdf", follow_redirects=True)
    body = resp.get_data(as_text=True)
    said = re.findall(r'role="alert"><p>(.*?)</p>', body, re.S)
    assert resp.status_code == 422 and "The PDF could not be made" in body, (resp.status_code,
                                                                            said)
    assert cause in body and "Traceback" not in body, said
    # The course can be printed session by session instead.
    assert f"/sessions/{demo['sessions'][0]}/documents/summary.pdf" in body
    with app.app_context():
        assert db.session.scalar(select(User).where(User.username == "maya")) is not None
        assert db.session.get(TherapySession, demo["sessions"][0]) is not None


def test_a_session_handout_offers_its_choice_of_sheets(app, maya, demo):
    """The session page leads to a sheet chooser for that session's handout; the chosen
    sheets (and only they) are in the preview and its PDF link; PDFs open in a new tab and
    the preview leads back into the app."""
    session_id = demo["sessions"][3]
    page = maya.get(f"/sessions/{session_id}").get_data(as_text=True)
    assert f"/sessions/{session_id}/handout-sheets" in page
    assert re.search(r'documents/summary\.pdf" target="_blank" rel="noopener"', page)
    chooser = maya.get(f"/sessions/{session_id}/handout-sheets").get_data(as_text=True)
    assert f'action="/sessions/{session_id}/documents/handout"' in chooser
    assert 'value="grounding_54321"' in chooser and 'value="box_breathing"' in chooser
    preview = maya.get(f"/sessions/{session_id}/documents/handout?sheet=box_breathing"
                       ).get_data(as_text=True)
    assert "Box breathing" in preview and "5-4-3-2-1 grounding" not in preview
    assert f"/sessions/{session_id}/documents/handout.pdf?sheet=box_breathing" in preview
    assert 'href="/">kaptools</a>' in preview and "Back to the record" in preview
    assert maya.get("/sessions/999999/handout-sheets").status_code == 404
