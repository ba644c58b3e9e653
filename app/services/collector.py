"""Python's cyclic garbage collector, kept out of the way of bulk work and of the GUI thread.

Two uses:

- :func:`cycle_collector_paused` around a bulk import: it allocates millions of tuples and lists (the rows handed to
  the driver) while holding millions more, so the collector's passes come often and each full pass walks every live
  object. Measured with gc.callbacks on bench/bench_import.py's SQLite import: 0.16 s of 8.6 s of CPU in the
  collector at 100,000 trades, 0.47 s of 16.8 s at 200,000; for incoming messages (settlement.messages) a third of
  the time of 100,000 messages. The rows hold no reference cycles (reference counting frees them as usual); the few
  cycles pandas and the ORM make meanwhile wait for the collector's next pass.
- :func:`import_quietly` for a heavy module imported on a worker thread while the GUI runs (pandas, via the
  capture service): the import creates hundreds of thousands of long-lived objects, and the full passes it
  triggers held Python's lock for 27 and 74 ms in one import of ``app.services.capture`` (gc.callbacks), so the GUI
  thread could not paint for that long. With the collector paused the longest hold was 19 ms; the new objects are
  frozen before it resumes (``gc.freeze``), so no later full pass walks them again (the panes freeze what they
  load likewise).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys
import threading
from collections.abc import Iterator
from types import ModuleType

_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = False


@contextlib.contextmanager
def cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block (process-wide; blocks running at the same time on
    other threads share the pause, and the collector is enabled again, if it was on, when the last of them ends)."""
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


def import_quietly(name: str) -> ModuleType:
    """``importlib.import_module(name)`` with the collector paused, and what it created frozen after (see the
    module's docstring). A module already imported is returned as it is, and one that another thread is importing
    right now once that thread has finished (``importlib`` waits for it: the module is in ``sys.modules`` from the
    start of its import, half initialised)."""
    if name in sys.modules:
        return importlib.import_module(name)
    with cycle_collector_paused():
        module = importlib.import_module(name)
        # Frozen before the collector is back: the first pass after the pause would otherwise walk every object the
        # import made (a young-generation pass of 112 ms right after importing the capture service).
        gc.freeze()
    return module
