"""Import throughput: a generated N-row trade CSV through the full capture pipeline, beside the raw load of the rows.

For each backend (SQLite file; PostgreSQL from OPSDESK_TEST_PG_URL or a throwaway server started with
tests/pgserver.TempPostgres), in the same run:

1. a database with the demo reference data (``demo.build_demo`` with one trade: markets, ~300 instruments, 50
   counterparties, 31 accounts, 850 SSIs) is prepared once as a template;
2. **import**: ``capture.import_trades`` on a copy of the template: file read, parse, exact decimal conversion,
   duplicate check, full validation (identifiers, reference data, price tolerance, calendars) and enrichment
   (settlement dates, SSIs, fees, amounts), bulk write of trades, versions and exceptions, audit entry;
3. **raw**: the very rows the import wrote (trades, trade_versions, trade_exceptions, read back from the imported
   database) loaded into another copy of the template: SQLite ``executemany`` of the tuples, PostgreSQL ``COPY``
   with psycopg ``write_row``; no parsing, no validation. Once plainly, into the tables with all their indexes and
   foreign keys (trades has 20 indexes, 18 of them non-unique for the blotter's sort columns and the foreign-key
   columns, and 7 foreign keys), and, when the import deferred them (a file that at least doubles the table, see
   capture/bulk.py ``deferred_indexes``), once more with the same deferral, so the last ratio is what the pipeline
   costs on top of the same write.

   The import's stages are listed with their wall and CPU seconds (this process and, for a local PostgreSQL
   server, the server's processes): on a shared machine the CPU time is the work, the wall clock adds the waits.

4. ``--phases``: where the write's time goes. The same rows are loaded again step by step into a copy of the
   template (bare heap, keys, the table as defined, each secondary index, the search index, each PostgreSQL foreign
   key, versions, exceptions, commit), each step with its wall time and its CPU time: this process's and, for a
   local PostgreSQL server, the server's processes'. On a shared machine the wall clock also measures the
   neighbours; the CPU time measures the work. The import itself is also given in trades per CPU-second.

    .venv/bin/python bench/bench_import.py              # 1,000,000 rows, both backends
    .venv/bin/python bench/bench_import.py --rows 100000 --backend sqlite
    .venv/bin/python bench/bench_import.py --rows 200000 --phases
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app.services import calendars, demo, schema, trade_search  # noqa: E402
from app.services.capture import bulk, import_trades  # noqa: E402
from app.services.capture.bulk import bulk_write, deferred_indexes  # noqa: E402
from app.services.db import Database  # noqa: E402
from app.services.permissions import SYSTEM  # noqa: E402

TODAY = dt.date(2026, 11, 20)
TABLES = ("trades", "trade_versions", "trade_exceptions")


def generate_csv(path: Path, rows: int, db: Database, seed: int) -> None:
    """A realistic trade file against the demo reference data: ~97% clean, ~3% with a repair reason."""
    rng = np.random.default_rng(seed)
    with db.engine.connect() as c:
        inst = c.execute(
            text(
                "SELECT i.isin, i.currency, i.reference_price, i.asset_class, m.id, m.calendar_code "
                "FROM instruments i JOIN markets m ON m.id = i.market_id WHERE i.is_active AND i.asset_class <> 'FUTURE'"
            )
        ).all()
        accounts = [
            r[0] for r in c.execute(text("SELECT code FROM accounts WHERE kyc_status = 'APPROVED'")).all()
        ]
        cover = c.execute(
            text("SELECT c.code, s.market_id FROM ssis s JOIN counterparties c ON c.id = s.counterparty_id")
        ).all()
    by_market: dict[int, list[str]] = {}
    for code, mid in cover:
        by_market.setdefault(int(mid), []).append(code)
    inst = [r for r in inst if int(r[4]) in by_market]
    pick = rng.integers(0, len(inst), rows)
    isin = np.array([r[0] for r in inst], dtype=object)[pick]
    ccy = np.array([r[1] for r in inst], dtype=object)[pick]
    ref_px = np.array([float(r[2]) for r in inst])[pick]
    market = np.array([int(r[4]) for r in inst])[pick]
    cal_code = {int(r[4]): r[5] for r in inst}
    # Business days of each market in the last two weeks.
    days: dict[int, np.ndarray] = {}
    for mid, code in cal_code.items():
        cal = calendars.get_calendar(code)
        days[mid] = np.array(cal.previous_business_days(TODAY, 8) + [TODAY], dtype="datetime64[D]")
    trade_date = np.empty(rows, dtype="datetime64[D]")
    cpty = np.empty(rows, dtype=object)
    for mid in np.unique(market):
        m = market == mid
        trade_date[m] = days[int(mid)][rng.integers(0, len(days[int(mid)]), int(m.sum()))]
        codes = np.array(by_market[int(mid)], dtype=object)
        cpty[m] = codes[rng.integers(0, len(codes), int(m.sum()))]
    account = np.array(accounts, dtype=object)[rng.integers(0, len(accounts), rows)]
    side = np.where(rng.random(rows) < 0.5, "BUY", "SELL")
    qty = (rng.integers(1, 50, rows) * 100).astype(np.int64)
    price = np.round(ref_px * (1 + rng.normal(0, 0.01, rows)), 2)
    # ~3% to repair: fat fingers, unknown accounts.
    fat = rng.random(rows) < 0.02
    price[fat] = np.round(price[fat] * 10, 2)
    bad_acct = rng.random(rows) < 0.01
    account[bad_acct] = "UNKNOWN-1"
    secs = rng.integers(9 * 3600 + 1800, 16 * 3600, rows)
    times = [f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}" for s in secs.tolist()]
    price_text = [f"{p:.2f}" for p in price.tolist()]
    dates = trade_date.astype(str)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(
            "trade_ref,order_ref,isin,account,counterparty,side,quantity,price,currency,trade_date,trade_time\n"
        )
        chunk = []
        for i in range(rows):
            chunk.append(
                f"B{seed}-{i:09d},O{i // 3:09d},{isin[i]},{account[i]},{cpty[i]},{side[i]},{qty[i]},"
                f"{price_text[i]},{ccy[i]},{dates[i]},{times[i]}\n"
            )
            if len(chunk) == 100_000:
                fh.write("".join(chunk))
                chunk = []
        fh.write("".join(chunk))


def columns(conn, table: str) -> list[str]:  # type: ignore[no-untyped-def]
    if conn.dialect.name == "postgresql":
        q = text(
            # Generated columns (the stored integer units of migration 0019) are computed, not loaded: COPY refuses
            # them. SQLite's table_info leaves them out already.
            "SELECT column_name FROM information_schema.columns WHERE table_name = :t AND is_generated = 'NEVER' "
            "ORDER BY ordinal_position"
        )
        return [r[0] for r in conn.execute(q, {"t": table})]
    return [r[1] for r in conn.exec_driver_sql(f"PRAGMA table_info({table})")]


def read_back(db: Database, floor: dict[str, int]) -> dict[str, tuple[list[str], list[tuple]]]:
    """The rows the import wrote, exactly as stored (driver values), per table."""
    out = {}
    with db.engine.connect() as c:
        for t in TABLES:
            cols = columns(c, t)
            if db.is_postgres:
                raw = c.connection.driver_connection
                rows = []
                with (
                    raw.cursor() as cur,
                    cur.copy(
                        f"COPY (SELECT {', '.join(cols)} FROM {t} WHERE id > {floor[t]}) TO STDOUT"
                    ) as cp,
                ):
                    for row in cp.rows():
                        rows.append(row)
            else:
                rows = [
                    tuple(r)
                    for r in c.exec_driver_sql(f"SELECT {', '.join(cols)} FROM {t} WHERE id > {floor[t]}")
                ]
            out[t] = (cols, rows)
    return out


def raw_load(db: Database, data: dict[str, tuple[list[str], list[tuple]]], *, defer: bool) -> float:
    """Load the prepared rows with the backend's bulk path, in one transaction; seconds. ``defer``: rebuild the
    trades indexes after the load as the import does for a file that at least doubles the table."""
    started = time.perf_counter()
    rows = len(data["trades"][1])
    with db.write() as s, bulk_write(s, rows=rows):  # the same connection settings as the import
        conn = s.connection()
        for t in TABLES:
            cols, rows = data[t]
            if not rows:
                continue
            # The search index is kept the way the import keeps it (one INSERT … SELECT after the rows, not a
            # trigger per row), so the reference pays the same index upkeep and no more.
            search = trade_search.bulk_inserts(s) if t == "trades" else contextlib.nullcontext()
            with (
                search,
                deferred_indexes(s, t, len(rows) if defer and t in ("trades", "trade_versions") else 0),
            ):
                if db.is_postgres:
                    cur = conn.connection.driver_connection.cursor()
                    with cur.copy(f"COPY {t} ({', '.join(cols)}) FROM STDIN") as cp:
                        for row in rows:
                            cp.write_row(row)
                    cur.close()
                else:
                    sql = f"INSERT INTO {t} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                    for i in range(0, len(rows), 50_000):
                        conn.exec_driver_sql(sql, rows[i : i + 50_000])
    return time.perf_counter() - started


def _copy_or_insert(conn, table: str, cols: list[str], rows: list[tuple], pg: bool) -> None:  # type: ignore[no-untyped-def]
    if pg:
        cur = conn.connection.driver_connection.cursor()
        with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)
        cur.close()
    else:
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        for i in range(0, len(rows), 50_000):
            conn.exec_driver_sql(sql, rows[i : i + 50_000])


def _proc_cpu(pid: int) -> tuple[int, float]:
    """(parent pid, CPU seconds) of a process from /proc (0, 0.0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0, 0.0
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_meter(db: Database):  # type: ignore[no-untyped-def]
    """A function giving the CPU seconds used so far by this process and, for a PostgreSQL server on this machine,
    by the server's processes (backends, parallel workers, WAL writer, checkpointer), as a snapshot; ``cpu_since``
    turns two snapshots into seconds. On a shared machine the wall clock also measures the neighbours; CPU time
    measures the work. A server process that ends between the snapshots (a parallel worker) takes its time with it,
    so PostgreSQL's figure is a lower bound."""
    postmaster = 0
    if db.is_postgres:
        with db.engine.connect() as c:
            backend = int(c.exec_driver_sql("SELECT pg_backend_pid()").scalar() or 0)
        postmaster = _proc_cpu(backend)[0]

    def snapshot() -> dict[int, float]:
        out = {0: time.process_time()}
        if postmaster > 1:  # a local server (a remote one's CPU is not visible from here)
            out[postmaster] = _proc_cpu(postmaster)[1]
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    parent, secs = _proc_cpu(int(entry.name))
                    if parent == postmaster:
                        out[int(entry.name)] = secs
        return out

    return snapshot


def cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two cpu_meter snapshots, over the processes alive at the second."""
    return sum(secs - before.get(pid, 0.0) for pid, secs in after.items())


def phases(make_db, data: dict[str, tuple[list[str], list[tuple]]], trades: int) -> None:  # type: ignore[no-untyped-def]
    """Where the write time goes: the same rows the import wrote, loaded step by step in one transaction into a
    copy of the template. First into a bare copy of trades (no index, no key, no constraint: the heap alone), then
    into trades with only its primary key and unique trade_ref (every other index, foreign key and the search
    trigger dropped, as the import's deferral does); then each secondary index, the search index and each foreign
    key built one at a time; then the versions, the exceptions and the commit."""
    db = make_db("phases")
    pg = db.is_postgres
    out: list[tuple[str, float, float]] = []
    cpu = cpu_meter(db)

    def timed(label: str, fn) -> None:  # type: ignore[no-untyped-def]
        t, c = time.perf_counter(), cpu()
        fn()
        out.append((label, time.perf_counter() - t, cpu_since(c, cpu())))

    s = (
        db._write_sessions()
    )  # the import's kind of session (SQLite: BEGIN IMMEDIATE), committed by hand below
    try:
        s.begin()
        with bulk_write(s, rows=len(data["trades"][1])):
            conn = s.connection()
            cols, rows = data["trades"]
            if pg:
                conn.exec_driver_sql("CREATE TABLE trades_bare (LIKE trades INCLUDING DEFAULTS)")
            else:
                conn.exec_driver_sql("CREATE TABLE trades_bare AS SELECT * FROM trades WHERE 0")
            timed(
                "(for comparison) trades: heap only (no index, no key)",
                lambda: _copy_or_insert(conn, "trades_bare", cols, rows, pg),
            )
            conn.exec_driver_sql("DROP TABLE trades_bare")
            # The same with the primary key and the unique trade_ref only: what the keys cost, and (SQLite, whose
            # foreign keys cannot be dropped) what its per-row foreign-key look-ups add in the next line.
            if pg:
                conn.exec_driver_sql("CREATE TABLE trades_keys (LIKE trades INCLUDING DEFAULTS)")
                conn.exec_driver_sql("ALTER TABLE trades_keys ADD PRIMARY KEY (id), ADD UNIQUE (trade_ref)")
            else:
                others = ", ".join(c for c in cols if c not in ("id", "trade_ref"))
                conn.exec_driver_sql(
                    f"CREATE TABLE trades_keys (id INTEGER PRIMARY KEY, trade_ref VARCHAR(64) UNIQUE, {others})"
                )
            timed(
                "(for comparison) trades: primary key + unique trade_ref only",
                lambda: _copy_or_insert(conn, "trades_keys", cols, rows, pg),
            )
            conn.exec_driver_sql("DROP TABLE trades_keys")
            if not pg:
                # trades' own definition (types, checks, keys) without its foreign keys: the next line's difference
                # is SQLite's per-row look-ups in the parent tables.
                ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'trades'").scalar()
                ddl = re.sub(r",\s*CONSTRAINT \w+ FOREIGN KEY\([^)]*\) REFERENCES \w+ \(id\)", "", str(ddl))
                conn.exec_driver_sql(ddl.replace("CREATE TABLE trades", "CREATE TABLE trades_nofk", 1))
                timed(
                    "(for comparison) trades: its definition without foreign keys",
                    lambda: _copy_or_insert(conn, "trades_nofk", cols, rows, pg),
                )
                conn.exec_driver_sql("DROP TABLE trades_nofk")
            indexes = bulk._secondary_indexes(s, "trades")
            fks = bulk._foreign_keys(s, "trades") if pg else []
            trigger = None
            if pg:
                conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
                for name, _ in fks:
                    conn.exec_driver_sql(f'ALTER TABLE trades DROP CONSTRAINT "{name}"')
            else:
                trigger = conn.exec_driver_sql(
                    f"SELECT sql FROM sqlite_master WHERE name = '{trade_search.INSERT_TRIGGER}'"
                ).scalar()
                if trigger:
                    conn.exec_driver_sql(f"DROP TRIGGER {trade_search.INSERT_TRIGGER}")
            for name, _ in indexes:
                conn.exec_driver_sql(f'DROP INDEX "{name}"')
            timed(
                "trades table: keys, check" + ("" if pg else ", per-row foreign-key look-ups"),
                lambda: _copy_or_insert(conn, "trades", cols, rows, pg),
            )
            for name, sql in indexes:
                timed(f"index {name}", lambda sql=sql: conn.exec_driver_sql(sql))
            if trigger:
                search_cols = ", ".join(trade_search.SEARCH_COLUMNS)
                fts = trade_search.FTS_TABLE
                # As trade_search.bulk_inserts does it, with the larger buffer; then, for comparison, emptied and
                # indexed again with FTS5's default 1 MiB buffer.
                for label, size in (
                    (
                        f"search index: FTS5, {trade_search.BULK_HASH_BYTES >> 20} MiB buffer",
                        trade_search.BULK_HASH_BYTES,
                    ),
                    (
                        "(for comparison) search index, FTS5's default 1 MiB buffer",
                        trade_search.FTS5_HASH_BYTES,
                    ),
                ):
                    conn.exec_driver_sql(f"INSERT INTO {fts}({fts}) VALUES ('delete-all')")
                    conn.exec_driver_sql(f"INSERT INTO {fts}({fts}, rank) VALUES ('hashsize', {size})")
                    timed(
                        label,
                        lambda: conn.exec_driver_sql(
                            f"INSERT INTO {fts}(rowid, {search_cols}) SELECT id, {search_cols} FROM trades"
                        ),
                    )
                conn.exec_driver_sql(
                    f"INSERT INTO {fts}({fts}, rank) VALUES ('hashsize', {trade_search.FTS5_HASH_BYTES})"
                )
                conn.exec_driver_sql(str(trigger))
            for name, definition in fks:
                timed(
                    f"foreign key {name}",
                    lambda n=name, d=definition: conn.exec_driver_sql(
                        f'ALTER TABLE trades ADD CONSTRAINT "{n}" {d}'
                    ),
                )
            for t in ("trade_versions", "trade_exceptions"):
                vcols, vrows = data[t]
                if vrows:
                    with deferred_indexes(s, t, len(vrows) if t == "trade_versions" else 0):
                        timed(
                            f"{t}: {len(vrows):,} rows",
                            lambda c=vcols, r=vrows, t=t: _copy_or_insert(conn, t, c, r, pg),
                        )
            if not pg:
                timed(
                    "(for comparison) PRAGMA foreign_key_check(trades)",
                    lambda: conn.exec_driver_sql("PRAGMA foreign_key_check(trades)").all(),
                )
        timed("commit", s.commit)
    finally:
        s.close()
    db.dispose()
    # The "(for comparison)" lines are extra loads or builds, not part of the import's write: left out of the total.
    total = sum(c for label, _, c in out if not label.startswith("("))
    who = "this process + the PostgreSQL server" if pg else "this process"
    print(
        f"{'':<10} write-path breakdown ({trades:,} trades): wall s, CPU s ({who}), trades per CPU-second were "
        "this the only cost, share of the write's CPU"
    )
    for label, secs, used in out:
        share = "" if label.startswith("(") else f"{100 * used / total:5.1f}%"
        print(f"{'':<12} {label:<62} {secs:6.2f} {used:6.2f}  {trades / max(used, 1e-9):>11,.0f}/s  {share}")
    wall = sum(w for label, w, _ in out if not label.startswith("("))
    print(
        f"{'':<12} {'total (without the comparisons)':<62} {wall:6.2f} {total:6.2f}  {trades / total:>11,.0f}/s"
    )


def floors(db: Database) -> dict[str, int]:
    with db.engine.connect() as c:
        return {
            t: int(c.execute(text(f"SELECT coalesce(max(id), 0) FROM {t}")).scalar() or 0) for t in TABLES
        }


def run_backend(  # type: ignore[no-untyped-def]
    name: str, make_db, csv_path: Path, rows: int, show_phases: bool = False, raw: str = "both"
) -> dict[str, float]:
    imp_db = make_db("import")
    floor = floors(imp_db)
    stages: list[tuple[float, str]] = []
    stage_cpu: list[float] = []  # CPU seconds (this process + a local server) at each stage
    cpu = cpu_meter(imp_db)
    c0 = cpu()
    t0 = time.perf_counter()

    def progress(done: int, total: int, label: str) -> None:
        stages.append((time.perf_counter() - t0, label))
        stage_cpu.append(cpu_since(c0, cpu()))

    report = import_trades(imp_db, SYSTEM, csv_path, today=TODAY, progress=progress)
    import_s = time.perf_counter() - t0
    import_cpu = cpu_since(c0, cpu())
    data = read_back(imp_db, floor)
    imp_db.dispose()
    deferred = any(s.startswith("Rebuilding") for _, s in stages)
    raw_s = raw2_s = None
    if raw == "both":
        raw_db = make_db("raw")
        raw_s = raw_load(raw_db, data, defer=False)
        raw_db.dispose()
    if raw != "none" and deferred:
        raw2_db = make_db("raw2")
        raw2_s = raw_load(raw2_db, data, defer=True)
        raw2_db.dispose()
    written = {t: len(data[t][1]) for t in TABLES}
    print(
        f"{name:<10} import {rows:>9,} rows: {import_s:8.2f} s = {rows / import_s:>9,.0f} trades/s  "
        f"(accepted {report.accepted:,}, repair {report.repair:,}, rejected {report.rejected:,}"
        f"{'; indexes rebuilt after the load' if deferred else ''})"
    )
    print(
        f"{'':<10} CPU time of the import ({'this process + the PostgreSQL server' if imp_db.is_postgres else 'this process'}): "
        f"{import_cpu:8.2f} s = {rows / import_cpu:>9,.0f} trades per CPU-second (load average {os.getloadavg()[0]:.2f})"
    )
    what = (
        f"{written['trades']:,} trades + {written['trade_versions']:,} versions + "
        f"{written['trade_exceptions']:,} exceptions"
    )
    if raw_s is not None:
        print(
            f"{'':<10} raw load of the same rows ({what}) into the indexed tables: {raw_s:8.2f} s = "
            f"{rows / raw_s:>9,.0f} trades/s  -> import / raw = {import_s / raw_s:.2f}x"
        )
    if raw2_s is not None:
        print(
            f"{'':<10} raw load of the same rows, indexes (and PostgreSQL foreign keys) rebuilt after the load as the import did: "
            f"{raw2_s:8.2f} s = {rows / raw2_s:>9,.0f} trades/s  -> import / raw = {import_s / raw2_s:.2f}x"
        )
    before_write = next(t for t, s in stages if s.startswith("Writing trades"))
    print(
        f"{'':<10} of which the pipeline before the write (read, parse, match, validate, enrich): "
        f"{before_write:6.2f} s = {rows / before_write:>9,.0f} trades/s"
    )
    # Each stage's wall and CPU seconds (on a shared machine the CPU time is the work, the wall adds the waits).
    steps = [
        (label, t, c)
        for (t, label), c in zip(stages, stage_cpu, strict=True)
        if not re.match(r"Writing (trades|versions) \(", label)
    ]
    print(f"{'':<10} import stages: wall s, CPU s")
    for (label, t, c), (_, t_next, c_next) in zip(
        steps, [*steps[1:], ("", import_s, import_cpu)], strict=True
    ):
        print(f"{'':<12} {label[:60]:<62} {t_next - t:6.2f} {c_next - c:6.2f}")
    if show_phases:
        phases(make_db, data, rows)
    return {"import": import_s, "raw": raw_s or 0.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--phases", action="store_true", help="also break the write down index by index")
    ap.add_argument(
        "--raw",
        choices=["both", "deferred", "none"],
        default="both",
        help="raw reference loads: into the indexed tables and with the import's deferred rebuild (both), only "
        "the latter (deferred: the like-for-like one, and much the shorter at 1M rows), or none (iterating)",
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opsdesk-bench-import-"))
    server = None
    try:
        print(f"OpsDesk import benchmark: {args.rows:,} trades, {os.cpu_count()} CPUs")
        template = work / "template.sqlite"
        tdb = Database(f"sqlite:///{template}")
        schema.upgrade(tdb)
        demo.build_demo(tdb, SYSTEM, trades=1, seed=1, password="bench-password-1", today=TODAY)
        csv_path = work / "trades.csv"
        t = time.perf_counter()
        generate_csv(csv_path, args.rows, tdb, args.seed)
        print(
            f"generated {csv_path.name}: {csv_path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t:.1f} s"
        )
        with tdb.engine.connect() as c:
            c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        tdb.dispose()

        if args.backend in ("sqlite", "both"):

            def make_sqlite(tag: str) -> Database:
                path = work / f"{tag}.sqlite"
                shutil.copy(template, path)
                return Database(f"sqlite:///{path}")

            run_backend("SQLite", make_sqlite, csv_path, args.rows, args.phases, args.raw)

        if args.backend in ("postgresql", "both"):
            url = os.environ.get("OPSDESK_TEST_PG_URL")
            if url:
                url = url.replace("postgresql://", "postgresql+psycopg://", 1)
            else:
                from tests.pgserver import TempPostgres

                server = TempPostgres()
                url = server.start()
            admin = create_engine(url, isolation_level="AUTOCOMMIT")
            tpl = f"bench_tpl_{os.getpid()}"
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{tpl}"'))
                c.execute(text(f'CREATE DATABASE "{tpl}"'))
            pdb = Database(make_url(url).set(database=tpl).render_as_string(hide_password=False))
            schema.upgrade(pdb)
            demo.build_demo(pdb, SYSTEM, trades=1, seed=1, password="bench-password-1", today=TODAY)
            pdb.dispose()
            made: list[str] = []

            def make_pg(tag: str) -> Database:
                name = f"bench_{tag}_{os.getpid()}"
                with admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                    c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{tpl}"'))
                made.append(name)
                return Database(make_url(url).set(database=name).render_as_string(hide_password=False))

            try:
                run_backend("PostgreSQL", make_pg, csv_path, args.rows, args.phases, args.raw)
            finally:
                with admin.connect() as c:
                    for name in [*made, tpl]:
                        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
