"""Business-day calendars per market: settlement dates, ages in business days, windows of past business days.

The closures come from exchange-calendars (one calendar per exchange, named by MIC: XNYS, XETR, XLON ...), plus the
extra closures a market row carries in ``market_holidays`` (settlement-system holidays such as the Fedwire closures
on Columbus Day and Veterans Day, or an ad-hoc closure) when a session is passed. Every function accepts a market
MIC or a calendar code: with a session, a MIC found in ``markets`` gives that market's calendar code and its extra
closures; otherwise the code is taken as an exchange-calendars name.

Building an exchange calendar costs up to a second, so each is built once per process, lazily, over a bounded range
(2015-2035) and turned into a ``numpy.busdaycalendar``: from then on every question, scalar or vectorised over
millions of dates, is a numpy call. Dates outside the range are refused rather than silently treated as having
no holidays.

Conventions (the same in the scalar and the vectorised forms):

- ``add_business_days(code, d, n)``: n = 0 gives d itself if it is a business day, else the next business day;
  n > 0 gives the n-th business day after d; n < 0 the |n|-th business day before d. From a non-business day,
  "1 business day after Saturday" is Monday and "1 before" is Friday.
- ``business_days_between(code, start, end)``: business days in [start, end), negative if end < start; the age of
  an item opened on Monday is 2 on Wednesday.
- ``previous_business_days(code, end, n)``: the n business days strictly before ``end``, oldest first.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Market, MarketHoliday

from .calendar_helper import derives_in_helper_process
from .errors import ValidationFailed

# The desk's own business days (break ages, SLA windows not tied to a market): the team sits in London.
DESK_CALENDAR = "XLON"

CALENDAR_START = dt.date(2015, 1, 1)
CALENDAR_END = dt.date(2035, 12, 31)

DateLike = dt.date | np.datetime64 | str


@dataclass(frozen=True, eq=False)
class BusinessCalendar:
    """One market's business days: a weekmask and the holidays within [start, end]."""

    code: str
    weekmask: str
    holidays: np.ndarray  # datetime64[D], sorted
    start: dt.date = CALENDAR_START
    end: dt.date = CALENDAR_END

    @functools.cached_property
    def busdaycal(self) -> np.busdaycalendar:
        return np.busdaycalendar(weekmask=self.weekmask, holidays=self.holidays)

    # --- range checks ---------------------------------------------------------------------------------------------

    def _check(self, d: np.datetime64 | np.ndarray) -> None:
        lo, hi = np.datetime64(self.start, "D"), np.datetime64(self.end, "D")
        arr = np.asarray(d, dtype="datetime64[D]")
        if arr.size == 0:
            return
        valid = arr[~np.isnat(arr)]
        if valid.size and (valid.min() < lo or valid.max() > hi):
            bad = valid.min() if valid.min() < lo else valid.max()
            raise ValidationFailed(
                f"{bad} is outside the business-day calendar {self.code}, which covers {self.start} to {self.end}."
            )

    # --- scalar ---------------------------------------------------------------------------------------------------

    def is_business_day(self, d: DateLike) -> bool:
        day = _day(d)
        self._check(day)
        return bool(np.is_busday(day, busdaycal=self.busdaycal))

    def add_business_days(self, d: DateLike, n: int) -> dt.date:
        day = _day(d)
        self._check(day)
        out = self.add_business_days_array(np.array([day]), np.array([n]))[0]
        return _to_date(out)

    def business_days_between(self, start: DateLike, end: DateLike) -> int:
        a, b = _day(start), _day(end)
        self._check(np.array([a, b]))
        return int(np.busday_count(a, b, busdaycal=self.busdaycal))

    def previous_business_days(self, end: DateLike, n: int) -> list[dt.date]:
        if n < 0:
            raise ValidationFailed(f"Cannot list {n} business days; give a count of 0 or more.")
        day = _day(end)
        offsets = -np.arange(n, 0, -1)
        days = self.add_business_days_array(np.full(n, day), offsets)
        return [_to_date(x) for x in days]

    def settlement_date(self, trade_date: DateLike, cycle: int) -> dt.date:
        if cycle < 0:
            raise ValidationFailed(f"A settlement cycle cannot be negative (T+{cycle}).")
        return self.add_business_days(trade_date, cycle)

    # --- vectorised -----------------------------------------------------------------------------------------------

    def is_business_day_array(self, dates: Any) -> np.ndarray:
        """Booleans for an array of dates (NaT gives False)."""
        arr = as_day_array(dates)
        self._check(arr)
        out = np.zeros(arr.shape, dtype=bool)
        ok = ~np.isnat(arr)
        out[ok] = np.is_busday(arr[ok], busdaycal=self.busdaycal)
        return out

    def add_business_days_array(self, dates: Any, n: Any) -> np.ndarray:
        """``add_business_days`` for an array of dates and a count (scalar or array); NaT stays NaT."""
        arr = as_day_array(dates)
        counts = np.broadcast_to(np.asarray(n, dtype=np.int64), arr.shape)
        self._check(arr)
        out = np.full(arr.shape, np.datetime64("NaT"), dtype="datetime64[D]")
        ok = ~np.isnat(arr)
        cal = self.busdaycal
        # One roll for all would break the symmetry documented above: roll backward before stepping forward
        # (Saturday + 1 = Monday), forward before stepping back (Saturday - 1 = Friday), forward for n = 0.
        for mask, roll in ((ok & (counts > 0), "backward"), (ok & (counts <= 0), "forward")):
            if mask.any():
                out[mask] = np.busday_offset(arr[mask], counts[mask], roll=roll, busdaycal=cal)
        self._check(out)
        return out

    def business_days_between_array(self, start: Any, end: Any) -> np.ndarray:
        """Business days in [start, end) element-wise (int64); a missing date (NaT) is refused."""
        a, b = np.broadcast_arrays(as_day_array(start), as_day_array(end))
        if np.isnat(a).any() or np.isnat(b).any():
            raise ValidationFailed("Cannot count business days from or to a missing date.")
        self._check(a)
        self._check(b)
        return np.busday_count(a, b, busdaycal=self.busdaycal).astype(np.int64)

    def settlement_dates_array(self, trade_dates: Any, cycles: Any) -> np.ndarray:
        cyc = np.asarray(cycles, dtype=np.int64)
        if (cyc < 0).any():
            raise ValidationFailed("A settlement cycle cannot be negative.")
        return self.add_business_days_array(trade_dates, cyc)


