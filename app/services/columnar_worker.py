"""A separate process that runs SQLite queries through ADBC and streams the results back as Arrow IPC.

Why a process: the ADBC SQLite driver links its own copy of SQLite. Two copies of SQLite in one process on the same
database file break each other's POSIX locks (a lock is per process, and closing any descriptor of the file drops
them all; see "How To Corrupt An SQLite Database File", section 2.2.1): the application's ``sqlite3`` connections
then fail with "locking protocol" or crash on the shared-memory file. In a process of its own the ADBC copy locks like
any other reader, and in WAL mode reads committed data only.

Protocol (one request at a time, on stdin/stdout): the parent writes one JSON line ``{"uri", "sql", "args",
"batch_rows"}``; the worker answers ``K``, an Arrow IPC stream and a trailer (``.`` when every row was read, or an
error as below, when SQLite failed half-way: the stream is then ended early and its rows are to be dropped), or,
when the query fails before its first batch, ``E`` followed by a 4-byte big-endian length and the UTF-8 error text.
The worker exits when its stdin closes (the parent went away).

The driver is used through ADBC's low-level API (not its DBAPI module, which imports pyarrow.dataset and costs a
worker about half a second more to start), and each batch is written to the pipe as soon as SQLite has produced
it, so the parent reads while the worker is still scanning.
"""

from __future__ import annotations

import contextlib
import json
import struct
import sys

MMAP_BYTES = 1 << 30


def serve() -> None:
    # The worker moves Arrow buffers and never needs NumPy, which pyarrow (optional since pyarrow 16) would import:
    # blocked, the worker starts in about 0.2 s instead of 0.5 s, and a run starts two of them.
    sys.modules.setdefault("numpy", None)  # type: ignore[assignment]
    import adbc_driver_manager as adbc  # noqa: PLC0415
    import adbc_driver_sqlite  # noqa: PLC0415
    import pyarrow as pa  # noqa: PLC0415

    out = sys.stdout.buffer

    def error(err: BaseException) -> None:
        msg = f"{type(err).__name__}: {err}".encode()
        out.write(b"E" + struct.pack(">I", len(msg)) + msg)
        out.flush()

    for line in sys.stdin.buffer:
        req = json.loads(line)
        handles: list = []
        try:
            reader = _execute(adbc, adbc_driver_sqlite, pa, req, handles)
            batch = _next(reader)  # most failures (SQL, types) show here, before anything is sent
        except Exception as err:  # noqa: BLE001 - every failure goes back to the parent, which decides
            _close(handles)
            error(err)
            continue
        out.write(b"K")
        failure: BaseException | None = None
        try:
            with pa.ipc.new_stream(out, reader.schema) as writer:
                try:
                    while batch is not None:
                        writer.write_batch(batch)
                        batch = _next(reader)
                except Exception as err:  # noqa: BLE001 - SQLite failed half-way: end the stream, then say so
                    failure = err
        finally:
            _close(handles)
        if failure is None:
            out.write(b".")
            out.flush()
        else:
            error(failure)


def _execute(adbc, driver, pa, req: dict, handles: list):  # noqa: ANN001, ANN202 - lazily imported modules
    """The query's batches (a pyarrow RecordBatchReader); every handle opened is appended to ``handles``."""
    db = driver.connect(req["uri"])
    handles.append(db)
    conn = adbc.AdbcConnection(db)
    handles.append(conn)
    # Pages straight from the OS cache instead of copied through SQLite's small page cache: a bulk scan of a
    # million rows steps about twice as fast (reading only; SQLite keeps WAL pages apart).
    pragma = adbc.AdbcStatement(conn)
    handles.append(pragma)
    pragma.set_sql_query(f"PRAGMA mmap_size = {MMAP_BYTES}")
    handle, _ = pragma.execute_query()  # the handle must outlive the import of its address
    pa.RecordBatchReader._import_from_c(handle.address).read_all()
    stmt = adbc.AdbcStatement(conn)
    handles.append(stmt)
    stmt.set_options(**{"adbc.sqlite.query.batch_rows": str(req["batch_rows"])})
    stmt.set_sql_query(req["sql"])
    args = req["args"]
    if args:
        names = [f"p{i}" for i in range(len(args))]
        stmt.bind(pa.record_batch([pa.array([a]) for a in args], names=names))
    handle, _ = stmt.execute_query()
    reader = pa.RecordBatchReader._import_from_c(handle.address)
    handles.append(reader)  # closed first (handles close in reverse): it still points into the statement
    return reader


def _next(reader):  # noqa: ANN001, ANN202
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None


def _close(handles: list) -> None:
    for h in reversed(handles):
        with contextlib.suppress(Exception):  # closing what may be half-open
            h.close()


if __name__ == "__main__":
    serve()
