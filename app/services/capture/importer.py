"""Importing a front-office trade file (CSV, XLSX or a FIX log) in one transaction, with a per-line report.

``import_trades(db, actor, path, ...)`` is what ``opsdesk import trades`` and the GUI (menu, drag-and-drop onto the
blotter) call. In order:

1. Permission IMPORT. The file is read and hashed (SHA-256). A file whose hash is already in ``import_batches``
   (kind ``trades``) is a duplicate file: nothing changes, every line is counted as a duplicate.
2. The file is parsed outside the write transaction (so a large file does not hold the database's write lock while
   it is read). A malformed file (empty, binary, wrong encoding, damaged XLSX, truncated, missing columns) is refused
   with ``ValidationFailed`` naming the file and the problem; nothing is changed.
3. One unit of work: the batch row is inserted first (its unique hash makes a concurrent import of the same file
   wait, then count as a duplicate); reference data is loaded; each line is planned (plan.py: new trade, amendment,
   cancel, duplicate, rejected); the trades to write are validated (validation.py) and enriched (enrichment.py)
   as whole columns; trades, versions and exceptions are written in bulk (bulk.py); one audit entry for the file
   (counts, name, hash) and one change-feed row (``trades``, BULK) tell other workstations to refresh.

Outcome per line: **accepted** (its trade is VALIDATED, or CANCELLED by it), **repair** (stored, its trade in
REPAIR with every reason as a trade exception), **rejected** (not stored: file, line, field and reason in the
report and kept in the batch's summary), **duplicate** (already captured: same file, same content or same ExecID),
**skipped** (blank line; FIX message that is not an execution). Nothing is lost: the counts add up to the lines.

Progress and cancel: ``progress(done, total, text)`` is called as the import advances (total 100); ``cancel`` is
called between steps and between chunks of 50,000 rows: returning True (or raising, e.g. the GUI task's
``ctx.check``) stops the import, the transaction rolls back and nothing is changed.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import exc, select
from sqlalchemy.orm import Session

from app.models import ImportBatch, TradeVersion, utcnow
from app.models.enums import ChangeAction, TradeStatus
from app.services import audit, trade_search
from app.services.collector import cycle_collector_paused
from app.services.db import Database
from app.services.errors import OpsDeskError, ValidationFailed
from app.services.permissions import Actor, Permission, require

from . import bulk, fix, refdata
from .convert import convert
from .enrichment import enrich
from .plan import DUPLICATE, REJECTED, ROW, SKIPPED, Plan, csv_payloads, existing_trades, plan_file
from .profiles import load_profile
from .readers import Problem, RawTable, read_csv, read_xlsx, sniff_format
from .units import MONEY_SCALE, PRICE_SCALE, QTY_SCALE
from .validation import exception_codes, validate

FORMATS = ("csv", "xlsx", "fix")
BATCH_KIND = "trades"
MAX_STORED_PROBLEMS = 10_000  # rejected-line reasons kept in the batch summary

ProgressFn = Callable[[int, int, str], None]
CancelFn = Callable[[], object]


class ImportCancelled(OpsDeskError):
    """The user stopped the import; the transaction was rolled back."""


@dataclass(frozen=True)
class LineIssue:
    """Why a line was not simply accepted: file, line, field and reason (code and words)."""

    file: str
    line: int
    status: str  # rejected, repair, duplicate, skipped
    field: str
    code: str
    reason: str
    trade_ref: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "status": self.status,
            "field": self.field,
            "code": self.code,
            "reason": self.reason,
            "trade_ref": self.trade_ref,
        }

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" + (f":{self.field}" if self.field else "")
        return f"{where}: {self.status} {self.code}: {self.reason}"


@dataclass
class ImportReport:
    file_name: str
    content_hash: str
    format: str
    profile: str | None
    batch_id: int | None
    duplicate_file: bool
    lines: int
    accepted: int = 0
    repair: int = 0
    rejected: int = 0
    duplicates: int = 0
    skipped: int = 0
    trades_created: int = 0
    trades_amended: int = 0
    trades_cancelled: int = 0
    issues: list[LineIssue] = field(default_factory=list)
    seconds: float = 0.0
    ignored_columns: list[str] = field(default_factory=list)
    # Outcome of every line, for the full per-line report (write_report).
    line_no: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)
    line_status: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object), repr=False)
    line_ref: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object), repr=False)

    def counts(self) -> dict[str, int]:
        return {
            "lines": self.lines,
            "accepted": self.accepted,
            "repair": self.repair,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "trades_created": self.trades_created,
            "trades_amended": self.trades_amended,
            "trades_cancelled": self.trades_cancelled,
        }

    def as_dict(self, max_issues: int | None = 1000) -> dict[str, Any]:
        shown = self.issues if max_issues is None else self.issues[:max_issues]
        return {
            "file": self.file_name,
            "sha256": self.content_hash,
            "format": self.format,
            "profile": self.profile,
            "batch_id": self.batch_id,
            "duplicate_file": self.duplicate_file,
            **self.counts(),
            "ignored_columns": self.ignored_columns,
            "issues": [i.as_dict() for i in shown],
            "issues_total": len(self.issues),
            "milliseconds": int(self.seconds * 1000),
        }

    def write_report(self, path: str | Path) -> None:
        """The per-line report as CSV: one row per line (and per reason for lines with several)."""
        by_line: dict[int, list[LineIssue]] = {}
        for issue in self.issues:
            by_line.setdefault(issue.line, []).append(issue)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "line", "status", "trade_ref", "field", "code", "reason"])
            if self.duplicate_file:
                w.writerow(
                    [
                        self.file_name,
                        "",
                        "duplicate",
                        "",
                        "",
                        "DUPLICATE_FILE",
                        "the same file was imported before",
                    ]
                )
                return
            seen: set[int] = set()
            for ln, status, ref in zip(
                self.line_no.tolist(), self.line_status.tolist(), self.line_ref.tolist(), strict=True
            ):
                if ln in by_line and ln not in seen:
                    seen.add(ln)
                    for i in by_line[ln]:
                        w.writerow(
                            [self.file_name, ln, i.status, i.trade_ref or ref, i.field, i.code, i.reason]
                        )
                elif ln not in by_line:
                    w.writerow([self.file_name, ln, status, ref, "", "", ""])


class _Steps:
    """Progress in percent and cooperative cancel between steps."""

    def __init__(self, progress: ProgressFn | None, cancel: CancelFn | None, file_name: str) -> None:
        self._progress = progress
        self._cancel = cancel
        self._file = file_name

    def __call__(self, pct: float, label: str, *, check: bool = True) -> None:
        if check and self._cancel is not None and self._cancel() is True:
            raise ImportCancelled(f"The import of {self._file} was cancelled; nothing was changed.")
        if self._progress is not None:
            self._progress(int(pct), 100, label)


def _read_file(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ValidationFailed(f"{name} was not imported: there is no such file ({path}).") from None
    except IsADirectoryError:
        raise ValidationFailed(f"{name} was not imported: it is a folder, not a file.") from None
    except OSError as err:
        raise ValidationFailed(
            f"{name} was not imported: it cannot be read ({err.strerror or err})."
        ) from None


def _parse_table(data: bytes, name: str, fmt: str, profile_name: str | None) -> RawTable:
    profile = load_profile(profile_name)
    table = read_csv(data, name, profile) if fmt == "csv" else read_xlsx(data, name, profile)
    return table.require_data()


def import_trades(
    db: Database,
    actor: Actor,
    path: str | Path,
    *,
    fmt: str | None = None,
    profile: str | None = None,
    file_name: str | None = None,
    today: dt.date | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> ImportReport:
    """Import one trade file in one transaction and report what became of every line (see the module docstring).

    ``fmt``: csv, xlsx or fix (default: from the extension, else the content). ``profile``: a built-in profile
    name or a .json profile file (CSV/XLSX; default ``default``). ``today``: the date trade dates are checked
    against (default: today in each market's time zone).
    """
    require(actor, Permission.IMPORT)
    with cycle_collector_paused():
        return _import_trades(
            db,
            actor,
            Path(path),
            fmt=fmt,
            profile=profile,
            file_name=file_name,
            today=today,
            progress=progress,
            cancel=cancel,
        )


def _import_trades(
    db: Database,
    actor: Actor,
    path: Path,
    *,
    fmt: str | None,
    profile: str | None,
    file_name: str | None,
    today: dt.date | None,
    progress: ProgressFn | None,
    cancel: CancelFn | None,
) -> ImportReport:
    started = time.perf_counter()
    name = file_name or path.name
    step = _Steps(progress, cancel, name)
    step(0, f"Reading {name}")
    data = _read_file(path, name)
    digest = hashlib.sha256(data).hexdigest()
    fmt = (fmt or sniff_format(data, path)).lower()
    if fmt not in FORMATS:
        raise ValidationFailed(f"Unknown import format '{fmt}'; use one of {', '.join(FORMATS)}.")
    if fmt != "fix":
        load_profile(profile)  # an unknown profile is refused before anything else
    profile_name = None if fmt == "fix" else load_profile(profile).name

    with db.read() as s:
        seen_before = s.execute(
            select(ImportBatch.id, ImportBatch.imported_at).where(
                ImportBatch.kind == BATCH_KIND, ImportBatch.content_hash == digest
            )
        ).first()
        ref0 = refdata.load(s) if fmt == "fix" else None
    step(3, f"Parsing {name}")
    table: RawTable | None = None
    log: fix.FixLog | None = None
    if fmt == "fix":
        log = fix.read_log(data, name, ref0)
        carrying, blank = len(log.reports) + len({p.line for p in log.rejected}), len(log.skipped)
    else:
        table = _parse_table(data, name, fmt, profile)
        carrying, blank = table.data_lines, table.skipped
    if seen_before is not None:
        return _duplicate_file(name, digest, fmt, profile_name, carrying, blank, started)

    incoming = None
    conv_problems: list[Problem] = []
    if table is not None:
        step(10, "Reading values")
        incoming, conv_problems = convert(table, _source_ref_prefix(name))
    step(20, "Checking against the database")
    try:
        with db.write() as s:
            report = _import_in_transaction(
                s, actor, step, name, digest, fmt, profile_name, table, incoming, conv_problems, log, today
            )
    except exc.IntegrityError as err:
        if "content_hash" in str(err.orig or err) or "import_batches" in str(err.orig or err):
            # Imported by someone else while we parsed it.
            return _duplicate_file(name, digest, fmt, profile_name, carrying, blank, started)
        raise
    report.seconds = time.perf_counter() - started
    step(100, f"Imported {name}", check=False)  # committed: too late to cancel
    return report


def _source_ref_prefix(name: str) -> str:
    return name if len(name) <= 110 else "…" + name[-109:]


def _duplicate_file(
    name: str, digest: str, fmt: str, profile: str | None, carrying: int, blank: int, started: float
) -> ImportReport:
    """The same file again: every line that carried data is a duplicate; blank lines (or FIX messages that are not
    executions) are skipped as they were the first time."""
    return ImportReport(
        file_name=name,
        content_hash=digest,
        format=fmt,
        profile=profile,
        batch_id=None,
        duplicate_file=True,
        lines=carrying + blank,
        duplicates=carrying,
        skipped=blank,
        seconds=time.perf_counter() - started,
    )


def _load_fix_states(s: Session, log: fix.FixLog) -> dict[str, fix.OrderState]:
    refs = sorted({r.trade_ref for r in log.reports})
    trades = existing_trades(s, refs, lock=bulk.is_postgres(s)) if refs else pd.DataFrame()
    states: dict[str, fix.OrderState] = {}
    if trades.empty:
        return states
    ids = [int(i) for i in trades["id"]]
    payloads: dict[int, list[dict[str, Any]]] = {}
    for tid, payload in s.execute(
        select(TradeVersion.trade_id, TradeVersion.payload)
        .where(TradeVersion.trade_id.in_(ids))
        .order_by(TradeVersion.trade_id, TradeVersion.fo_version)
    ).all():
        payloads.setdefault(int(tid), []).append(payload or {})
    for rec in trades.to_dict("records"):
        rec["trade_time"] = pd.Timestamp(rec["trade_time"]).to_datetime64()
        states[rec["trade_ref"]] = fix.state_from_trade(rec, payloads.get(int(rec["id"]), []))
    return states


def _import_in_transaction(
    s: Session,
    actor: Actor,
    step: _Steps,
    name: str,
    digest: str,
    fmt: str,
    profile_name: str | None,
    table: RawTable | None,
    incoming: pd.DataFrame | None,
    conv_problems: list[Problem],
    log: fix.FixLog | None,
    today: dt.date | None,
) -> ImportReport:
    now = utcnow()
    batch = ImportBatch(
        kind=BATCH_KIND,
        file_name=name[:500],
        content_hash=digest,
        imported_at=now,
        imported_by_id=actor.user_id,
    )
    s.add(batch)
    s.flush()
    ref = refdata.load(s)
    step(25, "Matching trades already captured")
    if log is not None:
        source = f"FIX:{(log.reports[0].sender if log.reports else 'LOG')}"[:32]
        plan = fix.plan_fix(log, _load_fix_states(s, log), batch.id, source)
        sources = {r.trade_ref: f"FIX:{r.sender}"[:32] for r in log.reports}
    else:
        assert table is not None and incoming is not None
        source = f"{table.fmt}:{table.profile.name}"[:32]
        refs = incoming["trade_ref"].to_numpy(dtype=object)
        existing = existing_trades(s, pd.unique(refs).tolist(), lock=bulk.is_postgres(s))
        raw_rows = incoming["raw_row"].to_numpy(dtype=np.int64)
        payloads = csv_payloads(table, raw_rows, incoming["line"].to_numpy(dtype=np.int64), batch.id)
        plan = plan_file(
            incoming,
            payloads,
            existing,
            rejected=table.rejected + conv_problems,
            skipped_lines=table.blank_lines,
        )
        sources = None
    step(35, "Validating")
    with bulk.bulk_write(s, rows=len(plan.rows)):
        written = _write_plan(
            s, actor, step, plan, ref, source, sources, now, today, fix_notional=log is not None
        )
    report = _report(name, digest, fmt, profile_name, batch.id, plan, written, table)
    step(97, "Recording the import")
    summary = {
        "file": name,
        "sha256": digest,
        "format": fmt,
        "profile": profile_name,
        # The header lets trade_detail show a version's raw line field by field.
        "header": table.header if table is not None else None,
        **report.counts(),
        "rejected_lines": [
            {"line": p.line, "field": p.field, "code": p.code, "reason": p.reason}
            for p in plan.problems[:MAX_STORED_PROBLEMS]
        ],
    }
    batch.summary = summary
    audit.record(
        s,
        actor,
        "trades.import",
        "import_batches",
        batch.id,
        after={k: v for k, v in summary.items() if k not in ("rejected_lines", "header")}
        | {"batch_id": batch.id},
        change=None,
    )
    audit.publish(
        s,
        actor,
        "trades",
        None,
        ChangeAction.BULK,
        {"action": "trades.import", "batch": batch.id, **report.counts()},
    )
    return report


@dataclass
class _Written:
    status: np.ndarray  # per plan row
    exceptions: pd.DataFrame  # plan-row-indexed: row, code, field, message
    created: int
    amended: int
    cancelled: int


def _write_plan(
    s: Session,
    actor: Actor,
    step: _Steps,
    plan: Plan,
    ref: refdata.RefData,
    source: str,
    sources: dict[str, str] | None,
    now: dt.datetime,
    today: dt.date | None,
    *,
    fix_notional: bool,
) -> _Written:
    rows = plan.rows
    n = len(rows)
    status_only = rows["status_only"].to_numpy(dtype=bool) if n else np.zeros(0, dtype=bool)
    cancelled = rows["cancelled"].to_numpy(dtype=bool) if n else np.zeros(0, dtype=bool)
    trade_id = rows["trade_id"].to_numpy(dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
    work_idx = np.flatnonzero(~status_only)
    work = rows.iloc[work_idx].reset_index(drop=True)
    res, issues = validate(work, ref, today=today)
    step(45, "Enriching: settlement dates, SSIs, fees")
    # FIX trades carry the exact sum of their fills' notionals (quantity x average price would be rounded).
    notional = work["notional_14"].to_numpy(dtype=object) if fix_notional and len(work) else None
    enr = enrich(work, res, ref, issues, notional)
    exc_frame = issues.frame()
    # Exceptions are kept for live trades only; a trade cancelled by this file needs no repair.
    work_cancelled = cancelled[work_idx]
    exc_frame = (
        exc_frame[~work_cancelled[exc_frame["row"].to_numpy(dtype=np.int64)]] if len(exc_frame) else exc_frame
    )
    has_exc = np.zeros(len(work), dtype=bool)
    has_exc[exc_frame["row"].to_numpy(dtype=np.int64)] = True
    w_status = np.where(
        work_cancelled,
        TradeStatus.CANCELLED.value,
        np.where(has_exc, TradeStatus.REPAIR.value, TradeStatus.VALIDATED.value),
    ).astype(object)
    codes = np.full(len(work), "", dtype=object)
    per_row: dict[int, list[str]] = {}
    for r, c in zip(exc_frame["row"].tolist(), exc_frame["code"].tolist(), strict=True):
        per_row.setdefault(r, []).append(c)
    for r, cs in per_row.items():
        codes[r] = exception_codes(cs)

    status = np.full(n, TradeStatus.CANCELLED.value, dtype=object)
    status[work_idx] = w_status
    step(55, "Writing trades")

    # --- new trades (bulk) ---
    w_new = np.flatnonzero(trade_id[work_idx] < 0)
    new_ids = bulk.allocate_ids(s, "trades", len(w_new))
    all_ids = trade_id.copy()
    all_ids[work_idx[w_new]] = new_ids
    stamp = bulk.timestamp(now, s)
    w_source = (
        np.array([sources.get(r, source) for r in work["trade_ref"]], dtype=object)
        if sources is not None
        else np.full(len(work), source, dtype=object)
    )

    def nullable_ids(values: np.ndarray) -> list[int | None]:
        out = values.astype(object)
        out[values < 0] = None
        return out.tolist()

    def ref_ids(table: pd.DataFrame, pos: np.ndarray) -> np.ndarray:
        ids = table["id"].to_numpy(dtype=np.int64)
        return np.where(pos >= 0, ids[np.where(pos >= 0, pos, 0)] if ids.size else -1, -1)

    inst_id = ref_ids(ref.instruments, res.inst)
    acct_id = ref_ids(ref.accounts, res.acct)
    cpty_id = ref_ids(ref.counterparties, res.cpty)
    order_ref = work["order_ref"].to_numpy(dtype=object)
    order_ref = np.where(order_ref == "", None, order_ref)

    def col(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return values[idx]

    trade_cols = (
        "id",
        "trade_ref",
        "fo_version",
        "source",
        "source_ref",
        "order_ref",
        "isin",
        "account_code",
        "counterparty_code",
        "instrument_id",
        "account_id",
        "counterparty_id",
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
        "our_ssi_id",
        "their_ssi_id",
        "version",
        "updated_by_id",
        "created_at",
        "updated_at",
    )
    total_new = len(w_new)

    def on_chunk(done: int) -> None:
        step(55 + 30 * done / max(total_new, 1), f"Writing trades ({done:,} of {total_new:,})")

    if total_new:
        i = w_new
        qty = work["qty_u"].to_numpy(dtype=np.int64)
        px = work["px_u"].to_numpy(dtype=np.int64)
        data = [
            new_ids.tolist(),
            col(work["trade_ref"].to_numpy(dtype=object), i).tolist(),
            col(work["fo_version"].to_numpy(dtype=np.int64), i).tolist(),
            col(w_source, i).tolist(),
            col(work["source_ref"].to_numpy(dtype=object), i).tolist(),
            col(order_ref, i).tolist(),
            col(work["isin"].to_numpy(dtype=object), i).tolist(),
            col(work["account_code"].to_numpy(dtype=object), i).tolist(),
            col(res.counterparty_code, i).tolist(),
            nullable_ids(inst_id[i]),
            nullable_ids(acct_id[i]),
            nullable_ids(cpty_id[i]),
            col(work["side"].to_numpy(dtype=object), i).tolist(),
            bulk.copy_numbers(qty[i], QTY_SCALE, s),
            bulk.copy_numbers(px[i], PRICE_SCALE, s),
            col(res.currency, i).tolist(),
            bulk.copy_numbers(enr.gross_u[i], MONEY_SCALE, s),
            bulk.copy_numbers(enr.commission_u[i], MONEY_SCALE, s),
            bulk.copy_numbers(enr.fees_u[i], MONEY_SCALE, s),
            bulk.copy_numbers(enr.net_u[i], MONEY_SCALE, s),
            bulk.dates(work["trade_date"].to_numpy()[i]),
            bulk.timestamps(work["trade_time"].to_numpy()[i], s),
            bulk.dates(enr.settlement_date[i]),
            col(w_status, i).tolist(),
            col(codes, i).tolist(),
            nullable_ids(enr.our_ssi_id[i]),
            nullable_ids(enr.their_ssi_id[i]),
            [1] * total_new,
            [actor.user_id] * total_new,
            [stamp] * total_new,
            [stamp] * total_new,
        ]
        with bulk.deferred_indexes(s, "trades", total_new) as deferred, trade_search.bulk_inserts(s):
            bulk.insert_rows(s, "trades", trade_cols, data, on_chunk=on_chunk)
            if deferred:
                step(85, "Rebuilding the blotter's indexes")

    # --- amended trades (few: one UPDATE each, guarded by the version read under lock) ---
    w_upd = np.flatnonzero(trade_id[work_idx] >= 0)
    if w_upd.size:
        qty = bulk.numbers(work["qty_u"].to_numpy(dtype=np.int64)[w_upd], QTY_SCALE, s)
        px = bulk.numbers(work["px_u"].to_numpy(dtype=np.int64)[w_upd], PRICE_SCALE, s)
        gross = bulk.numbers(enr.gross_u[w_upd], MONEY_SCALE, s)
        comm = bulk.numbers(enr.commission_u[w_upd], MONEY_SCALE, s)
        fees = bulk.numbers(enr.fees_u[w_upd], MONEY_SCALE, s)
        net = bulk.numbers(enr.net_u[w_upd], MONEY_SCALE, s)
        tdates = bulk.dates(work["trade_date"].to_numpy()[w_upd])
        ttimes = bulk.timestamps(work["trade_time"].to_numpy()[w_upd], s)
        sdates = bulk.dates(enr.settlement_date[w_upd])
        params = []
        for k, j in enumerate(w_upd.tolist()):
            params.append(
                (
                    int(work["fo_version"].iat[j]),
                    str(w_source[j]),
                    work["source_ref"].iat[j],
                    order_ref[j],
                    work["isin"].iat[j],
                    work["account_code"].iat[j],
                    res.counterparty_code[j],
                    None if inst_id[j] < 0 else int(inst_id[j]),
                    None if acct_id[j] < 0 else int(acct_id[j]),
                    None if cpty_id[j] < 0 else int(cpty_id[j]),
                    work["side"].iat[j],
                    qty[k],
                    px[k],
                    res.currency[j],
                    gross[k],
                    comm[k],
                    fees[k],
                    net[k],
                    tdates[k],
                    ttimes[k],
                    sdates[k],
                    w_status[j],
                    codes[j],
                    None if enr.our_ssi_id[j] < 0 else int(enr.our_ssi_id[j]),
                    None if enr.their_ssi_id[j] < 0 else int(enr.their_ssi_id[j]),
                    actor.user_id,
                    stamp,
                    int(work["trade_id"].iat[j]),
                    int(work["row_version"].iat[j]),
                )
            )
        sql = (
            "UPDATE trades SET fo_version = ?, source = ?, source_ref = ?, order_ref = ?, isin = ?, account_code = ?, "
            "counterparty_code = ?, instrument_id = ?, account_id = ?, counterparty_id = ?, side = ?, quantity = ?, "
            "price = ?, currency = ?, gross_amount = ?, commission = ?, fees = ?, net_amount = ?, trade_date = ?, "
            "trade_time = ?, settlement_date = ?, status = ?, exception_codes = ?, our_ssi_id = ?, their_ssi_id = ?, "
            "version = version + 1, updated_by_id = ?, updated_at = ? WHERE id = ? AND version = ?"
        )
        _check_updated(bulk.execute_many(s, sql, params), len(params))

    # --- trades cancelled without new content ---
    so_idx = np.flatnonzero(status_only)
    if so_idx.size:
        params = [
            (
                int(rows["fo_version"].iat[j]),
                rows["source_ref"].iat[j],
                TradeStatus.CANCELLED.value,
                actor.user_id,
                stamp,
                int(rows["trade_id"].iat[j]),
                int(rows["row_version"].iat[j]),
            )
            for j in so_idx.tolist()
        ]
        sql = (
            "UPDATE trades SET fo_version = ?, source_ref = ?, status = ?, exception_codes = '', "
            "version = version + 1, updated_by_id = ?, updated_at = ? WHERE id = ? AND version = ?"
        )
        _check_updated(bulk.execute_many(s, sql, params), len(params))

    # Open exceptions of updated trades are cleared (one statement); the new validation's exceptions replace them.
    updated_ids = trade_id[trade_id >= 0]
    if updated_ids.size:
        bulk.execute_for_ids(
            s,
            "UPDATE trade_exceptions SET cleared_at = :stamp WHERE cleared_at IS NULL AND trade_id IN {ids}",
            updated_ids.tolist(),
            {"stamp": stamp},  # the backend's timestamp text, as every other timestamp of the import
        )

    # --- versions ---
    step(86, "Writing versions")
    versions = plan.versions
    if len(versions):
        v_trade = all_ids[versions["row"].to_numpy(dtype=np.int64)]
        v_ids = bulk.allocate_ids(s, "trade_versions", len(versions))
        n_versions = len(versions)

        def on_version_chunk(done: int) -> None:
            step(86 + 7 * done / max(n_versions, 1), f"Writing versions ({done:,} of {n_versions:,})")

        with bulk.deferred_indexes(s, "trade_versions", n_versions):
            bulk.insert_rows(
                s,
                "trade_versions",
                ("id", "trade_id", "fo_version", "action", "source", "source_ref", "received_at", "payload"),
                [
                    v_ids.tolist(),
                    v_trade.tolist(),
                    versions["fo_version"].to_numpy(dtype=np.int64).tolist(),
                    versions["action"].tolist(),
                    [
                        (sources.get(r, source) if sources is not None else source)
                        for r in rows["trade_ref"].to_numpy(dtype=object)[
                            versions["row"].to_numpy(dtype=np.int64)
                        ]
                    ]
                    if sources is not None
                    else [source] * len(versions),
                    versions["source_ref"].tolist(),
                    [stamp] * len(versions),
                    versions["payload"].tolist(),
                ],
                on_chunk=on_version_chunk,
            )

    # --- exceptions ---
    step(93, "Writing exceptions")
    exceptions = exc_frame.copy()
    if len(exceptions):
        exceptions["row"] = work_idx[exceptions["row"].to_numpy(dtype=np.int64)]
        e_ids = bulk.allocate_ids(s, "trade_exceptions", len(exceptions))
        bulk.insert_rows(
            s,
            "trade_exceptions",
            ("id", "trade_id", "code", "field", "message", "raised_at"),
            [
                e_ids.tolist(),
                all_ids[exceptions["row"].to_numpy(dtype=np.int64)].tolist(),
                exceptions["code"].tolist(),
                exceptions["field"].tolist(),
                [m[:500] for m in exceptions["message"].tolist()],
                [stamp] * len(exceptions),
            ],
        )
    if (trade_id >= 0).any():
        # Settlement: the live instructions of amended or cancelled trades are cancelled, netted ones un-netted.
        from ..settlement import generate as settlement  # late: settlement imports capture's bulk helpers

        settlement.on_trades_changed(s, actor, trade_id[trade_id >= 0].tolist())
    is_new = trade_id < 0
    return _Written(
        status=status,
        exceptions=exceptions,
        created=int(is_new.sum()),
        amended=int((~is_new & ~cancelled).sum()),
        cancelled=int(cancelled.sum()),
    )


def _check_updated(count: int, expected: int) -> None:
    if count != expected:
        # Rows are read under lock (PostgreSQL) or inside the single-writer transaction (SQLite), so this only
        # happens if a trade changed underneath; refuse rather than overwrite someone's edit.
        raise ValidationFailed(
            "Some trades changed while the file was being imported; nothing was changed. Import the file again."
        )


def _report(
    name: str,
    digest: str,
    fmt: str,
    profile: str | None,
    batch_id: int,
    plan: Plan,
    written: _Written,
    table: RawTable | None,
) -> ImportReport:
    kind = plan.line_kind
    row = plan.line_row
    status = np.full(kind.shape, "", dtype=object)
    row_status = (
        written.status[np.where(row >= 0, row, 0)]
        if written.status.size
        else np.full(kind.shape, "", dtype=object)
    )
    is_row = kind == ROW
    in_repair = is_row & (row_status == TradeStatus.REPAIR.value)
    status[is_row] = "accepted"
    status[in_repair] = "repair"
    status[kind == REJECTED] = "rejected"
    status[kind == DUPLICATE] = "duplicate"
    status[kind == SKIPPED] = "skipped"

    issues: list[LineIssue] = []
    for p in plan.problems:
        issues.append(LineIssue(name, p.line, "rejected", p.field, p.code, p.reason))
    exc = written.exceptions
    if len(exc):
        # The repair reasons of a trade are reported on the lines that made it.
        trade_refs = plan.rows["trade_ref"].to_numpy(dtype=object)
        by_row: dict[int, list[tuple[str, str, str]]] = {}
        for r, c, f, m in zip(
            exc["row"].tolist(),
            exc["code"].tolist(),
            exc["field"].tolist(),
            exc["message"].tolist(),
            strict=True,
        ):
            by_row.setdefault(int(r), []).append((f, c, m))
        for ln, r in zip(plan.line_no[in_repair].tolist(), row[in_repair].tolist(), strict=True):
            for f, c, m in by_row.get(int(r), []):
                issues.append(LineIssue(name, ln, "repair", f, c, m, str(trade_refs[r])))
    other = np.flatnonzero((kind == DUPLICATE) | (kind == SKIPPED))
    for ln, k, ref in zip(
        plan.line_no[other].tolist(), kind[other].tolist(), plan.line_ref[other].tolist(), strict=True
    ):
        if k == DUPLICATE:
            issues.append(
                LineIssue(name, ln, "duplicate", "", "DUPLICATE", plan.notes.get(ln, "already captured"), ref)
            )
        else:
            issues.append(
                LineIssue(name, ln, "skipped", "", "SKIPPED", plan.notes.get(ln, "blank line"), ref)
            )
    issues.sort(key=lambda i: (i.line, i.status != "rejected"))
    rejected_lines = int((kind == REJECTED).sum())
    return ImportReport(
        file_name=name,
        content_hash=digest,
        format=fmt,
        profile=profile,
        batch_id=batch_id,
        duplicate_file=False,
        lines=int(kind.size),
        accepted=int((status == "accepted").sum()),
        repair=int((status == "repair").sum()),
        rejected=rejected_lines,
        duplicates=int((kind == DUPLICATE).sum()),
        skipped=int((kind == SKIPPED).sum()),
        trades_created=written.created,
        trades_amended=written.amended,
        trades_cancelled=written.cancelled,
        issues=issues,
        ignored_columns=list(table.ignored_columns) if table is not None else [],
        line_no=plan.line_no,
        line_status=status,
        line_ref=plan.line_ref,
    )
