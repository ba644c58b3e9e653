"""Service functions that panes call on worker threads, imported there and only there.

Some services pull in pandas, numpy and the exchange calendars (capture, the corrections workflow); importing them
takes seconds, so it must never happen on the GUI thread. A pane names such a function by its dotted path,
``"package.module:function"``, and the background task that runs it resolves the path (:func:`call`,
:func:`action`). Every path a pane uses is listed in a table next to it (``capture_api.FUNCTIONS``,
``workflow_api.MODULES``) so a test resolves them all: a misspelt name fails the suite, not a clerk's click.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.services.collector import import_quietly


def resolve(path: str) -> Callable[..., Any]:
    """The function at ``"package.module:function"``. Imports: worker threads (or tests) only, with the garbage
    collector kept from holding Python's lock through the import (``collector.import_quietly``)."""
    module_name, _, name = path.partition(":")
    fn = getattr(import_quietly(module_name), name)
    if not callable(fn):
        raise TypeError(f"{path} is not a function")
    return fn  # type: ignore[no-any-return]


def call(path: str, *args: Any, **kwargs: Any) -> Any:
    """Worker side: resolve ``path`` and call it with the arguments."""
    return resolve(path)(*args, **kwargs)


def action(path: str) -> Callable[..., Any]:
    """A worker function that calls ``path`` with the arguments it is given (for ``TaskRunner.call``)."""
    return lambda *args, **kwargs: call(path, *args, **kwargs)
