"""The trade blotter's queries: filter, sort and page a million trades in the database, never in Python.

Pages are fetched by keyset (``WHERE (sort_key, id) > (:last_key, :last_id)``) when the user scrolls on (or
``before`` a page when they scroll up after a jump), from the end in reverse order when they jump to the bottom, and
by OFFSET only for a jump into the middle. Every sortable column has an index ending in ``id`` (migration 0002), so
each page is an index range scan. Totals for the filter (count, gross by currency) are a separate call so the first
page never waits for them. :func:`window` reads, in one unit of work, what a live refresh needs to keep the user's
place: the count, the pages around the trade at the top of the view (by keyset from it) and where the selected
trades are now. A filtered page may be read through the filter's index instead of the sort's when few rows match
(see "choosing the access path" below).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FunctionElement,
    Select,
    String,
    and_,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles

from app.models import Instrument, Trade, User
from app.models.enums import Side, TradeStatus
from app.models.trades import SETTLE_SORT_SQL

from .db import Database, translate_errors
from .permissions import Actor, Permission, require


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str  # text, date, datetime, decimal, int, status
    width: int = 100
    default_visible: bool = True


# Display order of the blotter's columns; ``key`` is the Trade attribute.
COLUMNS: tuple[Column, ...] = (
    Column("trade_ref", "Trade ref", "text", 120),
    Column("status", "Status", "status", 110),
    Column("exception_codes", "Exceptions", "text", 110),
    Column("trade_date", "Trade date", "date", 90),
    Column("settlement_date", "Settle date", "date", 90),
    Column("side", "Side", "text", 50),
    Column("isin", "ISIN", "text", 110),
    Column("quantity", "Quantity", "decimal", 100),
    Column("price", "Price", "decimal", 90),
    Column("currency", "Ccy", "text", 45),
    Column("gross_amount", "Gross", "decimal", 120),
    Column("net_amount", "Net", "decimal", 120),
    Column("account_code", "Account", "text", 90),
    Column("counterparty_code", "Counterparty", "text", 100),
    Column("source", "Source", "text", 80),
    Column("commission", "Commission", "decimal", 90, False),
    Column("fees", "Fees", "decimal", 80, False),
    Column("order_ref", "Order ref", "text", 100, False),
    Column("fo_version", "FO ver.", "int", 55, False),
    Column("trade_time", "Trade time", "datetime", 140, False),
    Column("affirmed_at", "Affirmed", "datetime", 140, False),
    Column("owner_id", "Owner", "int", 70, False),
    Column("id", "Id", "int", 70, False),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)
# Sortable columns: each has a (column, id) index, so sorting stays an index scan at a million rows.
SORTABLE = frozenset(
    {
        "trade_ref",
        "status",
        "trade_date",
        "settlement_date",
        "isin",
        "quantity",
        "price",
        "currency",
        "gross_amount",
        "net_amount",
        "account_code",
        "counterparty_code",
        "source",
        "side",
        "id",
    }
)


@dataclass(frozen=True)
class BlotterFilter:
    """What the filter bar asks for. Empty fields do not filter."""

    statuses: tuple[str, ...] = ()
    exception_code: str | None = None
    trade_date_from: dt.date | None = None
    trade_date_to: dt.date | None = None
    settlement_date_from: dt.date | None = None
    settlement_date_to: dt.date | None = None
    account: str | None = None
    counterparty: str | None = None
    instrument: str | None = None  # ISIN, or part of the instrument's name
    side: str | None = None
    source: str | None = None
    text: str | None = None  # part of the trade, order or source reference
    owner_id: int | None = None
    # "My repairs": trades owned by this user or by nobody (combine with statuses=("REPAIR",)).
    owner_or_unassigned: int | None = None
    # "Failing validation": trades with at least one open validation exception.
    with_exceptions: bool = False
    # Drill-down from another pane (an SLA tile, a break, an instruction): exactly these trades.
    ids: tuple[int, ...] | None = None
    ids_title: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            # A drill-down's id list is a one-off, never part of a saved view.
            if f.name in ("ids", "ids_title") or v is False or v in (None, (), ""):
                continue
            out[f.name] = (
                list(v) if isinstance(v, tuple) else (v.isoformat() if isinstance(v, dt.date) else v)
            )
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BlotterFilter:
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d or d[f.name] in (None, ""):
                continue
            v = d[f.name]
            if f.name in ("statuses", "ids"):
                v = tuple(v)
            elif "date" in f.name and isinstance(v, str):
                v = dt.date.fromisoformat(v)
            kw[f.name] = v
        return cls(**kw)


@dataclass(frozen=True)
class Sort:
    key: str = "trade_date"
    descending: bool = True


@dataclass
class Page:
    rows: list[tuple[Any, ...]]  # values in COLUMN_KEYS order
    first_key: tuple[Any, Any] | None = None
    last_key: tuple[Any, Any] | None = None


@dataclass
class Totals:
    count: int = 0
    gross_by_currency: dict[str, Decimal] = field(default_factory=dict)


class _no_index(FunctionElement[str]):
    """A column the SQLite planner must not pick an index for (``+col``); plain ``col`` elsewhere.

    SQLite has no statistics unless ANALYZE ran, and even with them it prefers an equality index plus a sort of
    every matching row over walking the sort index: 700,000 SETTLED trades sorted to show 200. See _choose_plan.
    """

    type = String()
    name = "no_index"
    inherit_cache = True


@compiles(_no_index)
def _no_index_default(element: _no_index, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(_no_index, "sqlite")
def _no_index_sqlite(element: _no_index, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.clauses, **kw))


def _exact_isin(term: str) -> bool:
    return len(term) == 12 and term[:2].isalpha()


def _conditions(flt: BlotterFilter, *, opaque: bool = False) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a filter; ``opaque`` hides the equality columns' indexes from SQLite's planner."""

    def col(column: Any) -> Any:
        return _no_index(column) if opaque else column

    c: list[ColumnElement[bool]] = []
    if flt.statuses:
        if opaque:
            c.append(col(Trade.status).in_([TradeStatus(s).value for s in flt.statuses]))
        else:
            c.append(Trade.status.in_([TradeStatus(s) for s in flt.statuses]))
    if flt.exception_code:
        # exception_codes is a comma-separated list; match a whole code.
        c.append(
            (literal(",") + Trade.exception_codes + literal(",")).like(f"%,{flt.exception_code.upper()},%")
        )
    if flt.trade_date_from:
        c.append(Trade.trade_date >= flt.trade_date_from)
    if flt.trade_date_to:
        c.append(Trade.trade_date <= flt.trade_date_to)
    if flt.settlement_date_from:
        c.append(Trade.settlement_date >= flt.settlement_date_from)
    if flt.settlement_date_to:
        c.append(Trade.settlement_date <= flt.settlement_date_to)
    if flt.account:
        c.append(col(Trade.account_code) == flt.account.strip().upper())
    if flt.counterparty:
        c.append(col(Trade.counterparty_code) == flt.counterparty.strip().upper())
    if flt.instrument:
        term = flt.instrument.strip()
        if _exact_isin(term):
            c.append(col(Trade.isin) == term.upper())
        else:
            names = select(Instrument.isin).where(
                or_(func.lower(Instrument.name).like(f"%{term.lower()}%"), Instrument.isin == term.upper())
            )
            c.append(Trade.isin.in_(names))
    if flt.side:
        if opaque:
            c.append(col(Trade.side) == Side(flt.side.upper()).value)
        else:
            c.append(Trade.side == Side(flt.side.upper()))
    if flt.source:
        c.append(Trade.source.like(f"{flt.source}%"))
    if flt.text:
        t = f"%{flt.text.strip()}%"
        c.append(or_(Trade.trade_ref.like(t), Trade.order_ref.like(t), Trade.source_ref.like(t)))
    if flt.owner_id is not None:
        c.append(Trade.owner_id == flt.owner_id)
    if flt.owner_or_unassigned is not None:
        # Opaque too: SQLite would otherwise read both halves of the OR through the owner index (a million NULLs).
        owner = col(Trade.owner_id)
        c.append(or_(owner == flt.owner_or_unassigned, owner.is_(None)))
    if flt.with_exceptions:
        c.append(Trade.exception_codes != "")
    if flt.ids is not None:
        c.append(Trade.id.in_(flt.ids))
    return c


