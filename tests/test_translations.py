"""Ready for translation (issue 13): every word of the product's pages and paper goes
through gettext, the extracted catalogue is current, and a clinic's catalogue changes
what users read (pages, messages, form labels) without touching clinical content."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import Environment

from kaptools.i18n import TRANSLATIONS
from kaptools.resources import resource_dir
from tests import factories
from tests.conftest import signed_in

TEMPLATES = resource_dir("templates")
TEMPLATE_FILES = sorted(p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.html"))
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None,
            "_l": None, "N_": None, "css_content": None, "pgettext": ((1, "c"), 2)}
MARKERS = {"_", "gettext", "ngettext", "pgettext", "css_content"}
# Attributes whose values people read (or hear, with a screen reader).
READ_ATTRIBUTES = re.compile(
    r"""\b(title|aria-label|aria-description|placeholder|alt|data-confirm[\w-]*|"""
    r"""data-[\w-]*(?:label|message|text))\s*=\s*"([^"]*)\"""")
# Words that are the same in every language.
UNTRANSLATED = {"kaptools"}
HOLE = "\x00"


def unmarked(source: str) -> list[str]:
    """Text of a Jinja template that people read and that is not marked for translation:
    words between tags, in read attributes, and capitalised string literals in
    expressions, outside ``{% trans %}`` blocks and ``_()`` calls."""
    env = Environment(extensions=["jinja2.ext.i18n"])
    pieces: list[str] = []
    found: list[str] = []
    in_trans = False
    calls: list[str | None] = []
    last_name: str | None = None
    block_start = False
    for _line, kind, value in env.lex(source):
        if kind == "block_begin":
            block_start = True
            continue
        if kind == "name" and block_start:
            if value == "trans":
                in_trans = True
            elif value == "endtrans":
                in_trans = False
        if kind not in ("whitespace",):
            block_start = False if kind != "block_begin" else block_start
        if kind == "data":
            pieces.append(HOLE if in_trans else value)
            continue
        pieces.append(HOLE)
        if kind == "name":
            last_name = value
            continue
        if kind == "operator" and value == "(":
            calls.append(last_name)
        elif kind == "operator" and value == ")" and calls:
            calls.pop()
        if kind == "string" and not in_trans and not (MARKERS & set(calls)) \
                and re.search(r"[A-Z][a-z]", value) and " " in value.strip():
            found.append(value[1:-1])
        last_name = None
    text = "".join(pieces)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"<(script|style)\b.*?</\1>", HOLE, text, flags=re.S | re.I)
    for _name, value in READ_ATTRIBUTES.findall(text):
        if _words(value):
            found.append(value)
    text = re.sub(r"<[^>]*>", HOLE, text, flags=re.S)
    text = re.sub(r"&[#\w]+;", " ", text)
    for chunk in text.split(HOLE):
        if _words(chunk):
            found.append(" ".join(chunk.split()))
    return found


def _words(text: str) -> bool:
    words = re.findall(r"[^\W\d_]{2,}", text.replace(HOLE, " "))
    return any(w not in UNTRANSLATED for w in words)


def test_the_check_finds_what_it_should():
    assert unmarked("<p>Sign out</p>") == ["Sign out"]
    assert unmarked('<a title="Open the note" href="{{ u }}">{{ _("Open") }}</a>') == \
        ["Open the note"]
    assert unmarked("{{ button('Sign and lock') }}") == ["Sign and lock"]
    assert unmarked("{% trans n=3 %}{{ n }} notes{% endtrans %}") == []
    assert unmarked('<p>{{ _("Sign out") }} · kaptools</p><b class="x">{{ v }}</b>') == []
    assert unmarked("<script>const a = 'Hello there';</script>") == []


@pytest.mark.parametrize("name", TEMPLATE_FILES)
def test_every_word_of_every_template_is_marked_for_translation(name):
    source = (TEMPLATES / name).read_text(encoding="utf-8")
    assert unmarked(source) == []


def extracted() -> set[str]:
    root = Path(__file__).resolve().parent.parent
    method_map = [("kaptools/**.py", "python"), ("templates/**.html", "jinja2")]
    return {message if isinstance(message, str) else message[0]
            for _f, _l, message, _c, _x in extract_from_dir(
                root, method_map=method_map, keywords=KEYWORDS,
                directory_filter=lambda d: not Path(d).name.startswith("."))}


def test_the_shipped_catalogue_template_is_current():
    """``make messages`` was run after the last change to the product's words."""
    with open(TRANSLATIONS / "messages.pot", "rb") as handle:
        shipped = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id}
    now = extracted()
    assert now - shipped == set(), "new words: run `make messages`"
    assert shipped - now == set(), "words gone: run `make messages`"
    # Pages, Python messages and paper alike.
    assert {"Sign out", "Export record"} <= now


