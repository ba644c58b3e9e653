"""Columnar bulk reads: a SELECT straight into an Arrow table (or a pandas frame), without a Python tuple per row.

Both backends are read through Apache Arrow ADBC drivers on a connection of their own: SQLite with
``adbc_driver_sqlite`` (the database file opened read-only, ``file:...?mode=ro``; in WAL mode a reader sees what was
committed when its read transaction began, never another connection's uncommitted writes) **in a worker process**
(``columnar_worker.py``, at most ``MAX_WORKERS``, started once and kept): the driver links its own copy of SQLite,
and two copies in one process on one file break each other's locks ("locking protocol", crashes on the -shm file);
results come back as an Arrow IPC stream. PostgreSQL in process with
``adbc_driver_postgresql`` (binary COPY; the libpq URI of the engine without its ``+psycopg`` suffix, with a connection
timeout). Being a connection of its own, a columnar read sees **committed data only**: never use it for rows the
calling session has written and not yet committed. Where ADBC is not installed, cannot connect, or the database is an
in-memory SQLite, the read goes through the engine's own DBAPI connection (``sqlite3`` / ``psycopg``) and is logged
once with the reason: slower, same result.

Columns are converted by the *kind* the caller names (``kinds={"amount": "units:4", ...}``); a column without a kind
is returned as the driver gives it. The mapping:

============  ==========================================  ==========================================  ================
kind          SQLite stores / ADBC gives                  PostgreSQL stores / ADBC gives              result
============  ==========================================  ==========================================  ================
``int``       INTEGER / int64                             integer, bigint / int32, int64              int64
``text``      TEXT / string                               text, varchar / string                      large_string
``units:S``   Numeric as REAL (or INTEGER) / double       numeric / string (opaque ``numeric``)       int64 = x*10^S
``date``      ISO text ``YYYY-MM-DD`` / string            date / date32                               date32
``days``      as ``date``                                 as ``date``                                 int64 day number
``timestamp`` naive UTC text ``YYYY-MM-DD HH:MM:SS[.f]``  timestamptz / timestamp[us, UTC]            timestamp[us,
                                                                                                      UTC]
============  ==========================================  ==========================================  ================

Money stays exact (``units:S``: integer minor units at scale S, rounded half away from zero like SQL ``ROUND``):

- SQLite keeps a Numeric as a double of at most 15 significant digits; numpy multiplies by 10^S, adds a half away
  from zero and truncates, the arithmetic SQLite's own ``CAST(ROUND(x * 10^S) AS BIGINT)`` does, which recovers the
  exact decimal. A value whose scaled magnitude reaches 2^53 (where doubles stop holding every integer) is not
  guessed at: that read is redone through ``sqlite3``, which hands INTEGER-stored values over exactly.
- PostgreSQL's numeric arrives as its decimal text: cut to S+1 decimals (only that digit decides a half-away-from-zero
  rounding), cast to ``decimal128``, rounded to S decimals and its unscaled 128-bit integers taken as int64 (an
  overflow is an error, never a wrap). No float on the way.

On SQLite the driver infers each column's type from the values of the first batch, so a column that starts with
NULLs (or mixes INTEGER and REAL storage) would be mistyped: with kinds given, each column is ``CAST`` to its storage
class and one typed sentinel row is put ahead of the rows (``UNION ALL``) and dropped after the read.

Parameters: a dict for ``:name`` placeholders (rewritten to ``?`` / ``$n``); dates and aware datetimes are bound as
each backend stores them (ISO text, naive-UTC text on SQLite).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import logging
import os
import re
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .db import Database

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5
_SQLITE_BATCH_ROWS = 65_536  # driver default is 1,024: bigger batches cost less per row
_EXACT = 2**53  # doubles hold every integer below this exactly
_BIG = _EXACT / 10**8  # a number the largest scale (prices, 1e-8) would take past _EXACT
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_EPOCH = np.datetime64("1970-01-01", "D")
_warned: set[str] = set()
_warn_lock = threading.Lock()


def prefer_jemalloc() -> str:
    """Arrow's allocations (this process) from jemalloc rather than the wheel's default, mimalloc; returns the pool
    in use.

    mimalloc backs big allocations with transparent huge pages and gives freed memory back to the kernel after
    10 ms, so a columnar read of a million rows keeps faulting in fresh 2 MB pages that the kernel must zero
    (``clear_page_erms`` was a third of the samples under ``perf``). Measured on the PostgreSQL read of both sides
    of the 1M-record recon in a fresh process (two cores): system time 2.5-3.4 s with mimalloc, 0.9-1.1 s with
    jemalloc; wall time 5.1-5.9 s against 4.3-5.0 s. Left alone where the user chose a pool
    (``ARROW_DEFAULT_MEMORY_POOL``) or the wheel has no jemalloc."""
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        with contextlib.suppress(NotImplementedError):
            pa.set_memory_pool(pa.jemalloc_memory_pool())
    return pa.default_memory_pool().backend_name


prefer_jemalloc()


try:  # what a driver raises for a query it cannot run or type (a caller may then read another way)
    import adbc_driver_manager as _adbc_manager

    DRIVER_ERRORS: tuple[type[BaseException], ...] = (OSError, _adbc_manager.Error)
except ImportError:  # pragma: no cover - ADBC not installed: every read goes through the DBAPI driver
    DRIVER_ERRORS = (OSError,)


class ColumnarError(RuntimeError):
    """A value that cannot be converted exactly (overflow, unparsable date); the read is refused, not guessed."""


class _NeedsExact(Exception):
    """A SQLite double too large to round exactly: redo the read through sqlite3."""


def _note_fallback(key: str, reason: str) -> None:
    with _warn_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning("columnar reads fall back to the DBAPI driver (%s): %s", key, reason)


# --------------------------------------------------------------------------------------------------------------------
# Connections
# --------------------------------------------------------------------------------------------------------------------


def sqlite_uri(db: Database) -> str | None:
    """The read-only URI of a SQLite database file, or None for an in-memory database (not shareable)."""
    path = db.engine.url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    from urllib.parse import quote  # noqa: PLC0415

    return f"file:{quote(str(Path(path).resolve()))}?mode=ro"


def postgres_uri(db: Database) -> str:
    """libpq URI of the engine's database (password included, driver suffix dropped) with a connection timeout."""
    url = db.engine.url.set(drivername="postgresql")
    query = dict(url.query)
    query.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
    query.setdefault("application_name", "opsdesk-columnar")
    return url.set(query=query).render_as_string(hide_password=False)


