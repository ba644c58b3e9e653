"""Settlement instructions from validated trades: gross or netted, set-based, idempotent; and un-netting.

Which trades: VALIDATED, CONFIRMED or AFFIRMED trades of a CSD-settled instrument (not futures: they clear through
the CCP on trade date, as in the demo book) with account, counterparty, settlement date and the SSIs of both sides,
that no live (not CANCELLED) instruction settles yet. Running twice creates nothing new; a trade whose instruction
was cancelled (un-netting, re-instruction) is picked up again.

What: DVP/RVP for a trade against payment, DFP/RFP for a free transfer (net amount 0); buying receives (RVP/RFP),
selling delivers. ``settlement_amount`` is the trade's net amount; ``instruction_ref`` is ``SEME`` and the id on 12
digits, like the demo book's. New instructions are PENDING (generated, not yet sent); the trades keep their status
until the instruction goes out (``lifecycle``).

Netting: trades against payment of a counterparty that nets (``counterparties.netting``; ``net=True``/``False``
forces it for the run) are grouped by counterparty × ISIN × settlement date × account (and currency and both SSIs,
which must agree for one instruction to carry them). A group of two or more trades whose quantities do not cancel
out becomes one netted instruction: direction from the sign of the net quantity, quantity its absolute value,
settlement amount the net cash we pay (RVP) or receive (DVP) - negative when the cash flows the same way as the
securities (we receive securities and cash). Its trades are linked through ``instruction_trades``. Groups of one
trade, and groups that net to zero securities, stay gross.

How: the eligible trades are read once into a working table (``sg_t``); nothing then goes through Python per row.
PostgreSQL hash-aggregates the nettable trades into ``sg_g`` (each group with its trades as an array): a group of
one is its trade's gross instruction read off the aggregate, a group that nets to something is an obligation, and
their links are the unnested arrays; the trades that do not net (and those of groups netting to zero) are gross.
One data-modifying statement numbers all of them in settlement-date order and writes each instruction and its links;
every row goes in in id order, with no join back from groups to trades (see ``_write_postgres``). SQLite keeps the
portable form (``_write_sqlite``): the groups (``sg_g``) and every trade with its instruction (``sg_a``), then
INSERT ... SELECT, numbered in the order they come. Ids are reserved in one step (PostgreSQL: the table's sequence
moved past the range; SQLite ``max(id) + n`` inside the BEGIN IMMEDIATE transaction). A large run defers the
secondary indexes (and on PostgreSQL the foreign keys, the unique reference and the links' primary key) of the two
tables it fills and rebuilds them once, by sorting - all but the two partial ones no new instruction enters (owner,
replaced instruction), which stay in place (``capture.bulk.deferred_indexes``, ``_deferred_unique``); on
PostgreSQL the settlement-date order of the ids hands two of those sorts presorted rows. One audit entry per run.
Trade capture calls :func:`on_trades_changed` when a file or a FIX log amends or cancels trades.

Un-netting (``unnet``, ``on_trade_changed``): a netted obligation whose trade is amended or cancelled is CANCELLED
through the lifecycle and replaced - by gross instructions, or by a new netted one of the trades that remain - each
replacement pointing back to it through ``replaces_id``, all audited.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, bindparam, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.models import (
    Counterparty,
    InstructionTrade,
    Instrument,
    SettlementInstruction,
    Trade,
    utcnow,
)
from app.models.base import UTCDateTime
from app.models.enums import (
    AssetClass,
    ChangeAction,
    InstructionStatus,
    InstructionType,
    Side,
    TradeStatus,
)

from .. import audit
from ..capture import bulk
from ..db import Database
from ..errors import NotFound, ValidationFailed
from ..permissions import Actor, Permission, require
from . import lifecycle

ELIGIBLE_STATUSES = (TradeStatus.VALIDATED, TradeStatus.CONFIRMED, TradeStatus.AFFIRMED)
_ELIGIBLE_SQL = ", ".join(f"'{s.value}'" for s in ELIGIBLE_STATUSES)
# Settles or may still settle: such an instruction owns its trades (a trade is instructed once).
LIVE_STATUSES = tuple(s for s in InstructionStatus if s is not InstructionStatus.CANCELLED)
_PG_LOCK_KEY = 0x5E771E  # advisory lock: one generation run at a time on the shared database
_KEY = ("account_id", "counterparty_id", "instrument_id", "isd", "currency", "our_ssi_id", "their_ssi_id")
_COLS = (
    "id, instruction_ref, instruction_type, is_netted, account_id, counterparty_id, instrument_id, quantity, "
    "settlement_amount, currency, trade_date, intended_settlement_date, settled_quantity, settled_amount, "
    "status, our_ssi_id, their_ssi_id, version, created_at, updated_at, updated_by_id"
)
# A gross instruction's type: buying receives, selling delivers; against payment unless the net amount is 0.
_GROSS_TYPE = (
    "CASE WHEN side = 'BUY' THEN (CASE WHEN net_amount = 0 THEN 'RFP' ELSE 'RVP' END) "
    "ELSE (CASE WHEN net_amount = 0 THEN 'DFP' ELSE 'DVP' END) END"
)


@dataclass
class GenerateResult:
    """What a generation run created."""

    instructions: int = 0
    gross: int = 0
    netted: int = 0
    trades: int = 0
    netted_trades: int = 0
    skipped_no_ssi: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    settle_date: dt.date | None = None
    net: bool | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "instructions": self.instructions,
            "gross": self.gross,
            "netted": self.netted,
            "trades": self.trades,
            "netted_trades": self.netted_trades,
            "skipped_no_ssi": self.skipped_no_ssi,
            "by_type": dict(self.by_type),
            "settle_date": self.settle_date,
            "net": {None: "as configured", True: "net", False: "gross"}[self.net],
            "seconds": round(self.seconds, 3),
        }

    def __str__(self) -> str:
        if not self.instructions:
            extra = f"; {self.skipped_no_ssi:,} trade(s) lack an SSI" if self.skipped_no_ssi else ""
            return f"No new settlement instructions: every eligible trade is already instructed{extra}."
        types = ", ".join(f"{k} {v:,}" for k, v in sorted(self.by_type.items()))
        text_ = (
            f"Generated {self.instructions:,} instruction(s) for {self.trades:,} trade(s): {self.gross:,} gross, "
            f"{self.netted:,} netted from {self.netted_trades:,} trades ({types})"
        )
        if self.skipped_no_ssi:
            text_ += f"; {self.skipped_no_ssi:,} trade(s) skipped for lack of an SSI"
        return text_ + "."


# =====================================================================================================================
# Generation
# =====================================================================================================================


def generate_instructions(
    db: Database,
    actor: Actor,
    *,
    settle_date: dt.date | None = None,
    net: bool | None = None,
) -> GenerateResult:
    """Create the instructions of every eligible trade (settling on ``settle_date`` when given) in one unit of work.

    ``net``: None nets as configured per counterparty, True nets every counterparty, False nets none.
    """
    require(actor, Permission.RUN_PROCESSES)
    with db.write() as s:
        return generate_in_session(s, actor, settle_date=settle_date, net=net)


def generate_in_session(
    session: Session,
    actor: Actor,
    *,
    settle_date: dt.date | None = None,
    net: bool | None = None,
) -> GenerateResult:
    """``generate_instructions`` in the caller's unit of work (demo seeding, tests, benchmarks)."""
    require(actor, Permission.RUN_PROCESSES)
    started = time.perf_counter()
    pg = bulk.is_postgres(session)
    conn = session.connection()
    if pg:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
        # A few big set-based statements over simple expressions: compiling them (about 0.1 s each past the JIT
        # cost threshold) costs more than it saves.
        conn.exec_driver_sql("SET LOCAL jit = off")
        _temp_buffers(session)
    result = GenerateResult(settle_date=settle_date, net=net)
    params: dict[str, Any] = {}
    date_cond = ""
    if settle_date is not None:
        date_cond = "AND t.settlement_date = :d"
        params["d"] = settle_date
    _drop_temp(session)
    temp = "CREATE TEMP TABLE {name} ON COMMIT DROP AS " if pg else "CREATE TEMP TABLE {name} AS "
    # The instrument and counterparty conditions are hashed subqueries over the two small tables, not joins: one
    # hash probe per trade instead of two hash joins carrying every trade's row (measured at 1,000,000 trades on
    # PostgreSQL: 1.6 s of server CPU instead of 2.1 s).
    if net is None:
        nettable = (
            "(t.counterparty_id IN (SELECT id FROM counterparties WHERE netting) AND t.net_amount <> 0)"
        )
    elif net:
        nettable = "(t.net_amount <> 0)"
    else:
        nettable = "(1 = 0)"
    created = session.execute(
        text(
            temp.format(name="sg_t")
            + f"""
            SELECT t.id AS trade_id, t.account_id, t.counterparty_id, t.instrument_id, t.settlement_date AS isd,
                   t.currency, t.our_ssi_id, t.their_ssi_id, t.trade_date, t.side, t.quantity, t.net_amount,
                   CASE WHEN t.side = 'BUY' THEN t.quantity ELSE -t.quantity END AS sq,
                   CASE WHEN t.side = 'BUY' THEN -t.net_amount ELSE t.net_amount END AS sc,
                   {nettable} AS nettable
            FROM trades t
            WHERE t.status IN ({_ELIGIBLE_SQL})
              AND t.instrument_id IS NOT NULL AND t.counterparty_id IS NOT NULL
              AND t.instrument_id NOT IN (SELECT id FROM instruments WHERE asset_class = 'FUTURE')
              AND t.settlement_date IS NOT NULL AND t.account_id IS NOT NULL
              AND t.our_ssi_id IS NOT NULL AND t.their_ssi_id IS NOT NULL {date_cond}
              AND NOT EXISTS (
                  SELECT 1 FROM instruction_trades it
                  JOIN settlement_instructions si ON si.id = it.instruction_id
                  WHERE it.trade_id = t.id AND si.status <> 'CANCELLED')
            """
        ),
        params,
    )
    result.skipped_no_ssi = int(
        session.execute(
            text(
                f"""
                SELECT count(*) FROM trades t JOIN instruments i ON i.id = t.instrument_id
                WHERE t.status IN ({_ELIGIBLE_SQL}) AND i.asset_class <> 'FUTURE'
                  AND (t.our_ssi_id IS NULL OR t.their_ssi_id IS NULL) {date_cond}
                """
            ),
            params,
        ).scalar()
        or 0
    )
    if pg:
        # Row count and rough distinct counts are all the planner needs for the two hash steps: a small sample.
        conn.exec_driver_sql("SET LOCAL default_statistics_target = 10")
        conn.exec_driver_sql("ANALYZE sg_t")
        conn.exec_driver_sql("RESET default_statistics_target")
    if pg:
        # CREATE TABLE AS reports its row count: no pass over the million rows to count them (the trades that do
        # not net are counted from the groups, in _write_postgres).
        n_trades = int(created.rowcount)  # type: ignore[attr-defined]
    else:
        n_trades = int(conn.exec_driver_sql("SELECT count(*) FROM sg_t").scalar() or 0)
    if n_trades == 0:
        _drop_temp(session)
        result.seconds = time.perf_counter() - started
        return result

    stamp = {"now": utcnow(), "uid": actor.user_id}
    if pg:
        _write_postgres(session, result, n_trades, stamp)
    else:
        _write_sqlite(session, result, n_trades, stamp)
    _drop_temp(session)
    result.trades = n_trades
    result.seconds = time.perf_counter() - started
    audit.record(
        session,
        actor,
        "settlement.generate",
        "settlement_instructions",
        None,
        after=result.as_dict(),
        change=ChangeAction.BULK,
        summary={"action": "settlement.generate", "instructions": result.instructions},
    )
    return result


