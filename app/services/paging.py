"""What every paged list of a million rows shares: a page, a refresh window, a cheap read connection, keyset clauses.

The trade blotter (``blotter.py``) and the settlement queue (``settlement/queue.py``) read their rows through these
pieces, and the Qt paged model (``app/views/qt_models/paged_model.py``) drives both lists from the same shapes
(:class:`Page`, :class:`Window`). What stays in each list's module is what is particular to its table: the columns,
the filter's conditions, the sort expressions and the query shape.

Keyset paging: the rows after a page are ``WHERE (sort_key, id) > (:last_key, :last_id)`` in the display order,
which with an index on ``(sort_key, id)`` is an index range scan as cheap at row 900,000 as at row 200. A page is
read forwards (the first page, ``after`` a known row, or at an ``offset`` for a jump into the middle) or backwards
(``from_end`` for the last rows, ``before`` a known row when scrolling up after a jump): :func:`page_shape` turns a
request into the SQL order, the keyset bound and the OFFSET. :func:`read_window` reads what a live refresh needs to
keep the user's place, in one snapshot. :func:`choose_plan` picks the access path of a filtered page where the
planners misjudge it (see "choosing the access path" below).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import ColumnElement, FunctionElement, String, Table, exc, func, select, text, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles

from .db import Database, translate_errors
from .interrupt import Interrupted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Column:
    """A column a paged list shows: ``key`` names the value in each row tuple."""

    key: str
    label: str
    kind: str  # text, date, datetime, decimal, int, status, bool
    width: int = 100
    default_visible: bool = True


class DictFilter:
    """Saved views store a pane's filter as JSON: ``as_dict`` / ``from_dict`` for a frozen filter dataclass.

    Empty fields are left out; tuples become lists and dates ISO strings. ``_transient`` fields (a drill-down's id
    list) are never saved; ``_tuples`` names the fields read back as tuples.
    """

    _transient: tuple[str, ...] = ("ids", "ids_title")
    _tuples: tuple[str, ...] = ("statuses", "ids")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if f.name in self._transient or v is False or v in (None, (), ""):
                continue
            out[f.name] = (
                list(v) if isinstance(v, tuple) else (v.isoformat() if isinstance(v, dt.date) else v)
            )
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        kw: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name not in d or d[f.name] in (None, ""):
                continue
            v = d[f.name]
            if f.name in cls._tuples:
                v = tuple(v)
            elif "date" in f.name and isinstance(v, str):
                v = dt.date.fromisoformat(v)
            kw[f.name] = v
        return cls(**kw)


def exact_isin(term: str) -> bool:
    """Whether a search term is a whole ISIN (then an equality on the indexed column, not a name search)."""
    return len(term) == 12 and term[:2].isalpha()


@dataclass
class Page:
    rows: list[tuple[Any, ...]]
    first_key: tuple[Any, Any] | None = None  # (sort value, id) of the first row
    last_key: tuple[Any, Any] | None = None


@dataclass
class Window:
    """The rows around the one a user is looking at, read in one unit of work (a refresh that keeps one's place).

    ``rows`` are whole pages (``start`` is a multiple of the page size) covering the rows the view shows; ``top`` is
    the row now at the top (where the top item moved to); ``positions`` gives the new row number of each tracked
    item (None: the filter no longer selects it).
    """

    count: int
    start: int
    rows: list[tuple[Any, ...]]
    top: int
    positions: dict[int, int | None]


@contextlib.contextmanager
def reader(db: Database) -> Iterator[Connection]:
    """A connection for reads that are one statement each (a page, a count).

    On PostgreSQL in autocommit: no BEGIN before the query and no ROLLBACK after it, two of the four round trips a
    page would otherwise cost (with the pool's liveness ping, four at 50 ms apart is 200 ms over a VPN before the
    database has done anything). One SELECT is its own consistent snapshot, so nothing is lost. SQLite reads as
    db.read() does: there a round trip costs nothing.

    Inside :func:`stopped_by` (a worker whose task may be cancelled) the statements run here stop, on the server,
    once the :class:`QueryStop` is stopped, and :class:`~app.services.interrupt.Interrupted` is raised.
    """
    stop: QueryStop | None = getattr(_stops, "current", None)
    with contextlib.ExitStack() as stack:
        if db.is_postgres:
            stack.enter_context(translate_errors())
            conn = stack.enter_context(db.engine.connect()).execution_options(isolation_level="AUTOCOMMIT")
        else:
            conn = stack.enter_context(db.read()).connection()
        if stop is not None:
            stack.enter_context(stop.watching(conn))
        yield conn


# --- stopping a query nobody waits for --------------------------------------------------------------------------------
#
# A page the user has scrolled far past, the first page and count of a filter already replaced, totals of a filter
# left: their tasks are cancelled, but a cooperative cancel is only seen between statements, and one statement is
# the whole of such a task. An OFFSET page 300,000 rows in, or a count of a million rows, then keeps a server
# process (and its parallel workers) busy for hundreds of milliseconds after nobody wants the answer, on the cores
# the GUI thread needs. A QueryStop cancels the statement where it runs: PostgreSQL's cancel request (a second
# connection, sent from a kept sender thread so the GUI thread never waits on the network), SQLite's interrupt.

#: How long a cancel request may take to reach the server before its connection is given up (see QueryStop).
CANCEL_TIMEOUT_S = 10.0
#: SQLSTATE of "canceling statement due to user request".
QUERY_CANCELED = "57014"

_stops = threading.local()


class QueryStop:
    """Stops, from any thread, the statement a worker runs through :func:`reader` (inside :func:`stopped_by`).

    :meth:`stop` is cheap and never blocks (the GUI thread calls it when it cancels a task). Once stopped, the
    statement running stops with :class:`~app.services.interrupt.Interrupted`, and so does any later one.

    A cancel never reaches anyone else's statement: a connection goes back to the pool only once a cancel sent
    while it was in use has reached the server (PostgreSQL ignores a cancel that finds its session idle), and one
    whose cancel could not be delivered in :data:`CANCEL_TIMEOUT_S` is closed instead of reused.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopped = False
        self._running: Connection | None = None
        self._delivered: _Delivery | None = None

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            conn = self._running
            if conn is None:
                return
            raw: Any = conn.connection.dbapi_connection
            if conn.dialect.name == "sqlite":
                raw.interrupt()  # made to be called from another thread; only ever inside the block (the lock)
                return
            delivered = self._delivered = _Delivery()
        # Handed to kept threads: starting a thread waits for it to run, which the GUI thread must not do.
        _cancel_senders().submit(delivered.send, raw)

    @contextlib.contextmanager
    def watching(self, conn: Connection) -> Iterator[None]:
        """Statements run on ``conn`` in the block are stopped by :meth:`stop`."""
        with self._lock:
            if self._stopped:
                raise Interrupted()
            self._running = conn
        try:
            yield
        except exc.DBAPIError as err:
            if self._stopped and _was_stopped(err):
                raise Interrupted() from err
            raise
        finally:
            with self._lock:
                self._running = None
                delivered = self._delivered
            if delivered is not None and not delivered.done(CANCEL_TIMEOUT_S):
                # A cancel that may still be on its way could stop the next user's statement: not reused.
                conn.invalidate()


_senders: ThreadPoolExecutor | None = None
_senders_lock = threading.Lock()


def _cancel_senders() -> ThreadPoolExecutor:
    """The threads that send cancel requests (made on first use; two, since a request may wait on the network)."""
    global _senders
    with _senders_lock:
        if _senders is None:
            _senders = ThreadPoolExecutor(max_workers=2, thread_name_prefix="query-cancel")
        return _senders


class _Delivery:
    """A PostgreSQL cancel request on its way (``cancel_safe``: a second connection to the server)."""

    def __init__(self) -> None:
        self._finished = threading.Event()
        self._ok = False

    def send(self, raw: Any) -> None:
        try:
            raw.cancel_safe(timeout=CANCEL_TIMEOUT_S)
            self._ok = True
        except Exception:  # the statement then runs to its end: a cancel only saves work
            log.debug("query cancel not delivered", exc_info=True)
        finally:
            self._finished.set()

    def done(self, timeout: float) -> bool:
        """True once the request has reached the server; False if it failed or is still on its way."""
        return self._finished.wait(timeout) and self._ok


def _was_stopped(err: exc.DBAPIError) -> bool:
    orig = err.orig
    return getattr(orig, "sqlstate", None) == QUERY_CANCELED or "interrupt" in str(orig).lower()


@contextlib.contextmanager
def stopped_by(stop: QueryStop) -> Iterator[QueryStop]:
    """Within the block, statements this thread runs through :func:`reader` are stopped by ``stop``."""
    previous = getattr(_stops, "current", None)
    _stops.current = stop
    try:
        yield stop
    finally:
        _stops.current = previous


class no_index(FunctionElement[str]):
    """A column the SQLite planner must not pick an index for (``+col``); plain ``col`` elsewhere.

    SQLite has no statistics unless ANALYZE ran, and even with them it prefers an equality index plus a sort of
    every matching row over walking the sort index: 700,000 SETTLED trades (or 300,000 open instructions) sorted to
    show 200. Callers hide the filter's index when many rows match (:data:`SORT_INDEX`).
    """

    type = String()
    name = "no_index"
    inherit_cache = True


@compiles(no_index)
def _no_index_default(element: no_index, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(no_index, "sqlite")
def _no_index_sqlite(element: no_index, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.clauses, **kw))


def order_by(key: Any, id_col: Any, desc: bool, *, unique: bool = False) -> tuple[Any, ...]:
    """ORDER BY of a keyset page: the sort key, then the id as tie-break (none needed for a unique key)."""
    if unique:
        return (key.desc(),) if desc else (key.asc(),)
    return (key.desc(), id_col.desc()) if desc else (key.asc(), id_col.asc())


def beyond(
    key: Any, id_col: Any, last: tuple[Any, Any], desc: bool, *, unique: bool = False
) -> ColumnElement[bool]:
    """Rows after ``last`` (sort value, id) in the display order: the keyset condition of the next page."""
    if unique:
        return key < last[0] if desc else key > last[0]
    return tuple_(key, id_col) < tuple_(*last) if desc else tuple_(key, id_col) > tuple_(*last)


def window_bounds(total: int, top: int, visible: int, page_size: int) -> tuple[int, int, int]:
    """(top clamped to the rows there are, first row of its page, end of the pages covering ``visible`` rows)."""
    top = max(0, min(top, total - 1)) if total else 0
    start = (top // page_size) * page_size
    end = min(total, ((top + max(visible, 1) - 1) // page_size + 1) * page_size)
    return top, start, end


# --- one page -------------------------------------------------------------------------------------------------------

#: Rows turned into Python values per stretch. A worker converting a page holds the GIL (the GUI thread needs it
#: for every repaint); between stretches it lets go, so a waiting GUI thread takes it at once rather than after
#: the switch interval.
CHUNK_ROWS = 50


def read_rows(conn: Connection, query: Any) -> list[tuple[Any, ...]]:
    """The rows of ``query`` as plain tuples, read and converted :data:`CHUNK_ROWS` at a time."""
    rows: list[tuple[Any, ...]] = []
    for part in conn.execute(query).partitions(CHUNK_ROWS):
        rows.extend(map(tuple, part))
        time.sleep(0)  # a GIL hand-over point: nothing sleeps, the GUI thread may run
    return rows


def page_of(rows: list[tuple[Any, ...]], key_index: int, id_index: int) -> Page:
    """A page of rows with the keyset keys of its first and last row (``key_index``: the sort column)."""
    if not rows:
        return Page([])
    first, last = rows[0], rows[-1]
    return Page(rows, (first[key_index], first[id_index]), (last[key_index], last[id_index]))


@dataclass(frozen=True)
class PageShape:
    """How one page request reads: the SQL order, the keyset bound and the OFFSET (see :func:`page_shape`)."""

    backwards: bool  # read in reverse order, then turn the rows round (:meth:`arrange`)
    desc: bool  # the SQL order of the sort key
    bound: tuple[Any, Any] | None  # (sort value, id): only rows beyond it in the SQL order
    offset: int | None  # rows to skip (only without a bound)

    def arrange(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The rows read, in display order."""
        if self.backwards:
            rows.reverse()
        return rows


def page_shape(
    descending: bool,
    *,
    after: tuple[Any, Any] | None = None,
    offset: int | None = None,
    from_end: bool = False,
    before: tuple[Any, Any] | None = None,
) -> PageShape:
    """The shape of a page request (the arguments of every list's ``fetch_page``).

    ``after``: keyset continuation from the last row of the previous page; ``before``: the rows just above a row
    (keyset backwards, for scrolling up from a page reached by a jump); ``from_end``: the last rows (with
    ``offset``: counted from the end); ``offset``: a jump into the middle. With none of them, the first page.
    Backwards (from the end, or above a known row) is read in reverse order and turned round.
    """
    backwards = from_end or before is not None
    bound = before if before is not None else (after if not from_end else None)
    return PageShape(
        backwards=backwards,
        desc=descending != backwards,
        bound=bound,
        offset=offset if offset and bound is None else None,
    )


# --- a refresh that keeps one's place -------------------------------------------------------------------------------


def read_window(
    db: Database,
    *,
    count: Callable[[Connection], int],
    locate: Callable[[Connection, int], tuple[int, tuple[Any, ...]] | None],
    fetch: Callable[..., Page],
    key_of: Callable[[tuple[Any, ...]], tuple[Any, Any]],
    top_row: int,
    top_id: int | None,
    visible: int,
    track: Iterable[int],
    page_size: int,
) -> Window:
    """Count, the pages covering ``visible`` rows from the top item, and where the tracked items now are.

    The list's pieces, each given the snapshot's connection: ``count(conn)`` of the filter, ``locate(conn, id)``
    (row number, row) of an item or None when the filter excludes it, ``fetch(conn, limit=…, after|before|offset=…)``
    a page, ``key_of(row)`` its (sort value, id). The top row is where ``top_id`` now is (the item at the top of the
    view stays at the top), or ``top_row`` when that item is unknown or no longer selected. The rows around the top
    item are read by keyset from it, never by OFFSET, so this costs the same at row 10 and at row 900,000 (counting
    the rows above it aside).
    """
    with db.read() as session:
        # One snapshot for the count, the positions and the rows: they must agree with each other.
        conn = session.connection(
            execution_options={"isolation_level": "REPEATABLE READ"} if db.is_postgres else None
        )
        total = count(conn)
        anchor = locate(conn, top_id) if top_id is not None else None
        top, start, end = window_bounds(
            total, anchor[0] if anchor is not None else top_row, visible, page_size
        )
        if anchor is not None:
            row = anchor[1]
            k = key_of(row)
            above = fetch(conn, limit=top - start, before=k).rows if top > start else []
            below = fetch(conn, limit=end - top - 1, after=k).rows
            rows = [*above, row, *below]
        elif total:
            rows = fetch(conn, limit=end - start, offset=start).rows
        else:
            rows = []
        positions: dict[int, int | None] = {}
        for item in dict.fromkeys(track):
            if item == top_id and anchor is not None:
                positions[item] = anchor[0]
            else:
                found = locate(conn, item)
                positions[item] = None if found is None else found[0]
    return Window(count=total, start=start, rows=rows, top=top, positions=positions)


# --- choosing the access path ---------------------------------------------------------------------------------------
#
# A filter on an indexed column (a status, a side, an account…) and a sort on another one give the planner two
# paths: walk the sort index and skip rows until a page is full (cheap when many rows match), or read the matching
# rows through the filter's index and sort them (cheap when few match). Both planners misjudge this at a million
# rows: SQLite without statistics sorts 700,000 SETTLED trades to show 200 (470 ms); PostgreSQL, whose estimate
# assumes matches are spread evenly along the sort order, walks 157,000 rows of the gross-amount index before it
# meets Apple trades (350 ms). So a list estimates how many rows match and picks the path itself: on PostgreSQL
# from the planner's own per-value statistics (pg_stats, no scan), on SQLite by counting the values asked for
# through their index (index-only, a few ms, cached for a minute). The estimates only steer the plan, never the
# result.

PLANNER, FILTER_INDEX, SORT_INDEX = "planner", "filter index", "sort index"
#: Below this many matching rows, read them all through the filter's index and sort them. That path costs what
#: the matches cost (one table lookup each: 50,000 cost 100-300 ms on SQLite, depending on how much of the file
#: is cached); walking the sort index costs what lies between the matches, cheap when they are spread along it.
#: Measured at a million trades on both backends, 20,000 is where the two meet.
FEW_ROWS = 20_000
#: Cached estimates are used this long.
STATS_TTL_S = 240.0
SQLITE_COUNT_TTL_S = 60.0


@dataclass
class ColumnStats:
    total: float
    counts: dict[str, float]
    other: float  # rows per value not in ``counts`` (PostgreSQL keeps only the most common values)

    def rows(self, values: Sequence[Any]) -> float:
        # The statistics hold each value as its text (an id 42 as "42").
        return sum(self.counts.get(str(v), self.other) for v in values)


_cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
_cache_lock = threading.Lock()


def cached(key: tuple[Any, ...], ttl: float, compute: Callable[[], Any]) -> Any:
    """``compute()``, or its value of less than ``ttl`` seconds ago (shared by the worker threads)."""
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    value = compute()
    with _cache_lock:
        _cache[key] = (now, value)
    return value


def choose_plan(
    conn: Connection,
    table: Table,
    conditions: Sequence[tuple[str, Sequence[Any]]],
    *,
    estimable: Sequence[str],
    few_rows: int = FEW_ROWS,
    matches: Sequence[float] = (),
) -> str:
    """The access path of a page filtered by ``conditions`` ((column, values) equalities on indexed columns of
    ``table``, none of them the sort column): FILTER_INDEX when fewer than ``few_rows`` rows match, else
    SORT_INDEX on SQLite (hide the filter's indexes) and PLANNER on PostgreSQL. ``estimable``: every column the
    list ever estimates, whose PostgreSQL statistics are read (and cached) in one query. ``matches``: rows that
    other conditions of the filter select, counted by the caller (the blotter's text index on SQLite)."""
    if not conditions and not matches:
        return PLANNER
    estimate = estimate_matches(conn, table, conditions, estimable=estimable, matches=matches)
    if estimate is None:
        return PLANNER  # an estimate is an optimisation: without one the planner decides, as before
    if estimate[0] < few_rows:
        return FILTER_INDEX
    return SORT_INDEX if conn.dialect.name == "sqlite" else PLANNER


def estimate_matches(
    conn: Connection,
    table: Table,
    conditions: Sequence[tuple[str, Sequence[Any]]],
    *,
    estimable: Sequence[str],
    matches: Sequence[float] = (),
) -> tuple[float, float] | None:
    """(rows matching ``conditions`` and ``matches``, rows of ``table``), the conditions taken as independent; None
    without a count or statistics to go by (see :func:`choose_plan` for the arguments)."""
    sqlite = conn.dialect.name == "sqlite"
    counted = [float(m) for m in matches]
    try:
        if sqlite:
            total = float(sqlite_count(conn, table))
            counted += [float(sqlite_count(conn, table, column, values)) for column, values in conditions]
        else:
            stats = pg_column_stats(conn, table, estimable)
            if not stats or any(c not in stats for c, _ in conditions):
                return None
            total = max(st.total for st in stats.values())
            counted += [stats[c].rows(values) for c, values in conditions]
    except Exception:  # an estimate is an optimisation: a failure to make one must not fail the page
        return None
    if total <= 0:
        return None
    matching = total
    for m in counted:
        matching *= min(1.0, m / total)  # independent filters multiply
    return matching, total


def sqlite_count(
    conn: Connection, table: Table, column: str | None = None, values: Sequence[Any] = ()
) -> int:
    """Rows of ``table`` (with one of ``values`` in ``column``): an index-only count, 2-50 ms at a million rows,
    cached for :data:`SQLITE_COUNT_TTL_S`."""
    key = ("count", str(conn.engine.url), table.name, column, tuple(values))
    q = select(func.count()).select_from(table)
    if column is not None:
        q = q.where(table.c[column].in_(list(values)))
    return int(cached(key, SQLITE_COUNT_TTL_S, lambda: conn.scalar(q) or 0))


def pg_column_stats(conn: Connection, table: Table, columns: Iterable[str]) -> dict[str, ColumnStats]:
    """PostgreSQL's per-value statistics of ``columns`` of ``table``, cached for :data:`STATS_TTL_S`."""
    names = tuple(columns)
    key = ("pg_stats", str(conn.engine.url), table.name, names)
    return dict(cached(key, STATS_TTL_S, lambda: _pg_stats(conn, table.name, names)))


def _pg_stats(conn: Connection, table: str, columns: Sequence[str]) -> dict[str, ColumnStats]:
    """The planner's own statistics (most common values, their frequencies, distinct values): no scan, one query."""
    rows = conn.execute(
        text(
            "SELECT st.attname, c.reltuples, st.null_frac, st.n_distinct, st.most_common_vals::text::text[], "
            "st.most_common_freqs FROM pg_class c JOIN pg_stats st ON st.tablename = c.relname "
            "WHERE c.relname = :table AND c.relkind = 'r' AND st.schemaname = current_schema() "
            "AND st.attname = ANY(:cols)"
        ),
        {"table": table, "cols": list(columns)},
    ).all()
    out: dict[str, ColumnStats] = {}
    for column, total, null_frac, n_distinct, values, freqs in rows:
        if total is None or total <= 0:
            continue  # never analysed: no estimate, the planner decides
        values, freqs = list(values or []), list(freqs or [])
        distinct = n_distinct if n_distinct > 0 else -n_distinct * total
        rest = max(0.0, 1.0 - (null_frac or 0.0) - sum(freqs))
        other = total * rest / max(1.0, distinct - len(values))
        out[column] = ColumnStats(
            float(total), {v: total * f for v, f in zip(values, freqs, strict=False)}, other
        )
    return out
