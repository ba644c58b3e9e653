"""Enrichment of captured trades: settlement date, SSIs, commission, fees, gross and net amounts.

**Settlement date** = the trade date plus the settlement cycle in business days of the market's settlement
calendar (exchange-calendars closures plus the market's ``market_holidays``, see services.calendars), vectorised
per market. The cycle is the instrument's ``settlement_cycle`` unless a market-wide regime rule covers the
instrument's country and asset class on the trade date (``CYCLE_RULES``): US and Canadian equities, ETFs and
corporate bonds settle T+1 from 28 May 2024 (T+2 before); EU/EEA, UK and Swiss equities, ETFs and bonds settle T+2
until 10 October 2027 and T+1 from 11 October 2027 (UK gilts already settle T+1 and keep the instrument's
cycle); Japanese equities T+2 since 16 July 2019. Futures and anything
not covered keep the instrument's cycle.

**SSIs**: ours is the SSI of the trade's account for the instrument's market and the trade currency, theirs the
counterparty's; an SSI for the instrument's asset class is preferred to one for any asset class, then the most
recent ``valid_from``; it must be valid on the settlement date. Missing: exception SSI_MISSING (repair).

**Amounts** (exact, in integer units of the Money scale, 1e-4):

* gross = quantity x price for equities and ETFs; quantity x price / 100 for bonds (price in percent of nominal);
  quantity x price x contract size for futures; rounded half-even to the currency's minor unit (cents, whole yen
  ...: a settlement amount is paid in the currency's smallest unit, and SWIFT refuses an MT54x amount with more
  decimals than its currency has). Partial FIX fills use the exact
  sum of their fill notionals instead of quantity x average price.
* commission (``COMMISSION``): basis points of gross with a minimum, per asset class; futures per contract.
* fees (``fees_for``): SEC Section 31 fee on US equity and ETF sells (``SEC_FEE_PER_MILLION`` of gross); UK stamp
  duty reserve tax on purchases of UK equities (``UK_STAMP_DUTY_BP`` of gross).
* commission and fees are rounded half-up to the currency's minor unit (cents; whole yen ...).
* net = gross + commission + fees for a buy, gross - commission - fees for a sell.

========== ================ ========= ==========================================
asset      commission       minimum   fees
========== ================ ========= ==========================================
EQUITY     5 bp of gross    5.00      US sell: SEC fee; UK buy: stamp duty 50 bp
ETF        3 bp of gross    5.00      US sell: SEC fee
GOVT_BOND  0.5 bp of gross  0         -
CORP_BOND  2 bp of gross    10.00     -
FUTURE     2.50 / contract  -         -
========== ================ ========= ==========================================
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from app.models.enums import AssetClass

from ..currencies import minor_units
from .refdata import RefData
from .units import MONEY_SCALE, round_div, to_object
from .validation import ASSET_WORDS, FIRST_TRADE_DATE, LAST_TRADE_DATE, Issues, Resolved, take

_EU_CH = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
        "IS",
        "LI",
        "NO",
        "CH",
    ]
)
_UK = frozenset({"GB"})
_SECURITIES = frozenset({AssetClass.EQUITY, AssetClass.ETF, AssetClass.CORP_BOND})
_EU_SECURITIES = frozenset({AssetClass.EQUITY, AssetClass.ETF, AssetClass.CORP_BOND, AssetClass.GOVT_BOND})

# (countries, asset classes, first trade date, cycle): the latest rule in force on the trade date applies.
CYCLE_RULES: tuple[tuple[frozenset[str], frozenset[str], dt.date, int], ...] = (
    (frozenset({"US", "CA"}), _SECURITIES, dt.date(2017, 9, 5), 2),
    (frozenset({"US"}), _SECURITIES, dt.date(2024, 5, 28), 1),  # SEC rule 15c6-1 amendments
    (frozenset({"CA"}), _SECURITIES, dt.date(2024, 5, 27), 1),
    (_EU_CH, _EU_SECURITIES, dt.date(2014, 10, 6), 2),  # CSDR T+2
    (_EU_CH, _EU_SECURITIES, dt.date(2027, 10, 11), 1),  # EU and Swiss move to T+1 together with the UK
    (_UK, _SECURITIES, dt.date(2014, 10, 6), 2),  # gilts already settle T+1: they keep the instrument's cycle
    (_UK, _SECURITIES, dt.date(2027, 10, 11), 1),
    (frozenset({"JP"}), frozenset({AssetClass.EQUITY, AssetClass.ETF}), dt.date(2019, 7, 16), 2),
)

# asset class -> (commission in tenths of a basis point of gross, minimum in the trade currency)
COMMISSION: dict[str, tuple[int, Decimal]] = {
    AssetClass.EQUITY: (50, Decimal("5.00")),
    AssetClass.ETF: (30, Decimal("5.00")),
    AssetClass.GOVT_BOND: (5, Decimal("0")),
    AssetClass.CORP_BOND: (20, Decimal("10.00")),
}
FUTURE_COMMISSION_PER_CONTRACT = Decimal("2.50")
# SEC Section 31 transaction fee on US sales of equities and ETFs, per million of gross (the fiscal-2024 rate; the
# SEC resets it each year: update this constant when it does).
SEC_FEE_PER_MILLION = Decimal("27.80")
UK_STAMP_DUTY_BP = 50  # stamp duty reserve tax: 0.5% of the consideration on purchases of UK shares


@dataclass
class Enriched:
    settlement_date: np.ndarray  # datetime64[D], NaT when it cannot be computed (repair)
    cycle: np.ndarray  # int64, -1 when unknown
    our_ssi_id: np.ndarray  # int64, -1 when missing
    their_ssi_id: np.ndarray
    gross_u: np.ndarray  # int64 units of 1e-4
    commission_u: np.ndarray
    fees_u: np.ndarray
    net_u: np.ndarray


def effective_cycle(
    ref: RefData, inst: np.ndarray, trade_date: np.ndarray, base: np.ndarray | None = None
) -> np.ndarray:
    """The settlement cycle per row: the instrument's, unless a rule of CYCLE_RULES covers it on the trade date.

    Which rules cover which instrument is decided once per instrument; per row only dates are compared.
    """
    I = ref.instruments  # noqa: N806, E741
    cycle = take(I["settlement_cycle"].to_numpy(dtype=np.int64), inst, -1) if base is None else base.copy()
    country = I["country"].to_numpy(dtype=object)
    asset = I["asset_class"].to_numpy(dtype=object)
    # Oldest rule first, so a later regime overrides an earlier one where both are in force.
    for countries, classes, start, rule_cycle in sorted(CYCLE_RULES, key=lambda r: r[2]):
        covered = np.array(
            [c in countries and a in classes for c, a in zip(country, asset, strict=True)], dtype=bool
        )
        hit = take(covered, inst, False) & (trade_date >= np.datetime64(start, "D"))
        cycle[hit] = rule_cycle
    return cycle


def settlement_dates(
    ref: RefData, market_id: np.ndarray, trade_date: np.ndarray, cycle: np.ndarray, usable: np.ndarray
) -> np.ndarray:
    out = np.full(trade_date.shape, np.datetime64("NaT"), dtype="datetime64[D]")
    lo, hi = np.datetime64(FIRST_TRADE_DATE, "D"), np.datetime64(LAST_TRADE_DATE, "D")
    ok = usable & (market_id >= 0) & (cycle >= 0) & (trade_date >= lo) & (trade_date <= hi)
    for mid in np.unique(market_id[ok]):
        rows = np.flatnonzero(ok & (market_id == mid))
        cal = ref.settlement_calendar(int(mid))
        if cal is not None:
            out[rows] = cal.settlement_dates_array(trade_date[rows], cycle[rows])
    return out


def _pick_ssi(
    ref: RefData,
    owner_col: str,
    owner_id: np.ndarray,
    market_id: np.ndarray,
    currency: np.ndarray,
    asset: np.ndarray,
    on: np.ndarray,
) -> np.ndarray:
    """SSI id per row (-1 when none): match owner, market, currency; prefer the asset class, then the newest.

    Rows are grouped by (owner, market, currency, asset class), a few thousand keys at most; each key's candidates
    are chosen once, and only keys whose best SSI is not valid over all their rows' dates are resolved row by row.
    """
    n = owner_id.shape[0]
    out = np.full(n, -1, dtype=np.int64)
    ssis = ref.ssis[ref.ssis[owner_col].notna()]
    if n == 0 or ssis.empty:
        return out
    candidates: dict[tuple[int, int, str], list[tuple[str | None, dt.date, dt.date | None, int]]] = {}
    for r in ssis.itertuples(index=False):
        key = (int(getattr(r, owner_col)), int(r.market_id), str(r.currency))
        candidates.setdefault(key, []).append((r.asset_class, r.valid_from, r.valid_to, int(r.id)))
    for lst in candidates.values():
        lst.sort(key=lambda c: (c[0] is None, -c[1].toordinal()))
    ccy_codes, ccy_values = pd.factorize(currency, use_na_sentinel=False)
    ac_codes, ac_values = pd.factorize(asset, use_na_sentinel=False)
    # One int64 key per (owner, market, currency, asset class); ids are small positive integers.
    key = ((owner_id + 1) * 100_003 + (market_id + 1)) * 1_000 + ccy_codes
    key = key * 100 + ac_codes
    groups, group = np.unique(key, return_inverse=True)
    group = group.reshape(-1)
    first = np.zeros(len(groups), dtype=np.int64)
    first[group[::-1]] = np.arange(n)[::-1]  # a row of each group
    day = on.astype("datetime64[D]")
    day_int = np.where(np.isnat(day), np.iinfo(np.int64).max, day.astype(np.int64))
    lo = np.full(len(groups), np.iinfo(np.int64).max)
    np.minimum.at(lo, group, day_int)
    hi = np.full(len(groups), np.iinfo(np.int64).min)
    np.maximum.at(hi, group, np.where(np.isnat(day), np.iinfo(np.int64).min, day_int))
    epoch = dt.date(1970, 1, 1).toordinal()
    per_group = np.full(len(groups), -1, dtype=np.int64)
    slow: list[int] = []
    for g, row in enumerate(first.tolist()):
        o, m = int(owner_id[row]), int(market_id[row])
        if o < 0 or m < 0:
            continue
        a = ac_values[ac_codes[row]]
        lst = [
            c
            for c in candidates.get((o, m, str(ccy_values[ccy_codes[row]])), [])
            if c[0] is None or c[0] == a
        ]
        if not lst:
            continue
        start = lst[0][1].toordinal() - epoch
        stop = lst[0][2].toordinal() - epoch if lst[0][2] is not None else np.iinfo(np.int64).max
        if lo[g] >= start and hi[g] <= stop:
            per_group[g] = lst[0][3]
        else:
            slow.append(g)
    out = per_group[group]
    for g in slow:
        row = int(first[g])
        a = ac_values[ac_codes[row]]
        key3 = (int(owner_id[row]), int(market_id[row]), str(ccy_values[ccy_codes[row]]))
        lst = [c for c in candidates[key3] if c[0] is None or c[0] == a]
        for i in np.flatnonzero(group == g):
            d = None if np.isnat(day[i]) else dt.date.fromordinal(int(day_int[i]) + epoch)
            out[i] = next(
                (c[3] for c in lst if d is not None and c[1] <= d and (c[2] is None or d <= c[2])), -1
            )
    return out


def _minor_exp(currency: np.ndarray) -> np.ndarray:
    """Per row, how many of the money scale's 4 decimals the currency does not have (2 for cents, 4 for yen)."""
    codes, uniques = pd.factorize(currency, use_na_sentinel=False)
    exps = np.array([MONEY_SCALE - minor_units(c) for c in uniques], dtype=np.int64)
    return exps[codes] if len(codes) else np.zeros(0, dtype=np.int64)


