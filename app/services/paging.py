"""What every paged list of a million rows shares: a page, a refresh window, a cheap read connection, keyset clauses.

The trade blotter (``blotter.py``) was the first list built this way and keeps its own copy of these pieces, tuned to
the trades table (its settlement-date expression index, its access-path chooser). The settlement queue and the Qt
paged model (``app/views/qt_models/paged_model.py``) use this module; the shapes (:class:`Page`, :class:`Window`)
are the blotter's, so one Qt model base drives both lists.

Keyset paging: the rows after a page are ``WHERE (sort_key, id) > (:last_key, :last_id)`` in the display order,
which with an index on ``(sort_key, id)`` is an index range scan as cheap at row 900,000 as at row 200.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, FunctionElement, String, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles

from .db import Database, translate_errors


@dataclass(frozen=True)
class Column:
    """A column a paged list shows: ``key`` names the value in each row tuple."""

    key: str
    label: str
    kind: str  # text, date, datetime, decimal, int, status, bool
    width: int = 100
    default_visible: bool = True


@dataclass
class Page:
    rows: list[tuple[Any, ...]]
    first_key: tuple[Any, Any] | None = None  # (sort value, id) of the first row
    last_key: tuple[Any, Any] | None = None


@dataclass
class Window:
    """The rows around the one a user is looking at, read in one unit of work (a refresh that keeps one's place).

    ``rows`` are whole pages (``start`` is a multiple of the page size) covering the rows the view shows; ``top`` is
    the row now at the top (where the top item moved to); ``positions`` gives the new row number of each tracked
    item (None: the filter no longer selects it).
    """

    count: int
    start: int
    rows: list[tuple[Any, ...]]
    top: int
    positions: dict[int, int | None]


@contextlib.contextmanager
def reader(db: Database) -> Iterator[Connection]:
    """A connection for reads that are one statement each (a page, a count).

    On PostgreSQL in autocommit: no BEGIN before the query and no ROLLBACK after it, two of the four round trips a
    page would otherwise cost over a VPN. One SELECT is its own consistent snapshot. SQLite reads as db.read() does.
    """
    if not db.is_postgres:
        with db.read() as s:
            yield s.connection()
        return
    with translate_errors(), db.engine.connect() as conn:
        yield conn.execution_options(isolation_level="AUTOCOMMIT")


class no_index(FunctionElement[str]):
    """A column the SQLite planner must not pick an index for (``+col``); plain ``col`` elsewhere.

    SQLite without statistics prefers an equality index plus a sort of every matching row over walking the sort
    index: 300,000 open instructions sorted to show 200. Callers hide the filter's index when many rows match.
    """

    type = String()
    name = "no_index"
    inherit_cache = True


@compiles(no_index)
def _no_index_default(element: no_index, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(no_index, "sqlite")
def _no_index_sqlite(element: no_index, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.clauses, **kw))


def order_by(key: Any, id_col: Any, desc: bool, *, unique: bool = False) -> tuple[Any, ...]:
    """ORDER BY of a keyset page: the sort key, then the id as tie-break (none needed for a unique key)."""
    if unique:
        return (key.desc(),) if desc else (key.asc(),)
    return (key.desc(), id_col.desc()) if desc else (key.asc(), id_col.asc())


def beyond(
    key: Any, id_col: Any, last: tuple[Any, Any], desc: bool, *, unique: bool = False
) -> ColumnElement[bool]:
    """Rows after ``last`` (sort value, id) in the display order: the keyset condition of the next page."""
    if unique:
        return key < last[0] if desc else key > last[0]
    return tuple_(key, id_col) < tuple_(*last) if desc else tuple_(key, id_col) > tuple_(*last)


def window_bounds(total: int, top: int, visible: int, page_size: int) -> tuple[int, int, int]:
    """(top clamped to the rows there are, first row of its page, end of the pages covering ``visible`` rows)."""
    top = max(0, min(top, total - 1)) if total else 0
    start = (top // page_size) * page_size
    end = min(total, ((top + max(visible, 1) - 1) // page_size + 1) * page_size)
    return top, start, end
