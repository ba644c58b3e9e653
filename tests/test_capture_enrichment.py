"""Enrichment: settlement dates from real market calendars and cycles, SSIs for both sides, fees and exact amounts.

Holidays come from exchange-calendars (Thanksgiving, the UK summer bank holiday, Memorial Day) and from the
market's own ``market_holidays`` (Veterans Day, when the NYSE trades but Fedwire is closed). Amounts are checked
to the last decimal on both backends.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from app.models import Counterparty, Market, StandingSettlementInstruction, Trade
from app.models.enums import AssetClass, Role, TradeStatus
from app.services.capture import import_trades
from app.services.capture.units import PRICE_SCALE, parse_units
from app.services.db import Database
from app.services.permissions import Actor

from .test_capture_refdata import FDAX, MSFT, SAP, TODAY, UST, VOD, build_reference, line, write_csv

CLERK = Actor(user_id=None, username="test-clerk", role=Role.CLERK)


@pytest.fixture
def ref_db(sqlite_db: Database) -> Database:
    build_reference(sqlite_db)
    return sqlite_db


def _trade(db: Database, tmp_path: Path, text: str, today: dt.date = TODAY) -> Trade:
    report = import_trades(db, CLERK, write_csv(tmp_path / "t.csv", text), today=today)
    assert report.lines == 1 and report.rejected == 0, report.issues
    ref = text.split(",")[0]
    with db.read() as s:
        return s.scalars(select(Trade).where(Trade.trade_ref == ref)).one()


# --- settlement dates --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "text", "today", "settles"),
    [
        # Wednesday before Thanksgiving (Thursday 26 November 2026): T+1 skips the holiday to Friday.
        (
            "us_thanksgiving",
            line("T1", trade_date="2026-11-25"),
            dt.date(2026, 11, 25),
            dt.date(2026, 11, 27),
        ),
        # Xetra, Friday: T+2 is Tuesday.
        (
            "xetra_friday",
            line("T1", isin=SAP, price="120", ccy="EUR", trade_date="2026-11-20"),
            TODAY,
            dt.date(2026, 11, 24),
        ),
        # London, Friday before the summer bank holiday (Monday 31 August 2026): T+2 is Wednesday.
        (
            "uk_august_bank_holiday",
            line("T1", isin=VOD, price="0.75", ccy="GBP", trade_date="2026-08-28"),
            TODAY,
            dt.date(2026, 9, 2),
        ),
        # Veterans Day: the NYSE trades, Fedwire is closed (kept in market_holidays): T+1 from the 10th is the 12th.
        ("us_settlement_closure", line("T1", trade_date="2026-11-10"), TODAY, dt.date(2026, 11, 12)),
        # US equities settled T+2 until 27 May 2024; Friday 24 May 2024 + 2 skips Memorial Day (27th): Wednesday.
        ("us_t2_before_28_may_2024", line("T1", trade_date="2024-05-24"), TODAY, dt.date(2024, 5, 29)),
        ("us_t1_from_28_may_2024", line("T1", trade_date="2024-05-28"), TODAY, dt.date(2024, 5, 29)),
        # EU equities move to T+1 on 11 October 2027: the Friday before still settles T+2.
        (
            "eu_t2_until_10_oct_2027",
            line("T1", isin=SAP, price="120", ccy="EUR", trade_date="2027-10-08"),
            dt.date(2027, 10, 15),
            dt.date(2027, 10, 12),
        ),
        (
            "eu_t1_from_11_oct_2027",
            line("T1", isin=SAP, price="120", ccy="EUR", trade_date="2027-10-11"),
            dt.date(2027, 10, 15),
            dt.date(2027, 10, 12),
        ),
        # Futures clear on trade date (the instrument's cycle, T+0).
        (
            "future_t0",
            line("T1", isin=FDAX, price="18000", ccy="EUR", qty="2", trade_date="2026-11-19"),
            TODAY,
            dt.date(2026, 11, 19),
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and not v[0].isupper() and "," not in v else "",
)
def test_settlement_date(
    ref_db: Database, tmp_path: Path, case: str, text: str, today: dt.date, settles: dt.date
) -> None:
    trade = _trade(ref_db, tmp_path, text, today)
    assert trade.settlement_date == settles, case
    assert trade.status == TradeStatus.VALIDATED, trade.exception_codes


# --- SSIs ------------------------------------------------------------------------------------------------------------


def test_ssis_for_both_sides_prefer_the_asset_class_and_respect_validity(
    ref_db: Database, tmp_path: Path
) -> None:
    with ref_db.write() as s:
        cp1 = s.scalars(select(Counterparty).where(Counterparty.code == "CP1")).one()
        xnys = s.scalars(select(Market).where(Market.mic == "XNYS")).one()
        generic = s.scalars(
            select(StandingSettlementInstruction).where(
                StandingSettlementInstruction.counterparty_id == cp1.id,
                StandingSettlementInstruction.market_id == xnys.id,
            )
        ).one()
        bonds = StandingSettlementInstruction(
            counterparty_id=cp1.id,
            market_id=xnys.id,
            currency="USD",
            asset_class=AssetClass.GOVT_BOND,
            place_of_settlement_bic="FRNYUS33",
            agent_bic="CITIUS33",
            safekeeping_account="SK-CP1-FED",
            cash_account="CA-CP1",
            valid_from=dt.date(2020, 1, 1),
        )
        expired = StandingSettlementInstruction(
            counterparty_id=cp1.id,
            market_id=xnys.id,
            currency="USD",
            asset_class=AssetClass.EQUITY,
            place_of_settlement_bic="DTCYUS33",
            agent_bic="CHASUS33",
            safekeeping_account="SK-OLD",
            cash_account="CA-OLD",
            valid_from=dt.date(2019, 1, 1),
            valid_to=dt.date(2025, 12, 31),
        )
        s.add_all([bonds, expired])
        s.flush()
        generic_id, bonds_id = generic.id, bonds.id
    equity = _trade(ref_db, tmp_path, line("EQ"))
    bond = _trade(ref_db, tmp_path, line("BD", isin=UST, qty="1000000", price="99.50"))
    assert equity.their_ssi_id == generic_id  # the equity-specific SSI expired at the end of 2025
    assert bond.their_ssi_id == bonds_id  # the SSI for government bonds wins over the generic one
    assert equity.our_ssi_id is not None and equity.our_ssi_id == bond.our_ssi_id


# --- fees and amounts ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "text", "gross", "commission", "fees", "net"),
    [
        # 5 bp of 1,892.50 is 0.95: the 5.00 minimum applies.
        ("equity_minimum", line("T1", qty="10", price="189.25"), "1892.50", "5.00", "0", "1897.50"),
        ("equity_bp", line("T1", qty="1000", price="189.25"), "189250.00", "94.63", "0", "189344.63"),
        # A US sell pays the SEC fee: 42,500 x 27.80 / 1,000,000 = 1.1815 -> 1.18.
        (
            "us_sell_sec_fee",
            line("T1", isin=MSFT, side="SELL", qty="100", price="425.00"),
            "42500.00",
            "21.25",
            "1.18",
            "42477.57",
        ),
        # A UK purchase pays 0.5% stamp duty reserve tax.
        (
            "uk_buy_stamp_duty",
            line("T1", isin=VOD, qty="10000", price="0.75", ccy="GBP"),
            "7500.00",
            "5.00",
            "37.50",
            "7542.50",
        ),
        # Bonds are quoted in percent of nominal: 1,000,000 at 99.50 is 995,000.00; 0.5 bp commission.
        (
            "bond_percent_of_nominal",
            line("T1", isin=UST, qty="1000000", price="99.50"),
            "995000.00",
            "49.75",
            "0",
            "995049.75",
        ),
        # Futures: quantity x price x contract size (25); 2.50 per contract.
        (
            "future_contract_size",
            line("T1", isin=FDAX, qty="2", price="18000", ccy="EUR", trade_date="2026-11-19"),
            "900000.00",
            "5.00",
            "0",
            "900005.00",
        ),
        # Gross rounds half-even to the currency's minor unit, once, from the exact product:
        # 7 x 189.34567891 = 1325.41975237 -> 1325.42 (a USD amount has cents, nothing finer).
        ("exact_rounding", line("T1", qty="7", price="189.34567891"), "1325.42", "5.00", "0", "1330.42"),
        # Half-even at the cent: 100.125 -> 100.12, 100.135 -> 100.14.
        ("half_even_down", line("T1", qty="1", price="100.125"), "100.12", "5.00", "0", "105.12"),
        ("half_even_up", line("T1", qty="1", price="100.135"), "100.14", "5.00", "0", "105.14"),
        # Yen have no minor unit: 3 x 1234.5 = 3703.5 -> 3704 (half-even: 3703.5 is between 3703 and 3704, 3704 even).
        ("yen_whole", line("T1", qty="3", price="1234.5", ccy="JPY"), "3704", "5", "0", "3709"),
    ],
    ids=lambda v: v if isinstance(v, str) and "," not in v and not v[:1].isdigit() else "",
)
def test_amounts(
    ref_db: Database, tmp_path: Path, case: str, text: str, gross: str, commission: str, fees: str, net: str
) -> None:
    trade = _trade(ref_db, tmp_path, text)
    assert (trade.gross_amount, trade.commission, trade.fees, trade.net_amount) == (
        Decimal(gross),
        Decimal(commission),
        Decimal(fees),
        Decimal(net),
    ), case


def test_amounts_are_exact_on_both_backends(db: Database, tmp_path: Path) -> None:
    build_reference(db)
    rng = random.Random(7)
    rows, expected = [], {}
    for i in range(300):
        qty = Decimal(rng.randint(1, 50_000)) / (1 if i % 3 else Decimal(1000))  # every third is fractional
        px = (Decimal("189.25") * (1 + Decimal(rng.randint(-500, 500)) / 10_000)).quantize(
            Decimal("0.00000001")
        )
        rows.append(line(f"X{i}", qty=str(qty), price=str(px)))
        gross = (qty * px).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
        expected[f"X{i}"] = (qty, px, gross)
    report = import_trades(db, CLERK, write_csv(tmp_path / "t.csv", *rows), today=TODAY)
    assert report.accepted == 300
    with db.read() as s:
        got = {
            t.trade_ref: (
                t.quantity,
                t.price,
                t.gross_amount,
                t.net_amount - t.gross_amount - t.commission - t.fees,
            )
            for t in s.scalars(select(Trade).where(Trade.source == "CSV:default"))
        }
    for ref, (qty, px, gross) in expected.items():
        assert got[ref][:3] == (qty, px, gross), ref
        assert got[ref][3] == 0  # a buy: net = gross + commission + fees, to the cent


def test_parse_units_is_exact_and_reads_each_convention() -> None:
    rng = random.Random(3)
    texts = [
        f"{rng.randint(0, 10**9)}.{rng.randint(0, 10**8 - 1):08d}".rstrip("0").rstrip(".")
        for _ in range(2000)
    ]
    units, problem = parse_units(texts, PRICE_SCALE)
    assert not problem.any()
    assert [int(Decimal(t).scaleb(PRICE_SCALE)) for t in texts] == units.tolist()
    units, problem = parse_units(
        ["1.892,50", "-3,5", " 12 ", "1.2.3", "", "1,23456789"], 2, decimal=",", thousands="."
    )
    assert units.tolist()[:3] == [189250, -350, 1200]
    assert problem.tolist() == [0, 0, 0, 2, 1, 3]
    units, problem = parse_units(["1,000", "1'000"], 0, thousands=",")
    assert units.tolist()[0] == 1000 and problem.tolist() == [0, 2]
    assert parse_units(np.array(["12345678901"]), 8)[1].tolist() == [4]  # would not fit: too large
