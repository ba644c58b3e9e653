"""Business-day calendars: real market holidays, settlement dates across weekends and holidays, extra closures
from the market_holidays table, and vectorised results equal to a day-by-day walk."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path
from typing import Any

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import pytest

from app.models import Market, MarketHoliday
from app.services import calendar_helper, calendars
from app.services.calendars import (
    add_business_days,
    add_business_days_array,
    business_days_between,
    business_days_between_array,
    get_calendar,
    is_business_day,
    is_business_day_array,
    previous_business_days,
    settlement_date,
    settlement_dates_array,
)
from app.services.db import Database
from app.services.errors import ValidationFailed

D = dt.date


@pytest.mark.parametrize(
    ("code", "day", "why"),
    [
        ("XNYS", D(2026, 11, 26), "Thanksgiving"),
        ("XNYS", D(2025, 7, 4), "Independence Day"),
        ("XNYS", D(2026, 7, 3), "Independence Day observed (4 July 2026 is a Saturday)"),
        ("XNYS", D(2025, 12, 25), "Christmas"),
        ("XNYS", D(2026, 4, 3), "Good Friday"),
        ("XNYS", D(2025, 1, 9), "national day of mourning (an ad-hoc closure)"),
        ("XNAS", D(2026, 11, 26), "Thanksgiving"),
        ("XETR", D(2026, 4, 3), "Good Friday"),
        ("XETR", D(2026, 4, 6), "Easter Monday"),
        ("XETR", D(2026, 12, 24), "Christmas Eve"),
        ("XETR", D(2026, 5, 1), "Labour Day"),
        ("XLON", D(2026, 4, 3), "Good Friday"),
        ("XLON", D(2026, 4, 6), "Easter Monday"),
        ("XLON", D(2026, 8, 31), "Summer bank holiday"),
        ("XLON", D(2025, 8, 25), "Summer bank holiday"),
        ("XLON", D(2026, 12, 28), "Boxing Day substitute"),
        ("XTKS", D(2026, 1, 2), "New Year holiday"),
    ],
)
def test_real_holidays_are_not_business_days(code: str, day: dt.date, why: str) -> None:
    assert day.weekday() < 5, "the holiday must fall on a weekday to prove anything"
    assert not is_business_day(code, day), why


def test_ordinary_days() -> None:
    assert is_business_day("XNYS", D(2026, 11, 27))  # the half day after Thanksgiving is open
    assert is_business_day("XLON", D(2026, 11, 26))  # London does not keep Thanksgiving
    assert not is_business_day("XNYS", D(2026, 11, 28))  # Saturday
    assert is_business_day("xnys", dt.datetime(2026, 11, 24, 15, 30))  # codes and datetimes are forgiving


@pytest.mark.parametrize(
    ("code", "trade_date", "cycle", "expected", "why"),
    [
        ("XNYS", D(2026, 11, 20), 1, D(2026, 11, 23), "T+1 from Friday lands on Monday"),
        ("XNYS", D(2026, 11, 25), 1, D(2026, 11, 27), "T+1 skips Thanksgiving"),
        ("XNYS", D(2026, 7, 2), 1, D(2026, 7, 6), "T+1 skips the observed 4 July and the weekend"),
        ("XNYS", D(2025, 12, 24), 1, D(2025, 12, 26), "T+1 skips Christmas"),
        ("XETR", D(2026, 4, 2), 2, D(2026, 4, 8), "T+2 skips Good Friday, the weekend and Easter Monday"),
        ("XLON", D(2026, 8, 28), 1, D(2026, 9, 1), "T+1 skips the weekend and the August bank holiday"),
        ("XLON", D(2026, 8, 27), 2, D(2026, 9, 1), "T+2 across the August bank holiday"),
        ("XNYS", D(2026, 11, 24), 0, D(2026, 11, 24), "T+0 on a business day is the same day"),
        ("XNYS", D(2026, 11, 26), 0, D(2026, 11, 27), "T+0 on a holiday is the next business day"),
    ],
)
def test_settlement_dates(code: str, trade_date: dt.date, cycle: int, expected: dt.date, why: str) -> None:
    assert settlement_date(code, trade_date, cycle) == expected, why


def test_add_business_days_from_a_weekend_is_symmetric() -> None:
    saturday = D(2026, 11, 21)
    assert add_business_days("XNYS", saturday, 0) == D(2026, 11, 23)
    assert add_business_days("XNYS", saturday, 1) == D(2026, 11, 23)
    assert add_business_days("XNYS", saturday, -1) == D(2026, 11, 20)
    assert add_business_days("XNYS", D(2026, 11, 30), -2) == D(2026, 11, 25)  # back over Thanksgiving


def test_business_days_between_counts_ages() -> None:
    assert business_days_between("XNYS", D(2026, 11, 23), D(2026, 11, 25)) == 2
    assert business_days_between("XNYS", D(2026, 11, 25), D(2026, 11, 30)) == 2  # Wed and Fri; Thu is closed
    assert business_days_between("XLON", D(2026, 11, 25), D(2026, 11, 30)) == 3
    assert business_days_between("XNYS", D(2026, 11, 30), D(2026, 11, 25)) == -2
    assert business_days_between("XNYS", D(2026, 11, 25), D(2026, 11, 25)) == 0


def test_previous_business_days() -> None:
    assert previous_business_days("XNYS", D(2026, 11, 30), 3) == [
        D(2026, 11, 24),
        D(2026, 11, 25),
        D(2026, 11, 27),
    ]
    assert previous_business_days("XNYS", D(2026, 11, 29), 1) == [D(2026, 11, 27)]  # from a Sunday
    assert previous_business_days("XNYS", D(2026, 11, 30), 0) == []
    ten = previous_business_days("XETR", D(2026, 4, 10), 10)
    assert len(ten) == 10 and ten == sorted(ten) and D(2026, 4, 3) not in ten and D(2026, 4, 6) not in ten


def test_business_days_agree_with_exchange_calendars_sessions() -> None:
    # An independent source: the exchange calendar's own session list, day by day over two years.
    for code in ("XNYS", "XETR", "XLON", "XTKS"):
        with warnings.catch_warnings():  # the library's own pandas deprecation warnings
            warnings.simplefilter("ignore")
            sessions = set(xcals.get_calendar(code, start="2025-01-01", end="2026-12-31").sessions.date)
        days = pd.date_range("2025-01-01", "2026-12-31", freq="D").date
        ours = is_business_day_array(code, days)
        assert ours.tolist() == [d in sessions for d in days], code


def _walk(code: str, day: dt.date, n: int) -> dt.date:
    """Reference implementation: step one calendar day at a time."""
    cal = get_calendar(code)
    if n == 0:
        while not cal.is_business_day(day):
            day += dt.timedelta(days=1)
        return day
    step = 1 if n > 0 else -1
    left = abs(n)
    while left:
        day += dt.timedelta(days=step)
        if cal.is_business_day(day):
            left -= 1
    return day


@pytest.mark.parametrize("code", ["XNYS", "XETR", "XLON", "XSWX"])
def test_vectorised_equals_day_by_day(code: str) -> None:
    days = pd.date_range("2025-12-01", "2026-01-15", freq="D").date  # Christmas and New Year inside
    for n in (-3, -1, 0, 1, 2, 5):
        got = add_business_days_array(code, days, n)
        expected = np.array([_walk(code, d, n) for d in days], dtype="datetime64[D]")
        assert (got == expected).all(), (code, n)
        assert [add_business_days(code, d, n) for d in days[:10]] == [_walk(code, d, n) for d in days[:10]]
    ends = np.array(days[::-1], dtype="datetime64[D]")
    counts = business_days_between_array(code, days, ends)
    assert counts.tolist() == [
        business_days_between(code, a, b) for a, b in zip(days, ends.tolist(), strict=True)
    ]
    cycles = np.resize([0, 1, 2], len(days))
    settle = settlement_dates_array(code, days, cycles)
    assert settle.tolist() == [settlement_date(code, d, int(c)) for d, c in zip(days, cycles, strict=True)]


def test_arrays_accept_pandas_and_keep_missing_dates_missing() -> None:
    series = pd.Series(pd.to_datetime(["2026-11-25", None, "2026-11-26"]))
    out = add_business_days_array("XNYS", series, 1)
    assert str(out[0]) == "2026-11-27" and np.isnat(out[1]) and str(out[2]) == "2026-11-27"
    assert is_business_day_array("XNYS", series).tolist() == [True, False, False]
    with pytest.raises(ValidationFailed, match="missing date"):
        business_days_between_array("XNYS", series, series)


def test_refusals() -> None:
    with pytest.raises(ValidationFailed, match="no business-day calendar named 'NOPE'"):
        is_business_day("NOPE", D(2026, 1, 5))
    with pytest.raises(ValidationFailed, match="outside the business-day calendar XNYS"):
        add_business_days("XNYS", D(2040, 1, 2), 1)
    with pytest.raises(ValidationFailed, match="outside"):
        add_business_days("XNYS", D(2035, 12, 31), 5)  # the answer would fall past the known holidays
    with pytest.raises(ValidationFailed, match="cannot be negative"):
        settlement_date("XNYS", D(2026, 1, 5), -1)


def test_calendars_are_built_once() -> None:
    assert get_calendar("XNYS") is get_calendar("xnys")
    assert get_calendar("XETR", extra_closures=[D(2026, 6, 1)]) is get_calendar(
        "XETR", extra_closures=[D(2026, 6, 1)]
    )
    assert calendars._base_calendar.cache_info().currsize >= 1


def test_extra_closures_from_market_holidays(db: Database) -> None:
    # Fedwire is closed on Veterans Day while the NYSE trades: a market row carries that closure.
    veterans_day = D(2026, 11, 11)
    with db.write() as s:
        market = Market(
            mic="XOFF",
            name="US Treasuries OTC",
            country="US",
            timezone="America/New_York",
            calendar_code="XNYS",
            instruction_cutoff=dt.time(15, 0),
            default_settlement_cycle=1,
        )
        s.add(market)
        s.flush()
        s.add(MarketHoliday(market_id=market.id, holiday_date=veterans_day, name="Veterans Day (Fedwire)"))
    with db.read() as s:
        assert is_business_day("XNYS", veterans_day, s)  # the exchange is open
        assert not is_business_day("XOFF", veterans_day, s)  # the market row adds the closure
        assert settlement_date("XOFF", D(2026, 11, 10), 1, s) == D(2026, 11, 12)
        assert business_days_between("XOFF", D(2026, 11, 9), D(2026, 11, 13), s) == 3
        assert not is_business_day_array("XOFF", [veterans_day], s)[0]
    # Without a session there is no market row to consult: the code must be a calendar name.
    with pytest.raises(ValidationFailed, match="no business-day calendar named 'XOFF'"):
        is_business_day("XOFF", veterans_day)


def test_a_derived_calendar_is_kept_between_runs_and_equals_a_fresh_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second process start reads the cache file instead of rebuilding from exchange-calendars."""
    monkeypatch.setenv("OPSDESK_DATA_DIR", str(tmp_path))
    calendars._base_calendar.cache_clear()
    try:
        first = calendars._base_calendar("XLON")  # built and stored
        assert calendars._cache_file().is_file()
        calendars._base_calendar.cache_clear()
        cached = calendars._cached("XLON")
        assert cached is not None
        assert cached.weekmask == first.weekmask
        assert np.array_equal(cached.holidays, calendars._build_calendar("XLON").holidays)
        # 2026-12-25 and 2026-12-28 (Boxing Day observed) are London holidays, read from the cache.
        assert calendars._base_calendar("XLON").holidays.tolist().count(dt.date(2026, 12, 28)) == 1
        # A damaged cache file is ignored, not trusted.
        calendars._cache_file().write_text("{not json", encoding="utf-8")
        assert calendars._cached("XLON") is None
    finally:
        calendars._base_calendar.cache_clear()


