"""Documents render as background work: queued, laid out in parts, reused, numbered."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pikepdf
import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from kaptools import notes
from kaptools.demo import load_demo
from kaptools.extensions import db
from kaptools.models import Course, Note, RenderedPdf, RenderJob
from tests.conftest import Browser

REDIS_URL = os.environ.get("KAPTOOLS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parent.parent


def pdf_pages(data: bytes) -> list[str]:
    return [re.sub(r"\s+", " ", p.extract_text() or "") for p in
            PdfReader(io.BytesIO(data)).pages]


@pytest.fixture
def demo_course(app):
    with app.app_context():
        load_demo()
        return db.session.scalar(select(Course.id).where(Course.format == "intensive"))


@pytest.fixture
def maya(app, demo_course):
    browser = Browser(app.test_client())
    browser.login("maya", "demo-maya-lind")
    return browser


def wait_for_pdf(browser, url: str, seconds: float = 120) -> bytes:
    """Ask for a PDF and follow its render the way the page does, until it is ready."""
    resp = browser.get(url)
    deadline = time.monotonic() + seconds
    while resp.status_code == 302:
        location = resp.headers["Location"]
        if location.endswith("/pdf"):
            resp = browser.get(location)
            continue
        status = browser.get(location.replace("/renders/", "/renders/", 1) + ".json"
                             if not location.endswith(".json") else location).json
        assert status["status"] != "failed", status
        if status["status"] == "done":
            resp = browser.get(status["pdf"])
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.3)
    assert resp.status_code == 200 and resp.mimetype == "application/pdf", resp.status_code
    return resp.data


def test_the_embedded_worker_renders_a_queued_pdf(app_factory):
    from kaptools.rendering.queue import queue_for

    app = app_factory(TASK_QUEUE_URL="")  # a SQLite queue in the instance folder
    with app.app_context():
        load_demo()
        course = db.session.scalar(select(Course.id).where(Course.format == "intensive"))
    browser = Browser(app.test_client())
    browser.login("maya", "demo-maya-lind")
    first = browser.get(f"/courses/{course}/documents/summary.pdf")
    assert first.status_code == 302 and "/renders/" in first.headers["Location"]
    page = browser.get(first.headers["Location"])
    assert page.status_code == 200 and "Preparing your PDF" in page.get_data(as_text=True)
    consumer = queue_for(app).start_embedded(1)
    try:
        pdf = wait_for_pdf(browser, f"/courses/{course}/documents/summary.pdf")
    finally:
        consumer.stop(graceful=False)
    assert "Page 1 of" in pdf_pages(pdf)[0]
    # Once rendered, the same document is served at once, by any process.
    again = browser.get(f"/courses/{course}/documents/summary.pdf")
    assert again.status_code == 200 and again.data == pdf


def test_a_worker_process_on_its_own_renders_through_redis(app_factory, tmp_path):
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    client.ping()  # `make test` starts a Redis when none answers
    client.flushdb()
    app = app_factory(TASK_QUEUE_URL=REDIS_URL)
    with app.app_context():
        load_demo()
        course = db.session.scalar(select(Course.id).where(Course.format == "intensive"))
    env = {**os.environ, "KAPTOOLS_TASK_QUEUE_URL": REDIS_URL,
           "KAPTOOLS_DATABASE_URL": app.config["DATABASE_URL"],
           "KAPTOOLS_INSTANCE_PATH": app.instance_path, "KAPTOOLS_SECRET_KEY": "worker-key"}
    worker = subprocess.Popen([sys.executable, "-m", "kaptools", "worker", "--workers",
                               "1"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        browser = Browser(app.test_client())
        browser.login("maya", "demo-maya-lind")
        pdf = wait_for_pdf(browser, f"/courses/{course}/documents/packet.pdf")
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0].decode(errors="replace")
    assert "Supervision packet" in " ".join(pdf_pages(pdf)), output[-2000:]
    with app.app_context():
        job = db.session.scalar(select(RenderJob).order_by(RenderJob.id.desc()))
        assert job.status == "done" and job.pages == len(pdf_pages(pdf))
    client.flushdb()


def test_one_signed_session_lays_out_only_what_changed(app, maya, demo_course):
    from kaptools.rendering.parts import plan

    with app.test_request_context():
        from kaptools import documents

        course = db.session.get(Course, demo_course)
        first = plan(documents.build("summary", course)).parts
    wait_for_pdf(maya, f"/courses/{demo_course}/documents/summary.pdf")
    with app.app_context():
        parts_before = db.session.scalar(select(func.count()).select_from(RenderedPdf)
                                         .where(RenderedPdf.scope == "part"))
        draft = db.session.scalar(select(Note).where(Note.state == "draft"))
        notes.sign(draft, draft.author)
        db.session.commit()
    with app.test_request_context():
        course = db.session.get(Course, demo_course)
        second = plan(documents.build("summary", course)).parts
    changed = [a.key != b.key for a, b in zip(first, second, strict=True)]
    # Only the part of the one session whose note was signed, and the cover, whose
    # front page listed the draft (parts: cover, sessions...).
    assert sum(changed) == 2 and changed[0]
    pdf = wait_for_pdf(maya, f"/courses/{demo_course}/documents/summary.pdf")
    with app.app_context():
        parts_after = db.session.scalar(select(func.count()).select_from(RenderedPdf)
                                        .where(RenderedPdf.scope == "part"))
        job = db.session.scalar(select(RenderJob).order_by(RenderJob.id.desc()))
    # Two new parts, the session and the cover; the other sessions, and the sample the
    # page numbers are composed from, were reused.
    assert parts_after - parts_before == 2, (parts_before, parts_after)
    assert job.status == "done"
    pages = pdf_pages(pdf)
    assert all(f"Page {i} of {len(pages)}" in text for i, text in enumerate(pages, 1))


def test_a_summarys_parts_are_stored_ready_to_be_joined(app, maya, demo_course):
    """Each session's part is made ready to be joined in the render child that laid it
    out (its structure tree walked there, in parallel with the other parts) and stored
    that way, so that putting a document together never walks a stored part again; the
    IDs of every part carry the part's own prefix."""
    import pikepdf

    from kaptools.rendering.assemble import PREPARED

    pdf = wait_for_pdf(maya, f"/courses/{demo_course}/documents/summary.pdf")
    with app.app_context():
        parts = db.session.scalars(select(RenderedPdf).where(RenderedPdf.scope == "part"))
        prefixes = set()
        for row in parts:
            part = pikepdf.open(io.BytesIO(row.pdf))
            tree = part.Root.get("/StructTreeRoot")
            if tree is None:  # the page numbers' sample: untagged, laid over the pages
                continue
            assert PREPARED in tree, row.key
            prefixes.add(str(tree[PREPARED].Prefix))
            # Only content is detached to be joined, never the part's own Document.
            detached = list(tree[PREPARED].Detached)
            assert detached and all(e.S != pikepdf.Name.Document for e in detached), row.key
    assert len(prefixes) > 10  # the cover and each of the course's sessions
    whole = pikepdf.open(io.BytesIO(pdf))
    ids = [str(o.ID) for o in whole.objects
           if isinstance(o, pikepdf.Dictionary) and "/S" in o and "/ID" in o]
    assert ids and len(ids) == len(set(ids))
    assert {i.split("-")[0] + "-" for i in ids} <= prefixes


