"""The settlement queue's reads: filter, sort and page a million instructions in the database, never in Python.

Like the trade blotter (see ``blotter.py`` and ``paging.py``): pages by keyset on ``(sort key, id)``, from the end for
the last rows, by OFFSET only for a jump into the middle; the count and the totals are separate calls so the first
page never waits for them; :func:`window` reads what a live refresh needs to keep the clerk's place in one snapshot.

A page reads the ``settlement_instructions`` table alone (one index range scan) plus each row's accrued penalty (an
index lookup in ``fail_penalties``); the codes a clerk reads (ISIN, counterparty, account, market) come from a small
reference-data cache keyed by id, so no join can make a planner walk the instructions in the wrong order.

Other reads: totals by currency (settlement amount, value at stake), group counts for the grouped view (by status,
reason, counterparty, market, settlement date), each market's instruction cut-off as a moment in UTC (the pane
counts down to it every second without asking the database again), and :func:`detail` of one instruction.

*Value at stake* of an open instruction: the part of its settlement amount not yet settled; for a free-of-payment
one (DFP/RFP, amount 0) the unsettled quantity at the instrument's reference price (bonds are quoted in % of
nominal). Settled and cancelled instructions have nothing at stake.
*Age*: business days since the intended settlement date of an instruction still open after it (0 before it); the
market's calendar once :func:`cutoffs` has built it on a worker thread, weekdays until then (building an exchange
calendar costs a second of GIL; the first page must not pay it).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.engine import Connection

from app.models import (
    Account,
    CashMovement,
    Comment,
    Counterparty,
    FailPenalty,
    InstructionTrade,
    Instrument,
    Market,
    SecuritiesMovement,
    SettlementInstruction,
    SettlementMessage,
    StandingSettlementInstruction,
    Trade,
    User,
    utcnow,
)
from app.models.enums import InstructionStatus, InstructionType

from .. import paging
from ..db import Database
from ..errors import NotFound, ValidationFailed
from ..interrupt import interruptible
from ..paging import (
    FILTER_INDEX,
    PLANNER,
    SORT_INDEX,
    Column,
    DictFilter,
    Page,
    PageShape,
    Window,
    beyond,
    exact_isin,
    no_index,
    order_by,
    page_of,
    page_shape,
    reader,
)
from ..permissions import Actor, Permission, require
from . import lifecycle

SI = SettlementInstruction
S = InstructionStatus

#: Instructions a clerk may still have to work (not settled, not cancelled).
OPEN_STATUSES: tuple[str, ...] = (
    S.PENDING.value,
    S.INSTRUCTED.value,
    S.MATCHED.value,
    S.PARTIALLY_SETTLED.value,
    S.FAILED.value,
)
FREE_OF_PAYMENT = (InstructionType.DFP.value, InstructionType.RFP.value)
BOND_CLASSES = ("GOVT_BOND", "CORP_BOND")

# Display order of the queue's columns; every row tuple holds these values in this order.
COLUMNS: tuple[Column, ...] = (
    Column("instruction_ref", "Instruction", "text", 150),
    Column("status", "Status", "status", 150),
    Column("reason_code", "Reason", "text", 72),
    Column("intended_settlement_date", "Settle date", "date", 96),
    Column("age_days", "Age", "int", 48),
    Column("instruction_type", "Type", "text", 48),
    Column("isin", "ISIN", "text", 120),
    Column("counterparty_code", "Counterparty", "text", 120),
    Column("account_code", "Account", "text", 90),
    Column("market_mic", "Market", "text", 64),
    Column("quantity", "Quantity", "decimal", 100),
    Column("settlement_amount", "Amount", "decimal", 120),
    Column("currency", "Ccy", "text", 45),
    Column("value_at_stake", "At stake", "decimal", 115),
    Column("penalty", "Penalty", "decimal", 80),
    Column("owner_id", "Owner", "int", 80),
    Column("trade_date", "Trade date", "date", 90, False),
    Column("settled_quantity", "Settled qty", "decimal", 100, False),
    Column("settled_amount", "Settled amt", "decimal", 110, False),
    Column("is_netted", "Netted", "bool", 55, False),
    Column("counterparty_ref", "Their ref", "text", 120, False),
    Column("reason_text", "Reason text", "text", 220, False),
    Column("claimed_at", "Claimed", "datetime", 140, False),
    Column("updated_at", "Updated", "datetime", 140, False),
    Column("version", "Ver.", "int", 45, False),
    Column("id", "Id", "int", 70, False),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)
COL = {k: i for i, k in enumerate(COLUMN_KEYS)}

# Sortable columns: a sort must stay an index scan at a million rows, so only columns of the instructions table
# with a (column, id) index (see INDEXES_WANTED; isd and status have theirs already) and never a nullable one
# (NULLs break the keyset comparison).
SORTABLE = frozenset(
    {
        "intended_settlement_date",
        "status",
        "instruction_ref",
        "trade_date",
        "settlement_amount",
        "quantity",
        "currency",
        "updated_at",
        "id",
    }
)
UNIQUE_SORT = frozenset({"instruction_ref", "id"})

#: The indexes the queue's sorts and filters want at a million rows (asked of the settlement migration's owner).
INDEXES_WANTED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ix_settlement_instructions_trade_date_id", ("trade_date", "id")),
    ("ix_settlement_instructions_amount_id", ("settlement_amount", "id")),
    ("ix_settlement_instructions_quantity_id", ("quantity", "id")),
    ("ix_settlement_instructions_currency_id", ("currency", "id")),
    ("ix_settlement_instructions_updated_at_id", ("updated_at", "id")),
    ("ix_settlement_instructions_status_isd_id", ("status", "intended_settlement_date", "id")),
    ("ix_settlement_instructions_reason_code", ("reason_code",)),
)

# The instruction columns a page reads, then turned into COLUMN_KEYS order by _present.
_DB_KEYS = (
    "id",
    "instruction_ref",
    "status",
    "reason_code",
    "intended_settlement_date",
    "instruction_type",
    "instrument_id",
    "counterparty_id",
    "account_id",
    "quantity",
    "settlement_amount",
    "currency",
    "owner_id",
    "trade_date",
    "settled_quantity",
    "settled_amount",
    "is_netted",
    "counterparty_ref",
    "reason_text",
    "claimed_at",
    "updated_at",
    "version",
)
_DB = {k: i for i, k in enumerate(_DB_KEYS)}


# --- filter and sort ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFilter(DictFilter):
    """What the filter bar (or a drill-down) asks for. Empty fields do not filter."""

    # Not dataclass fields (no annotation): what a saved view leaves out, and what it reads back as tuples.
    _transient = ("ids", "ids_title", "as_of")
    _tuples = ("statuses", "reasons", "ids")

    settlement_date_from: dt.date | None = None
    settlement_date_to: dt.date | None = None
    statuses: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()  # market reason codes (CMIS, LACK ...)
    counterparty: str | None = None  # counterparty code
    market: str | None = None  # market MIC
    # "mine", "unassigned", "mine_or_unassigned", or a username.
    owner: str | None = None
    account: str | None = None  # account code
    isin: str | None = None  # an ISIN, or part of the instrument's name
    currency: str | None = None
    failing_only: bool = False
    text: str | None = None  # part of our or the counterparty's reference
    # Drill-down from another pane: exactly these instructions, with a caption saying where they came from.
    ids: tuple[int, ...] | None = None
    ids_title: str | None = None
    # The day "failing" and the ages are measured on (None: today in UTC); tests fix it.
    as_of: dt.date | None = None


@dataclass(frozen=True)
class Sort:
    key: str = "intended_settlement_date"
    descending: bool = False


def today_utc() -> dt.date:
    return utcnow().date()


def _as_of(flt: QueueFilter) -> dt.date:
    return flt.as_of or today_utc()


def _conditions(
    flt: QueueFilter, actor: Actor, *, opaque: bool = False, sort_key: str | None = None
) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a filter; ``opaque`` hides the equality columns' indexes from SQLite's planner, which
    then walks the sort index (see _plan), except the sort column's own: its index serves both."""

    def col(column: Any) -> Any:
        return no_index(column) if opaque and column.key != sort_key else column

    c: list[ColumnElement[bool]] = []
    if flt.ids is not None:
        c.append(SI.id.in_(list(flt.ids)))
    if flt.settlement_date_from:
        c.append(SI.intended_settlement_date >= flt.settlement_date_from)
    if flt.settlement_date_to:
        c.append(SI.intended_settlement_date <= flt.settlement_date_to)
    if flt.statuses:
        values = [S(s).value for s in flt.statuses]
        c.append(no_index(SI.status).in_(values) if opaque else SI.status.in_([S(v) for v in values]))
    if flt.reasons:
        c.append(col(SI.reason_code).in_([r.strip().upper() for r in flt.reasons]))
    if flt.counterparty:
        c.append(
            col(SI.counterparty_id).in_(
                select(Counterparty.id).where(Counterparty.code == flt.counterparty.strip().upper())
            )
        )
    if flt.account:
        c.append(
            col(SI.account_id).in_(select(Account.id).where(Account.code == flt.account.strip().upper()))
        )
    if flt.market:
        c.append(
            col(SI.instrument_id).in_(
                select(Instrument.id)
                .join(Market, Market.id == Instrument.market_id)
                .where(Market.mic == flt.market.strip().upper())
            )
        )
    if flt.isin:
        term = flt.isin.strip()
        if exact_isin(term):
            c.append(col(SI.instrument_id).in_(select(Instrument.id).where(Instrument.isin == term.upper())))
        else:
            c.append(
                SI.instrument_id.in_(
                    select(Instrument.id).where(
                        or_(
                            func.lower(Instrument.name).like(f"%{term.lower()}%"),
                            Instrument.isin == term.upper(),
                        )
                    )
                )
            )
    if flt.currency:
        c.append(col(SI.currency) == flt.currency.strip().upper())
    if flt.failing_only:
        # Failed, or still open after the day it should have settled.
        c.append(
            or_(
                SI.status == S.FAILED,
                and_(SI.status.in_([S(s) for s in OPEN_STATUSES]), SI.intended_settlement_date < _as_of(flt)),
            )
        )
    if flt.text:
        t = f"%{flt.text.strip()}%"
        c.append(or_(SI.instruction_ref.like(t), SI.counterparty_ref.like(t)))
    if flt.owner:
        c.append(_owner_condition(flt.owner.strip(), actor, opaque=opaque))
    return c


