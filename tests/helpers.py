"""Helpers the service tests share (no Qt here: the GUI tests' own are in ``gui_helpers``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

WON = "won"

#: Real message files written by banks, custodians and other projects (copied from the team's shared fixtures with
#: their MANIFEST.tsv, README and licences; see tests/fixtures/real/README.md). Never edit one to make a parser pass.
REAL_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "real"


def race(attempts: dict[str, Callable[[], object]], loses: type[BaseException]) -> dict[str, object]:
    """Start every attempt at the same instant, each on its own thread (two workstations racing for one row).

    Returns, per name, ``WON`` or the ``loses`` error the attempt raised; any other error leaves its name out, so
    a test that expects every name fails.
    """
    barrier = threading.Barrier(len(attempts))
    outcomes: dict[str, object] = {}

    def run(name: str, attempt: Callable[[], object]) -> None:
        barrier.wait()
        try:
            attempt()
            outcomes[name] = WON
        except loses as err:
            outcomes[name] = err

    threads = [threading.Thread(target=run, args=(name, attempt)) for name, attempt in attempts.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    """Run ``opsdesk`` with ``argv``: its exit code and what it printed (the JSON summary, or {"text": ...})."""
    from app.cli import main

    code = main(list(argv))
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip().startswith("{") else {"text": out})


def every_row(
    fetch_page: Callable[..., Any], db: Any, actor: Any, flt: Any, sort: Any, limit: int = 40
) -> list:
    """Every row a filter and sort select, page after page by keyset, through a service's ``fetch_page``."""
    rows: list = []
    after = None
    while True:
        page = fetch_page(db, actor, flt, sort, limit=limit, after=after)
        rows.extend(page.rows)
        if len(page.rows) < limit:
            return rows
        after = page.last_key
