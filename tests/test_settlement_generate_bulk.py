"""Instruction generation at scale: the bulk path (secondary indexes, foreign keys and - on PostgreSQL - the unique
reference and the links' primary key rebuilt once) creates exactly what the row-maintained path creates, and leaves
the schema as it found it; every kind of group (netted, alone, netting to zero, free of payment, a counterparty that
does not net) comes out right in one run."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.models import InstructionTrade, Instrument, SettlementInstruction, Trade
from app.models.enums import Side
from app.services.capture import bulk
from app.services.db import Database
from app.services.permissions import Actor
from app.services.settlement import generate

from .test_settlement_lifecycle import ISD, Book, add_trade, make_book

LATER = ISD + dt.timedelta(days=3)


def _other_equity(db: Database, book: Book) -> int:
    """A second share on the same market, so that a nettable trade can be alone in its group."""
    with db.write() as s:
        eq = s.get(Instrument, book.equity)
        assert eq is not None
        other = Instrument(
            isin="DE000BASF111",
            name="BASF SE",
            asset_class=eq.asset_class,
            currency="EUR",
            market_id=eq.market_id,
            settlement_cycle=2,
            liquidity=eq.liquidity,
            reference_price=Decimal("50"),
            contract_size=Decimal(1),
        )
        s.add(other)
        s.flush()
        return other.id


def _mixed_day(db: Database, book: Book, other: int, isd: dt.date) -> list[int]:
    """One settlement date's trades, in an order that mixes every case."""
    net, gross = book.cp_net, book.cp_gross
    return [
        add_trade(db, book, cp=net, side=Side.BUY, qty="100", price="200", isd=isd),  # netted group ...
        add_trade(db, book, cp=gross, side=Side.SELL, qty="40", price="201", isd=isd),  # gross DVP
        add_trade(db, book, cp=net, side=Side.SELL, qty="30", price="210", isd=isd),
        add_trade(
            db, book, cp=net, instrument=other, side=Side.SELL, qty="700", price="50", isd=isd
        ),  # alone
        add_trade(db, book, cp=gross, side=Side.BUY, free=True, isd=isd),  # RFP
        add_trade(db, book, cp=net, side=Side.BUY, qty="50", price="202", isd=isd),  # ... netted group
        add_trade(db, book, cp=net, side=Side.SELL, free=True, isd=isd),  # free: never netted (DFP)
        add_trade(db, book, cp=gross, side=Side.BUY, qty="10", isd=isd),  # gross RVP
        add_trade(
            db, book, cp=gross, side=Side.BUY, qty="20", isd=isd
        ),  # same key, counterparty does not net
        add_trade(
            db, book, cp=net, instrument=book.bond, side=Side.BUY, qty="500", price="98", isd=isd
        ),  # zero
        add_trade(db, book, cp=net, instrument=book.bond, side=Side.SELL, qty="500", price="99", isd=isd),
    ]


def _snapshot(db: Database, trade_ids: list[int]) -> list[tuple]:
    """Each created instruction as (position of its trades in the day, type, netted, quantity, amount, status),
    comparable between two days booked alike."""
    position = {t: i for i, t in enumerate(trade_ids)}
    with db.read() as s:
        rows = s.execute(
            select(SettlementInstruction, InstructionTrade.trade_id)
            .join(InstructionTrade, InstructionTrade.instruction_id == SettlementInstruction.id)
            .where(InstructionTrade.trade_id.in_(trade_ids))
        ).all()
        grouped: dict[int, tuple[SettlementInstruction, list[int]]] = {}
        for inst, trade_id in rows:
            grouped.setdefault(inst.id, (inst, []))[1].append(position[trade_id])
        out = []
        for inst, positions in grouped.values():
            assert inst.instruction_ref == f"SEME{inst.id:012d}"
            out.append(
                (
                    tuple(sorted(positions)),
                    str(inst.instruction_type),
                    inst.is_netted,
                    Decimal(inst.quantity),
                    Decimal(inst.settlement_amount),
                    str(inst.status),
                    inst.account_id,
                    inst.counterparty_id,
                    inst.our_ssi_id,
                    inst.their_ssi_id,
                )
            )
    return sorted(out)


