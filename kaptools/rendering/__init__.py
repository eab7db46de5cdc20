"""Documents rendered as bounded background work.

- ``parts``: how a document is cut into parts that render on their own and are reused;
- ``engine``: child processes with hard limits, laying parts out in parallel;
- ``assemble``: the parts put together, numbered and bookmarked;
- ``store``: finished PDFs and parts in the database, keyed by content;
- ``jobs``: what a request asks for and what a worker runs;
- ``queue``: the Huey queue (embedded SQLite, or Redis across machines);
- ``weasy``: WeasyPrint itself, imported only where a render happens.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import queue

    queue.init_app(app)
