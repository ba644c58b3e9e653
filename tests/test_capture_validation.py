"""Validation of captured trades: each repair reason code, each refusal reason, and what a clerk reads.

One file line per case, imported through the real pipeline on SQLite (the rules are the same on both backends;
the backend-specific writes are covered in test_capture_files and test_capture_fix). A trade failing a rule is
stored in REPAIR with the reason (code, field, words with the values); a line that cannot become a trade is
rejected with its line, field and reason and stores nothing.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models import Instrument, Market, Trade, TradeException
from app.models.enums import AssetClass, Liquidity, Role, TradeStatus
from app.services.capture import import_trades
from app.services.capture.validation import REASONS, REJECT_REASONS
from app.services.db import Database
from app.services.identifiers import make_isin
from app.services.permissions import Actor

from .test_capture_refdata import (
    AAPL,
    CP1_LEI,
    CP2_LEI,
    HEADER,
    OLDCO,
    TODAY,
    VOD,
    build_reference,
    counts,
    line,
    write_csv,
)

CLERK = Actor(user_id=None, username="test-clerk", role=Role.CLERK)
TOTAL = make_isin("FR", "000120271")  # TotalEnergies: a valid ISIN that is not in the test master


@pytest.fixture
def ref_db(sqlite_db: Database) -> Database:
    build_reference(sqlite_db)
    return sqlite_db


def _import(db: Database, path: Path, today: dt.date = TODAY):  # type: ignore[no-untyped-def]
    return import_trades(db, CLERK, path, today=today)


def _exceptions(db: Database, ref: str) -> tuple[Trade, list[TradeException]]:
    with db.read() as s:
        trade = s.scalars(select(Trade).where(Trade.trade_ref == ref)).one()
        exc = list(s.scalars(select(TradeException).where(TradeException.trade_id == trade.id)))
    return trade, exc


# (code, header, line, field, words the message must contain, today)
REPAIR_CASES = [
    (
        "ISIN_CHECK",
        HEADER,
        line("T1", isin="US0378331006"),
        "isin",
        "check digit is '6' but US037833100 needs '5'",
        TODAY,
    ),
    (
        "ISIN_UNKNOWN",
        HEADER,
        line("T1", isin=TOTAL, ccy="EUR"),
        "isin",
        f"ISIN {TOTAL} is not in the instrument master",
        TODAY,
    ),
    (
        "ISIN_INACTIVE",
        HEADER,
        line("T1", isin=OLDCO, price="10"),
        "isin",
        "Old Co. (delisted)) is inactive",
        TODAY,
    ),
    (
        "ACCOUNT_UNKNOWN",
        HEADER,
        line("T1", account="NOPE"),
        "account_code",
        "account NOPE is not in the account master",
        TODAY,
    ),
    ("ACCOUNT_INACTIVE", HEADER, line("T1", account="ACC3"), "account_code", "account ACC3 is closed", TODAY),
    (
        "KYC_NOT_APPROVED",
        HEADER,
        line("T1", account="ACC2"),
        "account_code",
        "KYC status PENDING; trades need APPROVED",
        TODAY,
    ),
    (
        "CPTY_UNKNOWN",
        HEADER,
        line("T1", cpty="NOPE"),
        "counterparty_code",
        "counterparty NOPE is not in the counterparty master",
        TODAY,
    ),
    (
        "CPTY_INACTIVE",
        HEADER,
        line("T1", cpty="CP3"),
        "counterparty_code",
        "counterparty CP3 is inactive",
        TODAY,
    ),
    (
        "LEI_CHECK",
        HEADER + ",counterparty_lei",
        line("T1") + ",5493001KJTIIGC8Y1R13",
        "counterparty_lei",
        "check digits are '13'",
        TODAY,
    ),
    (
        "LEI_MISMATCH",
        HEADER + ",counterparty_lei",
        line("T1") + f",{CP2_LEI}",
        "counterparty_lei",
        f"differs from its LEI {CP1_LEI}",
        TODAY,
    ),
    (
        "BIC_FORMAT",
        HEADER + ",counterparty_bic",
        line("T1") + ",BROK1S33",
        "counterparty_bic",
        "country code '1S' must be 2 letters",
        TODAY,
    ),
    (
        "BIC_MISMATCH",
        HEADER + ",counterparty_bic",
        line("T1") + ",BANKGB2L",
        "counterparty_bic",
        "differs from its BIC BROKUS33",
        TODAY,
    ),
    ("QTY_NOT_POSITIVE", HEADER, line("T1", qty="-100"), "quantity", "quantity -100 must be positive", TODAY),
    ("PRICE_NOT_POS", HEADER, line("T1", price="0"), "price", "price 0.00 must be positive", TODAY),
    (
        "PRICE_TOLERANCE",
        HEADER,
        line("T1", price="1892.50"),
        "price",
        "price 1,892.50 is 900% away from the reference 189.25 (tolerance 10% for equities)",
        TODAY,
    ),
    (
        "CCY_MISMATCH",
        HEADER,
        line("T1", ccy="EUR"),
        "currency",
        "currency EUR differs from the instrument's currency USD",
        TODAY,
    ),
    (
        "CCY_MISSING",
        HEADER,
        line("T1", isin=TOTAL, ccy=""),
        "currency",
        "no currency given and no instrument",
        TODAY,
    ),
    (
        "TRADE_DT_FUTURE",
        HEADER,
        line("T1", trade_date="2026-11-23"),
        "trade_date",
        "trade date 2026-11-23 is in the future (today is 2026-11-20 on XNYS)",
        TODAY,
    ),
    (
        "TRADE_DT_HOLIDAY",
        HEADER,
        line("T1", trade_date="2026-11-26"),
        "trade_date",
        "trade date 2026-11-26 (Thursday) is not a business day on XNYS",
        dt.date(2026, 11, 27),
    ),
    (
        "TRADE_DT_RANGE",
        HEADER,
        line("T1", trade_date="2014-06-02"),
        "trade_date",
        "outside the business-day calendars",
        TODAY,
    ),
    (
        "SETTLE_DATE_DIFF",
        HEADER + ",settlement_date",
        line("T1") + ",2026-11-23",
        "settlement_date",
        "settlement date 2026-11-23 sent by the front office differs from 2026-11-20 computed (T+1 on XNYS)",
        TODAY,
    ),
    (
        "SSI_MISSING",
        HEADER,
        line("T1", isin=VOD, cpty="CP2", price="0.75", ccy="GBP"),
        "their_ssi",
        "no standing settlement instruction of counterparty CP2 on XLON in GBP for equities",
        TODAY,
    ),
]


def test_a_clean_line_is_validated_without_exceptions(ref_db: Database, tmp_path: Path) -> None:
    report = _import(ref_db, write_csv(tmp_path / "t.csv", line("T1")))
    assert (report.accepted, report.repair, report.rejected) == (1, 0, 0)
    trade, exc = _exceptions(ref_db, "T1")
    assert trade.status == TradeStatus.VALIDATED and trade.exception_codes == "" and exc == []


@pytest.mark.parametrize(
    ("code", "header", "text", "field", "words", "today"), REPAIR_CASES, ids=[c[0] for c in REPAIR_CASES]
)
def test_repair_reason(
    ref_db: Database,
    tmp_path: Path,
    code: str,
    header: str,
    text: str,
    field: str,
    words: str,
    today: dt.date,
) -> None:
    report = _import(ref_db, write_csv(tmp_path / "t.csv", text, header=header), today=today)
    assert (report.accepted, report.repair, report.rejected) == (0, 1, 0)
    trade, exc = _exceptions(ref_db, "T1")
    assert trade.status == TradeStatus.REPAIR
    assert code in trade.exception_codes.split(",")
    found = [e for e in exc if e.code == code]
    assert len(found) == 1 and found[0].field == field and found[0].cleared_at is None
    assert words in found[0].message, found[0].message
    # The per-line report carries the same reason, with file and line.
    issue = next(i for i in report.issues if i.code == code)
    assert (issue.file, issue.line, issue.status, issue.field, issue.trade_ref) == (
        "t.csv",
        2,
        "repair",
        field,
        "T1",
    )
    assert words in issue.reason


def test_calendar_missing(ref_db: Database, tmp_path: Path) -> None:
    isin = make_isin("XS", "123456789")
    with ref_db.write() as s:
        m = Market(mic="XNOP", name="Nowhere Exchange", country="US", timezone="UTC", calendar_code="NOPE")
        s.add(m)
        s.flush()
        s.add(
            Instrument(
                isin=isin,
                name="Nowhere bond",
                asset_class=AssetClass.CORP_BOND,
                currency="USD",
                market_id=m.id,
                settlement_cycle=2,
                liquidity=Liquidity.OTHER_DEBT,
                reference_price=Decimal("100"),
            )
        )
    _import(ref_db, write_csv(tmp_path / "t.csv", line("T1", isin=isin, price="100")))
    trade, exc = _exceptions(ref_db, "T1")
    assert trade.status == TradeStatus.REPAIR and trade.settlement_date is None
    assert any(
        e.code == "CALENDAR_MISSING" and "market XNOP has no known business-day calendar" in e.message
        for e in exc
    )


def test_every_reason_is_kept_not_just_the_first(ref_db: Database, tmp_path: Path) -> None:
    report = _import(
        ref_db,
        write_csv(tmp_path / "t.csv", line("T1", account="ACC2", cpty="NOPE", price="1892.50", ccy="EUR")),
    )
    trade, exc = _exceptions(ref_db, "T1")
    # A EUR trade in a New York stock also finds no USD settlement instruction in EUR.
    assert trade.exception_codes == "KYC_NOT_APPROVED,CPTY_UNKNOWN,PRICE_TOLERANCE,CCY_MISMATCH,SSI_MISSING"
    assert sorted(e.code for e in exc) == sorted(trade.exception_codes.split(","))
    assert report.repair == 1 and len([i for i in report.issues if i.status == "repair"]) == 5


def test_price_tolerance_boundary_is_inclusive(ref_db: Database, tmp_path: Path) -> None:
    # Exactly 10% away is within tolerance; one cent more is not.
    _import(ref_db, write_csv(tmp_path / "t.csv", line("IN", price="208.175"), line("OUT", price="208.19")))
    assert _exceptions(ref_db, "IN")[0].status == TradeStatus.VALIDATED
    assert _exceptions(ref_db, "OUT")[0].exception_codes == "PRICE_TOLERANCE"


def test_identify_the_counterparty_by_lei_alone(ref_db: Database, tmp_path: Path) -> None:
    header = "trade_ref,isin,account,counterparty_lei,side,quantity,price,currency,trade_date"
    _import(
        ref_db,
        write_csv(
            tmp_path / "t.csv", f"T1,{AAPL},ACC1,{CP1_LEI},BUY,100,189.25,USD,2026-11-19", header=header
        ),
    )
    trade, _ = _exceptions(ref_db, "T1")
    assert trade.status == TradeStatus.VALIDATED and trade.counterparty_code == "CP1"


# (code, line, field, words): lines that cannot become a trade
REJECT_CASES = [
    ("MISSING_VALUE", line(""), "trade_ref", "no trade reference"),
    ("MISSING_VALUE", line("T1", qty=""), "quantity", "no quantity"),
    ("BAD_NUMBER", line("T1", qty="1OO"), "quantity", "quantity '1OO' is not a number"),
    (
        "BAD_NUMBER",
        line("T1", price="189.123456789"),
        "price",
        "has more decimals than OpsDesk keeps (8 decimals)",
    ),
    (
        "BAD_DATE",
        line("T1", trade_date="19/11/2026"),
        "trade_date",
        "trade date '19/11/2026' is not a date in the format %Y-%m-%d",
    ),
    ("BAD_TIME", line("T1", time="25:99"), "trade_time", "trade time '25:99' is neither a time"),
    ("BAD_SIDE", line("T1", side="X"), "side", "side 'X' is not one of BUY, B, SELL, S"),
    ("BAD_ACTION", line("T1", action="MODIFY"), "action", "action 'MODIFY' is not one of"),
    ("BAD_CCY", line("T1", ccy="EURO"), "currency", "currency 'EURO' is not a 3-letter ISO 4217 code"),
    (
        "TOO_LONG",
        line("T1", isin="US03783310055"),
        "isin",
        "isin 'US03783310055' is longer than 12 characters",
    ),
    ("FIELD_COUNT", line("T1") + ",extra", "", "the line has 13 fields; the header has 12"),
    ("UNKNOWN_TRADE", "T9,CANCEL,,,,,,,,,,", "trade_ref", "cannot cancel trade T9: it was never captured"),
]


@pytest.mark.parametrize(
    ("code", "text", "field", "words"), REJECT_CASES, ids=[f"{c[0]}-{c[2] or 'line'}" for c in REJECT_CASES]
)
def test_rejected_line(
    ref_db: Database, tmp_path: Path, code: str, text: str, field: str, words: str
) -> None:
    path = write_csv(tmp_path / "t.csv", line("OK1"), text, line("OK2"))
    report = _import(ref_db, path)
    # The line is refused with file, line, field and reason; the lines around it are imported all the same.
    assert (report.accepted, report.rejected, report.lines) == (2, 1, 3)
    issue = next(i for i in report.issues if i.status == "rejected")
    assert (issue.file, issue.line, issue.field, issue.code) == ("t.csv", 3, field, code)
    assert words in issue.reason, issue.reason
    assert counts(ref_db)["trades"] == 2


def test_trade_locked_past_validation(ref_db: Database, tmp_path: Path) -> None:
    _import(ref_db, write_csv(tmp_path / "a.csv", line("T1")))
    with ref_db.write() as s:
        s.execute(Trade.__table__.update().where(Trade.trade_ref == "T1").values(status="INSTRUCTED"))
    report = _import(ref_db, write_csv(tmp_path / "b.csv", line("T1", qty="200")))
    assert report.rejected == 1
    issue = report.issues[0]
    assert (
        issue.code == "TRADE_LOCKED"
        and "trade T1 is INSTRUCTED" in issue.reason
        and "correction" in issue.reason
    )
    assert _exceptions(ref_db, "T1")[0].quantity == Decimal("100")


def test_reason_tables_are_complete_and_fit_the_column() -> None:
    exercised = {c[0] for c in REPAIR_CASES} | {"CALENDAR_MISSING"}
    assert exercised == set(REASONS)
    assert all(len(code) <= 16 for code in REASONS)  # trade_exceptions.code is String(16)
    assert {c[0] for c in REJECT_CASES} | {"TRADE_LOCKED", "FIX_GARBLED", "FIX_FIELD"} == set(REJECT_REASONS)
