"""Vectorised SLA evaluation: every open item of every SLA rated ON_TRACK, AT_RISK or BREACHED, with its deadline.

How one evaluation runs, per active SLA:

1. **Bulk read** the open items as integers only (ids, anchor as epoch days or seconds, instrument, owner, category
   code, amount in units of 1e-4; the amount only when the rule looks at it): SQLite turns dates and timestamps into
   numbers with ``julianday``; PostgreSQL through ADBC sends them binary (date32, microseconds) and numpy takes the
   day numbers and epoch seconds (``EXTRACT(EPOCH ...)`` in SQL only on the DBAPI path). Read columnar through ADBC
   (``columnar.py``: Arrow buffers, binary COPY on PostgreSQL), or where ADBC is unavailable through the session's
   driver (SQLite ``fetchall`` into one ``np.fromiter``, PostgreSQL ``COPY ... TO STDOUT`` into pandas' C CSV
   reader). On SQLite a table whose open rows are a quarter of it or more is read by a plain scan, not through its
   status index (``sqlite_full_scan``). No ORM object, no row loop.
2. **Deadlines** per group of items sharing a market and a band (a handful of groups): business days with the
   market's numpy business-day calendar (``calendars.py``, exchange holidays plus the market's extra closures),
   then the local cut-off turned into UTC once per distinct date with pandas' time-zone database (DST-correct:
   21:00 New York is 01:00 UTC in summer and 02:00 UTC in winter).
3. **States** at ``at``: BREACHED after the deadline, AT_RISK within ``warning_minutes`` of it, else ON_TRACK.
4. With ``record`` (one write transaction; on PostgreSQL only one workstation records at a time, the others just
   evaluate): compare with ``sla_item_states`` (read whole, columnar, with the open rows) and append an ``sla_events`` row **only where the state changed**,
   dated when it really changed (the deadline or the start of the warning window, if that fell since the last
   evaluation). Items closed since the last evaluation (affirmed, fixed, instructed, settled, resolved, decided,
   reported) get their final event, MET if closed by the deadline else BREACHED, and leave ``sla_item_states``.
   The first recorded evaluation of an SLA looks back ``BACKFILL_DAYS`` for closed items so attainment has a history.
   Items whose state did not change but whose deadline or owner did get their stored row rewritten (no event), and
   ``sla_daily_outcomes`` is recomputed for every business date that received a MET or BREACHED event: the monitor
   pane reads both instead of evaluating (``monitor.py``).

Which rows each SLA watches (``SOURCES``), by kind:

- affirmation: trades in REPAIR/VALIDATED/CONFIRMED without ``affirmed_at``; closed by ``affirmed_at``.
- repair: trades in REPAIR; closed when the trade left repair, at its exceptions' latest ``cleared_at``.
- instruction_cutoff: trades VALIDATED/CONFIRMED/AFFIRMED with a settlement date, futures excepted (they clear at
  the CCP); closed by the first ``instructed_at`` of an instruction that settles the trade.
- settlement: instructions PENDING/INSTRUCTED/MATCHED/PARTIALLY_SETTLED/FAILED; closed when SETTLED, met when the
  actual settlement date is on or before the deadline's date.
- break_resolution: breaks OPEN/ASSIGNED/PROPOSED; closed by ``resolved_at`` (RESOLVED or WRITTEN_OFF).
- correction_approval: corrections PENDING; closed by ``decided_at`` (APPROVED or REJECTED; a withdrawn one drops).
- regulatory_report: trades not CANCELLED without a MIFIR row in ``regulatory_reports``; closed by its
  ``reported_at``.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from app.models import SlaDefinition, utcnow
from app.models.enums import ChangeAction, SlaState

from .. import audit, columnar
from ..calendars import get_calendar
from ..capture.bulk import execute_for_ids, insert_rows, timestamps
from ..db import Database
from ..errors import ValidationFailed
from ..permissions import Actor, Permission, require
from .rules import DESK_CALENDAR, DESK_ZONE, ITEM_PANES, SlaInfo, SlaRule, _info

STATES: tuple[SlaState, ...] = (SlaState.ON_TRACK, SlaState.AT_RISK, SlaState.BREACHED, SlaState.MET)
ON_TRACK, AT_RISK, BREACHED, MET = range(4)
STATE_CODE = {s: i for i, s in enumerate(STATES)}
NONE = -1
# More deadline/owner moves than this (and than half the SLA's stored states): sla_due_counts of the SLA is counted
# again in the database instead of netted.
DUE_COUNTS_REBUILD = 20_000
NULL_I = -(2**62)  # integer NULL marker in bulk reads
FETCH_CHUNK = 20_000  # rows per fetch on the DBAPI path of read_ints
BACKFILL_DAYS = 30
DAY_S = 86_400
AMOUNT_SCALE = 10_000  # amounts are read in units of 1e-4 (the Money column's scale)
_PG_LOCK_KEY = 0x51A0E7  # advisory lock: one workstation records an evaluation at a time
DEFAULT_CUTOFF_MIN = 16 * 60  # the desk's cut-off for items of unknown market under a market-cut-off rule

Progress = Callable[[int, int, str], None]
log = logging.getLogger(__name__)


# =====================================================================================================================
# Reading: SQL per source, numbers only
# =====================================================================================================================


def _days(col: str, pg: bool, raw: bool = False) -> str:
    if pg and raw:  # the date itself: binary over ADBC, its day number taken in numpy (_table_ints)
        return col
    if pg:
        return f"COALESCE(({col} - DATE '1970-01-01'), {NULL_I})"
    return f"COALESCE(CAST(julianday({col}) - 2440587.5 AS INTEGER), {NULL_I})"


def _secs(col: str, pg: bool, raw: bool = False) -> str:
    if pg and raw:  # the timestamp itself: binary microseconds over ADBC, rounded to seconds in numpy
        return col
    if pg:
        return f"COALESCE(CAST(EXTRACT(EPOCH FROM {col}) AS BIGINT), {NULL_I})"
    return f"COALESCE(CAST(ROUND((julianday({col}) - 2440587.5) * 86400.0) AS INTEGER), {NULL_I})"


def _ts_literal(moment: dt.datetime, pg: bool) -> str:
    utc = moment.astimezone(dt.UTC).replace(tzinfo=None)
    text_ = utc.isoformat(sep=" ", timespec="microseconds")
    return f"TIMESTAMPTZ '{text_}+00:00'" if pg else f"'{text_}'"


def _amount(col: str) -> str:
    return f"COALESCE(CAST(ROUND(ABS({col}) * {AMOUNT_SCALE}) AS BIGINT), 0)"


def _category_case(col: str, categories: list[str]) -> str:
    if not categories:
        return "-1"
    whens = " ".join(f"WHEN '{c}' THEN {i}" for i, c in enumerate(categories))
    return f"(CASE UPPER({col}) {whens} ELSE -1 END)"


@dataclass(frozen=True)
class Source:
    """How one kind of SLA finds its items: the open rows, and the rows closed within a window."""

    table: str
    alias: str
    open_where: str
    closed_from: str  # FROM ... [JOIN ...] giving the item alias and ``closed_col``
    closed_col: str
    closed_where: str = ""
    instrument_col: str | None = None
    owner_col: str | None = None
    category_col: str | None = None
    amount_col: str | None = None
    closed_day_col: str | None = None  # met = this date on or before the deadline's date
    exclude_futures: bool = False


_TRADES_OPEN = "t.status IN ('REPAIR', 'VALIDATED', 'CONFIRMED') AND t.affirmed_at IS NULL"
SOURCES: dict[str, Source] = {
    "affirmation": Source(
        "trades",
        "t",
        _TRADES_OPEN,
        "trades t",
        "t.affirmed_at",
        instrument_col="t.instrument_id",
        owner_col="t.owner_id",
    ),
    "repair": Source(
        "trades",
        "t",
        "t.status = 'REPAIR'",
        "trades t JOIN (SELECT trade_id, MAX(cleared_at) AS cleared_at FROM trade_exceptions "
        "WHERE cleared_at > {since} AND cleared_at <= {until} GROUP BY trade_id) x ON x.trade_id = t.id",
        "x.cleared_at",
        closed_where="t.status <> 'REPAIR'",
        instrument_col="t.instrument_id",
        owner_col="t.owner_id",
    ),
    "instruction_cutoff": Source(
        "trades",
        "t",
        "t.status IN ('VALIDATED', 'CONFIRMED', 'AFFIRMED') AND t.settlement_date IS NOT NULL",
        "trades t JOIN (SELECT it.trade_id, MIN(si.instructed_at) AS instructed_at FROM instruction_trades it "
        "JOIN settlement_instructions si ON si.id = it.instruction_id "
        "WHERE si.instructed_at > {since} AND si.instructed_at <= {until} GROUP BY it.trade_id) x "
        "ON x.trade_id = t.id",
        "x.instructed_at",
        instrument_col="t.instrument_id",
        owner_col="t.owner_id",
        exclude_futures=True,
    ),
    "settlement": Source(
        "settlement_instructions",
        "i",
        "i.status IN ('PENDING', 'INSTRUCTED', 'MATCHED', 'PARTIALLY_SETTLED', 'FAILED')",
        "settlement_instructions i",
        "i.updated_at",
        closed_where="i.status = 'SETTLED'",
        instrument_col="i.instrument_id",
        owner_col="i.owner_id",
        amount_col="i.settlement_amount",
        closed_day_col="i.actual_settlement_date",
    ),
    "break_resolution": Source(
        "breaks",
        "b",
        "b.status IN ('OPEN', 'ASSIGNED', 'PROPOSED')",
        "breaks b",
        "b.resolved_at",
        closed_where="b.status IN ('RESOLVED', 'WRITTEN_OFF')",
        owner_col="b.owner_id",
        category_col="b.category",
        amount_col="b.amount",
    ),
    "correction_approval": Source(
        "corrections",
        "c",
        "c.status = 'PENDING'",
        "corrections c",
        "c.decided_at",
        closed_where="c.status IN ('APPROVED', 'REJECTED')",
        amount_col="c.amount",
    ),
    "regulatory_report": Source(
        "trades",
        "t",
        "t.status <> 'CANCELLED' AND NOT EXISTS (SELECT 1 FROM regulatory_reports r "
        "WHERE r.trade_id = t.id AND r.regime = 'MIFIR')",
        "trades t JOIN regulatory_reports r ON r.trade_id = t.id AND r.regime = 'MIFIR'",
        "r.reported_at",
        closed_where="t.status <> 'CANCELLED'",
        instrument_col="t.instrument_id",
        owner_col="t.owner_id",
    ),
}
COLUMNS = ("id", "anchor", "instrument", "owner", "category", "amount")


def _needs_amount(rule: SlaRule) -> bool:
    """Whether the rule looks at the amount at all (a filter or a band): otherwise it is not read."""
    return (
        rule.min_amount is not None
        or rule.max_amount is not None
        or any(b.min_amount is not None for b in rule.bands)
    )


def _select_list(src: Source, rule: SlaRule, categories: list[str], pg: bool, raw: bool = False) -> str:
    a = src.alias
    col = f"{a}.{rule.anchor}"
    anchor = _days(col, pg, raw) if rule.anchor_is_date else _secs(col, pg, raw)
    parts = [
        f"{a}.id",
        anchor,
        f"COALESCE({src.instrument_col}, -1)" if src.instrument_col else "-1",
        f"COALESCE({src.owner_col}, -1)" if src.owner_col else "-1",
        _category_case(src.category_col, categories) if src.category_col else "-1",
        _amount(src.amount_col) if src.amount_col and _needs_amount(rule) else "0",
    ]
    return ", ".join(parts)


def open_sql(
    rule: SlaRule, categories: list[str], pg: bool, full_scan: bool = False, raw: bool = False
) -> str:
    """The open rows of one SLA; ``full_scan`` (SQLite) reads the table in order instead of through the status index
    (see :func:`sqlite_full_scan`)."""
    src = SOURCES[rule.kind]
    hint = " NOT INDEXED" if full_scan and not pg else ""
    return (
        f"SELECT {_select_list(src, rule, categories, pg, raw)} FROM {src.table} {src.alias}{hint} "
        f"WHERE {src.open_where}"
    )


# SQLite: going through a status index costs a random b-tree seek per row for every column the index does not cover
# (about four times a row of a plain table scan, measured at 1M rows); once a quarter of the table is open, reading
# the whole table in rowid order is the cheaper plan, which SQLite's planner (without statistics) never picks.
FULL_SCAN_SHARE = 4
FULL_SCAN_MIN_ROWS = 10_000


def sqlite_full_scan(session: Session, table: str, alias: str, where: str) -> bool:
    """Whether at least 1/FULL_SCAN_SHARE of ``table`` matches ``where`` (counted through the index, stopping as soon
    as that many are found; the table's size taken as its highest id)."""
    top = session.execute(text(f"SELECT MAX(id) FROM {table}")).scalar() or 0
    if top < FULL_SCAN_MIN_ROWS:
        return False
    k = top // FULL_SCAN_SHARE
    found = session.execute(
        text(f"SELECT COUNT(*) FROM (SELECT 1 FROM {table} {alias} WHERE {where} LIMIT {k})")
    ).scalar()
    return int(found or 0) >= k


def closed_sql(rule: SlaRule, categories: list[str], since: dt.datetime, until: dt.datetime, pg: bool) -> str:
    src = SOURCES[rule.kind]
    lo, hi = _ts_literal(since, pg), _ts_literal(until, pg)
    frm = src.closed_from.format(since=lo, until=hi)
    conds = [f"{src.closed_col} > {lo}", f"{src.closed_col} <= {hi}"]
    if src.closed_where:
        conds.append(src.closed_where)
    closed_day = _days(src.closed_day_col, pg) if src.closed_day_col else str(NULL_I)
    return (
        f"SELECT {_select_list(src, rule, categories, pg)}, {_secs(src.closed_col, pg)}, {closed_day} "
        f"FROM {frm} WHERE {' AND '.join(conds)}"
    )


def read_ints(
    session: Session,
    sql: str,
    ncols: int,
    reader: columnar.Reader | None = None,
    fallback_sql: str | None = None,
) -> np.ndarray:
    """Run a SELECT of integer columns and return an (n, ncols) int64 array, fast on both backends.

    With an ADBC ``reader`` (committed data only: never for rows the session itself wrote) the columns arrive as
    Arrow int64 buffers; otherwise, or if the driver refuses the query (logged), through the session's connection.
    """
    if reader is not None and reader.via == "adbc":
        try:
            table = reader.arrow(sql)
        except columnar.DRIVER_ERRORS as err:
            log.warning("SLA bulk read through the session's driver instead of ADBC: %s", err)
        else:
            return _table_ints(table, ncols)
    sql = fallback_sql or sql  # a query with raw dates/timestamps (ADBC only) has its all-integer twin
    raw = session.connection().connection.driver_connection
    if session.get_bind().dialect.name == "postgresql":
        buf = io.BytesIO()
        with raw.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
            for chunk in copy:
                buf.write(chunk)
        if buf.tell() == 0:
            return np.zeros((0, ncols), dtype=np.int64)
        buf.seek(0)
        frame = pd.read_csv(buf, header=None, dtype=np.int64, engine="c")
        return frame.to_numpy(dtype=np.int64).reshape(-1, ncols)
    # In chunks: one np.fromiter over a million rows holds the GIL for a third of a second (no bytecode runs in
    # it), freezing the GUI thread while a background task reads; a chunk holds it a few milliseconds.
    cur = raw.execute(sql)
    parts = []
    while rows := cur.fetchmany(FETCH_CHUNK):
        parts.append(
            np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=len(rows) * ncols)
        )
    if not parts:
        return np.zeros((0, ncols), dtype=np.int64)
    return (parts[0] if len(parts) == 1 else np.concatenate(parts)).reshape(-1, ncols)


