"""The workflow's actions the break and approval panes call (claim, categorise, comment, propose, approve ...).

The actions live in ``app.services.workflow`` (``breaks``, ``comments``, ``corrections``, ``candidates``); the
corrections module pulls in the capture service (pandas, numpy, calendars), whose import takes seconds, so the panes
resolve them inside the background task that calls them (:mod:`app.views.deferred`), never on the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.views import deferred

PACKAGE = "app.services.workflow"
# Every (module, action) a pane calls; tests resolve each one.
ACTIONS: tuple[tuple[str, str], ...] = (
    ("breaks", "claim_break"),
    ("breaks", "release_break"),
    ("breaks", "assign_break"),
    ("breaks", "set_category"),
    ("comments", "add_comment"),
    ("comments", "add_attachment"),
    ("corrections", "propose"),
    ("corrections", "approve"),
    ("corrections", "reject"),
    ("corrections", "bulk_decide"),
    ("candidates", "candidates"),
)


def get(module: str, name: str) -> Callable[..., Any]:
    """``app.services.workflow.<module>.<name>``. Imports: worker threads (or tests) only."""
    return deferred.resolve(f"{PACKAGE}.{module}:{name}")


def call(module: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """Worker side: run the action."""
    return get(module, name)(*args, **kwargs)


def action(module: str, name: str) -> Callable[..., Any]:
    """A worker function that calls the action with the arguments it is given (for TaskRunner.call)."""
    return deferred.action(f"{PACKAGE}.{module}:{name}")
