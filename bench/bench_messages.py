"""Incoming settlement messages: N status advices and confirmations parsed, matched and applied.

Target (issue 4): 100,000 incoming status/confirmation messages parsed and applied in under 10 s.

Setup: one market, instrument, counterparty, account and SSIs, and N live instructions bulk-inserted (half
INSTRUCTED, half MATCHED). The messages are generated from those instructions: an MT548 "matched" status advice for
every INSTRUCTED one and an MT545 settlement confirmation for every MATCHED one, in one FIN file (RJE batch).

Printed side by side, in the same run:

* **parse only** — detect, split, parse every FIN message, read it into the settlement facts (the reference; a
  clean MT544-548 takes ``swift.mt54x_fast``'s one-pass reader, anything else the full parser);
* **parse + apply** — ``messages.import_bytes``: the above (from the second part on in a helper process, on the other
  core, with the content hash and the stored JSON), plus duplicate check by hash (bulk), instruction
  states loaded by reference (bulk), every message applied in file order with the lifecycle's and the settlement's
  rules to in-memory states (``movements.SettlementBatch``), then instructions, trades, movements, positions, cash
  balances, the audit trail and the message rows written set-based, one transaction. Part by part
  (``messages.PART`` messages): a part's changed instructions are staged in a temporary table (COPY on PostgreSQL)
  and written by one ``UPDATE ... FROM``, its movements by COPY / ``INSERT ... SELECT`` with one aggregated update
  of positions and balances, while the helper parses the next part.

The load average is printed with each figure: the machine may be shared, and a figure means little without it. So
is the CPU time of the import (this process, and the helper process that parses): less bound to the load than the
wall time (on PostgreSQL the server's share is not in it).

    .venv/bin/python bench/bench_messages.py                               # 100,000 messages, SQLite
    .venv/bin/python bench/bench_messages.py --backend both                # SQLite, then a throwaway PostgreSQL
    .venv/bin/python bench/bench_messages.py --messages 5000               # a quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from app.models import (  # noqa: E402
    Account,
    Counterparty,
    Instrument,
    Market,
    SettlementInstruction,
    StandingSettlementInstruction,
)
from app.models.enums import AccountType, AssetClass, KycStatus, Liquidity, Segregation  # noqa: E402
from app.services import schema  # noqa: E402
from app.services.db import Database  # noqa: E402
from app.services.permissions import SYSTEM  # noqa: E402
from app.services.settlement import messages, movements  # noqa: E402

ISD = dt.date(2024, 1, 15)


def setup(db: Database, n: int) -> None:
    with db.write() as s:
        m = Market(mic="XETR", name="Xetra", country="DE", timezone="Europe/Berlin", calendar_code="XETR")
        s.add(m)
        s.flush()
        inst = Instrument(
            isin="DE0007164600", name="SAP SE", asset_class=AssetClass.EQUITY, currency="EUR", market_id=m.id,
            settlement_cycle=2, liquidity=Liquidity.LIQUID_SHARE, reference_price=Decimal("241.5"),
        )  # fmt: skip
        cpty = Counterparty(
            code="BROK", name="Broker", lei="5493001KJTIIGC8Y1R12", bic="BROKGB2L", country="GB"
        )
        acct = Account(
            code="ACC1", name="Fund", account_type=AccountType.CLIENT, kyc_status=KycStatus.APPROVED,
            segregation=Segregation.SEGREGATED, base_currency="EUR",
        )  # fmt: skip
        s.add_all([inst, cpty, acct])
        s.flush()
        common = dict(market_id=m.id, currency="EUR", place_of_settlement_bic="DAKVDEFF", valid_from=ISD)
        ours = StandingSettlementInstruction(
            account_id=acct.id, agent_bic="CUSTDEFF", safekeeping_account="S1", cash_account="C1", **common
        )
        s.add(ours)
        s.flush()
        rows = [
            dict(
                instruction_ref=f"SEME{i:012d}",
                instruction_type="RVP",
                account_id=acct.id,
                counterparty_id=cpty.id,
                instrument_id=inst.id,
                quantity=Decimal(100),
                settlement_amount=Decimal(24150),
                currency="EUR",
                trade_date=ISD - dt.timedelta(days=2),
                intended_settlement_date=ISD,
                status="INSTRUCTED" if i % 2 else "MATCHED",
                settled_quantity=Decimal(0),
                settled_amount=Decimal(0),
                our_ssi_id=ours.id,
                version=1,
            )  # fmt: skip
            for i in range(n)
        ]
        for a in range(0, n, 10_000):
            s.execute(insert(SettlementInstruction), rows[a : a + 10_000])


def generate(n: int) -> bytes:
    out = []
    for i in range(n):
        ref = f"SEME{i:012d}"
        if i % 2:
            out.append(
                "{1:F01OPSDGB2LAXXX0000000000}{2:O5481200240115CUSTDEFFAXXX00000000002401151200N}{4:\n"
                f":16R:GENL\n:20C::SEME//S{i}\n:23G:INST\n:98C::PREP//20240115090000\n:16R:LINK\n"
                f":20C::RELA//{ref}\n:16S:LINK\n:16R:STAT\n:25D::MTCH//MACH\n:16S:STAT\n:16S:GENL\n-}}"
            )
        else:
            out.append(
                "{1:F01OPSDGB2LAXXX0000000000}{2:O5451200240115CUSTDEFFAXXX00000000002401151200N}{4:\n"
                f":16R:GENL\n:20C::SEME//C{i}\n:23G:NEWM\n:16R:LINK\n:20C::RELA//{ref}\n:16S:LINK\n:16S:GENL\n"
                ":16R:TRADDET\n:98A::ESET//20240115\n:98A::SETT//20240115\n:35B:ISIN DE0007164600\n:16S:TRADDET\n"
                ":16R:FIAC\n:36B::ESTT//UNIT/100,\n:16S:FIAC\n:16R:SETDET\n:22F::SETR//TRAD\n"
                ":16R:AMT\n:19A::ESTT//EUR24150,\n:16S:AMT\n:16S:SETDET\n-}"
            )
    return "\n$".join(out).encode()


def run(db: Database, n: int) -> None:
    schema.upgrade(db)
    setup(db, n)
    data = generate(n)
    t = time.perf_counter()
    units = messages.parse_file(data, "bench.fin")
    parse_s = time.perf_counter() - t
    assert all(u.incoming is not None for u in units), [u.error for u in units if u.error][:3]
    del units
    t, cpu, helper = time.perf_counter(), time.process_time(), _children_cpu()
    result = messages.import_bytes(db, SYSTEM, data, "bench.fin", as_of=ISD)
    total_s = time.perf_counter() - t
    cpu, helper = time.process_time() - cpu, _children_cpu() - helper
    with db.read() as s:
        by_status = {
            str(getattr(k, "value", k)): v
            for k, v in s.execute(select(SettlementInstruction.status, func.count()).group_by("status")).all()
        }
        problems = movements.check_invariant(s)
    print(
        f"{db.backend}: {n:,} messages ({result.applied:,} applied, {result.quarantined + result.unmatched:,} not)"
    )
    print(f"  parse only (reference) : {parse_s:7.2f} s  ({n / parse_s:,.0f} msg/s)")
    print(
        f"  parse + apply          : {total_s:7.2f} s  ({n / total_s:,.0f} msg/s)   target < 10 s for 100,000"
    )
    print(f"  CPU (less load-bound)  : {cpu:7.2f} s this process, {helper:.2f} s helper process (parsing)")
    print(f"  instructions now       : {by_status}; invariant problems: {len(problems)}")
    print(f"  load average           : {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


def _children_cpu() -> float:
    """CPU seconds of the ended child processes (the import's helper process, once it is joined)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    ap.add_argument("--url", help="database URL (default: a fresh SQLite file / a throwaway PostgreSQL)")
    a = ap.parse_args()
    if a.url:
        db = Database(a.url)
        try:
            run(db, a.messages)
        finally:
            db.dispose()
        return
    if a.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite:///{tmp}/bench.sqlite")
            try:
                run(db, a.messages)
            finally:
                db.dispose()
    if a.backend in ("postgresql", "both"):
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        from tests.pgserver import TempPostgres

        server = TempPostgres()
        url = server.start()
        try:
            admin = create_engine(url, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.exec_driver_sql('CREATE DATABASE "bench_messages"')
            admin.dispose()
            db = Database(make_url(url).set(database="bench_messages").render_as_string(hide_password=False))
            try:
                run(db, a.messages)
            finally:
                db.dispose()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
