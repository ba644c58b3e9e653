"""Bulk writes for imports: ids allocated up front, rows as columns, COPY on PostgreSQL, executemany on SQLite.

Never an ORM object or a statement per row. Values go to the driver in the form each backend stores:

* PostgreSQL: ``COPY table (...) FROM STDIN`` fed with text buffers built a column at a time (``copy_text``; the
  driver's ``write_row`` only for a chunk holding a type the buffer does not format); numbers as Python floats when
  they have at most 15 significant digits (a float's repr is then exactly the decimal, so ``numeric`` receives the
  exact value) and as ``Decimal`` beyond, or, for the import's amounts, as integer units in exponent form
  (``copy_numbers``); timestamps as ISO text with a UTC offset. Ids from the sequence in one statement.
* SQLite: ``executemany`` in chunks of ``CHUNK`` rows on the unit of work's connection; numbers as the float
  SQLAlchemy's ``Numeric`` would store (SQLite has no decimal type; see docs/architecture.md), dates and timestamps
  as the text SQLAlchemy's ``Date``/``DateTime`` types write (``2026-11-25``, ``2026-11-25 13:45:01.123000``), so
  rows written here read back through the ORM exactly like rows it wrote itself.

A large import into a small table defers the table's secondary indexes (``deferred_indexes``). Ids: on
PostgreSQL from the table's sequence (``nextval`` over ``generate_series``), safe with concurrent writers;
on SQLite ``max(id) + 1 ...`` inside the ``BEGIN IMMEDIATE`` transaction, which no other writer can enter.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import exc, text
from sqlalchemy.orm import Session

from .units import to_decimal, to_float

CHUNK = 50_000
# SQLite page cache for a bulk write, in KiB (negative PRAGMA value). The trades table has 20 indexes (one per
# sortable blotter column); with the default 2 MB cache most index inserts miss the cache, and a bulk load runs
# about twice as slowly. Memory is taken only as pages are touched, and the setting is restored afterwards.
SQLITE_BULK_CACHE_KIB = 262_144
# A larger import gets a larger cache, 1 KiB per row up to 1 GiB: at 1,000,000 trades the table alone outgrows
# 256 MiB, and each of the 18 index rebuilds then reads it back from the write-ahead log. Measured with
# bench/bench_import.py at 1,000,000 trades (a shared machine, load average 6-9): the rebuild 33.5 -> 29.0
# CPU-seconds, 116 -> 79 s of wall time.
SQLITE_BULK_CACHE_KIB_PER_ROW = 1
SQLITE_BULK_CACHE_MAX_KIB = 1_048_576
# SQLite's sorter may use helper threads when indexes are (re)built: measured 10% faster on two cores.
SQLITE_BULK_THREADS = 2
_EXACT_FLOAT_LIMIT = 10**15  # at most 15 significant digits: float repr is the exact decimal


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@contextlib.contextmanager
def bulk_write(session: Session, rows: int = 0) -> Iterator[None]:
    """Connection settings for a bulk write, restored on exit (SQLite: a larger page cache, sized for ``rows``
    when given, and sorter threads)."""
    if is_postgres(session):
        yield
        return
    conn = session.connection()
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    threads = conn.exec_driver_sql("PRAGMA threads").scalar()
    cache = max(SQLITE_BULK_CACHE_KIB, min(SQLITE_BULK_CACHE_MAX_KIB, rows * SQLITE_BULK_CACHE_KIB_PER_ROW))
    conn.exec_driver_sql(f"PRAGMA cache_size = -{cache}")
    conn.exec_driver_sql(f"PRAGMA threads = {SQLITE_BULK_THREADS}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(before or -2000)}")
        conn.exec_driver_sql(f"PRAGMA threads = {int(threads or 0)}")


# An import that at least doubles a table (and has at least this many rows) rebuilds the table's secondary indexes
# once, by sorting, instead of updating each of them row by row; on PostgreSQL it also checks the table's foreign
# keys once, with one join per key, instead of one lookup per key per row. Measured on PostgreSQL with 200,000 of
# bench/bench_import.py's trades: COPY 19.5 s with the 18 non-unique indexes and 7 foreign keys of trades, 9.6 s
# without the indexes, 1.9 s without either.
DEFER_INDEXES_MIN_ROWS = 50_000
# PostgreSQL: how long the import waits for the exclusive lock that dropping an index or a foreign key takes, before
# it gives up and inserts with everything in place (a colleague's long query must not be blocked, nor block us).
PG_LOCK_WAIT = "3s"


def _secondary_indexes(session: Session, table: str) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the table's non-unique indexes (unique ones back constraints and stay)."""
    conn = session.connection()
    if is_postgres(session):
        rows = conn.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE schemaname = current_schema() AND tablename = :t ORDER BY indexname"
            ),
            {"t": table},
        ).all()
    else:
        rows = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL "
            "ORDER BY name",
            (table,),
        ).all()
    return [(str(name), str(sql)) for name, sql in rows if not str(sql).upper().startswith("CREATE UNIQUE")]


