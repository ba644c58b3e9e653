"""Builders shared by the SLA tests (no tests here): a tiny book with a New York, a London and a futures market,
and items of every kind an SLA watches, each written through a real unit of work."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from itertools import count
from typing import Any

from app.models import (
    Account,
    Break,
    Correction,
    Counterparty,
    Instrument,
    Market,
    MarketHoliday,
    ReconDefinition,
    SettlementInstruction,
    Trade,
)
from app.models.enums import (
    AccountType,
    AssetClass,
    BreakStatus,
    BreakType,
    CorrectionKind,
    CorrectionStatus,
    InstructionStatus,
    InstructionType,
    KycStatus,
    Liquidity,
    Segregation,
    Side,
    TradeStatus,
)
from app.services.db import Database

UTC = dt.UTC


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


class SlaBook:
    """Reference data once, then one call per item."""

    def __init__(self, db: Database, *, extra_closures: dict[str, list[dt.date]] | None = None) -> None:
        self.db = db
        self._n = count(1)
        self.instruments: dict[str, int] = {}
        with db.write() as s:
            markets = {}
            for mic, country, zone, cutoff in (
                ("XNYS", "US", "America/New_York", dt.time(16, 0)),
                ("XLON", "GB", "Europe/London", dt.time(16, 0)),
                ("XEUR", "DE", "Europe/Berlin", dt.time(18, 0)),
            ):
                m = Market(
                    mic=mic,
                    name=mic,
                    country=country,
                    timezone=zone,
                    calendar_code=mic,
                    instruction_cutoff=cutoff,
                )
                s.add(m)
                s.flush()
                markets[mic] = m.id
                for day in (extra_closures or {}).get(mic, []):
                    s.add(MarketHoliday(market_id=m.id, holiday_date=day, name="extra closure"))
            for key, isin, mic, asset in (
                ("US", "US0378331005", "XNYS", AssetClass.EQUITY),
                ("UK", "GB0002634946", "XLON", AssetClass.EQUITY),
                ("FUT", "DE000C6EV1N5", "XEUR", AssetClass.FUTURE),
            ):
                i = Instrument(
                    isin=isin,
                    name=key,
                    asset_class=asset,
                    currency="USD",
                    market_id=markets[mic],
                    settlement_cycle=1,
                    liquidity=Liquidity.LIQUID_SHARE,
                    reference_price=Decimal("100"),
                )
                s.add(i)
                s.flush()
                self.instruments[key] = i.id
            acc = Account(
                code="ACC1",
                name="Account 1",
                account_type=AccountType.CLIENT,
                kyc_status=KycStatus.APPROVED,
                segregation=Segregation.SEGREGATED,
                base_currency="USD",
            )
            cp = Counterparty(
                code="CP1", name="Broker", lei="5493001KJTIIGC8Y1R12", bic="BROKGB2L", country="GB"
            )
            rd = ReconDefinition(name="cash", left_source="internal", right_source="bank", config={})
            s.add_all([acc, cp, rd])
            s.flush()
            self.account_id, self.counterparty_id, self.recon_id = acc.id, cp.id, rd.id

    def trade(
        self,
        *,
        instrument: str | None = "US",
        trade_date: dt.date,
        status: TradeStatus = TradeStatus.VALIDATED,
        created_at: dt.datetime | None = None,
        settlement_date: dt.date | None = None,
        affirmed_at: dt.datetime | None = None,
        owner_id: int | None = None,
    ) -> int:
        n = next(self._n)
        with self.db.write() as s:
            t = Trade(
                trade_ref=f"T-{n}",
                source="TEST",
                isin="US0378331005",
                account_code="ACC1",
                counterparty_code="CP1",
                instrument_id=self.instruments.get(instrument) if instrument else None,
                side=Side.BUY,
                quantity=Decimal("100"),
                price=Decimal("10"),
                currency="USD",
                gross_amount=Decimal("1000"),
                net_amount=Decimal("1000"),
                trade_date=trade_date,
                trade_time=created_at or dt.datetime.combine(trade_date, dt.time(14, 0), UTC),
                settlement_date=settlement_date,
                status=status,
                affirmed_at=affirmed_at,
                owner_id=owner_id,
            )
            if created_at is not None:
                t.created_at = created_at
            s.add(t)
            s.flush()
            return t.id

    def instruction(
        self,
        *,
        instrument: str = "US",
        isd: dt.date,
        status: InstructionStatus = InstructionStatus.MATCHED,
        owner_id: int | None = None,
    ) -> int:
        n = next(self._n)
        with self.db.write() as s:
            i = SettlementInstruction(
                instruction_ref=f"I-{n}",
                instruction_type=InstructionType.RVP,
                account_id=self.account_id,
                counterparty_id=self.counterparty_id,
                instrument_id=self.instruments[instrument],
                quantity=Decimal("100"),
                settlement_amount=Decimal("1000"),
                currency="USD",
                trade_date=isd - dt.timedelta(days=1),
                intended_settlement_date=isd,
                status=status,
                owner_id=owner_id,
            )
            s.add(i)
            s.flush()
            return i.id

    def brk(
        self,
        *,
        opened_at: dt.datetime,
        amount: str = "100",
        category: str | None = None,
        status: BreakStatus = BreakStatus.OPEN,
        owner_id: int | None = None,
    ) -> int:
        n = next(self._n)
        with self.db.write() as s:
            b = Break(
                definition_id=self.recon_id,
                fingerprint=f"fp-{n}",
                break_type=BreakType.FIELD_MISMATCH,
                status=status,
                category=category,
                amount=Decimal(amount),
                currency="USD",
                as_of_date=opened_at.date(),
                opened_at=opened_at,
                owner_id=owner_id,
            )
            s.add(b)
            s.flush()
            return b.id

    def correction(self, *, maker_id: int, created_at: dt.datetime, **over: Any) -> int:
        with self.db.write() as s:
            c = Correction(
                kind=CorrectionKind.AMEND_TRADE,
                item_type="trade",
                item_id=1,
                payload={},
                reason="test",
                status=over.get("status", CorrectionStatus.PENDING),
                maker_id=maker_id,
            )
            c.created_at = created_at
            s.add(c)
            s.flush()
            return c.id

    def update(self, model: type, item_id: int, **values: Any) -> None:
        from sqlalchemy import update

        with self.db.write() as s:
            s.execute(update(model).where(model.id == item_id).values(**values))
