"""From a file's canonical text columns to typed trade columns; lines that cannot become a trade are rejected here.

A line is rejected (reported with its line, field and reason, not stored) when a value the trade cannot exist
without is missing or unreadable: the trade reference, side, quantity, price or trade date; a number that is not a
number or has more decimals than OpsDesk keeps; a date or time that is not in the profile's format; a value longer
than its column. Everything else (unknown ISIN, a future trade date, a price far from the reference ...) is a
business problem: the trade is stored and sent to repair (see validation.py). CANCEL lines only need a reference.

Every conversion runs on a whole column: text columns are factorised and each distinct value (a few hundred ISINs,
side codes, dates) is cleaned or parsed once; numbers go through :func:`units.parse_units`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .profiles import Profile
from .readers import Problem, RawTable
from .units import (
    EMPTY,
    NOT_A_NUMBER,
    PRICE_SCALE,
    PROBLEM_TEXT,
    QTY_SCALE,
    TOO_PRECISE,
    frame_of,
    parse_units,
)

# Typed columns every source (CSV, XLSX, FIX) hands to the import pipeline.
INCOMING_COLUMNS: tuple[str, ...] = (
    "line",
    "trade_ref",
    "action",
    "order_ref",
    "source_ref",
    "isin",
    "account_code",
    "counterparty_code",
    "cpty_lei",
    "cpty_bic",
    "side",
    "qty_u",
    "px_u",
    "currency",
    "trade_date",
    "trade_time",
    "settle_given",
)

# Column widths of the trades table: a longer value cannot be stored as received.
MAX_LEN = {
    "trade_ref": 64,
    "order_ref": 64,
    "isin": 12,
    "account_code": 32,
    "counterparty_code": 32,
    "cpty_lei": 20,
    "cpty_bic": 11,
}

_SCALE_WORDS = {QTY_SCALE: "6", PRICE_SCALE: "8"}


@dataclass
class Factor:
    """A column as its distinct values and, per row, the index of its value: work on the few distinct values."""

    codes: np.ndarray  # int64 per row
    uniques: np.ndarray  # object

    @classmethod
    def of(cls, values: Any) -> Factor:
        """From a column; a pandas categorical column (as convert builds them) is used as it is, unhashed."""
        if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
            return cls(
                values.cat.codes.to_numpy(dtype=np.int64), values.cat.categories.to_numpy(dtype=object)
            )
        codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=False)
        return cls(codes.astype(np.int64, copy=False), np.asarray(uniques, dtype=object))

    def compact(self) -> Factor:
        """The same column with distinct uniques (mapping may have made two values equal)."""
        codes, uniques = pd.factorize(self.uniques, use_na_sentinel=False)
        return Factor(
            codes.astype(np.int64)[self.codes] if len(self.codes) else self.codes,
            np.asarray(uniques, dtype=object),
        )

    def categorical(self, keep: np.ndarray) -> pd.Categorical:
        """The rows in ``keep`` as a pandas categorical (codes travel with the frame: no rehashing downstream)."""
        f = self.compact()
        return pd.Categorical.from_codes(f.codes[keep], categories=pd.Index(f.uniques, dtype=object))

    def map(self, fn: Callable[[Any], Any]) -> Factor:
        return Factor(self.codes, _array([fn(u) for u in self.uniques], object))

    def test(self, fn: Callable[[Any], Any]) -> np.ndarray:
        """A boolean per row: ``fn`` of the row's value."""
        return _array([bool(fn(u)) for u in self.uniques], bool)[self.codes]

    def numbers(self, fn: Callable[[Any], int]) -> np.ndarray:
        return _array([fn(u) for u in self.uniques], np.int64)[self.codes]

    def values(self) -> np.ndarray:
        return self.uniques[self.codes]


def _array(items: list[Any], dtype: Any) -> np.ndarray:
    out = np.empty(len(items), dtype=dtype)
    out[:] = items
    return out


def map_unique(values: Any, fn: Callable[[str], Any], dtype: Any = object) -> np.ndarray:
    """Apply ``fn`` once per distinct value and spread the results back (values are few, lines are many)."""
    f = Factor.of(values)
    return _array([fn(u) for u in f.uniques], dtype)[f.codes]