def _foreign_keys(session: Session, table: str) -> list[tuple[str, str]]:
    """PostgreSQL: (name, definition) of the table's foreign keys."""
    rows = session.connection().execute(
        text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = CAST(:t AS regclass) AND contype = 'f' ORDER BY conname"
        ),
        {"t": table},
    )
    return [(str(name), str(definition)) for name, definition in rows]


@contextlib.contextmanager
def deferred_indexes(
    session: Session, table: str, new_rows: int, *, keep: Sequence[str] = ()
) -> Iterator[bool]:
    """For a bulk insert of ``new_rows`` into ``table`` at least as large as the table already is, drop the table's
    non-unique indexes (and, on PostgreSQL, its foreign keys) and create them again from their own definitions when
    the block ends: the indexes are built by sorting, the foreign keys validated over all rows at once.

    It all happens inside the import's transaction: a failure or a cancel rolls the drop back with everything else,
    and the schema after commit is exactly what it was. Unique indexes stay, so uniqueness is checked as always;
    a row that breaks a foreign key fails the re-creation and so the whole import, as it would have row by row.
    SQLite readers (WAL snapshots) keep reading the committed table with its indexes meanwhile. On PostgreSQL the
    drops hold exclusive locks until commit (readers of the table wait, writers of the referenced tables too), so
    they are only tried when the table is small next to the file (an initial load, a migration) and only if the
    locks come within PG_LOCK_WAIT; otherwise the rows are inserted with everything in place. Yields whether the
    maintenance was deferred. ``keep``: indexes left in place (partial ones the new rows cannot enter cost nothing
    to keep and a full scan of the table to build).
    """
    if new_rows < DEFER_INDEXES_MIN_ROWS:
        yield False
        return
    conn = session.connection()
    existing = int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() or 0)
    if new_rows < existing:
        yield False
        return
    indexes = [(name, sql) for name, sql in _secondary_indexes(session, table) if name not in keep]
    foreign_keys: list[tuple[str, str]] = []
    if is_postgres(session):
        foreign_keys = _foreign_keys(session, table)
        locked = True
        try:
            with conn.begin_nested():  # a savepoint: a lock timeout rolls back to here, not the import
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{PG_LOCK_WAIT}'")
                for name, _ in foreign_keys:
                    conn.exec_driver_sql(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
                for name, _ in indexes:
                    conn.exec_driver_sql(f'DROP INDEX "{name}"')
        except exc.OperationalError:
            locked = False  # rolled back to the savepoint: the indexes and keys are all there
        conn.exec_driver_sql("SET LOCAL lock_timeout = DEFAULT")
        if not locked:
            yield False
            return
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
    else:
        for name, _ in indexes:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
    yield True
    for _, sql in indexes:
        conn.exec_driver_sql(sql)
    for name, definition in foreign_keys:
        conn.exec_driver_sql(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


def allocate_ids(session: Session, table: str, n: int) -> np.ndarray:
    """n fresh primary keys for ``table`` (int64), in ascending order."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if is_postgres(session):
        # The values are drawn on the server and, when no other session drew from the sequence meanwhile (the
        # usual case), they are one run: only its ends come back. Otherwise all of them, as one array (one row per
        # id fetched through the ORM's result was the import's largest Python cost under cProfile at 100,000
        # trades).
        low, high, values = session.execute(
            text(
                "WITH v AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence(:t, 'id')) AS id "
                "FROM generate_series(1, :n)) "
                "SELECT min(id), max(id), CASE WHEN max(id) - min(id) + 1 = :n THEN NULL "
                "ELSE array_agg(id) END FROM v"
            ),
            {"t": table, "n": n},
        ).one()
        if values is None:
            return np.arange(int(low), int(high) + 1, dtype=np.int64)
        return np.sort(np.asarray(values, dtype=np.int64))
    start = int(session.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar() or 0) + 1
    return np.arange(start, start + n, dtype=np.int64)


def numbers(units: np.ndarray, scale: int, session: Session) -> list[Any]:
    """Exact decimal values (int64 units of 10^-scale) in the form the backend's driver takes."""
    floats = to_float(units, scale)
    if not is_postgres(session):
        return floats.tolist()
    out: list[Any] = floats.tolist()
    for i in np.flatnonzero(np.abs(units) >= _EXACT_FLOAT_LIMIT):
        out[i] = to_decimal(int(units[i]), scale)
    return out


def copy_numbers(units: np.ndarray, scale: int, session: Session) -> list[Any]:
    """Exact decimal values for ``insert_rows``: on PostgreSQL as COPY text in exponent form (``1234500e-4``,
    which ``numeric`` reads exactly; formatting the integer is three times faster than a float's repr and exact at
    any size), on SQLite as ``numbers`` gives them. Only for columns with a declared scale (``numeric(p, s)``
    stores the value at the column's scale whatever its spelling); not for statement parameters."""
    if not is_postgres(session):
        return numbers(units, scale, session)
    suffix = f"e-{int(scale)}"
    return [f"{u}{suffix}" for u in np.asarray(units, dtype=np.int64).tolist()]


def dates(values: np.ndarray) -> list[str | None]:
    """datetime64 dates as 'YYYY-MM-DD' text (None for NaT), formatting each distinct date once."""
    days = np.asarray(values).astype("datetime64[D]")
    uniq, inverse = np.unique(days, return_inverse=True)
    text_ = np.array([None if np.isnat(d) else str(d) for d in uniq], dtype=object)
    return text_[inverse.reshape(-1)].tolist() if days.size else []


def timestamps(values: np.ndarray, session: Session) -> list[str | None]:
    """Naive-UTC datetime64 values as the backend's timestamp text (None for NaT), each distinct value once."""
    stamps = np.asarray(values).astype("datetime64[us]")
    if stamps.size == 0:
        return []
    uniq, inverse = np.unique(stamps, return_inverse=True)
    suffix = "+00:00" if is_postgres(session) else ""
    text_ = np.datetime_as_string(uniq, unit="us").astype(object)
    text_ = np.array([t.replace("T", " ") + suffix for t in text_.tolist()], dtype=object)
    text_[np.isnat(uniq)] = None
    return text_[inverse.reshape(-1)].tolist()


def timestamp(value: dt.datetime, session: Session) -> str:
    """One aware datetime as the backend's timestamp text."""
    utc = value.astimezone(dt.UTC).replace(tzinfo=None)
    return utc.isoformat(sep=" ", timespec="microseconds") + ("+00:00" if is_postgres(session) else "")


def insert_rows(
    session: Session,
    table: str,
    columns: Sequence[str],
    data: Sequence[Sequence[Any]],
    *,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Insert len(data[0]) rows given column by column. ``on_chunk(rows_done)`` runs between chunks (progress,
    cancel). Returns the number of rows."""
    n = len(data[0]) if data else 0
    if n == 0:
        return 0
    conn = session.connection()
    if is_postgres(session):
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for start in range(0, n, CHUNK):
                part = [values[start : start + CHUNK] for values in data]
                buffer = copy_text(part)
                if buffer is not None:
                    copy.write(buffer)
                else:  # a value of a type copy_text does not write: the driver formats the rows
                    for row in zip(*part, strict=True):
                        copy.write_row(row)
                if on_chunk is not None and start + CHUNK < n:
                    on_chunk(start + CHUNK)
        cursor.close()
    else:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        rows = list(zip(*data, strict=True))
        for start in range(0, n, CHUNK):
            conn.exec_driver_sql(sql, rows[start : start + CHUNK])
            if on_chunk is not None:
                on_chunk(min(start + CHUNK, n))
    if on_chunk is not None:
        on_chunk(n)
    return n


def copy_prepared(session: Session, table: str, columns: Sequence[str], buffer: str) -> None:
    """PostgreSQL: COPY rows that :func:`copy_text` already wrote (on another thread, while this one sends the
    previous ones: a pipeline's writer then only waits on the server)."""
    conn = session.connection()
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            copy.write(buffer)
    finally:
        cursor.close()


# COPY's text format: these characters are written as backslash escapes (as psycopg's write_row writes them).
_COPY_ESCAPES = {"\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r"}
_COPY_ESCAPE_RE = re.compile("[\b\t\n\v\f\r\\\\]")
_COPY_NULL = "\\N"


def _copy_column(values: Sequence[Any]) -> list[str] | None:
    """One column as COPY text fields, or None when it holds a value of a type not handled here."""
    kinds = set(map(type, values))
    nulls = type(None) in kinds
    kinds.discard(type(None))
    if kinds <= {str}:
        out = list(values)
        # One look over the whole column per character (substring search, many times faster than a regular
        # expression's character class): most text needs no escape at all.
        joined = _COLUMN_SEP.join(filter(None, out))
        if any(c in joined for c in _COPY_ESCAPES):
            out = _escaped(out, joined)
    elif kinds <= {int, float, Decimal}:  # bool is its own type here, not an int
        # As psycopg writes them: an int's str, a float's repr (str), a Decimal's str.
        out = [str(v) if v is not None else None for v in values] if nulls else list(map(str, values))
        joined = "".join(filter(None, out))
        if "n" in joined or "N" in joined:  # inf, nan, Infinity, NaN: left to the driver's own spelling
            return None
    else:
        return None
    if nulls:
        out = [_COPY_NULL if v is None else v for v in out]
    return out


def _copy_escape(match: re.Match[str]) -> str:
    return _COPY_ESCAPES[match.group(0)]


# Joins a column's texts for one pass of each escape over all of them: PostgreSQL text cannot hold a NUL, so no
# value has one (a value that does is escaped alone, and the server refuses it as it would have).
_COLUMN_SEP = "\x00"


def _escaped(values: list[Any], joined: str) -> list[Any]:
    """``values`` (texts and None) with COPY's backslash escapes, ``joined`` being their non-empty texts joined by
    ``_COLUMN_SEP``. Each escape is one ``str.replace`` over the whole column, backslashes first so the escapes'
    own backslashes stay single: a file's raw messages (a dozen line breaks each) took 1.78 s for 100,000 through
    a regular expression with a callback per match, 0.24 s so."""
    present = [i for i, v in enumerate(values) if v]
    if joined.count(_COLUMN_SEP) != len(present) - 1:  # a NUL inside a value
        return [_COPY_ESCAPE_RE.sub(_copy_escape, v) if v else v for v in values]
    for char, escape in _COPY_ESCAPES.items():  # the backslash is the first key
        if char in joined:
            joined = joined.replace(char, escape)
    out = list(values)
    for i, text_ in zip(present, joined.split(_COLUMN_SEP), strict=True):
        out[i] = text_
    return out


def copy_text(data: Sequence[Sequence[Any]]) -> str | None:
    """Rows given column by column as one buffer of PostgreSQL COPY text (tab-separated, ``\\N`` for NULL,
    backslash escapes), built a column at a time instead of the driver's Python call per row (psycopg's
    ``write_row``, the second largest Python cost under cProfile at 100,000 trades). None when a column holds a
    value of another type (the caller then lets the driver format the rows)."""
    columns = []
    for values in data:
        col = _copy_column(values)
        if col is None:
            return None
        columns.append(col)
    if not columns or not columns[0]:
        return ""
    return "\n".join(map("\t".join, zip(*columns, strict=True))) + "\n"


def execute_many(session: Session, sql: str, params: list[tuple[Any, ...]]) -> int:
    """An UPDATE (or other statement) with '?' placeholders for each parameter tuple; returns rows affected."""
    if not params:
        return 0
    conn = session.connection()
    if is_postgres(session):
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.executemany(sql.replace("?", "%s"), params, returning=False)
        count = cursor.rowcount
        cursor.close()
        return int(count)
    total = 0
    for start in range(0, len(params), CHUNK):
        result = conn.exec_driver_sql(sql, params[start : start + CHUNK])
        total += int(result.rowcount)
    return total


def execute_for_ids(session: Session, sql: str, ids: list[int], params: dict[str, Any] | None = None) -> int:
    """One statement for a list of ids: ``{ids}`` in ``sql`` becomes ``= ANY(array)`` on PostgreSQL and a
    ``json_each`` of one JSON parameter on SQLite (no limit on the number of ids, no statement per id)."""
    import json

    if is_postgres(session):
        stmt = text(sql.replace("IN {ids}", "= ANY(:ids)"))
        bind: Any = ids
    else:
        stmt = text(sql.replace("{ids}", "(SELECT value FROM json_each(:ids))"))
        bind = json.dumps(ids)
    result = session.execute(stmt, {**(params or {}), "ids": bind})
    return int(result.rowcount)  # type: ignore[attr-defined]
