"""HTML to PDF with WeasyPrint, through a fetcher that only serves bundled files.

WeasyPrint is imported here and only here, on first use: the web process, the CLI and
``kaptools --help`` start without it.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..resources import resource_dir

# Print HTML links its assets as /static/...; WeasyPrint resolves them against this
# base, and the fetcher maps exactly this origin onto the bundled static folder.
BASE_URL = "https://kaptools.invalid/"
STATIC_PREFIX = "/static/"
MAX_HTML_BYTES = 8 * 1024 * 1024
CONTENT_TYPES = {".css": "text/css", ".woff": "font/woff", ".woff2": "font/woff2",
                 ".ttf": "font/ttf", ".svg": "image/svg+xml", ".png": "image/png"}


class RefusedResource(ValueError):
    """A document asked for something outside the bundled static files."""


_FETCHER_CLASS = None
_HTML_CLASS = None
_FONT_CONFIG = None
_LOCK = threading.Lock()


def static_only_fetcher(static_root: Path | None = None):
    """A WeasyPrint URL fetcher serving bundled static files and data: URIs only."""
    global _FETCHER_CLASS
    with _LOCK:
        if _FETCHER_CLASS is None:
            _FETCHER_CLASS = _define_fetcher()
    return _FETCHER_CLASS(static_root)


def _define_fetcher():
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class StaticOnlyFetcher(URLFetcher):
        """Serve bundled static files and data: URIs; refuse everything else."""

        def __init__(self, static_root: Path | None = None) -> None:
            super().__init__(allowed_protocols={"data"}, allow_redirects=False)
            self.static_root = (static_root or resource_dir("static")).resolve()
            self.refused: list[str] = []

        def fetch(self, url: str, headers=None):
            if url.startswith("data:"):
                return super().fetch(url, headers)
            parts = urlsplit(url)
            if f"{parts.scheme}://{parts.netloc}/" == BASE_URL and \
                    parts.path.startswith(STATIC_PREFIX) and not parts.query:
                relative = unquote(parts.path[len(STATIC_PREFIX):])
                path = (self.static_root / relative).resolve()
                if path.is_file() and path.is_relative_to(self.static_root):
                    return URLFetcherResponse(url, body=path.read_bytes(), headers={
                        "Content-Type": CONTENT_TYPES.get(path.suffix,
                                                          "application/octet-stream")})
            self.refused.append(url[:200])
            raise RefusedResource(f"refused to fetch {url[:200]!r}: only bundled files are "
                                  "allowed")

    return StaticOnlyFetcher


def font_config():
    """One WeasyPrint font configuration per process."""
    global _FONT_CONFIG
    with _LOCK:
        if _FONT_CONFIG is None:
            from weasyprint.text.fonts import FontConfiguration

            _FONT_CONFIG = FontConfiguration()
        return _FONT_CONFIG


# The print stylesheet as the print templates link it. Parsing it (selectors, fonts) costs
# about as much as laying out a short part, so each process parses it once and hands the
# parsed sheet to every render (as a user stylesheet: it then sits below the document's
# own <style> in the cascade, exactly as a first <link> does, and it has no !important).
PRINT_CSS_LINK = '<link rel="stylesheet" href="/static/css/print.css">'
_PRINT_CSS: dict[float, object] = {}


def print_stylesheet():
    """The parsed print stylesheet (parsed again only when the file changes)."""
    from weasyprint import CSS

    path = resource_dir("static") / "css" / "print.css"
    stamp = path.stat().st_mtime
    with _LOCK:
        sheet = _PRINT_CSS.get(stamp)
    if sheet is None:
        sheet = CSS(url=BASE_URL + "static/css/print.css", url_fetcher=static_only_fetcher(),
                    font_config=font_config())
        with _LOCK:
            _PRINT_CSS.clear()
            _PRINT_CSS[stamp] = sheet
    return sheet


# WeasyPrint's user-agent stylesheet styles six footnote and sidenote pseudo-elements
# (::footnote-call to ::note-callback) and ::marker on every element, so the cascade
# computes seven styles more for each element of a document: about one in twenty of a
# part's layout time. Print HTML is laid out with the same stylesheet, those rules
# narrowed to where they can matter: the note rules to elements with a style attribute
# (print.css makes no footnote, and no attribute survives in a note's text: a footnote
# needs a style of its own) and ::marker to list items.
_NOTE_RULES = re.compile(
    r"^(::(?:footnote-call|footnote-marker|note-call|note-marker|note-callback) \{)",
    re.MULTILINE)
_MARKER_RULE = re.compile(r"^::marker \{", re.MULTILINE)
# Part of every stored part's key (parts.render_version): new rules, new keys.
LAYOUT_RULES = "lean-ua-1"
_LEAN_UA: list = []


def lean_ua_stylesheet():
    """WeasyPrint's own user-agent stylesheet with the rules above narrowed, or None when
    this WeasyPrint's stylesheet is not the one this was written for (its own is then
    used as it is)."""
    with _LOCK:
        if not _LEAN_UA:
            from weasyprint.css.counters import CounterStyle
            from weasyprint.html import UA

            text, notes = _NOTE_RULES.subn(r"[style]\1", UA)
            text, markers = _MARKER_RULE.subn("li::marker {", text)
            sheet = None
            if notes == 5 and markers == 1:
                from weasyprint import CSS

                sheet = CSS(string=text, counter_style=CounterStyle())
            _LEAN_UA.append(sheet)
        return _LEAN_UA[0]


# WeasyPrint subsets each embedded font through HarfBuzz and hands it the glyphs to keep
# as ``ffi.new(f"hb_codepoint_t[{n}]", glyphs)``. cffi parses every new type string with
# its C parser (about 2.5 ms each: it declares again each of the sixty-odd type names
# WeasyPrint declared) and caches it by the string, so each new glyph count is parsed
# once per process: dozens per render child, most of them again in every fresh child
# (about 5 % of a part's layout time). The same arrays, made as open arrays sized by
# their items ("hb_codepoint_t[]", parsed once), are byte for byte the same to HarfBuzz.
_FIXED_ARRAY = re.compile(r"(\w+)\[([1-9][0-9]*)\]", re.ASCII)


class _SizedByItems:
    """An FFI that makes fixed-size arrays given all their items as open arrays; every
    other call goes to the FFI it wraps."""

    def __init__(self, ffi) -> None:
        self._ffi = ffi
        self._open_types: dict[str, object] = {}

    def __getattr__(self, name):
        return getattr(self._ffi, name)

    def new(self, cdecl, init=None):
        if isinstance(cdecl, str) and isinstance(init, (tuple, list)):
            fixed = _FIXED_ARRAY.fullmatch(cdecl)
            if fixed is not None and int(fixed.group(2)) == len(init):
                item = fixed.group(1)
                open_type = self._open_types.get(item)
                if open_type is None:
                    open_type = self._open_types[item] = self._ffi.typeof(item + "[]")
                return self._ffi.new(open_type, init)
        return self._ffi.new(cdecl, init)


def _subset_fonts_without_parsing() -> None:
    """Give WeasyPrint's font subsetting the FFI above (once; only where its modules are
    the ones this was written for: otherwise everything is left as it is)."""
    try:
        from weasyprint.pdf import fonts
        from weasyprint.text.ffi import ffi
    except ImportError:
        return
    if getattr(fonts, "ffi", None) is ffi:
        fonts.ffi = _SizedByItems(ffi)


# The HTML parser (tinyhtml5) reads a run of text or of an attribute's value with a regular
# expression made from the characters that end it, and keeps each in a cache keyed by those
# characters, to make it once. But it files the expression under the expression itself
# (``characters = cache[key] = regex`` rebinds ``characters`` before the key is made), so
# the cache never answers: every run of text built its expression again, about a third of
# the parser's time (the parser is one twentieth of a part's). A cache that makes a missing
# expression itself, exactly as the parser would, answers every lookup after the first.
class _RunPatterns(dict):
    def __missing__(self, key):
        characters, opposite = key
        ranges = "".join(f"\\x{ord(character):02x}" for character in characters)
        pattern = self[key] = re.compile(f"[{ranges}]+" if opposite else f"[^{ranges}]+")
        return pattern


def _parse_runs_with_kept_patterns() -> None:
    """Give the HTML parser the cache above (once; only where its module is the one this
    was written for: otherwise everything is left as it is)."""
    try:
        from tinyhtml5 import inputstream
    except ImportError:
        return
    cache = getattr(inputstream, "characters_until_regex", None)
    if type(cache) is dict:
        inputstream.characters_until_regex = _RunPatterns()


def _html_class():
    """WeasyPrint's HTML, laid out with the lean user-agent stylesheet."""
    global _HTML_CLASS
    if _HTML_CLASS is None:
        from weasyprint import HTML
        from weasyprint.html import UA_STYLESHEET

        class PrintHTML(HTML):
            def _ua_stylesheets(self, forms=False):
                sheets = super()._ua_stylesheets(forms)
                lean = lean_ua_stylesheet()
                return [lean if sheet is UA_STYLESHEET and lean is not None else sheet
                        for sheet in sheets]

        _subset_fonts_without_parsing()
        _parse_runs_with_kept_patterns()
        _HTML_CLASS = PrintHTML
    return _HTML_CLASS


