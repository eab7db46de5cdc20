"""Rendered PDFs and parts of them, in the database, keyed by a hash of their content.

Every web process and worker, on any host, finds what another rendered. Nothing is
written to disk outside the database. Past the configured size the least recently used
entries are removed.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import RenderedPdf
from ..timeutil import utcnow

DOCUMENT, PART = "document", "part"


@dataclass(frozen=True)
class Stored:
    key: str
    pdf: bytes
    pages: int


def get(key: str, touch: bool = True) -> Stored | None:
    row = db.session.get(RenderedPdf, key)
    if row is None:
        return None
    found = Stored(row.key, row.pdf, row.pages)
    if touch:
        mark_used([key])
    return found


def mark_used(keys: list[str]) -> None:
    """Mark stored entries as used now (those looked up with ``touch=False``)."""
    if keys:
        db.session.execute(update(RenderedPdf).where(RenderedPdf.key.in_(keys))
                           .values(used_at=utcnow()))


def put(key: str, scope: str, pdf: bytes, pages: int, evict: bool = True) -> None:
    """Store a rendered PDF (another worker may have stored the same one already), then
    make room unless told not to (the parts of a document are stored as they come; the
    store makes room once, when the document is stored).

    On PostgreSQL the transaction that stores it does not wait for its write-ahead log to
    reach the disk: a stored PDF can always be rendered again, and the megabytes of a long
    document must not hold up the commits of the people using the pages meanwhile.
    """
    now = utcnow()
    values = {"key": key, "scope": scope, "pdf": pdf, "pages": pages, "size": len(pdf),
              "created_at": now, "used_at": now}
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        db.session.execute(text("SET LOCAL synchronous_commit TO OFF"))
    if dialect in _INSERT_OR_SKIP:
        # The same content, rendered elsewhere a moment ago, is simply kept.
        db.session.execute(_INSERT_OR_SKIP[dialect], values)
    else:
        try:
            with db.session.begin_nested():
                db.session.add(RenderedPdf(**values))
        except IntegrityError:
            pass
    if evict:
        _evict()


# Built once: a long document stores a hundred parts or more, and building the statement
# anew for each took close to a millisecond of the rendering process's time.
_INSERT_OR_SKIP = {name: dialect.insert(RenderedPdf.__table__)
                   .on_conflict_do_nothing(index_elements=["key"])
                   for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))}


def _evict() -> None:
    limit = int(current_app.config["RENDER_STORE_MAX_MB"]) * 1024 * 1024
    total = db.session.scalar(select(func.coalesce(func.sum(RenderedPdf.size), 0)))
    if total <= limit:
        return
    for key, size in db.session.execute(select(RenderedPdf.key, RenderedPdf.size)
                                        .order_by(RenderedPdf.used_at)).all():
        db.session.execute(delete(RenderedPdf).where(RenderedPdf.key == key))
        total -= size
        if total <= limit * 0.9:
            break


def clear() -> None:
    db.session.execute(delete(RenderedPdf))
