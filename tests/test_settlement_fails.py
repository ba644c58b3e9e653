"""Fails: CSDR-style penalties across a weekend and market holidays, their direction and idempotence, the fails list
(age, value, deadline, priority), futures give-ups and out-trades."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.models import (
    AuditEntry,
    CashBalance,
    CashMovement,
    FailPenalty,
    MarketHoliday,
    Position,
    SecuritiesMovement,
    SettlementInstruction,
    Trade,
)
from app.models.enums import (
    ClearingExceptionState,
    InstructionStatus,
    MovementKind,
    PenaltyDirection,
    SettlementExceptionKind,
    Side,
    TradeStatus,
)
from app.models.settlement import ClearingException
from app.services import errors
from app.services.db import Database
from app.services.permissions import Actor
from app.services.settlement import fails, lifecycle

from .test_settlement_lifecycle import ISD, add_trade, assert_consistent, make_book, make_instruction

S = InstructionStatus
MON, TUE, WED = ISD + dt.timedelta(days=3), ISD + dt.timedelta(days=4), ISD + dt.timedelta(days=5)


def _penalties(db: Database, iid: int) -> list[FailPenalty]:
    with db.read() as s:
        return list(
            s.scalars(
                select(FailPenalty)
                .where(FailPenalty.instruction_id == iid)
                .order_by(FailPenalty.penalty_date)
            )
        )


def _set(db: Database, iid: int, **values: object) -> None:
    with db.write() as s:
        i = s.get(SettlementInstruction, iid)
        assert i is not None
        for k, v in values.items():
            setattr(i, k, v)


def test_penalties_accrue_per_business_day_across_a_weekend_once(
    db: Database, users: dict[str, Actor]
) -> None:
    book = make_book(db)
    clerk = users["clerk1"]
    # We deliver 100 shares worth 200 (reference price) and lack them: our fail, 1 bp a day of 20,000 = 2.00.
    iid = make_instruction(db, book, S.FAILED, side=Side.SELL, reason="LACK")
    _set(db, iid, instructed_at=dt.datetime(2026, 11, 18, 9, tzinfo=dt.UTC))

    first = fails.accrue_penalties(db, clerk, TUE)
    assert first.added == 2 and first.instructions == 1
    rows = _penalties(db, iid)
    assert [p.penalty_date for p in rows] == [
        ISD,
        MON,
    ]  # Friday and Monday; the weekend is not a business day
    assert all(p.amount == Decimal("2.00") and p.rate_bp == Decimal(1) for p in rows)
    assert all(p.reference_value == Decimal(20000) and p.direction == PenaltyDirection.DEBIT for p in rows)
    assert first.totals == {"EUR": {"DEBIT": Decimal("4.00")}}

    assert fails.accrue_penalties(db, clerk, TUE).added == 0  # idempotent per day
    assert fails.accrue_penalties(db, clerk, WED).added == 1  # Tuesday is now over
    assert [p.penalty_date for p in _penalties(db, iid)] == [ISD, MON, TUE]
    with db.read() as s:
        runs = s.scalars(select(AuditEntry).where(AuditEntry.action == "settlement.penalties")).all()
        assert len(runs) == 2  # a run that adds nothing writes nothing


def test_a_market_holiday_is_not_penalised(db: Database, users: dict[str, Actor]) -> None:
    book = make_book(db)
    clerk = users["clerk1"]
    with db.write() as s:  # a settlement-system closure on Monday the library does not know
        s.add(MarketHoliday(market_id=book.market, holiday_date=MON, name="CSD closed"))
    iid = make_instruction(db, book, S.FAILED, side=Side.SELL, reason="LACK")
    fails.accrue_penalties(db, clerk, WED)
    assert [p.penalty_date for p in _penalties(db, iid)] == [ISD, TUE]
    # Xetra closes on 24 and 25 December (exchange calendar): Wednesday 23rd, then Monday 28th.
    xmas = make_instruction(db, book, S.FAILED, side=Side.SELL, reason="LACK", isd=dt.date(2026, 12, 23))
    fails.accrue_penalties(db, clerk, dt.date(2026, 12, 29))
    assert [p.penalty_date for p in _penalties(db, xmas)] == [dt.date(2026, 12, 23), dt.date(2026, 12, 28)]


def test_rates_direction_partial_and_late_settlement(db: Database, users: dict[str, Actor]) -> None:
    book = make_book(db)
    clerk = users["clerk1"]
    on_time = dt.datetime(2026, 11, 18, 9, tzinfo=dt.UTC)
    # A Bund (sovereign debt, 0.1 bp) of 1,000,000 nominal at 98.5 %: 985,000 a day -> 9.85; their LACK on our receipt.
    bund = make_instruction(db, book, S.FAILED, side=Side.BUY, qty="1000000", price="98.5", reason="LACK")
    _set(db, bund, instrument_id=book.bond, instructed_at=on_time)
    # Our receipt fails for lack of our cash: ours to pay.
    mony = make_instruction(db, book, S.FAILED, side=Side.BUY, reason="MONY")
    _set(db, mony, instructed_at=on_time)
    # Unmatched, we instructed on time: the counterparty pays; instructed after the ISD: we pay.
    cmis = make_instruction(db, book, S.INSTRUCTED, reason="CMIS")
    _set(db, cmis, instructed_at=on_time)
    late_cmis = make_instruction(db, book, S.INSTRUCTED, reason="CMIS")
    _set(db, late_cmis, instructed_at=dt.datetime(2026, 11, 23, 9, tzinfo=dt.UTC))
    # 60 of 100 settled: the remainder of 40 x 200 = 8,000 -> 0.80 a day.
    partial = make_instruction(db, book, S.PARTIALLY_SETTLED, side=Side.SELL, reason="LACK")
    _set(db, partial, settled_quantity=Decimal(60), settled_amount=Decimal(12000))
    # Settled on Monday, two business days... one: Friday only was failed.
    late = make_instruction(db, book, S.SETTLED, side=Side.SELL)
    _set(db, late, actual_settlement_date=MON, settled_quantity=Decimal(100), settled_amount=Decimal(20000))
    on_isd = make_instruction(db, book, S.SETTLED)
    _set(db, on_isd, actual_settlement_date=ISD)
    pending = make_instruction(db, book, S.PENDING)  # never sent: a missed cut-off, not a CSD fail
    matched_future = make_instruction(db, book, S.MATCHED, isd=WED)  # not due yet

    fails.accrue_penalties(db, clerk, TUE)
    bund_rows = _penalties(db, bund)
    assert (
        len(bund_rows) == 2
        and bund_rows[0].amount == Decimal("9.85")
        and bund_rows[0].rate_bp == Decimal("0.1")
    )
    assert bund_rows[0].direction == PenaltyDirection.CREDIT
    assert {p.direction for p in _penalties(db, mony)} == {PenaltyDirection.DEBIT}
    assert {p.direction for p in _penalties(db, cmis)} == {PenaltyDirection.CREDIT}
    assert {p.direction for p in _penalties(db, late_cmis)} == {PenaltyDirection.DEBIT}
    assert [p.amount for p in _penalties(db, partial)] == [Decimal("0.80"), Decimal("0.80")]
    assert [p.penalty_date for p in _penalties(db, late)] == [ISD]
    for none in (on_isd, pending, matched_future):
        assert _penalties(db, none) == []


def test_fails_list_age_value_deadline_and_priority(db: Database, users: dict[str, Actor]) -> None:
    book = make_book(db)
    clerk = users["clerk1"]
    small = make_instruction(db, book, S.FAILED, side=Side.SELL, qty="10", reason="LACK")  # 2,000
    big = make_instruction(
        db, book, S.FAILED, side=Side.BUY, qty="10000", price="200", reason="MONY"
    )  # 2,000,000
    pending = make_instruction(db, book, S.PENDING, qty="100")
    make_instruction(db, book, S.SETTLED)
    make_instruction(db, book, S.MATCHED, isd=WED)  # not yet due: not a fail
    partial = make_instruction(db, book, S.PARTIALLY_SETTLED, qty="100")
    _set(db, partial, settled_quantity=Decimal(25), settled_amount=Decimal(5000))
    fails.accrue_penalties(db, clerk, TUE)

    items = fails.list_fails(db, users["auditor"], as_of=TUE)
    by_id = {it.id: it for it in items}
    assert set(by_id) == {small, big, pending, partial}
    it = by_id[small]
    assert it.age_days == 2 and it.reason.startswith("Pending: lack of securities")
    assert it.value_at_stake == Decimal("2000.00") and it.currency == "EUR"
    assert it.penalty_debit == Decimal("0.40")  # 2,000 x 1 bp x 2 days
    assert it.deadline == dt.date(2026, 11, 26) and it.days_to_deadline == 2  # ISD + 4 business days (liquid)
    assert it.priority == 2  # two business days old
    assert by_id[big].priority == 1 and items[0].id == big  # the high-value item first
    assert by_id[partial].value_at_stake == Decimal("15000.00")
    assert "cut-off" in by_id[pending].reason and by_id[pending].penalty_debit == 0
    # Close to the deadline, everything is urgent.
    late = fails.list_fails(db, clerk, as_of=dt.date(2026, 11, 25))
    assert {x.priority for x in late} == {1}


# --- give-ups and out-trades ------------------------------------------------------------------------------------


def test_give_up_moves_the_trade_when_taken_up(db: Database, users: dict[str, Actor]) -> None:
    book = make_book(db)
    clerk = users["clerk1"]
    fut = add_trade(db, book, instrument=book.future, qty="5", price="19000", status=TradeStatus.SETTLED)
    equity = add_trade(db, book)
    with db.write() as s, pytest.raises(errors.ValidationFailed, match="not a futures trade"):
        fails.raise_give_up(s, clerk, equity, book.cp_clear)
    with db.write() as s, pytest.raises(errors.ValidationFailed, match="already clears"):
        fails.raise_give_up(s, clerk, fut, book.cp_gross)
    with db.write() as s:
        exc_id = fails.raise_give_up(s, clerk, fut, book.cp_clear, "client clears with CLEARCO").id
    with db.write() as s, pytest.raises(errors.ValidationFailed, match="in progress"):
        fails.raise_give_up(s, clerk, fut, book.cp_clear)
    with db.read() as s:
        exc = s.get(ClearingException, exc_id)
        assert exc is not None and exc.state == ClearingExceptionState.RAISED
        inst = s.get(SettlementInstruction, exc.instruction_id)
        assert inst is not None and inst.exception_kind == SettlementExceptionKind.GIVE_UP
        assert inst.status == S.INSTRUCTED and inst.instruction_ref.startswith("GIVE")
    listed = {it.id: it for it in fails.list_fails(db, clerk, as_of=ISD)}
    assert listed[exc.instruction_id].exception_kind == "GIVE_UP"

    # Rejected, re-sent, then taken up.
    with db.write() as s:
        fails.reject_give_up(s, clerk, exc_id, "no give-up agreement on file")
    with db.read() as s:
        inst = s.get(SettlementInstruction, exc.instruction_id)
        assert inst is not None and inst.status == S.FAILED and inst.reason_code == "REJT"
    with db.write() as s:
        fails.resend_give_up(s, clerk, exc_id, "agreement signed")
    with db.write() as s, pytest.raises(errors.ValidationFailed, match="take-up reference"):
        fails.acknowledge_give_up(s, clerk, exc_id, "")
    with db.write() as s:
        fails.acknowledge_give_up(s, clerk, exc_id, "TU-778812")
    with db.read() as s:
        trade = s.get(Trade, fut)
        assert (
            trade is not None
            and trade.counterparty_id == book.cp_clear
            and trade.counterparty_code == "CLEARCO"
        )
        assert (
            trade.status == TradeStatus.SETTLED
        )  # the give-up does not touch the futures trade's own status
        exc = s.get(ClearingException, exc_id)
        assert (
            exc is not None
            and exc.state == ClearingExceptionState.ACKNOWLEDGED
            and exc.ack_ref == "TU-778812"
        )
        inst = s.get(SettlementInstruction, exc.instruction_id)
        assert inst is not None and inst.status == S.SETTLED
        actions = s.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.action.like("clearing_exceptions.%"))
            .order_by(AuditEntry.id)
        ).all()
        assert actions == [
            "clearing_exceptions.raise",
            "clearing_exceptions.reject",
            "clearing_exceptions.resend",
            "clearing_exceptions.acknowledge",
        ]
        assert s.scalars(
            select(AuditEntry).where(AuditEntry.action == "trades.give_up")
        ).one().entity_id == str(fut)
    with db.write() as s, pytest.raises(errors.ValidationFailed, match="ACKNOWLEDGED"):
        fails.cancel_exception(s, clerk, exc_id, "too late")
    # Exceptions settle nothing at a CSD: no penalties.
    fails.accrue_penalties(db, clerk, WED)
    assert _penalties(db, exc.instruction_id) == []


def _book_trade_movements(db: Database, trade_id: int) -> None:
    """Trade-date bookings of a futures trade (as the demo book makes them): position and fees."""
    with db.write() as s:
        t = s.get(Trade, trade_id)
        assert t is not None
        s.add(SecuritiesMovement(account_id=t.account_id, instrument_id=t.instrument_id, kind=MovementKind.TRADED,
                                 quantity=t.quantity, value_date=t.trade_date, trade_id=t.id))  # fmt: skip
        s.add(CashMovement(account_id=t.account_id, currency="EUR", kind=MovementKind.TRADED, amount=Decimal(-12),
                           value_date=t.trade_date, trade_id=t.id))  # fmt: skip
        s.add(Position(account_id=t.account_id, instrument_id=t.instrument_id, traded_quantity=t.quantity,
                       settled_quantity=Decimal(0)))  # fmt: skip
        s.add(CashBalance(account_id=t.account_id, currency="EUR", traded_amount=Decimal(-12),
                          settled_amount=Decimal(0)))  # fmt: skip


def test_out_trade_recognised_or_not_ours(db: Database, users: dict[str, Actor]) -> None:
    book = make_book(db)
    clerk = users["clerk1"]
    stands = add_trade(db, book, instrument=book.future, qty="2", price="19000", status=TradeStatus.CONFIRMED)
    wrong = add_trade(db, book, instrument=book.future, qty="3", price="19000", status=TradeStatus.CONFIRMED)
    _book_trade_movements(db, wrong)
    assert_consistent(db)
    with db.write() as s:
        a = fails.raise_out_trade(s, clerk, stands, "GROSSBANK has no record of it").id
        b = fails.raise_out_trade(s, clerk, wrong).id
    with db.read() as s:
        ia = s.get(SettlementInstruction, s.get(ClearingException, a).instruction_id)  # type: ignore[union-attr]
        assert ia is not None and ia.status == S.FAILED and ia.reason_code == "OUTT"
        assert ia.exception_kind == SettlementExceptionKind.OUT_TRADE
    with db.write() as s, pytest.raises(errors.ValidationFailed, match="already an open out-trade"):
        fails.raise_out_trade(s, clerk, stands)
    with db.write() as s:
        fails.acknowledge_out_trade(s, clerk, a, "GB-Q-1")
        fails.resolve_out_trade(s, clerk, a, "recognised", "found in their late bookings")
    with db.write() as s, pytest.raises(errors.ValidationFailed, match="RECOGNISED or NOT_OURS"):
        fails.resolve_out_trade(s, clerk, b, "maybe")
    with db.write() as s:
        fails.resolve_out_trade(s, clerk, b, "NOT_OURS", "booked on the wrong account", on=TUE)
    with db.read() as s:
        ea, eb = s.get(ClearingException, a), s.get(ClearingException, b)
        assert ea is not None and eb is not None
        assert (ea.state, ea.resolution, ea.ack_ref) == (
            ClearingExceptionState.RESOLVED,
            "RECOGNISED",
            "GB-Q-1",
        )
        assert s.get(SettlementInstruction, ea.instruction_id).status == S.SETTLED  # type: ignore[union-attr]
        assert s.get(SettlementInstruction, eb.instruction_id).status == S.CANCELLED  # type: ignore[union-attr]
        assert s.get(Trade, stands).status == TradeStatus.CONFIRMED  # type: ignore[union-attr]
        assert s.get(Trade, wrong).status == TradeStatus.CANCELLED  # type: ignore[union-attr]
        pos = s.scalar(select(Position))
        cash = s.scalar(select(CashBalance))
        assert pos is not None and pos.traded_quantity == 0 and cash is not None and cash.traded_amount == 0
    assert_consistent(db)
    with db.write() as s, pytest.raises(errors.PermissionDenied):
        fails.raise_out_trade(s, users["auditor"], stands)


def test_exception_transitions_still_follow_the_lifecycle(db: Database, users: dict[str, Actor]) -> None:
    book = make_book(db)
    clerk = users["clerk1"]
    fut = add_trade(db, book, instrument=book.future, qty="1", price="19000", status=TradeStatus.SETTLED)
    with db.write() as s:
        exc = fails.raise_give_up(s, clerk, fut, book.cp_clear)
        fails.cancel_exception(s, clerk, exc.id, "raised by mistake")
        inst = s.get(SettlementInstruction, exc.instruction_id)
        assert inst is not None and inst.status == S.CANCELLED
        with pytest.raises(lifecycle.InvalidTransition, match="final"):
            lifecycle.transition(s, clerk, inst, S.INSTRUCTED)
