"""Turning domain values (Decimal, dates, enums) into JSON that is exact and stable for hashing."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import inspect


def to_jsonable(value: Any) -> Any:
    """Decimal becomes its exact string (never a float), dates ISO 8601, enums their value."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        # Canonical: no exponent, no trailing zeros, so 190.00 and 190.00000000 (SQLite vs PostgreSQL scale)
        # serialise, compare and hash the same.
        return format(value.normalize(), "f")
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace: the same value always gives the same text (and hash)."""
    return json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_snapshot(obj: Any, fields: list[str] | None = None) -> dict[str, Any]:
    """The column values of an ORM object as a JSON-able dict (for audit before/after)."""
    mapper = inspect(obj).mapper
    names = fields or [c.key for c in mapper.column_attrs]
    return {n: to_jsonable(getattr(obj, n)) for n in names}