def _table_ints(table: pa.Table, ncols: int) -> np.ndarray:
    if table.num_columns != ncols:
        raise ValueError(f"expected {ncols} columns, the query gave {table.num_columns}")
    if table.num_rows == 0:
        return np.zeros((0, ncols), dtype=np.int64)
    out = np.empty((table.num_rows, ncols), dtype=np.int64)
    for j, col in enumerate(table.columns):
        arr = col.combine_chunks()
        if pa.types.is_date32(arr.type):  # days since 1970-01-01, as ``date - DATE '1970-01-01'``
            out[:, j] = arr.cast(pa.int32()).cast(pa.int64()).fill_null(NULL_I).to_numpy()
        elif pa.types.is_timestamp(arr.type):
            # epoch seconds as CAST(EXTRACT(EPOCH FROM ts) AS BIGINT): the exact value rounded half away from zero
            us = arr.cast(pa.timestamp("us", arr.type.tz)).cast(pa.int64()).fill_null(0).to_numpy()
            secs = np.where(us >= 0, (us + 500_000) // 1_000_000, -((500_000 - us) // 1_000_000))
            secs[np.asarray(arr.is_null())] = NULL_I
            out[:, j] = secs
        else:  # safe cast: a NULL or a fraction is an error, not a wrong number
            out[:, j] = arr.cast(pa.int64()).to_numpy()
    return out


def read_many(
    session: Session, queries: dict[Any, tuple[Any, ...]], reader: columnar.Reader | None = None
) -> dict[Any, np.ndarray]:
    """Several :func:`read_ints`: ``{key: (sql, ncols[, fallback_sql])}`` -> ``{key: rows}``, one after the other.

    (Running them side by side in the two columnar worker processes was measured at 1M items on the shared 2-core
    machine: no faster, the cores being busy already; so one worker, one read at a time.)
    """
    return {k: read_ints(session, q[0], q[1], reader, *q[2:]) for k, q in queries.items()}


# =====================================================================================================================
# Reference: markets and instruments as small lookup arrays
# =====================================================================================================================


@dataclass
class MarketInfo:
    id: int
    mic: str
    country: str
    zone: str
    cutoff_min: int
    _session: Any = field(default=None, repr=False)
    _calendar: Any = field(default=None, repr=False)

    @property
    def calendar(self) -> Any:
        """The market's business-day calendar, built on first use (building one costs up to a second)."""
        if self._calendar is None:
            self._calendar = get_calendar(self.mic, self._session)
        return self._calendar


@dataclass
class Reference:
    markets: list[MarketInfo]
    instrument_market: np.ndarray  # instrument id -> index into markets (-1 unknown)
    instrument_future: np.ndarray  # instrument id -> True for futures
    calendars: dict[str, Any] = field(default_factory=dict)

    def calendar(self, session: Session, code: str) -> Any:
        if code not in self.calendars:
            self.calendars[code] = get_calendar(code, session)
        return self.calendars[code]


def load_reference(session: Session) -> Reference:
    from app.models import Instrument, Market

    markets: list[MarketInfo] = []
    index: dict[int, int] = {}
    for m in session.execute(
        select(Market.id, Market.mic, Market.country, Market.timezone, Market.instruction_cutoff).order_by(
            Market.id
        )
    ):
        cutoff = m.instruction_cutoff or dt.time(16, 0)
        index[m.id] = len(markets)
        markets.append(
            MarketInfo(
                m.id, m.mic, (m.country or "").upper(), m.timezone, cutoff.hour * 60 + cutoff.minute, session
            )
        )
    rows = session.execute(select(Instrument.id, Instrument.market_id, Instrument.asset_class)).all()
    size = max((r.id for r in rows), default=0) + 1
    inst_market = np.full(size, -1, dtype=np.int64)
    inst_future = np.zeros(size, dtype=bool)
    for r in rows:
        inst_market[r.id] = index.get(r.market_id, -1)
        inst_future[r.id] = getattr(r.asset_class, "value", r.asset_class) == "FUTURE"
    return Reference(markets, inst_market, inst_future)


# =====================================================================================================================
# Deadlines
# =====================================================================================================================


def local_days(secs: np.ndarray, zone: str) -> np.ndarray:
    """The local calendar date (datetime64[D]) of each UTC epoch second in ``zone``."""
    idx = pd.DatetimeIndex(secs.astype("datetime64[s]")).tz_localize("UTC").tz_convert(zone).tz_localize(None)
    return idx.to_numpy().astype("datetime64[D]")


def local_time_to_utc(days: np.ndarray, minutes: int, zone: str) -> np.ndarray:
    """Epoch seconds of ``minutes`` after local midnight in ``zone`` on each date, computed once per distinct date.

    A wall time that does not exist (the spring-forward gap) moves forward to the first valid instant; one that
    happens twice (the autumn fall-back hour) is taken the first time, so a deadline is never later than it reads.
    """
    if days.size == 0:
        return np.zeros(0, dtype=np.int64)
    uniq, inverse = np.unique(days.astype("datetime64[D]"), return_inverse=True)
    whole_days, rest = divmod(minutes, 24 * 60)
    wall = pd.DatetimeIndex(
        (uniq + np.timedelta64(whole_days, "D")).astype("datetime64[s]") + np.timedelta64(rest * 60, "s")
    )
    utc = wall.tz_localize(zone, ambiguous=np.ones(len(wall), dtype=bool), nonexistent="shift_forward")
    secs = utc.tz_convert("UTC").as_unit("s").asi8
    return secs[inverse.reshape(-1)]


@dataclass
class Items:
    """Items of one SLA with their deadlines (parallel arrays)."""

    ids: np.ndarray
    owner: np.ndarray
    due: np.ndarray  # epoch seconds UTC
    day: np.ndarray  # business date of the deadline (datetime64[D])
    closed: np.ndarray | None = None  # epoch seconds (closed items only)
    closed_day: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, mask: np.ndarray) -> Items:
        return Items(
            self.ids[mask],
            self.owner[mask],
            self.due[mask],
            self.day[mask],
            None if self.closed is None else self.closed[mask],
            None if self.closed_day is None else self.closed_day[mask],
        )