def _base(flt: BlotterFilter) -> Select[Any]:
    cols = [getattr(Trade, k) for k in COLUMN_KEYS]
    return select(*cols).where(and_(True, *_conditions(flt)))


# Trades in repair may have no settlement date; they sort as if it were 9999-12-31, using the expression index
# ix_trades_settle_sort (migration 0002; the text must match it exactly).
NO_DATE = dt.date(9999, 12, 31)


def _sort_expr(sort: Sort) -> Any:
    if sort.key not in SORTABLE:
        raise ValueError(f"cannot sort the blotter by {sort.key!r}")
    if sort.key == "settlement_date":
        return literal_column(SETTLE_SORT_SQL)
    return getattr(Trade, sort.key)


# Unique sort keys need no id tie-break (and adding one would stop PostgreSQL using the unique index alone).
UNIQUE_SORT = frozenset({"trade_ref", "id"})


def _order(sort: Sort, key: Any, desc: bool, id_col: Any = None) -> tuple[Any, ...]:
    id_col = Trade.id if id_col is None else id_col
    if sort.key in UNIQUE_SORT:
        return (key.desc(),) if desc else (key.asc(),)
    return (key.desc(), id_col.desc()) if desc else (key.asc(), id_col.asc())


def _beyond(sort: Sort, key: Any, last: tuple[Any, Any], desc: bool) -> ColumnElement[bool]:
    """Rows after ``last`` in the display order: the keyset condition of the next page."""
    if sort.key in UNIQUE_SORT:
        return key < last[0] if desc else key > last[0]
    return tuple_(key, Trade.id) < tuple_(*last) if desc else tuple_(key, Trade.id) > tuple_(*last)


