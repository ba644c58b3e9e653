"""The demo book's day of work: what the areas do with the book once it is loaded, so no pane opens empty.

``build_demo`` writes the book (reference data, trades, instructions, movements, statements). This module then runs
the processes a real desk would have run on it, each through its own service and as the user who would have run it:
settlement fails and penalties (and a few futures give-ups and out-trades), the default reconciliations (leaving
breaks), a few corrections proposed by a clerk for the approvals inbox, and the SLA rules with one evaluation.

It is separate from ``build_demo`` so tests that need only the book stay quick, and so each step can fail alone: a
step that fails is reported in the result with its reason and the others still run (the book itself is committed).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from app.models.users import User

from . import auth
from .db import Database
from .errors import OpsDeskError
from .permissions import Actor

Progress = Callable[[int, int, str], None]


@dataclass
class WorkflowsSummary:
    steps: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "failed": self.failed, "seconds": round(self.seconds, 2)}


def demo_actors(db: Database) -> dict[str, Actor]:
    """The demo users as actors (they were created by ``build_demo``; no password is needed to act for them here,
    exactly as the build itself acts for them)."""
    with db.read() as s:
        return {u.username: auth.actor_for(u) for u in s.scalars(select(User).where(User.is_active))}


def _summarise(value: Any) -> Any:
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if isinstance(value, dict):
        return {k: _summarise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return len(value)
    return value if isinstance(value, int | float | str | bool | None) else str(value)


def seed_workflows(
    db: Database, *, today: dt.date | None = None, progress: Progress | None = None
) -> WorkflowsSummary:
    """Run the demo's day of work on a freshly built book (see the module docstring)."""
    from .recon import run as recon_run
    from .settlement import fails
    from .sla import evaluate as sla_evaluate
    from .workflow import corrections

    started = time.perf_counter()
    # A book built "as of" another day is evaluated at that day's afternoon; a book of today, now.
    at = None if today is None else dt.datetime.combine(today, dt.time(16, 0), tzinfo=dt.UTC)
    today = today or dt.date.today()
    actors = demo_actors(db)
    supervisor = actors.get("supervisor") or actors["admin"]
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("settlement fails", lambda: fails.seed_demo(db, supervisor, today=today)),
        ("reconciliations", lambda: recon_run.seed_demo(db, supervisor, as_of=today)),
        ("corrections", lambda: corrections.seed_demo(db, actors)),
        ("SLA evaluation", lambda: sla_evaluate.seed_demo(db, supervisor, at=at)),
    ]
    out = WorkflowsSummary()
    for n, (name, step) in enumerate(steps):
        if progress is not None:
            progress(n, len(steps), f"Demo work: {name}")
        try:
            out.steps[name] = _summarise(step())
        except OpsDeskError as err:
            out.failed[name] = str(err)
    if progress is not None:
        progress(len(steps), len(steps), "Demo work done")
    out.seconds = time.perf_counter() - started
    return out