@pytest.fixture
def german(tmp_path):
    """A clinic catalogue (a few words) in its own folder."""
    catalog = Catalog(locale="de")
    for english, german in [("Clients", "Klienten"), ("Sign out", "Abmelden"),
                            ("Client code", "Klientenkürzel")]:
        catalog.add(english, german)
    folder = tmp_path / "translations" / "de" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    with open(folder / "messages.mo", "wb") as handle:
        write_mo(handle, catalog)
    return tmp_path / "translations"


def test_a_clinic_catalogue_changes_the_words_people_read(app_factory, german):
    app = app_factory(CLINIC_LOCALE="de", BABEL_TRANSLATION_DIRECTORIES=str(german))
    with app.app_context():
        factories.user("maya")
    browser = signed_in(app, "maya")
    page = browser.get("/clients/new").get_data(as_text=True)
    assert "Abmelden" in page and "Sign out" not in page
    assert '<html lang="de">' in page
    assert "Klientenkürzel" in page  # a form label, defined in Python before any request
    assert "Klienten" in page


def test_english_is_used_where_no_catalogue_exists(app_factory):
    app = app_factory(CLINIC_LOCALE="fr_FR")
    with app.app_context():
        factories.user("maya")
    page = signed_in(app, "maya").get("/clients/new").get_data(as_text=True)
    assert "Sign out" in page
    assert '<html lang="en">' in page  # what it says is English, whatever the dates


def test_printed_documents_speak_the_clinic_language_and_are_stored_apart(app_factory, german,
                                                                           tmp_path):
    """The running feet of a summary come from the catalogue too (a CSS string, escaped),
    and an English PDF already stored is not handed out once a catalogue is installed."""
    import io
    import re

    from pypdf import PdfReader
    from sqlalchemy import select

    from kaptools import documents
    from kaptools.demo import load_demo
    from kaptools.extensions import db
    from kaptools.models import Course

    def feet(pdf: bytes) -> str:
        return re.sub(r"\s+", " ", PdfReader(io.BytesIO(pdf)).pages[0].extract_text() or "")

    english = app_factory()
    with english.test_request_context():
        load_demo()
        course = db.session.scalar(select(Course).where(Course.format == "intensive"))
        pdf = documents.document_pdf(documents.build("summary", course))
        assert "Confidential health record" in feet(pdf)
    catalog = Catalog(locale="de")
    # Quotes and a backslash would end a CSS string early if they were not escaped.
    catalog.add("Confidential health record", 'Vertrauliche "Akte" \\ Klinik')
    catalog.add("Page %(page)s of %(total)s", "Seite %(page)s von %(total)s")
    with open(german / "de" / "LC_MESSAGES" / "messages.mo", "wb") as handle:
        write_mo(handle, catalog)
    translated = app_factory(CLINIC_LOCALE="de", BABEL_TRANSLATION_DIRECTORIES=str(german),
                             DATABASE_URL=english.config["SQLALCHEMY_DATABASE_URI"])
    with translated.test_request_context():
        course = db.session.scalar(select(Course).where(Course.format == "intensive"))
        text = feet(documents.document_pdf(documents.build("summary", course)))
    assert 'Vertrauliche "Akte" \\ Klinik' in text
    assert "Seite 1 von" in text and "Confidential health record" not in text