def _key_value(sort: Sort, value: Any) -> Any:
    if sort.key == "settlement_date" and value is None:
        return NO_DATE
    return value


def _keys(
    rows: Sequence[tuple[Any, ...]], sort: Sort
) -> tuple[tuple[Any, Any] | None, tuple[Any, Any] | None]:
    if not rows:
        return None, None
    i, j = COLUMN_KEYS.index(sort.key), COLUMN_KEYS.index("id")
    return (rows[0][i], rows[0][j]), (rows[-1][i], rows[-1][j])


def fetch_page(
    db: Database,
    actor: Actor,
    flt: BlotterFilter,
    sort: Sort,
    *,
    limit: int = 200,
    after: tuple[Any, Any] | None = None,
    offset: int | None = None,
    from_end: bool = False,
    before: tuple[Any, Any] | None = None,
) -> Page:
    """One page of the blotter in display order.

    ``after``: keyset continuation from the last row of the previous page; ``before``: the ``limit`` rows just
    above a row (keyset backwards, for scrolling up from a page reached by a jump); ``from_end``: the last
    ``limit`` rows (with ``offset``: counted from the end); ``offset``: a jump into the middle. With none of them,
    the first page.
    """
    require(actor, Permission.VIEW)
    with _reader(db) as conn:
        return _fetch(
            conn, flt, sort, limit=limit, after=after, offset=offset, from_end=from_end, before=before
        )


@contextlib.contextmanager
def _reader(db: Database) -> Iterator[Connection]:
    """A connection for reads that are one statement each (a page, a count).

    On PostgreSQL in autocommit: no BEGIN before the query and no ROLLBACK after it, two of the four round trips a
    page would otherwise cost (with the pool's liveness ping, four at 50 ms apart is 200 ms over a VPN before the
    database has done anything). One SELECT is its own consistent snapshot, so nothing is lost. SQLite reads as
    db.read() does: there a round trip costs nothing.
    """
    if not db.is_postgres:
        with db.read() as s:
            yield s.connection()
        return
    with translate_errors(), db.engine.connect() as conn:
        yield conn.execution_options(isolation_level="AUTOCOMMIT")