# --- construction and lookup ------------------------------------------------------------------------------------------


def _day(d: DateLike) -> np.datetime64:
    if isinstance(d, dt.datetime):
        d = d.date()
    day = np.datetime64(d, "D")
    if np.isnat(day):
        raise ValidationFailed("A date is needed here.")
    return day


def _to_date(d: np.datetime64) -> dt.date:
    return dt.date.fromisoformat(str(np.datetime64(d, "D")))


def as_day_array(dates: Any) -> np.ndarray:
    """Any array-like of dates (datetime.date, numpy datetime64, pandas Timestamps/DatetimeIndex) as datetime64[D]."""
    if isinstance(dates, np.ndarray) and np.issubdtype(dates.dtype, np.datetime64):
        return dates.astype("datetime64[D]")
    if hasattr(dates, "to_numpy"):  # pandas Series / Index, possibly timezone-aware
        values = dates.to_numpy()
        if np.issubdtype(values.dtype, np.datetime64):
            return values.astype("datetime64[D]")
        dates = values
    return np.array(
        [np.datetime64(x.date() if isinstance(x, dt.datetime) else x, "D") for x in np.ravel(dates)],
        dtype="datetime64[D]",
    ).reshape(np.shape(dates))


@functools.cache
def known_calendar_codes() -> frozenset[str]:
    import exchange_calendars as xcals

    return frozenset(xcals.get_calendar_names(include_aliases=True))


