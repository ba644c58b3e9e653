"""Where a business-day calendar missing from the cache is derived: here, or in a helper process (the GUI's choice).

Deriving an exchange calendar (exchange-calendars and pandas, 1-3 s) holds Python's lock for long stretches: on a
worker thread of the GUI it stalled the GUI thread 70-140 ms the first time the settlement queue opened after an
install or a library upgrade (measured with an empty data directory, ``bench/bench_settlement_queue.py``). The GUI
turns this on at start; the worker then waits for a helper process (``python -m app.services.calendars CODE``),
which derives the calendar, stores it in the cache file and prints it. Light on purpose: the GUI imports it at start,
before numpy.
"""

from __future__ import annotations

_in_helper = False


def derive_in_helper_process(enabled: bool = True) -> None:
    """Derive calendars missing from the cache in a helper process from now on (or, with False, in this one)."""
    global _in_helper
    _in_helper = enabled


def derives_in_helper_process() -> bool:
    return _in_helper