def test_an_assembled_document_keeps_its_bookmarks(app, maya, demo_course):
    pdf = wait_for_pdf(maya, f"/courses/{demo_course}/documents/summary.pdf")
    reader = PdfReader(io.BytesIO(pdf))
    top = reader.outline
    assert top[0].title == "Integration summary"
    children = top[1]
    titles = [item.title for item in children if not isinstance(item, list)]
    assert titles[0] == "Integration summary" or "Preparation" in " ".join(titles)
    assert sum("Dosing" in t for t in titles) == 4  # one bookmark per dosing session


def test_render_jobs_belong_to_the_person_who_asked(app, maya, demo_course):
    resp = maya.get(f"/courses/{demo_course}/documents/packet.pdf")
    assert resp.status_code == 200
    with app.app_context():
        job = db.session.scalar(select(RenderJob).order_by(RenderJob.id.desc()))
    ruth = Browser(app.test_client())
    ruth.login("ruth", "demo-ruth-okafor")  # Maya's supervisor: may read, not take
    for url in (f"/renders/{job.id}", f"/renders/{job.id}.json", f"/renders/{job.id}/pdf"):
        assert ruth.get(url).status_code == 404, url


def test_work_given_to_do_meanwhile_runs_once_while_the_children_lay_out(app):
    """Work this process does while the children lay out (marking the stored parts it
    found as used): ``meanwhile`` runs once, after the parts were handed out and before
    any is collected; it runs when there is nothing to lay out as well; and when it fails, the
    caller hears of it (the parts handed out are not waited for)."""
    from kaptools.rendering.engine import Limits, PartJob, render_parts

    page = "<!doctype html><html lang='en'><title>t</title><p>{}</p></html>"
    parts = [PartJob(f"p{i}", page.format(i)) for i in range(3)]
    limits = Limits(seconds=120, memory_mb=1536, processes=2, max_pages=100)
    seen: list[str] = []
    render_parts(parts, limits, time.monotonic() + 120,
                 lambda key, pdf, pages: seen.append(key), meanwhile=lambda: seen.append("m"))
    assert seen[0] == "m" and sorted(seen[1:]) == ["p0", "p1", "p2"]

    seen.clear()
    render_parts([], limits, time.monotonic() + 120, lambda *a: seen.append("done"),
                 meanwhile=lambda: seen.append("m"))
    assert seen == ["m"]

    def fails() -> None:
        raise ValueError("joining failed")

    with pytest.raises(ValueError, match="joining failed"):
        render_parts(parts, limits, time.monotonic() + 120, lambda *a: seen.append("done"),
                     meanwhile=fails)
    assert "done" not in seen


