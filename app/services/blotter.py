"""The trade blotter's queries: filter, sort and page a million trades in the database, never in Python.

Pages are fetched by keyset (``WHERE (sort_key, id) > (:last_key, :last_id)``) when the user scrolls on (or
``before`` a page when they scroll up after a jump), from the end in reverse order when they jump to the bottom, and
by OFFSET only for a jump into the middle. Every sortable column has an index ending in ``id`` (migration 0002), so
each page is an index range scan. Totals for the filter (count, gross by currency) are a separate call so the first
page never waits for them. :func:`window` reads, in one unit of work, what a live refresh needs to keep the user's
place: the count, the pages around the trade at the top of the view (by keyset from it) and where the selected
trades are now. A filtered page may be read through the filter's index instead of the sort's when few rows match
(see "choosing the access path" below). The generic pieces (page and window shapes, keyset clauses, the read
connection, the refresh window, the access-path estimates) are ``paging.py``'s, shared with the settlement queue;
what is here is particular to the trades table. The free text on references goes through the trigram index of
migration 0011 (``trade_search.py``; see "free text on the references" below).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, literal_column, or_, select, text, tuple_
from sqlalchemy.engine import Connection

from app.models import Instrument, Trade, User
from app.models.enums import Side, TradeStatus
from app.models.trades import SETTLE_SORT_SQL

from . import paging, trade_search
from .db import Database
from .interrupt import interruptible
from .paging import (
    FILTER_INDEX,
    PLANNER,
    SORT_INDEX,
    Column,
    DictFilter,
    Page,
    Window,
    beyond,
    exact_isin,
    no_index,
    order_by,
    page_of,
    page_shape,
    reader,
)
from .permissions import Actor, Permission, require

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
COL = {k: i for i, k in enumerate(COLUMN_KEYS)}
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
class BlotterFilter(DictFilter):
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


@dataclass(frozen=True)
class Sort:
    key: str = "trade_date"
    descending: bool = True


@dataclass
class Totals:
    count: int = 0
    gross_by_currency: dict[str, Decimal] = field(default_factory=dict)


#: How the free text is looked for: LIKE on every row (SQLite without a usable index, or a term too short), the
#: SQLite FTS5 candidates then LIKE (FTS), ILIKE (PostgreSQL, with or without the trigram indexes).
SCAN, FTS, ILIKE = "scan", "fts", "ilike"


def _conditions(flt: BlotterFilter, *, opaque: bool = False, search: str = SCAN) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a filter; ``opaque`` hides the equality columns' indexes from SQLite's planner,
    ``search`` says how the free text is looked for (:func:`_search_mode`)."""

    def col(column: Any) -> Any:
        return no_index(column) if opaque else column

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
        if exact_isin(term):
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
    if flt.text and flt.text.strip():
        c.append(_text_condition(flt.text.strip(), search))
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


# --- free text on the references ------------------------------------------------------------------------------------
#
# A trade matches when one of its trade, order or source references contains the term, whatever its case (SQLite's
# LIKE ignores the case of ASCII letters; PostgreSQL's LIKE does not, so it runs ILIKE: the same trades on both).
# ``%`` and ``_`` in the term stay LIKE's wildcards, as they always were. The index of migration 0011 finds the
# candidates (see trade_search.py): on PostgreSQL the trigram indexes serve the ILIKE itself; on SQLite the FTS5
# table gives the candidate ids and the LIKE is checked on those rows only, so the result is exactly the scan's.
# A term too short for trigrams scans, as before.


def _text_condition(term: str, search: str) -> ColumnElement[bool]:
    pattern = f"%{term}%"
    refs = (Trade.trade_ref, Trade.order_ref, Trade.source_ref)
    if search == ILIKE:
        return or_(*(r.ilike(pattern) for r in refs))
    like = or_(*(r.like(pattern) for r in refs))
    query = trade_search.fts_query(term) if search == FTS else None
    if query is None:
        return like
    candidates = text(
        f"SELECT rowid FROM {trade_search.FTS_TABLE} WHERE {trade_search.FTS_TABLE} MATCH :fts_query"
    ).bindparams(fts_query=query)
    return and_(Trade.id.in_(candidates.columns(literal_column("rowid"))), like)


