"""Where the blotter finds the capture service's functions (import, repair, trade detail, export, reason codes).

The capture service (``app.services.capture``) pulls in pandas, numpy and the exchange calendars: importing it
takes seconds, so it must never happen on the GUI thread. The blotter therefore looks its functions up *inside*
the background task that calls them (:func:`call`), and warms the import up in the background when it opens
(:func:`reasons` runs in its settings task). Nothing here touches the database.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from typing import Any

from app.services.errors import OpsDeskError

log = logging.getLogger(__name__)

PACKAGE = "app.services.capture"
# Modules of the package that may define the functions, besides the package itself.
MODULES = ("", ".importer", ".repair", ".export")


class ServiceMissing(OpsDeskError):
    """The capture service does not provide the function (an older or partial installation)."""


def get(name: str) -> Callable[..., Any] | None:
    """The capture service's function ``name``, or None when it does not provide it. Imports: worker threads only
    (or tests), unless :func:`loaded` says the import has happened."""
    for suffix in MODULES:
        try:
            module = importlib.import_module(PACKAGE + suffix)
        except ImportError:
            continue
        except (
            Exception
        ):  # a broken module must not take the blotter down; the action then says it is missing
            log.exception("capture service module %s failed to import", PACKAGE + suffix)
            continue
        fn = getattr(module, name, None)
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    return None


def available(name: str) -> bool:
    return get(name) is not None


def loaded() -> bool:
    """The capture service has been imported (looking a function up is then instant)."""
    return PACKAGE in sys.modules


def call(name: str, *args: Any, **kwargs: Any) -> Any:
    """Worker side: find the capture function ``name`` and call it; a missing one is refused with a sentence."""
    fn = get(name)
    if fn is None:
        raise ServiceMissing(f"This OpsDesk has no {name.replace('_', ' ')} in its capture service yet.")
    return fn(*args, **kwargs)


def reasons() -> dict[str, str]:
    """Validation reason code -> words (worker side: imports the capture service)."""
    try:
        from app.services.capture.validation import REASONS
    except Exception:  # codes then show bare
        return {}
    return dict(REASONS)
