"""Dates on the charts' time axes: a business date is plotted at noon UTC, so every time zone shows the same day."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np


def day_seconds(day: Any) -> float:
    """Epoch seconds of noon UTC on ``day`` (a date, a pandas Timestamp or a numpy datetime64)."""
    if isinstance(day, np.datetime64):
        day = dt.date.fromisoformat(str(day.astype("datetime64[D]")))
    if isinstance(day, dt.datetime):
        day = day.date()
    return dt.datetime.combine(day, dt.time(12), dt.UTC).timestamp()


def seconds_day(x: float) -> dt.date:
    """The business date a plotted x value stands for."""
    return dt.datetime.fromtimestamp(float(x), dt.UTC).date()