def compute_deadlines(
    session: Session, rule: SlaRule, data: np.ndarray, ref: Reference, categories: list[str]
) -> Items:
    """Filter the rows by the rule and compute each one's deadline; ``data`` has COLUMNS (+ closed, closed_day)."""
    ids, anchor, instrument, owner, category, amount = (data[:, i] for i in range(6))
    n = len(ids)
    known = (instrument >= 0) & (instrument < len(ref.instrument_market))
    market = np.full(n, -1, dtype=np.int64)
    market[known] = ref.instrument_market[instrument[known]]
    keep = anchor != NULL_I
    if SOURCES[rule.kind].exclude_futures:
        future = np.zeros(n, dtype=bool)
        future[known] = ref.instrument_future[instrument[known]]
        keep &= ~future
    if rule.markets or rule.countries:
        allowed = np.array(
            [(m.mic in rule.markets) or (m.country in rule.countries) for m in ref.markets] + [False],
            dtype=bool,
        )
        keep &= allowed[market]  # -1 (unknown market) picks the trailing False
    if rule.categories:
        cat_ok = np.isin(category, [categories.index(c) for c in rule.categories])
        keep &= cat_ok
    if rule.min_amount is not None:
        keep &= amount >= int(rule.min_amount * AMOUNT_SCALE)
    if rule.max_amount is not None:
        keep &= amount <= int(rule.max_amount * AMOUNT_SCALE)
    if not keep.all():
        data = data[keep]
        ids, anchor, owner, category, amount, market = (
            ids[keep],
            anchor[keep],
            owner[keep],
            category[keep],
            amount[keep],
            market[keep],
        )
        n = len(ids)

    # Business days per item: the first matching band wins, so apply them last to first.
    bdays = np.full(n, rule.business_days, dtype=np.int64)
    for band in reversed(rule.bands):
        match = np.ones(n, dtype=bool)
        if band.category is not None:
            match &= category == categories.index(band.category)
        if band.min_amount is not None:
            match &= amount >= int(band.min_amount * AMOUNT_SCALE)
        bdays[match] = band.business_days

    due = np.zeros(n, dtype=np.int64)
    day = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    groups = pd.DataFrame({"m": market, "b": bdays}).groupby(["m", "b"], sort=False).indices
    for (m, b), rows in groups.items():
        mk = ref.markets[m] if m >= 0 else None
        zone = rule.zone or (mk.zone if mk else DESK_ZONE)
        a = anchor[rows]
        if rule.elapsed:
            start = local_time_to_utc(a.astype("datetime64[D]"), 0, zone) if rule.anchor_is_date else a
            due[rows] = start + int(round(rule.hours * 3600))  # type: ignore[operator]
            day[rows] = local_days(due[rows], zone)
            continue
        if rule.calendar:
            cal = ref.calendar(session, rule.calendar)
        else:
            cal = mk.calendar if mk else ref.calendar(session, DESK_CALENDAR)
        base = a.astype("datetime64[D]") if rule.anchor_is_date else local_days(a, zone)
        due_day = cal.add_business_days_array(base, int(b))
        minutes = rule.cutoff_minutes()
        if minutes is None:
            minutes = mk.cutoff_min if mk else DEFAULT_CUTOFF_MIN
        due[rows] = local_time_to_utc(due_day, minutes, zone)
        day[rows] = due_day
    closed = data[:, 6] if data.shape[1] > 6 else None
    closed_day = data[:, 7] if data.shape[1] > 7 else None
    return Items(ids, owner, due, day, closed, closed_day)