def _search_mode(s: Connection, flt: BlotterFilter) -> str:
    """How this filter's text is looked for on this connection: FTS on SQLite when the index exists, the term is
    long enough and it selects few trades (a term found in most trades is met at once walking the sort index,
    while their ids from the index would cost more than the rows they save)."""
    if s.dialect.name != "sqlite":
        return ILIKE
    matches = _text_matches(s, flt)
    return FTS if matches is not None and matches < FEW_ROWS else SCAN


def _text_matches(s: Connection, flt: BlotterFilter) -> float | None:
    """About how many trades the filter's text selects (cached), or None when no estimate helps: no text, a term
    too short for trigrams, a SQLite database without the index.

    SQLite counts the index's candidates (up to FEW_ROWS). PostgreSQL asks its planner (EXPLAIN, no execution),
    whose estimate is good for a LIKE pattern; the plan it would pick with it is not: it walks the sort index
    hoping to meet matches early, and matches cluster (references are numbered in trade order), so "00012" walked
    900,000 rows of a million (2.2 s) where reading its 11,000 matches through the trigram indexes and sorting them
    takes 50 ms. With the estimate, :func:`paging.choose_plan` takes the filter path when few rows match.
    """
    term = (flt.text or "").strip()
    query = trade_search.fts_query(term) if term else None
    if query is None:
        return None
    if s.dialect.name == "postgresql":
        return _pg_text_estimate(s, term)
    if s.dialect.name != "sqlite" or not trade_search.sqlite_has_index(s):
        return None
    sql = text(
        f"SELECT count(*) FROM (SELECT 1 FROM {trade_search.FTS_TABLE} "
        f"WHERE {trade_search.FTS_TABLE} MATCH :q LIMIT :cap)"
    )
    key = ("fts", str(s.engine.url), query, FEW_ROWS)
    return int(
        paging.cached(key, paging.SQLITE_COUNT_TTL_S, lambda: s.scalar(sql, {"q": query, "cap": FEW_ROWS}))
        or 0
    )


def _pg_text_estimate(s: Connection, term: str) -> float | None:
    compiled = select(literal(1)).where(_text_condition(term, ILIKE)).compile(s)

    def estimate() -> float | None:
        plan = s.exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params).scalar()
        try:
            return float(plan[0]["Plan"]["Plan Rows"])  # type: ignore[index]
        except (LookupError, TypeError, ValueError):
            return None

    return paging.cached(("pg_text", str(s.engine.url), term), paging.STATS_TTL_S, estimate)  # type: ignore[no-any-return]


def _base(flt: BlotterFilter, search: str = SCAN) -> Select[Any]:
    cols = [getattr(Trade, k) for k in COLUMN_KEYS]
    return select(*cols).where(and_(True, *_conditions(flt, search=search)))


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
    return order_by(key, Trade.id if id_col is None else id_col, desc, unique=sort.key in UNIQUE_SORT)


def _beyond(sort: Sort, key: Any, last: tuple[Any, Any], desc: bool) -> ColumnElement[bool]:
    """Rows after ``last`` in the display order: the keyset condition of the next page."""
    return beyond(key, Trade.id, (_key_value(sort, last[0]), last[1]), desc, unique=sort.key in UNIQUE_SORT)


def _from_row(sort: Sort, key: Any, row: Any, desc: bool) -> ColumnElement[bool]:
    """Rows from ``row`` (a subquery's (sort value, id), or its sort value for a unique key) on, in the SQL order."""
    if sort.key in UNIQUE_SORT:
        return key <= row if desc else key >= row
    return tuple_(key, Trade.id) <= row if desc else tuple_(key, Trade.id) >= row