def test_when_taking_a_finished_part_fails_the_rest_is_not_laid_out(app, monkeypatch):
    """Parts are joined as they come back (in ``done``); when that fails (a damaged stored
    part, the database), the render's parts not started yet are taken back, so the
    children do not go on laying out a render that has already failed."""
    from kaptools.rendering import engine
    from kaptools.rendering.engine import Limits, PartJob, render_parts

    page = "<!doctype html><html lang='en'><title>t</title><p>{}</p></html>"
    limits = Limits(seconds=120, memory_mb=1536, processes=2, max_pages=100)
    handed: list[dict] = []
    real_submit = engine._POOL.submit

    def submit(parts, limits):
        pending, generation = real_submit(parts, limits)
        handed.append(dict(pending))
        return pending, generation

    monkeypatch.setattr(engine._POOL, "submit", submit)

    def fails(key, pdf, pages):
        raise ValueError("joining failed")

    with pytest.raises(ValueError, match="joining failed"):
        render_parts([PartJob(f"p{i}", page.format(i)) for i in range(12)], limits,
                     time.monotonic() + 120, fails)
    futures = list(handed[0])
    assert len(futures) == 12 and sum(f.cancelled() for f in futures) >= 1


def test_work_finished_by_the_deadline_is_kept_when_this_process_was_busy_past_it(app):
    """When this process's own work (``meanwhile``) runs past the render's deadline but
    every part is already laid out, the render is not failed for time, and the children
    are not killed."""
    from kaptools.rendering import engine
    from kaptools.rendering.engine import Limits, PartJob, render_parts

    page = "<!doctype html><html lang='en'><title>t</title><p>{}</p></html>"
    limits = Limits(seconds=120, memory_mb=1536, processes=2, max_pages=100)
    engine.warm_up(limits)
    generation = engine._POOL.generation
    seen: list[str] = []
    render_parts([PartJob(f"p{i}", page.format(i)) for i in range(2)], limits,
                 time.monotonic() + 1.0, lambda key, pdf, pages: seen.append(key),
                 meanwhile=lambda: time.sleep(4))  # past the deadline; the parts are done
    assert sorted(seen) == ["p0", "p1"]
    assert engine._POOL.generation == generation  # the children were kept


def test_parts_ready_to_be_joined_are_stored_under_keys_of_their_own(app, demo_course):
    """A stored part made ready to be joined cannot be taken for a part laid out by code
    from before that preparation (which would join it the old way) when both share the
    store, as during a rolling deploy; and the same part prepared twice is the same bytes."""
    from kaptools import documents
    from kaptools.rendering.parts import _part_key, plan
    from kaptools.rendering.weasy import html_to_pdf

    with app.test_request_context():
        parts = plan(documents.build("summary", db.session.get(Course, demo_course))).parts
    for part in parts:
        assert part.join_prefix and part.key != _part_key(part.html, True)
    html = parts[1].html
    assert html_to_pdf(html, pdf_ua=True, join_prefix="k1-") == \
        html_to_pdf(html, pdf_ua=True, join_prefix="k1-")