def states_at(due: np.ndarray, warning_s: int, at_s: int) -> np.ndarray:
    """ON_TRACK / AT_RISK / BREACHED codes of open items at ``at_s`` (a deadline is met up to and including it)."""
    state = np.full(len(due), ON_TRACK, dtype=np.int8)
    if warning_s > 0:
        state[at_s >= due - warning_s] = AT_RISK
    state[at_s > due] = BREACHED
    return state


def final_states(items: Items) -> np.ndarray:
    """MET or BREACHED for closed items: closed by the deadline (settlement: settled on or before its date)."""
    assert items.closed is not None
    met = items.closed <= items.due
    if items.closed_day is not None:
        has_day = items.closed_day != NULL_I
        met = np.where(has_day, items.closed_day <= items.day.astype(np.int64), met)
    return np.where(met, MET, BREACHED).astype(np.int8)


# =====================================================================================================================
# Results
# =====================================================================================================================


@dataclass
class SlaResult:
    sla: SlaInfo
    items: pd.DataFrame  # item_id, state (code), due_s, owner_id (-1 none), business_day
    closed_met: int = 0
    closed_breached: int = 0
    events: int = 0

    @property
    def pane_id(self) -> str:
        return ITEM_PANES[self.sla.item_type]

    def counts(self) -> dict[str, int]:
        codes = (
            np.bincount(self.items["state"].to_numpy(), minlength=4) if len(self.items) else np.zeros(4, int)
        )
        return {STATES[i].value: int(codes[i]) for i in range(3)}

    def ids(self, state: SlaState | str | None = None) -> list[int]:
        """Item ids in a state (None: every open item), most urgent first."""
        ids = self.items["item_id"].to_numpy()
        due = self.items["due_s"].to_numpy()
        if state is not None:
            keep = self.items["state"].to_numpy() == STATE_CODE[SlaState(state)]
            ids, due = ids[keep], due[keep]
        # Ties by item id: the order rows are read in depends on the query plan (index or table scan).
        return ids[np.lexsort((ids, due))].tolist()


