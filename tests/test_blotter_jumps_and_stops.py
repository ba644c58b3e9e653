"""Jumps into the middle of the blotter, and reads stopped where they run once nobody waits for them.

A page at an offset into the whole book is read on PostgreSQL by keyset from the row found at that offset through the
sort index alone: it must give exactly the rows an OFFSET gives (as SQLite and filtered pages still read them), for
every sort key (ties, a unique key, missing settlement dates), both directions, from either end, with and without a
filter. A read inside ``paging.stopped_by`` stops on the server once its
``QueryStop`` is stopped (PostgreSQL's cancel request, SQLite's interrupt), raises ``Interrupted``, and leaves the
pooled connection answering the next read whole; a stop that comes too late changes nothing. Both backends.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import text

from app.services import blotter, paging
from app.services.blotter import BlotterFilter, Sort
from app.services.interrupt import Interrupted

from .factories import insert_trades
from .helpers import every_row

N = 311
SORT_KEYS = ["trade_date", "settlement_date", "gross_amount", "status", "isin", "trade_ref", "side"]
# A statement that runs for many seconds (counting to a hundred million) on both backends, then answers: if the
# stop did not work, the test fails on its time limit instead of hanging.
ENDLESS = text(
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) SELECT count(*) FROM n"
)


@pytest.fixture
def book(db, users):
    return insert_trades(db, N, 23, latest=dt.date(2026, 11, 18))


@pytest.mark.parametrize("key", SORT_KEYS)
def test_a_jump_reads_the_rows_an_offset_gives_for_every_sort(db, users, book, key) -> None:
    clerk = users["clerk1"]
    for flt in (BlotterFilter(), BlotterFilter(statuses=("SETTLED", "FAILED", "REPAIR"))):
        for descending in (False, True):
            sort = Sort(key, descending)
            everything = every_row(blotter.fetch_page, db, clerk, flt, sort)
            assert len(everything) > 100
            n = len(everything)
            for offset in (1, 37, n // 2, n - 5, n - 1, n, n + 50):
                page = blotter.fetch_page(db, clerk, flt, sort, limit=25, offset=offset)
                assert page.rows == everything[offset : offset + 25], (key, descending, offset)
                back = blotter.fetch_page(db, clerk, flt, sort, limit=25, from_end=True, offset=offset)
                assert back.rows == everything[max(n - offset - 25, 0) : max(n - offset, 0)], (key, offset)


def _slow_read(db, stop: paging.QueryStop, started: threading.Event) -> object:
    with paging.stopped_by(stop), paging.reader(db) as conn:
        started.set()
        return conn.execute(ENDLESS).scalar()


def _raw(db):
    with paging.reader(db) as conn:
        return conn.connection.dbapi_connection


def test_a_stopped_read_stops_where_it_runs_and_its_connection_answers_after(db) -> None:
    stop, started = paging.QueryStop(), threading.Event()
    # Stopped once the statement has been sent (the GUI thread cancelling a task whose worker is mid-query).
    timer = threading.Timer(0.3, lambda: (started.wait(5), stop.stop()))
    timer.start()
    began = time.monotonic()
    with pytest.raises(Interrupted):
        _slow_read(db, stop, started)
    timer.join()
    assert time.monotonic() - began < 20  # stopped, not run to its end
    # The pool hands out the same connection again (one was ever opened here), and it answers whole, every time.
    for _ in range(3):
        with paging.reader(db) as conn:
            assert conn.execute(text("SELECT 40 + 2")).scalar() == 42


def test_a_read_after_its_stop_never_starts(db) -> None:
    stop = paging.QueryStop()
    stop.stop()
    with pytest.raises(Interrupted), paging.stopped_by(stop), paging.reader(db) as conn:
        conn.execute(text("SELECT 1")).scalar()
    with paging.reader(db) as conn:  # outside the block reads are not stopped
        assert conn.execute(text("SELECT 2")).scalar() == 2


def test_a_stop_racing_the_end_of_a_read_never_reaches_the_next_one(db) -> None:
    """Stops landing just before, during and just after short reads end: a read that finished keeps its answer
    or stops, and the next read on the pooled connection (outside any stop) always answers whole."""
    pooled = _raw(db)
    for i in range(12):
        stop = paging.QueryStop()
        timer = threading.Timer(i * 0.002, stop.stop)
        timer.start()
        try:
            with paging.stopped_by(stop), paging.reader(db) as conn:
                value = conn.execute(text("SELECT 7")).scalar()
            assert value == 7
        except Interrupted:
            pass
        timer.join()
        with paging.reader(db) as conn:
            assert conn.execute(text("SELECT 8")).scalar() == 8
    assert _raw(db) is pooled  # never given up: every stop reached its statement, or found it done


def test_blotter_reads_under_a_stop_give_their_rows_until_it_is_stopped(db, users, book) -> None:
    clerk, sort = users["clerk1"], Sort("gross_amount", True)
    stop = paging.QueryStop()
    with paging.stopped_by(stop):
        page = blotter.fetch_page(db, clerk, BlotterFilter(), sort, limit=30, offset=40)
        assert blotter.count(db, clerk, BlotterFilter()) == N
        totals = blotter.totals(db, clerk, BlotterFilter())
        stop.stop()
        with pytest.raises(Interrupted):
            blotter.fetch_page(db, clerk, BlotterFilter(), sort, limit=30, offset=40)
        with pytest.raises(Interrupted):
            blotter.count(db, clerk, BlotterFilter())
        with pytest.raises(Interrupted):
            blotter.totals(db, clerk, BlotterFilter())
    assert page.rows == blotter.fetch_page(db, clerk, BlotterFilter(), sort, limit=30, offset=40).rows
    assert totals.count == N