class _WorkerQueryError(OSError):
    """The worker ran the query and the driver refused it (a clean exchange)."""


class _Worker:
    """One ``columnar_worker`` process (ADBC SQLite runs there, never in this process: see that module)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "app.services.columnar_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=str(Path(__file__).resolve().parents[2]),
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def query(self, uri: str, sql: str, args: tuple[Any, ...]) -> pa.Table:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        req = {"uri": uri, "sql": sql, "args": list(args), "batch_rows": _SQLITE_BATCH_ROWS}
        self.proc.stdin.write(json.dumps(req).encode() + b"\n")
        self.proc.stdin.flush()
        tag = self.proc.stdout.read(1)
        if tag == b"K":  # a stream, then its trailer: '.' when complete, else the error that cut it short
            table = pa.ipc.open_stream(self.proc.stdout).read_all()
            tag = self.proc.stdout.read(1)
            if tag == b".":
                return table
        if tag == b"E":
            (n,) = struct.unpack(">I", self.proc.stdout.read(4))
            raise _WorkerQueryError(self.proc.stdout.read(n).decode())
        raise ConnectionError("the columnar SQLite worker stopped")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        if self.proc.poll() is None:
            self.proc.kill()


_workers: list[_Worker] = []
_workers_lock = threading.Lock()
MAX_WORKERS = 2  # one per core of the target machine: two reads (the two sides of a recon) run in parallel


@contextlib.contextmanager
def _worker() -> Iterator[_Worker]:
    """A free worker (started on first use and kept for the life of the process)."""
    with _workers_lock:
        for w in list(_workers):
            if not w.alive():
                _workers.remove(w)
        free = next((w for w in _workers if w.lock.acquire(blocking=False)), None)
        if free is None and len(_workers) < MAX_WORKERS:
            free = _Worker()
            free.lock.acquire()
            _workers.append(free)
    if free is None:  # all busy: wait for the first one
        free = _workers[0]
        free.lock.acquire()
    clean = False
    try:
        yield free
        clean = True
    except _WorkerQueryError:
        clean = True  # the query failed, the exchange did not: the worker stays in step
        raise
    finally:
        if not clean:  # an exchange broken half-way leaves the pipe out of step: that worker goes
            free.stop()
            with _workers_lock, contextlib.suppress(ValueError):
                _workers.remove(free)
        free.lock.release()


@atexit.register
def _stop_workers() -> None:
    for w in _workers:
        w.stop()


class _SqliteWorkerConnection:
    """The part of an ADBC connection a Reader uses, served by a worker process."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        with _worker() as w:  # fail now (logged fallback) rather than at the first read
            w.query(uri, "SELECT 1", ())

    def query(self, sql: str, args: tuple[Any, ...]) -> pa.Table:
        with _worker() as w:
            return w.query(self.uri, sql, args)

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


