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

    .venv/bin/python bench/bench_import.py              # 1,000,000 rows, both backends
    .venv/bin/python bench/bench_import.py --rows 100000 --backend sqlite
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
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
from app.services.capture import import_trades  # noqa: E402
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
            "SELECT column_name FROM information_schema.columns WHERE table_name = :t ORDER BY ordinal_position"
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
    with db.write() as s, bulk_write(s):  # the same connection settings as the import
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


def floors(db: Database) -> dict[str, int]:
    with db.engine.connect() as c:
        return {
            t: int(c.execute(text(f"SELECT coalesce(max(id), 0) FROM {t}")).scalar() or 0) for t in TABLES
        }


def run_backend(name: str, make_db, csv_path: Path, rows: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    imp_db = make_db("import")
    floor = floors(imp_db)
    stages: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    report = import_trades(
        imp_db,
        SYSTEM,
        csv_path,
        today=TODAY,
        progress=lambda d, t, s: stages.append((time.perf_counter() - t0, s)),
    )
    import_s = time.perf_counter() - t0
    data = read_back(imp_db, floor)
    imp_db.dispose()
    raw_db = make_db("raw")
    raw_s = raw_load(raw_db, data, defer=False)
    raw_db.dispose()
    deferred = any(s.startswith("Rebuilding") for _, s in stages)
    raw2_s = None
    if deferred:
        raw2_db = make_db("raw2")
        raw2_s = raw_load(raw2_db, data, defer=True)
        raw2_db.dispose()
    written = {t: len(data[t][1]) for t in TABLES}
    print(
        f"{name:<10} import {rows:>9,} rows: {import_s:8.2f} s = {rows / import_s:>9,.0f} trades/s  "
        f"(accepted {report.accepted:,}, repair {report.repair:,}, rejected {report.rejected:,}"
        f"{'; indexes rebuilt after the load' if deferred else ''})"
    )
    what = (
        f"{written['trades']:,} trades + {written['trade_versions']:,} versions + "
        f"{written['trade_exceptions']:,} exceptions"
    )
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
    marks = [(round(t, 2), s) for t, s in stages if not s.startswith("Writing trades (")]
    print(f"{'':<10} import stages (s since start): {marks}")
    return {"import": import_s, "raw": raw_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--seed", type=int, default=7)
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

            run_backend("SQLite", make_sqlite, csv_path, args.rows)

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
                run_backend("PostgreSQL", make_pg, csv_path, args.rows)
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
