"""Reconciliation figure: N internal vs N external records with 2 % injected differences of known kinds.

The generator knows the answer. Internal records are trades; the external side is the counterparties'
confirmations of them, with injected: quantity differences, amounts beyond tolerance (and, as noise that must NOT
break, amounts within tolerance and settlement dates inside the window), settlement dates outside the window,
trades missing on each side, duplicated confirmations, and trades booked as 2-4 partial fills against one block
confirmation. One confirmation in twenty quotes no reference (matched on composite keys). Every injected
difference must be found and classified correctly (type, record, differing fields) and no other break raised;
the partial fills must be matched by the aggregation pass. The script exits 1 otherwise.

Timed in the same run, on the same two frames:

- **engine**: ``recon.engine.reconcile`` (every pass) and ``describe`` (the break records written to the database);
- **pandas merge only**: one outer ``merge`` on the reference (no comparison at all) — the floor of any pandas
  approach;
- **datacompy**: ``datacompy.PandasCompare`` joined on the reference with the same absolute tolerance (datacompy compares
  on one join, no passes, no aggregation, no duplicate handling, floats). Only the comparison is timed, on the two
  frames already in memory: their float conversion and dropping the lines that quote no reference happen before,
  and datacompy reads and writes no database (the issue's reference: "datacompy's time to compare the same two
  frames in the same run"). It is measured again right before each end-to-end run (a shared machine's load changes
  within minutes) and the summary holds each run against the fastest datacompy time of all: the strictest reference;
- **end to end with a database round trip** (SQLite file and PostgreSQL): the two sides loaded once as ``trades``
  and confirmation ``statement_lines`` (not timed), then ``recon.run.run_recon``: read both sides from the
  database, all passes, write the run, its matches (1:1 pairs compactly in ``recon_run_pairs``, aggregations as
  ``recon_matches`` rows) and the breaks, in one transaction. The stored pairs are read back and checked too.
  Timed cold, as ``opsdesk recon run`` is: the read includes starting the SQLite columnar workers. The summary at
  the end sets each backend's phases (read, match, write) beside datacompy's time. On PostgreSQL the load ends with
  ``VACUUM ANALYZE`` and ``CHECKPOINT`` (not timed), so that no checkpoint of the load's pages falls in the run.
- **repeats** (``--repeat N``, default 3): N end-to-end runs per backend, each right after a datacompy run, the
  earlier run's breaks, matches and pairs deleted (and vacuumed) in between, not timed, so each run writes its
  breaks afresh. On a shared machine both times move with the neighbours' load (datacompy alone ranged 5.9-8.9 s
  within one session); the summary gives the median of the N paired ratios and best to best beside the strict
  figure (the first, cold run against datacompy's fastest).

    .venv/bin/python bench/bench_recon.py                 # 1,000,000 vs 1,000,000, both backends
    .venv/bin/python bench/bench_recon.py --rows 20000 --backends sqlite --repeat 1
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from app.models import ReconDefinition  # noqa: E402
from app.services import schema  # noqa: E402
from app.services.capture import bulk  # noqa: E402
from app.services.db import Database  # noqa: E402
from app.services.permissions import SYSTEM  # noqa: E402
from app.services.recon.config import parse_config  # noqa: E402
from app.services.recon.definitions import validate  # noqa: E402
from app.services.recon.engine import describe, reconcile  # noqa: E402
from app.services.recon.run import run_pairs, run_recon  # noqa: E402

EPOCH = np.datetime64("1970-01-01", "D")
DAY0 = int((np.datetime64("2026-11-09", "D") - EPOCH).astype(np.int64))
SHARES = {  # of N: the injected differences (2 % in all) and the noise that must not break
    "quantity": 0.004,
    "amount": 0.004,
    "settlement_date": 0.003,
    "missing_external": 0.003,
    "missing_internal": 0.002,
    "duplicate": 0.002,
    "split": 0.002,
    "noise_amount": 0.003,
    "noise_date": 0.002,
}

FIELDS = {
    "ref": {"left": "trade_ref", "right": "related_reference"},
    "isin": {"code": "DSEC"},
    "side": {"code": "DELN"},
    "quantity": {"type": "quantity", "code": "DQUA"},
    "price": {"type": "price", "code": "DDEA"},
    "amount": {
        "left": "net_amount",
        "right": "amount",
        "type": "money",
        "tolerance": "abs=0.01",
        "code": "DMON",
    },
    "settlement_date": {
        "left": "settlement_date",
        "right": "value_date",
        "type": "date",
        "tolerance": "days=1",
        "code": "DDAT",
    },
    "trade_date": {"type": "date", "code": "DTRD"},
    "currency": {},
    "account": {"left": "account", "right": "account_identifier"},
    "counterparty": {},
}
GROUP = ["isin", "account", "counterparty", "side", "trade_date", "settlement_date"]
CONFIG: dict[str, Any] = {
    "left": {"source": "trades"},
    "right": {"source": "statement_lines:TRADE_CONFIRMATIONS"},
    "fields": FIELDS,
    "key": ["ref"],
    "compare": ["isin", "side", "quantity", "price", "amount", "settlement_date", "trade_date", "currency"],
    "passes": [
        {"name": "exact_ref", "kind": "pair", "keys": ["ref"], "duplicates": "report"},
        {
            "name": "composite",
            "kind": "pair",
            "keys": ["isin", "account", "counterparty", "side", "trade_date", "quantity"],
            "require": ["amount", "settlement_date"],
        },
        {
            "name": "partial_fills",
            "kind": "aggregate",
            "many": "left",
            "keys": GROUP,
            "sum": ["quantity", "amount"],
        },
    ],
    "stake": {"amount": "amount", "quantity": "quantity", "price": "price"},
    "currency": "currency",
}


def _share(n: int, key: str) -> int:
    return max(1, round(n * SHARES[key]))


def generate(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(internal, external, answer) as engine frames (logical field names, exact integer units)."""
    rng = np.random.default_rng(seed)
    isins = np.array([f"XS{i:09d}{i % 10}" for i in range(5000)], dtype=object)
    accounts = np.array([f"ACC{i:04d}" for i in range(200)], dtype=object)
    cptys = np.array([f"CPTY{i:03d}" for i in range(50)], dtype=object)
    ccys = np.array(["USD", "EUR", "GBP", "CHF", "JPY"], dtype=object)
    ref = np.char.add("T", np.char.zfill(np.arange(n).astype(str), 9)).astype(object)
    isin = isins[rng.integers(0, len(isins), n)]
    account = accounts[rng.integers(0, len(accounts), n)]
    cpty = cptys[rng.integers(0, len(cptys), n)]
    side = np.where(rng.random(n) < 0.5, "BUY", "SELL").astype(object)
    qty_units = rng.integers(1, 20_000, n).astype(np.int64)
    price8 = rng.integers(100, 100_000, n).astype(np.int64) * 10**6  # 1.00 .. 1000.00
    amount4 = qty_units * price8 // 10**4  # qty x price at 1e-4, exact integer
    trade_day = DAY0 + rng.integers(0, 10, n)
    settle_day = trade_day + rng.integers(1, 3, n)
    ccy = ccys[rng.integers(0, len(ccys), n)]
    internal = pd.DataFrame(
        {
            "_id": ref,
            "ref": ref,
            "isin": isin,
            "side": side,
            "quantity": pd.array(qty_units * 10**6, dtype="Int64"),
            "price": pd.array(price8, dtype="Int64"),
            "amount": pd.array(amount4, dtype="Int64"),
            "settlement_date": pd.array(settle_day, dtype="Int64"),
            "trade_date": pd.array(trade_day, dtype="Int64"),
            "currency": ccy,
            "account": account,
            "counterparty": cpty,
        }
    )
    # Records whose aggregation group and composite key are unique: safe to split or to strip of a reference.
    group_unique = ~internal.duplicated(GROUP, keep=False).to_numpy()
    comp_unique = ~internal.duplicated(
        ["isin", "account", "counterparty", "side", "trade_date", "quantity"], keep=False
    ).to_numpy()
    free = np.ones(n, dtype=bool)

    def pick(k: int, extra: np.ndarray | None = None) -> np.ndarray:
        cand = np.flatnonzero(free & (extra if extra is not None else True))
        sel = np.sort(rng.choice(cand, size=k, replace=False))
        free[sel] = False
        return sel

    sel = {
        k: pick(_share(n, k))
        for k in (
            "quantity",
            "amount",
            "settlement_date",
            "missing_external",
            "duplicate",
            "noise_amount",
            "noise_date",
        )
    }
    sel["split"] = pick(_share(n, "split"), group_unique & (qty_units >= 4))
    no_ref = pick(max(1, n // 20), comp_unique)
    external = internal.copy()
    ext_qty = qty_units.copy()
    ext_qty[sel["quantity"]] += rng.integers(1, 50, len(sel["quantity"]))
    external["quantity"] = pd.array(ext_qty * 10**6, dtype="Int64")
    amt = amount4.copy()
    amt[sel["amount"]] += rng.integers(2, 10_000, len(sel["amount"])) * 100  # 0.02 .. 99.99 beyond tolerance
    amt[sel["noise_amount"]] += 100  # exactly one cent: within abs=0.01
    external["amount"] = pd.array(amt, dtype="Int64")
    sd = settle_day.copy()
    sd[sel["settlement_date"]] += 2  # outside days=1
    sd[sel["noise_date"]] -= 1  # inside the window
    external["settlement_date"] = pd.array(sd, dtype="Int64")
    ext_ref = ref.copy()
    ext_ref[no_ref] = None
    external["ref"] = ext_ref
    external["_id"] = np.char.add("C", np.char.zfill(np.arange(n).astype(str), 9)).astype(object)

    # Partial fills: the internal trade becomes 2-4 fills (new references) against the one block confirmation,
    # which quotes no single fill's reference.
    fills = []
    for r in sel["split"].tolist():
        k = int(rng.integers(2, 5))
        cuts = np.sort(rng.choice(np.arange(1, int(qty_units[r])), size=k - 1, replace=False))
        parts = np.diff(np.r_[0, cuts, qty_units[r]])
        amounts = parts * price8[r] // 10**4
        amounts[-1] += amount4[r] - amounts.sum()  # the fills' amounts add up to the block's exactly
        for j in range(k):
            row = internal.iloc[r].to_dict()
            row.update(
                _id=f"{ref[r]}-F{j + 1}",
                ref=f"{ref[r]}-F{j + 1}",
                quantity=int(parts[j]) * 10**6,
                amount=int(amounts[j]),
            )
            fills.append(row)
    external.loc[sel["split"], "ref"] = None
    keep_int = np.ones(n, dtype=bool)
    keep_int[sel["split"]] = False
    keep_ext = np.ones(n, dtype=bool)
    keep_ext[sel["missing_external"]] = False
    internal = pd.concat(
        [internal.loc[keep_int], pd.DataFrame(fills).astype(internal.dtypes.to_dict())], ignore_index=True
    )
    # Confirmations of trades we never booked, and duplicated confirmations.
    k = _share(n, "missing_internal")
    extra = external.iloc[rng.choice(np.flatnonzero(keep_ext & free), size=k, replace=False)].copy()
    extra["ref"] = [f"X{i:09d}" for i in range(k)]
    extra["_id"] = [f"CX{i:09d}" for i in range(k)]
    extra["quantity"] = pd.array(rng.integers(20_001, 40_000, k) * 10**6, dtype="Int64")
    dups = external.iloc[sel["duplicate"]].copy()
    dups["_id"] = [f"CD{i:09d}" for i in range(len(dups))]
    external = pd.concat([external.loc[keep_ext], extra, dups], ignore_index=True)
    external = external.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # no order to lean on
    answer = {
        "FIELD_MISMATCH": {
            **{ref[r]: ("quantity",) for r in sel["quantity"]},
            **{ref[r]: ("amount",) for r in sel["amount"]},
            **{ref[r]: ("settlement_date",) for r in sel["settlement_date"]},
        },
        "MISSING_EXTERNAL": set(ref[sel["missing_external"]].tolist()),
        "MISSING_INTERNAL": set(extra["ref"].tolist()),
        "DUPLICATE_KEY": set(ref[sel["duplicate"]].tolist()),
        "split": {ref[r] for r in sel["split"]},
        "injected": sum(
            len(sel[k])
            for k in ("quantity", "amount", "settlement_date", "missing_external", "duplicate", "split")
        )
        + k,
    }
    return internal, external, answer


def check(
    breaks: list[dict[str, Any]],
    groups: list[tuple[list[str], list[str]]],
    answer: dict[str, Any],
    right_ref: dict[str, Any],
) -> list[str]:
    """Problems: an injected difference not found or misclassified, or a break nobody injected."""
    problems: list[str] = []
    got_fm = {b["internal_ref"]: tuple(b["fields"]) for b in breaks if b["break_type"] == "FIELD_MISMATCH"}
    if got_fm != answer["FIELD_MISMATCH"]:
        wrong = set(got_fm.items()) ^ set(answer["FIELD_MISMATCH"].items())
        problems.append(f"field mismatches differ from the answer: {sorted(wrong)[:5]} ({len(wrong)})")
    got_me = {b["internal_ref"] for b in breaks if b["break_type"] == "MISSING_EXTERNAL"}
    if got_me != answer["MISSING_EXTERNAL"]:
        problems.append(f"missing external differ: {sorted(got_me ^ answer['MISSING_EXTERNAL'])[:5]}")
    got_mi = {
        right_ref.get(b["external_ref"], b["external_ref"])
        for b in breaks
        if b["break_type"] == "MISSING_INTERNAL"
    }
    if got_mi != answer["MISSING_INTERNAL"]:
        problems.append(
            f"missing internal differ: {sorted(map(str, got_mi ^ answer['MISSING_INTERNAL']))[:5]}"
        )
    got_dk = {
        (b["internal_record"] or b["external_record"])["key"]["ref"]
        for b in breaks
        if b["break_type"] == "DUPLICATE_KEY"
    }
    if got_dk != answer["DUPLICATE_KEY"]:
        problems.append(f"duplicate keys differ: {sorted(got_dk ^ answer['DUPLICATE_KEY'])[:5]}")
    got_split = {lids[0].rsplit("-F", 1)[0] for lids, _ in groups}
    if got_split != answer["split"] or any(
        len({x.rsplit("-F", 1)[0] for x in lids}) != 1 for lids, _ in groups
    ):
        problems.append(f"partial fills not matched as blocks: {sorted(got_split ^ answer['split'])[:5]}")
    return problems


def timed(fn: Any, repeat: int = 1) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _datacompy(left: pd.DataFrame, right: pd.DataFrame) -> float:
    import datacompy

    cols = ["ref", "isin", "side", "quantity", "price", "amount", "settlement_date", "trade_date", "currency"]
    a = left[cols].astype(
        {c: "float64" for c in ("quantity", "price", "amount", "settlement_date", "trade_date")}
    )
    b = (
        right[cols]
        .dropna(subset=["ref"])
        .astype({c: "float64" for c in ("quantity", "price", "amount", "settlement_date", "trade_date")})
    )
    t, _ = timed(
        lambda: datacompy.PandasCompare(
            a, b, join_columns=["ref"], abs_tol=100, df1_name="ours", df2_name="theirs"
        )
    )
    return t


# --------------------------------------------------------------------------------------------------------------------
# Database round trip
# --------------------------------------------------------------------------------------------------------------------


def _days_text(days: pd.Series) -> list[str | None]:
    vals = (
        (EPOCH + days.to_numpy(dtype=np.int64, na_value=0).astype("timedelta64[D]"))
        .astype(str)
        .astype(object)
    )
    vals[days.isna().to_numpy()] = None
    return vals.tolist()


def load(db: Database, internal: pd.DataFrame, external: pd.DataFrame) -> None:
    """Both sides into a fresh database: trades, and confirmation statement lines (one statement per trade day)."""
    with db.write() as s:
        conn = s.connection()
        # A throwaway benchmark database: the blotter's sort indexes would only slow the load down.
        if db.is_postgres:
            names = (
                conn.exec_driver_sql(
                    "SELECT indexname FROM pg_indexes WHERE tablename IN ('trades', 'statement_lines') "
                    "AND indexname LIKE 'ix_%%'"
                )
                .scalars()
                .all()
            )
            for name in names:
                conn.exec_driver_sql(f'DROP INDEX "{name}"')
        else:
            names = (
                conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('trades', 'statement_lines') "
                    "AND name LIKE 'ix_%'"
                )
                .scalars()
                .all()
            )
            for name in names:
                conn.exec_driver_sql(f'DROP INDEX "{name}"')
        n = len(internal)
        stamp = bulk.timestamp(dt.datetime(2026, 11, 20, tzinfo=dt.UTC), s)
        q = internal["quantity"].to_numpy(dtype=np.int64)
        p = internal["price"].to_numpy(dtype=np.int64)
        a = internal["amount"].to_numpy(dtype=np.int64)
        bulk.insert_rows(
            s,
            "trades",
            [
                "trade_ref",
                "fo_version",
                "source",
                "isin",
                "account_code",
                "counterparty_code",
                "side",
                "quantity",
                "price",
                "currency",
                "gross_amount",
                "commission",
                "fees",
                "net_amount",
                "trade_date",
                "trade_time",
                "settlement_date",
                "status",
                "exception_codes",
                "version",
                "created_at",
                "updated_at",
            ],
            [
                internal["ref"].tolist(),
                [1] * n,
                ["BENCH"] * n,
                internal["isin"].tolist(),
                internal["account"].tolist(),
                internal["counterparty"].tolist(),
                internal["side"].tolist(),
                bulk.numbers(q, 6, s),
                bulk.numbers(p, 8, s),
                internal["currency"].tolist(),
                bulk.numbers(a, 4, s),
                [0] * n,
                [0] * n,
                bulk.numbers(a, 4, s),
                _days_text(internal["trade_date"]),
                [stamp] * n,
                _days_text(internal["settlement_date"]),
                ["SETTLED"] * n,
                [""] * n,
                [1] * n,
                [stamp] * n,
                [stamp] * n,
            ],
        )
        days = sorted(set(external["trade_date"].astype(int).tolist()))
        ids = {}
        for d in days:
            day = str(EPOCH + np.timedelta64(d, "D"))
            sid = s.execute(
                text(
                    "INSERT INTO statements (kind, format, account_identifier, statement_date, warnings, file_name,"
                    " content_hash, imported_at, statement_ref) VALUES ('TRADE_CONFIRMATIONS', 'BENCH', 'ALL', :d,"
                    " '[]', 'bench', :h, :t, :r) RETURNING id"
                ),
                {"d": day, "h": f"bench-{d}", "t": stamp, "r": f"CONF-{day}"},
            ).scalar()
            ids[d] = sid
        m = len(external)
        stmt = external["trade_date"].astype(int).map(ids).to_numpy()
        line_no = external.groupby("trade_date").cumcount().to_numpy() + 1
        bulk.insert_rows(
            s,
            "statement_lines",
            [
                "statement_id",
                "line_no",
                "reference",
                "related_reference",
                "value_date",
                "entry_date",
                "trade_date",
                "amount",
                "currency",
                "isin",
                "quantity",
                "price",
                "side",
                "counterparty",
                "account_identifier",
                "extra",
            ],
            [
                stmt.tolist(),
                line_no.tolist(),
                external["_id"].tolist(),
                [None if pd.isna(x) else x for x in external["ref"]],
                _days_text(external["settlement_date"]),
                _days_text(external["trade_date"]),
                _days_text(external["trade_date"]),
                bulk.numbers(external["amount"].to_numpy(dtype=np.int64), 4, s),
                external["currency"].tolist(),
                external["isin"].tolist(),
                bulk.numbers(external["quantity"].to_numpy(dtype=np.int64), 6, s),
                bulk.numbers(external["price"].to_numpy(dtype=np.int64), 8, s),
                external["side"].tolist(),
                external["counterparty"].tolist(),
                external["account"].tolist(),
                ["{}"] * m,
            ],
        )
        s.add(
            ReconDefinition(
                name="bench",
                description="bench",
                left_source="trades",
                right_source="statement_lines:TRADE_CONFIRMATIONS",
                config=CONFIG,
                is_active=True,
            )
        )
    _settle(db, "")


def _settle(db: Database, tables: str) -> None:
    """PostgreSQL: ``tables`` (all when empty) vacuumed and analysed, then a checkpoint: the pages just written go
    to disk now, not by a checkpoint during the timed run (a book is loaded hours before a recon runs, not
    seconds; only the superuser of the bench's own server may ask for it)."""
    if not db.is_postgres:
        return
    with db.engine.connect() as c:
        c = c.execution_options(isolation_level="AUTOCOMMIT")
        c.exec_driver_sql(f"VACUUM ANALYZE {tables}".strip())
        with contextlib.suppress(Exception):
            c.exec_driver_sql("CHECKPOINT")


def db_round_trip(
    label: str,
    url: str,
    internal: pd.DataFrame,
    external: pd.DataFrame,
    answer: dict[str, Any],
    reference: list[float],
    repeats: int = 1,
) -> tuple[float, dict[str, float], list[str], list[tuple[float, float]]]:
    db = Database(url)
    schema.upgrade(db)
    t, _ = timed(lambda: load(db, internal, external))
    print(
        f"  {label}: loaded {len(internal):,} trades and {len(external):,} confirmation lines in {t:.1f} s "
        "(not timed below)",
        flush=True,
    )
    # datacompy again, right before the run: on a shared machine the load changes within minutes, and the figure
    # compares the two under the same conditions (appended to ``reference``; the summary uses the fastest).
    reference.append(_datacompy(internal, external))
    t, result = timed(lambda: run_recon(db, SYSTEM, "bench"))
    from sqlalchemy import select  # noqa: PLC0415

    from app.models import Break, ReconMatch, ReconRun  # noqa: PLC0415

    with db.read() as s:
        breaks = [
            {
                "break_type": b.break_type.value,
                "internal_ref": b.internal_ref,
                "external_ref": b.external_ref,
                "fields": [d["field"] for d in b.differences]
                if b.break_type.value == "FIELD_MISMATCH"
                else [],
                "internal_record": b.internal_record,
                "external_record": b.external_record,
            }
            for b in s.scalars(select(Break))
        ]
        groups = [
            (lr, rr)
            for lr, rr in s.execute(
                select(ReconMatch.left_refs, ReconMatch.right_refs).where(
                    ReconMatch.pass_name == "partial_fills"
                )
            )
        ]
        stats = s.scalar(select(ReconRun.stats).where(ReconRun.id == result.run_id)) or {}
    right_ref = dict(zip(external["_id"], external["ref"], strict=True))
    problems = check(breaks, groups, answer, right_ref)
    pairs = run_pairs(db, SYSTEM, result.run_id)
    if sum(len(p) for p in pairs.values()) + len(groups) != result.matched:
        problems.append("the stored pairs and groups do not add up to the matches")
    print(
        f"  {label}: run_recon {t:.2f} s (read {result.timings['read']:.2f}, match {result.timings['match']:.2f},"
        f" write {result.timings['write']:.2f}); {sum(result.breaks.values()):,} breaks written; "
        f"{result.matched:,} matches stored as {stats.get('pair_rows', 0)} recon_run_pairs rows (1:1 pairs) "
        f"+ {stats.get('match_rows', 0):,} recon_matches rows (aggregations)",
        flush=True,
    )
    again: list[tuple[float, float]] = []  # (ours, datacompy right before), the later runs
    for _ in range(repeats - 1):
        _forget_runs(db)
        before = _datacompy(internal, external)
        t2, r2 = timed(lambda: run_recon(db, SYSTEM, "bench"))
        # The same breaks, every one written afresh (the earlier run's were deleted), the same matches.
        if r2.breaks != result.breaks or r2.new_breaks != sum(result.breaks.values()) or r2.still_open:
            problems.append("a repeated run did not find the same breaks afresh")
        if r2.matched != result.matched:
            problems.append("a repeated run did not make the same matches")
        again.append((t2, before))
        print(
            f"  {label}: again, after datacompy {before:.2f} s: run_recon {t2:.2f} s (read {r2.timings['read']:.2f},"
            f" match {r2.timings['match']:.2f}, write {r2.timings['write']:.2f})",
            flush=True,
        )
    db.dispose()
    return t, dict(result.timings), problems, again


def _forget_runs(db: Database) -> None:
    """The runs' output deleted (not timed), so that the next run writes its breaks afresh as the first did; on
    PostgreSQL the tables vacuumed and the server checkpointed, as after the load."""
    with db.write() as s:
        for table in ("recon_matches", "recon_run_pairs", "breaks", "recon_runs"):
            s.execute(text(f"DELETE FROM {table}"))
    _settle(db, "recon_matches, recon_run_pairs, breaks, recon_runs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma list; '' for engine only")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="end-to-end runs per backend, each right after a datacompy run (the first one cold)",
    )
    args = parser.parse_args()
    print(
        f"OpsDesk recon bench: {args.rows:,} internal vs {args.rows:,} external records, {os.cpu_count()} CPUs,"
        f" load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}",
        flush=True,
    )
    t, (internal, external, answer) = timed(lambda: generate(args.rows, args.seed))
    print(
        f"  generated in {t:.1f} s: {len(internal):,} internal, {len(external):,} external, "
        f"{answer['injected']:,} injected differences",
        flush=True,
    )
    cfg = parse_config(CONFIG)
    validate(CONFIG)

    t_engine, result = timed(lambda: reconcile(internal, external, cfg), repeat=2)
    t_describe, breaks = timed(lambda: describe(result))
    groups = [(result.left.ids[lp].tolist(), result.right.ids[rp].tolist()) for _, lp, rp in result.groups]
    right_ref = dict(zip(external["_id"], external["ref"], strict=True))
    problems = check(breaks, groups, answer, right_ref)
    t_merge, _ = timed(
        lambda: internal.merge(external, on="ref", how="outer", suffixes=("_l", "_r")), repeat=2
    )
    t_dc = _datacompy(internal, external)
    print(
        f"  engine (all passes):            {t_engine:6.2f} s   ({len(breaks):,} breaks, "
        f"{result.matched_groups:,} matches: {result.matched_by_pass()})"
    )
    print(f"  engine + break records:         {t_engine + t_describe:6.2f} s")
    print(f"  pandas merge only (reference):  {t_merge:6.2f} s")
    print(
        f"  datacompy (reference):          {t_dc:6.2f} s   -> engine is {t_engine / t_dc:.0%} of datacompy "
        f"(target 50 %); with break records {(t_engine + t_describe) / t_dc:.0%}",
        flush=True,
    )
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    ends: dict[str, tuple[float, dict[str, float], float]] = {}
    dc_times = [t_dc]
    with tempfile.TemporaryDirectory(prefix="opsdesk-recon-bench-") as tmp:
        if "sqlite" in backends:
            t, phases, p, again = db_round_trip(
                "SQLite",
                f"sqlite:///{Path(tmp) / 'bench.sqlite'}",
                internal,
                external,
                answer,
                dc_times,
                args.repeat,
            )
            problems += [f"SQLite: {x}" for x in p]
            ends["SQLite"] = (t, phases, dc_times[-1], again)
            print(
                f"  end to end, SQLite:             {t:6.2f} s   ({t / dc_times[-1]:.0%} of datacompy measured"
                f" just before it, {dc_times[-1]:.2f} s)",
                flush=True,
            )
        if "postgresql" in backends:
            from sqlalchemy import create_engine  # noqa: PLC0415

            from tests.pgserver import TempPostgres  # noqa: PLC0415

            url = os.environ.get("OPSDESK_TEST_PG_URL")
            server = None
            if not url:
                server = TempPostgres()
                url = server.start()
            else:
                url = url.replace("postgresql://", "postgresql+psycopg://", 1)
            try:
                admin = create_engine(url, isolation_level="AUTOCOMMIT")
                name = f"recon_bench_{os.getpid()}"
                with admin.connect() as c:
                    c.execute(text(f'CREATE DATABASE "{name}"'))
                pg_url = url.rsplit("/", 1)[0] + f"/{name}"
                t, phases, p, again = db_round_trip(
                    "PostgreSQL", pg_url, internal, external, answer, dc_times, args.repeat
                )
                problems += [f"PostgreSQL: {x}" for x in p]
                ends["PostgreSQL"] = (t, phases, dc_times[-1], again)
                print(
                    f"  end to end, PostgreSQL:         {t:6.2f} s   ({t / dc_times[-1]:.0%} of datacompy measured"
                    f" just before it, {dc_times[-1]:.2f} s)",
                    flush=True,
                )
                with admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
            finally:
                if server is not None:
                    server.stop()
    if ends:
        best = min(dc_times)  # the strictest reference: datacompy's fastest time in this run
        print(
            f"  summary, same run (load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}):\n"
            f"    datacompy (two frames in memory):  {best:6.2f} s (fastest of {', '.join(f'{x:.2f}' for x in dc_times)})\n"
            f"    pandas merge only:                 {t_merge:6.2f} s"
        )
        for label, (t, ph, near, again) in ends.items():
            print(
                f"    {label + ' end to end:':<34} {t:6.2f} s = read {ph['read']:.2f} + match {ph['match']:.2f}"
                f" + write {ph['write']:.2f}  -> {t / best:.0%} of datacompy's fastest, {t / near:.0%} of the one"
                f" just before it (target < 100 %, ideally 50 %)"
            )
            if again:
                # Each of our runs against the datacompy run right before it: on a shared machine both move with
                # the neighbours' load, and the median of the pairs is steadier than one run against the fastest.
                ours = [t, *(a for a, _ in again)]
                theirs = [near, *(b for _, b in again)]
                ratios = sorted(a / b for a, b in zip(ours, theirs, strict=True))
                print(
                    f"    {label + ', ' + str(len(ours)) + ' runs:':<34} ours {', '.join(f'{x:.2f}' for x in ours)} s;"
                    f" datacompy right before each {', '.join(f'{x:.2f}' for x in theirs)} s -> median of the"
                    f" pairs {statistics.median(ratios):.0%} (range {ratios[0]:.0%}-{ratios[-1]:.0%}); best to best"
                    f" {min(ours) / min(theirs):.0%}"
                )
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems))
        return 1
    print(f"  every injected difference found and classified ({answer['injected']:,}), no false break")
    return 0


if __name__ == "__main__":
    sys.exit(main())
