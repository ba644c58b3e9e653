"""Figure: settlement instructions with netting for N trades (issue 4: 1,000,000 in under 10 s on PostgreSQL).

    .venv/bin/python bench/bench_settle_generate.py --trades 1000000 [--backend sqlite|postgresql|both] [--phases]
        [--no-reference]

Each backend gets a fresh, migrated database with a small reference book (Xetra, 200 instruments, 20 accounts,
20 counterparties of which half net, SSIs of both sides) and N affirmed trades over 3 settlement dates, loaded
set-based before the clock starts (about four trades per counterparty x ISIN x date x account, so netting has work
to do). Timed: ``generate_instructions`` end to end (selection, netting, ids, both inserts, index rebuild, audit,
commit). Reference, in the same run and database: the raw cost of storing the very same rows - the instructions and
links just generated are copied aside, deleted, and put back with one plain ``INSERT ... SELECT`` per table into
the same indexed tables (no selection, no netting), then rolled back. PostgreSQL is a throwaway server
(tests/pgserver.TempPostgres) unless OPSDESK_TEST_PG_URL names one.

``--phases`` also prints where the time of the timed run went: wall time per phase (read trades, netting, writing
instructions, writing links, indexes, foreign keys, audit, the rest: Python and commit), and on PostgreSQL the
server process's own CPU time beside it (read from /proc when the server runs on this machine): on a shared
machine the CPU seconds are the steadier figure. Parallel index-build workers are not in it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, event, text  # noqa: E402
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


# Statement prefix -> phase, first match wins.
PHASES = (
    ("CREATE TEMP TABLE sg_t", "read trades"),
    ("SELECT count(*) FROM trades", "read trades"),
    ("ANALYZE sg_t", "read trades"),
    ("SELECT count(*) FROM sg_t", "read trades"),
    ("CREATE TEMP TABLE sg_g", "compute netting"),
    ("CREATE TEMP TABLE sg_a", "compute netting"),
    ("SELECT n > 1", "compute netting"),
    ("SELECT sum(CASE WHEN in_group", "compute netting"),
    ("INSERT INTO settlement_instructions", "write instructions"),
    ("WITH src AS", "write instructions + links (gross)"),
    ("WITH u AS", "write instructions + links"),
    ("INSERT INTO instruction_trades", "write links"),
    ("CREATE INDEX", "indexes"),
    ("DROP INDEX", "indexes"),
    ('ALTER TABLE instruction_trades ADD CONSTRAINT "pk_', "indexes"),
    ('ALTER TABLE settlement_instructions ADD CONSTRAINT "uq_', "indexes"),
    ("ALTER TABLE", "foreign keys"),
    ("INSERT INTO audit_log", "audit"),
)


def _server_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a local server process; 0 when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def phases(db: Database) -> Iterator[dict[str, list[float]]]:
    """Wall and server-CPU seconds per phase of the statements run inside the block."""
    out: dict[str, list[float]] = {}

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        pid = conn.connection.driver_connection.info.backend_pid if db.is_postgres else 0
        conn.info["bench_t0"] = (time.perf_counter(), _server_cpu(pid) if pid else 0.0, pid)

    def after(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        t0, c0, pid = conn.info.pop("bench_t0")
        text_ = " ".join(statement.split())
        name = next((p for prefix, p in PHASES if text_.startswith(prefix)), "other statements")
        acc = out.setdefault(name, [0.0, 0.0])
        acc[0] += time.perf_counter() - t0
        acc[1] += (_server_cpu(pid) - c0) if pid else 0.0

    event.listen(db.engine, "before_cursor_execute", before)
    event.listen(db.engine, "after_cursor_execute", after)
    try:
        yield out
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
        event.remove(db.engine, "after_cursor_execute", after)


def print_phases(name: str, found: dict[str, list[float]], total: float) -> None:
    order = [p for _, p in PHASES] + ["other statements"]
    listed = sorted(found, key=order.index)
    for phase in listed:
        wall, cpu = found[phase]
        print(f"  {name} {phase:<36} {wall:6.2f} s" + (f"  (server CPU {cpu:5.2f} s)" if cpu else ""))
    rest = total - sum(w for w, _ in found.values())
    print(f"  {name} {'Python, commit':<36} {rest:6.2f} s", flush=True)
    cpu = sum(c for _, c in found.values())
    if cpu:
        print(f"  {name} server CPU in all statements: {cpu:.2f} s", flush=True)


def run(name: str, db: Database, n: int, show_phases: bool = False, with_reference: bool = True) -> None:
    schema.upgrade(db)
    t0 = time.perf_counter()
    load_book(db, n)
    print(f"{name}: loaded {n:,} trades in {time.perf_counter() - t0:.1f} s (setup, not timed)", flush=True)
    with phases(db) if show_phases else contextlib.nullcontext({}) as found:
        t0 = time.perf_counter()
        result = generate.generate_instructions(db, SYSTEM)
        ours = time.perf_counter() - t0
    again = generate.generate_instructions(db, SYSTEM)
    ref = f"{reference(db):.2f} s" if with_reference else "not run"
    print(
        f"{name}: generate {n:,} trades -> {result.instructions:,} instructions "
        f"({result.netted:,} netted from {result.netted_trades:,} trades, {result.gross:,} gross): {ours:.2f} s; "
        f"reference plain INSERT ... SELECT of the same rows: {ref}; second run created "
        f"{again.instructions} in {again.seconds:.2f} s",
        flush=True,
    )
    if show_phases:
        print_phases(name, found, ours)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trades", type=int, default=100_000)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--phases", action="store_true", help="print where the time of the timed run went")
    ap.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the plain INSERT ... SELECT reference (minutes at 1,000,000 trades: every index in place)",
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-settle-"))
    if args.backend in ("sqlite", "both"):
        db = Database(f"sqlite:///{work / 'settle.sqlite'}")
        try:
            run("SQLite", db, args.trades, args.phases, not args.no_reference)
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
            run("PostgreSQL", db, args.trades, args.phases, not args.no_reference)
        finally:
            db.dispose()
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
