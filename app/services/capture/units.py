"""Exact decimals for vectorised code: text to integer minor units, rounding, and back to text or Decimal.

Money never passes through a float here. Quantities are held as int64 millionths (``QTY_SCALE`` 6, the scale of the
``quantity`` column), prices as int64 units of 1e-8 (``PRICE_SCALE``), amounts as int64 units of 1e-4
(``MONEY_SCALE``): the column scales, so what the database stores is exactly what was computed. Products that can
exceed int64 (quantity x price is at scale 14) are computed on numpy object arrays of Python ints, which are exact
and unbounded, and rounded back with :func:`round_div`.

:func:`parse_units` reads a whole column of decimal text at once: the strings become a numpy character matrix
(one row per value, one uint32 code point per column) and the digits are weighted by powers of ten with matrix
operations, so a million prices parse in a fraction of a second without a Python loop and without float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

QTY_SCALE = 6
PRICE_SCALE = 8
MONEY_SCALE = 4

# Problems parse_units reports per value.
OK, EMPTY, NOT_A_NUMBER, TOO_PRECISE, TOO_LARGE = 0, 1, 2, 3, 4
PROBLEM_TEXT = {
    EMPTY: "no value",
    NOT_A_NUMBER: "is not a number",
    TOO_PRECISE: "has more decimals than OpsDesk keeps",
    TOO_LARGE: "is too large",
}

_MAX_DIGITS = 18  # int64 holds every 18-digit number
_MAX_WIDTH = 40  # longer text is not a number we accept
_POW10 = np.array([10**i for i in range(_MAX_DIGITS + 1)], dtype=np.int64)
_SPACES = (0x20, 0xA0, 0x202F)  # space, no-break space, narrow no-break space (French thousands)


def as_text_array(values: Any) -> np.ndarray:
    """A 1-d numpy unicode array of the values (None becomes '')."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "U":
        return values
    if hasattr(values, "to_numpy"):
        values = values.to_numpy(dtype=object, na_value="")
    arr = np.asarray(values, dtype=object)
    if arr.size and any(v is None for v in arr[:1]):
        arr = np.where(arr == None, "", arr)  # noqa: E711 (element-wise comparison)
    return arr.astype(str) if arr.size else np.array([], dtype="U1")


