"""Benchmarks: run with `make bench` (or `python -m tests.bench [pdf|hostile]...`).

`pdf` prints figures as ratios against baselines measured in the same process:
  1. our full render (database → PDF bytes) vs WeasyPrint alone on the same final HTML;
  2. the same HTML printed by a cold headless Chromium, for reference;
  3. a repeat request of an unchanged document vs the first render (content-keyed cache);
  4. a 40-session course vs the 12-session demo course: time per page and peak memory.

`hostile` prints the cost of worst-case inputs against a plain note of the same size
(see tests/bench/hostile.py). With no argument, every benchmark runs.
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
    from weasyprint import HTML

    from kaptools import documents
    from kaptools.demo import load_demo
    from kaptools.extensions import db
    from kaptools.models import Course
    from kaptools.pdf import BASE_URL, CACHE, StaticOnlyFetcher, font_config, html_to_pdf
    from kaptools.resources import resource_dir
    from tests.bench.data import bench_app

    tmp = tempfile.mkdtemp(prefix="kaptools-bench-")
    app = bench_app(tmp)
    with app.test_request_context():
        db.create_all()
        load_demo()
        course_id = db.session.scalar(select(Course.id).where(Course.format == "intensive"))

        def full(use_cache: bool = False) -> bytes:
            db.session.expire_all()
            course = db.session.get(Course, course_id)
            doc = documents.build("summary", course)
            return html_to_pdf(documents.document_html(doc), use_cache=use_cache)

        course = db.session.get(Course, course_id)
        html = documents.document_html(documents.build("summary", course))

        def weasyprint_alone() -> bytes:
            return HTML(string=html, base_url=BASE_URL,
                        url_fetcher=StaticOnlyFetcher()).write_pdf(font_config=font_config())

        full()  # warm fonts, templates and imports for both paths
        weasyprint_alone()
        ours, theirs = [], []
        for _ in range(REPEATS):  # interleaved, so drift affects both alike
            ours.append(timed(full)[0])
            theirs.append(timed(weasyprint_alone)[0])
        ours_med, theirs_med = statistics.median(ours), statistics.median(theirs)
        pdf = full()
        import io

        from pypdf import PdfReader

        pages = len(PdfReader(io.BytesIO(pdf)).pages)
        sessions = len(course.sessions)
        modalities = sorted({n.modality for s in course.sessions for n in s.notes})

        print("kaptools PDF benchmark")
        print(f"  demo course: {sessions} sessions, {pages} pages, modalities: "
              f"{', '.join(modalities)}")
        print(f"  repeats: {REPEATS} (median of each)\n")
        print("1. Full render (database → PDF) vs WeasyPrint alone on the same final HTML")
        print(f"   ours:       {ours_med * 1000:8.1f} ms")
        print(f"   WeasyPrint: {theirs_med * 1000:8.1f} ms")
        print(f"   overhead:   {(ours_med / theirs_med - 1) * 100:+8.1f} %  (target ≤ 15 %)\n")

        # 2. Cold headless Chromium on the same HTML, for reference.
        static = resource_dir("static").resolve()
        chromium = "/usr/bin/chromium"
        print("2. Cold headless Chromium printing the same HTML (reference)")
        if os.path.exists(chromium):
            page_html = html.replace('href="/static/', f'href="file://{static}/') \
                .replace('url("/static/', f'url("file://{static}/')
            src, out = Path(tmp) / "doc.html", Path(tmp) / "chromium.pdf"
            src.write_text(page_html)
            runs = []
            for _ in range(min(REPEATS, 3)):
                profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp)
                cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
                       "--disable-background-networking", "--disable-component-update",
                       "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                       "--no-pdf-header-footer", f"--print-to-pdf={out}", src.as_uri()]
                seconds, proc = timed(lambda cmd=cmd: subprocess.run(
                    cmd, capture_output=True, timeout=120))
                if proc.returncode == 0 and out.exists():
                    runs.append(seconds)
            if runs:
                cr = statistics.median(runs)
                print(f"   Chromium:   {cr * 1000:8.1f} ms  ({cr / theirs_med:.2f}× WeasyPrint "
                      f"alone, cold process start included)\n")
            else:
                print("   Chromium did not produce a PDF on this machine\n")
        else:
            print("   /usr/bin/chromium is not installed; skipped\n")

        # 3. Repeat request of an unchanged document.
        CACHE.clear()
        first, _ = timed(lambda: full(use_cache=True))
        repeats = [timed(lambda: full(use_cache=True))[0] for _ in range(REPEATS)]
        repeat = statistics.median(repeats)
        print("3. Repeat request of an unchanged document (cache keyed on content)")
        print(f"   first:      {first * 1000:8.1f} ms")
        print(f"   repeat:     {repeat * 1000:8.1f} ms")
        print(f"   ratio:      {repeat / first * 100:8.2f} %  (target ≤ 5 %)\n")
        db.engine.dispose()

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
              f"{r['seconds'] / r['pages'] * 1000:6.1f} ms/page, Python heap peak during the "
              f"render {r['heap_peak_mib']:6.1f} MiB, process peak RSS {r['peak_rss_mib']:.1f} MiB")
    small, large = results
    per_page_time = (large["seconds"] / large["pages"]) / (small["seconds"] / small["pages"])
    per_page_heap = (large["heap_peak_mib"] / large["pages"]) / \
        (small["heap_peak_mib"] / small["pages"])
    print(f"   pages ×{large['pages'] / small['pages']:.2f}, time ×"
          f"{large['seconds'] / small['seconds']:.2f}, time per page ×{per_page_time:.2f}, "
          f"heap peak ×{large['heap_peak_mib'] / small['heap_peak_mib']:.2f} "
          f"(heap per page ×{per_page_heap:.2f})")


BENCHMARKS = {"pdf": pdf_benchmark, "hostile": lambda: __import__(
    "tests.bench.hostile", fromlist=["main"]).main()}


def main(names: list[str]) -> None:
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    for i, name in enumerate(names or list(BENCHMARKS)):
        if i:
            print("\n" + "-" * 78 + "\n")
        BENCHMARKS[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