def _cache_file() -> Path:
    """Where the derived calendars are kept between runs: keyed by the library's version and our date range, so an
    upgrade of exchange-calendars (new holidays) or a wider range builds them afresh."""
    from importlib.metadata import version

    from app.config import data_dir

    key = f"{version('exchange-calendars')}-{CALENDAR_START:%Y%m%d}-{CALENDAR_END:%Y%m%d}"
    return data_dir() / "cache" / f"calendars-{key}.json"


def _cached(code: str) -> BusinessCalendar | None:
    try:
        entry = json.loads(_cache_file().read_text(encoding="utf-8")).get(code)
    except (OSError, ValueError, PackageNotFoundError):
        return None
    if not entry:
        return None
    return _as_calendar(code, entry)


def _store(cal: BusinessCalendar) -> None:
    """Add one calendar to the cache file (best effort: a read-only or full disk only costs the next start time)."""
    try:
        path = _cache_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        data[cal.code] = {"weekmask": cal.weekmask, "holidays": [str(d) for d in cal.holidays]}
        # Written aside and renamed: another process reading the file sees the old or the new one, never half.
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except (OSError, PackageNotFoundError):
        pass


@functools.lru_cache(maxsize=64)
def _base_calendar(code: str) -> BusinessCalendar:
    """The calendar once per process: from the cache file when an earlier run derived it, else built from
    exchange-calendars (1-3 s each, most of a pane's first load) and stored for the next run."""
    cal = _cached(code)
    if cal is None and derives_in_helper_process():
        cal = _derive_in_helper(code)
    if cal is None:
        cal = _build_calendar(code)
        _store(cal)
    return cal


def _as_calendar(code: str, entry: dict[str, Any]) -> BusinessCalendar:
    holidays = np.array(entry["holidays"], dtype="datetime64[D]")
    holidays.setflags(write=False)
    return BusinessCalendar(code=code, weekmask=entry["weekmask"], holidays=holidays)


#: The helper's exit status for a code exchange-calendars does not know (its sentence on stderr).
HELPER_UNKNOWN_CODE = 3
HELPER_TIMEOUT_S = 120


