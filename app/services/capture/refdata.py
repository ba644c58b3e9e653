"""Reference data for one import: instruments, markets, accounts, counterparties and SSIs as frames and hash maps.

Reference tables are small (thousands of rows) next to a trade file (up to millions of lines), so each is read once
per import in one query and the trades are joined to it in memory: the file's identifiers are factorised (each
distinct ISIN, account or counterparty looked up once) and the positions found are spread back over the lines with
one numpy ``take``; a hash join, the same result as a pandas left merge on the code, without copying the wide
trade frame.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Account, Counterparty, Instrument, Market, MarketHoliday, StandingSettlementInstruction
from app.services import calendars

from .units import PRICE_SCALE, QTY_SCALE, from_decimal


@dataclass
class RefData:
    instruments: pd.DataFrame  # one row per instrument, positional index
    accounts: pd.DataFrame
    counterparties: pd.DataFrame
    ssis: pd.DataFrame
    markets: pd.DataFrame
    isin_pos: dict[str, int]
    ticker_pos: dict[str, int]
    account_pos: dict[str, int]
    cpty_pos: dict[str, int]
    cpty_by_lei: dict[str, int]
    cpty_by_bic: dict[str, int | None]  # None: several counterparties share the BIC (ambiguous)
    closures: dict[int, tuple[dt.date, ...]]  # market id -> extra settlement closures (market_holidays)
    _trading: dict[int, Any] = field(default_factory=dict)
    _settlement: dict[int, Any] = field(default_factory=dict)

    def market_row(self, market_id: int) -> pd.Series:
        return self.markets.loc[market_id]

    def trading_calendar(self, market_id: int) -> Any:
        """The exchange's trading days (exchange-calendars), for the trade-date check. None if unknown."""
        if market_id not in self._trading:
            self._trading[market_id] = _calendar(str(self.markets.loc[market_id, "calendar_code"]), ())
        return self._trading[market_id]

    def settlement_calendar(self, market_id: int) -> Any:
        """Trading days minus the settlement-system closures kept in market_holidays. None if unknown."""
        if market_id not in self._settlement:
            code = str(self.markets.loc[market_id, "calendar_code"])
            self._settlement[market_id] = _calendar(code, self.closures.get(market_id, ()))
        return self._settlement[market_id]


def _calendar(code: str, extra: tuple[dt.date, ...]) -> Any:
    from app.services.errors import ValidationFailed

    try:
        return calendars.get_calendar(code, extra_closures=extra)
    except ValidationFailed:
        return None


def _objects(values: Any) -> pd.Series:
    """A column of Python objects as they are (pandas would read None in a text column as NaN)."""
    items = list(values)
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return pd.Series(out, dtype=object)


