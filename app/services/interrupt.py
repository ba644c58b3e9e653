"""Stopping a running SQLite query that nobody waits for any more (totals of a filter the clerk has already left).

A pane's totals over a million rows take seconds of a worker and a core on SQLite; when a newer filter arrives the
old totals are cancelled, but a cooperative cancel is only seen between queries. :func:`interruptible` also stops
the query that is running: a watcher thread asks ``cancelled()`` every :data:`WATCH_S` and interrupts the
connection (``sqlite3.Connection.interrupt``, made to be called from another thread), and the query's error comes
out as :class:`Interrupted`. Used by the blotter's and the settlement queue's totals.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from sqlalchemy import Connection, exc


class Interrupted(Exception):
    """A query stopped because its caller said it is no longer wanted (``cancelled``)."""


#: How often a running SQLite query's caller is asked whether it still wants the answer.
WATCH_S = 0.05


@contextlib.contextmanager
def interruptible(conn: Connection, cancelled: Callable[[], bool] | None) -> Iterator[Callable[[], None]]:
    """Stop SQLite's queries once ``cancelled()`` says so, raising :class:`Interrupted`; yields a check to call
    between queries. The connection is never interrupted after the block, so the pooled connection's next user is
    not hit. (A progress handler, the other way, calls Python from inside SQLite and takes the GIL there: it hung
    another worker's calendar reads.) PostgreSQL's queries run to the end: a cancel there is a second
    connection's round trip, for totals of a second at most."""

    def check() -> None:
        if cancelled is not None and cancelled():
            raise Interrupted()

    if cancelled is None or conn.dialect.name != "sqlite":
        yield check
        return
    raw = conn.connection.dbapi_connection
    lock, done = threading.Lock(), threading.Event()

    def watch() -> None:
        while not done.wait(WATCH_S):
            if cancelled():
                with lock:
                    if not done.is_set():
                        raw.interrupt()  # type: ignore[union-attr]

    watcher = threading.Thread(target=watch, name="query-interrupt", daemon=True)
    watcher.start()
    try:
        yield check
    except exc.OperationalError as err:
        if cancelled() and "interrupt" in str(err).lower():
            raise Interrupted() from err
        raise
    finally:
        with lock:
            done.set()
        watcher.join()
