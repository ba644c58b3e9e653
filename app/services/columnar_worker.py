"""A separate process that runs SQLite queries through ADBC and streams the results back as Arrow IPC.

Why a process: the ADBC SQLite driver links its own copy of SQLite. Two copies of SQLite in one process on the same
database file break each other's POSIX locks (a lock is per process, and closing any descriptor of the file drops
them all; see "How To Corrupt An SQLite Database File", section 2.2.1): the application's ``sqlite3`` connections
then fail with "locking protocol" or crash on the shared-memory file. In a process of its own the ADBC copy locks like
any other reader, and in WAL mode reads committed data only.

Protocol (one request at a time, on stdin/stdout): the parent writes one JSON line ``{"uri", "sql", "args",
"batch_rows"}``; the worker answers ``K`` followed by an Arrow IPC stream, or ``E`` followed by a 4-byte big-endian
length and the UTF-8 error text. The worker exits when its stdin closes (the parent went away).
"""

from __future__ import annotations

import json
import struct
import sys

MMAP_BYTES = 1 << 30


def serve() -> None:
    import adbc_driver_sqlite.dbapi as adbc_sqlite  # noqa: PLC0415
    import pyarrow as pa  # noqa: PLC0415

    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        req = json.loads(line)
        try:
            with adbc_sqlite.connect(req["uri"]) as conn, conn.cursor() as cur:
                # Pages straight from the OS cache instead of copied through SQLite's small page cache: a bulk scan
                # of a million rows steps about twice as fast (reading only; SQLite keeps WAL pages apart).
                cur.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
                cur.fetchall()
                cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(req["batch_rows"])})
                cur.execute(req["sql"], tuple(req["args"]) or None)
                table = cur.fetch_arrow_table()
        except Exception as err:  # noqa: BLE001 - every failure goes back to the parent, which decides
            msg = f"{type(err).__name__}: {err}".encode()
            out.write(b"E" + struct.pack(">I", len(msg)) + msg)
            out.flush()
            continue
        out.write(b"K")
        with pa.ipc.new_stream(out, table.schema) as writer:
            writer.write_table(table)
        out.flush()


if __name__ == "__main__":
    serve()