def _write_postgres(session: Session, result: GenerateResult, n_trades: int, stamp: dict[str, Any]) -> None:
    """PostgreSQL: one hash aggregate of the nettable trades (``sg_g``, each group with its trades as an array),
    then one data-modifying statement that numbers and writes every instruction and link in id order, and no
    per-trade join.

    A group of one trade is that trade's gross instruction, read off the aggregate (the same values: one quantity,
    one amount, one date); a group of two or more that does not net to zero is a netted obligation, its links the
    unnested array. The trades that do not net, and those of the rare groups that net to zero, are gross
    instructions of their own. All of them are numbered together in settlement-date order (a CTE read once) and
    written, instruction and links, from the same numbered rows; the gross ones are counted by type on the way.
    """
    conn = session.connection()
    key = ", ".join(_KEY)
    # Hash, not sort, the nettable trades into their groups. The planner prices array_agg's state at 8 kB a group
    # and so sorts half a million trades on the seven key columns; the real state is well under 1 kB, and hashing
    # measured up to 0.2 s of server CPU cheaper at 1,000,000 trades (min of three, on a loaded machine). Memory
    # stays bounded: past work_mem x hash_mem_multiplier the aggregate spills to disk. Sorting is allowed again
    # right after (the numbering below sorts the instructions by settlement date).
    conn.exec_driver_sql("SET LOCAL enable_sort = off")
    conn.exec_driver_sql(
        f"""
        CREATE TEMP TABLE sg_g ON COMMIT DROP AS
        SELECT {key}, count(*) AS n, sum(sq) AS q, round(sum(sc), 4) AS c, max(trade_date) AS trade_date,
               min(side) AS side, array_agg(trade_id) AS trade_ids, count(*) > 1 AND sum(sq) = 0 AS zero
        FROM sg_t WHERE nettable
        GROUP BY {key}
        """
    )
    conn.exec_driver_sql("SET LOCAL enable_sort = on")
    # Direction of a group's instruction: a lone trade's own side, else the sign of the net quantity.
    receive = "CASE WHEN n = 1 THEN side = 'BUY' ELSE q > 0 END"
    n_group_instr = n_zero_trades = n_grouped_trades = 0
    for netted, kind, count, trades in conn.exec_driver_sql(
        f"SELECT n > 1 AND NOT zero, CASE WHEN zero THEN NULL WHEN {receive} THEN 'RVP' ELSE 'DVP' END, "
        "count(*), sum(n) FROM sg_g GROUP BY 1, 2"
    ):
        n_grouped_trades += int(trades)
        if kind is None:
            n_zero_trades += int(trades)
            continue
        n_group_instr += int(count)
        result.by_type[str(kind)] = result.by_type.get(str(kind), 0) + int(count)
        if netted:
            result.netted += int(count)
            result.netted_trades += int(trades)
    # Every nettable trade is in exactly one group; the others are instructed gross after the groups.
    n_plain = n_trades - n_grouped_trades
    n_gross_rest = n_plain + n_zero_trades
    result.gross = n_group_instr - result.netted + n_gross_rest
    result.instructions = n_group_instr + n_gross_rest
    base = _reserve_ids(session, result.instructions)
    ref = f"'SEME' || lpad(CAST({base} + num AS text), 12, '0')"
    values = (
        f"'{InstructionStatus.PENDING.value}', our_ssi_id, their_ssi_id, 1, :now, :now, CAST(:uid AS BIGINT)"
    )
    now = [bindparam("now", type_=UTCDateTime())]
    with (
        bulk.deferred_indexes(
            session, "settlement_instructions", result.instructions, keep=_UNTOUCHED_INDEXES
        ) as si_deferred,
        bulk.deferred_indexes(session, "instruction_trades", n_trades) as links_deferred,
        _deferred_unique(session, "settlement_instructions", _UNIQUE_REF if si_deferred else ()),
        _deferred_unique(session, "instruction_trades", _LINKS_PK if links_deferred else ()),
    ):
        zero = ""
        if n_zero_trades:
            zero = (
                "UNION ALL SELECT t.* FROM sg_t t JOIN (SELECT unnest(trade_ids) AS trade_id FROM sg_g "
                "WHERE zero) z ON z.trade_id = t.trade_id"
            )
        # One statement numbers every instruction - the groups' and the gross ones - in settlement-date order and
        # writes them, and their links, in that (id) order. The rebuilt (status, settlement date, id) and
        # (settlement date, id) indexes then read their rows already in key order (every new row is PENDING), and
        # the sort of the index build finds them presorted: measured at 620,000 instructions, 0.6 s of server CPU
        # to build the first instead of 1.9 s, for a sort of the rows by date here. The tie-break (a group's first
        # trade, a gross instruction's trade) only makes the numbering deterministic; each trade is in one row.
        kinds = session.execute(
            text(
                f"""
                WITH u AS (
                    SELECT false AS gross, isd, trade_ids[1] AS k,
                           CASE WHEN {receive} THEN 'RVP' ELSE 'DVP' END AS kind, n > 1 AS netted,
                           account_id, counterparty_id, instrument_id, abs(q) AS quantity,
                           CASE WHEN {receive} THEN -c ELSE c END AS amount, currency, trade_date,
                           our_ssi_id, their_ssi_id, trade_ids
                    FROM sg_g WHERE NOT zero
                    UNION ALL
                    SELECT true, isd, trade_id, {_GROSS_TYPE}, false, account_id, counterparty_id,
                           instrument_id, quantity, net_amount, currency, trade_date, our_ssi_id, their_ssi_id,
                           ARRAY[trade_id]
                    FROM (SELECT * FROM sg_t WHERE NOT nettable {zero}) t),
                src AS MATERIALIZED (SELECT row_number() OVER (ORDER BY isd, k) AS num, u.* FROM u),
                si AS (
                    INSERT INTO settlement_instructions ({_COLS})
                    SELECT {base} + num, {ref}, kind, netted, account_id, counterparty_id, instrument_id,
                           quantity, amount, currency, trade_date, isd, 0, 0, {values}
                    FROM src),
                links AS (
                    INSERT INTO instruction_trades (instruction_id, trade_id)
                    SELECT {base} + num, unnest(trade_ids) FROM src)
                SELECT kind, count(*) FROM src WHERE gross GROUP BY 1
                """
            ).bindparams(*now),
            stamp,
        ).all()
        for kind, count in kinds:
            result.by_type[str(kind)] = result.by_type.get(str(kind), 0) + int(count)