@pytest.mark.parametrize("label", [
    # Too long for the page-number box: it wraps onto two lines.
    "Seite %(page)s von %(total)s (so viele Seiten hat dieses Dokument insgesamt)",
    # Right to left, in a fallback font: glyphs not in the order of the characters.
    "עמוד %(page)s מתוך %(total)s",
])
def test_page_numbers_a_translation_cannot_compose_are_laid_out_page_by_page(
        app_factory, german, caplog, label):
    """Page numbers are composed from a laid-out sample only when the sample proves that
    exact; a translated label that wraps or runs right to left is laid out for every
    page instead, and every page still carries its own number."""
    import io
    import logging
    import re

    from pypdf import PdfReader
    from sqlalchemy import select

    from kaptools import documents
    from kaptools.demo import load_demo
    from kaptools.extensions import db
    from kaptools.models import Course
    from kaptools.rendering.numbers import NotComposable, Numbers
    from kaptools.rendering.parts import numbers_sample_job
    from kaptools.rendering.weasy import html_to_pdf

    catalog = Catalog(locale="de")
    catalog.add("Page %(page)s of %(total)s", label)
    with open(german / "de" / "LC_MESSAGES" / "messages.mo", "wb") as handle:
        write_mo(handle, catalog)
    app = app_factory(CLINIC_LOCALE="de", BABEL_TRANSLATION_DIRECTORIES=str(german))
    with app.test_request_context():
        with pytest.raises(NotComposable, match="not one positioned run"):
            Numbers.from_sample(html_to_pdf(numbers_sample_job().html))
        load_demo()
        course = db.session.scalar(select(Course).where(Course.format == "intensive"))
        with caplog.at_level(logging.WARNING, logger="kaptools.rendering"):
            pdf = documents.document_pdf(documents.build("summary", course))
    assert "page numbers laid out page by page" in caplog.text
    pages = [re.sub(r"\s+", " ", p.extract_text() or "") for p in PdfReader(io.BytesIO(pdf)).pages]
    assert len(pages) > 10
    for number, text in enumerate(pages, 1):
        if label.startswith("Seite"):
            assert f"Seite {number} von {len(pages)} (so viele Seiten" in text, number
        else:  # extracted in an order of its own: the numbers are there
            assert re.search(rf"(?<!\d){number}(?!\d)", text) and str(len(pages)) in text


def test_every_word_the_page_scripts_write_is_in_the_catalogue():
    """Scripts look their words up in the page (#kt-words, from ``SCRIPT_WORDS``): a word
    a script writes that is not listed there would stay English."""
    from kaptools.i18n import SCRIPT_WORDS

    scripts = resource_dir("static") / "js"
    used = set()
    for script in scripts.glob("*.js"):
        source = script.read_text(encoding="utf-8")
        used |= set(re.findall(r'\bt\(\s*"((?:[^"\\]|\\.)*)"', source))
        # A message chosen between two literals: t(cond ? "A" : "B").
        for a, b in re.findall(r'\bt\([^()]*?\?\s*"([^"]*)"\s*:\s*"([^"]*)"', source,
                               flags=re.S):
            used |= {a, b}
        # What is left between tags and quotes is not a word people read.
        for literal in re.findall(r'textContent\s*=\s*"([^"]+)"', source):
            assert not re.search(r"[^\W\d_]{2,}", literal), (script.name, literal)
    assert used, "the check found no words at all"
    assert used - set(SCRIPT_WORDS) == set()


def test_the_page_scripts_receive_the_clinic_words(app_factory, german):
    catalog = Catalog(locale="de")
    catalog.add("All changes saved", "Alles gespeichert")
    with open(german / "de" / "LC_MESSAGES" / "messages.mo", "wb") as handle:
        write_mo(handle, catalog)
    app = app_factory(CLINIC_LOCALE="de", BABEL_TRANSLATION_DIRECTORIES=str(german))
    with app.app_context():
        factories.user("maya")
    page = signed_in(app, "maya").get("/").get_data(as_text=True)
    assert '<script type="application/json" id="kt-words">' in page
    assert '"All changes saved": "Alles gespeichert"' in page


