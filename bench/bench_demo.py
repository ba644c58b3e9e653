"""Benchmark of the demo-book build: ``build_demo`` for N trades on SQLite and PostgreSQL, beside a reference measured
in the same run, the raw time to load the same number of trade rows with plain ``executemany`` (SQLite) or ``COPY``
(PostgreSQL) with no generation at all.

    .venv/bin/python bench/bench_demo.py --trades 100000,1000000 --backend sqlite,postgresql

Each measurement runs in its own process (clean memory figure, cold calendar cache, as ``opsdesk demo`` runs) on a
freshly migrated database: a SQLite file in a temporary directory, or a database created on OPSDESK_TEST_PG_URL or
on a throwaway server started from the PostgreSQL binaries (tests/pgserver.py).

The demo figure covers everything ``opsdesk demo`` does: calendars, generation, six argon2 users, the load of
every table (trades plus versions, instructions, movements, positions, statements ...), the index rebuild and the
commit. The reference loads only the trades table's rows (pre-rendered, timed without rendering), into the same
schema with the same indexes, with the reference-data foreign keys left NULL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _database(backend: str, admin_url: str | None, workdir: str) -> tuple[object, str | None]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from app.services import schema
    from app.services.db import Database

    if backend == "sqlite":
        db = Database(f"sqlite:///{Path(workdir) / f'bench-{uuid.uuid4().hex[:6]}.sqlite'}")
        schema.upgrade(db)
        return db, None
    assert admin_url
    name = f"bench_demo_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    db = Database(make_url(admin_url).set(database=name).render_as_string(hide_password=False))
    schema.upgrade(db)
    return db, name


def _drop(admin_url: str | None, name: str | None) -> None:
    if not name or not admin_url:
        return
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """CPU time of this process (user + system): SQLite works in-process, so on a shared, busy machine this is the
    steadier figure for SQLite; PostgreSQL's own work runs in the server and is not in it."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child_demo(backend: str, trades: int, admin_url: str | None, workdir: str, today: dt.date) -> dict:
    from app.services.demo import build_demo
    from app.services.permissions import SYSTEM

    db, name = _database(backend, admin_url, workdir)
    try:
        started, cpu = time.perf_counter(), _cpu_seconds()
        summary = build_demo(db, SYSTEM, trades=trades, seed=1, password="bench-password", today=today)
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
        rows = sum(summary.counts.values())
    finally:
        db.dispose()  # type: ignore[attr-defined]
        _drop(admin_url, name)
    return {"seconds": seconds, "cpu": cpu, "rows": rows, "peak_mb": _peak_mb()}


def child_reference(backend: str, trades: int, admin_url: str | None, workdir: str, today: dt.date) -> dict:
    """Load ``trades`` pre-rendered trade rows with the driver's plainest bulk path; time only the load."""
    from sqlalchemy import insert

    from app.models import Base
    from app.services import demo

    book = demo.generate_book(trades=trades, seed=1, today=today)
    frame = next(f for f in book.frames if f.table == "trades")
    # No reference data in this database: the foreign keys to it are left NULL.
    for col in ("instrument_id", "account_id", "counterparty_id", "our_ssi_id", "their_ssi_id"):
        frame.cols[col] = ("const", None)
    db, name = _database(backend, admin_url, workdir)
    table = Base.metadata.tables["trades"]
    cols = list(frame.cols)
    seconds = 0.0
    try:
        with db.engine.connect() as conn:  # type: ignore[attr-defined]
            raw = conn.connection.driver_connection
            if backend == "sqlite":
                sql = str(insert(table).compile(dialect=conn.dialect, column_keys=cols))
                raw.execute("BEGIN")
                for a in range(0, frame.n, demo.CHUNK):
                    rows = list(frame.rows(a, min(a + demo.CHUNK, frame.n)))
                    t0 = time.perf_counter()
                    raw.executemany(sql, rows)
                    seconds += time.perf_counter() - t0
                t0 = time.perf_counter()
                raw.execute("COMMIT")
                seconds += time.perf_counter() - t0
            else:
                raw.execute("SET TIME ZONE 'UTC'")
                with raw.cursor() as cur:
                    copy_cm = cur.copy(f"COPY trades ({', '.join(cols)}) FROM STDIN")
                    copy = copy_cm.__enter__()
                    for a in range(0, frame.n, demo.CHUNK):
                        rows = list(frame.rows(a, min(a + demo.CHUNK, frame.n)))
                        t0 = time.perf_counter()
                        for row in rows:
                            copy.write_row(row)
                        seconds += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    copy_cm.__exit__(
                        None, None, None
                    )  # sends the end of the copy; the server finishes the load
                    raw.commit()
                    seconds += time.perf_counter() - t0
    finally:
        db.dispose()  # type: ignore[attr-defined]
        _drop(admin_url, name)
    return {"seconds": seconds, "peak_mb": _peak_mb()}


def _run_child(
    kind: str, backend: str, trades: int, admin_url: str | None, workdir: str, today: dt.date
) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--backend",
        backend,
        "--trades",
        str(trades),
        "--workdir",
        workdir,
        "--today",
        today.isoformat(),
    ]
    if admin_url:
        cmd += ["--admin-url", admin_url]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{kind} {backend} {trades} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trades", default="100000,1000000", help="comma-separated trade counts")
    p.add_argument("--backend", default="sqlite,postgresql", help="sqlite, postgresql or both")
    p.add_argument(
        "--today", type=dt.date.fromisoformat, default=dt.date(2026, 11, 30), help="the book's date"
    )
    p.add_argument("--child", choices=["demo", "reference"], help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--admin-url", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:
        fn = child_demo if args.child == "demo" else child_reference
        result = fn(args.backend, int(args.trades), args.admin_url, args.workdir, args.today)
        print(json.dumps(result))
        return

    counts = [int(x) for x in args.trades.split(",") if x]
    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    server = None
    admin_url = None
    if "postgresql" in backends:
        admin_url = os.environ.get("OPSDESK_TEST_PG_URL")
        if admin_url:
            admin_url = admin_url.replace("postgresql://", "postgresql+psycopg://", 1)
        else:
            from tests.pgserver import TempPostgres

            server = TempPostgres()
            admin_url = server.start()
    print(
        f"demo build vs raw trade load, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, book date {args.today}"
    )
    print(
        f"{'backend':<11} {'trades':>9} {'demo build':>11} {'(cpu)':>8} {'rows':>11} {'peak RSS':>9}   "
        f"{'raw load':>9} {'(trades only)':<14} {'ratio':>6}"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="opsdesk-bench-") as workdir:
            for backend in backends:
                for n in counts:
                    d = _run_child("demo", backend, n, admin_url, workdir, args.today)
                    r = _run_child("reference", backend, n, admin_url, workdir, args.today)
                    raw = "executemany" if backend == "sqlite" else "COPY"
                    print(
                        f"{backend:<11} {n:>9,} {d['seconds']:>10.1f}s {d['cpu']:>7.1f}s {d['rows']:>11,} "
                        f"{d['peak_mb']:>7.0f}MB"
                        f"   {r['seconds']:>8.1f}s {raw:<14} {d['seconds'] / r['seconds']:>5.1f}x",
                        flush=True,
                    )
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
