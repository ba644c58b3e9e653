"""``opsdesk import trades`` and ``opsdesk export blotter``: trade capture and the blotter export from the shell.

    opsdesk --user clerk1 import trades FILE [--format csv|xlsx|fix] [--profile NAME|FILE.json] [--report OUT.csv]
    opsdesk [--user NAME] export blotter --out FILE.csv|FILE.xlsx [filters] [--sort KEY] [--asc] [--columns a,b]
    opsdesk import profiles

Exit codes of ``import trades``: 0 the file was imported and no line was rejected (lines sent to repair, duplicates
and skipped lines are normal outcomes); 4 the file was imported but some lines were rejected (listed, and in
``--report``); 1 the file was refused as a whole and nothing was changed (the message says why); 2 usage error;
3 database unavailable. With ``--json`` the summary has the counts ``lines``, ``accepted``, ``repair``,
``rejected``, ``duplicates``, ``skipped``, the trades created/amended/cancelled, and the issues (file, line, field,
code, reason).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from app.services.blotter import COLUMN_KEYS, SORTABLE, BlotterFilter, Sort
from app.services.permissions import SYSTEM

from .common import CliContext, CommandFailed, group

EXIT_REJECTED_LINES = 4
SHOWN_ISSUES = 50


def register(sub: argparse._SubParsersAction) -> None:
    imp_sub = group(sub, "import")
    t = imp_sub.add_parser(
        "trades",
        help="import a CSV/XLSX trade file or a FIX drop-copy log in one transaction",
        description="Import trades: every line is accepted, sent to repair, rejected (with file, line, field and "
        "reason), a duplicate, or skipped. Importing the same file or FIX executions again changes nothing.",
    )
    t.add_argument("file", help="the file to import")
    t.add_argument(
        "--format", choices=["csv", "xlsx", "fix"], help="default: from the extension, else the content"
    )
    t.add_argument(
        "--profile",
        help="column-mapping profile for CSV/XLSX: a name (see 'import profiles') or a .json file",
    )
    t.add_argument(
        "--report", metavar="OUT.csv", help="write the per-line report (one row per line) to this CSV file"
    )
    t.add_argument(
        "--today", type=dt.date.fromisoformat, help="check trade dates against this date (YYYY-MM-DD)"
    )
    t.set_defaults(handler=run_import)
    p = imp_sub.add_parser("profiles", help="list the built-in column-mapping profiles")
    p.set_defaults(handler=list_profiles)

    exp_sub = group(sub, "export")
    b = exp_sub.add_parser(
        "blotter",
        help="write the trade blotter for a filter to CSV or XLSX",
        description="Write what the blotter shows for the filter, in its order, to a .csv or .xlsx file.",
    )
    b.add_argument("--out", required=True, metavar="FILE", help="FILE.csv or FILE.xlsx")
    b.add_argument("--status", action="append", default=[], help="trade status (repeatable)")
    b.add_argument("--exception-code", help="a repair reason code, e.g. ISIN_UNKNOWN")
    b.add_argument("--trade-date-from", type=dt.date.fromisoformat, metavar="YYYY-MM-DD")
    b.add_argument("--trade-date-to", type=dt.date.fromisoformat, metavar="YYYY-MM-DD")
    b.add_argument("--settle-from", type=dt.date.fromisoformat, metavar="YYYY-MM-DD")
    b.add_argument("--settle-to", type=dt.date.fromisoformat, metavar="YYYY-MM-DD")
    b.add_argument("--account")
    b.add_argument("--counterparty")
    b.add_argument("--instrument", help="an ISIN or part of the instrument's name")
    b.add_argument("--side", choices=["BUY", "SELL", "buy", "sell"])
    b.add_argument("--source", help="e.g. CSV:default, FIX:OMS (prefix match)")
    b.add_argument("--text", help="part of the trade, order or source reference")
    b.add_argument("--sort", default="trade_date", choices=sorted(SORTABLE), help="default trade_date")
    b.add_argument("--asc", action="store_true", help="ascending (default descending)")
    b.add_argument(
        "--columns",
        help=f"comma-separated column keys (default: the blotter's); any of {', '.join(COLUMN_KEYS)}",
    )
    b.add_argument("--all-columns", action="store_true", help="every blotter column")
    b.set_defaults(handler=run_export)


def _progress(ctx: CliContext):  # type: ignore[no-untyped-def]
    """Stage changes on stderr for people at a terminal; silent for scripts and --json."""
    if ctx.json or not sys.stderr.isatty():
        return None
    last = {"text": ""}

    def show(done: int, total: int, text: str) -> None:
        stage = text.split(" (")[0]
        if stage != last["text"]:
            last["text"] = stage
            print(f"  [{done:>3}%] {stage}", file=sys.stderr)

    return show


def run_import(ctx: CliContext) -> int:
    from app.services.capture import import_trades

    a = ctx.args
    actor = ctx.actor()
    report = import_trades(
        ctx.database(),
        actor,
        a.file,
        fmt=a.format,
        profile=a.profile,
        today=a.today,
        progress=_progress(ctx),
    )
    if a.report:
        report.write_report(a.report)
    code = EXIT_REJECTED_LINES if report.rejected else 0
    summary = report.as_dict()
    summary.update(ok=True, exit_code=code, by=actor.username)
    if a.report:
        summary["report"] = a.report
    if report.duplicate_file:
        text = f"{report.file_name} was imported before (same content): nothing changed ({report.lines:,} lines)."
    else:
        c = report.counts()
        text = (
            f"Imported {report.file_name} ({report.format}{', profile ' + report.profile if report.profile else ''}): "
            f"{c['lines']:,} lines: {c['accepted']:,} accepted, {c['repair']:,} to repair, {c['rejected']:,} rejected, "
            f"{c['duplicates']:,} duplicates, {c['skipped']:,} skipped; trades created {c['trades_created']:,}, "
            f"amended {c['trades_amended']:,}, cancelled {c['trades_cancelled']:,} ({report.seconds:.1f} s)."
        )
        shown = [i for i in report.issues if i.status in ("rejected", "repair")][:SHOWN_ISSUES]
        if shown:
            text += "\n" + "\n".join(f"  {i}" for i in shown)
            rest = sum(1 for i in report.issues if i.status in ("rejected", "repair")) - len(shown)
            if rest > 0:
                text += f"\n  ... and {rest:,} more" + (
                    " (see the report)" if a.report else " (use --report FILE.csv)"
                )
    ctx.emit(summary, text)
    return code


def list_profiles(ctx: CliContext) -> int:
    from app.services.capture import PROFILES

    info = {
        name: {"description": p.description, "columns": dict(p.columns)}
        for name, p in sorted(PROFILES.items())
    }
    text = "\n".join(f"{name:<12} {p.description}" for name, p in sorted(PROFILES.items()))
    ctx.emit({"ok": True, "profiles": info}, text)
    return 0


def run_export(ctx: CliContext) -> int:
    from app.services.capture.export import export_blotter

    a = ctx.args
    db = ctx.database()
    actor = ctx.actor() if a.user else SYSTEM
    flt = BlotterFilter(
        statuses=tuple(s.upper() for s in a.status),
        exception_code=a.exception_code,
        trade_date_from=a.trade_date_from,
        trade_date_to=a.trade_date_to,
        settlement_date_from=a.settle_from,
        settlement_date_to=a.settle_to,
        account=a.account,
        counterparty=a.counterparty,
        instrument=a.instrument,
        side=a.side.upper() if a.side else None,
        source=a.source,
        text=a.text,
    )
    if a.columns and a.all_columns:
        raise CommandFailed("Give --columns or --all-columns, not both.", 2)
    columns = (
        COLUMN_KEYS
        if a.all_columns
        else ([c.strip() for c in a.columns.split(",") if c.strip()] if a.columns else None)
    )
    result = export_blotter(db, actor, a.out, flt, Sort(a.sort, descending=not a.asc), columns=columns)
    ctx.emit(
        {
            "ok": True,
            "file": str(result.path),
            "format": result.format,
            "rows": result.rows,
            "columns": list(result.columns),
            "filter": flt.as_dict(),
        },
        f"Wrote {result.rows:,} trades to {result.path}.",
    )
    return 0
