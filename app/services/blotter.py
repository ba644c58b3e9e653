"""The trade blotter's queries: filter, sort and page a million trades in the database, never in Python.

Pages are fetched by keyset (``WHERE (sort_key, id) > (:last_key, :last_id)``) when the user scrolls on, from the
end in reverse order when they jump to the bottom, and by OFFSET only for a jump into the middle. Every sortable
column has an index ending in ``id`` (migration 0002), so each page is an index range scan. Totals for the filter
(count, gross by currency) are a separate call so the first page never waits for them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, literal_column, or_, select, tuple_

from app.models import Instrument, Trade
from app.models.enums import Side, TradeStatus
from app.models.trades import SETTLE_SORT_SQL

from .db import Database
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

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v in (None, (), ""):
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
            if f.name == "statuses":
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


def _conditions(flt: BlotterFilter) -> list[ColumnElement[bool]]:
    c: list[ColumnElement[bool]] = []
    if flt.statuses:
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
        c.append(Trade.account_code == flt.account.strip().upper())
    if flt.counterparty:
        c.append(Trade.counterparty_code == flt.counterparty.strip().upper())
    if flt.instrument:
        term = flt.instrument.strip()
        if len(term) == 12 and term[:2].isalpha():
            c.append(Trade.isin == term.upper())
        else:
            names = select(Instrument.isin).where(
                or_(func.lower(Instrument.name).like(f"%{term.lower()}%"), Instrument.isin == term.upper())
            )
            c.append(Trade.isin.in_(names))
    if flt.side:
        c.append(Trade.side == Side(flt.side.upper()))
    if flt.source:
        c.append(Trade.source.like(f"{flt.source}%"))
    if flt.text:
        t = f"%{flt.text.strip()}%"
        c.append(or_(Trade.trade_ref.like(t), Trade.order_ref.like(t), Trade.source_ref.like(t)))
    if flt.owner_id is not None:
        c.append(Trade.owner_id == flt.owner_id)
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


def _order(sort: Sort, key: Any, desc: bool) -> tuple[Any, ...]:
    if sort.key in UNIQUE_SORT:
        return (key.desc(),) if desc else (key.asc(),)
    return (key.desc(), Trade.id.desc()) if desc else (key.asc(), Trade.id.asc())


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
) -> Page:
    """One page of the blotter in display order.

    ``after``: keyset continuation from the last row of the previous page; ``from_end``: the last ``limit`` rows;
    ``offset``: a jump into the middle. With none of them, the first page.
    """
    require(actor, Permission.VIEW)
    key = _sort_expr(sort)
    desc = sort.descending != from_end
    order = _order(sort, key, desc)
    q = _base(flt).order_by(*order).limit(limit)
    if after is not None and not from_end:
        k = _key_value(sort, after[0])
        cmp = _beyond(sort, key, (k, after[1]), desc)
        q = q.where(cmp)
    elif offset:
        q = q.offset(offset)
    with db.read() as s:
        rows = [tuple(r) for r in s.execute(q).all()]
    if from_end:
        rows.reverse()
    first, last = _keys(rows, sort)
    return Page(rows, first, last)


def count(db: Database, actor: Actor, flt: BlotterFilter) -> int:
    require(actor, Permission.VIEW)
    with db.read() as s:
        return int(
            s.scalar(select(func.count()).select_from(Trade).where(and_(True, *_conditions(flt)))) or 0
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
    col = getattr(Trade, sort.key)
    key = _sort_expr(sort)
    with db.read() as s:
        row = s.execute(select(col, Trade.id).where(Trade.id == trade_id, *_conditions(flt))).first()
        if row is None:
            return None
        k = _key_value(sort, row[0])
        before = _beyond(sort, key, (k, trade_id), not sort.descending)
        n = s.scalar(select(func.count()).select_from(Trade).where(before, *_conditions(flt)))
    return int(n or 0)
