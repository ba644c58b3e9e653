"""``opsdesk sla evaluate|list|defaults|edit`` and ``opsdesk report daily``: SLA monitoring from the shell.

    opsdesk [--user NAME] sla evaluate [--at TIME] [--no-record] [--ids N] [--json]
    opsdesk sla list [--json]
    opsdesk --user SUPERVISOR sla defaults
    opsdesk --user SUPERVISOR sla edit CODE --version V [--rule JSON|@FILE] [--warning-minutes N] [--active|--inactive]
    opsdesk [--user NAME] report daily --date YYYY-MM-DD --out FILE.xlsx|FILE.pdf [--zone ZONE]

``sla evaluate`` rates every open item of every active SLA as at ``--at`` (ISO time with an offset; default now)
and, unless ``--no-record``, records the state changes (run it from a scheduler every few minutes so the history
and the alerts stay current). Without ``--user`` the system records. ``report daily`` writes the end-of-day
operations report; the file's extension decides the format. ``--json`` may come before or after the sub-command.
Exit codes: 0 ok, 1 refused (message says why), 2 usage, 3 database unavailable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from app.services.permissions import SYSTEM, Actor
from app.services.reports import daily
from app.services.sla import evaluate, rules

from .common import CliContext, CommandFailed, json_flag


def _time(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO time: {value!r} (e.g. 2026-11-20T21:00-05:00)"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"give the time zone offset too: {value!r} (e.g. ...T21:00-05:00 or Z)"
        )
    return moment


def register(sub: argparse._SubParsersAction) -> None:
    sla = sub.add_parser("sla", help="SLA rules and their evaluation")
    ssub = sla.add_subparsers(dest="sla_command", metavar="ACTION", required=True)
    ev = ssub.add_parser(
        "evaluate",
        help="rate every open item ON_TRACK / AT_RISK / BREACHED and record the changes",
        description="Evaluate every active SLA; state changes are recorded as events unless --no-record.",
    )
    ev.add_argument(
        "--at", type=_time, metavar="TIME", help="evaluate as at this ISO time with offset (default now)"
    )
    ev.add_argument("--no-record", action="store_true", help="evaluate only; write nothing")
    ev.add_argument(
        "--ids", type=int, default=0, metavar="N", help="list up to N item ids per state in the JSON"
    )
    json_flag(ev)
    ev.set_defaults(handler=run_evaluate)
    ls = ssub.add_parser("list", help="the SLA definitions and their rules")
    json_flag(ls)
    ls.set_defaults(handler=run_list)
    de = ssub.add_parser("defaults", help="create the default SLAs that do not exist yet (supervisor, admin)")
    json_flag(de)
    de.set_defaults(handler=run_defaults)
    ed = ssub.add_parser("edit", help="change an SLA's rule, warning window or activity (supervisor, admin)")
    ed.add_argument("code")
    ed.add_argument("--version", type=int, required=True, help="the version you looked at (see 'sla list')")
    ed.add_argument("--rule", help="the rule as JSON, or @FILE.json")
    ed.add_argument("--warning-minutes", type=int)
    act = ed.add_mutually_exclusive_group()
    act.add_argument("--active", dest="active", action="store_true", default=None)
    act.add_argument("--inactive", dest="active", action="store_false")
    json_flag(ed)
    ed.set_defaults(handler=run_edit)

    rep = sub.add_parser("report", help="operations reports")
    rsub = rep.add_subparsers(dest="report_command", metavar="REPORT", required=True)
    d = rsub.add_parser(
        "daily",
        help="the end-of-day operations report as XLSX or PDF",
        description="KPIs, health checklist, SLA attainment, breached items and charts for one day.",
    )
    d.add_argument("--date", required=True, type=dt.date.fromisoformat, metavar="YYYY-MM-DD")
    d.add_argument("--out", required=True, metavar="FILE", help="FILE.xlsx or FILE.pdf")
    d.add_argument("--zone", help="time zone of the day and the times shown (default: the user's)")
    json_flag(d)
    d.set_defaults(handler=run_daily)


def _viewer(ctx: CliContext) -> Actor:
    return ctx.actor() if ctx.args.user else SYSTEM


def run_evaluate(ctx: CliContext) -> int:
    a = ctx.args
    db = ctx.database()
    result = evaluate.evaluate_all(db, _viewer(ctx), at=a.at, record=not a.no_record)
    summary = {"ok": True, **result.summary(with_ids=max(a.ids, 0))}
    lines = [
        f"SLA evaluation at {result.at:%Y-%m-%d %H:%M:%S} UTC: {result.items:,} open items in {result.seconds:.2f} s"
    ]
    lines.append(f"{'SLA':<22} {'open':>8} {'on track':>9} {'at risk':>8} {'breached':>9} {'events':>7}")
    for r in result.results:
        c = r.counts()
        lines.append(
            f"{r.sla.code:<22} {len(r.items):>8,} {c['ON_TRACK']:>9,} {c['AT_RISK']:>8,} {c['BREACHED']:>9,} "
            f"{r.events:>7,}"
        )
    lines.append(
        f"{result.events_written:,} state changes recorded."
        if result.recorded
        else "Nothing recorded (--no-record, or another workstation was recording)."
    )
    ctx.emit(summary, "\n".join(lines))
    return 0


def run_list(ctx: CliContext) -> int:
    slas = rules.list_slas(ctx.database(), _viewer(ctx))
    summary = {
        "ok": True,
        "slas": [
            {
                "id": s.id,
                "code": s.code,
                "name": s.name,
                "item_type": s.item_type,
                "active": s.is_active,
                "version": s.version,
                "warning_minutes": s.warning_minutes,
                "rule": s.rule.as_dict(),
                "last_evaluated_at": s.last_evaluated_at,
            }
            for s in slas
        ],
    }
    lines = [
        f"{s.code:<20} v{s.version:<3} {'active' if s.is_active else 'off':<6} warn {s.warning_minutes:>4} min  "
        f"{s.name}: {s.rule.describe()}"
        for s in slas
    ] or ["No SLAs defined yet: run 'opsdesk --user SUPERVISOR sla defaults'."]
    ctx.emit(summary, "\n".join(lines))
    return 0


def run_defaults(ctx: CliContext) -> int:
    created = rules.ensure_default_slas(ctx.database(), ctx.actor())
    ctx.emit(
        {"ok": True, "created": created},
        f"Created {len(created)} SLA(s): {', '.join(created)}."
        if created
        else "Every default SLA exists already.",
    )
    return 0


def run_edit(ctx: CliContext) -> int:
    a = ctx.args
    db = ctx.database()
    actor = ctx.actor()
    match = [s for s in rules.list_slas(db, actor) if s.code == a.code.upper()]
    if not match:
        raise CommandFailed(f"There is no SLA with the code {a.code!r} (see 'opsdesk sla list').")
    rule = None
    if a.rule:
        raw = Path(a.rule[1:]).read_text(encoding="utf-8") if a.rule.startswith("@") else a.rule
        try:
            rule = json.loads(raw)
        except json.JSONDecodeError as err:
            raise CommandFailed(f"--rule is not valid JSON: {err}") from None
    info = rules.update_sla(
        db, actor, match[0].id, rule, a.warning_minutes, seen_version=a.version, is_active=a.active
    )
    ctx.emit(
        {"ok": True, "code": info.code, "version": info.version, "rule": info.rule.as_dict()},
        f"{info.code} is now version {info.version}: {info.rule.describe()} (warning {info.warning_minutes} min).",
    )
    return 0


def run_daily(ctx: CliContext) -> int:
    a = ctx.args
    out = Path(a.out)
    if out.suffix.lower() not in daily.FORMATS:
        raise CommandFailed(f"--out must end in .xlsx or .pdf (got '{out.name}').", 2)
    report = daily.build_daily(ctx.database(), _viewer(ctx), a.date, zone=a.zone)
    path = daily.write_report(report, out)
    h = report.dashboard.headline()
    ctx.emit(
        {
            "ok": True,
            "date": a.date,
            "out": str(path),
            "format": path.suffix.lower().lstrip("."),
            "headline": h,
            "breached_items": report.breached_total,
        },
        f"Wrote the daily report for {a.date} to {path} ({report.breached_total:,} breached items, "
        f"{h['open_items']:,} open SLA items).",
    )
    return 0
