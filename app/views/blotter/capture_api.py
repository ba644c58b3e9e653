"""The capture service's functions the blotter calls (import, repair, trade detail, export, reason codes).

Most of the capture service (``app.services.capture``) pulls in pandas, numpy, pyarrow and the exchange calendars,
so the blotter resolves these functions inside the background task that calls them (:mod:`app.views.deferred`).
The detail panel's function and the reason codes live in light modules (``capture.detail``,
``capture.reason_codes``): the panel opens often, and the filter bar offers the codes from the start. The rest is
imported when the clerk shows the intent (:func:`prepare`: the import's or the export's file picker, the repair
dialog), while they choose a file or type; at worst on first use (about two seconds once per session). It used to
be warmed up in the background 1.5 s after the blotter opened; that import held Python's lock in stretches of up to 65-90 ms
while the clerk scrolled (bench_blotter.py's stall dumps), which a clerk feels and the first import's wait does
not. Nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.views import deferred
from app.views.tasks import TaskRunner

# Every capture function a blotter dialog calls, by name; tests resolve each one.
FUNCTIONS: dict[str, str] = {
    "import_trades": "app.services.capture.importer:import_trades",
    "repair_trade": "app.services.capture.repair:repair_trade",
    "trade_detail": "app.services.capture.detail:trade_detail",
    "export_blotter": "app.services.capture.export:export_blotter",
}


def get(name: str) -> Callable[..., Any]:
    """The capture function ``name`` (worker threads or tests: it imports the service)."""
    return deferred.resolve(FUNCTIONS[name])


def prepare(tasks: TaskRunner, name: str) -> None:
    """Import the capture function ``name`` in the background now, quietly, because the clerk is about to need it:
    the file picker of an import or an export, or the repair dialog, is open, and the clerk is choosing or typing
    for some seconds, not scrolling (the import holds Python's lock in stretches). The call itself then starts at
    once; a failure here shows again when the function is called."""
    tasks.call(get, name, on_error=lambda _f: None, label="Preparing the trade capture", quiet=True)


def call(name: str, *args: Any, **kwargs: Any) -> Any:
    """Worker side: call the capture function ``name``."""
    return get(name)(*args, **kwargs)


def reasons() -> dict[str, str]:
    """Validation reason code -> words (a light module: no pandas)."""
    from app.services.capture.reason_codes import REASONS

    return dict(REASONS)