def test_page_furniture_is_laid_out_once_and_laid_over_every_page(app, maya, demo_course):
    """A part's pages carry only its content: the running heads, the confidentiality
    line and the content hash are laid out once for the document (two pages: the first
    page's, without running heads, and every other page's) and laid over its pages, each
    page referring to the same drawing."""
    import pikepdf

    pdf = wait_for_pdf(maya, f"/courses/{demo_course}/documents/summary.pdf")
    with app.app_context():
        rows = db.session.scalars(select(RenderedPdf).where(RenderedPdf.scope == "part")).all()
        title = db.session.get(Course, demo_course).title
    assert len(rows) > 10
    for row in rows:
        text = " ".join(pdf_pages(row.pdf))
        assert "Confidential health record" not in text and "Content SHA-256" not in text
        assert f"— {title}" not in text  # no running head
    pages = pdf_pages(pdf)
    for number, text in enumerate(pages, 1):
        assert "Confidential health record" in text and "Content SHA-256" in text, number
        assert f"Page {number} of {len(pages)}" in text
        assert (f"Integration summary — {title}" in text) == (number > 1), number
    # What is laid over the pages (marked as artifacts): a number for each page, and the
    # furniture drawn twice in all, not once for each page.
    whole = pikepdf.open(io.BytesIO(pdf))
    laid_over = {xobject.objgen for page in whole.pages
                 for xobject in page.Resources.get("/XObject", {}).values()
                 if xobject.read_bytes().startswith(b"/Artifact BMC")}
    assert len(laid_over) == len(pages) + 2


def test_parts_are_joined_while_the_children_lay_out_the_rest(app, demo_course,
                                                              monkeypatch):
    """Each part is joined as soon as it and every part before it are laid out, while the
    children lay out the rest, not all at once after the last; the pages still come in
    the document's order."""
    from kaptools import documents
    from kaptools.rendering import assemble, jobs
    from kaptools.rendering.parts import plan

    laid_out: list[str] = []  # parts reported laid out, in the order they were
    laid_out_when_joined: list[int] = []
    calls = []
    real_render_parts, real_add = jobs.render_parts, assemble.Assembly.add

    def render_parts(parts, limits, deadline, done, meanwhile=None):
        calls.append(deadline)

        def noted(key, pdf, pages):
            laid_out.append(key)
            done(key, pdf, pages)
        return real_render_parts(parts, limits, deadline, noted, meanwhile)

    def add(self, data):
        laid_out_when_joined.append(len(laid_out))
        real_add(self, data)

    monkeypatch.setattr(jobs, "render_parts", render_parts)
    monkeypatch.setattr(assemble.Assembly, "add", add)
    with app.test_request_context():
        doc = documents.build("summary", db.session.get(Course, demo_course))
        parts = plan(doc).parts
        pdf = documents.document_pdf(doc)
    # One round of layout: the parts, the page furniture and the numbers' sample (the
    # page numbers are composed from the sample, not laid out after the parts).
    assert len(calls) == 1
    assert len(laid_out_when_joined) == len(parts) > 10
    everything = len(laid_out)
    assert everything == len(parts) + 2
    assert sum(1 for n in laid_out_when_joined if n < everything) >= len(parts) // 2
    reader = PdfReader(io.BytesIO(pdf))

    def flat(items):
        for item in items:
            yield from flat(item) if isinstance(item, list) else [item]
    starts = [reader.get_destination_page_number(item) for item in flat(reader.outline)]
    assert len(starts) > len(parts) and starts == sorted(starts)


def _drawing(ops) -> list[tuple[str, list]]:
    """A page's or form's drawing, comparable: operators and operands (glyph strings as
    bytes, numbers as floats), without the artifact marks around a laid-over form."""
    drawn = []
    for operands, operator in ((op.operands, str(op.operator)) for op in ops):
        if operator in ("BMC", "EMC"):
            continue

        def plain(value):
            if isinstance(value, pikepdf.Array):
                return [plain(v) for v in value]
            if isinstance(value, pikepdf.String):
                return bytes(value)
            return float(value) if not isinstance(value, pikepdf.Name) else str(value)
        drawn.append((operator, [plain(v) for v in operands]))
    return drawn