class _PostgresConnection:
    """The part of an ADBC connection a Reader uses: ADBC's PostgreSQL driver in this process, through the driver
    manager's low-level API. Its DBAPI module imports ``pyarrow.dataset`` first (0.19 s, paid inside the first read
    of a process: the first recon run of a session, every ``opsdesk recon run``). One transaction, as the DBAPI
    connection would be: autocommit off, rolled back on close."""

    def __init__(self, uri: str) -> None:
        import adbc_driver_manager as adbc  # noqa: PLC0415
        import adbc_driver_postgresql as driver  # noqa: PLC0415

        self._adbc = adbc
        self._db = driver.connect(uri)
        try:
            self._conn = adbc.AdbcConnection(self._db)
            self._conn.set_autocommit(False)
        except BaseException:
            self._db.close()
            raise

    def query(self, sql: str, args: tuple[Any, ...]) -> pa.Table:
        stmt = self._adbc.AdbcStatement(self._conn)
        try:
            stmt.set_sql_query(sql)
            if args:  # positional $1, $2...: one row of parameters, as the DBAPI module binds them
                stmt.bind(
                    pa.record_batch([pa.array([a]) for a in args], names=[str(i) for i in range(len(args))])
                )
            handle, _ = stmt.execute_query()  # the handle must outlive the import of its address
            reader = pa.RecordBatchReader._import_from_c(handle.address)
            try:
                return reader.read_all()
            finally:
                reader.close()
        finally:
            stmt.close()

    def rollback(self) -> None:
        self._conn.rollback()

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            self._db.close()


def start_worker(db: Database) -> threading.Thread | None:
    """Start a SQLite columnar worker now, in the background, so the first bulk read (an SLA evaluation, a recon)
    does not pay its start (about 1.4 s: an interpreter and the ADBC driver). For an application's start-up and a
    CLI command that will read in bulk; nothing to do on PostgreSQL (in process) or an in-memory database. Returns
    the thread (joinable), or None when there is nothing to start; a failure is left to the first read to report."""
    if db.backend != "sqlite":
        return None
    uri = sqlite_uri(db)
    if uri is None:
        return None

    def run() -> None:
        with contextlib.suppress(Exception):
            _SqliteWorkerConnection(uri)  # starts (or finds) a worker and runs SELECT 1 through it

    thread = threading.Thread(target=run, name="columnar-worker-start", daemon=True)
    thread.start()
    return thread


def _adbc_connect(db: Database) -> Any:
    if db.backend == "sqlite":
        uri = sqlite_uri(db)
        if uri is None:
            raise ConnectionError("an in-memory SQLite database cannot be opened by a second connection")
        return _SqliteWorkerConnection(uri)
    if db.backend == "postgresql":
        return _PostgresConnection(postgres_uri(db))
    raise ConnectionError(f"no ADBC driver for {db.backend}")


