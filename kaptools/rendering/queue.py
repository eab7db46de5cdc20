"""The render queue: Huey, on an embedded SQLite file by default or on Redis.

Why Huey: it is small, well kept, and the same code runs on a laptop with no server at
all (its queue is a SQLite file in the instance folder and ``kaptools serve`` runs the
worker threads itself) and across machines with Redis (``KAPTOOLS_TASK_QUEUE_URL=
redis://queue.internal:6379/0`` on every web process, and ``kaptools worker`` on any
number of render hosts). Tasks carry only job ids; documents are read from the database
and stored back in it, so nothing clinical passes through the queue.

``KAPTOOLS_TASK_QUEUE_URL=immediate`` runs jobs inside the request (tests, tools).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from flask import Flask, current_app

log = logging.getLogger("kaptools.rendering")

TASK_NAME = "kaptools.render"


def init_app(app: Flask) -> None:
    app.extensions["kaptools_queue"] = _Queue(app)


def enqueue_render(job_id: int) -> None:
    current_app.extensions["kaptools_queue"].enqueue(job_id)


def queue_for(app: Flask) -> _Queue:
    return app.extensions["kaptools_queue"]


class _Queue:
    """One app's Huey instance, created on first use (web processes that never render
    do not open it)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._huey = None
        self._task = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return str(self.app.config.get("TASK_QUEUE_URL") or "")

    @property
    def embedded(self) -> bool:
        return not self.url

    @property
    def huey(self):
        with self._lock:
            if self._huey is None:
                self._huey = self._create()
                self._task = self._huey.task(name=TASK_NAME)(self._run)
            return self._huey

    def _create(self):
        from huey import MemoryHuey, RedisHuey, SqliteHuey

        url = self.url
        if url == "immediate":
            return MemoryHuey("kaptools", immediate=True, results=False)
        if url.startswith(("redis://", "rediss://", "unix://")):
            return RedisHuey("kaptools", url=url, results=False)
        if url and not url.startswith("sqlite:///"):
            raise ValueError(f"TASK_QUEUE_URL must be empty, 'immediate', a redis:// URL or a "
                             f"sqlite:/// path; got {url!r}")
        path = url[len("sqlite:///"):] if url else str(Path(self.app.instance_path) /
                                                         "render-queue.sqlite3")
        return SqliteHuey("kaptools", filename=path, results=False)

    def enqueue(self, job_id: int) -> None:
        huey = self.huey
        huey.enqueue(self._task.s(job_id))

    def _run(self, job_id: int) -> None:
        """The task: render one job, in an app context of its own."""
        from .jobs import run_job

        with self.app.app_context():
            run_job(job_id)

    def consumer(self, workers: int):
        """A Huey consumer for this app's queue (threads; renders use child processes)."""
        from huey.consumer import Consumer

        class QuietConsumer(Consumer):
            # Signal handlers belong to the main thread; an embedded consumer leaves the
            # web server's alone.
            def _set_signal_handlers(self) -> None:
                if threading.current_thread() is threading.main_thread() and self._standalone:
                    super()._set_signal_handlers()

        consumer = QuietConsumer(self.huey, workers=workers, worker_type="thread",
                                 periodic=False, initial_delay=0.05, max_delay=1.0)
        consumer._standalone = False
        return consumer

    def warm_up(self) -> None:
        """Start the render children, and load the drawing libraries, before the first
        job needs them."""
        from .engine import Limits, warm_up

        try:
            import matplotlib.backends.backend_svg  # noqa: F401  (charts)
            import matplotlib.figure  # noqa: F401

            warm_up(Limits.from_config(self.app.config))
        except Exception:  # the first job will try again and report what is wrong
            log.exception("render children could not be started ahead of time")

    def start_embedded(self, workers: int):
        """Run the consumer's threads inside this process (``kaptools serve``)."""
        consumer = self.consumer(workers)
        threading.Thread(target=self.warm_up, daemon=True, name="render-warm-up").start()
        consumer.start()
        log.info("render worker started in this process (%s thread(s))", workers)
        return consumer
