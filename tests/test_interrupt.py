"""A query nobody waits for any more stops while it runs (SQLite), and the connection is usable afterwards.

The panes' totals (blotter, settlement queue) are cancelled when a newer filter arrives; between queries a check sees
it, and :func:`app.services.interrupt.interruptible` also stops the query that is running.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from app.services.db import Database
from app.services.interrupt import Interrupted, interruptible

# A query that runs for many seconds (counting to a hundred million), then answers: if the interrupt did not work,
# the test fails instead of hanging.
ENDLESS = text(
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) SELECT count(*) FROM n"
)


def test_a_running_sqlite_query_stops_once_cancelled(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.sqlite'}")
    started, wanted = threading.Event(), threading.Event()

    def cancelled() -> bool:
        return wanted.is_set()

    # The clerk moves on once the query has been sent (not before: the check between queries would see it).
    threading.Timer(0.3, wanted.set).start()
    with db.read() as s:
        conn = s.connection()
        with pytest.raises(Interrupted), interruptible(conn, cancelled) as check:
            check()
            started.set()
            conn.execute(ENDLESS).scalar()
        assert started.is_set()
        # Never interrupted after the block: the same connection answers the next query whole.
        assert conn.execute(text("SELECT 40 + 2")).scalar() == 42
    db.dispose()


def test_not_cancelled_runs_to_the_end(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.sqlite'}")
    with db.read() as s:
        conn = s.connection()
        with interruptible(conn, lambda: False) as check:
            check()
            assert conn.execute(text("SELECT count(*) FROM (SELECT 1 UNION ALL SELECT 2)")).scalar() == 2
    db.dispose()