def load(session: Session) -> RefData:
    market_rows = session.execute(
        select(
            Market.id,
            Market.mic,
            Market.name,
            Market.country,
            Market.timezone,
            Market.calendar_code,
        )
    ).all()
    markets = pd.DataFrame(
        {
            c: _objects(getattr(r, c) for r in market_rows)
            for c in ("id", "mic", "name", "country", "timezone", "calendar_code")
        }
    ).set_index("id", drop=False)
    inst_rows = session.execute(
        select(
            Instrument.id,
            Instrument.isin,
            Instrument.name,
            Instrument.ticker,
            Instrument.asset_class,
            Instrument.currency,
            Instrument.market_id,
            Instrument.settlement_cycle,
            Instrument.reference_price,
            Instrument.contract_size,
            Instrument.is_active,
        ).order_by(Instrument.id)
    ).all()
    instruments = pd.DataFrame(
        {
            "id": np.array([r.id for r in inst_rows], dtype=np.int64),
            "isin": _objects(r.isin for r in inst_rows),
            "name": _objects(r.name for r in inst_rows),
            "ticker": _objects(r.ticker for r in inst_rows),
            "asset_class": _objects(getattr(r.asset_class, "value", r.asset_class) for r in inst_rows),
            "currency": _objects(r.currency for r in inst_rows),
            "market_id": np.array([r.market_id for r in inst_rows], dtype=np.int64),
            "settlement_cycle": np.array([r.settlement_cycle for r in inst_rows], dtype=np.int64),
            "ref_px_u": np.array(
                [from_decimal(r.reference_price, PRICE_SCALE) for r in inst_rows], dtype=np.int64
            ),
            "contract_u": np.array(
                [from_decimal(r.contract_size, QTY_SCALE) for r in inst_rows], dtype=np.int64
            ),
            "is_active": np.array([bool(r.is_active) for r in inst_rows], dtype=bool),
        }
    )
    if len(instruments):
        m = markets.reindex(instruments["market_id"].to_numpy())
        for name, src in (
            ("mic", "mic"),
            ("market_name", "name"),
            ("country", "country"),
            ("market_tz", "timezone"),
        ):
            instruments[name] = pd.Series(
                m[src].to_numpy(dtype=object), dtype=object, index=instruments.index
            )
    else:
        for c in ("mic", "market_name", "country", "market_tz"):
            instruments[c] = pd.Series([], dtype=object)
    acct_rows = session.execute(
        select(Account.id, Account.code, Account.name, Account.kyc_status, Account.is_active).order_by(
            Account.id
        )
    ).all()
    accounts = pd.DataFrame(
        {
            "id": np.array([r.id for r in acct_rows], dtype=np.int64),
            "code": _objects(r.code for r in acct_rows),
            "name": _objects(r.name for r in acct_rows),
            "kyc_status": _objects(getattr(r.kyc_status, "value", r.kyc_status) for r in acct_rows),
            "is_active": np.array([bool(r.is_active) for r in acct_rows], dtype=bool),
        }
    )
    cp_rows = session.execute(
        select(
            Counterparty.id,
            Counterparty.code,
            Counterparty.name,
            Counterparty.lei,
            Counterparty.bic,
            Counterparty.is_active,
        ).order_by(Counterparty.id)
    ).all()
    cptys = pd.DataFrame(
        {
            "id": np.array([r.id for r in cp_rows], dtype=np.int64),
            "code": _objects(r.code for r in cp_rows),
            "name": _objects(r.name for r in cp_rows),
            "lei": _objects(r.lei for r in cp_rows),
            "bic": _objects(r.bic for r in cp_rows),
            "is_active": np.array([bool(r.is_active) for r in cp_rows], dtype=bool),
        }
    )
    S = StandingSettlementInstruction
    ssi_rows = session.execute(
        select(
            S.id,
            S.counterparty_id,
            S.account_id,
            S.market_id,
            S.currency,
            S.asset_class,
            S.valid_from,
            S.valid_to,
        )
    ).all()
    # Object columns throughout: pandas would turn a missing asset class or end date into NaN.
    ssis = pd.DataFrame(
        {
            "id": _objects(r.id for r in ssi_rows),
            "counterparty_id": _objects(r.counterparty_id for r in ssi_rows),
            "account_id": _objects(r.account_id for r in ssi_rows),
            "market_id": _objects(r.market_id for r in ssi_rows),
            "currency": _objects(r.currency for r in ssi_rows),
            "asset_class": _objects(getattr(r.asset_class, "value", r.asset_class) for r in ssi_rows),
            "valid_from": _objects(r.valid_from for r in ssi_rows),
            "valid_to": _objects(r.valid_to for r in ssi_rows),
        }
    )
    closures: dict[int, list[dt.date]] = {}
    for mid, day in session.execute(select(MarketHoliday.market_id, MarketHoliday.holiday_date)).all():
        closures.setdefault(int(mid), []).append(day)
    by_bic: dict[str, int | None] = {}
    for i, bic in enumerate(cptys["bic"]):
        for key in {bic, bic[:8]}:
            by_bic[key] = None if key in by_bic and by_bic[key] != i else i
    tickers: dict[str, int] = {}
    seen_twice: set[str] = set()
    for i, t in enumerate(instruments["ticker"]):
        if t:
            if t in tickers:
                seen_twice.add(t)
            tickers[t] = i
    for t in seen_twice:
        tickers.pop(t)
    return RefData(
        instruments=instruments,
        accounts=accounts,
        counterparties=cptys,
        ssis=ssis,
        markets=markets,
        isin_pos={v: i for i, v in enumerate(instruments["isin"])},
        ticker_pos=tickers,
        account_pos={v: i for i, v in enumerate(accounts["code"])},
        cpty_pos={v: i for i, v in enumerate(cptys["code"])},
        cpty_by_lei={v: i for i, v in enumerate(cptys["lei"])},
        cpty_by_bic=by_bic,
        closures={k: tuple(sorted(v)) for k, v in closures.items()},
    )


def lookup(values: np.ndarray | pd.Series, table: dict[str, Any]) -> np.ndarray:
    """Position in a reference table for each value (-1 when absent), looking each distinct value up once."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=False)
    found = np.array([(-1 if (p := table.get(u)) is None else p) for u in uniques], dtype=np.int64)
    return found[codes] if len(codes) else np.zeros(0, dtype=np.int64)