def prepare_layout() -> None:
    """Import the layout engine and make it ready, as every render uses it (a render
    child's fork server does this once for all its children)."""
    _html_class()


def render_pdf(html: str, *, pdf_ua: bool = False, finisher=None) -> tuple[bytes, int]:
    """Lay out print HTML and write it as PDF (tagged PDF/UA-1 when asked); (bytes, pages).
    ``finisher(pdf)`` is given the PDF's objects (pydyf) just before they are written."""
    if len(html.encode()) > MAX_HTML_BYTES:
        raise ValueError("document too large to print")
    options = {"pdf_variant": "pdf/ua-1"} if pdf_ua else {}
    stylesheets = None
    head_end = html.find("</head>")
    link_at = html.find(PRINT_CSS_LINK, 0, head_end if head_end >= 0 else 0)
    if link_at >= 0:
        html = html[:link_at] + html[link_at + len(PRINT_CSS_LINK):]
        stylesheets = [print_stylesheet()]
    document = _html_class()(string=html, base_url=BASE_URL,
                             url_fetcher=static_only_fetcher()).render(
        font_config=font_config(), stylesheets=stylesheets)
    if finisher is not None:
        options["finisher"] = lambda _document, pdf: finisher(pdf)
    return document.write_pdf(**options), len(document.pages)


def html_to_pdf(html: str, *, pdf_ua: bool = False, join_prefix: str | None = None) -> bytes:
    """Render print HTML to PDF bytes in this process (tests and tools); a part of a longer
    document (``join_prefix``) is made ready to be joined, as a render child makes it."""
    return render_pdf(html, pdf_ua=pdf_ua, finisher=joining(join_prefix))[0]


def joining(prefix: str | None):
    """The finisher that makes a part ready to be joined under ``prefix`` (None: none)."""
    if prefix is None:
        return None
    from .assemble import prepare_for_joining

    return lambda pdf: prepare_for_joining(pdf, prefix)