def _clean(v: Any) -> str:
    return "" if v is None else str(v).strip()


def _clean_upper(v: Any) -> str:
    return "" if v is None else str(v).strip().upper()


_SPACES = (" ", "\t", "\xa0", "\u2007", "\u202f", "\u3000", "\x0b", "\x0c")


def strip_all(values: np.ndarray) -> np.ndarray:
    """Strip surrounding spaces from a column of mostly distinct strings (trade refs). Substring searches over the
    joined column (fast, in C) tell whether any value needs it, which is usually not the case."""
    if values.size == 0:
        return values
    joined = "\x00" + "\x00".join(values.tolist()) + "\x00"
    if not any(f"\x00{c}" in joined or f"{c}\x00" in joined for c in _SPACES):
        return values
    return _array([v.strip() for v in values.tolist()], object)


def longest(values: np.ndarray) -> int:
    return max(map(len, values.tolist()), default=0)


class Rejections:
    """Problems found per line; a line with any problem is rejected as a whole."""

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.problems: list[tuple[int, str, str, str]] = []  # (row, field, code, reason)

    def add(self, mask: np.ndarray, field: str, code: str, reason: Callable[[int], str]) -> None:
        rows = np.flatnonzero(mask)
        for r in rows:
            self.problems.append((int(r), field, code, reason(int(r))))
        self.bad[rows] = True


def _parse_dates(text: Factor, fmt: str) -> np.ndarray:
    """datetime64[D] per row; NaT where empty or not in ``fmt``."""
    if len(text.uniques) == 0:
        return np.zeros(len(text.codes), dtype="datetime64[D]")
    parsed = pd.to_datetime(pd.Series(text.uniques, dtype=object), format=fmt, errors="coerce")
    return parsed.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")[text.codes]