def parse_units(
    values: Any, scale: int, *, decimal: str = ".", thousands: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decimal text to int64 units of 10^-scale, exactly. Returns (units, problem) arrays.

    Accepts an optional leading sign, digits with the given decimal separator, thousands separators in the integer
    part, and spaces around the number. ``problem`` is OK, EMPTY, NOT_A_NUMBER, TOO_PRECISE (a non-zero digit beyond
    ``scale``) or TOO_LARGE; units are 0 where there is a problem.

    The loop runs over character positions (a dozen for prices), each step a few numpy operations over all
    values at once: a small state machine per value (sign, integer digits, decimal point, fraction digits,
    trailing spaces) kept in vectors.
    """
    arr = as_text_array(values)
    n = arr.shape[0]
    units = np.zeros(n, dtype=np.int64)
    problem = np.zeros(n, dtype=np.uint8)
    if n == 0:
        return units, problem
    too_wide = np.strings.str_len(arr) > _MAX_WIDTH
    if too_wide.any():
        arr = np.where(too_wide, "x", arr)
    width = max(int(np.strings.str_len(arr).max()), 1)
    # One row per character position, so each step below reads a contiguous vector of n code points.
    chars = np.ascontiguousarray(arr.astype(f"U{width}").view(np.uint32).reshape(n, width).T)

    dec, th = ord(decimal), (ord(thousands) if thousands else -1)
    th_is_space = th in _SPACES
    acc = np.zeros(n, dtype=np.int64)
    n_frac = np.zeros(n, dtype=np.int64)
    sig_int = np.zeros(n, dtype=np.int64)
    started = np.zeros(n, dtype=bool)  # a sign, digit or separator has been read
    digits = np.zeros(n, dtype=bool)  # at least one digit
    in_frac = np.zeros(n, dtype=bool)
    ended = np.zeros(n, dtype=bool)  # trailing space seen after the number
    pending_space = np.zeros(n, dtype=bool)  # a space after the number started: trailing unless more follows
    negative = np.zeros(n, dtype=bool)
    bad = too_wide.copy()
    too_precise = np.zeros(n, dtype=bool)
    since_sep = np.zeros(n, dtype=np.int64)  # integer digits since the last thousands separator
    seen_sep = np.zeros(n, dtype=bool)
    limit = _MAX_DIGITS - scale
    for c in chars:
        is_pad = c == 0
        is_space = (c == 0x20) | (c == 0xA0) | (c == 0x202F)
        is_digit = (c >= 48) & (c <= 57)
        is_dec = c == dec
        is_th = (c == th) | (is_space & started & ~in_frac & th_is_space)
        is_sign = (c == 45) | (c == 43)
        content = ~is_pad & ~(is_space & ~is_th)
        # Content after a trailing space ("1 2" without a space thousands separator) is not a number.
        bad |= content & pending_space
        pending_space |= is_space & ~is_th & started
        bad |= is_sign & started
        negative |= (c == 45) & ~started
        bad |= is_dec & in_frac
        bad |= is_th & (in_frac | ~digits)
        # Thousands groups have three digits ("1,892.50"; not "1,2,3"), the first one to three.
        group_end = is_th | (is_dec & ~in_frac)
        bad |= group_end & seen_sep & (since_sep != 3)
        bad |= is_th & ~seen_sep & (since_sep > 3)
        seen_sep |= is_th
        since_sep = np.where(is_th, 0, since_sep)
        bad |= content & ~(is_digit | is_dec | is_th | is_sign)
        d = (c - 48).astype(np.int64)
        int_digit = is_digit & ~in_frac
        since_sep += int_digit
        sig_int += int_digit & ((acc > 0) | (d > 0))
        frac_digit = is_digit & in_frac
        keep = int_digit | (frac_digit & (n_frac < scale))
        too_precise |= frac_digit & (n_frac >= scale) & (d != 0)
        safe = keep & (sig_int <= limit)
        acc = np.where(safe, acc * 10 + d, acc)
        n_frac += frac_digit & (n_frac < scale)
        in_frac |= is_dec
        digits |= is_digit
        started |= content
    del ended
    bad |= started & ~digits
    bad |= seen_sep & ~in_frac & (since_sep != 3)
    too_large = sig_int > limit
    value = acc * _POW10[scale - n_frac]
    problem[too_large] = TOO_LARGE
    problem[too_precise] = TOO_PRECISE
    problem[bad] = NOT_A_NUMBER
    problem[~started & ~bad] = EMPTY
    units[:] = np.where(problem == OK, np.where(negative, -value, value), 0)
    return units, problem


def to_object(values: np.ndarray) -> np.ndarray:
    """int64 array as an object array of Python ints (exact, unbounded arithmetic)."""
    out = np.empty(values.shape[0], dtype=object)
    out[:] = values.tolist()
    return out


def round_div(num: np.ndarray, den: Any, *, half_up: bool = False) -> np.ndarray:
    """num / den rounded to an integer: half-even (banker's, the default) or half away from zero.

    Works element-wise on object arrays of Python ints (exact) and on int64 arrays; ``den`` is positive.
    """
    num = np.asarray(num)
    den_arr = np.broadcast_to(
        np.asarray(den, dtype=num.dtype if num.dtype == object else np.int64), num.shape
    )
    q = num // den_arr
    r = num - q * den_arr  # 0 <= r < den (floor division)
    twice = r * 2
    if half_up:
        # Half away from zero: for a negative num floor already moved away from zero.
        negative = num < 0
        up = np.where(negative, twice > den_arr, twice >= den_arr)
    else:
        odd = (q % 2) != 0
        up = (twice > den_arr) | ((twice == den_arr) & odd)
    return q + up.astype(np.int64) if num.dtype != object else q + np.where(up, 1, 0).astype(object)


def format_units(units: np.ndarray, scale: int) -> np.ndarray:
    """int64 units of 10^-scale as plain decimal text ('18925.0000'), vectorised. Returns a numpy unicode array."""
    units = np.asarray(units, dtype=np.int64)
    mag = np.abs(units)
    whole = (mag // 10**scale).astype(str)
    if scale == 0:
        text = whole
    else:
        frac = np.strings.zfill((mag % 10**scale).astype(str), scale)
        text = np.strings.add(np.strings.add(whole, "."), frac)
    return np.where(units < 0, np.strings.add("-", text), text)


def to_decimal(units: int, scale: int) -> Decimal:
    """One value in units as an exact Decimal with the column's scale (18925.0000)."""
    return Decimal(int(units)).scaleb(-scale)


def from_decimal(value: Decimal | int | str, scale: int) -> int:
    """An exact Decimal (or int, or decimal text) in units of 10^-scale; refused if it has more decimals."""
    d = Decimal(str(value)) if not isinstance(value, Decimal) else value
    scaled = d.scaleb(scale)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {scale} decimals")
    return int(scaled)


def to_float(units: np.ndarray, scale: int) -> np.ndarray:
    """Units as float64, correctly rounded (what SQLAlchemy stores for a Decimal on SQLite, which has no decimal).

    An int64 below 2^53 converts to float exactly and IEEE division is correctly rounded, so ``units / 10^scale``
    is the nearest double to the exact decimal, the same double ``float(Decimal)`` gives.
    """
    units = np.asarray(units, dtype=np.int64)
    out = units.astype(np.float64) / float(10**scale)
    big = np.abs(units) >= 2**53
    if big.any():
        out[big] = [float(to_decimal(u, scale)) for u in units[big]]
    return out


def display(value: Decimal, places: int = 2) -> str:
    """A Decimal as a clerk reads it: thousands separators, at least ``places`` decimals, no float artefacts."""
    d = value.normalize()
    exp = -d.as_tuple().exponent if isinstance(d.as_tuple().exponent, int) else 0
    return f"{value:,.{max(places, exp)}f}"


def take_text(values: Sequence[str] | np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=object)[idx]


def frame_of(columns: dict[str, Any], index: Any = None) -> pd.DataFrame:
    """A DataFrame whose text columns stay numpy object columns.

    pandas 3 turns an object column of strings into its ``str`` dtype by default, which reads None as NaN and makes
    every later conversion back to Python strings cost a pass over the column; the pipeline wants plain objects.
    Lists and object arrays become object Series; typed arrays (ints, datetimes, categoricals) pass through.
    """
    data: dict[str, Any] = {}
    for name, values in columns.items():
        if isinstance(values, list) or (isinstance(values, np.ndarray) and values.dtype == object):
            data[name] = pd.Series(values, dtype=object, index=index)
        else:
            data[name] = values
    return pd.DataFrame(data, index=index)


def records_frame(records: list[dict[str, Any]], columns: list[str] | None = None) -> pd.DataFrame:
    """``frame_of`` for a list of row dicts (the few rows of the ordered path and of FIX orders)."""
    names = columns or (list(records[0]) if records else [])
    return frame_of({n: [r.get(n) for r in records] for n in names})