def test_a_translation_with_a_wrong_placeholder_does_not_stop_printing(app_factory, german):
    from kaptools.i18n import css_content

    catalog = Catalog(locale="de")
    catalog.add("Page %(page)s of %(total)s", "Seite %(seite)s von %(total)s")  # a typo
    with open(german / "de" / "LC_MESSAGES" / "messages.mo", "wb") as handle:
        write_mo(handle, catalog)
    app = app_factory(CLINIC_LOCALE="de", BABEL_TRANSLATION_DIRECTORIES=str(german))
    with app.test_request_context():
        said = css_content("Page %(page)s of %(total)s", page="counter(page)",
                           total="counter(pages)")
    assert said == '"Page " counter(page) " of " counter(pages)'


def test_the_research_export_list_counts_in_words_that_agree(app_factory):
    """One template, five notes: "5 notes of 1 template" (the plural follows the count of
    templates, not of notes)."""
    from kaptools import audit
    from kaptools.extensions import db

    app = app_factory()
    with app.app_context():
        factories.user("admin", role="admin")
        audit.record("export.research", username="cli",
                     detail={"notes": 5, "templates": ["phq-9"], "reason": "Audit"})
        audit.record("export.research", username="cli",
                     detail={"notes": 1, "templates": ["phq-9", "gad-7"], "reason": "Audit"})
        db.session.commit()
    page = signed_in(app, "admin").get("/admin/exports/research").get_data(as_text=True)
    assert "5 notes of 1 template" in page and "5 notes of 1 templates" not in page


# Every way a template says words, in an escaping page and (``{% autoescape false %}``) not.
TEMPLATE_WORDS = [
    '{{ _("Sign out") }}',
    '{{ gettext("Clients") }}',
    '{{ _("Nothing here") }}',
    '{{ _("100%% certain") }}',
    '{{ _("Signed by %(name)s", name=who) }}',
    '{% trans %}Sign out{% endtrans %}',
    '{% trans name=who %}Signed by {{ name }}{% endtrans %}',
    '{% trans n=3 %}{{ n }} note{% pluralize %}{{ n }} notes{% endtrans %}',
    '{{ _(\'Say "%(what)s"\', what=who) }}',
]


def _as_jinja_says(catalogue, source: str) -> str:
    """What Jinja's own "new style" gettext makes of ``source`` with ``catalogue``."""
    env = Environment(extensions=["jinja2.ext.i18n"], autoescape=True)
    env.install_gettext_callables(gettext=catalogue.ugettext, ngettext=catalogue.ungettext,
                                  newstyle=True)
    return env.from_string(source).render(who="<b>Rowan & Co</b>")


@pytest.mark.parametrize("source", TEMPLATE_WORDS + [
    "{% autoescape false %}" + s + "{% endautoescape %}" for s in TEMPLATE_WORDS])
def test_pages_say_their_words_as_jinja_would_in_each_clinic_language(app_factory, german,
                                                                      source):
    """kaptools' own template gettext (made once per message and catalogue) says what
    Jinja's does: translated, ``%%`` as ``%``, what is filled in escaped on a page; and one
    clinic's words never show in another's, in the same process."""
    from flask_babel import get_translations

    english = app_factory()
    deutsch = app_factory(CLINIC_LOCALE="de", BABEL_TRANSLATION_DIRECTORIES=str(german))
    said = {}
    for name, app in [("en", english), ("de", deutsch), ("en again", english)]:
        with app.test_request_context():
            page = app.jinja_env.from_string(source).render(who="<b>Rowan & Co</b>")
            assert page == _as_jinja_says(get_translations(), source)
            said[name] = page
    assert said["en"] == said["en again"]
    if "Sign out" in source:
        assert said["en"] == "Sign out" and said["de"] == "Abmelden"
    if "Rowan" in said["en"]:
        escaping = "autoescape false" not in source
        assert ("&lt;b&gt;Rowan &amp; Co" in said["en"]) is escaping
        assert ("<b>Rowan & Co</b>" in said["en"]) is not escaping
