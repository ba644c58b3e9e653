"""The validation reason codes and their words: a module of its own, so the blotter's filter bar can offer them
without importing the validation rules (pandas, numpy, the calendars)."""

from __future__ import annotations

REASONS: dict[str, str] = {
    "ISIN_CHECK": "ISIN malformed or wrong check digit",
    "ISIN_UNKNOWN": "ISIN missing or not in the instrument master",
    "ISIN_INACTIVE": "instrument inactive",
    "ACCOUNT_UNKNOWN": "account missing or not in the account master",
    "ACCOUNT_INACTIVE": "account inactive",
    "KYC_NOT_APPROVED": "account KYC not approved",
    "CPTY_UNKNOWN": "counterparty missing or not in the counterparty master",
    "CPTY_INACTIVE": "counterparty inactive",
    "LEI_CHECK": "LEI malformed or wrong check digits",
    "LEI_MISMATCH": "LEI differs from the counterparty master",
    "BIC_FORMAT": "BIC malformed",
    "BIC_MISMATCH": "BIC differs from the counterparty master",
    "QTY_NOT_POSITIVE": "quantity not positive",
    "PRICE_NOT_POS": "price not positive",
    "PRICE_TOLERANCE": "price outside the tolerance around the reference price",
    "CCY_MISMATCH": "currency differs from the instrument's",
    "CCY_MISSING": "no currency",
    "TRADE_DT_FUTURE": "trade date in the future",
    "TRADE_DT_HOLIDAY": "trade date not a business day",
    "TRADE_DT_RANGE": "trade date outside the calendars",
    "CALENDAR_MISSING": "market without a business-day calendar",
    "SETTLE_DATE_DIFF": "settlement date differs from the computed one",
    "SSI_MISSING": "standing settlement instruction missing",
}
