"""HTML to PDF with WeasyPrint, through a fetcher that only serves bundled files.

PDFs are produced in memory and streamed; a small in-process cache keyed on the
final HTML makes a repeat request of an unchanged document nearly free.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path
from urllib.parse import unquote, urlsplit

from weasyprint import HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse

from .resources import resource_dir

# Print HTML links its assets as /static/...; WeasyPrint resolves them against this
# base, and the fetcher maps exactly this origin onto the bundled static folder.
BASE_URL = "https://kaptools.invalid/"
STATIC_PREFIX = "/static/"
MAX_HTML_BYTES = 8 * 1024 * 1024
CONTENT_TYPES = {".css": "text/css", ".woff": "font/woff", ".woff2": "font/woff2",
                 ".ttf": "font/ttf", ".svg": "image/svg+xml", ".png": "image/png"}


class RefusedResource(ValueError):
    """A document asked for something outside the bundled static files."""


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
                    "Content-Type": CONTENT_TYPES.get(path.suffix, "application/octet-stream")})
        self.refused.append(url[:200])
        raise RefusedResource(f"refused to fetch {url[:200]!r}: only bundled files are allowed")


_FONT_CONFIG: FontConfiguration | None = None
_FONT_LOCK = threading.Lock()


def font_config() -> FontConfiguration:
    global _FONT_CONFIG
    with _FONT_LOCK:
        if _FONT_CONFIG is None:
            _FONT_CONFIG = FontConfiguration()
        return _FONT_CONFIG


class PdfCache:
    """LRU of rendered PDFs in memory, bounded in bytes; never on disk."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: str, pdf: bytes) -> None:
        if len(pdf) > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = pdf
            self._size += len(pdf)
            while self._size > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


CACHE = PdfCache()


def html_to_pdf(html: str, *, pdf_ua: bool = False, use_cache: bool = True) -> bytes:
    """Render print HTML to PDF bytes (tagged PDF/UA-1 when asked)."""
    if len(html.encode()) > MAX_HTML_BYTES:
        raise ValueError("document too large to print")
    key = hashlib.sha256(html.encode() + (b"\x00ua" if pdf_ua else b"")).hexdigest()
    if use_cache and (cached := CACHE.get(key)) is not None:
        return cached
    options = {"pdf_variant": "pdf/ua-1"} if pdf_ua else {}
    document = HTML(string=html, base_url=BASE_URL, url_fetcher=StaticOnlyFetcher())
    pdf = document.write_pdf(font_config=font_config(), **options)
    if use_cache:
        CACHE.put(key, pdf)
    return pdf
