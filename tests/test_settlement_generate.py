"""Instruction generation: gross DVP/RVP/DFP/RFP, netting per counterparty x ISIN x date x account, idempotence,
un-netting by hand and when a netted trade is amended or cancelled."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.models import AuditEntry, InstructionTrade, SettlementInstruction, Trade
from app.models.enums import InstructionStatus, InstructionType, Side, TradeStatus
from app.services import errors
from app.services.db import Database
from app.services.permissions import Actor
from app.services.settlement import generate, lifecycle, movements
from app.services.settlement.lifecycle import InvalidTransition

from .test_settlement_lifecycle import ISD, Book, add_trade, assert_consistent, make_book

S = InstructionStatus


def _instructions(db: Database) -> list[SettlementInstruction]:
    with db.read() as s:
        return list(s.scalars(select(SettlementInstruction).order_by(SettlementInstruction.id)))


def _trades_of(db: Database, instruction_id: int) -> list[int]:
    with db.read() as s:
        return sorted(
            s.scalars(
                select(InstructionTrade.trade_id).where(InstructionTrade.instruction_id == instruction_id)
            )
        )


def _by_trade(db: Database, trade_id: int, *, live: bool = True) -> list[SettlementInstruction]:
    with db.read() as s:
        q = (
            select(SettlementInstruction)
            .join(InstructionTrade, InstructionTrade.instruction_id == SettlementInstruction.id)
            .where(InstructionTrade.trade_id == trade_id)
        )
        if live:
            q = q.where(SettlementInstruction.status != S.CANCELLED)
        return list(s.scalars(q.order_by(SettlementInstruction.id)))


def test_gross_instructions_by_direction_and_payment(db: Database, users: dict[str, Actor]) -> None:
    book = make_book(db)
    buy = add_trade(db, book, side=Side.BUY, qty="100", price="200")
    sell = add_trade(db, book, side=Side.SELL, qty="40", price="201", status=TradeStatus.VALIDATED)
    rfp = add_trade(db, book, side=Side.BUY, free=True, status=TradeStatus.CONFIRMED)
    dfp = add_trade(db, book, side=Side.SELL, free=True)
    # Not instructed: in repair, cancelled, already instructed, futures (CCP-cleared), an SSI missing.
    add_trade(db, book, status=TradeStatus.REPAIR)
    add_trade(db, book, status=TradeStatus.CANCELLED)
    add_trade(db, book, status=TradeStatus.INSTRUCTED)
    add_trade(db, book, instrument=book.future)
    no_ssi = add_trade(db, book)
    with db.write() as s:
        s.get(Trade, no_ssi).their_ssi_id = None  # type: ignore[union-attr]

    result = generate.generate_instructions(db, users["clerk1"])
    assert (result.instructions, result.gross, result.netted, result.trades) == (4, 4, 0, 4)
    assert result.by_type == {"RVP": 1, "DVP": 1, "RFP": 1, "DFP": 1}
    assert result.skipped_no_ssi == 1 and "lack of an SSI" in str(result)
    expected = {buy: ("RVP", "20000"), sell: ("DVP", "8040"), rfp: ("RFP", "0"), dfp: ("DFP", "0")}
    for trade_id, (itype, amount) in expected.items():
        (i,) = _by_trade(db, trade_id)
        assert i.instruction_type == itype and i.settlement_amount == Decimal(amount)
        assert i.status == S.PENDING and not i.is_netted
        assert i.instruction_ref == f"SEME{i.id:012d}"
        assert i.intended_settlement_date == ISD and i.our_ssi_id == book.our_ssi
        assert i.their_ssi_id == book.their_ssi[book.cp_gross]
    with db.read() as s:
        # Generated but not yet sent: the trades keep their status until the instruction goes out.
        assert s.get(Trade, sell).status == TradeStatus.VALIDATED  # type: ignore[union-attr]
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "settlement.generate")).one()
        assert entry.after["instructions"] == 4

    again = generate.generate_instructions(db, users["clerk1"])
    assert again.instructions == 0 and "already instructed" in str(again)
    assert len(_instructions(db)) == 4


def test_netting_as_configured_per_counterparty(db: Database, users: dict[str, Actor]) -> None:
    book = make_book(db)
    n1 = add_trade(db, book, cp=book.cp_net, side=Side.BUY, qty="100", price="200")
    n2 = add_trade(db, book, cp=book.cp_net, side=Side.SELL, qty="30", price="210")
    n3 = add_trade(db, book, cp=book.cp_net, side=Side.BUY, qty="50", price="202")
    other_day = add_trade(db, book, cp=book.cp_net, isd=ISD + dt.timedelta(days=3))
    bond = add_trade(db, book, cp=book.cp_net, instrument=book.bond, qty="1000", price="98")
    zero_a = add_trade(db, book, cp=book.cp_net, instrument=book.bond, side=Side.BUY, qty="500", price="98",
                       isd=ISD + dt.timedelta(days=4))  # fmt: skip
    zero_b = add_trade(db, book, cp=book.cp_net, instrument=book.bond, side=Side.SELL, qty="500", price="99",
                       isd=ISD + dt.timedelta(days=4))  # fmt: skip
    g1 = add_trade(db, book, cp=book.cp_gross)
    g2 = add_trade(db, book, cp=book.cp_gross, side=Side.SELL, qty="10")

    result = generate.generate_instructions(db, users["clerk1"])
    assert result.netted == 1 and result.netted_trades == 3
    assert result.gross == 6 and result.trades == 9
    (net,) = [i for i in _instructions(db) if i.is_netted]
    assert _trades_of(db, net.id) == sorted([n1, n2, n3])
    assert net.instruction_type == InstructionType.RVP and net.quantity == Decimal(120)
    # We pay 20,000 + 10,100 and receive 6,300.
    assert net.settlement_amount == Decimal("23800")
    for lone in (other_day, bond, zero_a, zero_b, g1, g2):
        (i,) = _by_trade(db, lone)
        assert (
            not i.is_netted
        )  # alone in its group, netting to zero securities, or a counterparty that does not net


def test_net_and_gross_flags_override_the_configuration(db: Database, users: dict[str, Actor]) -> None:
    book = make_book(db)
    a = add_trade(db, book, cp=book.cp_gross, side=Side.BUY, qty="100", price="10")
    b = add_trade(db, book, cp=book.cp_gross, side=Side.SELL, qty="50", price="30")
    c = add_trade(db, book, cp=book.cp_net, side=Side.BUY, qty="10")
    d = add_trade(db, book, cp=book.cp_net, side=Side.BUY, qty="20")
    e = add_trade(db, book, cp=book.cp_net, side=Side.SELL, qty="5", isd=ISD + dt.timedelta(days=3))
    f = add_trade(db, book, cp=book.cp_net, side=Side.SELL, qty="5", isd=ISD + dt.timedelta(days=3))

    only = generate.generate_instructions(db, users["clerk1"], settle_date=ISD, net=True)
    assert only.trades == 4 and only.netted == 2  # the later settlement date is left for its own run
    (ab,) = _by_trade(db, a)
    assert _trades_of(db, ab.id) == sorted([a, b])
    # Receive 50 securities and 500 cash: the cash flows with the securities, so the amount is negative.
    assert ab.instruction_type == InstructionType.RVP and ab.quantity == Decimal(50)
    assert ab.settlement_amount == Decimal(-500)
    assert _trades_of(db, _by_trade(db, c)[0].id) == sorted([c, d])

    rest = generate.generate_instructions(db, users["clerk1"], net=False)
    assert rest.trades == 2 and rest.netted == 0 and rest.gross == 2
    assert len(_by_trade(db, e)) == 1 and len(_by_trade(db, f)) == 1


def _netted_group(db: Database, book: Book, actor: Actor) -> tuple[int, list[int]]:
    ids = [
        add_trade(db, book, cp=book.cp_net, side=Side.BUY, qty="100"),
        add_trade(db, book, cp=book.cp_net, side=Side.BUY, qty="60"),
        add_trade(db, book, cp=book.cp_net, side=Side.SELL, qty="20"),
    ]
    generate.generate_instructions(db, actor)
    (net,) = [i for i in _instructions(db) if i.is_netted and i.status != S.CANCELLED]
    return net.id, ids


@pytest.fixture
def clerk(users: dict[str, Actor]) -> Actor:
    return users["clerk1"]


def test_unnet_by_hand_replaces_the_obligation_with_gross_instructions(db: Database, clerk: Actor) -> None:
    book = make_book(db)
    net_id, trades = _netted_group(db, book, clerk)
    with db.write() as s:
        lifecycle.transition(s, clerk, s.get(SettlementInstruction, net_id), S.INSTRUCTED)  # type: ignore[arg-type]
    with pytest.raises(errors.ValidationFailed, match="why"):
        generate.unnet_instruction(db, clerk, net_id, " ")
    result = generate.unnet_instruction(db, clerk, net_id, "counterparty asked for gross settlement")
    assert len(result.cancelled) == 1 and len(result.created) == 3
    with db.read() as s:
        old = s.get(SettlementInstruction, net_id)
        assert old is not None and old.status == S.CANCELLED
        new = s.scalars(
            select(SettlementInstruction).where(SettlementInstruction.replaces_id == net_id)
        ).all()
        assert len(new) == 3 and all(not i.is_netted and i.status == S.PENDING for i in new)
        assert sorted(t for i in new for t in _trades_of(db, i.id)) == sorted(trades)
        # The trades went back to affirmed when the sent obligation was cancelled.
        assert {s.get(Trade, t).status for t in trades} == {TradeStatus.AFFIRMED}  # type: ignore[union-attr]
        actions = s.scalars(
            select(AuditEntry.action).where(AuditEntry.entity_id == str(net_id)).order_by(AuditEntry.id)
        ).all()
        assert actions[-2:] == ["settlement_instructions.transition", "settlement_instructions.unnet"]
    # Nothing left to generate: every trade has a live instruction.
    assert generate.generate_instructions(db, clerk).instructions == 0
    with pytest.raises(errors.ValidationFailed, match="not a netted"):
        generate.unnet_instruction(db, clerk, new[0].id, "again")


def test_amended_trade_in_a_netted_obligation_is_un_netted_and_the_rest_re_netted(
    db: Database, clerk: Actor
) -> None:
    book = make_book(db)
    net_id, (t1, t2, t3) = _netted_group(db, book, clerk)
    with db.write() as s:  # the front office amends the quantity of t2 (capture writes the new version)
        t = s.get(Trade, t2)
        assert t is not None
        t.quantity, t.gross_amount, t.net_amount = Decimal(70), Decimal(14000), Decimal(14000)
        t.fo_version = 2
        result = generate.on_trade_changed(s, clerk, t2)
    assert len(result.cancelled) == 1 and len(result.created) == 2
    (renet,) = _by_trade(db, t1)
    assert renet.is_netted and renet.replaces_id == net_id and _trades_of(db, renet.id) == sorted([t1, t3])
    assert renet.quantity == Decimal(80)
    (own,) = _by_trade(db, t2)
    assert not own.is_netted and own.replaces_id == net_id and own.quantity == Decimal(70)
    assert generate.generate_instructions(db, clerk).instructions == 0


def test_cancelled_trade_leaves_the_others_gross_when_only_one_remains(db: Database, clerk: Actor) -> None:
    book = make_book(db)
    a = add_trade(db, book, cp=book.cp_net, qty="100")
    b = add_trade(db, book, cp=book.cp_net, qty="50")
    lone = add_trade(db, book, cp=book.cp_gross)
    generate.generate_instructions(db, clerk)
    (net,) = _by_trade(db, a)
    with db.write() as s:
        s.get(Trade, b).status = TradeStatus.CANCELLED  # type: ignore[union-attr]
        generate.on_trade_changed(s, clerk, b)
        s.get(Trade, lone).status = TradeStatus.CANCELLED  # type: ignore[union-attr]
        lone_result = generate.on_trade_changed(s, clerk, lone)
    (rest,) = _by_trade(db, a)
    assert not rest.is_netted and rest.replaces_id == net.id
    assert _by_trade(db, b) == [] and _by_trade(db, lone) == []  # a cancelled trade is not instructed
    assert len(lone_result.cancelled) == 1 and lone_result.created == []
    with db.read() as s:
        assert s.get(Trade, b).status == TradeStatus.CANCELLED  # type: ignore[union-attr]


def test_settled_netted_obligation_cannot_be_un_netted_and_settles_its_trades(
    db: Database, clerk: Actor
) -> None:
    book = make_book(db)
    net_id, trades = _netted_group(db, book, clerk)
    with db.write() as s:
        i = s.get(SettlementInstruction, net_id)
        assert i is not None
        lifecycle.transition(s, clerk, i, S.INSTRUCTED)
        movements.apply_settlement(s, clerk, i, Decimal(70), i.settlement_amount / 2, ISD)
    with pytest.raises(InvalidTransition, match="securities have moved"):
        generate.unnet_instruction(db, clerk, net_id, "too late")
    with db.write() as s:
        i = s.get(SettlementInstruction, net_id)
        assert i is not None
        movements.apply_settlement(s, clerk, i, Decimal(70), i.settlement_amount - i.settled_amount, ISD)
        result = generate.on_trade_changed(s, clerk, trades[0])
    assert result.untouched and "reversal" in result.notes[0]
    with db.read() as s:
        assert {s.get(Trade, t).status for t in trades} == {TradeStatus.SETTLED}  # type: ignore[union-attr]
        n = s.scalar(select(func.count()).select_from(SettlementInstruction))
        assert n == 1
    assert_consistent(db)


# --- trade capture un-nets: a FIX cancel of a trade in a netted obligation ------------------------------------------


def _fix_log(path, reports: list[dict]) -> None:  # noqa: ANN001
    """A QuickFIX messages log of execution reports built by the fixture writer (right BodyLength/CheckSum)."""
    import importlib.util

    from .test_capture_refdata import FIXTURES

    spec = importlib.util.spec_from_file_location("make_fix_logs", FIXTURES / "make_fix_logs.py")
    assert spec is not None and spec.loader is not None
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    lines = []
    for seq, r in enumerate(reports, start=1):
        sent = f"20261119-15:{seq:02d}:00.000"
        m = maker.er(seq, sent, isin="US0378331005", parties=[("CP1", "D", "17")], **r)
        lines.append(sent.encode() + b" : " + m + b"\n")
    path.write_bytes(b"".join(lines))


def test_a_fix_cancel_of_a_netted_trade_unnets_the_obligation(
    db: Database, users: dict[str, Actor], tmp_path
) -> None:  # noqa: ANN001
    from app.services.capture import import_trades

    from .test_capture_refdata import TODAY, build_reference, trade_by_ref

    build_reference(db)
    clerk = users["clerk1"]
    _fix_log(
        tmp_path / "day.log",
        [
            dict(exec_id="E-A1", order_id="ORD-A", exec_type="F", qty="100", px="189.00"),
            dict(exec_id="E-B1", order_id="ORD-B", exec_type="F", qty="50", px="189.10"),
            dict(exec_id="E-C1", order_id="ORD-C", exec_type="F", side="2", qty="30", px="189.20"),
        ],
    )
    report = import_trades(db, clerk, tmp_path / "day.log", today=TODAY)
    assert report.accepted == 3, report.issues
    a, b, c = (trade_by_ref(db, f"OMS-ORD-{x}") for x in "ABC")
    assert {t.status for t in (a, b, c)} == {TradeStatus.VALIDATED}

    result = generate.generate_instructions(db, users["supervisor"], net=True)
    assert (result.netted, result.netted_trades) == (1, 3)
    (net,) = _by_trade(db, b.id)
    assert net.is_netted and net.quantity == Decimal("120") and net.instruction_type == InstructionType.RVP

    # The front office cancels ORD-B's only fill (150=H): the trade is cancelled by capture ...
    _fix_log(
        tmp_path / "cancel.log",
        [dict(exec_id="E-B2", order_id="ORD-B", exec_type="H", qty="50", px="189.10", exec_ref="E-B1")],
    )
    report = import_trades(db, clerk, tmp_path / "cancel.log", today=TODAY)
    assert report.trades_cancelled == 1, report.issues
    assert trade_by_ref(db, "OMS-ORD-B").status == TradeStatus.CANCELLED

    # ... and the obligation is un-netted in the same import: cancelled, the two remaining trades re-netted into a
    # new obligation that points back to it, the cancelled trade instructed by nothing.
    with db.read() as s:
        old = s.get(SettlementInstruction, net.id)
        assert old is not None and old.status == S.CANCELLED
    assert _by_trade(db, b.id) == []
    (renet,) = _by_trade(db, a.id)
    assert _by_trade(db, c.id)[0].id == renet.id
    assert renet.is_netted and renet.replaces_id == net.id and renet.status == S.PENDING
    assert renet.quantity == Decimal("70") and renet.instruction_type == InstructionType.RVP
    assert _trades_of(db, renet.id) == sorted([a.id, c.id])
    with db.read() as s:
        actions = s.scalars(
            select(AuditEntry.action).where(AuditEntry.entity_id == str(net.id)).order_by(AuditEntry.id)
        ).all()
    assert actions[-2:] == ["settlement_instructions.transition", "settlement_instructions.unnet"]
    # Re-importing the cancel is a duplicate: nothing more is un-netted or created.
    import_trades(db, clerk, tmp_path / "cancel.log", today=TODAY)
    assert [i.id for i in _by_trade(db, a.id)] == [renet.id]
