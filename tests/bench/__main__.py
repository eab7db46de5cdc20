"""Benchmarks: run with `make bench` (or `python -m tests.bench [pdf|hostile|load]...`).

`pdf` prints figures as ratios against baselines measured in the same process:
  1. our full render (database → parts laid out in parallel → assembled PDF) vs
     WeasyPrint alone on the same document as one HTML;
  2. a repeat request of an unchanged document vs the first render (stored by content);
  3. 40- and 100-session courses: first render, render after one more signed session,
     and a cold headless Chromium printing the same HTML;
  4. a 40-session course vs the 12-session demo course: time per page and peak memory.

`hostile` prints the cost of worst-case inputs against a plain note of the same size
(see tests/bench/hostile.py). `load` drives the pages of a 50,000-note database with wrk
next to a bare Flask app (see tests/bench/load.py). With no argument, `pdf` and
`hostile` run (`load` builds a large database first: ask for it by name).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
ROOT = Path(__file__).resolve().parents[2]


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def pdf_benchmark() -> None:
    from sqlalchemy import select

    from kaptools import documents
    from kaptools.demo import load_demo
    from kaptools.extensions import db
    from kaptools.models import Course, User
    from kaptools.passwords import hash_password
    from kaptools.rendering import engine
    from kaptools.rendering.weasy import html_to_pdf
    from tests.bench.data import add_signed_session, bench_app, make_course

    tmp = tempfile.mkdtemp(prefix="kaptools-bench-")
    app = bench_app(tmp)
    print("kaptools PDF benchmark")
    print(f"  repeats: {REPEATS} (median of each where repeated); render processes: "
          f"{app.config['RENDER_PROCESSES'] or os.cpu_count()}\n")
    with app.test_request_context():
        db.create_all()
        load_demo()
        engine.warm_up(engine.Limits.from_config(app.config))  # as a worker does at start
        course_id = db.session.scalar(select(Course.id).where(Course.format == "intensive"))

        def demo_doc():
            db.session.expire_all()
            return documents.build("summary", db.session.get(Course, course_id))

        html = documents.document_html(demo_doc())

        def ours() -> bytes:
            forget_rendered()
            return documents.document_pdf(demo_doc())

        def weasyprint_alone() -> bytes:
            return html_to_pdf(html)

        ours()  # warm fonts, templates and imports for both paths
        weasyprint_alone()
        ours_runs, theirs_runs = [], []
        for _ in range(REPEATS):  # interleaved, so drift affects both alike
            ours_runs.append(timed(ours)[0])
            theirs_runs.append(timed(weasyprint_alone)[0])
        ours_med, theirs_med = statistics.median(ours_runs), statistics.median(theirs_runs)
        print("1. Demo course: our whole path (database → parts in parallel → assembled PDF)")
        print("   vs WeasyPrint alone laying out the same document as one HTML in this process")
        print(f"   ours:       {ours_med * 1000:8.1f} ms")
        print(f"   WeasyPrint: {theirs_med * 1000:8.1f} ms")
        print(f"   ratio:      {ours_med / theirs_med:8.2f}×\n")

        documents.document_pdf(demo_doc())
        repeats = [timed(lambda: documents.document_pdf(demo_doc()))[0] for _ in range(REPEATS)]
        print("2. Repeat request of an unchanged document (stored, keyed on content)")
        print(f"   first:      {ours_med * 1000:8.1f} ms")
        print(f"   repeat:     {statistics.median(repeats) * 1000:8.1f} ms")
        print(f"   ratio:      {statistics.median(repeats) / ours_med * 100:8.2f} %\n")

        print("3. Long courses: first render, render after one more signed session, and a")
        print("   cold headless Chromium printing the same HTML (target: after one change ≤ 25 %")
        print("   of the first; first ≤ 2× cold Chromium)")
        therapist = User(username="bench", display_name="Bench Therapist", role="therapist",
                         password_hash=hash_password("x" * 12))
        db.session.add(therapist)
        rounds = min(REPEATS, 3)
        print(f"   (median of {rounds} rounds, each on a course of its own, ours and Chromium in")
        print("   turn, so that a slow spell of the machine falls on both alike)")
        for sessions in (40, 100):
            firsts, agains, colds = [], [], []
            for r in range(rounds):
                course = make_course(therapist, sessions, f"KT-B{sessions}-{r}")
                forget_rendered()
                doc = documents.build("summary", course)
                first, pdf = timed(lambda doc=doc: documents.document_pdf(doc))
                pages = _pages(pdf)
                add_signed_session(course, therapist)
                db.session.expire_all()
                course = db.session.get(Course, course.id)
                doc = documents.build("summary", course)
                again, pdf2 = timed(lambda doc=doc: documents.document_pdf(doc))
                firsts.append(first)
                agains.append(again)
                colds.append(_chromium_seconds(documents.document_html(doc), Path(tmp),
                                               runs=1))
            first, again = statistics.median(firsts), statistics.median(agains)
            print(f"   {sessions:3d} sessions ({pages} pages → {_pages(pdf2)} pages):")
            print(f"       first render          {first:7.2f} s   (rounds: "
                  f"{', '.join(f'{t:.2f}' for t in firsts)})")
            print(f"       after one new session {again:7.2f} s   "
                  f"{again / first * 100:5.1f} % of the first")
            if None in colds:
                print("       cold Chromium          n/a (no /usr/bin/chromium)")
            else:
                cold = statistics.median(colds)
                print(f"       cold Chromium         {cold:7.2f} s   "
                      f"first render = {first / cold:4.2f}× Chromium   (rounds: "
                      f"{', '.join(f'{t:.2f}' for t in colds)})")
        db.engine.dispose()
    print()

    # 4. Scaling: 12 vs 40 sessions, each in a fresh process for a clean peak RSS.
    print("4. Scaling: time per page and peak memory, each size in a fresh process")
    results = []
    for n in (12, 40):
        proc = subprocess.run([sys.executable, "-m", "tests.bench.render_one", str(n)],
                              cwd=ROOT, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            print(proc.stderr[-2000:])
            raise SystemExit(1)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    for r in results:
        print(f"   {r['sessions']:3d} sessions: {r['pages']:3d} pages, {r['seconds']:6.2f} s, "
              f"{r['seconds'] / r['pages'] * 1000:6.1f} ms/page, peak RSS of the parent "
              f"{r['peak_rss_mib']:.1f} MiB, of a render child {r['child_rss_mib']:.1f} MiB")
    small, large = results
    per_page_time = (large["seconds"] / large["pages"]) / (small["seconds"] / small["pages"])
    print(f"   pages ×{large['pages'] / small['pages']:.2f}, time ×"
          f"{large['seconds'] / small['seconds']:.2f}, time per page ×{per_page_time:.2f}, "
          f"child peak RSS ×{large['child_rss_mib'] / small['child_rss_mib']:.2f}")


def forget_rendered() -> None:
    """A first render starts from nothing: no stored PDF or part, and no chart or map
    drawn earlier in this process (the benchmark's courses repeat the same answers, which
    real sessions do not)."""
    from kaptools import charts, diagrams, outcomes
    from kaptools.rendering import store

    store.clear()
    for kept in (charts._emdr_chart_once, outcomes._course_chart, diagrams._ifs_map):
        kept.cache_clear()


def _pages(pdf: bytes) -> int:
    import io

    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(pdf)).pages)


def _chromium_seconds(html: str, tmp: Path, runs: int | None = None) -> float | None:
    """A cold headless Chromium (process start included) printing ``html`` to PDF: the
    median of ``runs`` runs (of up to three when not given)."""
    from kaptools.resources import resource_dir

    chromium = "/usr/bin/chromium"
    if not os.path.exists(chromium):
        return None
    static = resource_dir("static").resolve()
    page_html = html.replace('href="/static/', f'href="file://{static}/') \
        .replace('url("/static/', f'url("file://{static}/')
    src, out = tmp / "doc.html", tmp / "chromium.pdf"
    src.write_text(page_html)
    times = []
    for _ in range(runs or min(REPEATS, 3)):
        profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp)
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
               "--no-pdf-header-footer", f"--print-to-pdf={out}", src.as_uri()]
        seconds, proc = timed(lambda cmd=cmd: subprocess.run(cmd, capture_output=True,
                                                             timeout=300))
        if proc.returncode == 0 and out.exists():
            times.append(seconds)
    return statistics.median(times) if times else None


BENCHMARKS = {
    "pdf": pdf_benchmark,
    "hostile": lambda: __import__("tests.bench.hostile", fromlist=["main"]).main(),
    "load": lambda: __import__("tests.bench.load", fromlist=["main"]).main(),
}
DEFAULT = ["pdf", "hostile"]


def main(names: list[str]) -> None:
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    for i, name in enumerate(names or DEFAULT):
        if i:
            print("\n" + "-" * 78 + "\n")
        BENCHMARKS[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
