"""Settlement lifecycle and movements: every allowed transition and each refused one, the trades kept in step,
partial settlement, over-settlement refused, and the positions/cash invariant after every scenario.

The small settlement book built here (one Xetra market, an equity, a Bund, a future, counterparties that net and
that do not, SSIs of both sides) is shared with the other settlement tests.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.models import (
    Account,
    AuditEntry,
    CashBalance,
    CashMovement,
    Counterparty,
    InstructionTrade,
    Instrument,
    Market,
    Position,
    SecuritiesMovement,
    SettlementInstruction,
    StandingSettlementInstruction,
    Trade,
    utcnow,
)
from app.models.enums import (
    AccountType,
    AssetClass,
    InstructionStatus,
    InstructionType,
    KycStatus,
    Liquidity,
    MovementKind,
    Segregation,
    Side,
    TradeStatus,
)
from app.services import errors
from app.services.db import Database
from app.services.permissions import Actor
from app.services.settlement import lifecycle, movements
from app.services.settlement.lifecycle import ALLOWED, InvalidTransition

S = InstructionStatus
ISD = dt.date(2026, 11, 20)  # a Friday
_refs = itertools.count(1)


# --- a small settlement book ------------------------------------------------------------------------------------


@dataclass
class Book:
    market: int
    equity: int
    bond: int
    future: int
    account: int
    cp_gross: int
    cp_net: int
    cp_clear: int
    our_ssi: int
    their_ssi: dict[int, int]


def make_book(db: Database) -> Book:
    with db.write() as s:
        m = Market(mic="XETR", name="Xetra", country="DE", timezone="Europe/Berlin", calendar_code="XETR")
        s.add(m)
        s.flush()

        def instrument(isin: str, name: str, ac: AssetClass, liq: Liquidity, price: str) -> int:
            i = Instrument(
                isin=isin,
                name=name,
                asset_class=ac,
                currency="EUR",
                market_id=m.id,
                settlement_cycle=2,
                liquidity=liq,
                reference_price=Decimal(price),
                contract_size=Decimal(1),
            )
            s.add(i)
            s.flush()
            return i.id

        eq = instrument("DE0007164600", "SAP SE", AssetClass.EQUITY, Liquidity.LIQUID_SHARE, "200")
        bond = instrument("DE0001102580", "Bund 2032", AssetClass.GOVT_BOND, Liquidity.SOVEREIGN_DEBT, "98.5")
        fut = instrument("DE000F0FDAX0", "FDAX Dec26", AssetClass.FUTURE, Liquidity.NOT_APPLICABLE, "19000")
        cps = []
        for code, netting, lei in (
            ("GROSSBANK", False, "529900T8BM49AURSDO55"),
            ("NETBANK", True, "529900HNOAA1KXQJUQ27"),
            ("CLEARCO", False, "549300QKQZBZ7XZ5WS44"),
        ):
            c = Counterparty(
                code=code, name=code.title(), lei=lei, bic=f"{code[:6]}DEFF", country="DE", netting=netting
            )
            s.add(c)
            s.flush()
            cps.append(c.id)
        a = Account(
            code="ACC1",
            name="Client one",
            account_type=AccountType.CLIENT,
            kyc_status=KycStatus.APPROVED,
            segregation=Segregation.SEGREGATED,
            base_currency="EUR",
        )
        s.add(a)
        s.flush()

        def ssi(**owner: int) -> int:
            x = StandingSettlementInstruction(
                market_id=m.id,
                currency="EUR",
                place_of_settlement_bic="DAKVDEFFXXX",
                agent_bic="COBADEFFXXX",
                safekeeping_account=f"SAFE{next(_refs)}",
                cash_account="DE89370400440532013000",
                valid_from=dt.date(2020, 1, 1),
                **owner,
            )
            s.add(x)
            s.flush()
            return x.id

        ours = ssi(account_id=a.id)
        theirs = {c: ssi(counterparty_id=c) for c in cps}
        return Book(m.id, eq, bond, fut, a.id, cps[0], cps[1], cps[2], ours, theirs)


def add_trade(
    db: Database,
    book: Book,
    *,
    side: Side = Side.BUY,
    qty: str = "100",
    price: str = "200",
    cp: int | None = None,
    instrument: int | None = None,
    isd: dt.date = ISD,
    status: TradeStatus = TradeStatus.AFFIRMED,
    free: bool = False,
) -> int:
    cp = book.cp_gross if cp is None else cp
    instrument = book.equity if instrument is None else instrument
    with db.write() as s:
        inst = s.get(Instrument, instrument)
        c = s.get(Counterparty, cp)
        assert inst is not None and c is not None
        gross = Decimal(qty) * Decimal(price)
        t = Trade(
            trade_ref=f"ST{next(_refs):06d}",
            source="TEST",
            isin=inst.isin,
            account_code="ACC1",
            counterparty_code=c.code,
            instrument_id=instrument,
            account_id=book.account,
            counterparty_id=cp,
            side=side,
            quantity=Decimal(qty),
            price=Decimal(price),
            currency="EUR",
            gross_amount=gross,
            net_amount=Decimal(0) if free else gross,
            trade_date=isd - dt.timedelta(days=2),
            trade_time=utcnow(),
            settlement_date=isd,
            status=status,
            affirmed_at=utcnow() if status is TradeStatus.AFFIRMED else None,
            our_ssi_id=book.our_ssi,
            their_ssi_id=book.their_ssi[cp],
        )
        s.add(t)
        s.flush()
        return t.id


def make_instruction(
    db: Database,
    book: Book,
    status: S = S.PENDING,
    *,
    side: Side = Side.BUY,
    qty: str = "100",
    price: str = "200",
    reason: str | None = None,
    isd: dt.date = ISD,
) -> int:
    """A gross instruction in ``status`` for a new trade (written directly, as the demo book writes them)."""
    trade_id = add_trade(db, book, side=side, qty=qty, price=price, isd=isd)
    with db.write() as s:
        t = s.get(Trade, trade_id)
        assert t is not None
        i = SettlementInstruction(
            instruction_ref=f"SEMETEST{next(_refs):08d}",
            instruction_type=InstructionType.RVP if side is Side.BUY else InstructionType.DVP,
            account_id=book.account,
            counterparty_id=t.counterparty_id,
            instrument_id=t.instrument_id,
            quantity=t.quantity,
            settlement_amount=t.net_amount,
            currency="EUR",
            trade_date=t.trade_date,
            intended_settlement_date=isd,
            status=status,
            reason_code=reason,
            our_ssi_id=t.our_ssi_id,
            their_ssi_id=t.their_ssi_id,
        )
        s.add(i)
        s.flush()
        s.add(InstructionTrade(instruction_id=i.id, trade_id=trade_id))
        return i.id


def status_of_trades(db: Database, instruction_id: int) -> set[str]:
    with db.read() as s:
        return {
            str(x)
            for x in s.scalars(
                select(Trade.status)
                .join(InstructionTrade, InstructionTrade.trade_id == Trade.id)
                .where(InstructionTrade.instruction_id == instruction_id)
            )
        }


def assert_consistent(db: Database) -> None:
    with db.read() as s:
        assert movements.check_invariant(s) == []


# --- transitions --------------------------------------------------------------------------------------------------


ALL_PAIRS = [(a, b) for a in S for b in S]


def test_allowed_table_is_what_a_back_office_expects() -> None:
    assert ALLOWED[S.SETTLED] == frozenset() and ALLOWED[S.CANCELLED] == frozenset()
    assert S.INSTRUCTED in ALLOWED[S.PENDING] and S.MATCHED not in ALLOWED[S.PENDING]
    assert S.FAILED in ALLOWED[S.INSTRUCTED]  # unmatched past the settlement date
    assert {S.MATCHED, S.SETTLED, S.PARTIALLY_SETTLED, S.INSTRUCTED} <= ALLOWED[S.FAILED]
    assert ALLOWED[S.PARTIALLY_SETTLED] == {S.PARTIALLY_SETTLED, S.SETTLED, S.FAILED}
    assert set(ALLOWED) == set(S)


def test_every_allowed_transition_is_applied_and_audited(db: Database, users: dict[str, Actor]) -> None:
    book = make_book(db)
    clerk = users["clerk1"]
    pairs = [(a, b) for a, b in ALL_PAIRS if b in ALLOWED[a]]
    assert len(pairs) >= 20
    for old, new in pairs:
        iid = make_instruction(db, book, old, reason="CMIS" if old is S.FAILED else None)
        with db.write() as s:
            i = s.get(SettlementInstruction, iid)
            assert i is not None
            reason = "LACK" if new is S.FAILED else None
            lifecycle.transition(s, clerk, i, new, reason_code=reason, note=f"{old}->{new}")
        with db.read() as s:
            i = s.get(SettlementInstruction, iid)
            assert i is not None
            assert i.status == new, (old, new)
            assert i.version == 2 and i.updated_by_id == clerk.user_id
            if new is S.FAILED:
                assert i.reason_code == "LACK"
            if new in (S.MATCHED, S.SETTLED):
                assert i.reason_code is None  # the old reason no longer describes it
            entry = s.scalars(
                select(AuditEntry)
                .where(AuditEntry.entity_type == "settlement_instructions", AuditEntry.entity_id == str(iid))
                .order_by(AuditEntry.id.desc())
            ).first()
            assert entry is not None and entry.action == "settlement_instructions.transition"
            assert entry.before["status"] == old.value and entry.after["status"] == new.value
            assert entry.after["note"] == f"{old}->{new}" and entry.username == "clerk1"


def test_every_refused_transition_says_from_to_and_why_and_changes_nothing(
    db: Database, users: dict[str, Actor]
) -> None:
    book = make_book(db)
    refused = [(a, b) for a, b in ALL_PAIRS if b not in ALLOWED[a]]
    assert (S.SETTLED, S.FAILED) in refused and (S.PENDING, S.SETTLED) in refused
    for old, new in refused:
        iid = make_instruction(db, book, old)
        with pytest.raises(InvalidTransition) as info, db.write() as s:
            i = s.get(SettlementInstruction, iid)
            assert i is not None
            lifecycle.transition(s, users["clerk1"], i, new, reason_code="LACK")
        message = str(info.value)
        assert old.value in message and new.value in message and ":" in message, message
        assert isinstance(info.value, errors.InvalidTransition) and isinstance(
            info.value, errors.OpsDeskError
        )
        assert info.value.why
        with db.read() as s:
            i = s.get(SettlementInstruction, iid)
            assert i is not None and i.status == old and i.version == 1


def test_failed_needs_a_reason_and_auditors_may_not_move_anything(
    db: Database, users: dict[str, Actor]
) -> None:
    book = make_book(db)
    iid = make_instruction(db, book, S.MATCHED)
    with pytest.raises(InvalidTransition, match="reason code"), db.write() as s:
        lifecycle.transition(s, users["clerk1"], s.get(SettlementInstruction, iid), S.FAILED)  # type: ignore[arg-type]
    with pytest.raises(errors.PermissionDenied), db.write() as s:
        lifecycle.transition(s, users["auditor"], s.get(SettlementInstruction, iid), S.SETTLED)  # type: ignore[arg-type]


def test_linked_trades_follow_the_instruction(db: Database, users: dict[str, Actor]) -> None:
    book = make_book(db)
    clerk = users["clerk1"]
    iid = make_instruction(db, book, S.PENDING)
    steps = [
        (S.INSTRUCTED, None, TradeStatus.INSTRUCTED),
        (S.MATCHED, None, TradeStatus.INSTRUCTED),
        (S.FAILED, "LACK", TradeStatus.FAILED),
        (S.INSTRUCTED, None, TradeStatus.INSTRUCTED),
        (S.CANCELLED, None, TradeStatus.AFFIRMED),  # back to the stage it had reached: affirmed
    ]
    for new, reason, trade_status in steps:
        with db.write() as s:
            lifecycle.transition(s, clerk, s.get(SettlementInstruction, iid), new, reason_code=reason)  # type: ignore[arg-type]
        assert status_of_trades(db, iid) == {trade_status.value}, new
    # A trade the front office cancelled stays cancelled whatever happens to its instruction.
    iid = make_instruction(db, book, S.MATCHED)
    with db.write() as s:
        tid = s.scalar(select(InstructionTrade.trade_id).where(InstructionTrade.instruction_id == iid))
        s.get(Trade, tid).status = TradeStatus.CANCELLED  # type: ignore[union-attr]
    with db.write() as s:
        lifecycle.transition(s, clerk, s.get(SettlementInstruction, iid), S.FAILED, reason_code="MONY")  # type: ignore[arg-type]
    assert status_of_trades(db, iid) == {TradeStatus.CANCELLED.value}


# --- movements ----------------------------------------------------------------------------------------------------


def _apply(db: Database, actor: Actor, iid: int, qty: str, amount: str, on: dt.date = ISD) -> None:
    with db.write() as s:
        i = s.get(SettlementInstruction, iid)
        assert i is not None
        movements.apply_settlement(s, actor, i, Decimal(qty), Decimal(amount), on)


def test_partial_then_full_settlement_moves_securities_and_cash(
    db: Database, users: dict[str, Actor]
) -> None:
    book = make_book(db)
    clerk = users["clerk1"]
    buy = make_instruction(db, book, S.MATCHED, side=Side.BUY, qty="300", price="200")  # pays 60,000
    sell = make_instruction(db, book, S.INSTRUCTED, side=Side.SELL, qty="100", price="210")  # receives 21,000

    _apply(db, clerk, buy, "100", "20000")
    with db.read() as s:
        i = s.get(SettlementInstruction, buy)
        assert i is not None and i.status == S.PARTIALLY_SETTLED
        assert i.settled_quantity == Decimal(100) and i.settled_amount == Decimal(20000)
        assert i.actual_settlement_date == ISD
        pos = s.scalar(select(Position).where(Position.account_id == book.account))
        cash = s.scalar(select(CashBalance).where(CashBalance.account_id == book.account))
        assert pos is not None and pos.settled_quantity == Decimal(100) and pos.traded_quantity == 0
        assert cash is not None and cash.settled_amount == Decimal(-20000)
    assert status_of_trades(db, buy) == {TradeStatus.PARTIALLY_SETTLED.value}
    assert_consistent(db)

    _apply(db, clerk, buy, "150", "30000", ISD + dt.timedelta(days=3))  # a further partial
    _apply(db, clerk, buy, "50", "10000", ISD + dt.timedelta(days=4))  # the remainder
    _apply(db, clerk, sell, "100", "21000")
    with db.read() as s:
        i = s.get(SettlementInstruction, buy)
        assert i is not None and i.status == S.SETTLED and i.settled_quantity == Decimal(300)
        assert s.get(SettlementInstruction, sell).status == S.SETTLED  # type: ignore[union-attr]
        pos = s.scalar(select(Position).where(Position.account_id == book.account))
        cash = s.scalar(select(CashBalance).where(CashBalance.account_id == book.account))
        assert pos is not None and pos.settled_quantity == Decimal(200)  # +300 received, -100 delivered
        assert cash is not None and cash.settled_amount == Decimal(-60000 + 21000)
        moves = s.scalars(
            select(SecuritiesMovement)
            .where(SecuritiesMovement.instruction_id == buy)
            .order_by(SecuritiesMovement.id)
        ).all()
        assert [m.quantity for m in moves] == [Decimal(100), Decimal(150), Decimal(50)]
        assert all(m.kind == MovementKind.SETTLED and m.trade_id is not None for m in moves)
        cash_moves = s.scalars(select(CashMovement).where(CashMovement.instruction_id == sell)).all()
        assert [c.amount for c in cash_moves] == [Decimal(21000)]
    assert status_of_trades(db, buy) == {TradeStatus.SETTLED.value}
    assert_consistent(db)


def test_over_settlement_and_bad_settlements_are_refused_and_post_nothing(
    db: Database, users: dict[str, Actor]
) -> None:
    book = make_book(db)
    clerk = users["clerk1"]
    iid = make_instruction(db, book, S.MATCHED, qty="100", price="200")
    _apply(db, clerk, iid, "60", "12000")
    with pytest.raises(movements.OverSettlement, match="over-settle"):
        _apply(db, clerk, iid, "41", "8200")
    with pytest.raises(movements.OverSettlement, match="tolerance"):
        _apply(db, clerk, iid, "40", "8100")  # 20,100 against 20,000: beyond the EUR 2 tolerance
    with pytest.raises(errors.ValidationFailed, match="positive"):
        _apply(db, clerk, iid, "0", "0")
    settled = make_instruction(db, book, S.SETTLED)
    with pytest.raises(InvalidTransition, match="SETTLED"):
        _apply(db, clerk, settled, "1", "200")
    pending = make_instruction(db, book, S.PENDING)
    with pytest.raises(InvalidTransition, match="never sent"):
        _apply(db, clerk, pending, "100", "20000")
    with db.read() as s:
        i = s.get(SettlementInstruction, iid)
        assert i is not None and i.settled_quantity == Decimal(60) and i.status == S.PARTIALLY_SETTLED
        n = len(s.scalars(select(SecuritiesMovement)).all())
        assert n == 1
    # Within tolerance the cash that really moved is booked.
    _apply(db, clerk, iid, "40", "8001.50")
    with db.read() as s:
        i = s.get(SettlementInstruction, iid)
        assert i is not None and i.status == S.SETTLED and i.settled_amount == Decimal("20001.50")
    assert_consistent(db)


def test_free_of_payment_moves_no_cash(db: Database, users: dict[str, Actor]) -> None:
    book = make_book(db)
    tid = add_trade(db, book, side=Side.SELL, free=True)
    with db.write() as s:
        t = s.get(Trade, tid)
        assert t is not None
        i = SettlementInstruction(
            instruction_ref="SEMEFOP1",
            instruction_type=InstructionType.DFP,
            account_id=book.account,
            counterparty_id=t.counterparty_id,
            instrument_id=t.instrument_id,
            quantity=t.quantity,
            settlement_amount=Decimal(0),
            currency="EUR",
            trade_date=t.trade_date,
            intended_settlement_date=ISD,
            status=S.MATCHED,
        )
        s.add(i)
        s.flush()
        iid = i.id
    with pytest.raises(errors.ValidationFailed, match="free of payment"):
        _apply(db, users["clerk1"], iid, "100", "5")
    _apply(db, users["clerk1"], iid, "100", "0")
    with db.read() as s:
        assert s.scalars(select(CashMovement)).all() == []
        pos = s.scalar(select(Position))
        assert pos is not None and pos.settled_quantity == Decimal(-100)
    assert_consistent(db)


def test_invariant_reports_a_position_changed_without_a_movement(
    db: Database, users: dict[str, Actor]
) -> None:
    book = make_book(db)
    iid = make_instruction(db, book, S.MATCHED)
    _apply(db, users["clerk1"], iid, "100", "20000")
    assert_consistent(db)
    with db.write() as s:
        pos = s.scalar(select(Position))
        assert pos is not None
        pos.settled_quantity = pos.settled_quantity + 5
        cash = s.scalar(select(CashBalance))
        assert cash is not None
        cash.traded_amount = Decimal(7)
        s.add(
            SecuritiesMovement(
                account_id=book.account,
                instrument_id=book.bond,
                kind=MovementKind.DEPOSIT,
                quantity=Decimal(1000),
                value_date=ISD,
            )
        )
    with db.read() as s:
        problems = movements.check_invariant(s)
    assert len(problems) == 3, problems
    assert any("settled 105" in p for p in problems)
    assert any("no position row" in p for p in problems)
    assert any("cash balance" in p for p in problems)


# --- many at once: transition_many, apply_settlements -------------------------------------------------------------


def _audit_of(
    db: Database, iid: int | None, action: str = "settlement_instructions.transition"
) -> list[AuditEntry]:
    with db.read() as s:
        q = select(AuditEntry).where(AuditEntry.action == action)
        q = (
            q.where(AuditEntry.entity_id == str(iid))
            if iid is not None
            else q.where(AuditEntry.entity_id.is_(None))
        )
        return list(s.scalars(q.order_by(AuditEntry.id)))


def test_transition_many_applies_the_same_rules_in_order(db: Database, users: dict[str, Actor]) -> None:
    book = make_book(db)
    clerk = users["clerk1"]
    a = make_instruction(db, book, S.INSTRUCTED)
    b = make_instruction(db, book, S.MATCHED)
    with db.write() as s:
        states = lifecycle.transition_many(
            s,
            clerk,
            [
                lifecycle.Change(a, S.MATCHED, note="matched"),
                lifecycle.Change(b, S.FAILED, reason_code="lack", reason_text="no securities"),
                lifecycle.Change(a, S.FAILED, reason_code="MONY"),  # sees MATCHED from the change before
                lifecycle.Change(b, S.INSTRUCTED),  # re-instructed: the reason is cleared
            ],
        )
    assert [(st.id, st.status, st.reason_code) for st in states] == [
        (a, S.FAILED, "MONY"),
        (b, S.INSTRUCTED, None),
    ]
    with db.read() as s:
        ia, ib = s.get(SettlementInstruction, a), s.get(SettlementInstruction, b)
        assert ia is not None and ib is not None
        assert (ia.status, ia.reason_code, ia.version) == (S.FAILED, "MONY", 3)
        assert (ib.status, ib.reason_code, ib.reason_text, ib.updated_by_id) == (
            S.INSTRUCTED,
            None,
            None,
            clerk.user_id,
        )
        assert ib.instructed_at is not None
    assert status_of_trades(db, a) == {TradeStatus.FAILED.value}
    assert status_of_trades(db, b) == {TradeStatus.INSTRUCTED.value}
    # A small batch is audited per transition, exactly as one by one: before/after, note, trades.
    entries = _audit_of(db, a)
    assert [(e.before["status"], e.after["status"]) for e in entries] == [
        ("INSTRUCTED", "MATCHED"),
        ("MATCHED", "FAILED"),
    ]
    assert entries[0].after["note"] == "matched" and entries[0].after["trades"]
    with db.read() as s:
        from app.services import audit

        assert audit.verify_chain(s).intact


def test_transition_many_refuses_as_a_whole(db: Database, users: dict[str, Actor]) -> None:
    book = make_book(db)
    clerk = users["clerk1"]
    a = make_instruction(db, book, S.INSTRUCTED)
    done = make_instruction(db, book, S.SETTLED)
    with pytest.raises(InvalidTransition, match="SETTLED is final"), db.write() as s:
        lifecycle.transition_many(
            s, clerk, [lifecycle.Change(a, S.MATCHED), lifecycle.Change(done, S.FAILED, "LACK")]
        )
    with pytest.raises(InvalidTransition, match="market reason code"), db.write() as s:
        lifecycle.transition_many(s, clerk, [lifecycle.Change(a, S.FAILED)])
    with pytest.raises(errors.PermissionDenied), db.write() as s:
        lifecycle.transition_many(s, users["auditor"], [lifecycle.Change(a, S.MATCHED)])
    with db.read() as s:
        ia = s.get(SettlementInstruction, a)
        assert ia is not None and ia.status == S.INSTRUCTED and ia.version == 1
    assert _audit_of(db, a) == []


def test_a_batch_refuses_to_overwrite_a_concurrent_change(db: Database, users: dict[str, Actor]) -> None:
    book = make_book(db)
    a = make_instruction(db, book, S.INSTRUCTED)
    with db.write() as s:
        batch = lifecycle.Batch(s, users["clerk1"])
        (state,) = batch.load(ids=[a])
        batch.transition(state, S.MATCHED)
        # Someone else's change lands between the read and the write.
        s.execute(
            SettlementInstruction.__table__.update()
            .where(SettlementInstruction.id == a)
            .values(version=SettlementInstruction.version + 1)
        )
        with pytest.raises(errors.StaleEdit, match="changed by someone else"):
            batch.flush()


def test_a_large_batch_is_one_audit_entry_listing_every_transition(
    db: Database, users: dict[str, Actor], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle, "PER_ROW_AUDIT_MAX", 2)
    book = make_book(db)
    ids = [make_instruction(db, book, S.INSTRUCTED) for _ in range(3)]
    with db.write() as s:
        lifecycle.transition_many(
            s, users["clerk1"], [lifecycle.Change(i, S.MATCHED, note="bulk") for i in ids]
        )
    assert all(_audit_of(db, i) == [] for i in ids)
    (entry,) = _audit_of(db, None)
    import json

    rows = [json.loads(r) for r in entry.after["rows"]]
    assert entry.after["moves"] == {"INSTRUCTED->MATCHED": 3}
    assert [(r[0], r[2], r[3], r[6]) for r in rows] == [(i, "INSTRUCTED", "MATCHED", "bulk") for i in ids]
    status_at = entry.after["snapshot_columns"].index("status")
    assert all(r[4][status_at] == "INSTRUCTED" and r[5][status_at] == "MATCHED" for r in rows)
    assert all(status_of_trades(db, i) == {TradeStatus.INSTRUCTED.value} for i in ids)


def test_apply_settlements_in_bulk_keeps_the_invariant(db: Database, users: dict[str, Actor]) -> None:
    book = make_book(db)
    clerk = users["clerk1"]
    buy = make_instruction(db, book, S.MATCHED, side=Side.BUY, qty="300", price="200")  # pays 60,000
    sell = make_instruction(db, book, S.INSTRUCTED, side=Side.SELL, qty="100", price="210")  # receives 21,000
    on = ISD + dt.timedelta(days=1)
    with db.write() as s:
        movements.apply_settlements(
            s,
            clerk,
            [
                movements.SettlementItem(buy, Decimal(100), Decimal(20000), ISD),
                movements.SettlementItem(sell, Decimal(100), Decimal(21000), ISD),
                movements.SettlementItem(
                    buy, Decimal(200), Decimal(40000), on
                ),  # the remainder, after the partial
            ],
        )
    with db.read() as s:
        i = s.get(SettlementInstruction, buy)
        assert i is not None and (i.status, i.settled_quantity, i.actual_settlement_date) == (
            S.SETTLED,
            300,
            on,
        )
        pos = s.scalar(select(Position).where(Position.account_id == book.account))
        cash = s.scalar(select(CashBalance).where(CashBalance.account_id == book.account))
        assert pos is not None and pos.settled_quantity == Decimal(200)
        assert cash is not None and cash.settled_amount == Decimal(-60000 + 21000)
        moves = s.scalars(
            select(SecuritiesMovement)
            .where(SecuritiesMovement.instruction_id == buy)
            .order_by(SecuritiesMovement.id)
        ).all()
        assert [(m.quantity, m.value_date) for m in moves] == [(Decimal(100), ISD), (Decimal(200), on)]
        assert all(m.trade_id is not None for m in moves)  # a gross instruction's movements name its trade
    assert status_of_trades(db, buy) == {TradeStatus.SETTLED.value}
    assert [e.after["status"] for e in _audit_of(db, buy)] == ["PARTIALLY_SETTLED", "SETTLED"]
    assert_consistent(db)
    # Refused as a whole: the second item over-settles, so the first posts nothing either.
    other = make_instruction(db, book, S.MATCHED, qty="100", price="200")
    with pytest.raises(movements.OverSettlement), db.write() as s:
        movements.apply_settlements(
            s,
            clerk,
            [
                movements.SettlementItem(other, Decimal(60), Decimal(12000), ISD),
                movements.SettlementItem(other, Decimal(41), Decimal(8200), ISD),
            ],
        )
    with db.read() as s:
        assert (
            s.scalars(select(SecuritiesMovement).where(SecuritiesMovement.instruction_id == other)).all()
            == []
        )
    assert_consistent(db)