@dataclass
class Evaluation:
    at: dt.datetime
    results: list[SlaResult]
    events_written: int = 0
    recorded: bool = False
    seconds: float = 0.0
    read_seconds: float = 0.0

    @property
    def items(self) -> int:
        return sum(len(r.items) for r in self.results)

    def result(self, code: str) -> SlaResult:
        for r in self.results:
            if r.sla.code == code:
                return r
        raise KeyError(code)

    def breached(self, limit: int | None = None) -> pd.DataFrame:
        """Breached open items over every SLA, most overdue first: sla code, name, item type, id, due, overdue."""
        frames = []
        for r in self.results:
            b = r.items[r.items["state"] == BREACHED]
            if len(b):
                frames.append(b.assign(sla_code=r.sla.code, sla_name=r.sla.name, item_type=r.sla.item_type))
        if not frames:
            return pd.DataFrame(
                columns=["sla_code", "sla_name", "item_type", "item_id", "due_s", "owner_id", "overdue_s"]
            )
        out = pd.concat(frames, ignore_index=True)
        out["overdue_s"] = int(self.at.timestamp()) - out["due_s"]
        out = out.sort_values(["due_s", "item_id"], kind="stable")
        return out.head(limit) if limit else out

    def summary(self, *, with_ids: int = 0) -> dict[str, Any]:
        """JSON-able: per SLA the counts by state, and optionally the first ``with_ids`` ids of each state."""
        slas = []
        for r in self.results:
            entry: dict[str, Any] = {
                "code": r.sla.code,
                "name": r.sla.name,
                "item_type": r.sla.item_type,
                "open": len(r.items),
                "counts": r.counts(),
                "closed_met": r.closed_met,
                "closed_breached": r.closed_breached,
                "events": r.events,
            }
            if with_ids:
                entry["ids"] = {s.value: r.ids(s)[:with_ids] for s in STATES[:3]}
            slas.append(entry)
        return {
            "at": self.at,
            "items": self.items,
            "events_written": self.events_written,
            "recorded": self.recorded,
            "seconds": round(self.seconds, 3),
            "slas": slas,
        }


# =====================================================================================================================
# Evaluation
# =====================================================================================================================


def _categories(rule: SlaRule) -> list[str]:
    cats = list(dict.fromkeys([*rule.categories, *(b.category for b in rule.bands if b.category)]))
    return cats


# The four trade SLAs read the trades table once (one scan, the union of their open conditions) and pick their
# rows from it in numpy: a trade watched by three SLAs crosses the driver once, not three times.
TRADE_KINDS = ("affirmation", "repair", "instruction_cutoff", "regulatory_report")
_T_STATUS = {"REPAIR": 0, "VALIDATED": 1, "CONFIRMED": 2, "AFFIRMED": 3}  # anything else: 4 (5 = CANCELLED)
T_ID, T_TD, T_SD, T_CREATED, T_TIME, T_INST, T_OWNER, T_STATUS, T_AFFIRMED, T_REPORTED = range(10)
_T_ANCHOR = {"trade_date": T_TD, "settlement_date": T_SD, "created_at": T_CREATED, "trade_time": T_TIME}


def shared_trades_sql(kinds: set[str], pg: bool, anchors: set[str] | None = None, raw: bool = False) -> str:
    """The one read of trades for the trade SLAs; anchor columns no active rule uses are read as 0 (cheaper)."""
    used = set(_T_ANCHOR) if anchors is None else anchors

    def col(name: str, expr: str) -> str:
        return expr if name in used else "0"

    status = " ".join(f"WHEN '{k}' THEN {v}" for k, v in _T_STATUS.items())
    # Whether a trade is reported: one outer join on the unique (trade_id, regime) index instead of an EXISTS per row
    # in the select list and another in the filter (PostgreSQL ran the select-list EXISTS as a sub-plan per trade;
    # the join it plans as one hash or merge join). Same rows, same flag: at most one MIFIR report per trade.
    reg = "regulatory_report" in kinds
    join = " LEFT JOIN regulatory_reports r ON r.trade_id = t.id AND r.regime = 'MIFIR'" if reg else ""
    reported = "CASE WHEN r.trade_id IS NULL THEN 0 ELSE 1 END" if reg else "1"
    conds = []
    if "affirmation" in kinds:
        conds.append(f"({_TRADES_OPEN})")
    if "repair" in kinds:
        conds.append("(t.status = 'REPAIR')")
    if "instruction_cutoff" in kinds:
        conds.append("(t.status IN ('VALIDATED', 'CONFIRMED', 'AFFIRMED') AND t.settlement_date IS NOT NULL)")
    if reg:  # SOURCES['regulatory_report'].open_where, with the join's row standing for the EXISTS
        conds.append("(t.status <> 'CANCELLED' AND r.trade_id IS NULL)")
    return (
        f"SELECT t.id, {col('trade_date', _days('t.trade_date', pg, raw))}, {_days('t.settlement_date', pg, raw)}, "
        f"{col('created_at', _secs('t.created_at', pg, raw))}, {col('trade_time', _secs('t.trade_time', pg, raw))}, "
        "COALESCE(t.instrument_id, -1), COALESCE(t.owner_id, -1), "
        f"CASE t.status {status} WHEN 'CANCELLED' THEN 5 ELSE 4 END, "
        f"CASE WHEN t.affirmed_at IS NULL THEN 0 ELSE 1 END, {reported} "
        f"FROM trades t{join} WHERE {' OR '.join(conds) or '1 = 0'}"
    )


def _trade_rows(shared: np.ndarray, rule: SlaRule) -> np.ndarray:
    """One trade SLA's open rows out of the shared read, in the COLUMNS layout."""
    st = shared[:, T_STATUS]
    if rule.kind == "affirmation":
        mask = (st <= 2) & (shared[:, T_AFFIRMED] == 0)
    elif rule.kind == "repair":
        mask = st == 0
    elif rule.kind == "instruction_cutoff":
        mask = (st >= 1) & (st <= 3) & (shared[:, T_SD] != NULL_I)
    else:  # regulatory_report
        mask = (st != 5) & (shared[:, T_REPORTED] == 0)
    rows = shared[mask]
    out = np.zeros((len(rows), len(COLUMNS)), dtype=np.int64)
    out[:, 0] = rows[:, T_ID]
    out[:, 1] = rows[:, _T_ANCHOR[rule.anchor]]
    out[:, 2] = rows[:, T_INST]
    out[:, 3] = rows[:, T_OWNER]
    out[:, 4] = -1
    return out


_SHARED = "trades"  # read_many key of the shared trades read
_STORED = "stored"  # read_many key of the stored states


def open_queries(
    session: Session, slas: list[SlaInfo], pg: bool, reader: columnar.Reader | None = None
) -> dict[Any, tuple[str, ...] | tuple[str, int]]:
    """The reads of :func:`read_open` as ``{key: (sql, ncols[, fallback_sql])}``: the shared trades read, then one
    per other SLA.

    PostgreSQL through ADBC reads dates and timestamps as they are (binary date32 / microseconds, turned into day
    numbers and epoch seconds in numpy) rather than computing ``EXTRACT(EPOCH ...)`` on every row, measured the
    cheaper of the two; each such query carries its all-integer twin for the DBAPI path.
    """
    raw = pg and reader is not None and reader.via == "adbc"
    kinds = {i.rule.kind for i in slas if i.rule.kind in TRADE_KINDS}
    anchors = {i.rule.anchor for i in slas if i.rule.kind in TRADE_KINDS}
    queries: dict[Any, Any] = {}
    if kinds:
        sql = shared_trades_sql(kinds, pg, anchors)
        queries[_SHARED] = (shared_trades_sql(kinds, pg, anchors, raw=True), 10, sql) if raw else (sql, 10)
    scans: dict[str, bool] = {}
    for info in slas:
        if info.rule.kind in TRADE_KINDS:
            continue
        src = SOURCES[info.rule.kind]
        if not pg and src.table not in scans:
            scans[src.table] = sqlite_full_scan(session, src.table, src.alias, src.open_where)
        cats = _categories(info.rule)
        sql = open_sql(info.rule, cats, pg, scans.get(src.table, False))
        n = len(COLUMNS)
        queries[info.id] = (open_sql(info.rule, cats, pg, raw=True), n, sql) if raw else (sql, n)
    return queries


