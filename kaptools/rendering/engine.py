"""Rendering in child processes, each with a hard memory limit, under one deadline.

A render never runs in a web process. Renders run in a small pool of child processes
(forked from a server process that has WeasyPrint and the fonts loaded, kept warm
between jobs and replaced after a number of renders); every child has an address-space
limit and a lower CPU priority than the web, and each job has a wall-clock deadline
after which the children are killed. Independent parts of a document are laid out in
parallel.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import chain

log = logging.getLogger("kaptools.rendering")

# Children forked from the server process start with these modules loaded.
_PRELOAD = ["kaptools.rendering.child"]
# The program's own script (the ``kaptools`` command, say), which multiprocessing runs in
# every child that does not have it yet: the server runs it once instead (see child.py),
# and every child inherits it. (Python 3.11's own "__main__" preload never receives the
# script's path, so it does nothing.)
MAIN_PATH_ENV = "KAPTOOLS_RENDER_MAIN_PATH"
_CONTEXT: multiprocessing.context.BaseContext | None = None


class RenderLimitExceeded(Exception):
    """A render went past a limit; ``cause`` is "time", "memory", "pages" or "error"."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause
        self.message = message


@dataclass(frozen=True)
class Limits:
    seconds: float
    memory_mb: int
    processes: int
    max_pages: int

    @classmethod
    def from_config(cls, config) -> Limits:
        return cls(seconds=float(config["RENDER_TIME_LIMIT_S"]),
                   memory_mb=int(config["RENDER_MEMORY_LIMIT_MB"]),
                   processes=max(1, int(config["RENDER_PROCESSES"] or os.cpu_count() or 1)),
                   max_pages=int(config["RENDER_MAX_PAGES"]))


@dataclass(frozen=True)
class PartJob:
    key: str
    html: str
    pdf_ua: bool = False
    join_prefix: str | None = None  # a part of a longer document: prepared for joining


class _BrokenWhileHanding(Exception):
    """The children broke while parts were being handed to them: what was handed over
    (``pending``), the part that could not be, and the children's generation."""

    def __init__(self, pending: dict, part: PartJob, generation: int) -> None:
        super().__init__("the render processes stopped while parts were handed to them")
        self.pending, self.part, self.generation = pending, part, generation


def _context() -> multiprocessing.context.BaseContext:
    global _CONTEXT
    if _CONTEXT is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        from multiprocessing import spawn

        main_path = spawn.get_preparation_data("render").get("init_main_from_path")
        if main_path:  # what each child is told to run; the server, started after
            os.environ[MAIN_PATH_ENV] = main_path  # this, finds it in its environment
        _CONTEXT = ctx
    return _CONTEXT