def test_page_numbers_are_composed_exactly_as_they_would_be_laid_out(app):
    """Each page's "Page x of y" is composed from a sample laid out once (not laid out
    page by page after the parts): the same glyphs, advances, colour and right edge as
    laying that label out gives, for one to four digits; a count with more digits than
    the sample holds is not composed."""
    from flask import render_template

    from kaptools.rendering import numbers
    from kaptools.rendering.parts import numbers_sample_job
    from kaptools.rendering.weasy import html_to_pdf

    cases = [(1, 1), (7, 9), (20, 144), (144, 144), (999, 1500), (1088, 1500)]
    with app.test_request_context():
        sample_html = numbers_sample_job().html
        composer = numbers.Numbers.from_sample(html_to_pdf(sample_html))
        labels = [numbers.label(page, total) for page, total in cases]
        laid_out = pikepdf.open(io.BytesIO(html_to_pdf(
            render_template("print/overlay.html", labels=labels))))
    assert labels[-1] == "Page 1088 of 1500"
    out = pikepdf.Pdf.new()
    for (page, total), reference in zip(cases, laid_out.pages, strict=True):
        assert composer.covers(total)
        expected = _drawing(pikepdf.parse_content_stream(reference))
        composed = _drawing(pikepdf.parse_content_stream(composer.overlay(out, page, total)))
        assert [op for op, _ in composed] == [op for op, _ in expected]
        for (op, mine), (_op, theirs) in zip(composed, expected, strict=True):
            if op == "Tm":  # the position: the same to a thousandth of a point
                assert mine[:4] == theirs[:4] and mine[5] == theirs[5]
                assert abs(mine[4] - theirs[4]) < 1e-3, (page, total, mine, theirs)
            else:
                assert mine == theirs, (page, total, op)
    assert not composer.covers(10_000)  # five digits: laid out instead
    # Spacing the sample's layout did not give every glyph alike: not composed.
    spaced = sample_html.replace(
        "</style>", "@page { @bottom-right { letter-spacing: 0.3pt; } }</style>", 1)
    with pytest.raises(numbers.NotComposable):
        numbers.Numbers.from_sample(html_to_pdf(spaced))
    # Digits kerned (a TJ number after each, as a font that kerns digits gives, pair by
    # pair, for pairs the sample cannot all hold): not composed either.
    digit_codes = {glyph.code for glyph in composer._digits.values()}
    kerned = pikepdf.open(io.BytesIO(html_to_pdf(sample_html)))
    for page in kerned.pages:
        ops = list(pikepdf.parse_content_stream(page))
        for op in ops:
            if str(op.operator) == "TJ":
                run = op.operands[0]
                for i in range(len(run) - 1):
                    if isinstance(run[i], pikepdf.String) and bytes(run[i]) in digit_codes:
                        run[i + 1] = 30
        page.obj.Contents = kerned.make_stream(pikepdf.unparse_content_stream(ops))
    buffer = io.BytesIO()
    kerned.save(buffer)
    with pytest.raises(numbers.NotComposable, match="kerned"):
        numbers.Numbers.from_sample(buffer.getvalue())
    composer.close()


def test_print_layout_leaves_out_the_user_agent_rules_it_never_uses(app):
    """Print HTML is laid out with WeasyPrint's own user-agent stylesheet, but its rules
    for footnote and sidenote pseudo-elements apply only to elements with a style of
    their own (nothing else can make a footnote: print.css makes none and no attribute
    survives in a note's text), and ::marker only to list items: each of these rules cost
    the cascade a style for every element. Should a WeasyPrint upgrade change its
    stylesheet, the lean one is not made (its own is used) and this test says so."""
    from kaptools.rendering import weasy

    assert weasy.lean_ua_stylesheet() is not None
    page = ("<!doctype html><html lang='en'><title>t</title><body><ul><li>First item</li>"
            "</ul><p>Text<span style='float: footnote'>A footnote</span></p></body></html>")
    text = " ".join(pdf_pages(weasy.html_to_pdf(page)))
    assert "•" in text and "First item" in text
    assert "Text1" in text and "1. A footnote" in text  # still numbered, call and note


