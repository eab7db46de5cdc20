"""Render one course summary in a fresh process; print seconds, pages and peak memory.

Used by the benchmark so that peak memory (max RSS) belongs to this one render: the
parent's (which gathers the record and assembles the parts) and its render children's.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time


def main(sessions: int) -> None:
    from pypdf import PdfReader

    from kaptools import documents
    from kaptools.extensions import db
    from kaptools.models import User
    from kaptools.passwords import hash_password
    from kaptools.rendering import engine
    from tests.bench.data import bench_app, make_course

    with tempfile.TemporaryDirectory() as tmp:
        app = bench_app(tmp)
        with app.test_request_context():
            db.create_all()
            therapist = User(username="bench", display_name="Bench Therapist", role="therapist",
                             password_hash=hash_password("x" * 12))
            db.session.add(therapist)
            course = make_course(therapist, sessions, "KT-BENCH")
            started = time.perf_counter()
            pdf = documents.document_pdf(documents.build("summary", course))
            seconds = time.perf_counter() - started
            pages = len(PdfReader(__import__("io").BytesIO(pdf)).pages)
            children = engine.children_peak_rss_mib()
            db.engine.dispose()
    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"sessions": sessions, "seconds": seconds, "pages": pages,
                      "peak_rss_mib": parent / 1024, "child_rss_mib": children}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
