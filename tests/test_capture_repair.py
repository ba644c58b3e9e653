"""Repairing trades in the repair queue, and the detail panel's view of a trade.

A repair edits the failing fields, re-validates and re-enriches with the import's own rules, and is a versioned
edit: a stale one is refused with "changed by". Trades past validation go through the correction workflow, so the
repair service refuses them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models import (
    AuditEntry,
    Break,
    InstructionTrade,
    ReconDefinition,
    SettlementInstruction,
    Trade,
    TradeException,
)
from app.models.enums import BreakStatus, BreakType, InstructionStatus, InstructionType, TradeStatus
from app.services.capture import import_trades
from app.services.capture.repair import repair_trade, trade_detail
from app.services.db import Database
from app.services.errors import InvalidTransition, PermissionDenied, StaleEdit, ValidationFailed

from .test_capture_refdata import AAPL, FIXTURES, TODAY, build_reference, line, trade_by_ref, write_csv

UNKNOWN_ISIN = "FR0000120271"


@pytest.fixture
def in_repair(db: Database, users, tmp_path: Path) -> Trade:
    build_reference(db)
    import_trades(
        db, users["clerk1"], write_csv(tmp_path / "t.csv", line("T1", isin=UNKNOWN_ISIN)), today=TODAY
    )
    trade = trade_by_ref(db, "T1")
    assert trade.status == TradeStatus.REPAIR and trade.exception_codes == "ISIN_UNKNOWN"
    return trade


def test_fixing_an_unknown_isin_validates_the_trade(db: Database, users, in_repair: Trade) -> None:
    result = repair_trade(
        db, users["clerk1"], in_repair.id, in_repair.version, {"isin": AAPL.lower()}, today=TODAY
    )
    assert (result.status, result.exceptions, result.version) == ("VALIDATED", [], in_repair.version + 1)
    assert {"isin", "instrument_id", "status", "exception_codes"} <= set(result.changed)
    t = trade_by_ref(db, "T1")
    assert (t.status, t.isin, t.exception_codes, t.instrument_id is not None) == (
        TradeStatus.VALIDATED,
        AAPL,
        "",
        True,
    )
    assert t.settlement_date == dt.date(2026, 11, 20) and t.commission == Decimal("9.46")
    assert t.updated_by_id == users["clerk1"].user_id
    with db.read() as s:
        exc = s.scalars(select(TradeException).where(TradeException.trade_id == t.id)).all()
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "trades.repair")).one()
    assert [(e.code, e.cleared_at is not None) for e in exc] == [("ISIN_UNKNOWN", True)]
    assert entry.username == "clerk1" and entry.entity_id == str(t.id)
    assert (
        entry.before["isin"] == UNKNOWN_ISIN
        and entry.after["isin"] == AAPL
        and entry.after["status"] == "VALIDATED"
    )


def test_a_repair_that_still_fails_stays_in_repair_with_the_new_reasons(
    db: Database, users, in_repair: Trade
) -> None:
    result = repair_trade(
        db, users["clerk1"], in_repair.id, in_repair.version, {"isin": AAPL, "price": "1892.50"}, today=TODAY
    )
    assert result.status == "REPAIR" and [e.code for e in result.exceptions] == ["PRICE_TOLERANCE"]
    assert "price 1,892.50 is 900% away from the reference 189.25" in result.exceptions[0].message
    with db.read() as s:
        open_codes = s.scalars(
            select(TradeException.code).where(
                TradeException.trade_id == in_repair.id, TradeException.cleared_at.is_(None)
            )
        ).all()
    assert open_codes == ["PRICE_TOLERANCE"]
    # Fixed in a second edit, with the version the first one returned.
    again = repair_trade(db, users["clerk2"], in_repair.id, result.version, {"price": "189.30"}, today=TODAY)
    assert again.validated and trade_by_ref(db, "T1").price == Decimal("189.30000000")


def test_a_stale_repair_is_refused_with_who_changed_it(db: Database, users, in_repair: Trade) -> None:
    repair_trade(db, users["clerk2"], in_repair.id, in_repair.version, {"quantity": "150"}, today=TODAY)
    with pytest.raises(StaleEdit) as err:
        repair_trade(db, users["clerk1"], in_repair.id, in_repair.version, {"isin": AAPL}, today=TODAY)
    assert "changed by clerk2" in str(err.value) and "reload" in str(err.value)
    t = trade_by_ref(db, "T1")
    assert (t.isin, t.quantity, t.status) == (UNKNOWN_ISIN, Decimal("150"), TradeStatus.REPAIR)


def test_a_validated_trade_is_not_edited_here(db: Database, users, in_repair: Trade) -> None:
    result = repair_trade(db, users["clerk1"], in_repair.id, in_repair.version, {"isin": AAPL}, today=TODAY)
    with pytest.raises(InvalidTransition) as err:
        repair_trade(db, users["clerk1"], in_repair.id, result.version, {"quantity": "1"}, today=TODAY)
    assert "VALIDATED" in str(err.value) and "correction workflow" in str(err.value)


def test_bad_input_and_permissions(db: Database, users, in_repair: Trade) -> None:
    with pytest.raises(ValidationFailed, match="cannot be edited in the repair queue: status"):
        repair_trade(db, users["clerk1"], in_repair.id, in_repair.version, {"status": "VALIDATED"})
    with pytest.raises(ValidationFailed, match="price 'abc' is not a number"):
        repair_trade(db, users["clerk1"], in_repair.id, in_repair.version, {"price": "abc"})
    with pytest.raises(ValidationFailed, match="quantity 1.0000001 has more than 6 decimals"):
        repair_trade(db, users["clerk1"], in_repair.id, in_repair.version, {"quantity": "1.0000001"})
    with pytest.raises(PermissionDenied):
        repair_trade(db, users["auditor"], in_repair.id, in_repair.version, {"isin": AAPL})
    assert trade_by_ref(db, "T1").version == in_repair.version  # nothing was written


def test_revalidate_without_changes_after_reference_data_was_fixed(
    sqlite_db: Database, tmp_path: Path
) -> None:
    from app.models import Account
    from app.models.enums import KycStatus, Role
    from app.services.permissions import Actor

    build_reference(sqlite_db)
    clerk = Actor(user_id=None, username="c", role=Role.CLERK)
    import_trades(sqlite_db, clerk, write_csv(tmp_path / "t.csv", line("T1", account="ACC2")), today=TODAY)
    t = trade_by_ref(sqlite_db, "T1")
    assert t.exception_codes == "KYC_NOT_APPROVED"
    with sqlite_db.write() as s:
        s.execute(
            Account.__table__.update()
            .where(Account.code == "ACC2")
            .values(kyc_status=KycStatus.APPROVED.value)
        )
    assert repair_trade(sqlite_db, clerk, t.id, t.version, {}, today=TODAY).validated


def test_trade_detail(db: Database, users, tmp_path: Path) -> None:
    build_reference(db)
    import_trades(db, users["clerk1"], write_csv(tmp_path / "a.csv", line("T1", account="NOPE")), today=TODAY)
    t = trade_by_ref(db, "T1")
    repair_trade(db, users["clerk1"], t.id, t.version, {"account_code": "ACC1"}, today=TODAY)
    import_trades(
        db, users["clerk2"], write_csv(tmp_path / "b.csv", line("T1", account="ACC1", qty="120")), today=TODAY
    )
    with db.write() as s:
        si = SettlementInstruction(
            instruction_ref="SI-1",
            instruction_type=InstructionType.RVP,
            account_id=t.account_id or 1,
            counterparty_id=t.counterparty_id,
            instrument_id=t.instrument_id,
            quantity=Decimal("120"),
            settlement_amount=Decimal("22710"),
            currency="USD",
            trade_date=t.trade_date,
            intended_settlement_date=dt.date(2026, 11, 20),
            status=InstructionStatus.INSTRUCTED,
        )
        definition = ReconDefinition(
            name="confirms", left_source="trades", right_source="confirmations", config={}
        )
        s.add_all([si, definition])
        s.flush()
        s.add(InstructionTrade(instruction_id=si.id, trade_id=t.id))
        s.add(
            Break(
                definition_id=definition.id,
                fingerprint="f1",
                break_type=BreakType.FIELD_MISMATCH,
                status=BreakStatus.OPEN,
                internal_ref="T1",
                differences=[{"field": "quantity"}],
                as_of_date=dt.date(2026, 11, 20),
            )
        )
    d = trade_detail(db, users["auditor"], t.id)
    assert (
        d.trade["trade_ref"] == "T1"
        and d.trade["status"] == "VALIDATED"
        and d.trade["quantity"] == Decimal("120")
    )
    assert d.instrument["isin"] == AAPL and d.instrument["market"] == "XNYS"
    assert d.account["code"] == "ACC1" and d.counterparty["lei"] == "5493001KJTIIGC8Y1R12"
    assert (
        d.our_ssi["safekeeping_account"] == "SK-ACC1-XNYS"
        and d.their_ssi["safekeeping_account"] == "SK-CP1-XNYS"
    )
    assert [(v["fo_version"], v["action"]) for v in d.versions] == [(1, "NEW"), (2, "AMEND")]
    assert d.versions[0]["fields"]["account"] == "NOPE" and d.versions[1]["fields"]["quantity"] == "120"
    assert [(e.code, e.open) for e in d.exceptions] == [
        ("ACCOUNT_UNKNOWN", False)
    ] and d.open_exceptions == []
    assert [h["action"] for h in d.history] == ["trades.import", "trades.repair", "trades.import"]
    assert [h["username"] for h in d.history] == ["clerk1", "clerk1", "clerk2"]
    assert [i["instruction_ref"] for i in d.instructions] == ["SI-1"]
    assert [(b["status"], b["type"]) for b in d.breaks] == [("OPEN", "FIELD_MISMATCH")]
    assert d.editable is False and d.editable_fields == ()


def test_trade_detail_of_a_fix_trade_keeps_each_execution(sqlite_db: Database) -> None:
    from app.models.enums import Role
    from app.services.permissions import Actor

    build_reference(sqlite_db)
    clerk = Actor(user_id=None, username="c", role=Role.CLERK)
    import_trades(sqlite_db, clerk, FIXTURES / "quickfixj_session.log", today=TODAY)
    d = trade_detail(sqlite_db, clerk, trade_by_ref(sqlite_db, "OMS-ORD-3").id)
    assert [(v["payload"]["exec_id"], v["payload"]["kind"], v["payload"]["last_px"]) for v in d.versions] == [
        ("E-10", "FILL", "425.00"),
        ("E-11", "FILL", "425.50"),
        ("E-12", "CORRECT", "425.10"),
    ]
    assert d.versions[2]["payload"]["raw"].startswith("8=FIX.4.4|9=")