def _owner_condition(owner: str, actor: Actor, *, opaque: bool = False) -> ColumnElement[bool]:
    key = owner.lower()
    # Most instructions are nobody's: read through the owner index, "unassigned" is a million rows to sort. The
    # sort index is walked instead whenever the query has another sort than by owner (always, here) on SQLite.
    unowned = no_index(SI.owner_id).is_(None)
    if key == "unassigned":
        return unowned
    if key in ("mine", "mine_or_unassigned"):
        if actor.user_id is None:
            return unowned if key == "mine_or_unassigned" else literal(False)
        if key == "mine":
            return SI.owner_id == actor.user_id
        return or_(no_index(SI.owner_id) == actor.user_id, unowned)
    return SI.owner_id.in_(select(User.id).where(User.username == owner))


def _where(flt: QueueFilter, actor: Actor, *, opaque: bool = False) -> ColumnElement[bool]:
    return and_(True, *_conditions(flt, actor, opaque=opaque))


def _sort_col(sort: Sort) -> Any:
    if sort.key not in SORTABLE:
        raise ValueError(f"cannot sort the settlement queue by {sort.key!r}")
    return getattr(SI, sort.key)


# --- reference data cache -------------------------------------------------------------------------------------------


@dataclass
class _Ref:
    """Codes by id for the few thousand reference rows: what a page shows beside each instruction's ids."""

    instruments: dict[int, tuple[str, int, str, Decimal, Decimal]] = field(default_factory=dict)
    markets: dict[int, str] = field(default_factory=dict)  # id -> MIC
    counterparties: dict[int, str] = field(default_factory=dict)
    accounts: dict[int, str] = field(default_factory=dict)
    loaded: float = 0.0


REF_TTL_S = 300.0
_refs: dict[str, _Ref] = {}
_refs_lock = threading.Lock()


def _load_ref(conn: Connection) -> _Ref:
    """Every code the queue shows, in one round trip (a UNION of four small tables)."""
    q = union_all(
        select(
            literal("i"),
            Instrument.id,
            Instrument.isin,
            Instrument.market_id,
            type_coerce(Instrument.asset_class, String()),
            Instrument.reference_price,
            Instrument.contract_size,
        ),
        select(literal("m"), Market.id, Market.mic, literal(0), literal(""), literal(0), literal(0)),
        select(
            literal("c"), Counterparty.id, Counterparty.code, literal(0), literal(""), literal(0), literal(0)
        ),
        select(literal("a"), Account.id, Account.code, literal(0), literal(""), literal(0), literal(0)),
    )
    ref = _Ref(loaded=time.monotonic())
    for kind, i, code, market_id, extra, price, size in conn.execute(q):
        if kind == "i":
            ref.instruments[int(i)] = (
                str(code),
                int(market_id),
                str(getattr(extra, "value", extra)),
                Decimal(str(price)),
                Decimal(str(size)),
            )
        elif kind == "m":
            ref.markets[int(i)] = str(code)
        elif kind == "c":
            ref.counterparties[int(i)] = str(code)
        else:
            ref.accounts[int(i)] = str(code)
    return ref


