"""A long-lived web process and Python's garbage collector.

What a web process loads once and keeps (its modules, the app, the compiled templates, the
note templates, SQLAlchemy's cached statements) is some 160,000 objects, and every full pass
of the garbage collector walks all of them again: on the 50,000-note benchmark database a
pass in a warm process took 15-40 ms, every thousand requests or so, a pause for the
requests queued on that worker. Once a process has served its first requests (by then
nearly everything it keeps for good is loaded), those objects are collected once and then
moved out of the collector's way (``gc.freeze``): later full passes walk only what requests
made, and took under a millisecond. Nothing is switched off: cycles that requests make
are collected as before.

``GC_FREEZE_AFTER_REQUESTS`` sets when (0: never; tests default to never, as a test
process makes many apps and would keep each one's objects).
"""

from __future__ import annotations

import gc
import threading

from flask import Flask

_LOCK = threading.Lock()
_served = 0
_frozen = False


def init_app(app: Flask) -> None:
    after = int(app.config["GC_FREEZE_AFTER_REQUESTS"])
    if after <= 0:
        return

    @app.teardown_request
    def _freeze_when_warm(_exc: BaseException | None) -> None:
        if not _frozen:
            freeze_after(after)


def freeze_after(requests: int) -> bool:
    """Count one request served; at the ``requests``-th in this process, collect and
    freeze what the process holds. Whether this call froze it."""
    global _served, _frozen
    with _LOCK:
        if _frozen:
            return False
        _served += 1
        if _served < requests:
            return False
        _frozen = True
    gc.collect()
    gc.freeze()
    return True


def forget() -> None:
    """Unfreeze and start counting again (tests)."""
    global _served, _frozen
    with _LOCK:
        _served, _frozen = 0, False
    gc.unfreeze()