def _derive_in_helper(code: str) -> BusinessCalendar | None:
    """One calendar derived by a helper process (see ``calendar_helper``): it stores the calendar in the cache file
    and prints it. None if the helper could not run (the caller then derives it here); an unknown code is refused
    with the helper's sentence."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "app.services.calendars", code],
            capture_output=True,
            text=True,
            timeout=HELPER_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode == HELPER_UNKNOWN_CODE:
        raise ValidationFailed(done.stderr.strip())
    if done.returncode != 0:
        return None
    try:
        return _as_calendar(code, json.loads(done.stdout))
    except (ValueError, KeyError):
        return None


def _helper_main(argv: list[str]) -> int:
    """``python -m app.services.calendars CODE``: derive, store and print one calendar (the helper process)."""
    try:
        cal = _build_calendar(argv[0].strip().upper())
    except ValidationFailed as err:
        print(err, file=sys.stderr)
        return HELPER_UNKNOWN_CODE
    _store(cal)
    print(json.dumps({"weekmask": cal.weekmask, "holidays": [str(d) for d in cal.holidays]}))
    return 0


def _build_calendar(code: str) -> BusinessCalendar:
    """Build the exchange calendar (the slow part) and keep only what numpy needs."""
    import exchange_calendars as xcals

    if code not in known_calendar_codes():
        raise ValidationFailed(
            f"There is no business-day calendar named '{code}'. Use an exchange MIC such as XNYS, XNAS, XETR, XAMS, "
            "XPAR, XLON, XSWX or XTKS."
        )
    with warnings.catch_warnings():
        # exchange-calendars triggers pandas deprecation warnings while it builds; they are not ours to fix.
        warnings.simplefilter("ignore")
        cal = xcals.get_calendar(code, start=CALENDAR_START.isoformat(), end=CALENDAR_END.isoformat())
        sessions = cal.sessions.to_numpy().astype("datetime64[D]")
        weekmask = str(cal.weekmask)
    # A holiday is a weekday (by the calendar's weekmask) within the range that is not a session: this catches
    # regular holidays, ad-hoc closures (national days of mourning) and anything else the library knows.
    all_days = np.arange(np.datetime64(CALENDAR_START, "D"), np.datetime64(CALENDAR_END, "D") + 1)
    weekdays = all_days[np.is_busday(all_days, weekmask=weekmask)]
    holidays = np.setdiff1d(weekdays, sessions)
    holidays.setflags(write=False)  # shared by every caller through the cache
    return BusinessCalendar(code=code, weekmask=weekmask, holidays=holidays)


@functools.lru_cache(maxsize=256)
def _with_closures(code: str, extra: tuple[dt.date, ...]) -> BusinessCalendar:
    base = _base_calendar(code)
    if not extra:
        return base
    holidays = np.union1d(base.holidays, np.array(extra, dtype="datetime64[D]"))
    holidays.setflags(write=False)
    return BusinessCalendar(code=code, weekmask=base.weekmask, holidays=holidays)


def market_closures(session: Session, mic: str) -> tuple[str, tuple[dt.date, ...]] | None:
    """(calendar code, extra closures) of the market with this MIC, or None when there is no such market."""
    row = session.execute(select(Market.id, Market.calendar_code).where(Market.mic == mic.upper())).first()
    if row is None:
        return None
    days = session.scalars(
        select(MarketHoliday.holiday_date)
        .where(MarketHoliday.market_id == row.id)
        .order_by(MarketHoliday.holiday_date)
    ).all()
    return row.calendar_code, tuple(days)


def get_calendar(
    code: str,
    session: Session | None = None,
    *,
    extra_closures: Iterable[dt.date] = (),
) -> BusinessCalendar:
    """The business-day calendar for a market MIC or calendar code.

    With ``session``, a market row with this MIC supplies the calendar code and its ``market_holidays``;
    ``extra_closures`` adds more (the demo generator uses it before the rows exist).
    """
    code = (code or "").strip().upper()
    extra = set(extra_closures)
    if session is not None:
        found = market_closures(session, code)
        if found is not None:
            code = found[0].strip().upper()
            extra.update(found[1])
    return _with_closures(code, tuple(sorted(extra)))


# --- module-level shortcuts ---------------------------------------------------------------------------------------


def is_business_day(code: str, date: DateLike, session: Session | None = None) -> bool:
    return get_calendar(code, session).is_business_day(date)


def add_business_days(code: str, date: DateLike, n: int, session: Session | None = None) -> dt.date:
    return get_calendar(code, session).add_business_days(date, n)


def business_days_between(code: str, start: DateLike, end: DateLike, session: Session | None = None) -> int:
    return get_calendar(code, session).business_days_between(start, end)


def previous_business_days(code: str, end: DateLike, n: int, session: Session | None = None) -> list[dt.date]:
    return get_calendar(code, session).previous_business_days(end, n)


def settlement_date(code: str, trade_date: DateLike, cycle: int, session: Session | None = None) -> dt.date:
    """Intended settlement date: ``cycle`` business days after the trade date on the market's calendar."""
    return get_calendar(code, session).settlement_date(trade_date, cycle)


def is_business_day_array(code: str, dates: Any, session: Session | None = None) -> np.ndarray:
    return get_calendar(code, session).is_business_day_array(dates)


def add_business_days_array(code: str, dates: Any, n: Any, session: Session | None = None) -> np.ndarray:
    return get_calendar(code, session).add_business_days_array(dates, n)


def business_days_between_array(
    code: str, start: Any, end: Any, session: Session | None = None
) -> np.ndarray:
    return get_calendar(code, session).business_days_between_array(start, end)


def settlement_dates_array(
    code: str, trade_dates: Any, cycles: Any, session: Session | None = None
) -> np.ndarray:
    return get_calendar(code, session).settlement_dates_array(trade_dates, cycles)


if __name__ == "__main__":
    sys.exit(_helper_main(sys.argv[1:]))
