"""Small builders for rows the service tests need, written through a real unit of work."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from sqlalchemy import insert

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


def trade_row(i: int, rnd: random.Random, *, latest: dt.date, **over: Any) -> dict[str, Any]:
    """One trade as a Core insert row: every status in turn, trade dates over the ten days up to ``latest``.

    Repairs have no settlement date (they must sort last, not vanish); ``over`` sets any column.
    """
    statuses = list(TradeStatus)
    status = statuses[i % len(statuses)]
    td = latest - dt.timedelta(days=rnd.randrange(10))
    qty = Decimal(rnd.randrange(1, 50)) * 100
    price = Decimal(rnd.randrange(1000, 50000)) / 100
    row = dict(
        trade_ref=f"T{i:05d}",
        source=rnd.choice(["CSV:default", "FIX:DESK1"]),
        isin=rnd.choice(["US0378331005", "US5949181045", "DE0007164600"]),
        account_code=rnd.choice(["ACC1", "ACC2", "ACC3"]),
        counterparty_code=rnd.choice(["CP1", "CP2"]),
        side=rnd.choice([Side.BUY, Side.SELL]),
        quantity=qty,
        price=price,
        currency=rnd.choice(["USD", "EUR"]),
        gross_amount=qty * price,
        net_amount=qty * price,
        trade_date=td,
        trade_time=utcnow(),
        settlement_date=None if status is TradeStatus.REPAIR else td + dt.timedelta(days=rnd.choice([1, 2])),
        status=status,
        exception_codes="ISIN_UNKNOWN" if status is TradeStatus.REPAIR else "",
        order_ref=f"ORD{i // 3}",
        fo_version=1,
        commission=Decimal(0),
        fees=Decimal(0),
        version=1,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    row.update(over)
    return row


def insert_trades(db: Database, n: int, seed: int, *, latest: dt.date) -> list[dict[str, Any]]:
    """``n`` trades of ``trade_row`` (seeded, so a test's book is the same every run), inserted in one statement."""
    rnd = random.Random(seed)
    rows = [trade_row(i, rnd, latest=latest) for i in range(n)]
    with db.write() as s:
        s.execute(insert(Trade), rows)
    return rows
