"""Business validation of captured trades: every rule, its reason code and the words a clerk reads.

A trade that fails any rule is still stored, in status REPAIR, with one ``trade_exceptions`` row per failure (code,
field, message) and the codes listed in ``trades.exception_codes``; nothing is dropped. Codes are short and stable
(``trade_exceptions.code`` holds 16 characters), so filters, reports and SLA rules can rely on them.

Reason codes of trades sent to repair (``REASONS``):

================= ================= ===========================================================================
code              field             rule
================= ================= ===========================================================================
ISIN_CHECK        isin              the ISIN is malformed or its check digit is wrong (ISO 6166, Luhn)
ISIN_UNKNOWN      isin              no ISIN given, or the ISIN is not in the instrument master
ISIN_INACTIVE     isin              the instrument is inactive in the instrument master
ACCOUNT_UNKNOWN   account_code      no account given, or the account is not in the account master
ACCOUNT_INACTIVE  account_code      the account is closed (inactive)
KYC_NOT_APPROVED  account_code      the account's KYC status is not APPROVED
CPTY_UNKNOWN      counterparty_code the counterparty (by code, LEI or BIC) is not in the counterparty master
CPTY_INACTIVE     counterparty_code the counterparty is inactive
LEI_CHECK         counterparty_lei  the LEI sent is malformed or its check digits are wrong (ISO 17442, mod 97)
LEI_MISMATCH      counterparty_lei  the LEI sent is not the counterparty's LEI in the master
BIC_FORMAT        counterparty_bic  the BIC sent is malformed (ISO 9362: 8 or 11 characters, valid country)
BIC_MISMATCH      counterparty_bic  the BIC sent is not the counterparty's BIC in the master
QTY_NOT_POSITIVE  quantity          quantity is zero or negative
PRICE_NOT_POS     price             price is zero or negative
PRICE_TOLERANCE   price             price further from the instrument's reference price than the asset class's
                                    tolerance (``TOLERANCE_PCT``: the fat-finger check)
CCY_MISMATCH      currency          the currency is not the instrument's currency
CCY_MISSING       currency          no currency given and no instrument to take it from
TRADE_DT_FUTURE   trade_date        the trade date is after today in the market's time zone
TRADE_DT_HOLIDAY  trade_date        the trade date is not a business day on the market's exchange calendar
TRADE_DT_RANGE    trade_date        the trade date is outside the business-day calendars OpsDesk has
CALENDAR_MISSING  trade_date        the instrument's market has no known business-day calendar
SETTLE_DATE_DIFF  settlement_date   the settlement date the front office sent differs from the one computed
SSI_MISSING       our_ssi/their_ssi no standing settlement instruction for our account or for the counterparty
================= ================= ===========================================================================

(The last two are raised by enrichment.py, which computes the dates and finds the SSIs.)

Reason codes of refused lines (``REJECT_REASONS``), which are reported with file, line and field but not stored,
because no trade can be made of them: MISSING_VALUE, BAD_NUMBER, BAD_DATE, BAD_TIME, BAD_SIDE, BAD_ACTION,
BAD_CCY, TOO_LONG, FIELD_COUNT; FIX_GARBLED, FIX_FIELD (a FIX message that is truncated, fails its BodyLength or
CheckSum, or lacks a field a fill needs); UNKNOWN_TRADE (a cancel or a FIX trade cancel/correct of a trade or
execution we never received); TRADE_LOCKED (an amendment of a trade already past validation, or cancelled: that
needs the correction workflow).

Rules run on whole columns; only the failing lines get their message built one by one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from app.models.enums import AssetClass, KycStatus
from app.services import calendars
from app.services.errors import ValidationFailed
from app.services.identifiers import validate_bic, validate_isin, validate_lei

from .convert import Factor
from .reason_codes import REASONS  # noqa: F401 (the codes, where the blotter reads them without pandas)
from .refdata import RefData
from .units import PRICE_SCALE, QTY_SCALE, display, frame_of, to_decimal, to_object

REJECT_REASONS: dict[str, str] = {
    "MISSING_VALUE": "a value the trade cannot exist without is empty",
    "BAD_NUMBER": "not a number, too many decimals or too large",
    "BAD_DATE": "not a date in the profile's format",
    "BAD_TIME": "not a time in the profile's format nor ISO 8601",
    "BAD_SIDE": "not one of the profile's side codes",
    "BAD_ACTION": "not one of the profile's action codes",
    "BAD_CCY": "not a 3-letter currency code",
    "TOO_LONG": "longer than the column holds",
    "FIELD_COUNT": "the line has more or fewer fields than the header",
    "FIX_GARBLED": "FIX message truncated or failing its BodyLength/CheckSum",
    "FIX_FIELD": "FIX execution report lacks a field a fill needs, or has an unreadable one",
    "UNKNOWN_TRADE": "cancel or correction of a trade or execution never received",
    "TRADE_LOCKED": "amendment of a trade past validation or cancelled (use a correction)",
}

# Fat-finger tolerance around the reference price, in percent, per asset class.
TOLERANCE_PCT: dict[str, int] = {
    AssetClass.EQUITY: 10,
    AssetClass.ETF: 10,
    AssetClass.GOVT_BOND: 5,
    AssetClass.CORP_BOND: 5,
    AssetClass.FUTURE: 5,
}
ASSET_WORDS: dict[str, str] = {
    AssetClass.EQUITY: "equities",
    AssetClass.ETF: "ETFs",
    AssetClass.GOVT_BOND: "government bonds",
    AssetClass.CORP_BOND: "corporate bonds",
    AssetClass.FUTURE: "futures",
}

# Trade dates must leave room for the settlement date inside the calendars' range.
FIRST_TRADE_DATE = calendars.CALENDAR_START
LAST_TRADE_DATE = calendars.CALENDAR_END - dt.timedelta(days=31)


class Issues:
    """Exceptions found, column by column: (row, code, field, message)."""

    def __init__(self) -> None:
        self._rows: list[np.ndarray] = []
        self._codes: list[str] = []
        self._fields: list[str] = []
        self._messages: list[list[str]] = []

    def add(self, mask: np.ndarray, code: str, field: str, message: Callable[[int], str]) -> None:
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            return
        assert code in REASONS, code
        self._rows.append(rows)
        self._codes.append(code)
        self._fields.append(field)
        self._messages.append([message(int(r)) for r in rows])

    def frame(self) -> pd.DataFrame:
        """One row per exception, in row order and rule order (the order of REASONS)."""
        if not self._rows:
            return frame_of(
                {
                    "row": np.zeros(0, np.int64),
                    "code": [],
                    "field": [],
                    "message": [],
                    "rank": np.zeros(0, np.int64),
                }
            )
        order = {c: i for i, c in enumerate(REASONS)}
        frames = [
            frame_of(
                {
                    "row": rows,
                    "code": [code] * len(rows),
                    "field": [field] * len(rows),
                    "message": msgs,
                    "rank": np.full(len(rows), order[code], dtype=np.int64),
                }
            )
            for rows, code, field, msgs in zip(
                self._rows, self._codes, self._fields, self._messages, strict=True
            )
        ]
        out = pd.concat(frames, ignore_index=True)
        return out.sort_values(["row", "rank"], kind="stable").reset_index(drop=True)


@dataclass
class Resolved:
    """Reference-data positions found for each row (-1: not found) and the values filled from reference data."""

    inst: np.ndarray
    acct: np.ndarray
    cpty: np.ndarray
    counterparty_code: np.ndarray
    currency: np.ndarray
    market_id: np.ndarray  # -1 when the instrument is unknown


def take(values: Any, pos: np.ndarray, fill: Any) -> np.ndarray:
    """values[pos] with ``fill`` where pos is -1."""
    arr = np.asarray(values)
    if arr.size == 0:
        return np.full(pos.shape, fill, dtype=object if arr.dtype == object else arr.dtype)
    out = arr[np.where(pos >= 0, pos, 0)]
    return np.where(pos >= 0, out, fill)


def _check_each(values: Factor, check: Callable[[str], Any]) -> np.ndarray:
    """The refusal message of ``check`` per row (None when valid or empty), checking each distinct value once."""

    def msg(v: str) -> str | None:
        if not v:
            return None
        try:
            check(v)
        except ValidationFailed as err:
            return str(err)
        return None

    return values.map(msg).values()


def _find(values: Factor, table: dict[str, int | None]) -> np.ndarray:
    """Position in a reference table per row (-1 when absent): each distinct value looked up once."""
    return values.numbers(lambda u: -1 if (p := table.get(u)) is None else p)


def market_today(ref: RefData, market_id: np.ndarray, today: dt.date | None) -> np.ndarray:
    """Today's date where each row's market is (a trade dated today in Tokyo is not in the future in London).

    Rows without a known market use the latest date anywhere (UTC+14), so no trade is wrongly called future.
    """
    if today is not None:
        return np.full(market_id.shape, np.datetime64(today, "D"))
    now = dt.datetime.now(dt.UTC)
    latest = (now + dt.timedelta(hours=14)).date()
    out = np.full(market_id.shape, np.datetime64(latest, "D"))
    for mid in np.unique(market_id[market_id >= 0]):
        try:
            zone = ZoneInfo(str(ref.markets.loc[int(mid), "timezone"]))
        except Exception:  # an unknown zone in reference data must not block the import; be lenient
            continue
        out[market_id == mid] = np.datetime64(now.astimezone(zone).date(), "D")
    return out


def _weekday(d: np.datetime64) -> str:
    return dt.date.fromisoformat(str(d)).strftime("%A")


def validate(df: pd.DataFrame, ref: RefData, *, today: dt.date | None = None) -> tuple[Resolved, Issues]:
    """Run every rule over the rows of ``df`` (INCOMING_COLUMNS); returns what was resolved and the exceptions."""
    issues = Issues()
    n = len(df)
    isin_f = Factor.of(df["isin"])
    acct_f = Factor.of(df["account_code"])
    cp_f = Factor.of(df["counterparty_code"])
    lei_f = Factor.of(df["cpty_lei"])
    bic_f = Factor.of(df["cpty_bic"])
    ccy_f = Factor.of(df["currency"])
    isin, acct_code, cp_code, lei, bic, ccy = (
        f.values() for f in (isin_f, acct_f, cp_f, lei_f, bic_f, ccy_f)
    )
    qty = df["qty_u"].to_numpy(dtype=np.int64)
    px = df["px_u"].to_numpy(dtype=np.int64)
    trade_date = df["trade_date"].to_numpy().astype("datetime64[D]")
    I, A, C = ref.instruments, ref.accounts, ref.counterparties  # noqa: N806, E741 (the three reference tables)

    # --- instrument ---
    isin_msg = _check_each(isin_f, validate_isin)
    bad_isin = isin_msg != None  # noqa: E711 (element-wise)
    issues.add(bad_isin, "ISIN_CHECK", "isin", lambda r: str(isin_msg[r]))
    inst = _find(isin_f, ref.isin_pos)
    issues.add(
        (inst < 0) & ~bad_isin,
        "ISIN_UNKNOWN",
        "isin",
        lambda r: "no ISIN given" if not isin[r] else f"ISIN {isin[r]} is not in the instrument master",
    )
    known = inst >= 0
    inst_name = take(I["name"].to_numpy(dtype=object), inst, "")
    issues.add(
        known & ~take(I["is_active"].to_numpy(dtype=bool), inst, True),
        "ISIN_INACTIVE",
        "isin",
        lambda r: f"instrument {isin[r]} ({inst_name[r]}) is inactive in the instrument master",
    )

    # --- account ---
    acct = _find(acct_f, ref.account_pos)
    issues.add(
        acct < 0,
        "ACCOUNT_UNKNOWN",
        "account_code",
        lambda r: (
            "no account given" if not acct_code[r] else f"account {acct_code[r]} is not in the account master"
        ),
    )
    a_known = acct >= 0
    issues.add(
        a_known & ~take(A["is_active"].to_numpy(dtype=bool), acct, True),
        "ACCOUNT_INACTIVE",
        "account_code",
        lambda r: f"account {acct_code[r]} is closed (inactive)",
    )
    kyc_ok = take((A["kyc_status"] == KycStatus.APPROVED.value).to_numpy(dtype=bool), acct, True)
    kyc = take(A["kyc_status"].to_numpy(dtype=object), acct, "")
    issues.add(
        a_known & ~kyc_ok,
        "KYC_NOT_APPROVED",
        "account_code",
        lambda r: f"account {acct_code[r]} has KYC status {kyc[r]}; trades need APPROVED",
    )

    # --- counterparty: by code, else by LEI, else by BIC ---
    lei_msg = _check_each(lei_f, validate_lei)
    bic_msg = _check_each(bic_f, validate_bic)
    bad_lei = lei_msg != None  # noqa: E711
    bad_bic = bic_msg != None  # noqa: E711
    issues.add(bad_lei, "LEI_CHECK", "counterparty_lei", lambda r: str(lei_msg[r]))
    issues.add(bad_bic, "BIC_FORMAT", "counterparty_bic", lambda r: str(bic_msg[r]))
    by_code = _find(cp_f, ref.cpty_pos)
    has_code = cp_f.test(lambda v: v != "")
    has_lei = lei_f.test(lambda v: v != "")
    has_bic = bic_f.test(lambda v: v != "")
    cpty = by_code
    if (~has_code & (has_lei | has_bic)).any():
        by_lei = np.where(bad_lei, -1, _find(lei_f, ref.cpty_by_lei))
        by_bic = np.where(bad_bic, -1, _find(bic_f, ref.cpty_by_bic))
        cpty = np.where(has_code, by_code, np.where(has_lei, by_lei, by_bic))

    def cpty_words(r: int) -> str:
        if cp_code[r]:
            return f"counterparty {cp_code[r]} is not in the counterparty master"
        if lei[r]:
            return f"no counterparty in the master has the LEI {lei[r]}"
        if bic[r]:
            shared = bic[r] in ref.cpty_by_bic and ref.cpty_by_bic[bic[r]] is None
            return (
                f"several counterparties share the BIC {bic[r]}; send the counterparty code or LEI"
                if shared
                else f"no counterparty in the master has the BIC {bic[r]}"
            )
        return "no counterparty given"

    # An identifier that fails its own check already says why the counterparty is not found.
    by_bad_id = ~has_code & ((has_lei & bad_lei) | (~has_lei & has_bic & bad_bic))
    issues.add((cpty < 0) & ~by_bad_id, "CPTY_UNKNOWN", "counterparty_code", cpty_words)
    c_known = cpty >= 0
    c_code = take(C["code"].to_numpy(dtype=object), cpty, "")
    check_lei = c_known & has_lei & ~bad_lei
    ref_lei = take(C["lei"].to_numpy(dtype=object), cpty, "")
    issues.add(
        check_lei & (lei != ref_lei),
        "LEI_MISMATCH",
        "counterparty_lei",
        lambda r: (
            f"LEI {lei[r]} sent for counterparty {c_code[r]} differs from its LEI {ref_lei[r]} in the master"
        ),
    )
    check_bic = c_known & has_bic & ~bad_bic
    ref_bic = take(C["bic"].to_numpy(dtype=object), cpty, "")
    bic_differs = np.zeros(n, dtype=bool)
    for r in np.flatnonzero(check_bic):
        bic_differs[r] = bic[r][:8] != ref_bic[r][:8]
    issues.add(
        bic_differs,
        "BIC_MISMATCH",
        "counterparty_bic",
        lambda r: (
            f"BIC {bic[r]} sent for counterparty {c_code[r]} differs from its BIC {ref_bic[r]} in the master"
        ),
    )
    issues.add(
        c_known & ~take(C["is_active"].to_numpy(dtype=bool), cpty, True),
        "CPTY_INACTIVE",
        "counterparty_code",
        lambda r: f"counterparty {c_code[r]} is inactive in the counterparty master",
    )
    # Stored code: the master's code when found; as sent otherwise (code, else LEI, else BIC) for the repair screen.
    counterparty_code = np.where(c_known, c_code, np.where(has_code, cp_code, np.where(has_lei, lei, bic)))

    # --- quantity and price ---
    issues.add(
        qty <= 0,
        "QTY_NOT_POSITIVE",
        "quantity",
        lambda r: f"quantity {display(to_decimal(qty[r], QTY_SCALE), 0)} must be positive",
    )
    issues.add(
        px <= 0,
        "PRICE_NOT_POS",
        "price",
        lambda r: f"price {display(to_decimal(px[r], PRICE_SCALE))} must be positive",
    )
    asset = take(I["asset_class"].to_numpy(dtype=object), inst, "")
    ref_px = take(I["ref_px_u"].to_numpy(dtype=np.int64), inst, 0)
    tol_by_inst = np.array([TOLERANCE_PCT.get(a, 10) for a in I["asset_class"]], dtype=np.int64)
    tol = take(tol_by_inst, inst, 10)
    check = known & (px > 0) & (ref_px > 0)
    outside = np.zeros(n, dtype=bool)
    if check.any():
        # |price - ref| * 100 > tol * ref, exactly. int64 holds it for prices below 10^8 (units of 1e-8 times
        # 100); larger prices are compared on Python ints.
        small = check & (px < 10**16) & (ref_px < 10**16)
        outside[small] = np.abs(px[small] - ref_px[small]) * 100 > tol[small] * ref_px[small]
        rows = np.flatnonzero(check & ~small)
        if rows.size:
            diff = np.abs(to_object(px[rows]) - to_object(ref_px[rows]))
            outside[rows] = (diff * 100 > to_object(tol[rows]) * to_object(ref_px[rows])).astype(bool)

    def tolerance_words(r: int) -> str:
        p, rp = to_decimal(px[r], PRICE_SCALE), to_decimal(ref_px[r], PRICE_SCALE)
        pct = abs(p - rp) * 100 / rp
        shown = f"{pct:,.0f}" if pct >= 10 else f"{pct:.1f}"
        return (
            f"price {display(p)} is {shown}% away from the reference {display(rp)} "
            f"(tolerance {tol[r]}% for {ASSET_WORDS.get(asset[r], asset[r])})"
        )

    issues.add(outside, "PRICE_TOLERANCE", "price", tolerance_words)

    # --- currency: blank takes the instrument's ---
    inst_ccy = take(I["currency"].to_numpy(dtype=object), inst, "")
    no_ccy = ccy_f.test(lambda v: v == "")
    currency = np.where(no_ccy, inst_ccy, ccy)
    issues.add(
        currency == "",
        "CCY_MISSING",
        "currency",
        lambda r: "no currency given and no instrument to take it from",
    )
    issues.add(
        known & ~no_ccy & (ccy != inst_ccy),
        "CCY_MISMATCH",
        "currency",
        lambda r: f"currency {ccy[r]} differs from the instrument's currency {inst_ccy[r]} ({inst_name[r]})",
    )

    # --- trade date ---
    market_id = take(I["market_id"].to_numpy(dtype=np.int64), inst, -1)
    mic = take(I["mic"].to_numpy(dtype=object), inst, "")
    today_m = market_today(ref, market_id, today)
    issues.add(
        trade_date > today_m,
        "TRADE_DT_FUTURE",
        "trade_date",
        lambda r: (
            f"trade date {trade_date[r]} is in the future (today is {today_m[r]}"
            + (f" on {mic[r]})" if mic[r] else ")")
        ),
    )
    lo, hi = np.datetime64(FIRST_TRADE_DATE, "D"), np.datetime64(LAST_TRADE_DATE, "D")
    out_of_range = (trade_date < lo) | (trade_date > hi)
    issues.add(
        out_of_range,
        "TRADE_DT_RANGE",
        "trade_date",
        lambda r: (
            f"trade date {trade_date[r]} is outside the business-day calendars OpsDesk has "
            f"({FIRST_TRADE_DATE} to {LAST_TRADE_DATE})"
        ),
    )
    holiday = np.zeros(n, dtype=bool)
    no_calendar = np.zeros(n, dtype=bool)
    for mid in np.unique(market_id[known]):
        rows = np.flatnonzero((market_id == mid) & ~out_of_range)
        cal = ref.trading_calendar(int(mid))
        if cal is None:
            no_calendar[rows] = True
            continue
        holiday[rows] = ~cal.is_business_day_array(trade_date[rows])
    market_name = take(I["market_name"].to_numpy(dtype=object), inst, "")
    issues.add(
        no_calendar,
        "CALENDAR_MISSING",
        "trade_date",
        lambda r: f"market {mic[r]} has no known business-day calendar; fix the market's calendar code",
    )
    issues.add(
        holiday,
        "TRADE_DT_HOLIDAY",
        "trade_date",
        lambda r: (
            f"trade date {trade_date[r]} ({_weekday(trade_date[r])}) is not a business day on {mic[r]} "
            f"({market_name[r]})"
        ),
    )
    resolved = Resolved(
        inst=inst,
        acct=acct,
        cpty=cpty,
        counterparty_code=counterparty_code.astype(object),
        currency=currency.astype(object),
        market_id=market_id,
    )
    return resolved, issues


def exception_codes(codes: list[str]) -> str:
    """The comma-separated codes for ``trades.exception_codes`` (200 characters; every code we have fits)."""
    out = ",".join(dict.fromkeys(codes))
    return out if len(out) <= 200 else out[:200].rsplit(",", 1)[0]


def decimal_text(value: Decimal) -> str:
    return format(value.normalize(), "f")
