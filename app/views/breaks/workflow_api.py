"""Where the panes find the workflow's actions (claim, categorise, comment, propose, approve ...).

The actions live in ``app.services.workflow`` (``breaks``, ``comments``, ``corrections``, ``candidates``); the
corrections module pulls in the capture service (pandas, numpy, calendars), whose import takes seconds, so the panes
look functions up *inside* the background task that calls them (:func:`call`), never on the GUI thread. A function
that is missing (an older or partial installation) is refused with a sentence instead of breaking the pane.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

from app.services.errors import OpsDeskError

log = logging.getLogger(__name__)

PACKAGE = "app.services.workflow"


class ActionMissing(OpsDeskError):
    """The workflow service does not provide the action (yet)."""


def get(module: str, name: str) -> Callable[..., Any] | None:
    """``app.services.workflow.<module>.<name>``, or None. Imports: worker threads (or tests) only."""
    try:
        mod = importlib.import_module(f"{PACKAGE}.{module}")
    except ImportError:
        return None
    except Exception:  # a broken module must not take the pane down; the action then says it is missing
        log.exception("workflow module %s failed to import", module)
        return None
    fn = getattr(mod, name, None)
    return fn if callable(fn) else None


def call(module: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """Worker side: find the action and run it; a missing one is refused with a sentence."""
    fn = get(module, name)
    if fn is None:
        raise ActionMissing(
            f"This OpsDesk cannot {name.replace('_', ' ')} yet (the workflow service lacks it)."
        )
    return fn(*args, **kwargs)


def action(module: str, name: str) -> Callable[..., Any]:
    """A worker function that calls the action with the arguments it is given (for TaskRunner.call)."""
    return lambda *args, **kwargs: call(module, name, *args, **kwargs)