def _ref(conn: Connection, rows: Sequence[Sequence[Any]] = ()) -> _Ref:
    """The cached codes, read again when stale or when a row names an id the cache has not seen (new data)."""
    key = str(conn.engine.url)
    with _refs_lock:
        ref = _refs.get(key)
    fresh = ref is not None and time.monotonic() - ref.loaded < REF_TTL_S
    if fresh and ref is not None:
        known = all(
            r[_DB["instrument_id"]] in ref.instruments
            and r[_DB["counterparty_id"]] in ref.counterparties
            and r[_DB["account_id"]] in ref.accounts
            for r in rows
        )
        if known:
            return ref
    ref = _load_ref(conn)
    with _refs_lock:
        _refs[key] = ref
    return ref


# --- ages -----------------------------------------------------------------------------------------------------------

# Market MIC -> its BusinessCalendar, once cutoffs() has built it. By MIC, not calendar code: two markets may share
# an exchange's calendar with closures of their own (US Treasuries on Fedwire: the NYSE's days less Veterans Day).
_calendars: dict[str, Any] = {}


def _weekdays_between(start: dt.date, end: dt.date) -> int:
    """Weekdays in [start, end): the age before the market's calendar is known."""
    if end <= start:
        return 0
    days = (end - start).days
    weeks, rest = divmod(days, 7)
    n = weeks * 5
    wd = start.weekday()
    for k in range(rest):
        if (wd + k) % 7 < 5:
            n += 1
    return n


def _age(mic: str | None, isd: dt.date, as_of: dt.date) -> int:
    if isd >= as_of:
        return 0
    cal = _calendars.get(mic or "")
    if cal is not None:
        try:
            return max(0, int(cal.business_days_between(isd, as_of)))
        except Exception:  # outside the calendar's range: the weekday count is the honest fallback
            pass
    return _weekdays_between(isd, as_of)


def value_at_stake(
    status: str,
    instruction_type: str,
    amount: Decimal,
    settled_amount: Decimal,
    quantity: Decimal,
    settled_quantity: Decimal,
    asset_class: str,
    price: Decimal,
    contract_size: Decimal,
) -> Decimal:
    """What is still to settle (see the module docstring), to the cent."""
    if status not in OPEN_STATUSES:
        return Decimal("0.00")
    if instruction_type in FREE_OF_PAYMENT:
        scale = Decimal("0.01") if asset_class in BOND_CLASSES else Decimal(1)
        value = (quantity - settled_quantity) * price * contract_size * scale
    else:
        value = abs(amount) - abs(settled_amount)
    return max(Decimal(0), value).quantize(Decimal("0.01"))


def _present(
    rows: Sequence[Sequence[Any]], penalties: Sequence[Any], ref: _Ref, as_of: dt.date
) -> list[tuple]:
    """Database rows (``_DB_KEYS`` + penalty) as COLUMN_KEYS tuples, with codes, value at stake and age."""
    out: list[tuple[Any, ...]] = []
    d = _DB
    for n, (r, penalty) in enumerate(zip(rows, penalties, strict=True)):
        if n and not n % paging.CHUNK_ROWS:
            time.sleep(0)  # a GIL hand-over point between stretches (see _fetch)
        inst = ref.instruments.get(r[d["instrument_id"]])
        isin, market_id, asset_class, price, size = inst if inst else ("?", 0, "", Decimal(0), Decimal(1))
        mic = ref.markets.get(market_id, "")
        status = str(getattr(r[d["status"]], "value", r[d["status"]]))
        kind = str(getattr(r[d["instruction_type"]], "value", r[d["instruction_type"]]))
        at_stake = value_at_stake(
            status,
            kind,
            r[d["settlement_amount"]],
            r[d["settled_amount"]],
            r[d["quantity"]],
            r[d["settled_quantity"]],
            asset_class,
            price,
            size,
        )
        isd = r[d["intended_settlement_date"]]
        age = _age(mic, isd, as_of) if status in OPEN_STATUSES else 0
        values = {
            "isin": isin,
            "counterparty_code": ref.counterparties.get(r[d["counterparty_id"]], "?"),
            "account_code": ref.accounts.get(r[d["account_id"]], "?"),
            "market_mic": mic,
            "value_at_stake": at_stake,
            "penalty": Decimal(str(penalty)).quantize(Decimal("0.01")) if penalty is not None else None,
            "age_days": age,
            "status": status,
            "instruction_type": kind,
        }
        out.append(tuple(values[k] if k in values else r[d[k]] for k in COLUMN_KEYS))
    return out


# --- pages ----------------------------------------------------------------------------------------------------------


def _penalty_sum() -> Any:
    return (
        select(func.sum(FailPenalty.amount))
        .where(FailPenalty.instruction_id == SI.id)
        .correlate(SI)
        .scalar_subquery()
    )


def _db_cols() -> list[Any]:
    return [getattr(SI, k) for k in _DB_KEYS]


def fetch_page(
    db: Database,
    actor: Actor,
    flt: QueueFilter,
    sort: Sort,
    *,
    limit: int = 200,
    after: tuple[Any, Any] | None = None,
    offset: int | None = None,
    from_end: bool = False,
    before: tuple[Any, Any] | None = None,
) -> Page:
    """One page of the queue in display order (rows in COLUMN_KEYS order; the arguments: paging.page_shape)."""
    require(actor, Permission.VIEW)
    with reader(db) as conn:
        return _fetch(
            conn, actor, flt, sort, limit=limit, after=after, offset=offset, from_end=from_end, before=before
        )