def test_font_subsetting_parses_no_c_declaration_per_glyph_count(app, monkeypatch):
    """WeasyPrint subsets each font with the glyphs a document uses, handing HarfBuzz an
    array typed by its length ("hb_codepoint_t[57]"); cffi parses each new such type
    with its C parser, a few milliseconds each, in every render child again. The arrays
    are made as open arrays sized by their items instead: documents with new glyph counts
    parse nothing, and their embedded fonts are exactly those the plain arrays make."""
    from cffi import cparser
    from fontTools.ttLib import TTFont
    from weasyprint.pdf import fonts
    from weasyprint.text.ffi import ffi

    from kaptools.rendering import weasy

    # Laid out first, so that the fixed types every document's fonts use ("char[4]",
    # "hb_tag_t[100]") are parsed before the spy looks; and no glyph count is taken as
    # already parsed by an earlier document of this process.
    weasy.html_to_pdf("<!doctype html><html lang='en'><title>t</title><p>warm</p></html>")
    for cdecl in [c for c in ffi._parsed_types if c.startswith("hb_codepoint_t[")]:
        monkeypatch.delitem(ffi._parsed_types, cdecl)
    parsed: list[str] = []
    original = cparser.Parser.parse_type

    def parse_type(self, cdecl):
        parsed.append(cdecl)
        return original(self, cdecl)

    def font_programs(pdf: bytes) -> list[bytes]:
        """Every embedded font's tables but its header (which carries a timestamp)."""
        programs = []
        for page in pikepdf.open(io.BytesIO(pdf)).pages:
            for font in page.Resources.Font.values():
                embedded = font.DescendantFonts[0].FontDescriptor.FontFile2.read_bytes()
                tables = TTFont(io.BytesIO(embedded))
                programs.append(b"".join(tag.encode() + tables.getTableData(tag)
                                         for tag in sorted(tables.reader.keys())
                                         if tag != "head"))
        return programs

    monkeypatch.setattr(cparser.Parser, "parse_type", parse_type)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for count in (7, 19, 31, 44):
        words = " ".join([letters[:count]] * 2)
        page = (f"<!doctype html><html lang='en'><title>t</title><p>{words}"
                f"<strong>{words[::-1]}</strong></p></html>")
        parsed.clear()
        wrapped = weasy.html_to_pdf(page)
        assert [cdecl for cdecl in parsed if re.search(r"\[\d+\]", cdecl)] == []
        with monkeypatch.context() as plain:  # the plain FFI (which parses each count)
            plain.setattr(fonts, "ffi", ffi)
            unwrapped = weasy.html_to_pdf(page)
        assert any(re.fullmatch(r"hb_codepoint_t\[\d+\]", cdecl) for cdecl in parsed)
        assert letters[:count] in " ".join(pdf_pages(wrapped))
        assert len(font_programs(wrapped)) == 2
        assert font_programs(wrapped) == font_programs(unwrapped)


def test_the_html_parser_makes_each_run_pattern_once_and_parses_the_same(app, monkeypatch):
    """The HTML parser reads runs of text and attribute values with patterns it means to
    make once, but its cache never answered (it filed each pattern under the pattern):
    every run made its pattern again. With the layout engine prepared, a second parse of
    a print page makes no pattern at all, and every document parses to the same tree as
    with the parser's own cache."""
    import xml.etree.ElementTree as ET

    import tinyhtml5
    from tinyhtml5 import inputstream

    from kaptools.rendering import weasy

    weasy.prepare_layout()
    page = ("<!doctype html><html lang='en'><head><title>t</title>"
            "<link rel='stylesheet' href='/static/css/print.css'></head><body class=summary>"
            "<div class='view-field' id=\"f-1\"><div class=view-label>Label &amp; more</div>"
            "<div class=view-value><p>Text &lt;not a tag&gt; with\u00a0spaces, "
            "<em>emphasis</em> and an &#x2013; entity.</p></div></div>"
            "<table><tr><th scope=col>#</th><td data-x=`unquoted`>1</td></tr></table>"
            "<!-- a comment --><pre>  kept\n  as is</pre></body></html>")
    tinyhtml5.parse(page, namespace_html_elements=False)  # makes each pattern once

    made: list[str] = []

    class Spy:
        def __getattr__(self, name):
            return getattr(re, name)

        def compile(self, pattern, *args):
            made.append(pattern)
            return re.compile(pattern, *args)

    monkeypatch.setattr(inputstream, "re", Spy())
    ours = tinyhtml5.parse(page, namespace_html_elements=False)
    assert made == []
    monkeypatch.setattr(inputstream, "characters_until_regex", {})  # the parser's own
    theirs = tinyhtml5.parse(page, namespace_html_elements=False)
    assert made  # which makes patterns at every run
    assert ET.tostring(ours) == ET.tostring(theirs)
    assert "kept\n  as is" in ET.tostring(ours, encoding="unicode")


def test_render_children_warm_up_with_a_part_like_a_real_one(app):
    """A render child lays out a session-shaped part, tagged and made ready to be joined,
    before the first real part arrives: what a first layout loads once per process is
    loaded while nothing waits. A warm-up that stopped working would do so silently (its
    outcome is not reported), so this checks it lays out."""
    from kaptools.rendering import child

    outcome = child.render(child.WARM_UP, True, "warm-up-")
    assert outcome[0] == "ok", outcome
    text = " ".join(pdf_pages(outcome[1]))
    assert "The quick brown fox" in text and "0123456789abcdef" in text
    assert "/KaptoolsJoin" in pikepdf.open(io.BytesIO(outcome[1])).Root.StructTreeRoot


