"""The demo book: a realistic, deterministic back-office day built into a fresh database in one transaction.

``build_demo`` creates the demo users (through ``auth.create_user``, argon2-hashed), then generates and bulk-loads:
markets with their CSDs and calendars, a few hundred instruments (real listed securities under their real ISINs and
markets, the rest synthetic with valid check digits), ~50 counterparties with valid LEIs and BICs, 31 accounts, SSIs
for both sides in every market, N trades over the last ten business days of each market in every lifecycle state,
their front-office versions and repair exceptions, settlement instructions, securities and cash movements, the
positions and balances those movements add up to, and external statements (counterparty confirmations, custodian
holdings, bank cash statements) that disagree with the book in realistic, recorded ways.

Determinism: the same ``seed`` and ``today`` give the same book, row for row (one numpy Generator drives every
draw, and every timestamp derives from ``today``, never from the clock). Only the generated passwords are random.

Amounts follow the enrichment rules of trade capture (``capture.enrichment.amounts``: gross, commission schedule,
SEC fee, UK stamp duty, net), so a demo trade repaired and re-enriched keeps its amounts; repair reason codes are
capture's (``capture.validation.REASONS``).

Speed: nothing is an ORM object per row. Columns are numpy arrays (money in integer units of 1e-4, the Money
column's scale; prices in units of 1e-8; timestamps in microseconds), rendered chunk by chunk into exact text, and loaded with
``executemany`` of the Core ``insert(table)`` statement on SQLite and ``COPY ... FROM STDIN`` (psycopg
``write_row``) on PostgreSQL. Rows are generated with their final ids, so foreign keys need no round trips.

The invariants later code relies on (checked by tests/test_demo.py):

- positions: ``traded_quantity`` = sum of the account/instrument's movements of every kind except SETTLED, and
  ``settled_quantity`` = sum of every kind except TRADED. A trade books one TRADED movement on trade date and,
  when it settles, one SETTLED movement on the actual settlement date; DEPOSIT/WITHDRAWAL/TRANSFER move both.
- cash balances: the same rule for ``traded_amount`` and ``settled_amount`` over cash movements.
- futures are cleared by Eurex (no CSD instruction): positions in contracts; their cash movements are the
  commission and fees only (variation margin is not modelled).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from app.models import Base, Trade, User
from app.models.enums import (
    AssetClass,
    ChangeAction,
    InstructionStatus,
    InstructionType,
    KycStatus,
    Liquidity,
    MovementKind,
    Side,
    StatementKind,
    TradeAction,
    TradeStatus,
)

from . import audit, auth, trade_search
from . import demo_data as dd
from .calendars import CALENDAR_END, CALENDAR_START, BusinessCalendar, get_calendar
from .capture.enrichment import amounts as enrichment_amounts
from .capture.units import MONEY_SCALE, display
from .capture.validation import ASSET_WORDS, TOLERANCE_PCT
from .db import Database
from .errors import ValidationFailed
from .identifiers import make_cusip, make_isin, make_lei, validate_isin
from .permissions import Actor, Permission, require

Progress = Callable[[int, int, str], None]

MAX_TRADES = 5_000_000
WINDOW_DAYS = 10
CHUNK = 50_000
# Tables loaded with at least this many rows get their secondary indexes rebuilt after the load.
BULK_INDEX_THRESHOLD = 20_000

NAT = np.iinfo(np.int64).min  # numpy's NaT; also the NULL marker of integer columns here
SEC = 1_000_000
MINUTE = 60 * SEC
HOUR = 60 * MINUTE
DAY = 24 * HOUR
PRICE_SCALE = 8  # prices are integers of 1e-8, the scale of the Price column

STATUSES = tuple(TradeStatus)
ST = {s: i for i, s in enumerate(STATUSES)}
STATUS_NAMES = np.array([s.value for s in STATUSES], dtype=object)
EQ, ETF, GOVT, CORP, FUT = range(5)
ASSET_CLASSES = (
    AssetClass.EQUITY,
    AssetClass.ETF,
    AssetClass.GOVT_BOND,
    AssetClass.CORP_BOND,
    AssetClass.FUTURE,
)
CCY = {c: i for i, c in enumerate(dd.CURRENCIES)}
# One minor unit of each currency in money units (1e-4): a cent, or a whole yen.
MINOR_STEP = np.array(
    [10_000 if c in dd.WHOLE_UNIT_CURRENCIES else 100 for c in dd.CURRENCIES], dtype=np.int64
)
UNIT = 10**MONEY_SCALE  # one unit of a currency in money units
# Rough USD value of one unit of each currency, only to size tickets realistically.
CCY_USD = np.array([1.0, 1.08, 1.27, 1.13, 0.0067])

# Status mix (the issue: most SETTLED / INSTRUCTED, every state present). Settlement date already passed:
PAST_MIX = {
    TradeStatus.SETTLED: 0.83,
    TradeStatus.FAILED: 0.06,
    TradeStatus.PARTIALLY_SETTLED: 0.025,
    TradeStatus.CANCELLED: 0.03,
    TradeStatus.REPAIR: 0.02,
    TradeStatus.AFFIRMED: 0.015,  # never instructed: will show as a missed cut-off
    TradeStatus.CONFIRMED: 0.01,
    TradeStatus.VALIDATED: 0.01,
}
# Settlement date today or later:
PENDING_MIX = {
    TradeStatus.INSTRUCTED: 0.62,
    TradeStatus.AFFIRMED: 0.12,
    TradeStatus.CONFIRMED: 0.09,
    TradeStatus.VALIDATED: 0.07,
    TradeStatus.REPAIR: 0.06,
    TradeStatus.CANCELLED: 0.04,
}
# Futures clear through the CCP on trade date: no instruction, so no INSTRUCTED/FAILED/PARTIAL.
FUTURES_MIX = {
    TradeStatus.SETTLED: 0.90,
    TradeStatus.REPAIR: 0.03,
    TradeStatus.CANCELLED: 0.03,
    TradeStatus.CONFIRMED: 0.02,
    TradeStatus.VALIDATED: 0.02,
}
# How far each status got: 0 repair, 1 allocated, 2 confirmed, 3 affirmed, 4 instructed, 5 settlement outcome.
STAGE = np.array(
    [
        {
            TradeStatus.REPAIR: 0,
            TradeStatus.VALIDATED: 1,
            TradeStatus.CONFIRMED: 2,
            TradeStatus.AFFIRMED: 3,
            TradeStatus.INSTRUCTED: 4,
            TradeStatus.SETTLED: 5,
            TradeStatus.PARTIALLY_SETTLED: 5,
            TradeStatus.FAILED: 5,
            TradeStatus.CANCELLED: 1,
        }[s]
        for s in STATUSES
    ]
)
REPAIR_MIX = {
    "ISIN_CHECK": 0.2,
    "ISIN_UNKNOWN": 0.1,
    "CPTY_UNKNOWN": 0.15,
    "PRICE_TOLERANCE": 0.3,
    "SSI_MISSING": 0.25,
}
REPAIR_CODES = tuple(dd.REPAIR_CODES)
FAIL_MIX = {"LACK": 0.4, "MONY": 0.2, "CMIS": 0.2, "DDAT": 0.08, "DQUA": 0.06, "DMON": 0.06}
UNMATCHED_MIX = {"CMIS": 0.6, "DDAT": 0.15, "DQUA": 0.1, "DMON": 0.1, "DEPT": 0.05}
REASONS = tuple(dd.REASON_TEXTS)

# Tables the demo writes; any row in them means the database is not fresh.
BOOK_TABLES = (
    "markets",
    "instruments",
    "counterparties",
    "accounts",
    "ssis",
    "trades",
    "settlement_instructions",
    "securities_movements",
    "cash_movements",
    "positions",
    "cash_balances",
    "statements",
)


# =====================================================================================================================
# Public API
# =====================================================================================================================


@dataclass
class DemoUser:
    username: str
    role: str
    full_name: str
    password: str | None  # None when the user already existed (its password was left alone)
    created: bool


@dataclass
class DemoSummary:
    """What ``build_demo`` built: rows per table, trades per status, the users and the injected differences.

    ``differences`` is the generator's answer for the reconciliation work that follows: one row per difference
    between an external statement and the book (columns ``source`` TRADE_CONFIRMATIONS / HOLDINGS / CASH,
    ``difference`` QUANTITY / PRICE / SETTLEMENT_DATE / AMOUNT / MISSING / EXTRA / BOOK_ERROR, ``statement_ref``,
    ``line_no`` (None for a missing line), ``trade_ref``, ``account``, ``isin``, ``currency``, ``field``, ``book``,
    ``external``). BOOK_ERROR rows are trades in repair whose front-office ISIN or price is wrong while the
    counterparty confirms the right one. Lines carrying an injected difference also say so in ``extra``.
    """

    seed: int
    today: dt.date
    trades: int
    counts: dict[str, int]
    statuses: dict[str, int]
    users: list[DemoUser]
    differences: pd.DataFrame
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary for the CLI: counts, statuses, users with passwords, differences by kind."""
        by_kind: dict[str, dict[str, int]] = {}
        for (source, difference), n in self.differences.groupby(["source", "difference"]).size().items():
            by_kind.setdefault(str(source), {})[str(difference)] = int(n)
        users = [
            {
                "username": u.username,
                "role": u.role,
                "full_name": u.full_name,
                "password": u.password,
                "created": u.created,
            }
            for u in self.users
        ]
        return {
            "seed": self.seed,
            "today": self.today.isoformat(),
            "trades": self.trades,
            "counts": dict(self.counts),
            "statuses": dict(self.statuses),
            "users": users,
            "differences": by_kind,
            "build_seconds": round(self.seconds, 2),
        }

    def login_lines(self) -> list[str]:
        """One line per demo user, for the CLI to print."""
        lines = []
        for u in self.users:
            pw = u.password if u.password is not None else "(existing user, password unchanged)"
            lines.append(f"{u.username:<12} {u.role:<11} {pw}")
        return lines


def has_trades(db: Database) -> bool:
    """True when the database already holds trades (``opsdesk demo --if-empty`` then does nothing)."""
    with db.read() as s:
        return s.scalar(select(Trade.id).limit(1)) is not None


def build_demo(
    db: Database,
    actor: Actor,
    *,
    trades: int,
    seed: int,
    password: str | None = None,
    today: dt.date | None = None,
    progress: Progress | None = None,
) -> DemoSummary:
    """Build the demo book into a fresh database (refused when it already has trades or reference data).

    ``password`` sets every demo user's password (scripts, README); without it each user gets a random one,
    returned in the summary. The book itself is one transaction with one ``demo.build`` audit entry; the users are
    created first, each in its own unit of work, by ``auth.create_user`` (an existing user is kept as it is).
    """
    started = time.perf_counter()
    require(actor, Permission.BUILD_DEMO)
    if trades < 0 or trades > MAX_TRADES:
        raise ValidationFailed(f"The demo book takes 0 to {MAX_TRADES:,} trades (asked for {trades:,}).")
    today = today or dt.date.today()
    lo, hi = CALENDAR_START + dt.timedelta(days=60), CALENDAR_END - dt.timedelta(days=60)
    if not lo <= today <= hi:
        raise ValidationFailed(f"The demo book's date must be between {lo} and {hi} (the calendars' range).")
    if password is not None:
        auth._check_password_rules(password)
    report = _Reporter(progress)

    with db.read() as s:
        _refuse_if_not_fresh(s, db)
    # The users are created while the book is generated: argon2 hashing releases the GIL and needs no numpy, so
    # the two overlap (each create_user is its own short unit of work; generation touches no database).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-users") as pool:
        users_done = pool.submit(_create_users, db, actor, password)
        report.stage(0, "Generating the book")
        book = generate_book(trades=trades, seed=seed, today=today, progress=progress)
        report.stage(30, "Creating the demo users")
        users = users_done.result()

    report.stage(35, "Writing the book")
    with db.write() as s:
        # Checked again under the write lock: another workstation may have loaded something meanwhile.
        _refuse_if_not_fresh(s, db)
        counts = _load(s, book, db.is_postgres, report)
        report.stage(97, "Recording the audit entry")
        # One audit entry for the whole build. Entity types are table names (services.audit): the entry and its
        # change-feed row name ``trades``; every other table loaded gets its own BULK feed row so open panes reload.
        audit.record(
            s,
            actor,
            "demo.build",
            "trades",
            None,
            after={
                "seed": seed,
                "today": today,
                "trades": trades,
                "counts": counts,
                "statuses": book.statuses,
            },
            change=ChangeAction.BULK,
            summary={"action": "demo.build", "counts": counts},
        )
        for table, n in counts.items():
            if n and table != "trades":
                audit.publish(s, actor, table, None, ChangeAction.BULK, {"action": "demo.build", "rows": n})
    report.stage(100, "Demo book ready")
    return DemoSummary(
        seed=seed,
        today=today,
        trades=trades,
        counts=counts,
        statuses=book.statuses,
        users=users,
        differences=book.differences,
        seconds=time.perf_counter() - started,
    )


# =====================================================================================================================
# Database side: freshness check, users, bulk writer
# =====================================================================================================================


class _Reporter:
    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.last = (-1, "")

    def stage(self, percent: int, textual: str) -> None:
        if self.progress is not None and (percent, textual) != self.last:
            self.last = (percent, textual)
            self.progress(min(percent, 100), 100, textual)


