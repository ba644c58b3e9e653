"""``opsdesk import statements`` and ``opsdesk statements list``: bank, custodian and counterparty statements.

    opsdesk --user clerk1 import statements FILE... [--format mt940|camt|mt535|semt002|csv|xlsx] [--profile NAME]
    opsdesk statements list [--limit N]

Each file is imported in its own transaction: a refused file (the message says which line and field, and why)
changes nothing, and the other files are still imported. Exit codes: 0 every file imported or already there (a
statement with warnings — balance mismatch, sequence gap — is imported: the warnings are shown and kept with it);
1 at least one file was refused; 2 usage; 3 database unavailable. ``--json`` gives the counts (files imported,
duplicate, refused; statements imported and duplicate; lines; warnings, balance mismatches, sequence findings) and
every file's statements with their warnings.
"""

from __future__ import annotations

import argparse

from .common import CliContext, group

SHOWN_WARNINGS = 20


def register(sub: argparse._SubParsersAction) -> None:
    imp_sub = group(sub, "import")
    p = imp_sub.add_parser(
        "statements",
        help="import bank/custodian/counterparty statements (MT940/942/950, camt.05x, MT535, semt.002, CSV/XLSX)",
        description="Import statements: each file in one transaction; a file is imported or refused as a whole "
        "(with file, line, field and reason). A statement imported before changes nothing. Balances are checked "
        "against the lines and statement sequences per account for gaps and overlaps; findings are kept with the "
        "statement and shown.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="the files to import")
    p.add_argument(
        "--format",
        choices=["mt940", "camt", "mt535", "semt002", "csv", "xlsx"],
        help="default: detected from the content (mt940 covers MT942 and MT950)",
    )
    p.add_argument(
        "--profile",
        help="column-mapping profile for CSV/XLSX confirmations and position files: a name or a .json file",
    )
    p.set_defaults(handler=run_import)

    st = sub.add_parser("statements", help="list imported statements")
    st_sub = st.add_subparsers(dest="statements_what", metavar="WHAT", required=True)
    ls = st_sub.add_parser("list", help="the latest imported statements, newest first")
    ls.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    ls.set_defaults(handler=run_list)


def run_import(ctx: CliContext) -> int:
    from app.services.statements import import_statements

    a = ctx.args
    actor = ctx.actor()
    result = import_statements(ctx.database(), actor, a.files, fmt=a.format, profile=a.profile)
    code = 1 if result.refused else 0
    summary = result.as_dict()
    summary.update(ok=not result.refused, exit_code=code, by=actor.username)
    out: list[str] = []
    shown = 0
    for f in result.files:
        if f.status == "refused":
            out.append(f"REFUSED {f.reason}")
            for p in f.problems[1:10]:
                where = f"{f.file}:{p['line']}" if p.get("line") else f.file
                out.append(f"    {where} {p.get('field') or ''}: {p['reason']}".replace("  :", ":"))
            continue
        new = sum(s.status == "imported" for s in f.statements)
        dup = len(f.statements) - new
        out.append(
            f"{f.file} ({f.format}): {len(f.statements)} statement{'s' if len(f.statements) != 1 else ''}, "
            f"{new} imported, {dup} already there"
        )
        for s in f.statements:
            for w in s.warnings:
                if shown < SHOWN_WARNINGS:
                    label = s.sequence_number or s.statement_ref or s.statement_date.isoformat()
                    out.append(f"    {s.account_identifier} {label}: {w['code']}: {w['message']}")
                shown += 1
    if shown > SHOWN_WARNINGS:
        out.append(f"    ... and {shown - SHOWN_WARNINGS} more warnings (use --json)")
    c = result.counts()
    out.append(
        f"{c['files_imported']} file(s) imported, {c['files_duplicate']} already there, {c['files_refused']} refused; "
        f"{c['statements_imported']} statements ({c['lines_imported']} lines) imported, "
        f"{c['statements_duplicate']} duplicates; {c['balance_mismatches']} balance mismatches, "
        f"{c['sequence_findings']} sequence findings."
    )
    ctx.emit(summary, "\n".join(out))
    return code


def run_list(ctx: CliContext) -> int:
    from app.services.permissions import SYSTEM
    from app.services.statements import list_statements

    actor = ctx.actor() if ctx.args.user else SYSTEM
    rows = list_statements(ctx.database(), actor, limit=max(1, ctx.args.limit))
    lines = [
        f"{r['id']:>6} {r['kind']:<19} {r['format']:<16} {r['account_identifier'][:28]:<28} "
        f"{r['statement_date']} {r['currency'] or '':<3} {r['lines']:>6} lines"
        + (f"  [{', '.join(sorted({w['code'] for w in r['warnings']}))}]" if r["warnings"] else "")
        for r in rows
    ]
    ctx.emit({"ok": True, "statements": rows}, "\n".join(lines) or "No statements.")
    return 0
