"""Figure: settlement instructions with netting for N trades (issue 4: 1,000,000 in under 10 s on PostgreSQL).

    .venv/bin/python bench/bench_settle_generate.py --trades 1000000 [--backend sqlite|postgresql|both]

Each backend gets a fresh, migrated database with a small reference book (Xetra, 200 instruments, 20 accounts,
20 counterparties of which half net, SSIs of both sides) and N affirmed trades over 3 settlement dates, loaded
set-based before the clock starts (about four trades per counterparty x ISIN x date x account, so netting has work
to do). Timed: ``generate_instructions`` end to end (selection, netting, ids, both inserts, index rebuild, audit,
commit). Reference, in the same run and database: the raw cost of storing the very same rows - the instructions and
links just generated are copied aside, deleted, and put back with one plain ``INSERT ... SELECT`` per table into
the same indexed tables (no selection, no netting), then rolled back. PostgreSQL is a throwaway server
(tests/pgserver.TempPostgres) unless OPSDESK_TEST_PG_URL names one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app.services import schema  # noqa: E402
from app.services.capture import bulk  # noqa: E402
from app.services.db import Database  # noqa: E402
from app.services.permissions import SYSTEM  # noqa: E402
from app.services.settlement import generate  # noqa: E402

N_INSTRUMENTS, N_ACCOUNTS, N_CPTY = 200, 20, 20
ISD = dt.date(2026, 11, 20)


def load_book(db: Database, n: int) -> None:
    """Reference data with ORM-free SQL, then n trades by one INSERT ... SELECT over a number series."""
    pg = db.is_postgres
    with db.write() as s:
        c = s.connection()
        c.exec_driver_sql(
            "INSERT INTO markets (id, mic, name, country, timezone, calendar_code, instruction_cutoff, "
            "default_settlement_cycle, version, created_at, updated_at) VALUES (1, 'XETR', 'Xetra', 'DE', "
            "'Europe/Berlin', 'XETR', '16:00:00', 2, 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
        for i in range(1, N_INSTRUMENTS + 1):
            c.exec_driver_sql(
                "INSERT INTO instruments (id, isin, name, asset_class, currency, market_id, settlement_cycle, "
                "liquidity, reference_price, contract_size, is_active, version, created_at, updated_at) VALUES "
                f"({i}, 'DE{i:09d}0', 'Share {i}', 'EQUITY', 'EUR', 1, 2, 'LIQUID_SHARE', {10 + i}, 1, "
                f"{'true' if pg else 1}, 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        for i in range(1, N_CPTY + 1):
            c.exec_driver_sql(
                "INSERT INTO counterparties (id, code, name, lei, bic, country, netting, is_active, version, "
                f"created_at, updated_at) VALUES ({i}, 'CP{i:03d}', 'Bank {i}', 'LEI{i:017d}', 'BANK{i:03d}DEFF', "
                f"'DE', {('true' if i % 2 else 'false') if pg else i % 2}, {'true' if pg else 1}, 1, "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        for i in range(1, N_ACCOUNTS + 1):
            c.exec_driver_sql(
                "INSERT INTO accounts (id, code, name, account_type, kyc_status, segregation, base_currency, "
                f"is_active, version, created_at, updated_at) VALUES ({i}, 'ACC{i:03d}', 'Account {i}', 'CLIENT', "
                f"'APPROVED', 'SEGREGATED', 'EUR', {'true' if pg else 1}, 1, '2026-01-01 00:00:00', "
                "'2026-01-01 00:00:00')"
            )
        # SSI ids: accounts 1..A, counterparties A+1..A+C.
        for i in range(1, N_ACCOUNTS + N_CPTY + 1):
            owner = f"NULL, {i}" if i <= N_ACCOUNTS else f"{i - N_ACCOUNTS}, NULL"
            c.exec_driver_sql(
                "INSERT INTO ssis (id, counterparty_id, account_id, market_id, currency, place_of_settlement_bic, "
                "agent_bic, safekeeping_account, cash_account, valid_from, version, created_at, updated_at) VALUES "
                f"({i}, {owner}, 1, 'EUR', 'DAKVDEFFXXX', 'COBADEFFXXX', 'SAFE{i}', 'CASH{i}', '2020-01-01', 1, "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        if pg:
            for t in ("markets", "instruments", "counterparties", "accounts", "ssis"):
                c.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT max(id) FROM {t}))"
                )
            series = f"SELECT g AS k FROM generate_series(1, {n}) g"
            isd = f"CAST('2026-11-20' AS date) + (k / {N_INSTRUMENTS * N_ACCOUNTS * N_CPTY}) % 3"
        else:
            series = f"WITH RECURSIVE s(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM s WHERE k < {n}) SELECT k FROM s"
            isd = f"date('2026-11-20', '+' || ((k / {N_INSTRUMENTS * N_ACCOUNTS * N_CPTY}) % 3) || ' days')"
        with bulk.bulk_write(s), bulk.deferred_indexes(s, "trades", n):
            sql = f"""
                INSERT INTO trades (trade_ref, fo_version, source, isin, account_code, counterparty_code,
                    instrument_id, account_id, counterparty_id, side, quantity, price, currency, gross_amount,
                    commission, fees, net_amount, trade_date, trade_time, settlement_date, status, exception_codes,
                    our_ssi_id, their_ssi_id, version, created_at, updated_at)
                SELECT 'B' || k, 1, 'BENCH', 'X', 'A', 'C',
                    1 + k % {N_INSTRUMENTS}, 1 + (k / {N_INSTRUMENTS}) % {N_ACCOUNTS},
                    1 + (k / {N_INSTRUMENTS * N_ACCOUNTS}) % {N_CPTY},
                    CASE WHEN k % 3 = 0 THEN 'SELL' ELSE 'BUY' END, 100 + (k % 50) * 10, 12.5,
                    'EUR', (100 + (k % 50) * 10) * 12.5, 0, 0, (100 + (k % 50) * 10) * 12.5,
                    '2026-11-18', '2026-11-18 10:00:00', {isd}, 'AFFIRMED', '',
                    1 + (k / {N_INSTRUMENTS}) % {N_ACCOUNTS},
                    {N_ACCOUNTS} + 1 + (k / {N_INSTRUMENTS * N_ACCOUNTS}) % {N_CPTY}, 1,
                    '2026-11-18 10:00:00', '2026-11-18 10:00:00'
                FROM ({series}) s
                """
            c.exec_driver_sql(sql.replace("%", "%%") if pg else sql)
        if pg:
            c.exec_driver_sql("ANALYZE")


def reference(db: Database) -> float:
    """Store the same rows again with plain INSERT ... SELECT (timed), then roll everything back."""
    with db.engine.connect() as conn:
        tx = conn.begin()
        conn.exec_driver_sql("CREATE TEMP TABLE ref_si AS SELECT * FROM settlement_instructions")
        conn.exec_driver_sql("CREATE TEMP TABLE ref_it AS SELECT * FROM instruction_trades")
        conn.exec_driver_sql("DELETE FROM instruction_trades")
        conn.exec_driver_sql("DELETE FROM settlement_instructions")
        t0 = time.perf_counter()
        conn.exec_driver_sql("INSERT INTO settlement_instructions SELECT * FROM ref_si")
        conn.exec_driver_sql("INSERT INTO instruction_trades SELECT * FROM ref_it")
        seconds = time.perf_counter() - t0
        tx.rollback()
    return seconds


def run(name: str, db: Database, n: int) -> None:
    schema.upgrade(db)
    t0 = time.perf_counter()
    load_book(db, n)
    print(f"{name}: loaded {n:,} trades in {time.perf_counter() - t0:.1f} s (setup, not timed)", flush=True)
    t0 = time.perf_counter()
    result = generate.generate_instructions(db, SYSTEM)
    ours = time.perf_counter() - t0
    again = generate.generate_instructions(db, SYSTEM)
    ref = reference(db)
    print(
        f"{name}: generate {n:,} trades -> {result.instructions:,} instructions "
        f"({result.netted:,} netted from {result.netted_trades:,} trades, {result.gross:,} gross): {ours:.2f} s; "
        f"reference plain INSERT ... SELECT of the same rows: {ref:.2f} s; second run created "
        f"{again.instructions} in {again.seconds:.2f} s",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trades", type=int, default=100_000)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-settle-"))
    if args.backend in ("sqlite", "both"):
        db = Database(f"sqlite:///{work / 'settle.sqlite'}")
        try:
            run("SQLite", db, args.trades)
        finally:
            db.dispose()
    if args.backend in ("postgresql", "both"):
        server = None
        url = os.environ.get("OPSDESK_TEST_PG_URL")
        if url:
            url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        else:
            from tests.pgserver import TempPostgres

            server = TempPostgres()
            url = server.start()
        name = f"bench_settle_{os.getpid()}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
        db = Database(make_url(url).set(database=name).render_as_string(hide_password=False))
        try:
            run("PostgreSQL", db, args.trades)
        finally:
            db.dispose()
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