def _fetch(
    conn: Connection,
    actor: Actor,
    flt: QueueFilter,
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
    key = _sort_col(sort)
    unique = sort.key in UNIQUE_SORT
    shape = page_shape(sort.descending, after=after, offset=offset, from_end=from_end, before=before)
    plan = _plan(conn, actor, flt, sort)
    bound = [] if shape.bound is None else [beyond(key, SI.id, shape.bound, shape.desc, unique=unique)]
    ordering = order_by(key, SI.id, shape.desc, unique=unique)
    raw: list[tuple[Any, ...]] | None = None
    if (
        conn.dialect.name == "sqlite"
        and not shape.offset
        and (plan == SORT_INDEX or (plan == PLANNER and flt.text))
    ):
        raw = _probe(conn, actor, flt, bound, ordering, limit)
        if len(raw) < limit:
            plan = _after_probe(conn, actor, flt, sort, plan, found=len(raw), limit=limit)
            raw = None
    if raw is None:
        # Read and turned into tuples a stretch at a time, handing the GIL over between stretches
        # (paging.read_rows): a page's 200 rows in one go held it for 10 ms on a worker that, at a lower priority on
        # a busy machine, can lose its core while holding it; the GUI thread then waits on the GIL that long.
        raw = paging.read_rows(conn, _page_query(actor, flt, sort, plan, shape, bound, ordering, limit))
    raw = shape.arrange(raw)
    rows = _present([r[:-1] for r in raw], [r[-1] for r in raw], _ref(conn, raw), _as_of(flt))
    return page_of(rows, COL[sort.key], COL["id"])


#: SQLite, a page the counts say many rows match (or a search in the references, which no index can find): the page
#: is first looked for among this many rows next in the sort order (their ids walked from the sort index alone, then
#: those rows read and checked). Most filters fill it there. When they do not, the rows found say how far the walk
#: would have to go (see _after_probe): a filter whose rows sort late (a market's instructions by currency, JPY by
#: quantity) or a search few rows match would make it read most of the table in the sort's order, a random read per
#: row, and the page is then read as for few matches instead. At a million instructions: a reference search 0.1-3.1 s
#: before, 0.27-0.51 s after, whatever the sort; the slowest of 100 filter and sort pairs tried 651 -> 265 ms (JPY by
#: quantity 651 -> 83 ms, a market by currency 562 -> 196 ms; an account by Amount, whose first rows hold none of
#: its instructions, 30 -> 265 ms).
PROBE_ROWS = 4000
#: How many rows of the table a scan in its own order reads in the time the sort-index walk reads one (at a million
#: instructions a search scanned everything in 0.35 s; a walk by Amount read them in 3.6 s).
SCAN_SPEEDUP = 10.0


def _probe(
    conn: Connection,
    actor: Actor,
    flt: QueueFilter,
    bound: list[ColumnElement[bool]],
    ordering: tuple[Any, ...],
    limit: int,
) -> list[tuple[Any, ...]]:
    """The matches among the next PROBE_ROWS rows of the sort order, at most ``limit``, in the page's order: the
    page itself when there are ``limit`` of them (none further on can come before them), else every match there."""
    ahead = select(SI.id).where(and_(True, *bound)).order_by(*ordering).limit(PROBE_ROWS).subquery()
    # The filter's indexes hidden: the rows come by id from the walked ids, not from an index of the filter.
    where = _conditions(flt, actor, opaque=True, sort_key="")
    q = (
        select(*_db_cols(), _penalty_sum())
        .where(SI.id.in_(select(ahead.c.id)), *where)
        .order_by(*ordering)
        .limit(limit)
    )
    return paging.read_rows(conn, q)


def _after_probe(
    conn: Connection, actor: Actor, flt: QueueFilter, sort: Sort, plan: str, *, found: int, limit: int
) -> str:
    """The access path once the probe found ``found`` (< ``limit``) matches in PROBE_ROWS rows: walking on through
    the sort index (``plan``) reads about ``limit * PROBE_ROWS / found`` rows at that rate; reading the matches
    through the filter's index reads every match; a search without one scans the table, SCAN_SPEEDUP times as fast.
    The fewer rows win."""
    walk = float("inf") if found == 0 else limit * PROBE_ROWS / found
    conditions = [(c, v) for c, v in _estimable(conn, actor, flt) if c != sort.key]
    estimate = (
        paging.estimate_matches(conn, SI.__table__, conditions, estimable=ESTIMABLE_COLUMNS)
        if conditions
        else None
    )
    # Without an estimate (a search alone) the matches are found by a scan of the whole table.
    matches = estimate[0] if estimate is not None else paging.sqlite_count(conn, SI.__table__) / SCAN_SPEEDUP
    return plan if walk < matches else FILTER_INDEX


def _page_query(
    actor: Actor,
    flt: QueueFilter,
    sort: Sort,
    plan: str,
    shape: PageShape,
    bound: list[ColumnElement[bool]],
    ordering: tuple[Any, ...],
    limit: int,
) -> Any:
    key = _sort_col(sort)
    unique = sort.key in UNIQUE_SORT
    where = _conditions(flt, actor, opaque=plan == SORT_INDEX, sort_key=sort.key) + bound
    q = select(*_db_cols(), _penalty_sum())
    if plan == FILTER_INDEX:
        # Few rows match: read their ids and sort keys through the filter's index (OFFSET 0 keeps both planners
        # from merging the subquery away), sort those, then read the page's rows and penalties by id. Walking the
        # sort index instead passes every instruction that does not match: at a million, a counterparty's few
        # thousand by Amount took SQLite 440 ms, an ISIN's by Quantity 940 ms.
        found = select(SI.id.label("id"), key.label("k")).where(and_(True, *where)).offset(0).subquery()
        ids = (
            select(found.c.id)
            .order_by(*order_by(found.c.k, found.c.id, shape.desc, unique=unique))
            .limit(limit)
        )
        if shape.offset:
            ids = ids.offset(shape.offset)
        page = ids.subquery()
        q = q.join(page, SI.id == page.c.id).order_by(*ordering)
    elif shape.offset:
        # A jump into the middle: find the page's ids first (the sort index alone, index-only where it covers the
        # filter), then read those rows and their penalties. Skipping rows with every column and the penalty
        # subquery in the select list made PostgreSQL read each skipped row from the table and run its penalty
        # lookup (the select list is computed for the rows OFFSET drops): 1.1 s for row 500,000 of a million.
        ids = select(SI.id).where(and_(True, *where)).order_by(*ordering).limit(limit).offset(shape.offset)
        page = ids.subquery()
        q = q.join(page, SI.id == page.c.id).order_by(*ordering)
    else:
        q = q.where(and_(True, *where)).order_by(*ordering).limit(limit)
    return q


# --- choosing the access path ---------------------------------------------------------------------------------------
#
# SQLite keeps no statistics: a filter on an indexed column and a sort on another one are planned the blotter's way
# (paging.choose_plan). Few matching rows (a counterparty, an ISIN, the failed ones) are read through the filter's
# index and sorted (FILTER_INDEX, see _fetch); many (every open instruction) are found by walking the sort index
# (SORT_INDEX hides the status and owner indexes, through which SQLite would otherwise read them all and sort them).
# The counts come from the filter's index (index-only, cached for a minute); they only steer the plan, never the
# result.
FEW_ROWS = paging.FEW_ROWS

#: The equality columns a filter's rows are counted by (each has an index).
ESTIMABLE_COLUMNS = (
    "status",
    "counterparty_id",
    "account_id",
    "instrument_id",
    "reason_code",
    "currency",
    "owner_id",
)


def _estimable(conn: Connection, actor: Actor, flt: QueueFilter) -> list[tuple[str, list[Any]]]:
    """(column, values) of the filter's equality conditions on indexed columns; codes become ids through the
    reference cache (a code it does not know selects nothing: no values, no rows)."""
    out: list[tuple[str, list[Any]]] = []
    if flt.statuses:
        out.append(("status", sorted({S(s).value for s in flt.statuses})))
    if flt.reasons:
        out.append(("reason_code", sorted({r.strip().upper() for r in flt.reasons})))
    if flt.currency:
        out.append(("currency", [flt.currency.strip().upper()]))
    if flt.owner and flt.owner.strip().lower() == "mine" and actor.user_id is not None:
        out.append(("owner_id", [actor.user_id]))
    isin = flt.isin.strip().upper() if flt.isin and exact_isin(flt.isin.strip()) else None
    if flt.counterparty or flt.account or flt.market or isin:
        ref = _ref(conn)
        if flt.counterparty:
            code = flt.counterparty.strip().upper()
            out.append(("counterparty_id", sorted(i for i, c in ref.counterparties.items() if c == code)))
        if flt.account:
            code = flt.account.strip().upper()
            out.append(("account_id", sorted(i for i, c in ref.accounts.items() if c == code)))
        instruments: set[int] | None = None
        if isin:
            instruments = {i for i, x in ref.instruments.items() if x[0] == isin}
        if flt.market:
            mic = flt.market.strip().upper()
            markets = {i for i, m in ref.markets.items() if m == mic}
            in_market = {i for i, x in ref.instruments.items() if x[1] in markets}
            instruments = in_market if instruments is None else instruments & in_market
        if instruments is not None:
            out.append(("instrument_id", sorted(instruments)))
    return out


def _plan(conn: Connection, actor: Actor, flt: QueueFilter, sort: Sort) -> str:
    if conn.dialect.name != "sqlite":
        # PostgreSQL's planner has its statistics and picked well in every case the queue bench measures; asking
        # for them here cost a remote user a round trip on each new filter (+50 ms link: 140 -> 220 ms).
        return PLANNER
    if flt.ids is not None:
        # A drill-down: at most its ids match, read by primary key and sorted.
        return FILTER_INDEX if len(flt.ids) < FEW_ROWS else PLANNER
    # Sorted by a filtered column, its index does both: nothing to choose.
    conditions = [(c, v) for c, v in _estimable(conn, actor, flt) if c != sort.key]
    return paging.choose_plan(conn, SI.__table__, conditions, estimable=ESTIMABLE_COLUMNS, few_rows=FEW_ROWS)


def count(db: Database, actor: Actor, flt: QueueFilter) -> int:
    require(actor, Permission.VIEW)
    with reader(db) as conn:
        return _count(conn, actor, flt)


def _count(conn: Connection, actor: Actor, flt: QueueFilter) -> int:
    return int(conn.scalar(select(func.count()).select_from(SI).where(_where(flt, actor))) or 0)


def position_of(db: Database, actor: Actor, flt: QueueFilter, sort: Sort, instruction_id: int) -> int | None:
    """Row number of an instruction under the filter and sort (to keep the selection across a query change)."""
    require(actor, Permission.VIEW)
    with reader(db) as conn:
        found = _locate(conn, actor, flt, sort, instruction_id)
    return None if found is None else found[0]


def _locate(
    conn: Connection, actor: Actor, flt: QueueFilter, sort: Sort, instruction_id: int
) -> tuple[int, tuple[Any, ...]] | None:
    """(row number, row) of an instruction under the filter and sort, or None when the filter excludes it."""
    key = _sort_col(sort)
    raw = conn.execute(
        select(*_db_cols(), _penalty_sum()).where(SI.id == instruction_id, _where(flt, actor))
    ).first()
    if raw is None:
        return None
    raw = tuple(raw)
    row = _present([raw[:-1]], [raw[-1]], _ref(conn, [raw]), _as_of(flt))[0]
    k = (row[COL[sort.key]], instruction_id)
    above = beyond(key, SI.id, k, not sort.descending, unique=sort.key in UNIQUE_SORT)
    n = conn.scalar(select(func.count()).select_from(SI).where(above, _where(flt, actor)))
    return int(n or 0), row


def window(
    db: Database,
    actor: Actor,
    flt: QueueFilter,
    sort: Sort,
    *,
    top_row: int = 0,
    top_id: int | None = None,
    visible: int = 50,
    track: Sequence[int] = (),
    page_size: int = 200,
) -> Window:
    """Count, the pages covering ``visible`` rows from the top instruction, and where the tracked ones now are
    (see :func:`paging.read_window`)."""
    require(actor, Permission.VIEW)
    return paging.read_window(
        db,
        count=lambda conn: _count(conn, actor, flt),
        locate=lambda conn, item: _locate(conn, actor, flt, sort, item),
        fetch=lambda conn, **page: _fetch(conn, actor, flt, sort, **page),
        key_of=lambda row: (row[COL[sort.key]], row[COL["id"]]),
        top_row=top_row,
        top_id=top_id,
        visible=visible,
        track=track,
        page_size=page_size,
    )


# --- totals and groups ----------------------------------------------------------------------------------------------


@dataclass
class CurrencyTotal:
    count: int = 0
    amount: Decimal = Decimal("0.00")  # sum of settlement amounts
    at_stake: Decimal = Decimal("0.00")  # sum of values at stake (open instructions)


@dataclass
class Totals:
    count: int = 0
    by_currency: dict[str, CurrencyTotal] = field(default_factory=dict)
    penalties: dict[str, Decimal] = field(default_factory=dict)  # accrued, by penalty currency


def totals(
    db: Database, actor: Actor, flt: QueueFilter, *, cancelled: Callable[[], bool] | None = None
) -> Totals:
    """Count, settlement amount and value at stake by currency of everything the filter selects, and the
    penalties accrued on it.

    Three GROUP BYs on the instructions table alone (no join per row): amounts by currency; the unsettled quantity of
    open free-of-payment instructions by currency and instrument, valued here at the cached reference prices; the
    penalties of the selected instructions (see :func:`_penalty_totals`).

    ``cancelled``: asked between the queries and, on SQLite, every 50 ms while one runs (:func:`~app.services.interrupt.interruptible`);
    once it says True the query stops and :class:`Interrupted` is raised, so totals nobody waits for any more give
    their worker (and a core) back.
    """
    require(actor, Permission.VIEW)
    conditions = _conditions(flt, actor)
    where = and_(True, *conditions)
    open_ = SI.status.in_([S(s) for s in OPEN_STATUSES])
    free = SI.instruction_type.in_([InstructionType(t) for t in FREE_OF_PAYMENT])
    cash_at_stake = case(
        (and_(open_, ~free), func.abs(SI.settlement_amount) - func.abs(SI.settled_amount)), else_=literal(0)
    )
    # Grouped by ``+currency`` on SQLite: through the currency index it read the million rows in currency order,
    # one random table lookup each (2 s; 1.1 s more for the second query). A scan and a sort of what it reads is
    # a third of that. PostgreSQL reads both in parallel workers either way (0.9 s and 0.3 s at a million).
    q = (
        select(SI.currency, func.count(), func.sum(SI.settlement_amount), func.sum(cash_at_stake))
        .where(where)
        .group_by(no_index(SI.currency))
    )
    f = (
        select(SI.currency, SI.instrument_id, func.sum(SI.quantity - SI.settled_quantity))
        .where(where, open_, free)
        .group_by(no_index(SI.currency), no_index(SI.instrument_id))
    )
    cent = Decimal("0.01")
    with reader(db) as conn:
        with interruptible(conn, cancelled) as check:
            check()
            rows = conn.execute(q).all()
            check()
            free_rows = conn.execute(f).all()
            check()
            pens = conn.execute(_penalty_totals(conditions, where)).all()
        ref = _ref(conn)
    out = Totals()
    stake: dict[str, Decimal] = {}
    for ccy, n, amount, cash in rows:
        out.count += int(n)
        out.by_currency[str(ccy)] = CurrencyTotal(int(n), Decimal(str(amount or 0)).quantize(cent))
        stake[str(ccy)] = Decimal(str(cash or 0))
    for ccy, instrument_id, qty in free_rows:
        _isin, _m, asset_class, price, size = ref.instruments.get(
            instrument_id, ("", 0, "", Decimal(0), Decimal(1))
        )
        scale = Decimal("0.01") if asset_class in BOND_CLASSES else Decimal(1)
        stake[str(ccy)] = stake.get(str(ccy), Decimal(0)) + Decimal(str(qty or 0)) * price * size * scale
    for ccy, total in out.by_currency.items():
        total.at_stake = max(Decimal(0), stake.get(ccy, Decimal(0))).quantize(cent)
    out.penalties = {str(c): Decimal(str(a or 0)).quantize(cent) for c, a in pens if a is not None}
    return out


def _penalty_totals(conditions: Sequence[ColumnElement[bool]], where: ColumnElement[bool]) -> Select[Any]:
    """Penalties accrued on the selected instructions, by currency.

    Unfiltered: the penalties table alone. Filtered: a join, so each planner starts from the smaller side; the
    former ``instruction_id IN (SELECT id … WHERE filter)`` made SQLite list the million ids and probe the
    penalties for each one (3.3 s with no penalty at all).
    """
    q = select(FailPenalty.currency, func.sum(FailPenalty.amount)).group_by(FailPenalty.currency)
    if not conditions:
        return q
    return q.join(SI, SI.id == FailPenalty.instruction_id).where(where)


GROUP_BY = ("status", "reason", "counterparty", "market", "settlement_date")
GROUP_LABELS = {
    "status": "Status",
    "reason": "Reason",
    "counterparty": "Counterparty",
    "market": "Market",
    "settlement_date": "Settlement date",
}
#: Groups returned at most (settlement dates and counterparties can be many; the biggest come first).
MAX_GROUPS = 200


@dataclass(frozen=True)
class Group:
    """One group of the grouped view: its value (what a filter on it takes), its label and how many it holds."""

    value: Any
    label: str
    count: int
    failing: int


def groups(db: Database, actor: Actor, flt: QueueFilter, by: str) -> list[Group]:
    """Instructions the filter selects, counted per status, reason, counterparty, market or settlement date."""
    require(actor, Permission.VIEW)
    if by not in GROUP_BY:
        raise ValidationFailed(f"The queue cannot be grouped by {by!r}; choose one of {', '.join(GROUP_BY)}.")
    conditions = _conditions(flt, actor)
    where = and_(True, *conditions)
    # Counted on the instructions' own column, then named: a join to the counterparties or the instruments made
    # SQLite walk their index and look up every instruction (8 s by counterparty at a million). On SQLite the failed
    # ones are counted apart, through the status index: counting them beside the total needs each row's status, a
    # table lookup per row (1 s by reason), where the total alone is an index-only count.
    key = {
        "status": SI.status,
        "reason": SI.reason_code,
        "counterparty": SI.counterparty_id,
        "market": SI.instrument_id,
        "settlement_date": SI.intended_settlement_date,
    }[by]
    # Unfiltered, the total is an index-only count in the key's index. Filtered (and for the failed ones), SQLite
    # must not group through that index: it would look up every instruction to test the filter on it, where the
    # filter's own index (or a scan) and a sort of what matches is cheap; ``no_index`` hides it (SQLite only).
    grouped = key if not conditions or by == "status" else no_index(key)
    with reader(db) as conn:
        if conn.dialect.name != "sqlite":
            # PostgreSQL counts both in one (parallel) pass, hashing the groups: apart, it read the rows twice.
            failing = func.sum(case((SI.status == S.FAILED, 1), else_=0))
            both = conn.execute(select(key, func.count(), failing).where(where).group_by(key)).all()
            counts = [(v, n) for v, n, _f in both]
            failed = {v: f for v, _n, f in both}
        else:
            counts = conn.execute(select(key, func.count()).where(where).group_by(grouped)).all()
            if by == "status":
                failed = {v: n for v, n in counts if _plain(v) == S.FAILED.value}
            else:
                failed = dict(
                    conn.execute(
                        select(key, func.count()).where(where, SI.status == S.FAILED).group_by(no_index(key))
                    ).all()
                )
        names: dict[Any, Any] = {}
        if by == "counterparty":
            names = dict(conn.execute(select(Counterparty.id, Counterparty.code)).all())
        elif by == "market":
            names = dict(
                conn.execute(
                    select(Instrument.id, Market.mic).join(Market, Market.id == Instrument.market_id)
                ).all()
            )
    merged: dict[Any, list[int]] = {}
    for value, n in counts:
        label = names.get(value, "?") if names else value
        acc = merged.setdefault(label, [0, 0])
        acc[0] += int(n)
        acc[1] += int(failed.get(value, 0) or 0)
    rows = [(value, n, f) for value, (n, f) in merged.items()]
    out = []
    for value, n, f in rows:
        value = getattr(value, "value", value)
        if by == "reason":
            label = value or "(no reason)"
        elif by == "settlement_date":
            label = value.isoformat()
        else:
            label = str(value)
        out.append(Group(value, label, int(n), int(f or 0)))
    if by == "settlement_date":
        out.sort(key=lambda g: g.value)
    elif by == "status":
        order = list(S)
        out.sort(key=lambda g: order.index(S(g.value)))
    else:
        out.sort(key=lambda g: (-g.count, g.label))
    return out[:MAX_GROUPS]


def group_filter(flt: QueueFilter, by: str, value: Any) -> QueueFilter:
    """The filter narrowed to one group (a click on a group in the grouped view)."""
    from dataclasses import replace

    if by == "status":
        return replace(flt, statuses=(str(value),))
    if by == "reason":
        return replace(flt, reasons=(str(value),) if value else ())
    if by == "counterparty":
        return replace(flt, counterparty=str(value))
    if by == "market":
        return replace(flt, market=str(value))
    if by == "settlement_date":
        day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
        return replace(flt, settlement_date_from=day, settlement_date_to=day)
    raise ValidationFailed(f"The queue cannot be grouped by {by!r}.")


# --- market cut-offs ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cutoff:
    """A market's next instruction cut-off, and how many open instructions are due by its settlement date."""

    mic: str
    name: str
    timezone: str
    cutoff_local: dt.time
    settlement_date: dt.date  # the market's business day the cut-off belongs to
    at: dt.datetime  # the cut-off as an aware UTC moment: the pane counts down to it without the database
    due: int  # open instructions of this market settling on or before ``settlement_date``
    failing: int


def cutoffs(db: Database, actor: Actor, *, now: dt.datetime | None = None) -> list[Cutoff]:
    """Each market's next instruction cut-off (today's if it is still ahead on a business day, else the next
    business day's) in UTC, with the open instructions due by then. Builds the markets' calendars (a worker-thread
    task, once per process), which the queue's ages then use."""
    from .. import calendars

    require(actor, Permission.VIEW)
    now = now or utcnow()
    with db.read() as s:
        markets = s.execute(
            select(
                Market.id,
                Market.mic,
                Market.name,
                Market.timezone,
                Market.instruction_cutoff,
            )
            .where(Market.id.in_(select(Instrument.market_id).distinct()))
            .order_by(Market.mic)
        ).all()
        plan: list[tuple[Any, dt.date, dt.datetime]] = []
        for m in markets:
            zone = _zone(m.timezone)
            local_now = now.astimezone(zone)
            try:
                cal = calendars.get_calendar(m.mic, s)
                _calendars[m.mic] = cal
                day = cal.add_business_days(local_now.date(), 0)
                if day == local_now.date() and local_now.time() >= m.instruction_cutoff:
                    day = cal.add_business_days(day, 1)
            except Exception:  # an unknown calendar code: weekdays only (the cut-off is still worth showing)
                day = local_now.date()
                if local_now.time() >= m.instruction_cutoff or day.weekday() >= 5:
                    day += dt.timedelta(days=1)
                while day.weekday() >= 5:
                    day += dt.timedelta(days=1)
            at = dt.datetime.combine(day, m.instruction_cutoff, tzinfo=zone).astimezone(dt.UTC)
            plan.append((m, day, at))
        days = sorted({day for _m, day, _a in plan})
        due_rows = s.execute(_due_query(days)).all() if plan else []
    # Per market and cut-off day: (due, failing), from the market's row (two columns per day).
    due: dict[tuple[int, dt.date], tuple[int, int]] = {}
    for market_id, *sums in due_rows:
        for k, day in enumerate(days):
            due[(int(market_id), day)] = (int(sums[2 * k] or 0), int(sums[2 * k + 1] or 0))
    out = []
    for m, day, at in plan:
        n, failing = due.get((m.id, day), (0, 0))
        out.append(Cutoff(m.mic, m.name, m.timezone, m.instruction_cutoff, day, at, n, failing))
    out.sort(key=lambda c: c.at)
    return out


def _due_query(days: Sequence[dt.date]) -> Select[Any]:
    """Open instructions (and failed ones) settling on or before each of ``days``, per market: two columns a day.

    Counted per instrument on the instructions alone (the open ones through the status index), then added up per
    market over those few hundred rows. Joined to the instruments first, SQLite walked the instrument index and
    looked up every one of the million instructions to keep the open ones (10.5 s at a million); grouped through
    the instrument index it does the same, hence the ``no_index`` on the grouping.
    """
    due = [
        func.sum(case((SI.intended_settlement_date <= day, cond), else_=0)).label(f"{name}_{k}")
        for k, day in enumerate(days)
        for name, cond in (("due", 1), ("failing", case((SI.status == S.FAILED, 1), else_=0)))
    ]
    per_instrument = (
        select(SI.instrument_id.label("instrument_id"), *due)
        .where(
            SI.status.in_([S(v) for v in OPEN_STATUSES]),
            SI.intended_settlement_date <= max(days),
        )
        .group_by(no_index(SI.instrument_id))
        .subquery()
    )
    return (
        select(Instrument.market_id, *(func.sum(c) for c in list(per_instrument.c)[1:]))
        .join(per_instrument, per_instrument.c.instrument_id == Instrument.id)
        .group_by(Instrument.market_id)
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except Exception:
        return ZoneInfo("UTC")


# --- one instruction ------------------------------------------------------------------------------------------------


@dataclass
class InstructionDetail:
    """Everything the detail panel shows about one instruction, as plain values (dicts), read in one snapshot."""

    id: int
    instruction: dict[str, Any]
    messages: list[dict[str, Any]]
    trades: list[dict[str, Any]]
    securities_movements: list[dict[str, Any]]
    cash_movements: list[dict[str, Any]]
    penalties: list[dict[str, Any]]
    history: list[dict[str, Any]]
    comments: list[dict[str, Any]]

    @property
    def penalty_total(self) -> Decimal:
        return sum((p["amount"] for p in self.penalties), Decimal("0.00"))


def _plain(v: Any) -> Any:
    return getattr(v, "value", v)


def _message_reasons(parsed: Any) -> list[str]:
    """Reason codes a parsed status message carries (the parsers name them reason_code / reason_codes / reasons)."""
    if not isinstance(parsed, dict):
        return []
    found: list[str] = []
    for key in ("reason_code", "reason_codes", "reasons", "reason"):
        v = parsed.get(key)
        if isinstance(v, str) and v.strip():
            found.append(v.strip().upper())
        elif isinstance(v, list):
            for item in v:
                if isinstance(item, str) and item.strip():
                    found.append(item.strip().upper())
                elif isinstance(item, dict) and item.get("code"):
                    found.append(str(item["code"]).upper())
    return list(dict.fromkeys(c for c in found if len(c) <= 8))


def detail(db: Database, actor: Actor, instruction_id: int) -> InstructionDetail:
    """The instruction with its codes, the messages applied to it, its trades, movements, penalties, history and
    comments."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        si = s.get(SI, instruction_id)
        if si is None:
            raise NotFound(
                f"The settlement instruction #{instruction_id} does not exist (it may have been deleted)."
            )
        inst = s.get(Instrument, si.instrument_id)
        cp = s.get(Counterparty, si.counterparty_id)
        acct = s.get(Account, si.account_id)
        market = s.get(Market, inst.market_id) if inst else None
        names = {int(i): str(n) for i, n in s.execute(select(User.id, User.username))}

        def ssi(ssi_id: int | None) -> str:
            if ssi_id is None:
                return ""
            row = s.get(StandingSettlementInstruction, ssi_id)
            if row is None:
                return ""
            return f"{row.place_of_settlement_bic} / agent {row.agent_bic} / {row.safekeeping_account}"

        penalties = [
            {
                "penalty_date": p.penalty_date,
                "reference_value": p.reference_value,
                "rate_bp": p.rate_bp,
                "amount": Decimal(str(p.amount)).quantize(Decimal("0.01")),
                "currency": p.currency,
            }
            for p in s.scalars(
                select(FailPenalty)
                .where(FailPenalty.instruction_id == si.id)
                .order_by(FailPenalty.penalty_date)
            )
        ]
        as_of = today_utc()
        status = _plain(si.status)
        at_stake = value_at_stake(
            status,
            _plain(si.instruction_type),
            si.settlement_amount,
            si.settled_amount,
            si.quantity,
            si.settled_quantity,
            _plain(inst.asset_class) if inst else "",
            inst.reference_price if inst else Decimal(0),
            inst.contract_size if inst else Decimal(1),
        )
        instruction = {
            "id": si.id,
            "instruction_ref": si.instruction_ref,
            "instruction_type": _plain(si.instruction_type),
            "status": status,
            "reason_code": si.reason_code,
            "reason_text": si.reason_text,
            "is_netted": si.is_netted,
            "isin": inst.isin if inst else "",
            "instrument_name": inst.name if inst else "",
            "counterparty_code": cp.code if cp else "",
            "counterparty_name": cp.name if cp else "",
            "counterparty_bic": cp.bic if cp else "",
            "account_code": acct.code if acct else "",
            "account_name": acct.name if acct else "",
            "market_mic": market.mic if market else "",
            "market_name": market.name if market else "",
            "quantity": si.quantity,
            "settled_quantity": si.settled_quantity,
            "settlement_amount": si.settlement_amount,
            "settled_amount": si.settled_amount,
            "currency": si.currency,
            "value_at_stake": at_stake,
            "trade_date": si.trade_date,
            "intended_settlement_date": si.intended_settlement_date,
            "actual_settlement_date": si.actual_settlement_date,
            "age_days": _age(market.mic if market else None, si.intended_settlement_date, as_of)
            if status in OPEN_STATUSES
            else 0,
            "penalty": sum((p["amount"] for p in penalties), Decimal("0.00")),
            "our_ssi": ssi(si.our_ssi_id),
            "their_ssi": ssi(si.their_ssi_id),
            "instructed_at": si.instructed_at,
            "counterparty_ref": si.counterparty_ref,
            "owner": names.get(si.owner_id) if si.owner_id is not None else None,
            "owner_id": si.owner_id,
            "claimed_at": si.claimed_at,
            "version": si.version,
            "updated_at": si.updated_at,
            "updated_by": names.get(si.updated_by_id) if si.updated_by_id is not None else None,
        }
        messages = [
            {
                "id": m.id,
                "direction": _plain(m.direction),
                "message_type": m.message_type,
                "status": _plain(m.status),
                "reference": m.reference,
                "related_reference": m.related_reference,
                "sender": m.sender,
                "status_reason": m.status_reason,
                "reason_codes": _message_reasons(m.parsed),
                "file_name": m.file_name,
                "received_at": m.received_at,
            }
            for m in s.scalars(
                select(SettlementMessage)
                .where(SettlementMessage.instruction_id == si.id)
                .order_by(SettlementMessage.received_at, SettlementMessage.id)
            )
        ]
        trades = [
            {
                "id": t.id,
                "trade_ref": t.trade_ref,
                "status": _plain(t.status),
                "side": _plain(t.side),
                "quantity": t.quantity,
                "price": t.price,
                "net_amount": t.net_amount,
                "currency": t.currency,
                "trade_date": t.trade_date,
                "settlement_date": t.settlement_date,
            }
            for t in s.scalars(
                select(Trade)
                .join(InstructionTrade, InstructionTrade.trade_id == Trade.id)
                .where(InstructionTrade.instruction_id == si.id)
                .order_by(Trade.id)
            )
        ]
        securities = [
            {
                "id": m.id,
                "kind": _plain(m.kind),
                "quantity": m.quantity,
                "value_date": m.value_date,
                "account_code": acct.code if acct and m.account_id == acct.id else str(m.account_id),
                "created_at": m.created_at,
            }
            for m in s.scalars(
                select(SecuritiesMovement)
                .where(SecuritiesMovement.instruction_id == si.id)
                .order_by(SecuritiesMovement.id)
            )
        ]
        cash = [
            {
                "id": m.id,
                "kind": _plain(m.kind),
                "amount": m.amount,
                "currency": m.currency,
                "value_date": m.value_date,
                "account_code": acct.code if acct and m.account_id == acct.id else str(m.account_id),
                "created_at": m.created_at,
            }
            for m in s.scalars(
                select(CashMovement).where(CashMovement.instruction_id == si.id).order_by(CashMovement.id)
            )
        ]
        # lifecycle.history also finds this instruction's rows in the batch entries of large message files.
        history = lifecycle.history(s, si.id)
        comments = [
            {"author": names.get(c.author_id, f"#{c.author_id}"), "body": c.body, "created_at": c.created_at}
            for c in s.scalars(
                select(Comment)
                .where(Comment.item_type == "instruction", Comment.item_id == si.id)
                .order_by(Comment.created_at, Comment.id)
            )
        ]
    return InstructionDetail(
        id=instruction_id,
        instruction=instruction,
        messages=messages,
        trades=trades,
        securities_movements=securities,
        cash_movements=cash,
        penalties=penalties,
        history=history,
        comments=comments,
    )


def usernames(db: Database, actor: Actor) -> dict[int, str]:
    """User id -> username, for the Owner column (a handful of users: one small query)."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        return {int(i): str(n) for i, n in s.execute(select(User.id, User.username))}


def assignable(db: Database, actor: Actor) -> list[tuple[int, str, str]]:
    """(id, username, role) of the active clerks and supervisors work may be assigned to."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        rows = s.execute(
            select(User.id, User.username, User.role)
            .where(User.is_active.is_(True), User.role.in_(["clerk", "supervisor"]))
            .order_by(User.username)
        ).all()
    return [(int(i), str(n), str(_plain(r))) for i, n, r in rows]