MAIN_SCRIPT = """
import os, sys, time
with open(os.environ["KT_IMPORTED"], "a") as marks:  # each process that runs this file
    marks.write(f"{os.getpid()}\\n")
if __name__ == "__main__":
    from kaptools.rendering.engine import Limits, PartJob, render_parts
    limits = Limits(seconds=120, memory_mb=1536, processes=2, max_pages=100)
    parts = [PartJob(str(i), f"<!doctype html><title>t</title><p>{i}</p>") for i in range(4)]
    done = []
    render_parts(parts, limits, time.monotonic() + 120, lambda key, pdf, n: done.append(key))
    print(len(done))
"""


def test_render_children_do_not_each_import_the_programs_main_module(tmp_path):
    """Started from a script (the ``kaptools`` command, a worker's entry point), the
    render children of a fork server each ran that script again (multiprocessing makes
    the main module importable in a child): every child imported the whole application
    before its first part (about 0.6 s of CPU and its memory, after every recycling).
    The fork server imports it once, and its children inherit it."""
    script, marks = tmp_path / "main_script.py", tmp_path / "imported.txt"
    script.write_text(MAIN_SCRIPT)
    env = {**os.environ, "KT_IMPORTED": str(marks),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "4"  # every part was laid out
    importers = marks.read_text().split()
    # The program itself and its fork server; none of the two render children.
    assert len(importers) == 2, importers


# A script that renders with no ``if __name__ == "__main__":`` guard. Each process that
# runs it notes how deeply it is nested; past NESTING_STOP it stops itself at once (so
# the test ends even where the script would run again and again without end).
UNGUARDED_SCRIPT = """
import os, time
depth = int(os.environ.get("KT_DEPTH", "0"))
with open(os.environ["KT_IMPORTED"], "a") as marks:
    marks.write(f"{depth} {os.getpid()}\\n")
if depth >= int(os.environ["KT_NESTING_STOP"]):
    os._exit(0)
os.environ["KT_DEPTH"] = str(depth + 1)
from kaptools.rendering.engine import Limits, PartJob, render_parts
limits = Limits(seconds=60, memory_mb=1536, processes=2, max_pages=100)
render_parts([PartJob("1", "<!doctype html><title>t</title><p>1</p>")], limits,
             time.monotonic() + 60, lambda key, pdf, n: None)
print("rendered")
"""


def test_a_script_that_renders_without_a_main_guard_is_told_so_and_forks_no_further(
        tmp_path):
    """A script that renders with no main guard was run again by the fork server of its
    render children (to spare each child importing it); there it rendered too, starting
    a fork server of its own, which ran the script again: processes without end, until
    the machine's memory was gone (seen: 535 processes and 24 GiB in 25 minutes).
    Python's own rule for such a script holds in the fork server as in its children: it
    may not start processes while it is being imported, and the error says why."""
    script, marks = tmp_path / "unguarded.py", tmp_path / "imported.txt"
    script.write_text(UNGUARDED_SCRIPT)
    env = {**os.environ, "KT_IMPORTED": str(marks), "KT_NESTING_STOP": "3",
           "PYTHONPATH": str(ROOT)}
    env.pop("KT_DEPTH", None)
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        try:  # whatever it started, ended with it
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
    depths = sorted(int(line.split()[0]) for line in marks.read_text().splitlines())
    # The script itself (0), its fork server (1), whose import stops at the render, and
    # the render children, each stopped the same way (2): no fork server of a fork server.
    assert max(depths) <= 2, depths
    assert depths.count(1) == 1, depths
    assert proc.returncode != 0 and "rendered" not in out
    assert "if __name__ == '__main__':" in err, err[-3000:]


GUARDED_SCRIPT = """
import time
from kaptools.rendering.engine import Limits, PartJob, render_parts
if __name__ == "__main__":
    limits = Limits(seconds=60, memory_mb=1536, processes=2, max_pages=100)
    render_parts([PartJob("1", "<!doctype html><title>t</title><p>1</p>")], limits,
                 time.monotonic() + 60, lambda key, pdf, n: None)
    print("rendered", flush=True)
    time.sleep(600)
"""


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children first."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    stat = handle.read()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, wanted = [], [pid]
    while wanted:
        below = [child for child, parent in parents.items() if parent in wanted]
        found += below
        wanted = below
    return found


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


def test_render_processes_end_when_the_process_that_started_them_is_killed(tmp_path):
    """A web or worker process stopped hard (SIGKILL, the out-of-memory killer, a service
    manager's SIGTERM to a process that does not catch it) left its render processes
    behind for good: each child held the fork server's "alive" pipe open, so the server
    never saw its starter go, and the children waited on it (seen: a stopped demo's three
    processes, 300 MiB, still there half an hour later). Now they all end with it."""
    script = tmp_path / "renders_and_waits.py"
    script.write_text(GUARDED_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "rendered"
        started = _descendants(proc.pid)
        assert len(started) >= 3  # the fork server and its two render children at least
        os.kill(proc.pid, 9)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        left = [pid for pid in started if _running(pid)]
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = [pid for pid in started if _running(pid)]
        assert left == [], [Path(f"/proc/{pid}/cmdline").read_text()[:120] for pid in left]
    finally:
        for pid in [proc.pid] + _descendants(proc.pid):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
        proc.stdout.close()


def test_parts_are_handed_to_the_children_as_they_are_made(app):
    """render_parts takes parts as they are made (a summary's print HTML is rendered part
    by part while the children lay out the first): every part is laid out; when making
    one fails, what was handed over is taken back and the failure reaches the caller,
    and the children go on serving the next render."""
    from kaptools.rendering.engine import Limits, PartJob, render_parts

    page = "<!doctype html><html lang='en'><title>t</title><p>{}</p></html>"
    limits = Limits(seconds=120, memory_mb=1536, processes=2, max_pages=100)
    made: list[str] = []

    def parts(fail_after: int | None = None):
        for i in range(4):
            if i == fail_after:
                raise ValueError("a template failed")
            made.append(f"p{i}")
            yield PartJob(f"p{i}", page.format(i))

    seen: list[str] = []
    render_parts(parts(), limits, time.monotonic() + 120,
                 lambda key, pdf, pages: seen.append(key))
    assert sorted(seen) == made == ["p0", "p1", "p2", "p3"]
    seen.clear()
    with pytest.raises(ValueError, match="a template failed"):
        render_parts(parts(fail_after=2), limits, time.monotonic() + 120,
                     lambda key, pdf, pages: seen.append(key))
    assert seen == []
    render_parts(parts(), limits, time.monotonic() + 120,
                 lambda key, pdf, pages: seen.append(key))
    assert sorted(seen) == ["p0", "p1", "p2", "p3"]


def test_the_same_pdf_stored_twice_is_kept_once(app):
    """Two workers that rendered the same content store it under the same key: the second
    is skipped, without an error and without undoing anything else in the transaction."""
    from kaptools.rendering import store

    with app.app_context():
        store.put("k" * 64, store.PART, b"%PDF-first", 1, evict=False)
        store.put("k" * 64, store.PART, b"%PDF-second", 1)
        db.session.commit()
        rows = db.session.scalars(select(RenderedPdf)).all()
        assert [(r.key, r.pdf) for r in rows] == [("k" * 64, b"%PDF-first")]
        assert store.get("k" * 64).pdf == b"%PDF-first"


def test_children_that_die_while_parts_are_handed_over_are_replaced(app):
    """When the render children die while a document's parts are still being made and
    handed to them (a child past its memory limit), the render ends with the cause
    named, the children are replaced, and the next render works."""
    from kaptools.rendering import engine
    from kaptools.rendering.engine import Limits, PartJob, RenderLimitExceeded, render_parts

    page = "<!doctype html><html lang='en'><title>t</title><p>{}</p></html>"
    limits = Limits(seconds=120, memory_mb=1536, processes=2, max_pages=100)
    engine.warm_up(limits)

    def parts():
        yield PartJob("p0", page.format(0))
        executor = engine._POOL._executor
        engine._kill(executor)  # as the kernel would, past the memory limit
        for _ in range(200):
            if getattr(executor, "_broken", False):
                break
            time.sleep(0.05)
        yield PartJob("p1", page.format(1))

    with pytest.raises(RenderLimitExceeded) as stopped:
        render_parts(parts(), limits, time.monotonic() + 120, lambda *a: None)
    assert stopped.value.cause == "memory"
    seen: list[str] = []
    render_parts([PartJob("p2", page.format(2))], limits, time.monotonic() + 120,
                 lambda key, pdf, pages: seen.append(key))
    assert seen == ["p2"]
