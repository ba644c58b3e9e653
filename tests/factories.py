"""Small builders for rows the service tests need, written through a real unit of work."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from app.models import Trade, utcnow
from app.models.enums import Side, TradeStatus
from app.services.db import Database


def make_trade(db: Database, ref: str = "T-1", status: TradeStatus = TradeStatus.REPAIR) -> int:
    with db.write() as s:
        t = Trade(
            trade_ref=ref,
            source="TEST",
            isin="US0378331005",
            account_code="ACC1",
            counterparty_code="CP1",
            side=Side.BUY,
            quantity=Decimal("100"),
            price=Decimal("189.25"),
            currency="USD",
            gross_amount=Decimal("18925.00"),
            net_amount=Decimal("18925.00"),
            trade_date=dt.date(2026, 11, 20),
            trade_time=utcnow(),
            status=status,
        )
        s.add(t)
        s.flush()
        return t.id