def _fetch(
    s: Connection,
    flt: BlotterFilter,
    sort: Sort,
    *,
    limit: int,
    after: tuple[Any, Any] | None = None,
    offset: int | None = None,
    from_end: bool = False,
    before: tuple[Any, Any] | None = None,
) -> Page:
    if limit <= 0:
        return Page([])
    key = _sort_expr(sort)
    # Backwards (from the end, or above a known row): read in reverse order, then turn the rows round.
    backwards = from_end or before is not None
    desc = sort.descending != backwards
    plan = _choose_plan(s, flt, sort)
    where = _conditions(flt, opaque=plan == SORT_INDEX)
    if before is not None:
        where.append(_beyond(sort, key, (_key_value(sort, before[0]), before[1]), desc))
    elif after is not None and not from_end:
        where.append(_beyond(sort, key, (_key_value(sort, after[0]), after[1]), desc))
    cols = [getattr(Trade, k) for k in COLUMN_KEYS]
    if plan == FILTER_INDEX:
        # Few rows match: read them through the filter's index and sort them, rather than walk the sort index
        # past every row that does not match. OFFSET 0 keeps both planners from merging the subquery away.
        inner = select(*cols).where(and_(True, *where)).offset(0).subquery()
        outer_key = literal_column(SETTLE_SORT_SQL) if sort.key == "settlement_date" else inner.c[sort.key]
        q = select(*inner.c).order_by(*_order(sort, outer_key, desc, inner.c.id)).limit(limit)
    else:
        q = select(*cols).where(and_(True, *where)).order_by(*_order(sort, key, desc)).limit(limit)
    if offset and (after is None or from_end) and before is None:
        q = q.offset(offset)
    # Core execution on a Connection: plain tuples, no ORM loading (less Python per page on a worker thread).
    rows = [tuple(r) for r in s.execute(q).all()]
    if backwards:
        rows.reverse()
    first, last = _keys(rows, sort)
    return Page(rows, first, last)


def count(db: Database, actor: Actor, flt: BlotterFilter) -> int:
    require(actor, Permission.VIEW)
    with _reader(db) as conn:
        return int(
            conn.scalar(select(func.count()).select_from(Trade).where(and_(True, *_conditions(flt)))) or 0
        )


def totals(db: Database, actor: Actor, flt: BlotterFilter) -> Totals:
    """Count and gross amount by currency of everything the filter selects (one GROUP BY in the database)."""
    require(actor, Permission.VIEW)
    q = (
        select(Trade.currency, func.count(), func.sum(Trade.gross_amount))
        .where(and_(True, *_conditions(flt)))
        .group_by(Trade.currency)
        .order_by(Trade.currency)
    )
    with db.read() as s:
        rows = s.execute(q).all()
    return Totals(
        count=sum(int(n) for _, n, _ in rows),
        gross_by_currency={c: Decimal(g).quantize(Decimal("0.01")) for c, _, g in rows if g is not None},
    )