def _round_to_minor(amount_u: np.ndarray, currency: np.ndarray) -> np.ndarray:
    """Money units (1e-4, int64) rounded half-up to each currency's minor unit (cents, whole yen ...)."""
    step = 10 ** _minor_exp(currency)
    return round_div(amount_u, step, half_up=True) * step


def gross_amount(
    qty_u: np.ndarray,
    px_u: np.ndarray,
    contract_u: np.ndarray,
    divisor_exp: np.ndarray,
    minor_exp: np.ndarray,
) -> np.ndarray:
    """round_half_even(qty x price x contract / 10^divisor_exp) to the currency's minor unit, in int64 units of
    1e-4, exactly (one rounding, from the exact product).

    qty (1e-6) x price (1e-8) x contract size (1e-6) is at scale 20: ``divisor_exp`` is 16 (18 for bonds, quoted in
    percent) to reach units of 1e-4, and ``minor_exp`` more (2 for cents) to reach the minor unit. Quantities and
    contract sizes are usually whole numbers: then q x c x price (scale 8) fits int64 and is computed there; other
    rows (fractional quantities, products beyond int64) go through Python ints.
    """
    n = qty_u.shape[0]
    whole = (qty_u % 10**6 == 0) & (contract_u % 10**6 == 0)
    q = qty_u // 10**6
    c = contract_u // 10**6
    fits = whole & (np.abs(q.astype(np.float64) * c.astype(np.float64) * px_u.astype(np.float64)) < 4e18)
    out = np.zeros(n, dtype=np.int64)
    if fits.any():
        e = minor_exp[fits]
        out[fits] = round_div(q[fits] * c[fits] * px_u[fits], 10 ** (divisor_exp[fits] - 12 + e)) * 10**e
    rest = np.flatnonzero(~fits)
    if rest.size:
        product = to_object(qty_u[rest]) * to_object(px_u[rest]) * to_object(contract_u[rest])
        out[rest] = _to_minor(product, divisor_exp[rest], minor_exp[rest])
    return out


