"""Render one course summary in a fresh process; print seconds, pages and peak memory.

Used by the benchmark so that peak memory (max RSS) belongs to one render alone.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
import tracemalloc


def main(sessions: int) -> None:
    from pypdf import PdfReader

    from kaptools import documents
    from kaptools.extensions import db
    from kaptools.models import User
    from kaptools.passwords import hash_password
    from tests.bench.data import bench_app, make_course

    with tempfile.TemporaryDirectory() as tmp:
        app = bench_app(tmp)
        with app.test_request_context():
            db.create_all()
            therapist = User(username="bench", display_name="Bench Therapist", role="therapist",
                             password_hash=hash_password("x" * 12))
            db.session.add(therapist)
            course = make_course(therapist, sessions, "KT-BENCH")
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            started = time.perf_counter()
            pdf = documents.document_pdf(documents.build("summary", course))
            seconds = time.perf_counter() - started
            rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            # A second, uncached render under tracemalloc: the Python heap's peak during
            # one render (slower, so it is not the timed run).
            from kaptools.pdf import CACHE

            CACHE.clear()
            tracemalloc.start()
            documents.document_pdf(documents.build("summary", course))
            heap_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            pages = len(PdfReader(__import__("io").BytesIO(pdf)).pages)
            db.engine.dispose()
    print(json.dumps({"sessions": sessions, "seconds": seconds, "pages": pages,
                      "peak_rss_mib": rss_after / 1024, "rss_before_mib": rss_before / 1024,
                      "heap_peak_mib": heap_peak / 2**20}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
