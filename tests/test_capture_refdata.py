"""Reference data and helpers the capture tests share, and checks that the reference data itself is sound.

A small book built with the ORM in one unit of work: four markets with their real calendars (XNYS, XETR, XLON,
XEUR), a handful of instruments (real ISINs where they exist), three accounts (one with KYC pending, one closed),
three counterparties (valid LEIs and BICs; CP2 has no SSI in London, CP3 is inactive) and SSIs for both sides.
Other capture test modules import ``build_reference``, ``write_csv`` and the constants from here.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from app.models import (
    Account,
    Counterparty,
    Instrument,
    Market,
    MarketHoliday,
    StandingSettlementInstruction,
    Trade,
    TradeException,
    TradeVersion,
)
from app.models.enums import AccountType, AssetClass, KycStatus, Liquidity, Segregation
from app.services.db import Database
from app.services.identifiers import is_valid_bic, is_valid_isin, is_valid_lei

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "trades"
TODAY = dt.date(2026, 11, 20)  # a Friday; trade dates in the tests are checked against it

AAPL = "US0378331005"
MSFT = "US5949181045"
SAP = "DE0007164600"
VOD = "GB00BH4HKS39"
UST = "US91282CJL55"  # a US Treasury note (percent-of-nominal prices)
FDAX = "DE000C6EV1U0"  # a DAX future, contract size 25
OLDCO = "USOLDCO00010"  # valid check digit, inactive in the master
CP1_LEI = "5493001KJTIIGC8Y1R12"
CP2_LEI = "213800ABCDEFGH123446"
CP3_LEI = "529900XYZ12345678972"
VETERANS_DAY = dt.date(
    2026, 11, 11
)  # NYSE open, Fedwire closed: a settlement closure kept in market_holidays

HEADER = (
    "trade_ref,action,order_ref,isin,account,counterparty,side,quantity,price,currency,trade_date,trade_time"
)


def build_reference(db: Database) -> None:
    with db.write() as s:
        markets = {
            "XNYS": Market(
                mic="XNYS",
                name="New York Stock Exchange",
                country="US",
                timezone="America/New_York",
                calendar_code="XNYS",
                csd_bic="DTCYUS33",
                instruction_cutoff=dt.time(21, 0),
                default_settlement_cycle=1,
            ),
            "XETR": Market(
                mic="XETR",
                name="Xetra",
                country="DE",
                timezone="Europe/Berlin",
                calendar_code="XETR",
                csd_bic="DAKVDEFF",
                default_settlement_cycle=2,
            ),
            "XLON": Market(
                mic="XLON",
                name="London Stock Exchange",
                country="GB",
                timezone="Europe/London",
                calendar_code="XLON",
                csd_bic="CRSTGB22",
                default_settlement_cycle=2,
            ),
            "XEUR": Market(
                mic="XEUR",
                name="Eurex",
                country="DE",
                timezone="Europe/Berlin",
                calendar_code="XEUR",
                csd_bic="DAKVDEFF",
                default_settlement_cycle=0,
            ),
        }
        s.add_all(markets.values())
        s.flush()
        s.add(
            MarketHoliday(
                market_id=markets["XNYS"].id, holiday_date=VETERANS_DAY, name="Veterans Day (Fedwire)"
            )
        )

        def inst(
            isin: str,
            name: str,
            ticker: str,
            ac: AssetClass,
            ccy: str,
            mic: str,
            cycle: int,
            px: str,
            contract: str = "1",
            active: bool = True,
        ) -> Instrument:
            return Instrument(
                isin=isin,
                name=name,
                ticker=ticker,
                asset_class=ac,
                currency=ccy,
                market_id=markets[mic].id,
                settlement_cycle=cycle,
                liquidity=Liquidity.LIQUID_SHARE,
                reference_price=Decimal(px),
                contract_size=Decimal(contract),
                is_active=active,
            )

        s.add_all(
            [
                inst(AAPL, "Apple Inc.", "AAPL", AssetClass.EQUITY, "USD", "XNYS", 1, "189.25"),
                inst(MSFT, "Microsoft Corp.", "MSFT", AssetClass.EQUITY, "USD", "XNYS", 1, "425.00"),
                inst(SAP, "SAP SE", "SAP", AssetClass.EQUITY, "EUR", "XETR", 2, "120.00"),
                inst(VOD, "Vodafone Group plc", "VOD", AssetClass.EQUITY, "GBP", "XLON", 2, "0.7500"),
                inst(
                    UST, "US Treasury 4.5% 2033", "T 4.5 33", AssetClass.GOVT_BOND, "USD", "XNYS", 1, "99.50"
                ),
                inst(FDAX, "DAX future Dec 2026", "FDAX", AssetClass.FUTURE, "EUR", "XEUR", 0, "18000", "25"),
                inst(
                    OLDCO,
                    "Old Co. (delisted)",
                    "OLDC",
                    AssetClass.EQUITY,
                    "USD",
                    "XNYS",
                    1,
                    "10.00",
                    active=False,
                ),
            ]
        )
        accounts = [
            Account(
                code="ACC1",
                name="Alpha Pension Fund",
                account_type=AccountType.CLIENT,
                kyc_status=KycStatus.APPROVED,
                segregation=Segregation.SEGREGATED,
                base_currency="USD",
            ),
            Account(
                code="ACC2",
                name="Beta Family Office",
                account_type=AccountType.CLIENT,
                kyc_status=KycStatus.PENDING,
                segregation=Segregation.OMNIBUS,
                base_currency="EUR",
            ),
            Account(
                code="ACC3",
                name="Closed Client",
                account_type=AccountType.CLIENT,
                kyc_status=KycStatus.APPROVED,
                segregation=Segregation.OMNIBUS,
                base_currency="EUR",
                is_active=False,
            ),
        ]
        cptys = [
            Counterparty(code="CP1", name="Brokerage One", lei=CP1_LEI, bic="BROKUS33", country="US"),
            Counterparty(code="CP2", name="Bank Two", lei=CP2_LEI, bic="BANKGB2L", country="GB"),
            Counterparty(
                code="CP3", name="Old Broker", lei=CP3_LEI, bic="OLDBDEFF", country="DE", is_active=False
            ),
        ]
        s.add_all(accounts + cptys)
        s.flush()
        ccy = {"XNYS": "USD", "XETR": "EUR", "XLON": "GBP", "XEUR": "EUR"}
        ssis = []
        for mic, m in markets.items():
            for a in accounts:
                ssis.append(
                    StandingSettlementInstruction(
                        account_id=a.id,
                        market_id=m.id,
                        currency=ccy[mic],
                        place_of_settlement_bic=m.csd_bic or "",
                        agent_bic="IRVTUS3N",
                        safekeeping_account=f"SK-{a.code}-{mic}",
                        cash_account=f"CA-{a.code}",
                        valid_from=dt.date(2020, 1, 1),
                    )
                )
            for c in cptys:
                if c.code == "CP2" and mic == "XLON":
                    continue  # SSI_MISSING for CP2 in London
                ssis.append(
                    StandingSettlementInstruction(
                        counterparty_id=c.id,
                        market_id=m.id,
                        currency=ccy[mic],
                        place_of_settlement_bic=m.csd_bic or "",
                        agent_bic="CITIUS33",
                        safekeeping_account=f"SK-{c.code}-{mic}",
                        cash_account=f"CA-{c.code}",
                        valid_from=dt.date(2020, 1, 1),
                    )
                )
        s.add_all(ssis)


def write_csv(path: Path, *rows: str, header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def line(
    ref: str,
    *,
    action: str = "",
    isin: str = AAPL,
    account: str = "ACC1",
    cpty: str = "CP1",
    side: str = "BUY",
    qty: str = "100",
    price: str = "189.25",
    ccy: str = "USD",
    trade_date: str = "2026-11-19",
    time: str = "14:30:00",
    order: str = "",
) -> str:
    """One line in the default profile's layout (HEADER), clean unless told otherwise."""
    return ",".join([ref, action, order, isin, account, cpty, side, qty, price, ccy, trade_date, time])


def counts(db: Database) -> dict[str, int]:
    """Rows in the capture tables: the way to prove that something changed nothing."""
    with db.read() as s:
        return {
            m.__tablename__: int(s.scalar(select(func.count()).select_from(m)) or 0)
            for m in (Trade, TradeVersion, TradeException)
        }


def trade_by_ref(db: Database, ref: str) -> Trade:
    with db.read() as s:
        return s.scalars(select(Trade).where(Trade.trade_ref == ref)).one()


# --- the reference data is what the tests assume ---------------------------------------------------------------------


def test_reference_identifiers_are_valid(sqlite_db: Database) -> None:
    build_reference(sqlite_db)
    with sqlite_db.read() as s:
        assert all(is_valid_isin(i) for i in s.scalars(select(Instrument.isin)))
        assert all(is_valid_lei(c.lei) and is_valid_bic(c.bic) for c in s.scalars(select(Counterparty)))


def test_fix_fixtures_name_the_reference_counterparty() -> None:
    text = (FIXTURES / "make_fix_logs.py").read_text(encoding="utf-8")
    assert f'CP1_LEI = "{CP1_LEI}"' in text
