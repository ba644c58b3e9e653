"""Where the blotter finds the capture service's functions (import, repair, trade detail, export).

The capture service (``app.services.capture``) is written alongside the blotter; the blotter calls its functions
by name and hides the actions whose function is not there yet, instead of failing to import. Nothing here
touches the database: it only looks functions up.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

PACKAGE = "app.services.capture"
# Modules of the package that may define the functions, besides the package itself.
MODULES = ("", ".importer", ".repair", ".export", ".detail")


def get(name: str) -> Callable[..., Any] | None:
    """The capture service's function ``name``, or None when the service does not provide it (yet)."""
    for suffix in MODULES:
        try:
            module = importlib.import_module(PACKAGE + suffix)
        except ImportError:
            continue
        except Exception:  # a module being written may fail to import; the blotter must still open
            log.exception("capture service module %s failed to import", PACKAGE + suffix)
            continue
        fn = getattr(module, name, None)
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    return None


def available(name: str) -> bool:
    return get(name) is not None