# Partial indexes no new instruction enters: a run writes no owner (unclaimed) and no replaced instruction, so
# keeping them costs one predicate test per row, while rebuilding them scans the whole table (measured at
# 620,000 instructions on a loaded machine: about 0.5 s of wall time and 0.1 s of server CPU each to build).
_UNTOUCHED_INDEXES = ("ix_settlement_instructions_owner_id", "ix_settlement_instructions_replaces_id")

# Unique constraints no foreign key points at, rebuilt by one sort when the run rebuilds the table's other indexes
# (measured: 1,000,000 links inserted in key order 1.8 s of server CPU with the primary key, 0.7 s without it and
# 0.4 s to add it back). The instructions' primary key stays: other tables' foreign keys point at it.
_UNIQUE_REF = ("uq_settlement_instructions_instruction_ref",)
_LINKS_PK = ("pk_instruction_trades",)


@contextlib.contextmanager
def _deferred_unique(session: Session, table: str, names: tuple[str, ...]) -> Iterator[None]:
    """PostgreSQL: drop the named unique constraints of ``table`` and add them back from their own definitions when
    the block ends (uniqueness is then checked over all rows at once; a duplicate fails the run). Only called while
    ``bulk.deferred_indexes`` holds the table's exclusive lock; does nothing without names."""
    conn = session.connection()
    found = (
        [
            (str(name), str(definition))
            for name, definition in conn.execute(
                text(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = CAST(:t AS regclass) AND conname = ANY(:names) ORDER BY conname"
                ),
                {"t": table, "names": list(names)},
            )
        ]
        if names
        else []
    )
    for name, _ in found:
        conn.exec_driver_sql(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    yield
    for name, definition in found:
        conn.exec_driver_sql(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


def _write_sqlite(session: Session, result: GenerateResult, n_trades: int, stamp: dict[str, Any]) -> None:
    """SQLite: the netted groups (``sg_g``) and every trade with the instruction it goes to (``sg_a``: its group's,
    or a gross one numbered by a running count) as working tables; then the instructions and all their links by
    INSERT ... SELECT from those."""
    conn = session.connection()
    temp = "CREATE TEMP TABLE {name} AS "
    key = ", ".join(_KEY)

    # Netted groups: one row per obligation, with its id (1..n_groups, relative to the range reserved below).
    session.execute(
        text(
            temp.format(name="sg_g")
            + f"""
            SELECT row_number() OVER () AS instr_id, g.* FROM (
                SELECT {key}, count(*) AS n, sum(sq) AS q, round(sum(sc), 4) AS c, max(trade_date) AS trade_date
                FROM sg_t WHERE nettable
                GROUP BY {key}
                HAVING count(*) > 1 AND sum(sq) <> 0
            ) g
            """
        )
    )
    n_groups = int(conn.exec_driver_sql("SELECT count(*) FROM sg_g").scalar() or 0)
    # Every trade with the instruction it goes to, in one pass: its group's obligation, or a gross instruction of
    # its own numbered after the groups by a running count (a window without ORDER BY: no sort). Both the gross
    # instructions and every link are then read from this one table.
    join = " AND ".join(f"t.{k} = g.{k}" for k in _KEY)
    session.execute(
        text(
            temp.format(name="sg_a")
            + f"""
            SELECT coalesce(g.instr_id, {n_groups}
                            + sum(CASE WHEN g.instr_id IS NULL THEN 1 ELSE 0 END) OVER (ROWS UNBOUNDED PRECEDING))
                       AS instr_id,
                   g.instr_id IS NOT NULL AS in_group, t.*
            FROM sg_t t LEFT JOIN sg_g g ON t.nettable AND {join}
            """
        )
    )
    n_linked, n_gross = (
        int(v or 0)
        for v in conn.exec_driver_sql(
            "SELECT sum(CASE WHEN in_group THEN 1 ELSE 0 END), sum(CASE WHEN in_group THEN 0 ELSE 1 END) FROM sg_a"
        ).one()
    )
    base = _reserve_ids(session, n_groups + n_gross)
    ref = "printf('SEME%012d', {c})"
    cols = _COLS
    types = [bindparam("now", type_=UTCDateTime()), bindparam("netted", type_=Boolean())]
    pending = InstructionStatus.PENDING.value
    with (
        bulk.bulk_write(session),
        bulk.deferred_indexes(
            session, "settlement_instructions", n_groups + n_gross, keep=_UNTOUCHED_INDEXES
        ),
        bulk.deferred_indexes(session, "instruction_trades", n_trades),
    ):
        session.execute(
            text(
                f"""
                INSERT INTO settlement_instructions ({cols})
                SELECT {base} + instr_id, {ref.format(c=f"{base} + instr_id")},
                       CASE WHEN q > 0 THEN 'RVP' ELSE 'DVP' END, :netted,
                       account_id, counterparty_id, instrument_id, abs(q),
                       CASE WHEN q > 0 THEN -c ELSE c END, currency, trade_date, isd, 0, 0,
                       '{pending}', our_ssi_id, their_ssi_id, 1, :now, :now, CAST(:uid AS BIGINT)
                FROM sg_g
                """
            ).bindparams(*types),
            {**stamp, "netted": True},
        )
        session.execute(
            text(
                f"""
                INSERT INTO settlement_instructions ({cols})
                SELECT {base} + instr_id, {ref.format(c=f"{base} + instr_id")},
                       CASE WHEN side = 'BUY' THEN (CASE WHEN net_amount = 0 THEN 'RFP' ELSE 'RVP' END)
                            ELSE (CASE WHEN net_amount = 0 THEN 'DFP' ELSE 'DVP' END) END,
                       :netted, account_id, counterparty_id, instrument_id, quantity, net_amount, currency,
                       trade_date, isd, 0, 0, '{pending}', our_ssi_id, their_ssi_id, 1, :now, :now, CAST(:uid AS BIGINT)
                FROM sg_a WHERE NOT in_group
                """
            ).bindparams(*types),
            {**stamp, "netted": False},
        )
        conn.exec_driver_sql(
            f"INSERT INTO instruction_trades (instruction_id, trade_id) SELECT {base} + instr_id, trade_id FROM sg_a"
        )
    by_type = session.execute(
        text(
            "SELECT CASE WHEN q > 0 THEN 'RVP' ELSE 'DVP' END AS k, count(*) FROM sg_g GROUP BY 1 "
            "UNION ALL SELECT CASE WHEN side = 'BUY' THEN (CASE WHEN net_amount = 0 THEN 'RFP' ELSE 'RVP' END) "
            "ELSE (CASE WHEN net_amount = 0 THEN 'DFP' ELSE 'DVP' END) END AS k, count(*) FROM sg_a "
            "WHERE NOT in_group GROUP BY 1"
        )
    ).all()
    for k, n in by_type:
        result.by_type[str(k)] = result.by_type.get(str(k), 0) + int(n)
    result.instructions = n_groups + n_gross
    result.gross = n_gross
    result.netted = n_groups
    result.netted_trades = n_linked


def _reserve_ids(session: Session, n: int) -> int:
    """Reserve n consecutive instruction ids; returns the id before the first.

    SQLite: ``max(id)`` inside the BEGIN IMMEDIATE transaction no other writer can enter. PostgreSQL: the table is
    locked against other writers (SHARE ROW EXCLUSIVE: readers go on; a clerk's status change waits the few seconds
    of the run) and the sequence moved past the range in one step, instead of one ``nextval`` per row.
    """
    conn = session.connection()
    if not bulk.is_postgres(session):
        return int(
            conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM settlement_instructions").scalar() or 0
        )
    conn.exec_driver_sql("LOCK TABLE settlement_instructions IN SHARE ROW EXCLUSIVE MODE")
    seq = "pg_get_serial_sequence('settlement_instructions', 'id')"
    start = int(conn.exec_driver_sql(f"SELECT nextval({seq})").scalar() or 1)
    if n > 1:
        conn.exec_driver_sql(f"SELECT setval({seq}, {start + n - 1})")
    return start - 1


# PostgreSQL keeps temporary tables in the session's own buffers, 8 MB by default: the working table of a million
# trades (about 110 MB) would be written out to temporary files and read back on each of its passes. The setting
# only takes effect before the session's first temporary table (it then holds for the connection's life, whatever
# SHOW says after the transaction); memory is taken only as pages are used.
_PG_TEMP_BUFFERS = "256MB"


def _temp_buffers(session: Session) -> None:
    """PostgreSQL: room for the working tables in memory, when the session has not used temporary tables yet
    (otherwise the server refuses the change, and the run goes on with the session's setting)."""
    conn = session.connection()
    with contextlib.suppress(DBAPIError), conn.begin_nested():
        conn.exec_driver_sql(f"SET LOCAL temp_buffers = '{_PG_TEMP_BUFFERS}'")


def _drop_temp(session: Session) -> None:
    conn = session.connection()
    for name in ("sg_a", "sg_g", "sg_t"):
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")


# =====================================================================================================================
# Instructions built one obligation at a time (un-netting, re-instruction): the same rules as the SQL above
# =====================================================================================================================


@dataclass
class UnnetResult:
    cancelled: list[str] = field(default_factory=list)  # instruction refs cancelled
    created: list[str] = field(default_factory=list)  # replacement refs
    untouched: list[str] = field(
        default_factory=list
    )  # refs that could not be cancelled (partly settled ...)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cancelled": self.cancelled,
            "created": self.created,
            "untouched": self.untouched,
            "notes": self.notes,
        }


def is_eligible(session: Session, trade: Trade) -> bool:
    """Whether ``trade`` can be instructed (the SQL's WHERE clause, for one trade)."""
    if trade.status not in ELIGIBLE_STATUSES:
        return False
    if None in (
        trade.settlement_date,
        trade.account_id,
        trade.counterparty_id,
        trade.instrument_id,
        trade.our_ssi_id,
        trade.their_ssi_id,
    ):
        return False
    asset = session.scalar(select(Instrument.asset_class).where(Instrument.id == trade.instrument_id))
    return asset is not AssetClass.FUTURE and asset != AssetClass.FUTURE.value


def _gross_type(trade: Trade) -> InstructionType:
    free = Decimal(trade.net_amount) == 0
    if trade.side == Side.BUY:
        return InstructionType.RFP if free else InstructionType.RVP
    return InstructionType.DFP if free else InstructionType.DVP


def _insert_instruction(session: Session, actor: Actor, **values: Any) -> SettlementInstruction:
    now = utcnow()
    inst = SettlementInstruction(
        instruction_ref=f"TMP{uuid.uuid4().hex[:28]}",  # replaced by SEME<id> once the id is known
        status=InstructionStatus.PENDING,
        settled_quantity=Decimal(0),
        settled_amount=Decimal(0),
        version=1,
        created_at=now,
        updated_at=now,
        updated_by_id=actor.user_id,
        **values,
    )
    session.add(inst)
    session.flush()
    inst.instruction_ref = f"SEME{inst.id:012d}"
    session.flush()
    return inst


def instruct_trades(
    session: Session,
    actor: Actor,
    trades: list[Trade],
    *,
    net: bool,
    replaces_id: int | None = None,
    note: str = "",
) -> list[SettlementInstruction]:
    """PENDING instructions for ``trades`` (all of one netting key when ``net``): one netted obligation when they
    net to a non-zero quantity, else one gross instruction per trade. Audited per instruction."""
    created: list[SettlementInstruction] = []
    if not trades:
        return created
    if net and len(trades) > 1:
        keys = {(t.account_id, t.counterparty_id, t.instrument_id, t.settlement_date, t.currency,
                 t.our_ssi_id, t.their_ssi_id) for t in trades}  # fmt: skip
        if len(keys) != 1:
            raise ValidationFailed(
                "Only trades of one counterparty, ISIN, settlement date and account net together."
            )
        q = sum((Decimal(t.quantity) if t.side == Side.BUY else -Decimal(t.quantity)) for t in trades)
        c = sum((-Decimal(t.net_amount) if t.side == Side.BUY else Decimal(t.net_amount)) for t in trades)
        if q != 0 and all(Decimal(t.net_amount) != 0 for t in trades):
            first = trades[0]
            inst = _insert_instruction(
                session,
                actor,
                instruction_type=InstructionType.RVP if q > 0 else InstructionType.DVP,
                is_netted=True,
                account_id=first.account_id,
                counterparty_id=first.counterparty_id,
                instrument_id=first.instrument_id,
                quantity=abs(q),
                settlement_amount=-c if q > 0 else c,
                currency=first.currency,
                trade_date=max(t.trade_date for t in trades),
                intended_settlement_date=first.settlement_date,
                our_ssi_id=first.our_ssi_id,
                their_ssi_id=first.their_ssi_id,
                replaces_id=replaces_id,
            )
            session.add_all(InstructionTrade(instruction_id=inst.id, trade_id=t.id) for t in trades)
            session.flush()
            _audit_created(session, actor, inst, [t.id for t in trades], note)
            return [inst]
    for t in trades:
        inst = _insert_instruction(
            session,
            actor,
            instruction_type=_gross_type(t),
            is_netted=False,
            account_id=t.account_id,
            counterparty_id=t.counterparty_id,
            instrument_id=t.instrument_id,
            quantity=Decimal(t.quantity),
            settlement_amount=Decimal(t.net_amount),
            currency=t.currency,
            trade_date=t.trade_date,
            intended_settlement_date=t.settlement_date,
            our_ssi_id=t.our_ssi_id,
            their_ssi_id=t.their_ssi_id,
            replaces_id=replaces_id,
        )
        session.add(InstructionTrade(instruction_id=inst.id, trade_id=t.id))
        session.flush()
        _audit_created(session, actor, inst, [t.id], note)
        created.append(inst)
    return created


def _audit_created(
    session: Session, actor: Actor, inst: SettlementInstruction, trade_ids: list[int], note: str
) -> None:
    audit.record(
        session,
        actor,
        "settlement_instructions.create",
        "settlement_instructions",
        inst.id,
        after={
            "instruction_ref": inst.instruction_ref,
            "type": inst.instruction_type,
            "is_netted": inst.is_netted,
            "quantity": inst.quantity,
            "settlement_amount": inst.settlement_amount,
            "currency": inst.currency,
            "isd": inst.intended_settlement_date,
            "trades": trade_ids,
            "replaces_id": inst.replaces_id,
            "note": note,
        },
        change=ChangeAction.INSERT,
    )


def _linked_trades(session: Session, instruction_id: int) -> list[Trade]:
    return list(
        session.scalars(
            select(Trade)
            .join(InstructionTrade, InstructionTrade.trade_id == Trade.id)
            .where(InstructionTrade.instruction_id == instruction_id)
            .order_by(Trade.id)
        )
    )


def unnet(
    session: Session,
    actor: Actor,
    instruction_id: int,
    reason: str,
    *,
    exclude_trade_ids: Iterable[int] = (),
) -> UnnetResult:
    """Cancel a netted obligation and replace it, traceably (``replaces_id``), in the caller's unit of work.

    Without ``exclude_trade_ids`` (a clerk un-nets by hand) every trade gets its own gross instruction. With them
    (a trade of the obligation was amended or cancelled) the remaining trades are re-netted if they still net to
    something, else instructed gross; the excluded trades are left to the caller. Trades no longer eligible
    (cancelled, back in repair) get nothing. A settled or partly settled obligation cannot be un-netted.
    """
    lifecycle.require_lifecycle_actor(actor)
    if not (reason or "").strip():
        raise ValidationFailed("Say why the obligation is un-netted (the reason is kept in the audit trail).")
    inst = session.get(SettlementInstruction, instruction_id, with_for_update=True)
    if inst is None:
        raise NotFound(f"Settlement instruction #{instruction_id} does not exist.")
    if not inst.is_netted:
        raise ValidationFailed(
            f"Instruction {inst.instruction_ref} is not a netted obligation; nothing to un-net."
        )
    status = InstructionStatus(inst.status)
    if status in (
        InstructionStatus.SETTLED,
        InstructionStatus.PARTIALLY_SETTLED,
        InstructionStatus.CANCELLED,
    ):
        raise lifecycle.InvalidTransition(
            inst.instruction_ref,
            status,
            InstructionStatus.CANCELLED,
            "it cannot be un-netted: "
            + (
                "it is already cancelled"
                if status is InstructionStatus.CANCELLED
                else "securities have moved at the CSD; work it as a fail or reverse it"
            ),
        )
    excluded = set(exclude_trade_ids)
    result = UnnetResult()
    lifecycle.transition(session, actor, inst, InstructionStatus.CANCELLED, note=f"un-netted: {reason}")
    result.cancelled.append(inst.instruction_ref)
    remaining = [
        t for t in _linked_trades(session, inst.id) if t.id not in excluded and is_eligible(session, t)
    ]
    note = f"replaces {inst.instruction_ref} (un-netted: {reason})"
    renet = bool(excluded) and len(remaining) > 1
    for new in instruct_trades(session, actor, remaining, net=renet, replaces_id=inst.id, note=note):
        result.created.append(new.instruction_ref)
    audit.record(
        session,
        actor,
        "settlement_instructions.unnet",
        "settlement_instructions",
        inst.id,
        after={"reason": reason, "excluded_trades": sorted(excluded), **result.as_dict()},
        change=ChangeAction.UPDATE,
    )
    return result


def unnet_instruction(db: Database, actor: Actor, instruction_id: int, reason: str) -> UnnetResult:
    """``unnet`` in its own unit of work (GUI, CLI)."""
    require(actor, Permission.WORK_ITEMS)
    with db.write() as s:
        return unnet(s, actor, instruction_id, reason)


def on_trade_changed(session: Session, actor: Actor, trade_id: int) -> UnnetResult:
    """Call after a trade was amended or cancelled (capture, corrections), in the same unit of work.

    Every live instruction of the trade that has not moved anything is cancelled: a netted one is un-netted with
    the other trades re-netted or gross, a gross one simply cancelled. The trade itself, if it may still be
    instructed (an amendment), gets a new gross instruction pointing back to the one it replaces. Instructions that
    are settled or partly settled are left alone and reported (the change needs a reversal, not a re-instruction).
    """
    lifecycle.require_lifecycle_actor(actor)
    trade = session.get(Trade, trade_id)
    if trade is None:
        raise NotFound(f"Trade #{trade_id} does not exist.")
    result = UnnetResult()
    live = list(
        session.scalars(
            select(SettlementInstruction)
            .join(InstructionTrade, InstructionTrade.instruction_id == SettlementInstruction.id)
            .where(
                InstructionTrade.trade_id == trade_id,
                SettlementInstruction.status != InstructionStatus.CANCELLED,
                SettlementInstruction.exception_kind.is_(None),
            )
            .order_by(SettlementInstruction.id)
        )
    )
    reason = f"trade {trade.trade_ref} changed (front-office version {trade.fo_version}, {trade.status})"
    replaced: int | None = None
    for inst in live:
        status = InstructionStatus(inst.status)
        if status in (InstructionStatus.SETTLED, InstructionStatus.PARTIALLY_SETTLED):
            result.untouched.append(inst.instruction_ref)
            result.notes.append(
                f"{inst.instruction_ref} is {status.value}: the change to {trade.trade_ref} needs a reversal."
            )
            continue
        replaced = inst.id
        if inst.is_netted:
            sub = unnet(session, actor, inst.id, reason, exclude_trade_ids=[trade_id])
            result.cancelled += sub.cancelled
            result.created += sub.created
        else:
            lifecycle.transition(session, actor, inst, InstructionStatus.CANCELLED, note=reason)
            result.cancelled.append(inst.instruction_ref)
    if replaced is not None and not result.untouched:
        session.refresh(trade)
        if is_eligible(session, trade):
            for new in instruct_trades(
                session, actor, [trade], net=False, replaces_id=replaced, note=f"re-instructed: {reason}"
            ):
                result.created.append(new.instruction_ref)
    return result


def on_trades_changed(session: Session, actor: Actor, trade_ids: Iterable[int]) -> UnnetResult:
    """``on_trade_changed`` for the trades of an import that amended or cancelled existing trades: one query finds
    those with a live instruction (usually none), and only they are worked, one after the other."""
    ids = sorted({int(t) for t in trade_ids})
    result = UnnetResult()
    affected: list[int] = []
    for i in range(0, len(ids), 900):
        affected += session.scalars(
            select(InstructionTrade.trade_id)
            .join(SettlementInstruction, SettlementInstruction.id == InstructionTrade.instruction_id)
            .where(
                InstructionTrade.trade_id.in_(ids[i : i + 900]),
                SettlementInstruction.status != InstructionStatus.CANCELLED,
                SettlementInstruction.exception_kind.is_(None),
            )
            .distinct()
        ).all()
    for trade_id in sorted(set(affected)):
        sub = on_trade_changed(session, actor, trade_id)
        result.cancelled += sub.cancelled
        result.created += sub.created
        result.untouched += sub.untouched
        result.notes += sub.notes
    return result


def netting_configured(session: Session, counterparty_id: int) -> bool:
    return bool(session.scalar(select(Counterparty.netting).where(Counterparty.id == counterparty_id)))


def live_instruction_count(session: Session) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(SettlementInstruction)
            .where(SettlementInstruction.status != InstructionStatus.CANCELLED)
        )
        or 0
    )