def _to_minor(product: np.ndarray, divisor_exp: np.ndarray, minor_exp: np.ndarray) -> np.ndarray:
    """An exact product (Python ints) / 10^divisor_exp, rounded half-even to the minor unit, in units of 1e-4."""
    e = to_object(minor_exp)
    return _int64(round_div(product, 10 ** (to_object(divisor_exp) + e)) * 10**e)


def _int64(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=object).astype(np.int64)


def _scaled(amount: np.ndarray, mult: np.ndarray | int, div: int) -> np.ndarray:
    """round_half_up(amount x mult / div), int64 when the product cannot overflow, Python ints otherwise."""
    mult_arr = np.broadcast_to(np.asarray(mult, dtype=np.int64), amount.shape)
    if amount.size == 0:
        return amount.copy()
    if float(np.abs(amount).max()) * float(np.abs(mult_arr).max() or 1) < 4e18:
        return round_div(amount * mult_arr, div, half_up=True)
    return _int64(round_div(to_object(amount) * to_object(mult_arr), div, half_up=True))


def amounts(
    ref: RefData,
    inst: np.ndarray,
    qty_u: np.ndarray,
    px_u: np.ndarray,
    notional_14: np.ndarray | None,
    side: np.ndarray,
    currency: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(gross, commission, fees, net) in int64 units of 1e-4, exactly (see the module docstring for the rules).

    Asset class, country and the fee schedule are looked up once per instrument and taken per row.
    """
    n = qty_u.shape[0]
    if n == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z, z
    I = ref.instruments  # noqa: N806, E741
    asset_i = I["asset_class"].to_numpy(dtype=object)
    country_i = I["country"].to_numpy(dtype=object)
    known = inst >= 0
    is_bond = take(np.isin(asset_i, [AssetClass.GOVT_BOND.value, AssetClass.CORP_BOND.value]), inst, False)
    is_future = take(asset_i == AssetClass.FUTURE.value, inst, False)
    contract = np.where(is_future, take(I["contract_u"].to_numpy(dtype=np.int64), inst, 10**6), 10**6)
    divisor_exp = np.where(is_bond, 18, 16).astype(np.int64)
    minor_exp = _minor_exp(currency)
    gross = gross_amount(qty_u, px_u, contract, divisor_exp, minor_exp)
    if notional_14 is not None:
        # Partial fills: the exact sum of the fills' quantity x price, not quantity x rounded average price.
        rows = np.flatnonzero(np.fromiter((v is not None for v in notional_14), dtype=bool, count=n))
        if rows.size:
            product = notional_14[rows] * to_object(contract[rows])
            gross[rows] = _to_minor(product, divisor_exp[rows], minor_exp[rows])

    rate_i = np.array([COMMISSION.get(a, (0, Decimal(0)))[0] for a in asset_i], dtype=np.int64)
    min_i = np.array(
        [int(COMMISSION.get(a, (0, Decimal(0)))[1].scaleb(MONEY_SCALE)) for a in asset_i], dtype=np.int64
    )
    rate, minimum = take(rate_i, inst, 0), take(min_i, inst, 0)
    # gross (1e-4) x tenths of a basis point / 100,000 = commission in 1e-4, then to the currency's minor unit.
    commission = _round_to_minor(_scaled(gross, rate, 100_000), currency)
    commission = np.maximum(commission, minimum)
    per_contract = int(FUTURE_COMMISSION_PER_CONTRACT.scaleb(MONEY_SCALE))
    contracts = round_div(np.abs(qty_u), 10**6, half_up=True)
    commission = np.where(is_future, contracts * per_contract, commission)
    commission = np.where(known, commission, 0)

    sells = side == "SELL"
    us_sec_i = (country_i == "US") & np.isin(asset_i, [AssetClass.EQUITY.value, AssetClass.ETF.value])
    uk_sd_i = (country_i == "GB") & (asset_i == AssetClass.EQUITY.value)
    us_sec = sells & take(us_sec_i, inst, False)
    uk_sd = ~sells & take(uk_sd_i, inst, False)
    fees = np.zeros(n, dtype=np.int64)
    if us_sec.any():
        # per million of gross, in cents: gross (1e-4) x cents / 10^8 = fee in 1e-4.
        fees[us_sec] = _scaled(gross[us_sec], int(SEC_FEE_PER_MILLION * 100), 100_000_000)
    if uk_sd.any():
        fees[uk_sd] = _scaled(gross[uk_sd], UK_STAMP_DUTY_BP, 10_000)
    fees = _round_to_minor(fees, currency)
    net = np.where(sells, gross - commission - fees, gross + commission + fees)
    return gross, commission, fees, net


def enrich(
    df: pd.DataFrame, res: Resolved, ref: RefData, issues: Issues, notional_14: np.ndarray | None = None
) -> Enriched:
    """Settlement dates, SSIs and amounts for the rows of ``df`` (validated into ``res``); adds exceptions."""
    I = ref.instruments  # noqa: N806, E741
    inst = res.inst
    trade_date = df["trade_date"].to_numpy().astype("datetime64[D]")
    asset = take(I["asset_class"].to_numpy(dtype=object), inst, "")
    mic = take(I["mic"].to_numpy(dtype=object), inst, "")
    cycle = effective_cycle(ref, inst, trade_date)
    settle = settlement_dates(ref, res.market_id, trade_date, cycle, inst >= 0)

    given = df["settle_given"].to_numpy().astype("datetime64[D]")
    differs = ~np.isnat(given) & ~np.isnat(settle) & (given != settle)
    issues.add(
        differs,
        "SETTLE_DATE_DIFF",
        "settlement_date",
        lambda r: (
            f"settlement date {given[r]} sent by the front office differs from {settle[r]} computed "
            f"(T+{cycle[r]} on {mic[r]})"
        ),
    )

    on = np.where(np.isnat(settle), trade_date, settle)
    acct_id = take(ref.accounts["id"].to_numpy(dtype=np.int64), res.acct, -1)
    cpty_id = take(ref.counterparties["id"].to_numpy(dtype=np.int64), res.cpty, -1)
    ours = _pick_ssi(ref, "account_id", acct_id, res.market_id, res.currency, asset, on)
    theirs = _pick_ssi(ref, "counterparty_id", cpty_id, res.market_id, res.currency, asset, on)
    account = df["account_code"].to_numpy(dtype=object)
    cp = res.counterparty_code
    ccy = res.currency

    def ssi_words(r: int, whose: str, owner: str) -> str:
        what = ASSET_WORDS.get(asset[r], asset[r])
        return f"no standing settlement instruction {whose} {owner} on {mic[r]} in {ccy[r]} for {what}"

    issues.add(
        (ours < 0) & (acct_id >= 0) & (inst >= 0),
        "SSI_MISSING",
        "our_ssi",
        lambda r: ssi_words(r, "of ours for account", account[r]),
    )
    issues.add(
        (theirs < 0) & (cpty_id >= 0) & (inst >= 0),
        "SSI_MISSING",
        "their_ssi",
        lambda r: ssi_words(r, "of counterparty", cp[r]),
    )
    gross, commission, fees, net = amounts(
        ref,
        inst,
        df["qty_u"].to_numpy(dtype=np.int64),
        df["px_u"].to_numpy(dtype=np.int64),
        notional_14,
        df["side"].to_numpy(dtype=object),
        ccy,
    )
    return Enriched(settle, cycle, ours, theirs, gross, commission, fees, net)