def _parse_times(text: Factor, dates: np.ndarray, profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """(UTC datetime64[us], bad mask). A value is a time of day (profile.time_format, on the trade date, in the
    profile's zone) or a full ISO 8601 timestamp (with an offset, or in the profile's zone); blank means 00:00."""
    uniques = text.uniques
    codes = text.codes
    u = pd.Series(uniques, dtype=object)
    tod = pd.to_datetime(u, format=profile.time_format, errors="coerce")
    tod_delta = (tod - pd.Timestamp("1900-01-01")).to_numpy(dtype="timedelta64[us]")
    full_utc = np.full(len(u), np.datetime64("NaT"), dtype="datetime64[us]")
    full_local = np.full(len(u), np.datetime64("NaT"), dtype="datetime64[us]")
    blank_u = (u == "").to_numpy(dtype=bool)
    for i in np.flatnonzero(tod.isna().to_numpy() & ~blank_u):
        try:
            ts = dt.datetime.fromisoformat(str(uniques[i]).replace("Z", "+00:00"))
        except ValueError:
            continue
        if ts.tzinfo is not None:
            full_utc[i] = np.datetime64(ts.astimezone(dt.UTC).replace(tzinfo=None), "us")
        else:
            full_local[i] = np.datetime64(ts, "us")
    day = dates.astype("datetime64[us]")
    delta = tod_delta[codes]
    local = day + np.where(np.isnat(delta), np.timedelta64(0, "us"), delta)
    fl = full_local[codes]
    local = np.where(~np.isnat(fl), fl, local)
    blank = blank_u[codes]
    local = np.where(blank, day, local)
    fu = full_utc[codes]
    bad = ~blank & np.isnat(delta) & np.isnat(fl) & np.isnat(fu)
    utc = to_utc(local, profile.timezone)
    return np.where(~np.isnat(fu), fu, utc), bad


def to_utc(local: np.ndarray, zone: str) -> np.ndarray:
    """Naive local datetimes in ``zone`` to naive UTC (datetime64[us]); the earlier reading of an ambiguous hour."""
    if zone.upper() in ("UTC", "Z", "ETC/UTC", "GMT"):
        return local.astype("datetime64[us]")
    s = pd.Series(local.astype("datetime64[us]"))
    aware = s.dt.tz_localize(zone, ambiguous=np.ones(len(s), dtype=bool), nonexistent="shift_forward")
    return aware.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")


def _column(raw: RawTable, field: str) -> Any:
    """A file column: a categorical Series as the CSV reader built it (Factor.of uses its codes), else an object
    array; a field the file does not have reads as empty."""
    if field in raw.frame.columns:
        col = raw.frame[field]
        return col if isinstance(col.dtype, pd.CategoricalDtype) else col.to_numpy(dtype=object)
    return np.full(raw.frame.shape[0], "", dtype=object)


def convert(raw: RawTable, source_ref_prefix: str) -> tuple[pd.DataFrame, list[Problem]]:
    """Typed INCOMING_COLUMNS for the good lines, and the problems of the rejected ones."""
    p = raw.profile
    n = raw.frame.shape[0]
    lines = raw.lines
    rej = Rejections(n)

    action_raw = Factor.of(_column(raw, "action")).map(_clean_upper)
    action_f = action_raw.map(lambda v: p.action_codes.get(v, ""))
    action = action_f.values()
    rej.add(
        action == "",
        "action",
        "BAD_ACTION",
        lambda r: (
            f"action '{action_raw.uniques[action_raw.codes[r]]}' is not one of "
            f"{', '.join(k for k in p.action_codes if k) or 'NEW'}"
        ),
    )
    cancel = action == "CANCEL"

    trade_ref = strip_all(np.asarray(_column(raw, "trade_ref"), dtype=object))
    rej.add(trade_ref == "", "trade_ref", "MISSING_VALUE", lambda r: "no trade reference")

    def ident(field: str) -> Factor:
        return Factor.of(_column(raw, field)).map(lambda v: _clean_upper(v).replace(" ", ""))

    factors: dict[str, Factor] = {
        "order_ref": Factor.of(_column(raw, "order_ref")).map(_clean),
        "isin": ident("isin"),
        "account_code": Factor.of(_column(raw, "account")).map(_clean_upper),
        "counterparty_code": Factor.of(_column(raw, "counterparty")).map(_clean_upper),
        "cpty_lei": ident("counterparty_lei"),
        "cpty_bic": ident("counterparty_bic"),
    }
    for name, width in MAX_LEN.items():
        if name == "trade_ref":
            if longest(trade_ref) <= width:
                continue
            too_long = np.fromiter((len(v) > width for v in trade_ref.tolist()), dtype=bool, count=n)
            shown = trade_ref
        else:
            f = factors[name]
            if longest(f.uniques) <= width:
                continue
            too_long = f.test(lambda v, w=width: len(v) > w)
            shown = f.values()
        rej.add(
            too_long,
            name,
            "TOO_LONG",
            lambda r, c=shown, w=width, fl=name: (
                f"{fl.replace('_', ' ')} '{c[r]}' is longer than {w} characters"
            ),
        )
    ccy_f = Factor.of(_column(raw, "currency")).map(_clean_upper)
    ccy = ccy_f.values()
    rej.add(
        ccy_f.test(lambda v: v != "" and not (len(v) == 3 and v.isascii() and v.isalpha())),
        "currency",
        "BAD_CCY",
        lambda r: f"currency '{ccy[r]}' is not a 3-letter ISO 4217 code",
    )

    side_raw = Factor.of(_column(raw, "side")).map(_clean_upper)
    side_f = side_raw.map(lambda v: p.side_codes.get(v, ""))
    side = side_f.values()
    no_side = side == ""
    side_blank = side_raw.test(lambda v: v == "")
    codes_shown = ", ".join(p.side_codes)
    rej.add(no_side & side_blank & ~cancel, "side", "MISSING_VALUE", lambda r: "no side (buy or sell)")
    rej.add(
        no_side & ~side_blank & ~cancel,
        "side",
        "BAD_SIDE",
        lambda r: (
            f"side '{side_raw.uniques[side_raw.codes[r]]}' is not one of {codes_shown} (profile {p.name})"
        ),
    )

    numbers: dict[str, np.ndarray] = {}
    for field, scale in (("quantity", QTY_SCALE), ("price", PRICE_SCALE)):
        f = Factor.of(_column(raw, field))
        u_units, u_problem = parse_units(f.uniques, scale, decimal=p.decimal, thousands=p.thousands)
        units, problem = u_units[f.codes], u_problem[f.codes]
        bad = (problem != 0) & ~cancel
        rej.add(bad & (problem == EMPTY), field, "MISSING_VALUE", lambda r, fl=field: f"no {fl}")
        rej.add(
            bad & (problem != EMPTY),
            field,
            "BAD_NUMBER",
            lambda r, fa=f, pr=problem, fl=field, sc=scale: (
                f"{fl} '{str(fa.uniques[fa.codes[r]]).strip()}' {PROBLEM_TEXT[int(pr[r])]}"
                + (f" ({_SCALE_WORDS[sc]} decimals)" if pr[r] == TOO_PRECISE else "")
                + (f" (profile {p.name} writes decimals with '{p.decimal}')" if pr[r] == NOT_A_NUMBER else "")
            ),
        )
        numbers[field] = np.where(bad, 0, units)

    td_text = Factor.of(_column(raw, "trade_date")).map(_clean)
    trade_date = _parse_dates(td_text, p.date_format)
    td_blank = td_text.test(lambda v: v == "")
    no_date = np.isnat(trade_date) & ~cancel
    rej.add(no_date & td_blank, "trade_date", "MISSING_VALUE", lambda r: "no trade date")
    rej.add(
        no_date & ~td_blank,
        "trade_date",
        "BAD_DATE",
        lambda r: (
            f"trade date '{td_text.uniques[td_text.codes[r]]}' is not a date in the format {p.date_format} "
            f"(profile {p.name})"
        ),
    )
    sd_text = Factor.of(_column(raw, "settlement_date")).map(_clean)
    settle = _parse_dates(sd_text, p.date_format)
    rej.add(
        np.isnat(settle) & ~sd_text.test(lambda v: v == "") & ~cancel,
        "settlement_date",
        "BAD_DATE",
        lambda r: (
            f"settlement date '{sd_text.uniques[sd_text.codes[r]]}' is not a date in the format {p.date_format}"
        ),
    )
    tt_text = Factor.of(_column(raw, "trade_time")).map(_clean)
    trade_time, bad_time = _parse_times(tt_text, trade_date, p)
    rej.add(
        bad_time & ~cancel,
        "trade_time",
        "BAD_TIME",
        lambda r: (
            f"trade time '{tt_text.uniques[tt_text.codes[r]]}' is neither a time like {p.time_format} nor an "
            "ISO 8601 timestamp"
        ),
    )

    keep = ~rej.bad
    kept_lines = lines[keep]
    ref_format = source_ref_prefix.replace("%", "%%") + ":%d"
    frame = frame_of(
        {
            "line": kept_lines,
            "trade_ref": trade_ref[keep],
            "action": action_f.categorical(keep),
            "order_ref": factors["order_ref"].categorical(keep),
            "source_ref": _array(list(map(ref_format.__mod__, kept_lines.tolist())), object),
            "isin": factors["isin"].categorical(keep),
            "account_code": factors["account_code"].categorical(keep),
            "counterparty_code": factors["counterparty_code"].categorical(keep),
            "cpty_lei": factors["cpty_lei"].categorical(keep),
            "cpty_bic": factors["cpty_bic"].categorical(keep),
            "side": side_f.categorical(keep),
            "qty_u": numbers["quantity"][keep],
            "px_u": numbers["price"][keep],
            "currency": ccy_f.categorical(keep),
            "trade_date": trade_date[keep],
            "trade_time": trade_time[keep],
            "settle_given": settle[keep],
            "raw_row": np.flatnonzero(keep),
        }
    )
    problems = [Problem(int(lines[r]), f, code, reason) for r, f, code, reason in sorted(rej.problems)]
    return frame, problems


def empty_incoming() -> pd.DataFrame:
    return pd.DataFrame(
        {
            c: pd.Series(
                [],
                dtype=(
                    np.int64
                    if c in ("line", "qty_u", "px_u")
                    else "datetime64[us]"
                    if c in ("trade_time",)
                    else "datetime64[s]"
                    if c in ("trade_date", "settle_given")
                    else object
                ),
            )
            for c in INCOMING_COLUMNS
        }
    )