def _key_value(sort: Sort, value: Any) -> Any:
    if sort.key == "settlement_date" and value is None:
        return NO_DATE
    return value


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
    """One page of the blotter in display order (``limit`` rows; the other arguments: :func:`paging.page_shape`)."""
    require(actor, Permission.VIEW)
    with reader(db) as conn:
        return _fetch(
            conn, flt, sort, limit=limit, after=after, offset=offset, from_end=from_end, before=before
        )


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
    shape = page_shape(sort.descending, after=after, offset=offset, from_end=from_end, before=before)
    desc = shape.desc
    plan = _choose_plan(s, flt, sort)
    # Walking the sort index (many rows match) checks the LIKE on the rows it meets; no candidate ids.
    search = SCAN if plan == SORT_INDEX else _search_mode(s, flt)
    where = _conditions(flt, opaque=plan == SORT_INDEX, search=search)
    if shape.bound is not None:
        where.append(_beyond(sort, key, shape.bound, desc))
    cols = [getattr(Trade, k) for k in COLUMN_KEYS]
    # See below: a jump into the whole book on PostgreSQL (a filter's rows are not in the sort index alone).
    index_jump = bool(shape.offset) and not where and s.dialect.name == "postgresql"
    if plan == FILTER_INDEX:
        # Few rows match: read them through the filter's index and sort them, rather than walk the sort index
        # past every row that does not match. OFFSET 0 keeps both planners from merging the subquery away.
        inner = select(*cols).where(and_(True, *where)).offset(0).subquery()
        outer_key = literal_column(SETTLE_SORT_SQL) if sort.key == "settlement_date" else inner.c[sort.key]
        q = select(*inner.c).order_by(*_order(sort, outer_key, desc, inner.c.id)).limit(limit)
    elif index_jump:
        # A jump into the middle: the row ``offset`` rows in is found by walking the sort index alone (the
        # subquery reads only the key and the id: an index-only scan, no table row fetched for the rows skipped),
        # and the page is read by keyset from it. An OFFSET on the whole rows fetches every row it skips: at row
        # 500,000 of a million 250 ms of a server core against 50-80 ms, on the cores the GUI thread shares when
        # a fast scroll asks for page after page there. Only without a filter: a filter's column is not in the sort
        # index, so the subquery would fetch the rows anyway (measured twice as slow). Not on SQLite: its planner
        # does not always walk the sort index for the row comparison with the subquery, and a jump there cost up
        # to ten times more at a million trades.
        start = (
            select(*((key,) if sort.key in UNIQUE_SORT else (key, Trade.id)))
            .where(and_(True, *where))
            .order_by(*_order(sort, key, desc))
            .offset(shape.offset)
            .limit(1)
            .correlate(None)
            .scalar_subquery()
        )
        q = (
            select(*cols)
            .where(and_(True, *where), _from_row(sort, key, start, desc))
            .order_by(*_order(sort, key, desc))
            .limit(limit)
        )
    else:
        q = select(*cols).where(and_(True, *where)).order_by(*_order(sort, key, desc)).limit(limit)
    if shape.offset and not index_jump:
        q = q.offset(shape.offset)
    # Core execution on a Connection: plain tuples, no ORM loading (less Python per page on a worker thread).
    rows = shape.arrange(paging.read_rows(s, q))
    return page_of(rows, COL[sort.key], COL["id"])


def count(db: Database, actor: Actor, flt: BlotterFilter) -> int:
    require(actor, Permission.VIEW)
    with reader(db) as conn:
        return _count(conn, flt)


def _count(s: Connection, flt: BlotterFilter) -> int:
    where = _conditions(flt, search=_search_mode(s, flt))
    return int(s.scalar(select(func.count()).select_from(Trade).where(and_(True, *where))) or 0)