def test_the_gui_derives_a_missing_calendar_in_a_helper_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the GUI's choice on, a calendar missing from the cache is derived by ``python -m app.services.calendars``
    (its work would hold Python's lock on the GUI's worker): the same calendar, stored in the cache file for the next
    start; an unknown code is refused with the same sentence as in-process."""
    monkeypatch.setenv("OPSDESK_DATA_DIR", str(tmp_path))
    calendars._base_calendar.cache_clear()
    calls: list[list[str]] = []
    run = calendars.subprocess.run

    def counted(args: list[str], **kw: Any) -> Any:
        calls.append(list(args))
        return run(args, **kw)

    monkeypatch.setattr(calendars.subprocess, "run", counted)
    calendar_helper.derive_in_helper_process()
    try:
        got = calendars._base_calendar("XTKS")
        assert calls and calls[0][1:] == ["-m", "app.services.calendars", "XTKS"]
        assert calendars._cached("XTKS") is not None  # the helper stored it
        fresh = calendars._build_calendar("XTKS")
        assert got.weekmask == fresh.weekmask and np.array_equal(got.holidays, fresh.holidays)
        with pytest.raises(ValidationFailed, match="no business-day calendar named 'NOPE'"):
            calendars._base_calendar("NOPE")
    finally:
        calendar_helper.derive_in_helper_process(False)
        calendars._base_calendar.cache_clear()
