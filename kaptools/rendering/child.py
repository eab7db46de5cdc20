"""What runs inside a render child process: limits on itself, then one HTML to PDF.

This module is preloaded into the fork server, so WeasyPrint and its fonts are ready in
every child the moment it starts.
"""

from __future__ import annotations

import gc
import os
import resource

from . import weasy

weasy.font_config()  # load fontconfig once, in the fork server
try:
    weasy.print_stylesheet()  # and parse the print stylesheet once
    weasy.lean_ua_stylesheet()  # (and the user-agent stylesheet it is laid out with)
except Exception:  # a child that needs it parses it itself (and reports what is wrong)
    pass


# Laid out once when a child starts, so the fonts and styles are loaded before the
# first real part arrives.
WARM_UP = """<!doctype html><html lang="en"><head><title>warm-up</title>
<link rel="stylesheet" href="/static/css/print.css"></head><body class="summary">
<h1>Aa</h1><h2>Bb</h2><p>Cc <strong>Dd</strong> <em>Ee</em> <code>Ff</code></p>
<table><tr><th>Gg</th><td>Hh</td></tr></table><div class="handout"><h2>Ii</h2>
<p class="quote">Jj</p></div></body></html>"""


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
        weasy.render_pdf(WARM_UP)
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
    with the other parts (see ``assemble.prepare_part``)."""
    try:
        pdf, pages = weasy.render_pdf(html, pdf_ua=pdf_ua)
        if join_prefix is not None:
            from .assemble import prepare_part

            pdf = prepare_part(pdf, join_prefix)
        return ("ok", pdf, pages)
    except MemoryError:
        return ("memory",)
    except Exception as exc:  # reported to the job, which names it in its message
        if _near_memory_limit():
            return ("memory",)
        return ("error", f"the layout engine stopped: {exc.__class__.__name__}: "
                         f"{str(exc)[:300]}")
