"""``opsdesk recon``: run reconciliations, reconcile two files ad hoc, list, show and edit definitions.

    opsdesk --user clerk1 recon run NAME [--date YYYY-MM-DD] [--json]
    opsdesk recon files LEFT RIGHT --key COL [--key COL ...] [--compare COL[:abs=X|:rel=X|:days=N] ...]
                        [--out BREAKS.csv|BREAKS.xlsx] [--json]
    opsdesk recon list [--json]
    opsdesk recon show NAME [--json]
    opsdesk --user supervisor recon edit NAME --config FILE.json [--json]

``files`` needs no database and no user: it reads the two files and writes the break report. Its JSON summary has
the counts ``matched``, ``mismatched``, ``missing_left`` (keys only in RIGHT), ``missing_right`` (keys only in
LEFT) and ``duplicate_keys``. ``run`` prints matched, breaks by type, new/reopened/resolved breaks and the duration.
Exit codes: 0 ok, 1 refused (the message says why), 2 usage, 3 database unavailable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from app.services.permissions import SYSTEM

from .common import CliContext, CommandFailed, json_flag


def register(sub: argparse._SubParsersAction) -> None:
    recon = sub.add_parser("recon", help="reconcile: run definitions, compare two files, edit definitions")
    rs = recon.add_subparsers(dest="recon_what", metavar="WHAT", required=True)

    r = rs.add_parser("run", help="run a recon definition and write its matches and breaks")
    r.add_argument("name", help="definition name (see 'recon list')")
    r.add_argument("--date", type=dt.date.fromisoformat, metavar="YYYY-MM-DD", help="as of this date")
    json_flag(r)
    r.set_defaults(handler=run_definition)

    f = rs.add_parser(
        "files",
        help="reconcile two CSV/XLSX files on key columns (no database needed)",
        description="Compare LEFT and RIGHT on the key columns; compared columns take a tolerance: "
        "COL:abs=0.01 (absolute), COL:rel=0.001 (relative), COL:days=1 (dates). Without --compare every "
        "column both files have is compared exactly.",
    )
    f.add_argument("left", help="LEFT file (.csv or .xlsx)")
    f.add_argument("right", help="RIGHT file (.csv or .xlsx)")
    f.add_argument("--key", action="append", required=True, metavar="COL", help="key column (repeatable)")
    f.add_argument("--compare", action="append", default=[], metavar="COL[:abs=X|:rel=X|:days=N]")
    f.add_argument("--out", metavar="BREAKS.csv|.xlsx", help="write the break report here")
    json_flag(f)
    f.set_defaults(handler=run_files)

    li = rs.add_parser("list", help="list the recon definitions")
    json_flag(li)
    li.set_defaults(handler=list_definitions)

    s = rs.add_parser("show", help="show one definition's configuration and its latest runs")
    s.add_argument("name")
    json_flag(s)
    s.set_defaults(handler=show_definition)

    e = rs.add_parser("edit", help="replace a definition's configuration (supervisors)")
    e.add_argument("name")
    e.add_argument("--config", required=True, metavar="FILE.json", help="the new configuration")
    e.add_argument("--version", type=int, help="the version you edited (default: the current one)")
    json_flag(e)
    e.set_defaults(handler=edit_definition)


def run_definition(ctx: CliContext) -> int:
    from app.services.recon.run import run_recon

    a = ctx.args
    db = ctx.database()
    actor = ctx.actor()
    result = run_recon(db, actor, a.name, as_of=a.date)
    d = result.as_dict()
    by_type = ", ".join(f"{k.lower().replace('_', ' ')} {v:,}" for k, v in result.breaks.items())
    text = (
        f"Run {result.run_id} of {result.definition} as of {result.as_of}: {result.left_records:,} internal vs "
        f"{result.right_records:,} external records; matched {result.matched:,}; breaks: {by_type}. "
        f"New {result.new_breaks:,}, still open {result.still_open:,}, reopened {result.reopened:,}, "
        f"resolved {result.resolved:,}. {result.duration:.2f} s."
    )
    ctx.emit({"ok": True, **d}, text)
    return 0


def run_files(ctx: CliContext) -> int:
    from app.services.recon.files import reconcile_files

    a = ctx.args
    result = reconcile_files(a.left, a.right, a.key, a.compare, out=a.out)
    s = result.summary
    text = (
        f"{s['left_rows']:,} rows left, {s['right_rows']:,} right: matched {s['matched']:,}, mismatched "
        f"{s['mismatched']:,}, missing left {s['missing_left']:,}, missing right {s['missing_right']:,}, "
        f"duplicate keys {s['duplicate_keys']:,}." + (f" Break report: {s['out']}." if s.get("out") else "")
    )
    ctx.emit({"ok": True, **s}, text)
    return 0


def list_definitions(ctx: CliContext) -> int:
    from app.services.recon import definitions as defs

    db = ctx.database()
    actor = ctx.actor() if ctx.args.user else SYSTEM
    rows = defs.list_definitions(db, actor)
    out = [
        {
            "id": d.id,
            "name": d.name,
            "left": d.left_source,
            "right": d.right_source,
            "active": d.is_active,
            "version": d.version,
            "description": d.description,
        }
        for d in rows
    ]
    text = "\n".join(f"{d.name:<42} {d.left_source} vs {d.right_source}" for d in rows) or (
        "No recon definitions yet; 'recon run NAME' creates the built-in ones."
    )
    ctx.emit({"ok": True, "definitions": out}, text)
    return 0


def show_definition(ctx: CliContext) -> int:
    from sqlalchemy import select

    from app.models import ReconRun
    from app.services.recon import definitions as defs

    db = ctx.database()
    actor = ctx.actor() if ctx.args.user else SYSTEM
    d = defs.get_definition(db, actor, ctx.args.name)
    with db.read() as s:
        runs = [
            {
                "id": r.id,
                "as_of": r.as_of_date,
                "status": r.status,
                "started_at": r.started_at,
                "stats": r.stats,
            }
            for r in s.scalars(
                select(ReconRun).where(ReconRun.definition_id == d.id).order_by(ReconRun.id.desc()).limit(5)
            )
        ]
    ctx.emit(
        {"ok": True, "definition": d.as_dict(), "runs": runs},
        f"{d.name} (version {d.version}{'' if d.is_active else ', switched off'})\n{d.description}\n"
        + json.dumps(d.config, indent=2),
    )
    return 0


def edit_definition(ctx: CliContext) -> int:
    from app.services.recon import definitions as defs

    a = ctx.args
    path = Path(a.config)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CommandFailed(f"{path}: no such file.") from None
    except json.JSONDecodeError as err:
        raise CommandFailed(
            f"{path}, line {err.lineno}, column {err.colno}: not valid JSON ({err.msg})."
        ) from None
    db = ctx.database()
    actor = ctx.actor()
    current = defs.get_definition(db, actor, a.name)
    view = defs.update_definition(db, actor, current.id, config, seen_version=a.version or current.version)
    ctx.emit(
        {"ok": True, "definition": view.as_dict()},
        f"{view.name} is now at version {view.version}.",
    )
    return 0