class _Pool:
    """This process's render children: kept warm between jobs, replaced when a job had
    to kill them (a deadline passed) or one of them died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._shape: tuple[int, int] | None = None
        self._served = 0
        self.generation = 0

    def submit(self, parts: Iterable[PartJob], limits: Limits) -> tuple[dict, int]:
        """Hand parts to the current children, each as soon as ``parts`` yields it; {future:
        part} and their generation.

        Done under the pool's lock, so another job cannot retire these children between
        choosing them and handing them work. Should ``parts`` fail, what was handed over
        and not started yet is taken back, and the failure is raised.
        """
        with self._lock:
            executor = self._current(limits)
            pending = {}
            try:
                for part in parts:
                    try:
                        future = executor.submit(_child_render, part.html, part.pdf_ua,
                                                 part.join_prefix)
                    except BrokenProcessPool as exc:  # a child died meanwhile
                        raise _BrokenWhileHanding(pending, part, self.generation) from exc
                    pending[future] = part
                    self._served += 1
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
            return pending, self.generation

    def _current(self, limits: Limits) -> ProcessPoolExecutor:
        """The children to use (called with the lock held)."""
        shape = (limits.processes, limits.memory_mb)
        if self._executor is None or self._shape != shape:
            self._replace(limits)
        return self._executor

    def _replace(self, limits: Limits) -> None:
        if self._executor is not None:
            # Retired: what it is working on finishes, then its children exit.
            self._executor.shutdown(wait=False, cancel_futures=False)
        # (Not max_tasks_per_child: on Python 3.11 it can hang the pool.)
        self._executor = ProcessPoolExecutor(
            max_workers=limits.processes, mp_context=_context(),
            initializer=_child_start, initargs=(limits.memory_mb,))
        self._shape = (limits.processes, limits.memory_mb)
        self._served = 0
        self.generation += 1

    def recycle_if_due(self, limits: Limits) -> None:
        """Between jobs: replace children that have served their share, and start the new
        ones now (they warm up while nothing waits for them)."""
        with self._lock:
            if self._executor is None or self._served < RECYCLE_AFTER * limits.processes:
                return
            self._replace(limits)
            for _ in range(limits.processes):
                self._executor.submit(_child_render, "<!doctype html><title>.</title>", False)

    def discard(self, generation: int, kill: bool) -> None:
        """Replace the children of ``generation`` (killing them first when asked)."""
        with self._lock:
            if self._executor is None or generation != self.generation:
                return
            if kill:
                # Futures are not cancelled first: the executor marks them broken itself
                # (cancelling them too makes its manager thread fail on Python 3.11).
                _kill(self._executor)
                self._executor.shutdown(wait=False, cancel_futures=False)
            else:
                self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def recycle_if_due(limits: Limits) -> None:
    """Called when a job ends: children are replaced between jobs, never during one."""
    _POOL.recycle_if_due(limits)


def warm_up(limits: Limits) -> None:
    """Start this process's render children now (a worker does this when it starts), so
    the first job does not wait for them."""
    futures, _ = _POOL.submit([PartJob("warm-up", "<!doctype html><title>.</title>")] *
                              limits.processes, limits)
    wait(futures)


# The children are replaced after about this many renders each, so no memory builds up.
RECYCLE_AFTER = 25
_POOL = _Pool()


def render_parts(parts: Iterable[PartJob], limits: Limits, deadline: float,
                 done: Callable[[str, bytes, int], None],
                 meanwhile: Callable[[], None] | None = None) -> None:
    """Render every part, calling ``done(key, pdf, pages)`` as each finishes, and
    ``meanwhile()`` once, in this process, while the children work.

    Raises RenderLimitExceeded when the deadline passes, a child runs out of memory, or
    a part fails to render; on a deadline the children are killed.
    """
    from ..i18n import _  # here, not at the top: render children import this module

    waiting: Iterator[PartJob] = iter(parts)  # parts are made as they are handed over
    retried = False
    while True:
        try:
            pending, generation = _POOL.submit(waiting, limits)
        except _BrokenWhileHanding as broken:
            # What was handed over is lost with the children: handed over again, with the
            # part that could not be and those not made yet.
            pending, generation, failure = broken.pending, broken.generation, broken.__cause__
            waiting = chain(list(pending.values()), [broken.part], waiting)
        else:
            if meanwhile is not None:
                try:
                    meanwhile()
                except BaseException:
                    _cancel_unstarted(pending)
                    raise
                meanwhile = None
            try:
                _collect(pending, limits, deadline, done)
                return
            except BrokenProcessPool as exc:
                waiting, failure = iter(list(pending.values())), exc
            except RenderLimitExceeded as exc:
                if exc.cause == "time":
                    _POOL.discard(generation, kill=True)
                else:
                    _cancel_unstarted(pending)  # nothing is killed
                raise
            except BaseException:  # ``done`` failed (joining a part, storing it...)
                _cancel_unstarted(pending)  # the rest of a failed render is not laid out
                raise
        if _POOL.generation != generation and not retried:
            retried = True  # another job's deadline replaced the children: go on
            continue
        _POOL.discard(generation, kill=True)
        raise RenderLimitExceeded(
            "memory", _("a render process stopped unexpectedly, most likely because it "
                        "needed more than %(memory)s MiB", memory=limits.memory_mb)) from failure


def _cancel_unstarted(pending: dict) -> None:
    """Take back the parts handed to the children and not started yet."""
    for future in pending:
        future.cancel()


def _collect(pending: dict, limits: Limits, deadline: float, done) -> None:
    """Wait for the submitted parts (each is taken out of ``pending`` as it is done)."""
    from ..i18n import _

    while pending:
        # What is finished is collected even past the deadline (this process may have been
        # busy meanwhile); the deadline ends a render only while parts are still running.
        remaining = deadline - time.monotonic()
        finished, _waiting = wait(pending, timeout=max(0.0, remaining),
                                  return_when=FIRST_COMPLETED)
        if not finished:
            raise RenderLimitExceeded(
                "time", _("it took longer than the %(seconds)s seconds a render may take",
                          seconds=format(limits.seconds, "g")))
        for future in finished:
            part = pending[future]
            outcome = future.result()  # BrokenProcessPool propagates to the caller
            del pending[future]
            if outcome[0] == "memory":
                raise RenderLimitExceeded(
                    "memory", _("it needed more than the %(memory)s MiB of memory a render may "
                                "use", memory=limits.memory_mb))
            if outcome[0] == "error":
                raise RenderLimitExceeded("error", outcome[1])
            done(part.key, outcome[1], outcome[2])


# Run in the child (the parent never imports WeasyPrint for these).
def _child_start(memory_mb: int) -> None:
    from . import child

    child.end_with_server()
    child.limit_self(memory_mb)


def _child_render(html: str, pdf_ua: bool, join_prefix: str | None = None) -> tuple:
    from . import child

    return child.render(html, pdf_ua, join_prefix)


def _kill(executor: ProcessPoolExecutor) -> None:
    # The executor has no public way to stop a running task: end its processes.
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        try:
            process.kill()
        except Exception:  # already gone
            pass


def children_peak_rss_mib() -> float:
    """The largest peak resident memory (VmHWM) among this process's render children
    (for benchmarks and diagnostics); 0 when none is running."""
    peak = 0
    executor = _POOL._executor
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        try:
            with open(f"/proc/{process.pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            pass
    return peak / 1024