class Reader:
    """Several columnar reads on one connection (PostgreSQL: one transaction; SQLite: each read its own snapshot,
    in a worker process)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._adbc: Any = None
        self._dbapi: Any = None
        self.via = "dbapi"
        try:
            self._adbc = _adbc_connect(db)
            self.via = "adbc"
        except Exception as err:  # noqa: BLE001 - any failure to connect means the DBAPI path, logged
            _note_fallback(db.description, f"{type(err).__name__}: {err}")

    def close(self) -> None:
        if self._adbc is not None:
            with contextlib.suppress(Exception):
                self._adbc.rollback()
            self._adbc.close()
            self._adbc = None
        if self._dbapi is not None:
            self._dbapi.close()
            self._dbapi = None

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------------------------------

    def arrow(
        self, sql: str, params: dict[str, Any] | None = None, kinds: dict[str, str] | None = None
    ) -> pa.Table:
        """Rows of ``sql`` as an Arrow table, columns converted per ``kinds`` (see the module docstring)."""
        kinds = kinds or {}
        if self._adbc is not None:
            try:
                table = self._read_adbc(sql, params, kinds)
                return _convert(table, kinds, self.db.backend)
            except _NeedsExact:
                log.info(
                    "columnar read redone through the DBAPI driver: a number beyond a double's exact range"
                )
        table = self._read_dbapi(sql, params)
        return _convert(table, kinds, self.db.backend)

    def frame(
        self, sql: str, params: dict[str, Any] | None = None, kinds: dict[str, str] | None = None
    ) -> pd.DataFrame:
        """Rows of ``sql`` as a pandas frame: int columns with NULLs as nullable ``Int64``, text as Arrow-backed
        strings, dates as ``datetime64[s]``, timestamps as ``datetime64[us, UTC]``."""
        return to_frame(self.arrow(sql, params, kinds))

    def _read_adbc(self, sql: str, params: dict[str, Any] | None, kinds: dict[str, str]) -> pa.Table:
        sqlite = self.db.backend == "sqlite"
        if sqlite and kinds:
            sql = _sqlite_typed(sql, kinds)
        query, args = _positional(sql, params, "sqlite" if sqlite else "postgresql")
        table = self._adbc.query(query, args)
        if sqlite and kinds:
            table = table.slice(1)  # the typed sentinel row
        return table

    def _read_dbapi(self, sql: str, params: dict[str, Any] | None) -> pa.Table:
        if self._dbapi is None:
            self._dbapi = self.db.engine.raw_connection()
        style = "sqlite" if self.db.backend == "sqlite" else "pyformat"
        query, args = _positional(sql, params, style)
        cur = self._dbapi.cursor()
        try:
            cur.execute(query, args)
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        finally:
            cur.close()
        cols = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        arrays = []
        for values in cols:
            try:
                arr = pa.array(values)
            except (pa.ArrowException, TypeError, ValueError):  # mixed storage classes in one SQLite column
                arr = pa.array([_as_text(v) for v in values], type=pa.large_string())
            if pa.types.is_floating(arr.type) and np.abs(arr.fill_null(0).to_numpy()).max(initial=0) >= _BIG:
                # Large numbers (INTEGER or REAL storage mixed): exact decimals, a REAL by its shortest repr.
                arr = pa.array([_exact(v) for v in values])
            arrays.append(arr)
        return pa.table(arrays, names=names) if names else pa.table({})


def _exact(v: Any) -> Decimal | None:
    if v is None:
        return None
    return Decimal(v) if isinstance(v, int) else Decimal(repr(float(v)))


def _as_text(v: Any) -> str | None:
    return None if v is None else str(v)


@contextlib.contextmanager
def reader(db: Database) -> Iterator[Reader]:
    """A :class:`Reader` for a block of reads, closed at the end."""
    r = Reader(db)
    try:
        yield r
    finally:
        r.close()


def read_arrow(
    db: Database, sql: str, params: dict[str, Any] | None = None, kinds: dict[str, str] | None = None
) -> pa.Table:
    """One columnar read on a connection of its own (see the module docstring for kinds and their types)."""
    with reader(db) as r:
        return r.arrow(sql, params, kinds)


def read_frame(
    db: Database, sql: str, params: dict[str, Any] | None = None, kinds: dict[str, str] | None = None
) -> pd.DataFrame:
    """:func:`read_arrow` as a pandas frame (see :meth:`Reader.frame`)."""
    return to_frame(read_arrow(db, sql, params, kinds))


def adbc_available(db: Database) -> bool:
    """Whether columnar reads of ``db`` go through ADBC (a connection is opened and closed to find out)."""
    with reader(db) as r:
        return r.via == "adbc"


# --------------------------------------------------------------------------------------------------------------------
# SQL rewriting
# --------------------------------------------------------------------------------------------------------------------


def _positional(sql: str, params: dict[str, Any] | None, style: str) -> tuple[str, tuple[Any, ...] | dict]:
    """``:name`` placeholders as the driver wants them; dates and datetimes as the backend stores them."""
    if style == "pyformat":  # psycopg through the fallback: named parameters as they are
        return _PARAM.sub(lambda m: f"%({m.group(1)})s", sql.replace("%", "%%")), dict(params or {})
    if not params:
        return sql, ()
    args: list[Any] = []

    def repl(m: re.Match[str]) -> str:
        args.append(_bind(params[m.group(1)], style))
        return "?" if style == "sqlite" else f"${len(args)}"

    return _PARAM.sub(repl, sql), tuple(args)


def _bind(value: Any, style: str) -> Any:
    if style != "sqlite":
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given as a parameter; attach a time zone first")
        return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


_SENTINEL = {"int": "0", "text": "''", "date": "'1970-01-01'", "days": "'1970-01-01'"}
_SQLITE_CAST = {"int": "INTEGER", "text": "TEXT", "date": "TEXT", "days": "TEXT", "timestamp": "TEXT"}


def _sqlite_typed(sql: str, kinds: dict[str, str]) -> str:
    """``sql`` with each kinded column cast to one storage class and a typed sentinel row first (see docstring).

    The query's own columns keep their order; a column without a kind is passed through as it is.
    """

    def cast(c: str, k: str) -> str:
        storage = "REAL" if k.startswith("units:") else _SQLITE_CAST[k]
        return f'CAST(q."{c}" AS {storage}) AS "{c}"'

    def sentinel(k: str) -> str:
        if k.startswith("units:"):
            return "0.5"
        if k == "timestamp":
            return "'1970-01-01 00:00:00'"
        return _SENTINEL[k]

    # Only the kinded columns are read (the result has exactly those, in the order of ``kinds``).
    cols = list(kinds)
    head = ", ".join(f'{sentinel(kinds[c])} AS "{c}"' for c in cols)
    body = ", ".join(cast(c, kinds[c]) for c in cols)
    return f"SELECT {head} UNION ALL SELECT * FROM (SELECT {body} FROM ({sql}) q)"


# --------------------------------------------------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------------------------------------------------


def _convert(table: pa.Table, kinds: dict[str, str], backend: str) -> pa.Table:
    if not kinds:
        return table
    missing = [c for c in kinds if c not in table.column_names]
    if missing:
        raise ColumnarError(f"the query returns no column {', '.join(missing)}")
    columns = []
    for name in kinds:
        arr = table.column(name).combine_chunks()
        if isinstance(arr.type, pa.BaseExtensionType):  # PostgreSQL numeric: opaque text
            arr = arr.storage
        columns.append(_column(arr, kinds[name], name))
    return pa.table(columns, names=list(kinds))


def _column(arr: pa.Array, kind: str, name: str) -> pa.Array:
    if arr.null_count == len(arr) and len(arr):
        arr = pa.nulls(len(arr))  # all NULL: whatever type the driver guessed, it holds nothing
    if kind == "int":
        return arr.cast(pa.int64())
    if kind == "text":
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_null(arr.type):
            return arr.cast(pa.large_string())
        return pa.array([_as_text(v) for v in arr.to_pylist()], type=pa.large_string())
    if kind in ("date", "days"):
        d = _dates(arr, name)
        return d.cast(pa.int32()).cast(pa.int64()) if kind == "days" else d
    if kind == "timestamp":
        return _timestamps(arr, name)
    if kind.startswith("units:"):
        return _units(arr, int(kind.split(":", 1)[1]), name)
    raise ValueError(f"unknown column kind {kind!r} for {name}")


def _dates(arr: pa.Array, name: str) -> pa.Array:
    if pa.types.is_date32(arr.type) or pa.types.is_null(arr.type):
        return arr.cast(pa.date32())
    if pa.types.is_timestamp(arr.type) or pa.types.is_date64(arr.type):
        return arr.cast(pa.date32())
    text = arr.cast(pa.string())
    try:  # ISO dates as they are (the usual case): no sliced copy of the text first
        return text.cast(pa.date32())
    except pa.ArrowInvalid:
        pass
    try:
        # ISO text; a timestamp written into a date column keeps only its date part.
        return pc.utf8_slice_codeunits(text, 0, 10).cast(pa.date32())
    except pa.ArrowInvalid as err:
        raise ColumnarError(f"{name}: not a date: {err}") from err


def _timestamps(arr: pa.Array, name: str) -> pa.Array:
    utc = pa.timestamp("us", "UTC")
    if pa.types.is_null(arr.type):
        return arr.cast(utc)
    if pa.types.is_timestamp(arr.type):
        return (
            pc.assume_timezone(arr.cast(pa.timestamp("us")), "UTC") if arr.type.tz is None else arr.cast(utc)
        )
    text = arr.cast(pa.string())
    try:  # SQLite: naive UTC text, as UTCDateTime stores it
        return pc.assume_timezone(text.cast(pa.timestamp("us")), "UTC")
    except pa.ArrowInvalid:
        pass
    try:  # text with an offset
        return text.cast(utc)
    except pa.ArrowInvalid:
        pass
    try:  # a mix of both, value by value
        parsed = pd.to_datetime(pd.Series(text.to_pylist(), dtype=object), utc=True, format="ISO8601")
        return pa.array(parsed.astype("datetime64[us, UTC]"), type=utc)
    except (ValueError, TypeError) as err:
        raise ColumnarError(f"{name}: not a timestamp: {err}") from err


def _units(arr: pa.Array, scale: int, name: str) -> pa.Array:
    t = arr.type
    factor = 10**scale
    if pa.types.is_null(t):
        return arr.cast(pa.int64())
    if pa.types.is_integer(t):
        values = arr.cast(pa.int64()).fill_null(0).to_numpy()
        if scale and np.abs(values).max(initial=0) >= (2**63 - 1) // factor:
            raise ColumnarError(f"{name}: a value overflows 64-bit units of 1e-{scale}")
        return pa.array(values * factor, mask=_nulls(arr), type=pa.int64())
    if pa.types.is_floating(t):  # SQLite's REAL: SQLite's own ROUND arithmetic, vectorised
        x = arr.cast(pa.float64()).fill_null(0).to_numpy() * float(factor)
        if np.abs(x).max(initial=0) >= _EXACT:
            raise _NeedsExact
        units = np.trunc(x + np.where(x < 0, -0.5, 0.5)).astype(np.int64)
        return pa.array(units, mask=_nulls(arr), type=pa.int64())
    if pa.types.is_decimal(t):
        return _decimal_units(arr, scale, name)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        # Decimal text: only the digit after the S-th decides a half-away-from-zero rounding, so cut the rest.
        cut = pc.replace_substring_regex(arr.cast(pa.string()), rf"(\.\d{{{scale + 1}}})\d+$", r"\1")
        try:
            dec = cut.cast(pa.decimal128(38, scale + 1))
        except pa.ArrowInvalid as err:
            raise ColumnarError(f"{name}: not an exact decimal: {err}") from err
        return _decimal_units(dec, scale, name)
    raise ColumnarError(f"{name}: a {t} column cannot be read as units of 1e-{scale}")


def _decimal_units(dec: pa.Array, scale: int, name: str) -> pa.Array:
    if dec.type.scale > scale:
        # half_towards_infinity rounds a half away from zero on both signs (SQL ROUND on numeric).
        dec = pc.round(dec, ndigits=scale, round_mode="half_towards_infinity")
    dec = dec.cast(pa.decimal128(38, scale))
    words = np.frombuffer(dec.buffers()[1], dtype=np.int64)[2 * dec.offset : 2 * (dec.offset + len(dec))]
    low, high = words[0::2], words[1::2]
    valid = ~_nulls(dec)
    if np.any(valid & (high != (low >> 63))):
        raise ColumnarError(f"{name}: a value overflows 64-bit units of 1e-{scale}")
    return pa.array(np.where(valid, low, 0), mask=~valid, type=pa.int64())


def _nulls(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.zeros(len(arr), dtype=bool)
    return arr.is_null().to_numpy(zero_copy_only=False)


def to_frame(table: pa.Table) -> pd.DataFrame:
    """A converted table as pandas: see :meth:`Reader.frame`.

    The columns are made first and the frame from all of them at once, without copies: a frame grown column by
    column copies each new column in (about 0.3 s for a million rows of eleven columns)."""
    columns: dict[str, Any] = {}
    for name in table.column_names:
        arr = table.column(name).combine_chunks()
        t = arr.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            columns[name] = pd.arrays.ArrowStringArray(arr.cast(pa.large_string()))
        elif pa.types.is_integer(t):
            if arr.null_count:
                values = arr.fill_null(0).to_numpy().astype(np.int64, copy=False)
            else:
                values = arr.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
            columns[name] = pd.arrays.IntegerArray(values, _nulls(arr))
        elif pa.types.is_date32(t):
            columns[name] = pd.Series(arr.cast(pa.timestamp("s")).to_pandas()).array
        else:
            columns[name] = pd.Series(arr.to_pandas()).array
    return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows), copy=False)
