"""Instruction generation: how it selects and counts trades (the instrument and counterparty conditions written as
subqueries, the row count taken from the working table), the PostgreSQL session it runs in, and the partial indexes
on the instructions' owner and replaced-obligation columns."""

from __future__ import annotations

from sqlalchemy import select, text

from app.models import InstructionTrade, Instrument, SettlementInstruction, Trade
from app.models.enums import AssetClass, Side
from app.services.db import Database
from app.services.permissions import Actor
from app.services.settlement import generate

from .test_settlement_lifecycle import add_trade, make_book


def _linked(db: Database) -> dict[int, int]:
    with db.read() as s:
        return dict(s.execute(select(InstructionTrade.trade_id, InstructionTrade.instruction_id)).all())


def test_trades_without_instrument_or_counterparty_are_not_instructed_even_with_no_futures(
    db: Database, users: dict[str, Actor]
) -> None:
    """``instrument_id NOT IN (futures)`` is true for a NULL id when there are no futures: the selection must
    still leave out a trade that lacks its instrument or its counterparty, as the joins it replaced did."""
    book = make_book(db)
    kept = add_trade(db, book, cp=book.cp_net, side=Side.BUY, qty="10")
    netted = [add_trade(db, book, cp=book.cp_net, side=Side.SELL, qty="4") for _ in range(2)]
    no_instrument = add_trade(db, book)
    no_counterparty = add_trade(db, book, cp=book.cp_net)
    with db.write() as s:
        fut = s.get(Instrument, book.future)
        assert fut is not None
        fut.asset_class = AssetClass.EQUITY  # the book now has no futures at all
        s.get(Trade, no_instrument).instrument_id = None  # type: ignore[union-attr]
        s.get(Trade, no_counterparty).counterparty_id = None  # type: ignore[union-attr]

    result = generate.generate_instructions(db, users["clerk1"])
    assert (result.trades, result.instructions, result.netted, result.netted_trades) == (3, 1, 1, 3)
    links = _linked(db)
    assert set(links) == {kept, *netted}
    assert no_instrument not in links and no_counterparty not in links


def test_a_session_that_already_used_temporary_tables_generates_the_same(
    db: Database, users: dict[str, Actor]
) -> None:
    """PostgreSQL refuses a larger temp_buffers once the session has used temporary tables: the run goes on with
    the session's setting (same instructions), and runs again on the same session."""
    book = make_book(db)
    first = [add_trade(db, book, cp=book.cp_net, side=Side.BUY, qty="10") for _ in range(3)]
    plain = add_trade(db, book, side=Side.SELL, qty="5")
    with db.write() as s:
        s.execute(text("CREATE TEMP TABLE scratch (x INTEGER)"))
        s.execute(text("INSERT INTO scratch VALUES (1)"))
        result = generate.generate_in_session(s, users["clerk1"])
        assert (result.instructions, result.netted, result.netted_trades, result.gross) == (2, 1, 3, 1)
        again = generate.generate_in_session(s, users["clerk1"])
        assert again.instructions == 0
        s.execute(text("DROP TABLE scratch"))
    links = _linked(db)
    assert set(links) == {*first, plain}
    assert len({links[t] for t in first}) == 1


def test_owner_and_replaced_obligation_have_partial_indexes(db: Database, users: dict[str, Actor]) -> None:
    """owner_id and replaces_id are indexed only where set, on both backends (reason_code keeps a full index), and
    lookups by value still find the rows (a generated instruction is in neither partial index)."""
    columns = ("owner_id", "replaces_id", "reason_code")
    names = [f"ix_settlement_instructions_{c}" for c in columns]
    with db.read() as s:
        if db.is_postgres:
            defs = dict(
                s.execute(
                    text("SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(:n)"), {"n": names}
                ).all()
            )
        else:
            defs = dict(
                s.execute(
                    text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN (:a, :b, :c)"),
                    dict(zip("abc", names, strict=True)),
                ).all()
            )
    assert sorted(defs) == sorted(names)
    assert "owner_id IS NOT NULL" in defs[names[0]] and "replaces_id IS NOT NULL" in defs[names[1]]
    assert "WHERE" not in defs[names[2]].upper()

    book = make_book(db)
    trade = add_trade(db, book)
    generate.generate_instructions(db, users["clerk1"])
    with db.write() as s:
        inst = s.scalars(select(SettlementInstruction)).one()
        assert (inst.owner_id, inst.replaces_id) == (None, None)
        inst.owner_id = users["clerk1"].user_id
        inst.replaces_id = inst.id
    with db.read() as s:
        for column, value in (("owner_id", users["clerk1"].user_id), ("replaces_id", _linked(db)[trade])):
            found = s.scalars(
                select(SettlementInstruction.id).where(getattr(SettlementInstruction, column) == value)
            ).all()
            assert found == [_linked(db)[trade]]
