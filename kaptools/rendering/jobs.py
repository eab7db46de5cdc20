"""Render jobs: asked for in a web request, run by a background worker.

``request_document`` is what a view calls: it answers with the finished PDF when the
same content was rendered before (by any process), or with a job the page can follow.
``run_job`` is what a worker runs: it lays out the parts that are not stored yet, in
child processes and in parallel, assembles them and stores the result.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..i18n import _, _l, ngettext
from ..models import Course, RenderJob, RenderStatus, TherapySession, User
from ..summaries import Document, build_document
from ..timeutil import utcnow
from . import store
from .engine import Limits, RenderLimitExceeded, recycle_if_due, render_parts
from .fingerprint import fingerprint
from .parts import frame_job, numbers_sample_job, overlay_jobs, plan
from .queue import enqueue_render

log = logging.getLogger("kaptools.rendering")

PROGRESS_EVERY_S = 0.5

CAUSES = {
    "time": _l("It took longer than a render may take"),
    "memory": _l("It needed more memory than a render may use"),
    "pages": _l("It has more pages than one document may have"),
    "error": _l("The layout engine stopped"),
}


@dataclass(frozen=True)
class Requested:
    """What a request for a PDF got: the PDF itself, or a job to wait for."""

    pdf: bytes | None = None
    job: RenderJob | None = None


def request_document(kind: str, course: Course, only: TherapySession | None,
                     sheets: list[str] | None, user: User) -> Requested:
    """The stored PDF of this document as it is now, or a new job that will render it.

    Only the document's fingerprint is computed here (a few small queries); assembling
    and laying it out is the worker's.
    """
    key = fingerprint(kind, course, only, sheets)
    found = store.get(key)
    if found is not None:
        return Requested(pdf=found.pdf)
    job = RenderJob(user_id=user.id, kind=kind, course_id=course.id,
                    session_id=only.id if only else None, sheets=sheets, doc_key=key,
                    status=RenderStatus.QUEUED, stage=_("Waiting for a render worker"))
    db.session.add(job)
    db.session.commit()
    enqueue_render(job.id)
    db.session.expire(job)
    if job.status == RenderStatus.DONE:  # run at once (immediate mode)
        found = store.get(job.doc_key)
        if found is not None:
            return Requested(pdf=found.pdf, job=job)
    return Requested(job=job)


def _update(job: RenderJob, **values) -> None:
    for name, value in values.items():
        setattr(job, name, value)
    db.session.commit()


def run_job(job_id: int) -> None:
    """Render one job's document (a worker's task). Never raises."""
    job = db.session.get(RenderJob, job_id)
    if job is None or job.status not in (RenderStatus.QUEUED, RenderStatus.RUNNING):
        return
    limits = Limits.from_config(current_app.config)
    started = time.monotonic()
    _update(job, status=RenderStatus.RUNNING, started_at=utcnow(),
            stage=_("Gathering the record"), progress=1)
    try:
        course = db.session.get(Course, job.course_id)
        only = db.session.get(TherapySession, job.session_id) if job.session_id else None
        doc = build_document(job.kind, course, only, job.sheets)
        _render(job, doc, limits, deadline=started + limits.seconds)
    except RenderLimitExceeded as exc:
        db.session.rollback()
        log.warning("render job %s stopped: %s", job_id, exc.message)
        _update(job, status=RenderStatus.FAILED, failure=exc.cause,
                message=_("%(cause)s: %(detail)s.", cause=CAUSES[exc.cause],
                          detail=exc.message), finished_at=utcnow())
    except Exception as exc:
        db.session.rollback()
        log.exception("render job %s failed", job_id)
        _update(job, status=RenderStatus.FAILED, failure="error",
                message=_("The layout engine stopped unexpectedly (%(error)s); the details "
                          "are in the log.", error=exc.__class__.__name__),
                finished_at=utcnow())


def _every_so_often(commit):
    """A ``progress`` for ``produce`` that calls ``commit(stage, percent)`` at most a few
    times a second (and from 90 % on): each is a write the pages' database also serves,
    and what was laid out meanwhile is committed with the next one."""
    last = [0.0]

    def progress(stage: str, percent: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or percent >= 90:
            last[0] = now
            commit(stage, percent)

    return progress


def _render(job: RenderJob, doc: Document, limits: Limits, deadline: float) -> None:
    progress = _every_so_often(lambda stage, percent: _update(
        job, stage=stage, progress=max(job.progress, percent)))
    _key, _pdf, pages = produce(doc, limits, deadline, progress, store_as=job.doc_key)
    _update(job, status=RenderStatus.DONE, progress=100, stage=_("Ready"), pages=pages,
            finished_at=utcnow())


def produce(doc: Document, limits: Limits, deadline: float,
            progress=lambda stage, percent: None,
            store_as: str | None = None) -> tuple[str, bytes, int]:
    """Render a document (reusing every stored part) and store it under ``store_as`` (the
    fingerprint it was asked for by) or else its content key; (key, pdf, pages)."""
    try:
        return _produce(doc, limits, deadline, progress, store_as)
    finally:
        recycle_if_due(limits)


def _produce(doc: Document, limits: Limits, deadline: float, progress,
             store_as: str | None) -> tuple[str, bytes, int]:
    the_plan = plan(doc)
    final_key = store_as or the_plan.doc_key
    if (ready := store.get(final_key)) is not None:
        return final_key, ready.pdf, ready.pages
    from .assemble import Assembly, assemble

    keys: list[str] = []
    pdfs: dict[str, bytes] = {}
    pages: dict[str, int] = {}
    missing: list[str] = []
    # A document of parts has its page furniture and its page numbers laid over it: the
    # furniture, and the sample the numbers are composed from, laid out beside the parts.
    frame = frame_job(the_plan) if the_plan.overlay else None
    sample = numbers_sample_job() if the_plan.overlay else None
    extras: dict[str, bytes] = {}  # the frame's and the sample's PDFs
    # Each part is joined as soon as it and all before it are laid out (or found).
    assembly = Assembly() if the_plan.overlay else None
    joined = [0]  # how many of ``keys`` are in the assembly

    def join_ready() -> None:
        while joined[0] < len(keys) and keys[joined[0]] in pdfs:
            assembly.add(pdfs[keys[joined[0]]])
            joined[0] += 1

    def to_lay_out():
        if frame is not None:
            yield frame
        if sample is not None:
            if (found := store.get(sample.key, touch=False)) is not None:
                extras[sample.key] = found.pdf
            else:
                yield sample
        # Each part is made, looked up and handed to a child in turn: the children start
        # on the first while this process makes the next. This runs under the render
        # pool's lock, so it only reads (the parts found are marked used afterwards): a
        # write here could wait on another job that waits for that lock.
        for part in the_plan.jobs():
            keys.append(part.key)
            if (found := store.get(part.key, touch=False)) is not None:
                pdfs[part.key], pages[part.key] = found.pdf, found.pages
            else:
                missing.append(part.key)
                yield part

    def counted() -> None:
        store.mark_used([k for k in keys if k in pdfs] +
                        [k for k in extras if sample is not None and k == sample.key])
        progress(ngettext("Laying out %(missing)s of %(num)d parts (%(done)s already laid out)",
                          "Laying out %(missing)s of %(num)d parts (%(done)s already laid out)",
                          len(keys), missing=len(missing), done=len(keys) - len(missing)), 5)

    def part_done(key: str, pdf: bytes, count: int) -> None:
        if frame is not None and key == frame.key:
            extras[key] = pdf  # not stored: it names the client
            return
        if sample is not None and key == sample.key:
            store.put(key, store.PART, pdf, count, evict=False)
            extras[key] = pdf
            return
        store.put(key, store.PART, pdf, count, evict=False)
        pdfs[key], pages[key] = pdf, count
        done = sum(1 for k in missing if k in pages)
        progress(ngettext("Laid out %(done)s of %(num)d parts",
                          "Laid out %(done)s of %(num)d parts", len(missing), done=done),
                 5 + int(85 * done / (len(missing) + 1)))
        if sum(pages.values()) > limits.max_pages:
            raise RenderLimitExceeded("pages", ngettext("it would have more than %(num)d pages",
                                                        "it would have more than %(num)d pages",
                                                        limits.max_pages))
        if assembly is not None:
            join_ready()

    try:
        render_parts(to_lay_out(), limits, deadline, part_done, meanwhile=counted)
        page_count = sum(pages[k] for k in keys)
        if assembly is None:  # one part (a handout), with its own metadata
            pdf = assemble([pdfs[k] for k in keys], [], the_plan.title)
        else:
            join_ready()  # the parts found stored after the last one laid out
            progress(_("Numbering the pages"), 92)
            numbers = _numbers(extras.get(sample.key), page_count, limits, deadline)
            try:
                pdf = assembly.finish(extras[frame.key], numbers, the_plan.title,
                                      keywords=f"kaptools content SHA-256 "
                                               f"{the_plan.content_hash}")
            finally:
                if not isinstance(numbers, list):  # composed: let go of the sample
                    numbers.close()
    finally:
        if assembly is not None:
            assembly.close()
    store.put(final_key, store.DOCUMENT, pdf, page_count)
    return final_key, pdf, page_count


def _numbers(sample: bytes | None, page_count: int, limits: Limits, deadline: float):
    """The page numbers of a document of ``page_count`` pages: composed from the laid-out
    sample, or else laid out page by page in the children."""
    from .numbers import NotComposable, Numbers

    if sample is not None:
        try:
            composer = Numbers.from_sample(sample)
        except NotComposable as exc:
            log.warning("page numbers laid out page by page: %s", exc)
        else:
            if composer.covers(page_count):
                return composer
            composer.close()
    stamps = overlay_jobs(page_count, limits.processes)
    made: dict[str, bytes] = {}
    render_parts(stamps, limits, deadline, lambda key, pdf, count: made.setdefault(key, pdf))
    return [made[stamp.key] for stamp in stamps]


def render_now(doc: Document) -> bytes:
    """Render a document in the calling process's own child processes (CLI, tools)."""
    limits = Limits.from_config(current_app.config)
    # The parts laid out are committed as they come, as a worker's job commits them with
    # its progress: while the children lay out the rest, not all at once at the end.
    _key, pdf, _pages = produce(doc, limits, time.monotonic() + limits.seconds,
                                _every_so_often(lambda stage, percent: db.session.commit()))
    db.session.commit()
    return pdf


def job_for(job_id: int, user: User) -> RenderJob | None:
    """A job of this user's (nobody else's: a foreign id is like a missing one)."""
    return db.session.scalar(select(RenderJob).where(RenderJob.id == job_id,
                                                     RenderJob.user_id == user.id))


def result(job: RenderJob) -> bytes | None:
    found = store.get(job.doc_key) if job.status == RenderStatus.DONE else None
    return found.pdf if found else None