def split_open(slas: list[SlaInfo], rows: dict[Any, np.ndarray]) -> dict[int, np.ndarray]:
    """Each SLA's open rows (COLUMNS layout) out of what :func:`open_queries` read."""
    out = {}
    for info in slas:
        out[info.id] = (
            _trade_rows(rows[_SHARED], info.rule) if info.rule.kind in TRADE_KINDS else rows[info.id]
        )
    return out


def read_open(
    session: Session, slas: list[SlaInfo], pg: bool, reader: columnar.Reader | None = None
) -> dict[int, np.ndarray]:
    """The open rows of every SLA (COLUMNS layout), with the trades table read once: the whole bulk read."""
    return split_open(slas, read_many(session, open_queries(session, slas, pg, reader), reader))


STORED_COLUMNS = 4  # sla_id, item_id, state code, deadline and owner packed (see stored_states_sql)
# The stored deadline and owner travel as one integer, due_s * OWNER_SPAN + owner + 1 (owner -1: none): a column
# less to read for every stored state (user ids stay far below OWNER_SPAN; deadlines are positive epoch seconds).
OWNER_SPAN = 1 << 24


def stored_states_sql(sla_ids: list[int] | None) -> str:
    """Stored states as integers (sla_id, item_id, state code, owner, due epoch seconds); ``None``: the whole
    table, read in one scan. The owner and the deadline are read so that a change of either (an item claimed, a
    rule edited, a date amended) is written too: the monitor reads them from the table. The deadline as the
    integer ``due_s`` (parsing ``due_at`` per row would cost more than the rest of the read)."""
    where = f" WHERE sla_id IN ({', '.join(str(int(i)) for i in sla_ids)})" if sla_ids is not None else ""
    return (
        "SELECT sla_id, item_id, CASE state WHEN 'ON_TRACK' THEN 0 WHEN 'AT_RISK' THEN 1 WHEN 'BREACHED' THEN 2 "
        f"ELSE 3 END, COALESCE(due_s * {OWNER_SPAN} + COALESCE(owner_id, -1) + 1, {NULL_I}) "
        f"FROM sla_item_states{where}"
    )


@dataclass
class Stored:
    """One SLA's stored states, sorted by item id (parallel arrays)."""

    ids: np.ndarray
    state: np.ndarray
    owner: np.ndarray
    due: np.ndarray


def split_stored(slas: list[SlaInfo], rows: np.ndarray) -> dict[int, Stored]:
    """Per SLA id, its stored states sorted by item id."""
    # One int64 key (SLA id above the item id's 40 bits) sorts faster than a lexsort of two; rows that come in
    # order already (rowid order after a first recording) are not sorted again.
    key = (rows[:, 0] << 40) | rows[:, 1]
    if len(key) > 1 and not bool(np.all(key[1:] >= key[:-1])):
        rows = rows[np.argsort(key, kind="stable")]
    ids = np.array([i.id for i in slas], dtype=np.int64)
    lo = np.searchsorted(rows[:, 0], ids, side="left")
    hi = np.searchsorted(rows[:, 0], ids, side="right")
    packed = rows[:, 3]
    due, owner = packed // OWNER_SPAN, packed % OWNER_SPAN - 1  # NULL_I decodes to a deadline no item has
    return {
        int(k): Stored(rows[a:b, 1], rows[a:b, 2], owner[a:b], due[a:b])
        for k, a, b in zip(ids, lo, hi, strict=True)
    }


def _evaluate_one(
    session: Session,
    info: SlaInfo,
    data: np.ndarray,
    ref: Reference,
    at: dt.datetime,
    since: dt.datetime | None,
    pg: bool,
    reader: columnar.Reader | None = None,
) -> tuple[Items, Items | None]:
    rule = info.rule
    cats = _categories(rule)
    items = compute_deadlines(session, rule, data, ref, cats)
    closed = None
    if since is not None and since < at:
        cdata = read_ints(session, closed_sql(rule, cats, since, at, pg), len(COLUMNS) + 2, reader)
        closed = compute_deadlines(session, rule, cdata, ref, cats)
    return items, closed


def evaluate_all(
    db: Database,
    actor: Actor,
    *,
    at: dt.datetime | None = None,
    record: bool = True,
    codes: list[str] | None = None,
    progress: Progress | None = None,
) -> Evaluation:
    """Evaluate every active SLA (or those in ``codes``) at ``at`` (default now).

    With ``record`` the state changes are written as ``sla_events`` (only changed items, in bulk) and the current
    states kept in ``sla_item_states``; recording is SLA bookkeeping, not a business change, so any signed-in role
    may trigger it and it is not audited entry by entry (the change feed is told once, as a BULK change of
    ``sla_events``). On PostgreSQL, if another workstation is recording right now this call evaluates without
    recording rather than wait.
    """
    require(actor, Permission.VIEW)
    started = time.perf_counter()
    at = at or utcnow()
    if at.tzinfo is None:
        raise ValidationFailed("The evaluation time needs a time zone (e.g. 2026-11-20T21:00-05:00).")
    at = at.astimezone(dt.UTC)
    at_s = int(at.timestamp())
    unit = db.write() if record else db.read()
    # The bulk reads of source tables go columnar on a connection of their own (this transaction writes only SLA
    # bookkeeping, which is read back through the session itself).
    with unit as s, columnar.reader(db) as reader:
        pg = s.get_bind().dialect.name == "postgresql"
        recording = record
        if record and pg:
            recording = bool(
                s.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY}).scalar()
            )
        q = select(SlaDefinition).where(SlaDefinition.is_active.is_(True)).order_by(SlaDefinition.id)
        if codes:
            q = q.where(SlaDefinition.code.in_(codes))
        slas = [_info(r) for r in s.scalars(q)]
        ref = load_reference(s)
        results: list[SlaResult] = []
        total_events = 0
        t0 = time.perf_counter()
        queries = open_queries(s, slas, pg, reader)
        if recording:
            # Every stored state is read up front with the open rows, columnar: nothing of sla_item_states has been
            # written by this transaction yet, and no one else writes it meanwhile (SQLite: this transaction holds
            # the write lock; PostgreSQL: the advisory lock), so the committed rows are the session's rows. All
            # active SLAs: one scan of the table, not a seek per row through its key.
            queries[_STORED] = (stored_states_sql([i.id for i in slas] if codes else None), STORED_COLUMNS)
        rows = read_many(s, queries, reader)
        stored_all = split_stored(slas, rows.pop(_STORED)) if recording else {}
        open_rows = split_open(slas, rows)
        del rows
        read_s = time.perf_counter() - t0
        for n, info in enumerate(slas):
            if progress:
                progress(n, len(slas), info.name)
            since = None
            if recording:
                since = info.last_evaluated_at or (at - dt.timedelta(days=BACKFILL_DAYS))
            items, closed = _evaluate_one(s, info, open_rows.pop(info.id), ref, at, since, pg, reader)
            warning_s = info.warning_minutes * 60
            state = states_at(items.due, warning_s, at_s)
            result = SlaResult(
                info,
                pd.DataFrame(
                    {
                        "item_id": items.ids,
                        "state": state,
                        "due_s": items.due,
                        "owner_id": items.owner,
                        "business_day": items.day,
                    }
                ),
            )
            if closed is not None and len(closed):
                fin = final_states(closed)
                result.closed_met = int((fin == MET).sum())
                result.closed_breached = int((fin == BREACHED).sum())
            if recording:
                result.events = _record(
                    s, info, items, state, closed, at, since, warning_s, stored_all[info.id]
                )
                total_events += result.events
            results.append(result)
        if recording:
            ids = [i.id for i in slas]
            if ids:
                s.execute(
                    update(SlaDefinition)
                    .where(SlaDefinition.id.in_(ids))
                    .where(
                        (SlaDefinition.last_evaluated_at.is_(None)) | (SlaDefinition.last_evaluated_at < at)
                    )
                    .values(last_evaluated_at=at)
                    .execution_options(synchronize_session=False)
                )
            if total_events:
                audit.publish(
                    s,
                    actor,
                    "sla_events",
                    None,
                    ChangeAction.BULK,
                    {"action": "sla.evaluate", "events": total_events},
                )
    return Evaluation(
        at=at,
        results=results,
        events_written=total_events,
        recorded=recording,
        seconds=time.perf_counter() - started,
        read_seconds=read_s,
    )


