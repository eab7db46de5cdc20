"""Worst-case inputs cost about what plain ones do (issue 9, acceptance 4).

Run with `python -m tests.bench hostile` (part of `make bench`). A template of the
largest kind the template language allows (a Markdown field of 100,000 characters and a
group at its 200-row cap) holds, in turn: plain prose; 100 kB of "["; lists nested
1,000 deep; and the same amount of text spread over 200 rows that all point at one
another. Each is timed as the note's page and as its session summary PDF, against the
plain note of the same size, in the same process.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

SIZE = 100_000
ROWS = 200

TEMPLATE = f"""
slug = "bench-worst"
version = 1
title = "Largest note the template language allows"

[[sections]]
key = "main"
title = "Main"

[[sections.fields]]
key = "notes"
type = "longtext"
label = "Notes"
max_length = {SIZE}

[[sections.fields]]
key = "rows"
type = "group"
label = "Rows"
item_label = "Row"
item_title = "name"
max_items = {ROWS}

  [[sections.fields.fields]]
  key = "name"
  type = "text"
  label = "Name"
  max_length = 300

  [[sections.fields.fields]]
  key = "kind"
  type = "choice"
  label = "Kind"
  choices = ["First", "Second", "Third"]

  [[sections.fields.fields]]
  key = "sud"
  type = "scale"
  scale = "sud"
  label = "SUD"

  [[sections.fields.fields]]
  key = "detail"
  type = "longtext"
  label = "Detail"
  max_length = 2000

  [[sections.fields.fields]]
  key = "linked"
  type = "ref"
  group = "rows"
  label = "Linked to"
"""

PROSE = ("The client noticed the breath slowing and the shoulders dropping; the worry "
         "about work came and went like weather.\n\n")


def prose(n: int) -> str:
    return (PROSE * (n // len(PROSE) + 1))[:n].strip()


def cases() -> dict[str, dict]:
    deep = "1. " * 1000 + "\n\n" + "+ " * 1000 + "\n\n"
    per_row = SIZE // ROWS
    ids = [f"{i:08x}" for i in range(ROWS)]
    rows = [{"item_id": ids[i], "name": f"Row {i}", "kind": "second", "sud": i % 11,
             "detail": prose(per_row - 10), "linked": ids[(i * 7) % ROWS]}
            for i in range(ROWS)]
    return {
        "plain note (100 kB of prose)": {"notes": prose(SIZE)},
        "100 kB of '['": {"notes": "[" * SIZE},
        "lists nested 1,000 deep": {"notes": deep + prose(SIZE - len(deep))},
        "group at its 200-row cap": {"rows": rows},
    }


def timed(fn, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main(repeats: int = 3) -> None:
    from datetime import date

    from kaptools import documents, notes
    from kaptools.extensions import db
    from kaptools.modality import get_registry
    from kaptools.modality.answers import round_trip
    from kaptools.models import Client, Course, TherapySession, User
    from kaptools.passwords import hash_password
    from kaptools.rendering import store
    from tests.bench.data import bench_app
    from tests.conftest import Browser

    tmp = Path(tempfile.mkdtemp(prefix="kaptools-bench-hostile-"))
    (tmp / "modalities" / "bench-worst").mkdir(parents=True)
    (tmp / "modalities" / "bench-worst" / "v1.toml").write_text(TEMPLATE)
    app = bench_app(str(tmp))
    results = {}
    with app.app_context():
        db.create_all()
        template = get_registry().latest("bench-worst")
        assert template is not None, get_registry().problems
        therapist = User(username="bench", display_name="Bench Therapist", role="therapist",
                         password_hash=hash_password("bench password"))
        client = Client(therapist=therapist, code="KT-WORST")
        course = Course(client=client, title="Worst cases", format="weekly",
                        starts_on=date(2026, 1, 5))
        db.session.add_all([therapist, client, course])
        targets = {}
        for i, (name, answers) in enumerate(cases().items()):
            sess = TherapySession(course=course, kind="integration",
                                  session_date=date(2026, 1, 5 + i))
            db.session.add(sess)
            db.session.flush()
            note = notes.create_note(sess, therapist, template, round_trip(template, answers))
            notes.sign(note, therapist)
            targets[name] = (sess.id, note.id)
        db.session.commit()
    browser = Browser(app.test_client())
    browser.login("bench", "bench password")
    for name, (session_id, note_id) in targets.items():
        def page(note_id=note_id):
            assert browser.get(f"/notes/{note_id}").status_code == 200

        def pdf(session_id=session_id):
            with app.test_request_context():
                store.clear()
                only = db.session.get(TherapySession, session_id)
                documents.document_pdf(documents.build("summary", only.course, only))

        page()
        results[name] = (timed(page, repeats), timed(pdf, repeats))
    with app.app_context():
        db.engine.dispose()

    plain_page, plain_pdf = results["plain note (100 kB of prose)"]
    print("Worst-case inputs against a plain note of the same size (issue 9)")
    print(f"  medians of {repeats} runs; target: each within 5× of the plain note\n")
    print(f"  {'input':32s} {'note page':>12s} {'ratio':>7s} {'summary PDF':>13s} {'ratio':>7s}")
    worst = 0.0
    for name, (page_s, pdf_s) in results.items():
        page_ratio, pdf_ratio = page_s / plain_page, pdf_s / plain_pdf
        worst = max(worst, page_ratio, pdf_ratio)
        print(f"  {name:32s} {page_s * 1000:9.1f} ms {page_ratio:6.2f}× {pdf_s * 1000:10.1f} ms "
              f"{pdf_ratio:6.2f}×")
    print(f"\n  worst ratio: {worst:.2f}× ({'within' if worst <= 5 else 'OVER'} the 5× target)")


if __name__ == "__main__":
    main()