def _load(s: Session, book: Book, pg: bool, report: _Reporter) -> dict[str, int]:
    """Write every frame of the book in ``s``'s transaction; returns rows per table.

    The big tables' secondary indexes (the blotter has one per sortable column) are dropped for the load and
    rebuilt afterwards from the database's own definitions, in the same transaction: building an index from
    sorted data is several times cheaper than maintaining it row by row, and the schema ends up exactly as the
    migrations made it. On PostgreSQL their foreign keys are dropped and re-added the same way (the recipe of
    PostgreSQL's "Populating a Database"): per-row trigger checks cost more than the COPY itself. The tables are
    empty (the database is fresh), so nobody else is using them; a failure rolls all of it back.
    """
    total = max(sum(f.n for f in book.frames), 1)
    if pg:
        # Timestamps are rendered as UTC wall-clock text; make PostgreSQL read them as UTC.
        s.execute(text("SET LOCAL TIME ZONE 'UTC'"))
        s.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
    else:
        # Index pages of a million-row load do not fit SQLite's default 2 MB page cache: give this connection
        # 256 MB for the load (its sorter also uses that much before spilling to temporary files when it rebuilds
        # the indexes), and give it back after (the setting belongs to the pooled connection).
        s.execute(text("PRAGMA cache_size = -262144"))
    try:
        big = [table for table, n in book.counts().items() if n >= BULK_INDEX_THRESHOLD]
        foreign_keys = _drop_foreign_keys(s, big) if pg else []
        dropped = _drop_secondary_indexes(s, big, pg)
        done = 0
        # SQLite: the trades' text index (migration 0011) filled in one statement after the load, not by a trigger
        # per row.
        with trade_search.bulk_inserts(s):
            for frame in book.frames:
                for n in _write_frame(s, frame, pg):
                    done += n
                    report.stage(35 + int(55 * done / total), f"Writing {frame.table}")
                frame.cols.clear()  # release what only this frame held before the next one renders
        report.stage(90, "Building indexes")
        for ddl in dropped:
            s.connection().exec_driver_sql(
                ddl
            )  # the database's own DDL, verbatim (no bind-parameter parsing)
        if foreign_keys:
            report.stage(93, "Checking foreign keys")
        for table, name, definition in foreign_keys:
            # Re-adding validates every row in one join: the same guarantee as the per-row checks it replaces.
            s.connection().exec_driver_sql(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
        if pg:
            report.stage(95, "Updating planner statistics")
            _after_bulk_load_pg(s, book)
    finally:
        if not pg:
            s.execute(text("PRAGMA cache_size = -2000"))
    return book.counts()


def _drop_foreign_keys(s: Session, tables: list[str]) -> list[tuple[str, str, str]]:
    """PostgreSQL: drop the foreign keys of ``tables`` (except those to users: all NULL here, cheap to check, and
    dropping them would lock the users table against log-ins); return (table, name, definition) to re-add."""
    rows = s.execute(
        text(
            "SELECT t.relname, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "WHERE c.contype = 'f' AND n.nspname = current_schema() AND t.relname = ANY(:tables) "
            "AND r.relname <> 'users' ORDER BY t.relname, c.conname"
        ),
        {"tables": tables},
    ).all()
    for table, name, _ in rows:
        s.execute(text(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"'))
    return [tuple(r) for r in rows]


def _drop_secondary_indexes(s: Session, tables: list[str], pg: bool) -> list[str]:
    """Drop the plain indexes of ``tables`` (not primary keys, not those backing constraints); return their DDL."""
    ddl: list[str] = []
    for table in tables:
        if pg:
            rows = s.execute(
                text(
                    "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
                    "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
                    "JOIN pg_namespace n ON n.oid = t.relnamespace "
                    "WHERE t.relname = :t AND n.nspname = current_schema() AND NOT x.indisprimary "
                    "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) "
                    "ORDER BY i.relname"
                ),
                {"t": table},
            ).all()
        else:
            # Indexes SQLite made for UNIQUE/PRIMARY KEY constraints have no SQL and stay.
            rows = s.execute(
                text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t "
                    "AND sql IS NOT NULL ORDER BY name"
                ),
                {"t": table},
            ).all()
        for name, definition in rows:
            s.execute(text(f'DROP INDEX "{name}"'))
            ddl.append(definition)
    return ddl


def _refuse_if_not_fresh(s: Session, db: Database) -> None:
    found = []
    for name in BOOK_TABLES:
        table = Base.metadata.tables[name]
        n = s.scalar(select(func.count()).select_from(table))
        if n:
            found.append(f"{n:,} {name.replace('_', ' ')}")
    if found:
        raise ValidationFailed(
            f"The demo book is built into a fresh database, but {db.description} already has "
            f"{', '.join(found)}. The audit log is append-only, so nothing is replaced: point OpsDesk at a new "
            "database (for example --db sqlite:///opsdesk-demo.sqlite) and build the demo there."
        )


def _create_users(db: Database, actor: Actor, password: str | None) -> list[DemoUser]:
    with db.read() as s:
        existing = set(s.scalars(select(User.username)).all())
    out = []
    for username, role, full_name, tz in dd.DEMO_USERS:
        if username in existing:
            out.append(DemoUser(username, role.value, full_name, None, False))
            continue
        # Random per-user passwords unless the caller fixed one; never derived from the seed.
        pw = password if password is not None else secrets.token_urlsafe(12)
        auth.create_user(db, actor, username, role, pw, full_name=full_name, timezone=tz)
        out.append(DemoUser(username, role.value, full_name, pw, True))
    return out


class Frame:
    """Columns for one table, rendered chunk by chunk into rows the drivers load without per-value conversion.

    Column kinds: ``int`` (int64; NAT is NULL), ``ref`` (id; 0 is NULL), ``text`` (list/object array; None is
    NULL), ``day`` (datetime64[D]; NaT is NULL), ``ts`` (int64 microseconds UTC; NAT is NULL), ``money`` (int64
    units of 1e-4, NAT is NULL), ``price`` (int64 units of 1e-8), ``bool``, ``const`` (one value for every row), ``lazy``
    (a function of (start, stop) giving a list).
    """

    def __init__(self, table: str, n: int, small: bool = False) -> None:
        self.table = table
        self.n = int(n)
        self.small = small  # few rows with Python objects: inserted through Core with its type processing
        self.cols: dict[str, tuple[str, Any]] = {}

    def add(self, name: str, kind: str, values: Any) -> Frame:
        if kind not in ("const", "lazy") and len(values) != self.n:
            raise ValueError(f"{self.table}.{name}: {len(values)} values for {self.n} rows")
        self.cols[name] = (kind, values)
        return self

    def check(self) -> None:
        table = Base.metadata.tables[self.table]
        names = {c.name for c in table.columns}
        unknown = set(self.cols) - names
        missing = [
            c.name
            for c in table.columns
            if not c.nullable and c.server_default is None and c.name not in self.cols and not c.primary_key
        ]
        if unknown or missing:
            raise RuntimeError(f"demo frame {self.table}: unknown columns {unknown}, missing {missing}")

    def rows(self, start: int, stop: int) -> Iterator[tuple[Any, ...]]:
        return zip(*(_render(kind, values, start, stop) for kind, values in self.cols.values()), strict=True)

    def dicts(self) -> list[dict[str, Any]]:
        return [
            dict(zip(self.cols, row, strict=True))
            for row in zip(*(v for _, v in self.cols.values()), strict=True)
        ]


def _render(kind: str, values: Any, a: int, b: int) -> list[Any]:
    if kind == "const":
        return [values] * (b - a)
    if kind == "lazy":
        return values(a, b)
    v = values[a:b]
    if kind == "text":
        return list(v)
    if kind == "bool":
        return v.tolist()
    if kind == "ref":
        return [x or None for x in v.tolist()]
    if kind == "int":
        return _nullify(v.tolist(), v == NAT)
    if kind == "money":
        return _nullify(_fixed_decimal(v, MONEY_SCALE), v == NAT)
    if kind == "price":
        return _nullify(_fixed_decimal(v, PRICE_SCALE), v == NAT)
    if kind == "day":
        return _day_text(v)
    if kind == "ts":
        return _nullify(_ts_text(v), v == NAT)
    raise ValueError(kind)


def _nullify(out: list[Any], null: np.ndarray) -> list[Any]:
    if null.any():
        for i in np.flatnonzero(null).tolist():
            out[i] = None
    return out


def _digits(out: np.ndarray, col: int, width: int, value: np.ndarray) -> None:
    """Write ``value`` as zero-padded ASCII digits into columns [col, col+width) of a uint8 matrix."""
    v = value.copy()
    for k in range(width - 1, -1, -1):
        out[:, col + k] = 48 + v % 10
        v //= 10


def _fixed_decimal(v: np.ndarray, scale: int, int_digits: int = 16) -> list[str]:
    """Exact decimal text of integers scaled by 10**-scale, fixed width ('-000012.34'): both backends parse it.

    Rendering digit columns with numpy is ~5x faster than formatting a million Python strings one by one.
    """
    a = np.abs(np.where(v == NAT, 0, v))
    width = 1 + int_digits + 1 + scale
    out = np.empty((len(v), width), dtype=np.uint8)
    out[:, 0] = np.where(v < 0, ord("-"), ord("0"))
    whole, frac = np.divmod(a, 10**scale)
    _digits(out, 1, int_digits, whole)
    out[:, 1 + int_digits] = ord(".")
    _digits(out, 2 + int_digits, scale, frac)
    return out.view(f"S{width}").ravel().astype(f"U{width}").tolist()


def _ts_text(us: np.ndarray) -> list[str]:
    """'YYYY-MM-DD HH:MM:SS.ffffff' for UTC microseconds: SQLAlchemy's SQLite storage format, and valid PG input."""
    safe = np.where(us == NAT, 0, us)
    days = safe // DAY
    rem = safe - days * DAY
    d = days.astype("datetime64[D]")
    y = d.astype("datetime64[Y]")
    m = d.astype("datetime64[M]")
    out = np.empty((len(us), 26), dtype=np.uint8)
    _digits(out, 0, 4, y.astype(np.int64) + 1970)
    out[:, 4] = ord("-")
    _digits(out, 5, 2, (m - y.astype("datetime64[M]")).astype(np.int64) + 1)
    out[:, 7] = ord("-")
    _digits(out, 8, 2, (d - m.astype("datetime64[D]")).astype(np.int64) + 1)
    out[:, 10] = ord(" ")
    _digits(out, 11, 2, rem // HOUR)
    out[:, 13] = ord(":")
    _digits(out, 14, 2, rem % HOUR // MINUTE)
    out[:, 16] = ord(":")
    _digits(out, 17, 2, rem % MINUTE // SEC)
    out[:, 19] = ord(".")
    _digits(out, 20, 6, rem % SEC)
    return out.view("S26").ravel().astype("U26").tolist()


def _day_text(days: np.ndarray) -> list[str | None]:
    # A book spans a few dozen distinct dates: format each once and share the strings.
    uniq, inverse = np.unique(days, return_inverse=True)
    names = [None if np.isnat(x) else str(x) for x in uniq]
    return [names[i] for i in inverse.tolist()]


def _write_frame(s: Session, frame: Frame, pg: bool) -> Iterator[int]:
    """Load one frame; yields the number of rows written after each chunk (for progress)."""
    frame.check()
    table = Base.metadata.tables[frame.table]
    if frame.n == 0:
        return
    if frame.small:
        s.execute(insert(table), frame.dicts())
        yield frame.n
        return
    cols = list(frame.cols)
    raw = s.connection().connection.driver_connection
    if pg:
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as copy:
            for rows in _rendered(frame):
                for row in rows:
                    copy.write_row(row)
                yield len(rows)
    else:
        # The Core statement names the columns; the driver's executemany skips per-value bind processing,
        # which the rendered text makes unnecessary.
        sql = str(insert(table).compile(dialect=s.get_bind().dialect, column_keys=cols))
        for rows in _rendered(frame):
            raw.executemany(sql, rows)
            yield len(rows)


def _rendered(frame: Frame) -> Iterator[list[tuple[Any, ...]]]:
    """The frame's rows, chunk by chunk (rendering a chunk ahead on a thread was measured slower: the GIL)."""
    for a in range(0, frame.n, CHUNK):
        yield list(frame.rows(a, min(a + CHUNK, frame.n)))


def _after_bulk_load_pg(s: Session, book: Book) -> None:
    # Ids were given explicitly, so move each table's sequence past them; then refresh planner statistics so
    # the first blotter page uses the indexes (ANALYZE samples a fixed number of rows: cheap at any size).
    for table, n in book.counts().items():
        if n and "id" in Base.metadata.tables[table].columns:
            s.execute(
                text(f"SELECT setval(pg_get_serial_sequence(:t, 'id'), (SELECT max(id) FROM {table}))"),
                {"t": table},
            )
    for table, n in book.counts().items():
        if n >= 10_000:
            s.execute(text(f"ANALYZE {table}"))


# =====================================================================================================================
# Generation
# =====================================================================================================================


@dataclass
class Book:
    """The generated book, ready to load: frames in foreign-key order, plus the generator's answers."""

    seed: int
    today: dt.date
    frames: list[Frame]
    statuses: dict[str, int]
    differences: pd.DataFrame

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.frames:
            out[f.table] = out.get(f.table, 0) + f.n
        return out


def generate_book(*, trades: int, seed: int, today: dt.date, progress: Progress | None = None) -> Book:
    """Generate the whole book in memory (no database). Same arguments, same book.

    ``progress`` hears of the stages as percentages 0-30 (build_demo's scale: generation is its first 30 %).
    """
    report = _Reporter(progress)
    rng = np.random.default_rng(seed)
    as_of = dt.datetime.combine(today, dt.time(6, 0), dt.UTC)  # the book is as of 06:00 UTC on ``today``
    ref = _Reference(rng, today, as_of)
    report.stage(3, "Generating trades")
    t = _Trades(rng, ref, trades, today, as_of)
    report.stage(12, "Generating settlement")
    st = _Settlement(rng, ref, t)
    report.stage(20, "Generating external statements")
    stmts = _Statements(rng, ref, t, st, seed)
    frames = [
        *ref.frames(),
        t.trade_frame(ref),
        t.version_frame(ref),
        t.exception_frame(ref),
        st.instruction_frame(ref, t),
        st.link_frame(t),
        st.securities_frame(),
        st.cash_frame(),
        st.position_frame(ref),
        st.balance_frame(ref),
        stmts.statement_frame(),
        *stmts.line_frames(),
    ]
    statuses = {
        s.value: int(n) for s, n in zip(STATUSES, np.bincount(t.status, minlength=len(STATUSES)), strict=True)
    }
    return Book(seed=seed, today=today, frames=frames, statuses=statuses, differences=stmts.differences)


# --- small helpers -----------------------------------------------------------------------------------------------------

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
SEDOL_LETTERS = "BCDFGHJKLMNPQRSTVWXYZ"  # SEDOLs use no vowels


def _rand(rng: np.random.Generator, alphabet: str, k: int) -> str:
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), k))


def _sedol(body6: str) -> str:
    """A 7-character SEDOL (UK national code) with its weighted check digit."""
    total = sum(ALNUM.index(c) * w for c, w in zip(body6, (1, 3, 1, 7, 3, 9), strict=True))
    return body6 + str((10 - total % 10) % 10)


def _iban(country: str, bban: str) -> str:
    """An IBAN with ISO 13616 check digits (mod 97 over the BBAN, the country and '00')."""
    digits = "".join(str(ALNUM.index(c)) for c in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def _price_parts(price: str) -> tuple[int, int]:
    """('229.50') -> (2, 22950): decimal places and the integer in units of 10**-dp."""
    whole, _, frac = price.partition(".")
    return len(frac), int(whole + frac)


def _us(moment: dt.datetime) -> int:
    return int((moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1))


def _day_us(days: np.ndarray) -> np.ndarray:
    """Midnight UTC of each date in microseconds (NaT stays NAT)."""
    return days.astype("datetime64[us]").astype(np.int64)


def _draw(rng: np.random.Generator, mix: dict[Any, float], size: int) -> np.ndarray:
    """Indices into ``list(mix)`` drawn with the mix's probabilities."""
    p = np.array(list(mix.values()), dtype=float)
    return rng.choice(len(p), size=size, p=p / p.sum())


def _pick(rng: np.random.Generator, available: np.ndarray, k: int) -> np.ndarray:
    """k distinct indices where ``available`` is True (fewer if there are not enough), sorted; they are then marked
    unavailable, so successive picks never overlap (each line gets at most one injected difference)."""
    candidates = np.flatnonzero(available)
    k = min(k, len(candidates))
    if not k:
        return candidates[:0]
    chosen = np.sort(rng.choice(candidates, size=k, replace=False))
    available[chosen] = False
    return chosen


def _same(value: Any, n: int) -> np.ndarray:
    """An object array of n references to one value (np.full would make a string object per element)."""
    out = np.empty(n, dtype=object)
    out.fill(value)
    return out


def _choose(cond: np.ndarray, yes: Any, no: Any) -> np.ndarray:
    """np.where for two constant labels, as shared references rather than a new string per element."""
    return np.array([no, yes], dtype=object)[cond.astype(np.intp)]


def _share(n: int, fraction: float) -> int:
    """At least one, so every kind of difference exists even in a small book."""
    return max(1, round(n * fraction))


def _plain(fixed: str) -> str:
    """Fixed-width decimal text without its leading zeros ('0000012.50' -> '12.50', '00000.71' -> '0.71')."""
    text_ = fixed.lstrip("0")
    return "0" + text_ if text_.startswith(".") or not text_ else text_


# --- reference data ---------------------------------------------------------------------------------------------------


@dataclass
class _EnrichmentView:
    """The part of capture's RefData that ``capture.enrichment.amounts`` reads (its ``instruments`` frame), built
    from the generated instruments before they are in any database."""

    instruments: pd.DataFrame


class _Reference:
    """Markets, instruments, counterparties, accounts and SSIs, as DB rows and as numpy lookup arrays."""

    def __init__(self, rng: np.random.Generator, today: dt.date, as_of: dt.datetime) -> None:
        self.today = today
        self.as_of = as_of
        self.created = as_of - dt.timedelta(days=400)
        self.markets = dd.MARKETS
        self.mkt_index = {m.mic: i for i, m in enumerate(self.markets)}
        self._fedwire()
        self.cals: list[BusinessCalendar] = [
            get_calendar(m.calendar_code, extra_closures=self.extra_closures.get(m.mic, ()))
            for m in self.markets
        ]
        self._instruments(rng)
        self._counterparties(rng)
        self._accounts(rng)
        self._ssis(rng)

    # markets ---------------------------------------------------------------------------------------------------------

    def _fedwire(self) -> None:
        """Fedwire Securities closes on Columbus Day and Veterans Day, when the NYSE is open."""
        days: list[tuple[dt.date, str]] = []
        for year in range(self.today.year - 1, self.today.year + 2):
            oct1 = dt.date(year, 10, 1)
            columbus = oct1 + dt.timedelta(days=(7 - oct1.weekday()) % 7 + 7)  # second Monday of October
            days.append((columbus, "Columbus Day (Fedwire closed)"))
            veterans = dt.date(year, 11, 11)
            if veterans.weekday() == 6:  # Sunday: observed on Monday; on a Saturday the Fed stays open Friday
                days.append((veterans + dt.timedelta(days=1), "Veterans Day observed (Fedwire closed)"))
            elif veterans.weekday() < 5:
                days.append((veterans, "Veterans Day (Fedwire closed)"))
        base = get_calendar("XNYS")
        self.holidays = [
            (d, name) for d, name in days if CALENDAR_START <= d <= CALENDAR_END and base.is_business_day(d)
        ]
        self.extra_closures = {"XOFF": tuple(d for d, _ in self.holidays)}

    # instruments -----------------------------------------------------------------------------------------------------

    def _instruments(self, rng: np.random.Generator) -> None:
        specs: list[dict[str, Any]] = []
        used: set[str] = set()

        def add(**kw: Any) -> None:
            used.add(kw["isin"])
            specs.append(kw)

        def fresh(make: Callable[[], str]) -> str:
            while True:
                isin = make()
                if isin not in used:
                    return isin

        horizon = self.today + dt.timedelta(days=30)
        for sec in dd.REAL_SECURITIES:
            if sec.maturity is not None and sec.maturity <= horizon:
                continue
            add(
                isin=sec.isin,
                name=sec.name,
                ticker=sec.ticker,
                ac=ASSET_CLASSES.index(sec.asset_class),
                ccy=sec.currency,
                mic=sec.mic,
                price=sec.price,
                real=True,
                weight=6.0 if sec.asset_class in (AssetClass.EQUITY, AssetClass.ETF) else 2.0,
            )
        names: set[str] = set()

        def company(suffixes: tuple[str, ...]) -> str:
            while True:
                head = dd.NAME_HEADS[rng.integers(len(dd.NAME_HEADS))]
                tail = dd.NAME_TAILS[rng.integers(len(dd.NAME_TAILS))]
                name = f"{head} {tail} {suffixes[rng.integers(len(suffixes))]}"
                if name not in names:
                    names.add(name)
                    return name

        median_price = {"USD": 80, "EUR": 60, "GBP": 12, "CHF": 90, "JPY": 2500}
        for mic, (count, suffixes) in dd.SYNTHETIC_EQUITIES.items():
            m = self.markets[self.mkt_index[mic]]
            for _ in range(count):
                isin = fresh(lambda m=m: self._equity_isin(rng, m.country))
                price = float(np.exp(rng.normal(np.log(median_price[m.currency]), 0.8)))
                name = company(suffixes)
                add(
                    isin=isin,
                    name=name,
                    ticker=(name[:3] + name.split()[1][:1]).upper(),
                    ac=EQ,
                    ccy=m.currency,
                    mic=mic,
                    price=self._price_text(price, m.currency),
                    real=False,
                    weight=float(rng.lognormal(0, 0.8)),
                    liquidity=Liquidity.ILLIQUID_SHARE if rng.random() < 0.2 else Liquidity.LIQUID_SHARE,
                )
        for mic, count in dd.SYNTHETIC_ETFS.items():
            m = self.markets[self.mkt_index[mic]]
            for _ in range(count):
                us = m.country == "US"
                isin = fresh(lambda us=us: self._etf_isin(rng, us))
                index = dd.ETF_INDICES[rng.integers(len(dd.ETF_INDICES))]
                sponsor = dd.ETF_SPONSORS[rng.integers(len(dd.ETF_SPONSORS))]
                name = f"{sponsor} {index} {'ETF' if us else 'UCITS ETF'}"
                if name in names:
                    continue
                names.add(name)
                price = float(np.exp(rng.normal(np.log(median_price[m.currency]), 0.5)))
                add(
                    isin=isin,
                    name=name,
                    ticker=_rand(rng, "ABCDEFGHIJKLMNOPRSTUVWXYZ", 4),
                    ac=ETF,
                    ccy=m.currency,
                    mic=mic,
                    price=self._price_text(price, m.currency),
                    real=False,
                    weight=float(rng.lognormal(0, 0.6)),
                )
        self._synthetic_bonds(rng, add, fresh)
        self._futures(rng, add, fresh)

        n = len(specs)
        self.n_inst = n
        self.inst_isin = np.array([s["isin"] for s in specs], dtype=object)
        # The same ISIN with its check digit changed: what a typing error in the front office looks like.
        self.inst_bad_isin = np.array(
            [s["isin"][:-1] + str((int(s["isin"][-1]) + 1 + i % 8) % 10) for i, s in enumerate(specs)],
            dtype=object,
        )
        self.inst_mkt = np.array([self.mkt_index[s["mic"]] for s in specs])
        self.inst_ac = np.array([s["ac"] for s in specs])
        self.inst_ccy = np.array([CCY[s["ccy"]] for s in specs])
        parts = [_price_parts(s["price"]) for s in specs]
        self.inst_pdp = np.array([p[0] for p in parts], dtype=np.int64)
        self.inst_ref = np.array([p[1] for p in parts], dtype=np.int64)
        self.inst_tick = np.array([s.get("tick", 1) for s in specs], dtype=np.int64)
        self.inst_cs = np.array([s.get("contract_size", 1) for s in specs], dtype=np.int64)
        self.inst_bond = np.isin(self.inst_ac, (GOVT, CORP))
        self.inst_lot = np.where(
            self.inst_mkt == self.mkt_index["XTKS"], 100, np.where(self.inst_bond, 1000, 1)
        ).astype(np.int64)
        self.inst_country = np.array([s["isin"][:2] for s in specs], dtype=object)
        self.inst_real = np.array([s["real"] for s in specs])
        cycles = [self._cycles(s["ac"], self.markets[self.mkt_index[s["mic"]]]) for s in specs]
        self.inst_cyc_old = np.array([c[0] for c in cycles], dtype=np.int64)
        self.inst_cyc_new = np.array([c[1] for c in cycles], dtype=np.int64)
        self.inst_switch = np.array([c[2] for c in cycles], dtype="datetime64[D]")
        weights = np.array([s["weight"] for s in specs], dtype=float)
        # Flow by asset class: mostly equities, then ETFs, government bonds, futures, corporate bonds.
        class_share = np.array([0.68, 0.10, 0.09, 0.06, 0.07])
        for ac in range(5):
            sel = self.inst_ac == ac
            weights[sel] = weights[sel] / weights[sel].sum() * class_share[ac]
        self.inst_weight = weights / weights.sum()
        liquidity = []
        for s in specs:
            if s.get("liquidity") is not None:
                liquidity.append(s["liquidity"])
            else:
                liquidity.append(
                    {
                        EQ: Liquidity.LIQUID_SHARE,
                        # CSDR puts ETFs under "other financial instruments", 0.5 bp/day: the illiquid-share rate.
                        ETF: Liquidity.ILLIQUID_SHARE,
                        GOVT: Liquidity.SOVEREIGN_DEBT,
                        CORP: Liquidity.OTHER_DEBT,
                        FUT: Liquidity.NOT_APPLICABLE,
                    }[s["ac"]]
                )
        self.inst_specs = specs
        self.inst_liquidity = liquidity
        self.ccy_names = np.array(dd.CURRENCIES, dtype=object)
        # What trade capture's enrichment reads of the instrument master, for computing the demo's amounts.
        self.enrichment = _EnrichmentView(
            pd.DataFrame(
                {
                    "asset_class": [ASSET_CLASSES[s["ac"]].value for s in specs],
                    "country": [self.markets[self.mkt_index[s["mic"]]].country for s in specs],
                    "contract_u": self.inst_cs * 10**6,
                    "settlement_cycle": self.inst_cyc_new,
                }
            )
        )

    @staticmethod
    def _price_text(price: float, currency: str) -> str:
        # Reference prices are generated as floats and fixed here to the market's tick as exact text.
        if currency == "JPY":
            return str(max(1, round(price)))
        if currency == "GBP":
            return f"{max(price, 0.05):.3f}"
        return f"{max(price, 1.0):.2f}"

    @staticmethod
    def _equity_isin(rng: np.random.Generator, country: str) -> str:
        if country == "US":
            return make_isin(
                "US", make_cusip(_rand(rng, DIGITS, 3) + _rand(rng, "ABCDEFGHJKLMNPRSTUVWXYZ", 3) + "10")
            )
        if country == "DE":
            return make_isin("DE", "000A" + _rand(rng, ALNUM, 5))
        if country == "NL":
            return make_isin("NL", "00" + _rand(rng, DIGITS, 7))
        if country == "FR":
            return make_isin("FR", "0000" + _rand(rng, DIGITS, 5))
        if country == "GB":
            return make_isin("GB", "00" + _sedol("B" + _rand(rng, SEDOL_LETTERS + DIGITS, 5)))
        if country == "CH":
            return make_isin("CH", "00" + _rand(rng, DIGITS, 7))
        if country == "JP":
            return make_isin("JP", "3" + _rand(rng, DIGITS, 4) + "0000")
        raise ValueError(country)

    @staticmethod
    def _etf_isin(rng: np.random.Generator, us: bool) -> str:
        if us:
            return make_isin(
                "US", make_cusip(_rand(rng, DIGITS, 5) + _rand(rng, "ABCDEFGHJKLMNPRSTUVWXYZ", 1) + "10")
            )
        return make_isin("IE", "00" + _sedol("B" + _rand(rng, SEDOL_LETTERS + DIGITS, 5)))

    def _bond_price(self, rng: np.random.Generator, coupon: float, years: float) -> float:
        # A rough yield curve around 3.5 %: price moves with (coupon - yield) times duration.
        return 100 + (coupon - 3.5) * min(years, 18) * 0.85 + rng.normal(0, 0.3)

    def _synthetic_bonds(
        self, rng: np.random.Generator, add: Callable[..., None], fresh: Callable[[Callable[[], str]], str]
    ) -> None:
        today = self.today

        def maturity(months: tuple[int, ...], day: int, years_lo: int, years_hi: int) -> dt.date:
            year = today.year + int(rng.integers(years_lo, years_hi + 1))
            return dt.date(year, months[rng.integers(len(months))], day)

        def coupon_text(c: float) -> str:
            return f"{c:.3f}".rstrip("0").rstrip(".") + "%"

        # US Treasuries: OTC, Fedwire, T+1, quoted in 32nds (ticks of 0.03125 = 3125 at 5 decimal places).
        for _ in range(10):
            mat = maturity((2, 5, 8, 11), 15, 1, 29)
            years = (mat - today).days / 365.25
            c = float(rng.integers(4, 41)) / 8
            kind = "Note" if years <= 10 else "Bond"
            isin = fresh(lambda: make_isin("US", make_cusip("91282C" + _rand(rng, ALNUM, 2))))
            p32 = round(self._bond_price(rng, c, years) * 32)
            add(
                isin=isin,
                name=f"United States Treasury {kind} {coupon_text(c)} {mat:%d/%m/%Y}",
                ticker=f"T {c:g} {mat:%m/%y}",
                ac=GOVT,
                ccy="USD",
                mic="XOFF",
                price=f"{p32 * 3125 // 100000}.{p32 * 3125 % 100000:05d}",
                tick=3125,
                real=False,
                weight=1.5,
            )
        govies = (
            (
                "FR",
                "Republique Francaise (OAT)",
                "XPAR",
                "EUR",
                (5, 11),
                25,
                lambda: "001400" + _rand(rng, ALNUM, 3),
                4,
            ),
            (
                "NL",
                "Kingdom of the Netherlands (DSL)",
                "XAMS",
                "EUR",
                (1, 7),
                15,
                lambda: "0015" + _rand(rng, DIGITS, 5),
                3,
            ),
            (
                "GB",
                "United Kingdom Gilt",
                "XLON",
                "GBP",
                (1, 7),
                31,
                lambda: "00" + _sedol("B" + _rand(rng, SEDOL_LETTERS + DIGITS, 5)),
                3,
            ),
        )
        for country, issuer, mic, ccy, months, day, nsin, count in govies:
            for _ in range(count):
                mat = maturity(months, day, 2, 25)
                years = (mat - today).days / 365.25
                c = float(rng.integers(2, 33)) / 8
                add(
                    isin=fresh(lambda country=country, nsin=nsin: make_isin(country, nsin())),
                    name=f"{issuer} {coupon_text(c)} {mat:%d/%m/%Y}",
                    ticker=None,
                    ac=GOVT,
                    ccy=ccy,
                    mic=mic,
                    price=f"{self._bond_price(rng, c, years):.3f}",
                    real=False,
                    weight=1.0,
                )
        for issuer in dd.BOND_ISSUERS:
            for _ in range(1 + int(rng.integers(0, 2))):
                mat = maturity((3, 6, 9, 12), 1 + int(rng.integers(0, 28)), 2, 10)
                c = float(rng.integers(8, 49)) / 8
                add(
                    isin=fresh(lambda: make_isin("XS", "2" + _rand(rng, DIGITS, 8))),
                    name=f"{issuer} {coupon_text(c)} {mat:%d/%m/%Y}",
                    ticker=None,
                    ac=CORP,
                    ccy="EUR",
                    mic="XLUX",
                    price=f"{self._bond_price(rng, c - 1.0, (mat - today).days / 365.25):.3f}",
                    real=False,
                    weight=1.0,
                )
        for issuer in dd.US_BOND_ISSUERS:
            base = _rand(rng, DIGITS, 3) + _rand(rng, "ABCDEFGHJKLMNPRSTUVWXYZ", 3)
            for k in range(2):
                mat = maturity((1, 4, 7, 10), 15, 2, 20)
                c = float(rng.integers(16, 57)) / 8
                add(
                    isin=fresh(lambda base=base, k=k: make_isin("US", make_cusip(base + f"A{k}"))),
                    name=f"{issuer} {coupon_text(c)} Senior Notes {mat:%d/%m/%Y}",
                    ticker=None,
                    ac=CORP,
                    ccy="USD",
                    mic="XNYS",
                    price=f"{self._bond_price(rng, c - 1.2, (mat - today).days / 365.25):.3f}",
                    real=False,
                    weight=0.8,
                )

    def _futures(
        self, rng: np.random.Generator, add: Callable[..., None], fresh: Callable[[Callable[[], str]], str]
    ) -> None:
        # The two nearest quarterly expiries still open (Eurex expires on the third Friday of Mar/Jun/Sep/Dec).
        expiries = []
        year, month = self.today.year, self.today.month
        while len(expiries) < 2:
            if month % 3 == 0:
                first = dt.date(year, month, 1)
                third_friday = first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)
                if third_friday > self.today:
                    expiries.append(dt.date(year, month, 1))
            month += 1
            if month > 12:
                year, month = year + 1, 1
        codes = {3: "H", 6: "M", 9: "U", 12: "Z"}
        for spec in dd.EUREX_FUTURES:
            for exp in expiries:
                add(
                    isin=fresh(lambda: make_isin("DE", "000C" + _rand(rng, ALNUM, 5))),
                    name=f"{spec.name} {exp:%b %Y}",
                    ticker=f"{spec.root} {codes[exp.month]}{exp:%y}",
                    ac=FUT,
                    ccy=spec.currency,
                    mic="XEUR",
                    price=spec.price,
                    tick=5 if spec.root == "FGBS" else 1,
                    contract_size=spec.contract_size,
                    real=False,
                    weight=3.0 if exp == expiries[0] else 0.6,
                )

    @staticmethod
    def _cycles(ac: int, m: dd.MarketSpec) -> tuple[int, int, dt.date]:
        """(cycle before the switch, after, switch date) for an instrument's trades."""
        never = dt.date(2200, 1, 1)
        if ac == FUT:
            return 0, 0, never
        if ac == GOVT and m.region in ("US", "UK"):  # Treasuries and Gilts already settle T+1
            return 1, 1, never
        if m.region == "US":
            return 2, 1, dd.US_T1
        if m.region in ("EU", "UK", "CH"):
            return 2, 1, dd.EU_T1
        return 2, 2, never  # Japan

    # counterparties, accounts, SSIs -----------------------------------------------------------------------------------

    def _counterparties(self, rng: np.random.Generator) -> None:
        codes: list[str] = []
        bics: list[str] = []
        leis: list[str] = []
        for name, country in dd.COUNTERPARTIES:
            words = ["".join(ch for ch in w.upper() if "A" <= ch <= "Z") for w in name.split()]
            code = words[0] if len(words[0]) >= 4 else words[0] + words[1]
            code = code[:12]
            while code in codes:
                code = code[:11] + str(len(codes) % 10)
            codes.append(code)
            inst = (code + "XXXX")[:4]
            k = 0
            while any(b.startswith(inst) for b in bics):
                inst = inst[:3] + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[k]
                k += 1
            bics.append(inst + country + dd.BIC_LOCATIONS[country])
            prefix = dd.LEI_PREFIXES.get(country, dd.DEFAULT_LEI_PREFIX)
            leis.append(make_lei(prefix + "00" + _rand(rng, ALNUM, 12)))
        self.n_cp = len(codes)
        self.cp_code = np.array(codes, dtype=object)
        self.cp_bic = bics
        self.cp_lei = leis
        self.cp_weight = rng.lognormal(0, 0.7, self.n_cp)
        home = {"US": "US", "GB": "UK", "CH": "CH", "JP": "JP"}
        futures_brokers = {i for i, (name, _) in enumerate(dd.COUNTERPARTIES) if "Futures" in name}
        cover = np.zeros((self.n_cp, len(self.markets)), dtype=bool)
        for c, (_, country) in enumerate(dd.COUNTERPARTIES):
            region = home.get(country, "EU")
            for m, spec in enumerate(self.markets):
                if spec.mic == "XEUR":
                    cover[c, m] = c in futures_brokers or rng.random() < 0.3
                else:
                    cover[c, m] = spec.region == region or rng.random() < 0.55
        for m in range(len(self.markets)):  # every market needs a choice of brokers
            if cover[:, m].sum() < 6:
                cover[:6, m] = True
        self.cp_cover = cover

    def _accounts(self, rng: np.random.Generator) -> None:
        specs = dd.ACCOUNTS
        self.n_acct = len(specs)
        self.ac_code = np.array([a.code for a in specs], dtype=object)
        self.ac_kyc_ok = np.array([a.kyc == KycStatus.APPROVED for a in specs])
        w = np.array([a.weight for a in specs], dtype=float)
        self.ac_weight = w / w.sum()
        fut = np.array([a.futures for a in specs])
        wf = np.where(fut, w, 0.0)
        self.ac_fut_weight = wf / wf.sum()
        self.ac_lei = [make_lei("5493" + "00" + _rand(rng, ALNUM, 12)) if a.has_lei else None for a in specs]
        # Cash accounts per account and currency: IBANs where the currency's country uses them.
        self.cash_account = np.empty((self.n_acct, len(dd.CURRENCIES)), dtype=object)
        for a in range(self.n_acct):
            self.cash_account[a, CCY["USD"]] = "40" + _rand(rng, DIGITS, 8)
            self.cash_account[a, CCY["EUR"]] = _iban("DE", "50070010" + _rand(rng, DIGITS, 10))
            self.cash_account[a, CCY["GBP"]] = _iban("GB", "BARC200000" + _rand(rng, DIGITS, 8))
            self.cash_account[a, CCY["CHF"]] = _iban("CH", "00230" + _rand(rng, DIGITS, 12))
            self.cash_account[a, CCY["JPY"]] = "001-" + _rand(rng, DIGITS, 7)

    def _ssis(self, rng: np.random.Generator) -> None:
        """Our SSI per account and theirs per counterparty, in every market they settle in and every currency
        traded there (Eurex SMI futures settle in CHF, the rest of Eurex in EUR), as enrichment looks them up."""
        n_m, n_c = len(self.markets), len(dd.CURRENCIES)
        currencies = [
            sorted({CCY[spec.currency], *self.inst_ccy[self.inst_mkt == m].tolist()})
            for m, spec in enumerate(self.markets)
        ]
        rows: list[dict[str, Any]] = []
        self.our_ssi = np.zeros((self.n_acct, n_m, n_c), dtype=np.int64)
        self.our_safekeeping = np.empty((self.n_acct, n_m), dtype=object)
        self.their_ssi = np.zeros((self.n_cp, n_m, n_c), dtype=np.int64)
        common = {
            "asset_class": None,
            "valid_from": dt.date(self.today.year - 3, 1, 1),
            "valid_to": None,
            "version": 1,
            "updated_by_id": None,
            "created_at": self.created,
            "updated_at": self.created,
        }

        def add(owner: dict[str, Any], m: int, c: int, agent: str, safekeeping: str, cash: str) -> int:
            rows.append(
                {
                    "id": len(rows) + 1,
                    **owner,
                    "market_id": m + 1,
                    "currency": dd.CURRENCIES[c],
                    "place_of_settlement_bic": self.markets[m].csd_bic,
                    "agent_bic": agent,
                    "safekeeping_account": safekeeping,
                    "cash_account": cash,
                    **common,
                }
            )
            return len(rows)

        for a in range(self.n_acct):
            for m, spec in enumerate(self.markets):
                self.our_safekeeping[a, m] = f"{spec.our_agent_bic[:4]}-{_rand(rng, DIGITS, 8)}"
                for c in currencies[m]:
                    self.our_ssi[a, m, c] = add(
                        {"counterparty_id": None, "account_id": a + 1},
                        m,
                        c,
                        spec.our_agent_bic,
                        self.our_safekeeping[a, m],
                        self.cash_account[a, c],
                    )
        for cp in range(self.n_cp):
            for m, spec in enumerate(self.markets):
                if not self.cp_cover[cp, m]:
                    continue
                agent = spec.their_agent_bics[rng.integers(len(spec.their_agent_bics))]
                safekeeping = _rand(rng, DIGITS, 10)
                for c in currencies[m]:
                    self.their_ssi[cp, m, c] = add(
                        {"counterparty_id": cp + 1, "account_id": None},
                        m,
                        c,
                        agent,
                        safekeeping,
                        _rand(rng, DIGITS, 12),
                    )
        self.ssi_rows = rows

    # frames -----------------------------------------------------------------------------------------------------------

    def frames(self) -> list[Frame]:
        created = self.created
        stamp = {"version": 1, "updated_by_id": None, "created_at": created, "updated_at": created}
        markets = [
            {
                "id": i + 1,
                "mic": m.mic,
                "name": m.name,
                "country": m.country,
                "timezone": m.timezone,
                "calendar_code": m.calendar_code,
                "csd_bic": m.csd_bic,
                "instruction_cutoff": m.cutoff,
                "default_settlement_cycle": self._cycles(EQ, m)[
                    1 if self.today >= self._cycles(EQ, m)[2] else 0
                ],
                **stamp,
            }
            for i, m in enumerate(self.markets)
        ]
        xoff = self.mkt_index["XOFF"] + 1
        holidays = [
            {"id": i + 1, "market_id": xoff, "holiday_date": d, "name": name}
            for i, (d, name) in enumerate(self.holidays)
        ]
        instruments = []
        for i, s in enumerate(self.inst_specs):
            old, new, switch = self.inst_cyc_old[i], self.inst_cyc_new[i], self.inst_switch[i]
            instruments.append(
                {
                    "id": i + 1,
                    "isin": s["isin"],
                    "name": s["name"],
                    "ticker": s["ticker"],
                    "asset_class": ASSET_CLASSES[s["ac"]],
                    "currency": s["ccy"],
                    "market_id": self.mkt_index[s["mic"]] + 1,
                    "settlement_cycle": int(new if np.datetime64(self.today) >= switch else old),
                    "liquidity": self.inst_liquidity[i],
                    "reference_price": Decimal(s["price"]),
                    "contract_size": Decimal(int(self.inst_cs[i])),
                    "is_active": True,
                    **stamp,
                }
            )
        counterparties = [
            {
                "id": c + 1,
                "code": self.cp_code[c],
                "name": name,
                "lei": self.cp_lei[c],
                "bic": self.cp_bic[c],
                "country": country,
                "netting": False,
                "is_active": True,
                **stamp,
            }
            for c, (name, country) in enumerate(dd.COUNTERPARTIES)
        ]
        accounts = [
            {
                "id": a + 1,
                "code": spec.code,
                "name": spec.name,
                "account_type": spec.account_type,
                "kyc_status": spec.kyc,
                "segregation": spec.segregation,
                "base_currency": spec.base_currency,
                "lei": self.ac_lei[a],
                "is_active": True,
                **stamp,
            }
            for a, spec in enumerate(dd.ACCOUNTS)
        ]
        out = []
        for table, rows in (
            ("markets", markets),
            ("market_holidays", holidays),
            ("instruments", instruments),
            ("counterparties", counterparties),
            ("accounts", accounts),
            ("ssis", self.ssi_rows),
        ):
            frame = Frame(table, len(rows), small=True)
            for key in rows[0]:
                frame.add(key, "text", [r[key] for r in rows])
            out.append(frame)
        return out


# --- trades ----------------------------------------------------------------------------------------------------------


def _amounts(
    ref: _Reference, inst: np.ndarray, buy: np.ndarray, qty: np.ndarray, price8: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gross, commission, fees and net in int64 money units (1e-4), by trade capture's enrichment rules."""
    side = _choose(buy, "BUY", "SELL")
    currency = ref.ccy_names[ref.inst_ccy[inst]]
    return enrichment_amounts(ref.enrichment, inst, qty * 10**6, price8, None, side, currency)


class _Trades:
    """N trades with their lifecycle, amounts, timestamps, versions and repair exceptions, as numpy arrays."""

    def __init__(
        self, rng: np.random.Generator, ref: _Reference, n: int, today: dt.date, as_of: dt.datetime
    ) -> None:
        self.n = n
        self.today = np.datetime64(today, "D")
        self.as_of_us = _us(as_of)
        n_m = len(ref.markets)
        ids = np.arange(1, n + 1, dtype=np.int64)
        self.ids = ids

        # Who, what, how much -----------------------------------------------------------------------------------
        inst = rng.choice(ref.n_inst, size=n, p=ref.inst_weight)
        mkt = ref.inst_mkt[inst]
        ac = ref.inst_ac[inst]
        fut = ac == FUT
        acct = rng.choice(ref.n_acct, size=n, p=ref.ac_weight)
        acct[fut] = rng.choice(ref.n_acct, size=int(fut.sum()), p=ref.ac_fut_weight)
        cpty = np.zeros(n, dtype=np.int64)
        for m in range(n_m):
            sel = mkt == m
            k = int(sel.sum())
            if k:
                elig = np.flatnonzero(ref.cp_cover[:, m])
                w = ref.cp_weight[elig] / ref.cp_weight[elig].sum()
                cpty[sel] = elig[rng.choice(len(elig), size=k, p=w)]
        buy = rng.random(n) < 0.5
        ccy = ref.inst_ccy[inst]
        lot = ref.inst_lot[inst]
        notional = rng.lognormal(np.log(150_000), 1.0, n) / CCY_USD[ccy]
        price_unit = ref.inst_ref[inst] / np.power(10.0, ref.inst_pdp[inst])
        shares = notional / price_unit
        qty = np.maximum(1, np.round(shares / lot)).astype(np.int64) * lot
        # US cash equities: most orders in round lots of 100.
        us = np.isin(mkt, [ref.mkt_index[x] for x in ("XNAS", "XNYS", "ARCX")]) & ~ref.inst_bond[inst]
        round_lot = us & (qty >= 100) & (rng.random(n) < 0.6)
        qty = np.where(round_lot, np.round(qty / 100).astype(np.int64) * 100, qty)
        bond = ref.inst_bond[inst]
        nominal = np.maximum(10_000, np.round(notional * 8 / 10_000).astype(np.int64) * 10_000)
        qty = np.where(bond, nominal, qty)
        contracts = 1 + np.floor(rng.lognormal(np.log(6), 0.9, n)).astype(np.int64)
        qty = np.where(fut, contracts, qty)
        qty = np.minimum(qty, np.where(bond, 50_000_000, 2_000_000))
        # Prices around the reference, on the instrument's tick, never below one tick.
        sigma = np.array([0.01, 0.005, 0.002, 0.003, 0.004])[ac]
        raw = ref.inst_ref[inst] * np.exp(rng.normal(0, sigma))
        tick = ref.inst_tick[inst]
        price_units = np.maximum(tick, np.round(raw / tick).astype(np.int64) * tick)
        scale8 = np.power(10, PRICE_SCALE - ref.inst_pdp[inst]).astype(np.int64)
        price8 = price_units * scale8

        # When: trade dates over each market's last ten business days, times within its trading hours -----------
        window = np.array(
            [c.previous_business_days(today, WINDOW_DAYS) for c in ref.cals], dtype="datetime64[D]"
        )
        self.window = window
        trade_date = window[mkt, rng.integers(0, WINDOW_DAYS, n)]
        opens = np.array(
            [(m.opens.hour * 3600 + m.opens.minute * 60) * SEC for m in ref.markets], dtype=np.int64
        )
        closes = np.array(
            [(m.closes.hour * 3600 + m.closes.minute * 60) * SEC for m in ref.markets], dtype=np.int64
        )
        local = _day_us(trade_date) + opens[mkt] + (rng.random(n) * (closes - opens)[mkt]).astype(np.int64)
        trade_time = np.empty(n, dtype=np.int64)
        for m, spec in enumerate(ref.markets):
            sel = mkt == m
            if sel.any():
                idx = pd.DatetimeIndex(local[sel].astype("datetime64[us]"))
                utc = (
                    idx.tz_localize(spec.timezone, nonexistent="shift_forward")
                    .tz_convert("UTC")
                    .tz_localize(None)
                )
                trade_time[sel] = utc.as_unit("us").asi8
        # Ids follow arrival order, as a front-office feed assigns them: the trade-reference and date indexes then
        # grow at their end instead of splitting pages all over (several times faster to load).
        order = np.argsort(trade_time, kind="stable")
        inst, mkt, ac, fut, acct, cpty, buy, ccy, lot, qty = (
            x[order] for x in (inst, mkt, ac, fut, acct, cpty, buy, ccy, lot, qty)
        )
        tick, price_units, scale8, price8, trade_date, trade_time = (
            x[order] for x in (tick, price_units, scale8, price8, trade_date, trade_time)
        )
        cycle = np.where(trade_date >= ref.inst_switch[inst], ref.inst_cyc_new[inst], ref.inst_cyc_old[inst])
        settle = np.empty(n, dtype="datetime64[D]")
        for m in range(n_m):
            sel = mkt == m
            if sel.any():
                settle[sel] = ref.cals[m].settlement_dates_array(trade_date[sel], cycle[sel])

        # Lifecycle status ----------------------------------------------------------------------------------------
        past = settle < self.today
        status = np.empty(n, dtype=np.int64)
        for mask, mix in ((~fut & past, PAST_MIX), (~fut & ~past, PENDING_MIX), (fut, FUTURES_MIX)):
            k = int(mask.sum())
            if k:
                keys = np.array([ST[s] for s in mix])
                status[mask] = keys[_draw(rng, mix, k)]
        # A partial settlement needs at least two units (or two bond lots) to be partial.
        status[(status == ST[TradeStatus.PARTIALLY_SETTLED]) & (qty < 2 * lot)] = ST[TradeStatus.FAILED]
        kyc_bad = ~ref.ac_kyc_ok[acct]
        status[kyc_bad & (status != ST[TradeStatus.CANCELLED])] = ST[TradeStatus.REPAIR]
        # Every state must exist even in a tiny book: promote one fitting trade for each missing state.
        order = rng.permutation(n)
        for s in STATUSES:
            if (status == ST[s]).any():
                continue
            needs_past = s in (TradeStatus.SETTLED, TradeStatus.FAILED, TradeStatus.PARTIALLY_SETTLED)
            fits = (
                ~fut
                & ~kyc_bad
                & (past if needs_past else True)
                & (np.bincount(status, minlength=9)[status] > 1)
            )
            if s == TradeStatus.PARTIALLY_SETTLED:
                fits &= qty >= 2 * lot
            cands = order[fits[order]]
            if len(cands):
                status[cands[0]] = ST[s]
        cancelled = status == ST[TradeStatus.CANCELLED]
        # Some cancels arrive after the instruction went out; the instruction is then cancelled too.
        cancel_late = cancelled & ~fut & (rng.random(n) < 0.3)

        # Repairs: what went wrong, and the wrong data the front office sent ------------------------------------
        repair = status == ST[TradeStatus.REPAIR]
        code1 = np.full(n, -1, dtype=np.int64)  # index into REPAIR_CODES
        code1[repair & kyc_bad] = REPAIR_CODES.index("KYC_NOT_APPROVED")
        other = repair & ~kyc_bad
        drawn = np.array([REPAIR_CODES.index(c) for c in REPAIR_MIX])[
            _draw(rng, REPAIR_MIX, int(other.sum()))
        ]
        code1[other] = drawn
        # Futures are identified by the exchange's contract code: only price and counterparty go wrong there.
        fut_bad = (
            other
            & fut
            & ~np.isin(code1, [REPAIR_CODES.index("PRICE_TOLERANCE"), REPAIR_CODES.index("CPTY_UNKNOWN")])
        )
        code1[fut_bad] = REPAIR_CODES.index("PRICE_TOLERANCE")
        # A missing SSI needs a counterparty without one in that market.
        missing_ssi = code1 == REPAIR_CODES.index("SSI_MISSING")
        for m in range(n_m):
            sel = np.flatnonzero(missing_ssi & (mkt == m))
            lacking = np.flatnonzero(~ref.cp_cover[:, m])
            if len(sel) and len(lacking):
                cpty[sel] = lacking[rng.integers(0, len(lacking), len(sel))]
            elif len(sel):
                code1[sel] = REPAIR_CODES.index("PRICE_TOLERANCE")

        true_price8 = price8.copy()
        fat = code1 == REPAIR_CODES.index("PRICE_TOLERANCE")
        up = rng.random(n) < 0.5
        wrong = np.where(up, price_units * 10, np.maximum(tick, price_units // 10 // tick * tick))
        price8 = np.where(fat, wrong * scale8, price8)

        isin = ref.inst_isin[inst].copy()
        bad_isin = code1 == REPAIR_CODES.index("ISIN_CHECK")
        isin[bad_isin] = ref.inst_bad_isin[inst[bad_isin]]
        unknown_isin = code1 == REPAIR_CODES.index("ISIN_UNKNOWN")
        pool = np.array(
            [
                make_isin("US", make_cusip("9" + _rand(rng, DIGITS, 4) + "ZZ" + _rand(rng, DIGITS, 1)))
                for _ in range(24)
            ],
            dtype=object,
        )
        pool = pool[~np.isin(pool, ref.inst_isin)]
        isin[unknown_isin] = pool[rng.integers(0, len(pool), int(unknown_isin.sum()))]
        instrument_known = ~(bad_isin | unknown_isin)
        unknown_cpty = code1 == REPAIR_CODES.index("CPTY_UNKNOWN")
        cpty_code = ref.cp_code[cpty].copy()
        cp_pool = np.array([f"XBRK{k:03d}" for k in range(1, 13)], dtype=object)
        cpty_code[unknown_cpty] = cp_pool[rng.integers(0, len(cp_pool), int(unknown_cpty.sum()))]

        # Enrichment: settlement date and SSIs exist only when the instrument (and counterparty) are known.
        self.true_settle = settle.copy()
        settle = np.where(instrument_known, settle, np.datetime64("NaT"))
        our_ssi = np.where(instrument_known, ref.our_ssi[acct, mkt, ccy], 0)
        their_ssi = np.where(instrument_known & ~unknown_cpty, ref.their_ssi[cpty, mkt, ccy], 0)

        gross, comm, fees, net = _amounts(ref, inst, buy, qty, price8)
        self.true_net = np.where(fat, _amounts(ref, inst, buy, qty, true_price8)[3], net)

        # Timestamps (integer microseconds UTC), coherent with how far each trade got ----------------------------
        stage = STAGE[status].copy()
        stage[cancel_late] = 4
        cap = self.as_of_us - SEC

        def later(base: np.ndarray, lo_min: float, hi_min: float, reached: np.ndarray) -> np.ndarray:
            step = (rng.uniform(lo_min, hi_min, n) * MINUTE).astype(np.int64)
            return np.where(reached, np.minimum(base + step, cap), NAT)

        created = np.minimum(trade_time + (rng.uniform(0.5, 90, n) * SEC).astype(np.int64), cap)
        allocated = later(created, 1, 45, stage >= 1)
        confirmed = later(np.where(stage >= 2, allocated, created), 2, 90, stage >= 2)
        affirmed = later(np.where(stage >= 3, confirmed, created), 2, 120, stage >= 3)
        # US rule 15c6-2: affirm by 21:00 New York time on trade date. A few come in late (an SLA breach to work).
        us_mkt = np.array([m.region == "US" for m in ref.markets])[mkt]
        late = (stage >= 3) & us_mkt & (rng.random(n) < 0.03)
        ny_21 = np.empty(n, dtype=np.int64)
        if late.any():
            idx = pd.DatetimeIndex((_day_us(trade_date[late]) + 21 * HOUR).astype("datetime64[us]"))
            ny_21_late = (
                idx.tz_localize("America/New_York").tz_convert("UTC").tz_localize(None).as_unit("us").asi8
            )
            ny_21[late] = ny_21_late
            affirmed[late] = np.minimum(
                ny_21[late] + (rng.uniform(10, 600, int(late.sum())) * MINUTE).astype(np.int64), cap
            )
        instructed = later(np.where(stage >= 4, affirmed, created), 1, 30, stage >= 4)

        self.inst = inst
        self.mkt = mkt
        self.ac = ac
        self.fut = fut
        self.acct = acct
        self.cpty = cpty
        self.buy = buy
        self.qty = qty
        self.lot = lot
        self.tick = tick
        self.scale8 = scale8
        self.price8 = price8
        self.true_price8 = true_price8
        self.trade_date = trade_date
        self.trade_time = trade_time
        self.settle = settle
        self.status = status
        self.cancel_late = cancel_late
        self.code1 = code1
        self.isin = isin
        self.instrument_known = instrument_known
        self.unknown_cpty = unknown_cpty
        self.cpty_code = cpty_code
        self.our_ssi = our_ssi
        self.their_ssi = their_ssi
        self.gross, self.comm, self.fees, self.net = gross, comm, fees, net
        self.created = created
        self.allocated = allocated
        self.confirmed = confirmed
        self.affirmed = affirmed
        self.instructed = instructed
        self.cap = cap
        self.cancel_time = np.where(
            cancelled,
            np.minimum(
                np.maximum(allocated, instructed) + (rng.uniform(10, 300, n) * MINUTE).astype(np.int64), cap
            ),
            NAT,
        )
        updated = np.maximum.reduce([created, allocated, confirmed, affirmed, instructed])
        # The settlement stage moves it on for settled and failed trades (see _Settlement).
        self.updated = np.where(cancelled, self.cancel_time, updated)
        self.trade_ref = self._refs()
        self._versions(rng)

    def _refs(self) -> np.ndarray:
        days = _day_text(self.trade_date)
        return np.array(
            [f"FO-{d[:4]}{d[5:7]}{d[8:]}-{i:08d}" for d, i in zip(days, self.ids.tolist(), strict=True)],
            dtype=object,
        )

    # versions ----------------------------------------------------------------------------------------------------------

    def _versions(self, rng: np.random.Generator) -> None:
        """NEW for every trade; AMENDs for a few (quantity, then price); CANCEL last for cancelled trades."""
        n = self.n
        amend1 = rng.random(n) < 0.04
        amend2 = amend1 & (rng.random(n) < 0.12)
        cancelled = self.status == ST[TradeStatus.CANCELLED]
        factor = np.array([0.5, 2.0, 0.8, 1.25])[rng.integers(0, 4, n)]
        q1 = np.maximum(self.lot, np.round(self.qty * factor / self.lot).astype(np.int64) * self.lot)
        q1 = np.where(q1 == self.qty, self.qty + self.lot, q1)
        self.qty_v1 = np.where(amend1, q1, self.qty)
        p_units = self.price8 // self.scale8
        p0 = np.maximum(self.tick, p_units - self.tick * rng.integers(1, 20, n))
        p0 = np.where(p0 == p_units, p_units + self.tick, p0)
        self.price_v0 = np.where(amend2, p0 * self.scale8, self.price8)
        counts = 1 + amend1.astype(np.int64) + amend2 + cancelled
        self.fo_version = counts
        total = int(counts.sum())
        trade = np.repeat(np.arange(n), counts)
        starts = np.cumsum(counts) - counts
        vno = np.arange(total) - np.repeat(starts, counts) + 1
        is_cancel = cancelled[trade] & (vno == counts[trade])
        action = np.where(vno == 1, 0, np.where(is_cancel, 2, 1))  # NEW, AMEND, CANCEL
        qty = np.where((vno == 1) & amend1[trade], self.qty_v1[trade], self.qty[trade])
        price = np.where(amend2[trade] & (vno <= 2), self.price_v0[trade], self.price8[trade])
        received = np.where(
            action == 2,
            self.cancel_time[trade],
            np.minimum(
                self.created[trade] + (vno - 1) * (rng.uniform(3, 40, total) * MINUTE).astype(np.int64),
                self.cap,
            ),
        )
        self.v_trade, self.v_no, self.v_action, self.v_qty, self.v_price, self.v_received = (
            trade,
            vno,
            action,
            qty,
            price,
            received,
        )

    # frames ------------------------------------------------------------------------------------------------------------

    def trade_frame(self, ref: _Reference) -> Frame:
        n = self.n
        status = self.status
        codes = np.array([*REPAIR_CODES, ""], dtype=object)[self.code1]
        f = Frame("trades", n)
        f.add("id", "int", self.ids)
        f.add("trade_ref", "text", self.trade_ref)
        f.add("fo_version", "int", self.fo_version)
        f.add("source", "const", "DEMO")
        f.add("source_ref", "lazy", lambda a, b: [f"demo:{i}" for i in range(a + 1, b + 1)])
        f.add("order_ref", "lazy", lambda a, b: [f"ORD-{i:09d}" for i in range(a + 1, b + 1)])
        f.add("isin", "text", self.isin)
        f.add("account_code", "text", ref.ac_code[self.acct])
        f.add("counterparty_code", "text", self.cpty_code)
        f.add("instrument_id", "ref", np.where(self.instrument_known, self.inst + 1, 0))
        f.add("account_id", "ref", self.acct + 1)
        f.add("counterparty_id", "ref", np.where(self.unknown_cpty, 0, self.cpty + 1))
        f.add("side", "text", _choose(self.buy, Side.BUY.value, Side.SELL.value))
        f.add("quantity", "int", self.qty)
        f.add("price", "price", self.price8)
        f.add("currency", "text", np.array(dd.CURRENCIES, dtype=object)[ref.inst_ccy[self.inst]])
        f.add("gross_amount", "money", self.gross)
        f.add("commission", "money", self.comm)
        f.add("fees", "money", self.fees)
        f.add("net_amount", "money", self.net)
        f.add("trade_date", "day", self.trade_date)
        f.add("trade_time", "ts", self.trade_time)
        f.add("settlement_date", "day", self.settle)
        f.add("status", "text", STATUS_NAMES[status])
        f.add("exception_codes", "text", codes)
        f.add("allocated_at", "ts", self.allocated)
        f.add("confirmed_at", "ts", self.confirmed)
        f.add("affirmed_at", "ts", self.affirmed)
        f.add("our_ssi_id", "ref", self.our_ssi)
        f.add("their_ssi_id", "ref", self.their_ssi)
        f.add("version", "const", 1)
        f.add("updated_by_id", "const", None)
        f.add("created_at", "ts", self.created)
        f.add("updated_at", "ts", self.updated)
        f.add("claimed_at", "const", None)
        f.add("owner_id", "const", None)
        return f

    def version_frame(self, ref: _Reference) -> Frame:
        total = len(self.v_trade)
        actions = np.array(
            [TradeAction.NEW.value, TradeAction.AMEND.value, TradeAction.CANCEL.value], dtype=object
        )
        acct_code = ref.ac_code
        ccy = np.array(dd.CURRENCIES, dtype=object)

        def payload(a: int, b: int) -> list[str]:
            # Every value is an identifier, a code or a number (letters, digits, '-', '.'): no JSON escaping needed.
            t = self.v_trade[a:b]
            inst = self.inst[t]
            columns = zip(
                actions[self.v_action[a:b]].tolist(),
                self.trade_ref[t].tolist(),
                self.v_no[a:b].tolist(),
                self.isin[t].tolist(),
                acct_code[self.acct[t]].tolist(),
                self.cpty_code[t].tolist(),
                _choose(self.buy[t], "BUY", "SELL").tolist(),
                self.v_qty[a:b].tolist(),
                [_plain(x) for x in _fixed_decimal(self.v_price[a:b], PRICE_SCALE)],
                ccy[ref.inst_ccy[inst]].tolist(),
                _day_text(self.trade_date[t]),
                strict=True,
            )
            out = []
            for act, tref, v, isin, acc, cp, side, qty, price, cur, day in columns:
                head = f'{{"action":"{act}","trade_ref":"{tref}","fo_version":{v}'
                if act == "CANCEL":
                    out.append(head + "}")
                else:
                    out.append(
                        f'{head},"isin":"{isin}","account":"{acc}","counterparty":"{cp}","side":"{side}",'
                        f'"quantity":"{qty}","price":"{price}","currency":"{cur}","trade_date":"{day}"}}'
                    )
            return out

        f = Frame("trade_versions", total)
        f.add("id", "int", np.arange(1, total + 1, dtype=np.int64))
        f.add("trade_id", "int", self.ids[self.v_trade])
        f.add("fo_version", "int", self.v_no)
        f.add("action", "text", actions[self.v_action])
        f.add("source", "const", "DEMO")
        f.add(
            "source_ref",
            "lazy",
            lambda a, b: [
                f"{self.trade_ref[i]}/v{v}"
                for i, v in zip(self.v_trade[a:b].tolist(), self.v_no[a:b].tolist(), strict=True)
            ],
        )
        f.add("received_at", "ts", self.v_received)
        f.add("payload", "lazy", payload)
        return f

    def _message(
        self, ref: _Reference, code: str, i: int, bad_cache: dict[str, str], kyc: dict[str, str]
    ) -> str:
        """The clerk's sentence for a repair exception, worded as trade capture's validation words it."""
        if code == "ISIN_CHECK":
            isin = self.isin[i]
            if isin not in bad_cache:
                try:
                    validate_isin(isin)
                except ValidationFailed as err:
                    bad_cache[isin] = str(err)
            return bad_cache[isin]
        if code == "ISIN_UNKNOWN":
            return f"ISIN {self.isin[i]} is not in the instrument master"
        if code == "CPTY_UNKNOWN":
            return f"counterparty {self.cpty_code[i]} is not in the counterparty master"
        if code == "PRICE_TOLERANCE":
            return self._tolerance_words(ref, i, Decimal(int(self.price8[i])).scaleb(-PRICE_SCALE))
        if code == "SSI_MISSING":
            m = ref.markets[self.mkt[i]]
            what = ASSET_WORDS[ASSET_CLASSES[ref.inst_ac[self.inst[i]]]]
            ccy = dd.CURRENCIES[ref.inst_ccy[self.inst[i]]]
            return f"no standing settlement instruction of counterparty {self.cpty_code[i]} on {m.mic} in {ccy} for {what}"
        account = ref.ac_code[self.acct[i]]
        return f"account {account} has KYC status {kyc[account]}; trades need APPROVED"

    def _tolerance_words(self, ref: _Reference, i: int, price: Decimal) -> str:
        inst = self.inst[i]
        reference = Decimal(int(ref.inst_ref[inst])).scaleb(-int(ref.inst_pdp[inst]))
        asset = ASSET_CLASSES[ref.inst_ac[inst]]
        pct = abs(price - reference) * 100 / reference
        shown = f"{pct:,.0f}" if pct >= 10 else f"{pct:.1f}"
        return (
            f"price {display(price)} is {shown}% away from the reference {display(reference)} "
            f"(tolerance {TOLERANCE_PCT[asset]}% for {ASSET_WORDS[asset]})"
        )

    def exception_frame(self, ref: _Reference) -> Frame:
        rows = np.flatnonzero(self.code1 >= 0)
        messages: list[str] = []
        fields: list[str] = []
        codes: list[str] = []
        bad_cache: dict[str, str] = {}
        kyc = {a.code: a.kyc.value for a in dd.ACCOUNTS}
        for i in rows.tolist():
            code = REPAIR_CODES[self.code1[i]]
            codes.append(code)
            fields.append(dd.REPAIR_CODES[code])
            messages.append(self._message(ref, code, i, bad_cache, kyc))
        raised = self.created[rows] + SEC
        # A few trades that flow today were repaired earlier: their cleared exception stays as history.
        fixed = np.flatnonzero((self.code1 < 0) & (STAGE[self.status] >= 1) & (self.ids % 97 == 0))
        for i in fixed.tolist():
            # The front office first sent a price 20 % off, then amended it: the exception was cleared.
            codes.append("PRICE_TOLERANCE")
            fields.append("price")
            messages.append(
                self._tolerance_words(ref, i, Decimal(int(self.price8[i])).scaleb(-PRICE_SCALE) * 6 / 5)
            )
        all_rows = np.concatenate([rows, fixed])
        raised = np.concatenate([raised, self.created[fixed] + SEC])
        cleared = np.concatenate(
            [np.full(len(rows), NAT, dtype=np.int64), np.minimum(self.allocated[fixed] - SEC, self.cap)]
        )
        cleared = np.where((cleared != NAT) & (cleared < raised), raised + SEC, cleared)
        f = Frame("trade_exceptions", len(all_rows))
        f.add("id", "int", np.arange(1, len(all_rows) + 1, dtype=np.int64))
        f.add("trade_id", "int", self.ids[all_rows])
        f.add("code", "text", codes)
        f.add("field", "text", fields)
        f.add("message", "text", messages)
        f.add("raised_at", "ts", raised)
        f.add("cleared_at", "ts", cleared)
        return f


# --- settlement: instructions, movements, positions, balances ----------------------------------------------------------


def _their_refs(ref: _Reference, t: _Trades, rows: np.ndarray) -> list[str]:
    """The counterparty's own reference for trades (on their instruction and their confirmation)."""
    codes = ref.cp_code[t.cpty[rows]].tolist()
    keys = ((t.ids[rows] * 7919 + 104_729) % 10**10).tolist()
    return [f"{c[:4]}{k:010d}" for c, k in zip(codes, keys, strict=True)]


class _Settlement:
    """Instructions for instructed trades, the movements of booked and settled trades, positions and balances."""

    def __init__(self, rng: np.random.Generator, ref: _Reference, t: _Trades) -> None:
        self.ref = ref
        status = t.status
        instructed = (
            np.isin(
                status,
                [
                    ST[TradeStatus.INSTRUCTED],
                    ST[TradeStatus.SETTLED],
                    ST[TradeStatus.PARTIALLY_SETTLED],
                    ST[TradeStatus.FAILED],
                ],
            )
            & ~t.fut
        ) | t.cancel_late
        rows = np.flatnonzero(instructed)
        m = len(rows)
        self.rows = rows
        self.ids = np.arange(1, m + 1, dtype=np.int64)
        ts = status[rows]
        istat = _same(InstructionStatus.INSTRUCTED.value, m)
        reason = np.full(m, -1, dtype=np.int64)
        pending = ts == ST[TradeStatus.INSTRUCTED]
        matched = rng.random(m) < 0.78
        istat[pending & matched] = InstructionStatus.MATCHED.value
        unmatched = pending & ~matched
        reason[unmatched] = np.array([REASONS.index(c) for c in UNMATCHED_MIX])[
            _draw(rng, UNMATCHED_MIX, int(unmatched.sum()))
        ]
        settled = ts == ST[TradeStatus.SETTLED]
        partial = ts == ST[TradeStatus.PARTIALLY_SETTLED]
        failed = ts == ST[TradeStatus.FAILED]
        cancelled = ts == ST[TradeStatus.CANCELLED]
        istat[settled] = InstructionStatus.SETTLED.value
        istat[partial] = InstructionStatus.PARTIALLY_SETTLED.value
        istat[failed] = InstructionStatus.FAILED.value
        istat[cancelled] = InstructionStatus.CANCELLED.value
        reason[partial] = REASONS.index("LACK")
        reason[failed] = np.array([REASONS.index(c) for c in FAIL_MIX])[
            _draw(rng, FAIL_MIX, int(failed.sum()))
        ]
        # LACK and MONY fail after matching; the other codes are unmatched at the settlement date.
        matched_cp = (
            (pending & matched)
            | settled
            | partial
            | (failed & np.isin(reason, [REASONS.index("LACK"), REASONS.index("MONY")]))
        )
        self.istat = istat
        self.reason = reason
        self.matched_cp = matched_cp

        # Settlement outcome ----------------------------------------------------------------------------------------
        isd = t.settle[rows]
        asd = np.full(m, np.datetime64("NaT"), dtype="datetime64[D]")
        asd[settled | partial] = isd[settled | partial]
        # A few settle a day or two late (after a fail that cured), never later than yesterday.
        late = settled & (rng.random(m) < 0.05)
        mk = t.mkt[rows]
        for mi in np.unique(mk[late]).tolist():
            sel = late & (mk == mi)
            later = ref.cals[mi].add_business_days_array(isd[sel], rng.integers(1, 3, int(sel.sum())))
            asd[sel] = np.where(later < t.today, later, isd[sel])
        qty = t.qty[rows]
        lot = t.lot[rows]
        part_qty = np.maximum(lot, np.floor(qty * rng.uniform(0.3, 0.9, m) / lot).astype(np.int64) * lot)
        part_qty = np.minimum(part_qty, qty - lot)
        sq = np.where(settled, qty, np.where(partial, part_qty, 0))
        net = t.net[rows]
        s_amt = np.where(settled, net, 0)
        # A partial settlement moves cash pro rata to the quantity delivered, rounded half up to the minor unit.
        # net x quantity can exceed int64 for big bond tickets: Python ints for these few rows.
        step = MINOR_STEP[ref.inst_ccy[t.inst[rows]]]
        part = np.flatnonzero(partial)
        s_amt[part] = [
            (1 if a >= 0 else -1) * ((2 * abs(a) * b + c * d) // (2 * c * d)) * d
            for a, b, c, d in zip(
                net[part].tolist(), sq[part].tolist(), qty[part].tolist(), step[part].tolist(), strict=True
            )
        ]
        self.isd, self.asd, self.sq, self.s_amt = isd, asd, sq, s_amt
        settle_time = np.minimum(
            _day_us(asd) + 7 * HOUR + (rng.uniform(0, 9, m) * HOUR).astype(np.int64), t.cap
        )
        fail_time = np.minimum(_day_us(isd) + 18 * HOUR, t.cap)
        updated = np.where(settled | partial, settle_time, np.where(failed, fail_time, t.instructed[rows]))
        updated = np.where(cancelled, t.cancel_time[rows], updated)
        self.updated = updated
        self.settle_time = settle_time
        t.updated[rows] = np.maximum(t.updated[rows], updated)

        # Futures clear on trade date: the trade is its own settlement.
        fut_settled = np.flatnonzero(t.fut & (status == ST[TradeStatus.SETTLED]))
        fut_time = np.minimum(_day_us(t.settle[fut_settled]) + 19 * HOUR, t.cap)
        t.updated[fut_settled] = np.maximum(t.updated[fut_settled], fut_time)

        self._movements(rng, ref, t, fut_settled, fut_time)

    def _movements(
        self,
        rng: np.random.Generator,
        ref: _Reference,
        t: _Trades,
        fut_settled: np.ndarray,
        fut_time: np.ndarray,
    ) -> None:
        booked = np.flatnonzero(~np.isin(t.status, [ST[TradeStatus.REPAIR], ST[TradeStatus.CANCELLED]]))
        sign_t = np.where(t.buy, 1, -1)
        cash_sign = -sign_t  # buying pays cash, selling receives it
        # What moves in cash: the net amount, except futures where only commission and fees are paid.
        cash_t = np.where(t.fut, -(t.comm + t.fees), cash_sign * t.net)
        inst_settled = np.flatnonzero(
            np.isin(self.istat, [InstructionStatus.SETTLED.value, InstructionStatus.PARTIALLY_SETTLED.value])
        )
        srows = self.rows[inst_settled]
        min_day = t.window.min()
        xnys = ref.cals[ref.mkt_index["XNYS"]]
        self.deposit_day = xnys.add_business_days_array(np.array([min_day]), -1)[0]
        deposit_us = int(_day_us(np.array([self.deposit_day]))[0]) + 8 * HOUR

        # Opening positions brought forward (DEPOSIT): enough for most sales, so only a few fail for lack.
        held = booked[~t.fut[booked]]
        pairs = pd.DataFrame(
            {
                "acct": t.acct[held],
                "inst": t.inst[held],
                "sells": np.where(t.buy[held], 0, t.qty[held]),
                "lot": t.lot[held],
            }
        )
        g = (
            pairs.groupby(["acct", "inst"], sort=True)
            .agg(sells=("sells", "sum"), lot=("lot", "first"))
            .reset_index()
        )
        k = len(g)
        lot = g["lot"].to_numpy()
        u = rng.uniform(0.9, 1.8, k)
        base = lot * rng.integers(1, 400, k)
        dep = np.where(
            g["sells"].to_numpy() > 0,
            np.ceil(g["sells"].to_numpy() * u / lot).astype(np.int64) * lot,
            np.where(rng.random(k) < 0.5, base, 0),
        )
        keep = dep > 0
        dep_acct, dep_inst, dep_qty = g["acct"].to_numpy()[keep], g["inst"].to_numpy()[keep], dep[keep]

        n_dep, n_tr, n_st, n_fut = len(dep_qty), len(booked), len(srows), len(fut_settled)
        kinds = np.array([m.value for m in MovementKind], dtype=object)
        k_dep, k_tr, k_st = (
            list(MovementKind).index(x)
            for x in (MovementKind.DEPOSIT, MovementKind.TRADED, MovementKind.SETTLED)
        )
        self.sec = {
            "account": np.concatenate([dep_acct, t.acct[booked], t.acct[srows], t.acct[fut_settled]]),
            "instrument": np.concatenate([dep_inst, t.inst[booked], t.inst[srows], t.inst[fut_settled]]),
            "kind": np.concatenate([np.full(n_dep, k_dep), np.full(n_tr, k_tr), np.full(n_st + n_fut, k_st)]),
            "quantity": np.concatenate(
                [
                    dep_qty,
                    sign_t[booked] * t.qty[booked],
                    sign_t[srows] * self.sq[inst_settled],
                    sign_t[fut_settled] * t.qty[fut_settled],
                ]
            ),
            "value_date": np.concatenate(
                [
                    np.full(n_dep, self.deposit_day),
                    t.trade_date[booked],
                    self.asd[inst_settled],
                    t.settle[fut_settled],
                ]
            ),
            "trade": np.concatenate(
                [np.zeros(n_dep, np.int64), t.ids[booked], t.ids[srows], t.ids[fut_settled]]
            ),
            "instruction": np.concatenate(
                [np.zeros(n_dep + n_tr, np.int64), self.ids[inst_settled], np.zeros(n_fut, np.int64)]
            ),
            "created": np.concatenate(
                [np.full(n_dep, deposit_us), t.created[booked], self.settle_time[inst_settled], fut_time]
            ),
        }
        self.kind_names = kinds

        # Opening cash per account and currency, comfortably above what its purchases need.
        ccy_t = ref.inst_ccy[t.inst]
        spend = pd.DataFrame(
            {"acct": t.acct[booked], "ccy": ccy_t[booked], "pay": np.maximum(-cash_t[booked], 0)}
        )
        gc = spend.groupby(["acct", "ccy"], sort=True)["pay"].sum().reset_index()
        kc = len(gc)
        unit = 1_000 * UNIT  # opening cash in thousands of the currency
        opening = np.ceil(gc["pay"].to_numpy() * rng.uniform(1.1, 1.8, kc) / unit).astype(
            np.int64
        ) * unit + unit * rng.integers(10, 500, kc)
        n_cd = kc
        s_cash = np.where(t.buy[srows], -self.s_amt[inst_settled], self.s_amt[inst_settled])
        self.cash = {
            "account": np.concatenate(
                [gc["acct"].to_numpy(), t.acct[booked], t.acct[srows], t.acct[fut_settled]]
            ),
            "currency": np.concatenate(
                [gc["ccy"].to_numpy(), ccy_t[booked], ccy_t[srows], ccy_t[fut_settled]]
            ),
            "kind": np.concatenate([np.full(n_cd, k_dep), np.full(n_tr, k_tr), np.full(n_st + n_fut, k_st)]),
            "amount": np.concatenate([opening, cash_t[booked], s_cash, cash_t[fut_settled]]),
            "value_date": np.concatenate(
                [
                    np.full(n_cd, self.deposit_day),
                    t.trade_date[booked],
                    self.asd[inst_settled],
                    t.settle[fut_settled],
                ]
            ),
            "trade": np.concatenate(
                [np.zeros(n_cd, np.int64), t.ids[booked], t.ids[srows], t.ids[fut_settled]]
            ),
            "trade_row": np.concatenate([np.full(n_cd, -1), booked, srows, fut_settled]),
            "instruction": np.concatenate(
                [np.zeros(n_cd + n_tr, np.int64), self.ids[inst_settled], np.zeros(n_fut, np.int64)]
            ),
            "created": np.concatenate(
                [np.full(n_cd, deposit_us), t.created[booked], self.settle_time[inst_settled], fut_time]
            ),
        }
        self.k_tr, self.k_st = k_tr, k_st
        self.cash_ids = np.arange(1, len(self.cash["amount"]) + 1, dtype=np.int64)

        # Positions and balances: sums of the movements (see the module docstring for the rule).
        sec = pd.DataFrame(
            {
                "acct": self.sec["account"],
                "inst": self.sec["instrument"],
                "traded": np.where(self.sec["kind"] == k_st, 0, self.sec["quantity"]),
                "settled": np.where(self.sec["kind"] == k_tr, 0, self.sec["quantity"]),
            }
        )
        self.positions = sec.groupby(["acct", "inst"], sort=True)[["traded", "settled"]].sum().reset_index()
        cash = pd.DataFrame(
            {
                "acct": self.cash["account"],
                "ccy": self.cash["currency"],
                "traded": np.where(self.cash["kind"] == k_st, 0, self.cash["amount"]),
                "settled": np.where(self.cash["kind"] == k_tr, 0, self.cash["amount"]),
            }
        )
        self.balances = cash.groupby(["acct", "ccy"], sort=True)[["traded", "settled"]].sum().reset_index()
        self.as_of_us = t.as_of_us

    # frames ------------------------------------------------------------------------------------------------------------

    def instruction_frame(self, ref: _Reference, t: _Trades) -> Frame:
        rows = self.rows
        m = len(rows)
        reason = np.array([*REASONS, None], dtype=object)[self.reason]
        texts = np.array([*(dd.REASON_TEXTS[c] for c in REASONS), None], dtype=object)[self.reason]
        f = Frame("settlement_instructions", m)
        f.add("id", "int", self.ids)
        f.add("instruction_ref", "lazy", lambda a, b: [f"SEME{i:012d}" for i in range(a + 1, b + 1)])
        f.add(
            "instruction_type",
            "text",
            _choose(t.buy[rows], InstructionType.RVP.value, InstructionType.DVP.value),
        )
        f.add("is_netted", "const", False)
        f.add("account_id", "int", t.acct[rows] + 1)
        f.add("counterparty_id", "int", t.cpty[rows] + 1)
        f.add("instrument_id", "int", t.inst[rows] + 1)
        f.add("quantity", "int", t.qty[rows])
        f.add("settlement_amount", "money", t.net[rows])
        f.add("currency", "text", np.array(dd.CURRENCIES, dtype=object)[ref.inst_ccy[t.inst[rows]]])
        f.add("trade_date", "day", t.trade_date[rows])
        f.add("intended_settlement_date", "day", self.isd)
        f.add("actual_settlement_date", "day", self.asd)
        f.add("settled_quantity", "int", self.sq)
        f.add("settled_amount", "money", self.s_amt)
        f.add("status", "text", self.istat)
        f.add("reason_code", "text", reason)
        f.add("reason_text", "text", texts)
        f.add("our_ssi_id", "ref", t.our_ssi[rows])
        f.add("their_ssi_id", "ref", t.their_ssi[rows])
        f.add("instructed_at", "ts", t.instructed[rows])
        f.add(
            "counterparty_ref",
            "lazy",
            lambda a, b: [
                r if m else None
                for r, m in zip(_their_refs(ref, t, rows[a:b]), self.matched_cp[a:b].tolist(), strict=True)
            ],
        )
        f.add("version", "const", 1)
        f.add("updated_by_id", "const", None)
        f.add("created_at", "ts", t.instructed[rows])
        f.add("updated_at", "ts", self.updated)
        f.add("claimed_at", "const", None)
        f.add("owner_id", "const", None)
        return f

    def link_frame(self, t: _Trades) -> Frame:
        f = Frame("instruction_trades", len(self.rows))
        f.add("instruction_id", "int", self.ids)
        f.add("trade_id", "int", t.ids[self.rows])
        return f

    def securities_frame(self) -> Frame:
        s = self.sec
        n = len(s["quantity"])
        f = Frame("securities_movements", n)
        f.add("id", "int", np.arange(1, n + 1, dtype=np.int64))
        f.add("account_id", "int", s["account"] + 1)
        f.add("instrument_id", "int", s["instrument"] + 1)
        f.add("kind", "text", self.kind_names[s["kind"]])
        f.add("quantity", "int", s["quantity"])
        f.add("value_date", "day", s["value_date"])
        f.add("trade_id", "ref", s["trade"])
        f.add("instruction_id", "ref", s["instruction"])
        f.add("created_at", "ts", s["created"])
        return f

    def cash_frame(self) -> Frame:
        c = self.cash
        n = len(c["amount"])
        f = Frame("cash_movements", n)
        f.add("id", "int", self.cash_ids)
        f.add("account_id", "int", c["account"] + 1)
        f.add("currency", "text", np.array(dd.CURRENCIES, dtype=object)[c["currency"]])
        f.add("kind", "text", self.kind_names[c["kind"]])
        f.add("amount", "money", c["amount"])
        f.add("value_date", "day", c["value_date"])
        f.add("trade_id", "ref", c["trade"])
        f.add("instruction_id", "ref", c["instruction"])
        f.add("created_at", "ts", c["created"])
        return f

    def position_frame(self, ref: _Reference) -> Frame:
        p = self.positions
        n = len(p)
        stamp = np.full(n, self.as_of_us - MINUTE, dtype=np.int64)
        f = Frame("positions", n)
        f.add("id", "int", np.arange(1, n + 1, dtype=np.int64))
        f.add("account_id", "int", p["acct"].to_numpy() + 1)
        f.add("instrument_id", "int", p["inst"].to_numpy() + 1)
        f.add("traded_quantity", "int", p["traded"].to_numpy())
        f.add("settled_quantity", "int", p["settled"].to_numpy())
        f.add("created_at", "ts", stamp)
        f.add("updated_at", "ts", stamp)
        return f

    def balance_frame(self, ref: _Reference) -> Frame:
        b = self.balances
        n = len(b)
        stamp = np.full(n, self.as_of_us - MINUTE, dtype=np.int64)
        f = Frame("cash_balances", n)
        f.add("id", "int", np.arange(1, n + 1, dtype=np.int64))
        f.add("account_id", "int", b["acct"].to_numpy() + 1)
        f.add("currency", "text", np.array(dd.CURRENCIES, dtype=object)[b["ccy"].to_numpy()])
        f.add("traded_amount", "money", b["traded"].to_numpy())
        f.add("settled_amount", "money", b["settled"].to_numpy())
        f.add("created_at", "ts", stamp)
        f.add("updated_at", "ts", stamp)
        return f


# --- external statements ---------------------------------------------------------------------------------------------


def _dec(v: int, scale: int) -> str:
    """Exact decimal text of an integer scaled by 10**-scale, without trailing zeros ('189.25', '190')."""
    d = Decimal(int(v)).scaleb(-scale).normalize()
    return format(d, "f")


def _json_dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# Statement-line columns and how each is rendered.
LINE_COLUMNS = {
    "reference": "text",
    "related_reference": "text",
    "value_date": "day",
    "entry_date": "day",
    "trade_date": "day",
    "amount": "money",
    "currency": "text",
    "isin": "text",
    "quantity": "int",
    "price": "price",
    "side": "text",
    "counterparty": "text",
    "account_identifier": "text",
    "description": "text",
    "extra": "text",
}
DIFF_COLUMNS = (
    "source",
    "difference",
    "statement_ref",
    "line_no",
    "trade_ref",
    "account",
    "isin",
    "currency",
    "field",
    "book",
    "external",
)
EPOCH_DAY = np.datetime64("2000-01-01", "D")

LazyText = Callable[[dict[str, np.ndarray], int, int], list[Any]]


@dataclass
class _LineBlock:
    """The lines of one kind of statement, sorted by statement and numbered; lazy columns render per chunk."""

    parts: dict[str, np.ndarray]
    lazy: dict[str, LazyText]

    @property
    def n(self) -> int:
        return len(self.parts["statement"])


class _Statements:
    """Counterparty confirmations, custodian holdings and bank cash statements, with differences injected."""

    def __init__(
        self, rng: np.random.Generator, ref: _Reference, t: _Trades, st: _Settlement, seed: int
    ) -> None:
        self.ref, self.t, self.st, self.seed = ref, t, st, seed
        self.diffs: list[dict[str, Any]] = []
        self.statements: list[dict[str, Any]] = []
        self.blocks: list[_LineBlock] = []
        self.ccy_names = np.array(dd.CURRENCIES, dtype=object)
        self._confirmations(rng)
        self._holdings(rng)
        self._cash(rng)
        # Object columns keep None as None (pandas would otherwise turn missing strings into NaN).
        self.differences = pd.DataFrame(self.diffs, columns=list(DIFF_COLUMNS), dtype=object)

    # helpers ---------------------------------------------------------------------------------------------------------

    def _statement(self, **kw: Any) -> None:
        key = f"opsdesk-demo:{self.seed}:{kw['kind']}:{kw['statement_ref']}"
        kw["content_hash"] = hashlib.sha256(key.encode()).hexdigest()
        self.statements.append(kw)

    def _add_lines(
        self,
        first_statement: int,
        parts: dict[str, np.ndarray],
        lazy: dict[str, LazyText],
        marks: dict[int, dict[str, Any]],
    ) -> None:
        """Sort lines into their statements, number them, and note each difference's statement and line."""
        order = np.lexsort((parts["order"], parts["statement"]))
        for k in list(parts):  # in place: the unsorted arrays are released one by one
            parts[k] = parts[k][order]
        stmt = parts["statement"]
        starts = np.r_[0, np.flatnonzero(np.diff(stmt)) + 1] if len(stmt) else np.zeros(0, dtype=np.int64)
        counts = np.diff(np.r_[starts, len(stmt)])
        parts["line_no"] = np.arange(len(stmt)) - np.repeat(starts, counts) + 1
        parts["statement"] = stmt + first_statement
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order))
        for row, diff in marks.items():
            p = int(position[row])
            diff["line_no"] = int(parts["line_no"][p])
            diff["statement_ref"] = self.statements[int(parts["statement"][p])]["statement_ref"]
            extra = {"demo_difference": diff["difference"], "field": diff["field"]}
            for key in ("book", "external"):
                if diff[key] is not None:
                    extra[key] = diff[key]
            parts["extra"][p] = _json_dumps(extra)
        self.blocks.append(_LineBlock(parts, lazy))

    def _diff(
        self, source: str, difference: str, field: str, book: Any, external: Any, **kw: Any
    ) -> dict[str, Any]:
        d = dict.fromkeys(DIFF_COLUMNS)
        d.update(kw)
        d.update(
            source=source,
            difference=difference,
            field=field,
            book=None if book is None else str(book),
            external=None if external is None else str(external),
        )
        self.diffs.append(d)
        return d

    def _trade_info(self, r: int) -> dict[str, Any]:
        t, ref = self.t, self.ref
        return {
            "trade_ref": t.trade_ref[r],
            "account": ref.ac_code[t.acct[r]],
            "isin": ref.inst_isin[t.inst[r]],
            "currency": dd.CURRENCIES[ref.inst_ccy[t.inst[r]]],
        }

    @staticmethod
    def _day_us(day: np.datetime64) -> int:
        return int(_day_us(np.array([day], dtype="datetime64[D]"))[0])

    # (a) counterparty trade confirmations -----------------------------------------------------------------------------

    def _confirmations(self, rng: np.random.Generator) -> None:
        """One statement per counterparty and trade date, one line per trade it knows.

        The counterparty states the true trade: the right ISIN and price even where our booking is wrong (those are
        BOOK_ERROR rows of the answer). About 2 % of lines differ: quantity, price, settlement date, missing lines,
        and extra lines for trades we never booked.
        """
        ref, t = self.ref, self.t
        src = StatementKind.TRADE_CONFIRMATIONS.value
        n = t.n
        conf = (t.status != ST[TradeStatus.CANCELLED]) & ~t.unknown_cpty
        n_conf = int(conf.sum())
        wrong_codes = [REPAIR_CODES.index(c) for c in ("ISIN_CHECK", "ISIN_UNKNOWN", "PRICE_TOLERANCE")]
        book_error = conf & np.isin(t.code1, wrong_codes)
        free = conf & ~book_error
        missing = _pick(rng, free, _share(n_conf, 0.003))
        q_sel = _pick(rng, free, _share(n_conf, 0.005))
        p_sel = _pick(rng, free, _share(n_conf, 0.005))
        d_sel = _pick(rng, free, _share(n_conf, 0.004))
        has_line = conf.copy()
        has_line[missing] = False
        lines = np.flatnonzero(has_line)
        extra_base = _pick(rng, has_line.copy(), _share(n_conf, 0.002))
        pos = np.full(n, -1, dtype=np.int64)
        pos[lines] = np.arange(len(lines))

        qty = t.qty[lines].copy()
        price = t.true_price8[lines].copy()
        value = t.true_settle[lines].copy()
        amount = t.true_net[lines].copy()
        q_idx, p_idx, d_idx = pos[q_sel], pos[p_sel], pos[d_sel]
        lot = t.lot[q_sel]
        delta = lot * rng.integers(1, 10, len(q_sel)) * np.where(rng.random(len(q_sel)) < 0.5, -1, 1)
        qty[q_idx] = np.where(qty[q_idx] + delta > 0, qty[q_idx] + delta, qty[q_idx] - delta)
        tick8 = t.tick[p_sel] * t.scale8[p_sel]
        moved = price[p_idx] + tick8 * rng.integers(1, 6, len(p_sel)) * np.where(
            rng.random(len(p_sel)) < 0.5, -1, 1
        )
        price[p_idx] = np.where(moved > 0, moved, price[p_idx] + tick8)
        for sel, idx in ((q_sel, q_idx), (p_sel, p_idx)):
            if len(sel):
                amount[idx] = _amounts(ref, t.inst[sel], t.buy[sel], qty[idx], price[idx])[3]
        for mi in np.unique(t.mkt[d_sel]).tolist():
            sub = t.mkt[d_sel] == mi
            value[d_idx[sub]] = ref.cals[mi].add_business_days_array(value[d_idx[sub]], 1)

        # Extra lines: trades the counterparty has and we do not (out-trades), next to a real one.
        xb = extra_base
        x_qty = np.maximum(
            t.lot[xb],
            np.round(t.qty[xb] * rng.uniform(0.5, 2.0, len(xb)) / t.lot[xb]).astype(np.int64) * t.lot[xb],
        )
        x_amount = _amounts(ref, t.inst[xb], t.buy[xb], x_qty, t.true_price8[xb])[3]

        rows = np.concatenate([lines, xb])
        n_l = len(lines)
        day = t.trade_date[rows]
        keys = t.cpty[rows].astype(np.int64) * 100_000 + (day - EPOCH_DAY).astype(np.int64)
        uniq, stmt = np.unique(keys, return_inverse=True)
        first = len(self.statements)
        for key in uniq.tolist():
            c, dnum = divmod(key, 100_000)
            d = EPOCH_DAY + np.timedelta64(dnum, "D")
            code, ds = ref.cp_code[c], str(d)
            self._statement(
                kind=src,
                format="DEMO",
                sender=ref.cp_bic[c],
                account_identifier=f"OPSDESK/{code}",
                account_id=None,
                statement_ref=f"CONF-{code}-{ds.replace('-', '')}",
                sequence_number=None,
                statement_date=d,
                currency=None,
                opening_balance=None,
                closing_balance=None,
                file_name=f"demo/confirmations/{code}_{ds}.csv",
                imported_at=min(self._day_us(d) + DAY + 5 * HOUR, t.cap),
            )
        extra_no = np.concatenate([np.full(n_l, -1), np.arange(len(xb))])
        parts = {
            "statement": stmt.astype(np.int64),
            "order": np.concatenate([t.trade_time[lines], t.trade_time[xb] + 1]),
            "row": rows,
            "extra_no": extra_no,
            "value_date": np.concatenate([value, t.true_settle[xb]]),
            "entry_date": day,
            "trade_date": day,
            "amount": np.concatenate([amount, x_amount]),
            "currency": self.ccy_names[ref.inst_ccy[t.inst[rows]]],
            "isin": ref.inst_isin[t.inst[rows]],
            "quantity": np.concatenate([qty, x_qty]),
            "price": np.concatenate([price, t.true_price8[xb]]),
            "side": _choose(t.buy[rows], "BUY", "SELL"),
            "counterparty": ref.cp_code[t.cpty[rows]],
            "account_identifier": ref.ac_code[t.acct[rows]],
            "description": _same("Trade confirmation", len(rows)),
            "extra": _same("{}", len(rows)),
        }

        def reference(p: dict[str, np.ndarray], a: int, b: int) -> list[Any]:
            out = _their_refs(ref, t, p["row"][a:b])
            for k in np.flatnonzero(p["extra_no"][a:b] >= 0).tolist():
                out[k] = f"{out[k][:4]}X{int(p['extra_no'][a + k]):09d}"
            return out

        def related(p: dict[str, np.ndarray], a: int, b: int) -> list[Any]:
            r = p["row"][a:b]
            # One confirmation in ten does not quote our reference: those match on the trade's details.
            quoted = (p["extra_no"][a:b] < 0) & (t.ids[r] % 10 != 3)
            return [
                ref_ if q else None for ref_, q in zip(t.trade_ref[r].tolist(), quoted.tolist(), strict=True)
            ]

        marks: dict[int, dict[str, Any]] = {}
        for r, k in zip(q_sel.tolist(), q_idx.tolist(), strict=True):
            marks[k] = self._diff(src, "QUANTITY", "quantity", t.qty[r], qty[k], **self._trade_info(r))
        for r, k in zip(p_sel.tolist(), p_idx.tolist(), strict=True):
            book, ext = _dec(t.true_price8[r], PRICE_SCALE), _dec(price[k], PRICE_SCALE)
            marks[k] = self._diff(src, "PRICE", "price", book, ext, **self._trade_info(r))
        for r, k in zip(d_sel.tolist(), d_idx.tolist(), strict=True):
            marks[k] = self._diff(
                src, "SETTLEMENT_DATE", "settlement_date", t.true_settle[r], value[k], **self._trade_info(r)
            )
        for r in np.flatnonzero(book_error).tolist():
            if REPAIR_CODES[t.code1[r]] == "PRICE_TOLERANCE":
                book, ext, fld = _dec(t.price8[r], PRICE_SCALE), _dec(t.true_price8[r], PRICE_SCALE), "price"
            else:
                book, ext, fld = t.isin[r], ref.inst_isin[t.inst[r]], "isin"
            marks[int(pos[r])] = self._diff(src, "BOOK_ERROR", fld, book, ext, **self._trade_info(r))
        for r in missing.tolist():
            sref = f"CONF-{ref.cp_code[t.cpty[r]]}-{str(t.trade_date[r]).replace('-', '')}"
            self._diff(
                src, "MISSING", "trade", t.trade_ref[r], None, statement_ref=sref, **self._trade_info(r)
            )
        x_refs = reference(parts | {"row": rows, "extra_no": extra_no}, n_l, len(rows))
        for k, r in enumerate(xb.tolist()):
            info = self._trade_info(r) | {"trade_ref": None}
            marks[n_l + k] = self._diff(src, "EXTRA", "trade", None, x_refs[k], **info)
        self._add_lines(first, parts, {"reference": reference, "related_reference": related}, marks)

    # (b) custodian holdings --------------------------------------------------------------------------------------------

    def _holdings(self, rng: np.random.Generator) -> None:
        """One statement per account and market (its safekeeping account) as of the market's last business day:
        the settled position of every instrument held, with a few quantity differences, missing and extra lines."""
        ref, t, st = self.ref, self.t, self.st
        src = StatementKind.HOLDINGS.value
        p = st.positions
        acct, inst, settled = (p[k].to_numpy() for k in ("acct", "inst", "settled"))
        keep = (settled != 0) & (ref.inst_ac[inst] != FUT)
        acct, inst, settled = acct[keep], inst[keep], settled[keep]
        mkt = ref.inst_mkt[inst]
        n = len(acct)
        free = np.ones(n, dtype=bool)
        q_sel = _pick(rng, free, _share(n, 0.01))
        missing = _pick(rng, free, _share(n, 0.005))
        ext_qty = settled.copy()
        lot = ref.inst_lot[inst[q_sel]]
        delta = np.maximum(
            lot, (np.abs(settled[q_sel]) * rng.uniform(0.02, 0.2, len(q_sel)) // lot).astype(np.int64) * lot
        )
        ext_qty[q_sel] = settled[q_sel] + np.where(rng.random(len(q_sel)) < 0.5, -delta, delta)
        # Extra lines: the custodian reports an instrument of that market the account does not hold.
        held = set(zip(acct.tolist(), inst.tolist(), strict=True))
        x_acct: list[int] = []
        x_inst: list[int] = []
        for r in rng.choice(n, size=min(_share(n, 0.005), n), replace=False).tolist() if n else []:
            cands = [
                c
                for c in np.flatnonzero((ref.inst_mkt == mkt[r]) & (ref.inst_ac != FUT)).tolist()
                if (int(acct[r]), c) not in held
            ]
            if cands:
                c = cands[int(rng.integers(len(cands)))]
                held.add((int(acct[r]), c))
                x_acct.append(int(acct[r]))
                x_inst.append(c)
        xa, xi = np.array(x_acct, dtype=np.int64), np.array(x_inst, dtype=np.int64)
        x_qty = ref.inst_lot[xi] * rng.integers(1, 500, len(xi))

        lines = np.flatnonzero(~np.isin(np.arange(n), missing))
        l_acct = np.concatenate([acct[lines], xa])
        l_inst = np.concatenate([inst[lines], xi])
        l_qty = np.concatenate([ext_qty[lines], x_qty])
        l_mkt = ref.inst_mkt[l_inst]
        keys = l_acct * 100 + l_mkt
        # Every safekeeping account with holdings gets its statement, even if all its lines went missing.
        uniq = np.unique(np.concatenate([acct * 100 + mkt, keys]))
        stmt = np.searchsorted(uniq, keys)
        first = len(self.statements)
        for key in uniq.tolist():
            a, m = divmod(key, 100)
            day = t.window[m][-1]  # the market's last business day before today
            safekeeping = ref.our_safekeeping[a, m]
            self._statement(
                kind=src,
                format="DEMO",
                sender=ref.markets[m].our_agent_bic,
                account_identifier=safekeeping,
                account_id=a + 1,
                statement_ref=f"HLD-{safekeeping}-{str(day).replace('-', '')}",
                sequence_number=None,
                statement_date=day,
                currency=None,
                opening_balance=None,
                closing_balance=None,
                file_name=f"demo/holdings/{ref.ac_code[a]}_{ref.markets[m].mic}_{day}.txt",
                imported_at=min(self._day_us(day) + DAY + 4 * HOUR, t.cap),
            )
        n_l = len(l_acct)
        days = t.window[l_mkt, -1]
        parts = {
            "statement": stmt.astype(np.int64),
            "order": l_inst.astype(np.int64),
            "acct": l_acct,
            "inst": l_inst,
            "related_reference": _same(None, n_l),
            "value_date": days,
            "entry_date": days,
            "trade_date": np.full(n_l, np.datetime64("NaT"), dtype="datetime64[D]"),
            "amount": np.full(n_l, NAT, dtype=np.int64),
            "currency": self.ccy_names[ref.inst_ccy[l_inst]],
            "isin": ref.inst_isin[l_inst],
            "quantity": l_qty,
            "price": ref.inst_ref[l_inst] * np.power(10, PRICE_SCALE - ref.inst_pdp[l_inst]),
            "side": _same(None, n_l),
            "counterparty": _same(None, n_l),
            "account_identifier": ref.our_safekeeping[l_acct, l_mkt],
            "description": np.array([s["name"] for s in ref.inst_specs], dtype=object)[l_inst],
            "extra": _same("{}", n_l),
        }

        def reference(p: dict[str, np.ndarray], a: int, b: int) -> list[Any]:
            return [
                f"POS-{x + 1:03d}-{i + 1:05d}"
                for x, i in zip(p["acct"][a:b].tolist(), p["inst"][a:b].tolist(), strict=True)
            ]

        def info(a: int, i: int) -> dict[str, Any]:
            return {
                "account": ref.ac_code[a],
                "isin": ref.inst_isin[i],
                "currency": dd.CURRENCIES[ref.inst_ccy[i]],
            }

        pos = np.full(n, -1, dtype=np.int64)
        pos[lines] = np.arange(len(lines))
        marks: dict[int, dict[str, Any]] = {}
        for r in q_sel.tolist():
            marks[int(pos[r])] = self._diff(
                src, "QUANTITY", "quantity", settled[r], ext_qty[r], **info(acct[r], inst[r])
            )
        for r in missing.tolist():
            day = t.window[mkt[r]][-1]
            sref = f"HLD-{ref.our_safekeeping[acct[r], mkt[r]]}-{str(day).replace('-', '')}"
            self._diff(
                src, "MISSING", "quantity", settled[r], None, statement_ref=sref, **info(acct[r], inst[r])
            )
        for k in range(len(x_acct)):
            marks[len(lines) + k] = self._diff(
                src, "EXTRA", "quantity", None, x_qty[k], **info(x_acct[k], x_inst[k])
            )
        self._add_lines(first, parts, {"reference": reference}, marks)

    # (c) bank cash statements -----------------------------------------------------------------------------------------

    def _cash(self, rng: np.random.Generator) -> None:
        """One statement per account, currency and value date with settled cash, opening and closing balances
        chained from the opening cash; a few amounts differ (charges taken), lines missing, extra charges."""
        ref, t, st = self.ref, self.t, self.st
        src = StatementKind.CASH.value
        c = st.cash
        rows = np.flatnonzero(c["kind"] == st.k_st)
        n = len(rows)
        free = np.ones(n, dtype=bool)
        a_sel = _pick(rng, free, _share(n, 0.0005))
        missing = _pick(rng, free, _share(n, 0.0003))
        acct = c["account"][rows].astype(np.int64)
        ccy = c["currency"][rows].astype(np.int64)
        amount = c["amount"][rows]
        vday = c["value_date"][rows]
        unit = np.where(ccy == CCY["JPY"], 100 * UNIT, UNIT)  # charges of 25 USD/EUR/GBP/CHF, 2,500 JPY
        ext = amount.copy()
        ext[a_sel] = amount[a_sel] - 25 * unit[a_sel]  # the bank took its charges out of the settlement
        keep = np.flatnonzero(~np.isin(np.arange(n), missing))
        # Extra lines: account charges on a day the account already has a statement.
        x_base = (
            np.sort(rng.choice(keep, size=min(_share(n, 0.0003), len(keep)), replace=False))
            if len(keep)
            else keep
        )
        x_amount = -unit[x_base] * rng.integers(10, 60, len(x_base))

        src_row = np.concatenate([rows[keep], np.full(len(x_base), -1)])  # row in st.cash, -1 for charges
        l_acct = np.concatenate([acct[keep], acct[x_base]])
        l_ccy = np.concatenate([ccy[keep], ccy[x_base]])
        l_day = np.concatenate([vday[keep], vday[x_base]])
        l_amount = np.concatenate([ext[keep], x_amount])
        keys = (l_acct * 10 + l_ccy) * 100_000 + (l_day - EPOCH_DAY).astype(np.int64)
        uniq, stmt = np.unique(keys, return_inverse=True)
        # The first statement of an account and currency opens at the book's settled balance before that day (the
        # opening cash); each later one opens at the previous closing, so a difference carries forward.
        sums = np.zeros(len(uniq), dtype=np.int64)
        np.add.at(sums, stmt, l_amount)
        pair = uniq // 100_000
        dep = c["kind"] == list(MovementKind).index(MovementKind.DEPOSIT)
        deposits = pd.Series(
            c["amount"][dep], index=c["account"][dep].astype(np.int64) * 10 + c["currency"][dep]
        )
        base = deposits.groupby(level=0).sum().reindex(pair, fill_value=0).to_numpy()
        frame = pd.DataFrame({"pair": pair, "sum": sums})
        opening = base + frame.groupby("pair")["sum"].cumsum().to_numpy() - sums
        closing = opening + sums
        seq = frame.groupby("pair").cumcount().to_numpy() + 1
        first = len(self.statements)
        for k, key in enumerate(uniq.tolist()):
            pr, dnum = divmod(key, 100_000)
            a, cc = divmod(pr, 10)
            day = EPOCH_DAY + np.timedelta64(dnum, "D")
            account = ref.cash_account[a, cc]
            self._statement(
                kind=src,
                format="DEMO",
                sender=dd.CASH_BANK_BICS[dd.CURRENCIES[cc]],
                account_identifier=account,
                account_id=a + 1,
                statement_ref=f"{account}/{seq[k]:04d}",
                sequence_number=str(seq[k]),
                statement_date=day,
                currency=dd.CURRENCIES[cc],
                opening_balance=int(opening[k]),
                closing_balance=int(closing[k]),
                file_name=f"demo/cash/{ref.ac_code[a]}-{dd.CURRENCIES[cc]}-{day}.sta",
                imported_at=min(self._day_us(day) + DAY + 3 * HOUR, t.cap),
            )
        n_l = len(l_acct)
        charge = src_row < 0
        safe = np.maximum(src_row, 0)
        trow = np.where(charge, -1, c["trade_row"][safe])
        instr = np.where(charge, 0, c["instruction"][safe])
        tsafe = np.maximum(trow, 0)
        fut = ~charge & t.fut[tsafe]
        buy = ~charge & t.buy[tsafe]
        labels = np.array(
            ["DVP settlement", "RVP settlement", "Futures commission and fees", "Account charges"],
            dtype=object,
        )
        description = labels[np.where(charge, 3, np.where(fut, 2, buy.astype(np.intp)))]
        isin = ref.inst_isin[t.inst[tsafe]]
        isin[charge] = None
        movement = np.where(charge, 0, st.cash_ids[safe])
        parts = {
            "statement": stmt.astype(np.int64),
            "order": movement + np.where(charge, 10**12, 0),
            "movement": movement,
            "charge_no": np.where(charge, np.cumsum(charge) - 1, -1),
            "instruction": instr,
            "trade_row": trow,
            "value_date": l_day,
            "entry_date": l_day,
            "trade_date": np.full(n_l, np.datetime64("NaT"), dtype="datetime64[D]"),
            "amount": l_amount,
            "currency": self.ccy_names[l_ccy],
            "isin": isin,
            "quantity": np.full(n_l, NAT, dtype=np.int64),
            "price": np.full(n_l, NAT, dtype=np.int64),
            "side": _same(None, n_l),
            "counterparty": _same(None, n_l),
            "account_identifier": ref.cash_account[l_acct, l_ccy],
            "description": description,
            "extra": _same("{}", n_l),
        }

        def reference(p: dict[str, np.ndarray], a: int, b: int) -> list[Any]:
            return [
                f"BNK{m:010d}" if m else f"BNKCHG{x:06d}"
                for m, x in zip(p["movement"][a:b].tolist(), p["charge_no"][a:b].tolist(), strict=True)
            ]

        def related(p: dict[str, np.ndarray], a: int, b: int) -> list[Any]:
            # Settlements quote our instruction reference; futures fees the trade reference.
            out: list[Any] = []
            for i, r in zip(p["instruction"][a:b].tolist(), p["trade_row"][a:b].tolist(), strict=True):
                out.append(f"SEME{i:012d}" if i else (t.trade_ref[r] if r >= 0 else None))
            return out

        def info(r: int) -> dict[str, Any]:
            tr = int(c["trade_row"][rows[r]])
            return {
                "trade_ref": t.trade_ref[tr] if tr >= 0 else None,
                "account": ref.ac_code[acct[r]],
                "isin": ref.inst_isin[t.inst[tr]] if tr >= 0 else None,
                "currency": dd.CURRENCIES[ccy[r]],
            }

        pos = np.full(n, -1, dtype=np.int64)
        pos[keep] = np.arange(len(keep))
        marks: dict[int, dict[str, Any]] = {}
        for r in a_sel.tolist():
            marks[int(pos[r])] = self._diff(
                src, "AMOUNT", "amount", _dec(amount[r], MONEY_SCALE), _dec(ext[r], MONEY_SCALE), **info(r)
            )
        for r in missing.tolist():
            key = (int(acct[r]) * 10 + int(ccy[r])) * 100_000 + int((vday[r] - EPOCH_DAY).astype(np.int64))
            hit = int(np.searchsorted(uniq, key))
            sref = (
                self.statements[first + hit]["statement_ref"]
                if hit < len(uniq) and uniq[hit] == key
                else None
            )
            self._diff(
                src, "MISSING", "amount", _dec(amount[r], MONEY_SCALE), None, statement_ref=sref, **info(r)
            )
        for k, r in enumerate(x_base.tolist()):
            i = info(r) | {"trade_ref": None, "isin": None}
            marks[len(keep) + k] = self._diff(
                src, "EXTRA", "amount", None, _dec(x_amount[k], MONEY_SCALE), **i
            )
        self._add_lines(first, parts, {"reference": reference, "related_reference": related}, marks)

    # frames ------------------------------------------------------------------------------------------------------------

    def statement_frame(self) -> Frame:
        s = self.statements
        n = len(s)

        def col(key: str) -> list[Any]:
            return [r[key] for r in s]

        def money(key: str) -> np.ndarray:
            return np.array([NAT if r[key] is None else int(r[key]) for r in s], dtype=np.int64)

        f = Frame("statements", n)
        f.add("id", "int", np.arange(1, n + 1, dtype=np.int64))
        for key in ("kind", "format", "sender", "account_identifier"):
            f.add(key, "text", col(key))
        f.add("account_id", "ref", np.array([r["account_id"] or 0 for r in s], dtype=np.int64))
        for key in ("statement_ref", "sequence_number"):
            f.add(key, "text", col(key))
        f.add("statement_date", "day", np.array(col("statement_date"), dtype="datetime64[D]"))
        f.add("currency", "text", col("currency"))
        f.add("opening_balance", "money", money("opening_balance"))
        f.add("closing_balance", "money", money("closing_balance"))
        f.add("warnings", "const", "[]")
        f.add("file_name", "text", col("file_name"))
        f.add("content_hash", "text", col("content_hash"))
        f.add("imported_at", "ts", np.array(col("imported_at"), dtype=np.int64))
        f.add("imported_by_id", "const", None)
        return f

    def line_frames(self) -> list[Frame]:
        """One frame per kind of statement (consecutive ids), so the big line arrays are never concatenated."""
        frames = []
        next_id = 1
        for block in self.blocks:
            p = block.parts
            f = Frame("statement_lines", block.n)
            f.add("id", "int", np.arange(next_id, next_id + block.n, dtype=np.int64))
            f.add("statement_id", "int", p["statement"] + 1)
            f.add("line_no", "int", p["line_no"])
            for name, kind in LINE_COLUMNS.items():
                if name in block.lazy:
                    fn = block.lazy[name]
                    f.add(name, "lazy", lambda a, b, fn=fn, p=p: fn(p, a, b))
                else:
                    f.add(name, kind, p[name])
            frames.append(f)
            next_id += block.n
        return frames