def totals(
    db: Database, actor: Actor, flt: BlotterFilter, *, cancelled: Callable[[], bool] | None = None
) -> Totals:
    """Count and gross amount by currency of everything the filter selects (one GROUP BY in the database).

    ``cancelled``: once it says True the query stops (on SQLite mid-query; on PostgreSQL when the task runs inside
    :func:`paging.stopped_by`) and :class:`~app.services.interrupt.Interrupted` is raised: totals of a filter the
    clerk has left give their worker and the server's cores back."""
    require(actor, Permission.VIEW)
    # One statement: paging.reader (autocommit on PostgreSQL), whose statement a cancelled task stops on the server.
    with reader(db) as conn:
        q = (
            select(Trade.currency, func.count(), func.sum(Trade.gross_amount))
            .where(and_(True, *_conditions(flt, search=_search_mode(conn, flt))))
            .group_by(Trade.currency)
            .order_by(Trade.currency)
        )
        with interruptible(conn, cancelled) as check:
            check()
            rows = conn.execute(q).all()
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
    search = _search_mode(s, flt)
    row = s.execute(_base(flt, search).where(Trade.id == trade_id)).first()
    if row is None:
        return None
    before = _beyond(sort, key, (row[COL[sort.key]], trade_id), not sort.descending)
    n = s.scalar(select(func.count()).select_from(Trade).where(before, *_conditions(flt, search=search)))
    return int(n or 0), tuple(row)


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
    when that trade is unknown or no longer selected; see :func:`paging.read_window`.
    """
    require(actor, Permission.VIEW)
    return paging.read_window(
        db,
        count=partial(_count, flt=flt),
        locate=lambda s, trade_id: _locate(s, flt, sort, trade_id),
        fetch=partial(_fetch, flt=flt, sort=sort),
        key_of=lambda row: (row[COL[sort.key]], row[COL["id"]]),
        top_row=top_row,
        top_id=top_id,
        visible=visible,
        track=track,
        page_size=page_size,
    )


# --- choosing the access path ---------------------------------------------------------------------------------------
#
# A filter on an indexed column (status, side, account, counterparty, ISIN) and a sort on another one: the blotter
# estimates how many rows match and picks the path itself (see paging.choose_plan for why and how). FILTER_INDEX
# reads the matches through the filter's index in a subquery and sorts them (see _fetch); SORT_INDEX hides the
# filter's indexes from SQLite so that it walks the sort index.

#: Below this many matching rows, read them all through the filter's index and sort them (paging.FEW_ROWS).
FEW_ROWS = paging.FEW_ROWS
ESTIMABLE_COLUMNS = ("status", "side", "account_code", "counterparty_code", "isin")


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
    if flt.instrument and exact_isin(flt.instrument.strip()):
        out.append(("isin", [flt.instrument.strip().upper()]))
    return out


def _choose_plan(s: Connection, flt: BlotterFilter, sort: Sort) -> str:
    conditions = [(c, v) for c, v in _estimable(flt) if c != sort.key]
    # The free text's matches, when SQLite's index can count them, weigh in like an equality's.
    matches = _text_matches(s, flt)
    return paging.choose_plan(
        s,
        Trade.__table__,
        conditions,
        estimable=ESTIMABLE_COLUMNS,
        few_rows=FEW_ROWS,
        matches=() if matches is None else (matches,),
    )


def refresh_statistics(db: Database, actor: Actor) -> None:
    """Read PostgreSQL's per-value statistics the blotter plans with (a background warm-up: one round trip the
    first filter then does not pay). SQLite counts what it needs when it needs it."""
    require(actor, Permission.VIEW)
    if not db.is_postgres:
        return
    with reader(db) as conn:
        paging.pg_column_stats(conn, Trade.__table__, ESTIMABLE_COLUMNS)


def owner_names(db: Database, actor: Actor) -> dict[int, str]:
    """User id -> username, for the blotter's Owner column (a handful of users: one small query)."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        return {int(i): str(n) for i, n in s.execute(select(User.id, User.username))}


__all__ = [
    "COL",
    "COLUMNS",
    "COLUMN_KEYS",
    "ESTIMABLE_COLUMNS",
    "FEW_ROWS",
    "FILTER_INDEX",
    "NO_DATE",
    "PLANNER",
    "SORTABLE",
    "SORT_INDEX",
    "UNIQUE_SORT",
    "BlotterFilter",
    "Column",
    "Page",
    "Sort",
    "Totals",
    "Window",
    "count",
    "fetch_page",
    "owner_names",
    "position_of",
    "refresh_statistics",
    "totals",
    "window",
]