def _schema(db: Database) -> list[tuple[str, ...]]:
    """Indexes and constraints of the two tables a run fills, as the database reports them."""
    with db.read() as s:
        if db.is_postgres:
            rows = s.execute(
                text(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid IN (CAST('settlement_instructions' AS regclass), "
                    "CAST('instruction_trades' AS regclass)) "
                    "UNION ALL SELECT indexname, indexdef FROM pg_indexes "
                    "WHERE tablename IN ('settlement_instructions', 'instruction_trades')"
                )
            ).all()
        else:
            rows = s.execute(
                text(
                    "SELECT name, coalesce(sql, '') FROM sqlite_master "
                    "WHERE tbl_name IN ('settlement_instructions', 'instruction_trades')"
                )
            ).all()
    return sorted((str(a), str(b)) for a, b in rows)


def _watch_deferred_indexes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """(table, whether its indexes were dropped and rebuilt) of each bulk.deferred_indexes block from now on."""
    deferred: list[tuple[str, bool]] = []
    real = bulk.deferred_indexes

    @contextlib.contextmanager
    def spy(session: Session, table: str, new_rows: int, **kwargs: Any) -> Iterator[bool]:
        with real(session, table, new_rows, **kwargs) as done:
            deferred.append((table, done))
            yield done

    monkeypatch.setattr(bulk, "deferred_indexes", spy)
    return deferred


def test_bulk_run_creates_what_the_row_path_creates_and_keeps_the_schema(
    db: Database, users: dict[str, Actor], monkeypatch: pytest.MonkeyPatch
) -> None:
    book = make_book(db)
    clerk = users["clerk1"]
    other = _other_equity(db, book)
    first = _mixed_day(db, book, other, ISD)
    second = _mixed_day(db, book, other, LATER)
    schema_before = _schema(db)

    deferred = _watch_deferred_indexes(monkeypatch)
    # ISD through the bulk path (the table is empty: the run at least doubles it), LATER row by row.
    monkeypatch.setattr(bulk, "DEFER_INDEXES_MIN_ROWS", 1)
    bulk_run = generate.generate_instructions(db, clerk, settle_date=ISD)
    assert deferred == [("settlement_instructions", True), ("instruction_trades", True)]
    monkeypatch.setattr(bulk, "DEFER_INDEXES_MIN_ROWS", 10**9)
    row_run = generate.generate_instructions(db, clerk, settle_date=LATER)
    assert deferred[2:] == [("settlement_instructions", False), ("instruction_trades", False)]

    assert _schema(db) == schema_before
    assert bulk_run.as_dict() | {"seconds": 0, "settle_date": None} == row_run.as_dict() | {
        "seconds": 0,
        "settle_date": None,
    }
    assert _snapshot(db, first) == _snapshot(db, second)
    # And the figures themselves: one netted obligation of three trades, the rest gross.
    assert (bulk_run.netted, bulk_run.netted_trades, bulk_run.gross, bulk_run.trades) == (1, 3, 8, 11)
    assert bulk_run.by_type == {"RVP": 4, "DVP": 3, "RFP": 1, "DFP": 1}
    # A second run creates nothing, through either path.
    monkeypatch.setattr(bulk, "DEFER_INDEXES_MIN_ROWS", 1)
    assert generate.generate_instructions(db, clerk).instructions == 0


def test_one_run_with_every_kind_of_group(db: Database, users: dict[str, Actor]) -> None:
    book = make_book(db)
    net = book.cp_net
    grp = [
        add_trade(db, book, cp=net, side=Side.SELL, qty="100", price="10"),
        add_trade(db, book, cp=net, side=Side.SELL, qty="50", price="12"),
    ]
    zero = [
        add_trade(db, book, cp=net, instrument=book.bond, side=Side.BUY, qty="500", price="98"),
        add_trade(db, book, cp=net, instrument=book.bond, side=Side.SELL, qty="500", price="99"),
    ]
    alone = add_trade(db, book, cp=net, side=Side.BUY, qty="7", price="20", isd=LATER)
    plain = add_trade(db, book, side=Side.SELL, qty="3", price="20")

    result = generate.generate_instructions(db, users["clerk1"])
    assert (result.instructions, result.netted, result.netted_trades, result.gross) == (5, 1, 2, 4)
    assert result.by_type == {"DVP": 3, "RVP": 2}
    with db.read() as s:
        links = dict(s.execute(select(InstructionTrade.trade_id, InstructionTrade.instruction_id)).all())
        insts = {i.id: i for i in s.scalars(select(SettlementInstruction))}
        trades = {t.id: t for t in s.scalars(select(Trade))}
    assert len(insts) == 5 and len(links) == 6
    # Selling 150 to one counterparty on one day: one delivery against the 1,600 we receive.
    (g,) = {links[t] for t in grp}
    assert insts[g].is_netted and str(insts[g].instruction_type) == "DVP"
    assert (insts[g].quantity, insts[g].settlement_amount) == (Decimal(150), Decimal(1600))
    # Netting to zero securities, or alone in the group: each trade its own gross instruction, like the trade.
    for t in [*zero, alone, plain]:
        i = insts[links[t]]
        assert not i.is_netted and i.quantity == trades[t].quantity
        assert i.settlement_amount == trades[t].net_amount
        assert str(i.instruction_type) == ("RVP" if trades[t].side == Side.BUY else "DVP")
        assert i.trade_date == trades[t].trade_date
        assert i.intended_settlement_date == trades[t].settlement_date
    assert len({links[t] for t in zero}) == 2


def test_a_run_numbers_its_instructions_by_settlement_date(
    db: Database, users: dict[str, Actor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One run over two settlement dates (netted, gross and zero-netting groups on each, booked later date first):
    the instructions take consecutive ids with their references, and on PostgreSQL every instruction of the earlier
    date comes before the later date's and the rows are stored in id order - what lets the rebuilt
    (status, settlement date, id) and (settlement date, id) indexes find their rows presorted. The links follow."""
    book = make_book(db)
    other = _other_equity(db, book)
    later = _mixed_day(db, book, other, LATER)
    first = _mixed_day(db, book, other, ISD)
    monkeypatch.setattr(bulk, "DEFER_INDEXES_MIN_ROWS", 1)
    result = generate.generate_instructions(db, users["clerk1"])
    assert (result.instructions, result.netted, result.trades) == (18, 2, 22)
    with db.read() as s:
        insts = list(s.scalars(select(SettlementInstruction).order_by(SettlementInstruction.id)))
        links = s.execute(
            select(InstructionTrade.instruction_id, InstructionTrade.trade_id).order_by(
                InstructionTrade.instruction_id
            )
        ).all()
        stored = (
            list(s.scalars(text("SELECT id FROM settlement_instructions ORDER BY ctid")))
            if db.is_postgres
            else None
        )
    ids = [i.id for i in insts]
    assert ids == list(range(ids[0], ids[0] + 18))
    assert all(i.instruction_ref == f"SEME{i.id:012d}" for i in insts)
    dates = {tid: d for d, day in ((ISD, first), (LATER, later)) for tid in day}
    assert sorted(t for _, t in links) == sorted(dates)
    for instruction_id, trade_id in links:
        assert next(i for i in insts if i.id == instruction_id).intended_settlement_date == dates[trade_id]
    if db.is_postgres:
        isds = [i.intended_settlement_date for i in insts]
        assert isds == sorted(isds) and isds[0] == ISD and isds[-1] == LATER
        assert stored == ids


def _through_index(s: Session, pg: bool, column: str, value: int) -> list[int]:
    """Ids of the instructions with ``column`` = value, read through that column's partial index only."""
    if pg:
        s.execute(text("SET LOCAL enable_seqscan = off"))
        s.execute(text("SET LOCAL enable_bitmapscan = off"))
        sql = (
            f"SELECT id FROM settlement_instructions WHERE {column} = :v AND {column} IS NOT NULL ORDER BY id"
        )
    else:
        sql = (
            f"SELECT id FROM settlement_instructions INDEXED BY ix_settlement_instructions_{column} "
            f"WHERE {column} = :v AND {column} IS NOT NULL ORDER BY id"
        )
    return [int(i) for i in s.scalars(text(sql), {"v": value})]


def test_a_bulk_run_keeps_the_owner_and_replacement_indexes_right(
    db: Database, users: dict[str, Actor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partial owner and replaced-instruction indexes stay in place through a bulk run (no new instruction has
    an owner or replaces one): afterwards they still find the rows claimed or replaced before it, and rows claimed
    after it."""
    book = make_book(db)
    clerk = users["clerk1"]
    other = _other_equity(db, book)
    _mixed_day(db, book, other, ISD)
    generate.generate_instructions(db, clerk)
    with db.write() as s:
        before = list(s.scalars(select(SettlementInstruction.id).order_by(SettlementInstruction.id)))
        owned, replacing, replaced = before[0], before[1], before[2]
        s.execute(
            text("UPDATE settlement_instructions SET owner_id = :u WHERE id = :i"),
            {"u": clerk.user_id, "i": owned},
        )
        s.execute(
            text("UPDATE settlement_instructions SET replaces_id = :r WHERE id = :i"),
            {"r": replaced, "i": replacing},
        )

    deferred = _watch_deferred_indexes(monkeypatch)
    monkeypatch.setattr(bulk, "DEFER_INDEXES_MIN_ROWS", 1)
    _mixed_day(db, book, other, LATER)
    result = generate.generate_instructions(db, clerk)
    assert result.instructions == len(before)  # as many new rows as there were: the bulk path
    assert ("settlement_instructions", True) in deferred
    with db.write() as s:
        new = list(s.scalars(select(SettlementInstruction.id).where(SettlementInstruction.id > before[-1])))
        assert len(new) == result.instructions
        assert (
            s.scalar(
                select(func.count()).where(
                    SettlementInstruction.id.in_(new),
                    (SettlementInstruction.owner_id.is_not(None))
                    | (SettlementInstruction.replaces_id.is_not(None)),
                )
            )
            == 0
        )
        pg = db.is_postgres
        assert _through_index(s, pg, "owner_id", clerk.user_id) == [owned]
        assert _through_index(s, pg, "replaces_id", replaced) == [replacing]
        s.execute(
            text("UPDATE settlement_instructions SET owner_id = :u WHERE id = :i"),
            {"u": clerk.user_id, "i": new[-1]},
        )
        assert _through_index(s, pg, "owner_id", clerk.user_id) == [owned, new[-1]]