def position_of(db: Database, actor: Actor, flt: BlotterFilter, sort: Sort, trade_id: int) -> int | None:
    """Row number of a trade under the current filter and sort (to keep the selection across a refresh)."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        found = _locate(s.connection(), flt, sort, trade_id)
    return None if found is None else found[0]


def _locate(
    s: Connection, flt: BlotterFilter, sort: Sort, trade_id: int
) -> tuple[int, tuple[Any, ...]] | None:
    """(row number, row) of a trade under the filter and sort, or None when the filter excludes it (or it is gone)."""
    key = _sort_expr(sort)
    row = s.execute(_base(flt).where(Trade.id == trade_id)).first()
    if row is None:
        return None
    k = _key_value(sort, row[COLUMN_KEYS.index(sort.key)])
    before = _beyond(sort, key, (k, trade_id), not sort.descending)
    n = s.scalar(select(func.count()).select_from(Trade).where(before, *_conditions(flt)))
    return int(n or 0), tuple(row)


@dataclass
class Window:
    """The blotter around the row a user is looking at, read in one unit of work (a refresh that keeps one's place).

    ``rows`` are whole pages (``start`` is a multiple of the page size) covering the rows the view shows;
    ``top`` is the row now at the top (where the top trade moved to); ``positions`` gives the new row number of
    each tracked trade (None: the filter no longer selects it).
    """

    count: int
    start: int
    rows: list[tuple[Any, ...]]
    top: int
    positions: dict[int, int | None]


def window(
    db: Database,
    actor: Actor,
    flt: BlotterFilter,
    sort: Sort,
    *,
    top_row: int = 0,
    top_id: int | None = None,
    visible: int = 50,
    track: Sequence[int] = (),
    page_size: int = 200,
) -> Window:
    """Count, the pages covering ``visible`` rows from the top trade, and where the tracked trades now are.

    The top row is where ``top_id`` now is (the trade at the top of the view stays at the top), or ``top_row``
    when that trade is unknown or no longer selected. The rows around the top trade are read by keyset from it,
    never by OFFSET, so this costs the same at row 10 and at row 900,000 (counting the rows above it aside).
    """
    require(actor, Permission.VIEW)
    with db.read() as session:
        # One snapshot for the count, the positions and the rows: they must agree with each other.
        s = session.connection(
            execution_options={"isolation_level": "REPEATABLE READ"} if db.is_postgres else None
        )
        total = int(
            s.scalar(select(func.count()).select_from(Trade).where(and_(True, *_conditions(flt)))) or 0
        )
        anchor = _locate(s, flt, sort, top_id) if top_id is not None else None
        top = anchor[0] if anchor is not None else top_row
        top = max(0, min(top, total - 1)) if total else 0
        start = (top // page_size) * page_size
        end = min(total, ((top + max(visible, 1) - 1) // page_size + 1) * page_size)
        if anchor is not None:
            row = anchor[1]
            k = (row[COLUMN_KEYS.index(sort.key)], row[COLUMN_KEYS.index("id")])
            above = _fetch(s, flt, sort, limit=top - start, before=k).rows if top > start else []
            below = _fetch(s, flt, sort, limit=end - top - 1, after=k).rows
            rows = [*above, row, *below]
        elif total:
            rows = _fetch(s, flt, sort, limit=end - start, offset=start).rows
        else:
            rows = []
        positions: dict[int, int | None] = {}
        for trade_id in dict.fromkeys(track):
            if trade_id == top_id and anchor is not None:
                positions[trade_id] = anchor[0]
            else:
                found = _locate(s, flt, sort, trade_id)
                positions[trade_id] = None if found is None else found[0]
    return Window(count=total, start=start, rows=rows, top=top, positions=positions)


# --- choosing the access path ---------------------------------------------------------------------------------------
#
# A filter on an indexed column (status, side, account, counterparty, ISIN) and a sort on another one give the
# planner two paths: walk the sort index and skip rows until a page is full (cheap when many rows match), or read
# the matching rows through the filter's index and sort them (cheap when few match). Both planners misjudge this at
# a million rows: SQLite without statistics sorts 700,000 SETTLED trades to show 200 (470 ms); PostgreSQL, whose
# estimate assumes matches are spread evenly along the sort order, walks 157,000 rows of the gross-amount index
# before it meets Apple trades (350 ms). So the blotter estimates how many rows match and picks the path itself:
# on PostgreSQL from the planner's own per-value statistics (pg_stats, no scan), on SQLite by counting the values
# asked for through their index (index-only, a few ms, cached for a minute).

PLANNER, FILTER_INDEX, SORT_INDEX = "planner", "filter index", "sort index"
#: Below this many matching rows, read them all through the filter's index and sort them. That path costs what
#: the matches cost (one table lookup each: 50,000 cost 100-300 ms on SQLite, depending on how much of the file
#: is cached); walking the sort index costs what lies between the matches, cheap when they are spread along it.
#: Measured at a million trades on both backends, 20,000 is where the two meet.
FEW_ROWS = 20_000
#: Cached estimates are used this long (they only steer the plan, never the result).
STATS_TTL_S = 240.0
SQLITE_COUNT_TTL_S = 60.0
ESTIMABLE_COLUMNS = ("status", "side", "account_code", "counterparty_code", "isin")


@dataclass
class _ColumnStats:
    total: float
    counts: dict[str, float]
    other: float  # rows per value not in ``counts`` (PostgreSQL keeps only the most common values)

    def rows(self, values: Sequence[str]) -> float:
        return sum(self.counts.get(v, self.other) for v in values)


_cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
_cache_lock = threading.Lock()


def _cached(key: tuple[Any, ...], ttl: float, compute: Any) -> Any:
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    value = compute()
    with _cache_lock:
        _cache[key] = (now, value)
    return value


def _estimable(flt: BlotterFilter) -> list[tuple[str, list[str]]]:
    """(column, values) of the filter's equality conditions on indexed columns."""
    out: list[tuple[str, list[str]]] = []
    if flt.statuses:
        out.append(("status", sorted(TradeStatus(s).value for s in flt.statuses)))
    if flt.side:
        out.append(("side", [flt.side.upper()]))
    if flt.account:
        out.append(("account_code", [flt.account.strip().upper()]))
    if flt.counterparty:
        out.append(("counterparty_code", [flt.counterparty.strip().upper()]))
    if flt.instrument and _exact_isin(flt.instrument.strip()):
        out.append(("isin", [flt.instrument.strip().upper()]))
    return out


def _choose_plan(s: Connection, flt: BlotterFilter, sort: Sort) -> str:
    conditions = [(c, v) for c, v in _estimable(flt) if c != sort.key]
    if not conditions:
        return PLANNER
    sqlite = s.dialect.name == "sqlite"
    try:
        if sqlite:
            total = float(_sqlite_total(s))
            matches = [float(_sqlite_count(s, column, values)) for column, values in conditions]
        else:
            stats = _pg_column_stats(s)
            if not stats or any(c not in stats for c, _ in conditions):
                return PLANNER
            total = max(st.total for st in stats.values())
            matches = [stats[c].rows(values) for c, values in conditions]
    except Exception:  # an estimate is an optimisation: without one the planner decides, as before
        return PLANNER
    if total <= 0:
        return PLANNER
    matching = total
    for m in matches:
        matching *= min(1.0, m / total)  # independent filters multiply
    if matching < FEW_ROWS:
        return FILTER_INDEX
    return SORT_INDEX if sqlite else PLANNER


def _sqlite_total(s: Connection) -> int:
    key = ("total", str(s.engine.url))
    return int(
        _cached(key, SQLITE_COUNT_TTL_S, lambda: s.scalar(select(func.count()).select_from(Trade)) or 0)
    )


def _sqlite_count(s: Connection, column: str, values: list[str]) -> int:
    """Rows with one of ``values`` in ``column``: an index-only count, 2-50 ms at a million rows."""
    col = getattr(Trade, column)
    key = ("count", str(s.engine.url), column, tuple(values))
    return int(
        _cached(
            key,
            SQLITE_COUNT_TTL_S,
            lambda: s.scalar(select(func.count()).select_from(Trade).where(col.in_(values))) or 0,
        )
    )


def _pg_column_stats(s: Connection) -> dict[str, _ColumnStats]:
    key = ("pg_stats", str(s.engine.url))
    return dict(_cached(key, STATS_TTL_S, lambda: _pg_stats(s)))


def refresh_statistics(db: Database, actor: Actor) -> None:
    """Read PostgreSQL's per-value statistics the blotter plans with (a background warm-up: one round trip the
    first filter then does not pay). SQLite counts what it needs when it needs it."""
    require(actor, Permission.VIEW)
    if not db.is_postgres:
        return
    with _reader(db) as conn:
        _pg_column_stats(conn)


def _pg_stats(s: Connection) -> dict[str, _ColumnStats]:
    """The planner's own statistics (most common values, their frequencies, distinct values): no scan, one query."""
    rows = s.execute(
        text(
            "SELECT st.attname, c.reltuples, st.null_frac, st.n_distinct, st.most_common_vals::text::text[], "
            "st.most_common_freqs FROM pg_class c JOIN pg_stats st ON st.tablename = c.relname "
            "WHERE c.relname = 'trades' AND c.relkind = 'r' AND st.schemaname = current_schema() "
            "AND st.attname = ANY(:cols)"
        ),
        {"cols": list(ESTIMABLE_COLUMNS)},
    ).all()
    out: dict[str, _ColumnStats] = {}
    for column, total, null_frac, n_distinct, values, freqs in rows:
        if total is None or total <= 0:
            continue  # never analysed: no estimate, the planner decides
        values, freqs = list(values or []), list(freqs or [])
        distinct = n_distinct if n_distinct > 0 else -n_distinct * total
        rest = max(0.0, 1.0 - (null_frac or 0.0) - sum(freqs))
        other = total * rest / max(1.0, distinct - len(values))
        out[column] = _ColumnStats(
            float(total), {v: total * f for v, f in zip(values, freqs, strict=False)}, other
        )
    return out


def owner_names(db: Database, actor: Actor) -> dict[int, str]:
    """User id -> username, for the blotter's Owner column (a handful of users: one small query)."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        return {int(i): str(n) for i, n in s.execute(select(User.id, User.username))}