def evaluate_if_stale(
    db: Database, actor: Actor, *, max_age: dt.timedelta = dt.timedelta(minutes=1)
) -> Evaluation | None:
    """Record an evaluation only if the last one is older than ``max_age`` (or there was none): what every
    workstation's alert watcher calls, so the history stays current without each one re-evaluating on each poll."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        oldest = (
            s.execute(select(SlaDefinition.last_evaluated_at).where(SlaDefinition.is_active.is_(True)))
            .scalars()
            .all()
        )
    if not oldest:
        return None
    now = utcnow()
    if all(t is not None and now - t < max_age for t in oldest):
        return None
    return evaluate_all(db, actor, at=now, record=True)


def _record(
    s: Session,
    info: SlaInfo,
    items: Items,
    state: np.ndarray,
    closed: Items | None,
    at: dt.datetime,
    since: dt.datetime | None,
    warning_s: int,
    stored: Stored,
) -> int:
    """Write the state changes of one SLA (events + current states); returns the number of events.

    ``stored``: the SLA's stored states as read before this transaction wrote any."""
    at_s = int(at.timestamp())
    lo_s = int(since.timestamp()) if since is not None else -(2**62)
    stored_ids, stored_state = stored.ids, stored.state

    def lookup(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = np.searchsorted(stored_ids, ids)
        pos_c = np.minimum(pos, max(len(stored_ids) - 1, 0))
        found = (
            (pos < len(stored_ids)) & (stored_ids[pos_c] == ids)
            if len(stored_ids)
            else np.zeros(len(ids), bool)
        )
        return found, pos_c

    def previous(ids: np.ndarray) -> np.ndarray:
        found, pos_c = lookup(ids)
        out = np.full(len(ids), NONE, dtype=np.int64)
        out[found] = stored_state[pos_c[found]]
        return out

    # Open items whose state differs from the stored one (or that are new).
    prev = previous(items.ids)
    changed = prev != state
    # Same state, but a new deadline or owner (a rule edited, a date amended, an item claimed): the stored row is
    # brought up to date without an event (the history is of states), keeping when the state began.
    found, pos_c = lookup(items.ids)
    moved = (
        found & ~changed & ((stored.due[pos_c] != items.due) | (stored.owner[pos_c] != items.owner))
        if len(stored_ids)
        else np.zeros(len(items.ids), bool)
    )
    # When the change really happened: the deadline (BREACHED) or the start of the warning window (AT_RISK), if
    # that fell since the last evaluation; otherwise now.
    threshold = np.where(
        state == BREACHED, items.due, np.where(state == AT_RISK, items.due - warning_s, at_s)
    )
    when = np.clip(threshold, lo_s, at_s)
    ev_ids = [items.ids[changed]]
    ev_state = [state[changed]]
    ev_due = [items.due[changed]]
    ev_day = [items.day[changed]]
    ev_owner = [items.owner[changed]]
    ev_when = [when[changed]]

    gone: list[np.ndarray] = []
    if closed is not None and len(closed):
        fin = final_states(closed)
        cprev = previous(closed.ids)
        cchanged = cprev != fin
        # A MET happened when the item closed; a late close stays BREACHED (an event only if never recorded).
        cwhen = np.clip(
            np.where(fin == MET, closed.closed, np.maximum(closed.due, closed.closed)), lo_s, at_s
        )
        ev_ids.append(closed.ids[cchanged])
        ev_state.append(fin[cchanged])
        ev_due.append(closed.due[cchanged])
        ev_day.append(closed.day[cchanged])
        ev_owner.append(closed.owner[cchanged])
        ev_when.append(cwhen[cchanged])
        gone.append(closed.ids)
    # Stored items that are neither open nor closed in the window left the SLA's scope (cancelled, withdrawn,
    # deleted, or closed before a gap in evaluation): forget them without an event.
    if len(stored_ids):
        still = np.isin(stored_ids, items.ids, assume_unique=False)
        gone.append(stored_ids[~still])

    ids = np.concatenate(ev_ids)
    n_events = len(ids)
    if n_events:
        st = np.concatenate(ev_state)
        due = np.concatenate(ev_due)
        day = np.concatenate(ev_day)
        owner = np.concatenate(ev_owner)
        whn = np.concatenate(ev_when)
        state_names = np.array([x.value for x in STATES], dtype=object)[st]
        owner_col = np.where(owner < 0, None, owner.astype(object))
        insert_rows(
            s,
            "sla_events",
            ("sla_id", "item_type", "item_id", "state", "due_at", "occurred_at", "business_date", "owner_id"),
            [
                [int(info.id)] * n_events,
                [info.item_type] * n_events,
                ids.tolist(),
                state_names.tolist(),
                timestamps(due.astype("datetime64[s]"), s),
                timestamps(whn.astype("datetime64[s]"), s),
                _day_strings(day),
                owner_col.tolist(),
            ],
        )
        outcome = (st == MET) | (st == BREACHED)
        _refresh_outcomes(s, info.id, day[outcome])
    # Current states: drop what closed or left, then upsert the changed open items.
    drop = (
        np.unique(np.concatenate(gone)) if gone else np.zeros(0, dtype=np.int64)
    )  # a closed item is also gone
    drop = drop[np.isin(drop, stored_ids)] if len(drop) else drop
    if len(drop):
        execute_for_ids(
            s,
            f"DELETE FROM sla_item_states WHERE sla_id = {int(info.id)} AND item_id IN {{ids}}",
            drop.tolist(),
        )
    up = changed
    if up.any():
        was = prev[up] != NONE
        _upsert_states(s, info.id, items, state, when, up, was)
    if moved.any():
        _move_states(s, info.id, items, moved)
    # sla_due_counts moves by exactly the stored rows rewritten (out with the old deadline and owner, in with the
    # new) and dropped here.
    # (A new state with the same deadline and owner moves nothing: those rows are left out before netting.)
    rewritten = changed | moved
    if len(stored_ids):
        same = found & (stored.due[pos_c] == items.due) & (stored.owner[pos_c] == items.owner)
        rewritten &= ~same
    old = found & rewritten
    _, drop_pos = lookup(drop)
    _move_due_counts(
        s,
        info.id,
        plus=(items.due[rewritten], items.owner[rewritten]),
        minus=(
            np.concatenate([stored.due[pos_c[old]], stored.due[drop_pos]]),
            np.concatenate([stored.owner[pos_c[old]], stored.owner[drop_pos]]),
        ),
        rows_before=len(stored_ids),
    )
    return n_events


def _move_due_counts(
    s: Session,
    sla_id: int,
    *,
    plus: tuple[np.ndarray, np.ndarray],
    minus: tuple[np.ndarray, np.ndarray],
    rows_before: int,
) -> None:
    """Add one item per (due, owner) in ``plus`` and take one per pair in ``minus`` from ``sla_due_counts``.

    A few changes (every minute's evaluation) are applied as upserts of the net change per key; many, compared with
    the ``rows_before`` stored states (the first recording, a rule edit), by counting the SLA's stored states
    again in the database, set-based."""
    n = len(plus[0]) + len(minus[0])
    if n == 0:
        return
    sla = int(sla_id)
    if n > DUE_COUNTS_REBUILD and n > rows_before // 2:
        s.execute(text(f"DELETE FROM sla_due_counts WHERE sla_id = {sla}"))
        s.execute(
            text(
                "INSERT INTO sla_due_counts (sla_id, due_s, owner_key, items) "
                f"SELECT sla_id, due_s, COALESCE(owner_id, -1), COUNT(*) FROM sla_item_states WHERE sla_id = {sla} "
                "GROUP BY sla_id, due_s, COALESCE(owner_id, -1)"
            )
        )
        return
    due = np.concatenate([plus[0], minus[0]])
    owner = np.concatenate([plus[1], minus[1]])
    delta = np.concatenate([np.ones(len(plus[0]), np.int64), np.full(len(minus[0]), -1, np.int64)])
    net = (
        pd.DataFrame({"due": due, "owner": owner, "n": delta})
        .groupby(["due", "owner"], sort=False)["n"]
        .sum()
    )
    net = net[net != 0]
    if net.empty:
        return
    s.execute(
        text(
            "INSERT INTO sla_due_counts (sla_id, due_s, owner_key, items) VALUES (:sla, :due, :owner, :n) "
            "ON CONFLICT (sla_id, due_s, owner_key) DO UPDATE SET items = sla_due_counts.items + excluded.items"
        ),
        [
            {"sla": sla, "due": int(d), "owner": int(o), "n": int(k)}
            for (d, o), k in zip(net.index.tolist(), net.to_numpy().tolist(), strict=True)
        ],
    )
    s.execute(text(f"DELETE FROM sla_due_counts WHERE sla_id = {sla} AND items <= 0"))


def _move_states(s: Session, sla_id: int, items: Items, mask: np.ndarray) -> None:
    """New deadline or owner for items whose state is unchanged (rare: one statement per row is fine here)."""
    ids = items.ids[mask].tolist()
    due = timestamps(items.due[mask].astype("datetime64[s]"), s)
    owner = np.where(items.owner[mask] < 0, None, items.owner[mask].astype(object)).tolist()
    s.execute(
        text(
            "UPDATE sla_item_states SET due_at = :due, due_s = :due_s, owner_id = :owner "
            "WHERE sla_id = :sla AND item_id = :item"
        ),
        [
            {"due": d, "due_s": int(ds), "owner": o, "sla": int(sla_id), "item": int(i)}
            for d, ds, o, i in zip(due, items.due[mask].tolist(), owner, ids, strict=True)
        ],
    )


def _refresh_outcomes(s: Session, sla_id: int, days: np.ndarray) -> None:
    """Recompute ``sla_daily_outcomes`` for the business dates this evaluation wrote outcomes on (the events of
    this transaction included): the same distinct-item counts :func:`kpis.outcomes` takes over the events."""
    names = [d for d in _day_strings(np.unique(days)) if d is not None]
    for start in range(0, len(names), 500):
        chunk = ", ".join(f"'{d}'" for d in names[start : start + 500])
        where = f"sla_id = {int(sla_id)} AND business_date IN ({chunk})"
        s.execute(text(f"DELETE FROM sla_daily_outcomes WHERE {where}"))
        s.execute(
            text(
                "INSERT INTO sla_daily_outcomes (sla_id, business_date, met, breached) "
                "SELECT sla_id, business_date, "
                "COUNT(DISTINCT CASE WHEN state = 'MET' THEN item_id END), "
                "COUNT(DISTINCT CASE WHEN state = 'BREACHED' THEN item_id END) "
                f"FROM sla_events WHERE {where} AND state IN ('MET', 'BREACHED') "
                "GROUP BY sla_id, business_date"
            )
        )


def _day_strings(day: np.ndarray) -> list[str | None]:
    uniq, inverse = np.unique(day, return_inverse=True)
    names = [None if np.isnat(x) else str(x) for x in uniq]
    return [names[i] for i in inverse.reshape(-1).tolist()]


def _upsert_states(
    s: Session,
    sla_id: int,
    items: Items,
    state: np.ndarray,
    when: np.ndarray,
    mask: np.ndarray,
    was: np.ndarray,
) -> None:
    ids = items.ids[mask]
    st = np.array([x.value for x in STATES], dtype=object)[state[mask]]
    due = timestamps(items.due[mask].astype("datetime64[s]"), s)
    since = timestamps(when[mask].astype("datetime64[s]"), s)
    owner = np.where(items.owner[mask] < 0, None, items.owner[mask].astype(object))
    # Changed rows that exist are deleted, then every changed row is inserted: two set-based statements (one
    # DELETE for all the ids, one bulk INSERT / COPY), never an UPDATE per row.
    old = ids[was]
    if len(old):
        execute_for_ids(
            s,
            f"DELETE FROM sla_item_states WHERE sla_id = {int(sla_id)} AND item_id IN {{ids}}",
            old.tolist(),
        )
    insert_rows(
        s,
        "sla_item_states",
        ("sla_id", "item_id", "state", "due_at", "due_s", "since", "owner_id"),
        [
            [sla_id] * len(ids),
            ids.tolist(),
            st.tolist(),
            due,
            items.due[mask].tolist(),
            since,
            owner.tolist(),
        ],
    )


# =====================================================================================================================
# Demo
# =====================================================================================================================


def seed_demo(db: Database, actor: Actor, *, at: dt.datetime | None = None) -> Evaluation:
    """Default SLAs, filed transaction reports for the demo trades (most on time, a few late, today's pending),
    and one recorded evaluation, so the SLA monitor is not empty on the demo book."""
    from .rules import ensure_default_slas, seed_reports

    ensure_default_slas(db, actor)
    seed_reports(db, actor, at=at)
    return evaluate_all(db, actor, at=at, record=True)
