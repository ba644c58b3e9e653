"""The capture service's functions the blotter calls (import, repair, trade detail, export, reason codes).

The capture service (``app.services.capture``) pulls in pandas, numpy and the exchange calendars, so the blotter
resolves these functions inside the background task that calls them (:mod:`app.views.deferred`), and warms the
import up in the background when it opens (:func:`reasons` runs in its settings task). Nothing here touches the
database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.views import deferred

# Every capture function a blotter dialog calls, by name; tests resolve each one.
FUNCTIONS: dict[str, str] = {
    "import_trades": "app.services.capture.importer:import_trades",
    "repair_trade": "app.services.capture.repair:repair_trade",
    "trade_detail": "app.services.capture.repair:trade_detail",
    "export_blotter": "app.services.capture.export:export_blotter",
}


def get(name: str) -> Callable[..., Any]:
    """The capture function ``name`` (worker threads or tests: it imports the service)."""
    return deferred.resolve(FUNCTIONS[name])


def call(name: str, *args: Any, **kwargs: Any) -> Any:
    """Worker side: call the capture function ``name``."""
    return get(name)(*args, **kwargs)


def reasons() -> dict[str, str]:
    """Validation reason code -> words (worker side: imports the capture service, quietly: see
    ``collector.import_quietly``)."""
    from app.services.collector import import_quietly

    return dict(import_quietly("app.services.capture.validation").REASONS)
