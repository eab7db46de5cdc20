"""What runs inside a render child process: limits on itself, then one HTML to PDF.

This module is preloaded into the fork server, so WeasyPrint and its fonts are ready in
every child the moment it starts.
"""

from __future__ import annotations

import gc
import os
import resource

from . import weasy
from .engine import MAIN_PATH_ENV


def _run_main_script_once() -> None:
    """Run the program's script here, in the fork server, as multiprocessing would in each
    child (children find it already run and skip it): started from the ``kaptools``
    command, each child would otherwise import the whole application again before its
    first part (about 0.6 s of CPU, and the memory)."""
    path = os.environ.get(MAIN_PATH_ENV)
    if path:
        from multiprocessing import process, spawn

        # As in a child: a script that would start processes while it is imported (no
        # ``if __name__ == "__main__":`` guard) is stopped by multiprocessing's own check,
        # with its message. Without it, the script rendered here too, with a fork server
        # of its own that ran the script again, and so on until memory ran out.
        process.current_process()._inheriting = True
        try:
            spawn.import_main_path(path)
        except Exception:  # each child then runs it itself, as without this
            pass
        finally:
            del process.current_process()._inheriting


_run_main_script_once()
weasy.font_config()  # load fontconfig once, in the fork server
try:
    weasy.print_stylesheet()  # and parse the print stylesheet once
    weasy.lean_ua_stylesheet()  # (and the user-agent stylesheet it is laid out with)
    weasy.prepare_layout()  # the layout engine, as every child uses it
    from . import assemble  # noqa: F401  (and the joining code: pikepdf)
except Exception:  # a child that needs it makes it itself (and reports what is wrong)
    pass


# Laid out once when a child starts, before the first real part arrives: shaped like a
# session part (print/part.html's page rules, its elements and table layouts, the faces
# of the fonts parts use, letters and digits; tagged and made ready to be joined), so what
# a first layout loads or caches once per process (fonts, shapers, selectors, the tagging
# and joining code) is ready when a part comes. Synthetic words only.
WARM_UP = """<!doctype html><html lang="en"><head><title>warm-up</title>
<link rel="stylesheet" href="/static/css/print.css">
<style>@page { @top-left { content: none; } @top-right { content: none; } @bottom-left { content:
none; } @bottom-center { content: none; } @bottom-right { content: none; } }</style>
</head><body class="summary">
<section class="session"><div class="session-head"><h2>Warm-up · Monday 01 January 2001</h2>
<p class="muted small">Aa Bb Cc 0123456789.</p></div>
<article class="note"><h3 class="note-title">Warm-up note <span class="note-state signed">signed
</span> <span class="muted small">template v1</span></h3>
<section class="view-section"><h3>Section</h3><div class="view-field"><div class="view-label">
Label</div><div class="view-value"><p>The quick brown fox jumps over the lazy dog; THE QUICK
BROWN FOX JUMPS OVER THE LAZY DOG, 0123456789 (%/+-=:?!).</p></div></div>
<div class="view-field"><div class="view-label">List</div><div class="view-value"><ul><li>
<strong>Strong</strong> <em>emphasis</em> <code>code</code></li><li>Two</li></ul></div></div>
</section><h4>Tables</h4><table class="questionnaire"><thead><tr><th scope="col">#</th>
<th scope="col">Item</th><th scope="col">Answer</th></tr></thead><tbody><tr><td>1</td>
<td>Row</td><td class="flag">Flag</td></tr></tbody></table><table class="record-table"><tbody>
<tr><th scope="row">Route</th><td>Text</td></tr></tbody></table><table class="vitals-table">
<thead><tr><th scope="col" class="c-time">Time</th><th scope="col" class="c-bp">BP</th>
<th scope="col">Note</th></tr></thead><tbody><tr><td>12:00</td><td class="vital-out">150
<span class="vital-marker">high</span></td><td>Text</td></tr></tbody></table><table><thead><tr>
<th scope="col">Auto</th><th scope="col">Layout</th></tr></thead><tbody><tr><td>1</td><td>Two
</td></tr></tbody></table><div class="signature-block"><p>Signed by <strong>Warm Up</strong> ·
<span class="hash">0123456789abcdef0123456789abcdef</span></p></div></article></section>
<div class="handout"><h2>Ii</h2><p class="quote">Jj</p></div></body></html>"""


def end_with_server() -> None:
    """Let the fork server end with the process that started it, and end with the server.

    Every child of a fork server is handed the server's "alive" pipe (for children that
    start processes of their own; a render child never does). Held open here, it kept
    the server from ever seeing its starter go: a web or worker process stopped hard
    (killed, or stopped by a signal it does not catch) left its server and children
    behind for good, waiting on each other. Closed here, the server ends when its
    starter does; and this child, having asked the kernel for a signal when its parent
    ends (Linux), ends with the server."""
    parent = os.getppid()
    try:
        from multiprocessing import forkserver

        server = forkserver._forkserver
        if getattr(server, "_forkserver_alive_fd", None) is not None:
            os.close(server._forkserver_alive_fd)
            server._forkserver_alive_fd = None
    except (ImportError, AttributeError, OSError):
        pass
    try:
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the server ends, this child waits
        pass
    if os.getppid() != parent:  # the server ended before the kernel was asked
        os._exit(0)


def limit_self(memory_mb: int) -> None:
    """Cap this process's address space, yield the CPU to web requests, warm up."""
    limit = int(memory_mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        # Run only when no web request wants the CPU: pages stay fast while PDFs render.
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.nice(19)
        except OSError:
            pass
    try:
        render(WARM_UP, True, "warm-up-")
    except Exception:  # a real render reports whatever is wrong
        pass
    _freeze_what_lasts()


def _freeze_what_lasts() -> None:
    """Keep what every render reuses (fonts, the parsed stylesheet, modules) out of the
    garbage collector's full passes: a layout allocates many objects, and each full pass
    would walk all of that again (about 7 % of a part's time)."""
    gc.collect()
    gc.freeze()


def _near_memory_limit() -> bool:
    """Whether this process's address space is close to its limit (a failing allocation
    in a C library often surfaces as some other error than MemoryError)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return False
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return pages * resource.getpagesize() > 0.85 * soft


def render(html: str, pdf_ua: bool, join_prefix: str | None = None) -> tuple:
    """("ok", pdf, pages), ("memory",) or ("error", message) — never raises. A part of a
    longer document (``join_prefix``) is also made ready to be joined, here, in parallel
    with the other parts, as it is written (see ``assemble.prepare_for_joining``)."""
    try:
        pdf, pages = weasy.render_pdf(html, pdf_ua=pdf_ua, finisher=weasy.joining(join_prefix))
        return ("ok", pdf, pages)
    except MemoryError:
        return ("memory",)
    except Exception as exc:  # reported to the job, which names it in its message
        if _near_memory_limit():
            return ("memory",)
        return ("error", f"the layout engine stopped: {exc.__class__.__name__}: "
                         f"{str(exc)[:300]}")
