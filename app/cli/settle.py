"""``opsdesk settle``: settlement instructions, CSDR penalties and the fails list from the shell.

    opsdesk --user clerk1 settle generate [--date YYYY-MM-DD] [--net | --gross]
    opsdesk --user clerk1 settle penalties [--as-of YYYY-MM-DD]
    opsdesk [--user NAME] settle fails [--as-of YYYY-MM-DD] [--limit N]

``generate`` instructs every validated, confirmed or affirmed trade that has no live instruction yet (settling on
``--date`` when given), netting as configured per counterparty, or for every counterparty (``--net``) or none
(``--gross``); running it again creates nothing. ``penalties`` accrues the daily CSDR penalties of every failing day
before ``--as-of`` (default today) not yet accrued. ``fails`` lists failing and overdue items, most urgent first.
Exit codes: 0 done, 1 refused (the message says why), 2 usage, 3 database unavailable. ``--json`` (before the
command) prints the summary as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt

from app.services.permissions import SYSTEM
from app.services.settlement import fails, generate

from .common import CliContext, CommandFailed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("settle", help="settlement: generate instructions, accrue penalties, list fails")
    ss = p.add_subparsers(dest="settle_what", metavar="WHAT", required=True)
    g = ss.add_parser(
        "generate",
        help="generate settlement instructions for validated trades (idempotent)",
        description="DVP/RVP for trades against payment, DFP/RFP for free transfers; netted per counterparty, "
        "ISIN, settlement date and account where configured (or with --net).",
    )
    g.add_argument(
        "--date", type=dt.date.fromisoformat, metavar="YYYY-MM-DD", help="only this settlement date"
    )
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--net", dest="net", action="store_const", const=True, help="net every counterparty")
    mode.add_argument("--gross", dest="net", action="store_const", const=False, help="net no counterparty")
    g.set_defaults(handler=run_generate, net=None)
    pen = ss.add_parser("penalties", help="accrue CSDR-style fail penalties up to a date (idempotent)")
    pen.add_argument("--as-of", type=dt.date.fromisoformat, metavar="YYYY-MM-DD", help="default today")
    pen.set_defaults(handler=run_penalties)
    f = ss.add_parser("fails", help="list failing and overdue settlement items, most urgent first")
    f.add_argument("--as-of", type=dt.date.fromisoformat, metavar="YYYY-MM-DD", help="default today")
    f.add_argument("--limit", type=int, default=None, help="show at most N items")
    f.set_defaults(handler=run_fails)


def _actor(ctx: CliContext):  # noqa: ANN202 - an Actor
    if not ctx.args.user:
        raise CommandFailed("This command changes data: name the user to act as with --user NAME.")
    return ctx.actor()


def run_generate(ctx: CliContext) -> int:
    actor = _actor(ctx)
    result = generate.generate_instructions(
        ctx.database(), actor, settle_date=ctx.args.date, net=ctx.args.net
    )
    ctx.emit({"ok": True, **result.as_dict()}, str(result))
    return 0


def run_penalties(ctx: CliContext) -> int:
    actor = _actor(ctx)
    result = fails.accrue_penalties(ctx.database(), actor, ctx.args.as_of)
    ctx.emit({"ok": True, **result.as_dict()}, str(result))
    return 0


def run_fails(ctx: CliContext) -> int:
    if ctx.args.limit is not None and ctx.args.limit < 0:
        raise CommandFailed("--limit takes a count of 0 or more.", 2)
    actor = ctx.actor() if ctx.args.user else SYSTEM
    if actor is SYSTEM:
        # Reading needs no sign-in on the local database (as ``export blotter``); the service still checks VIEW.
        pass
    as_of = ctx.args.as_of or dt.date.today()
    items = fails.list_fails(ctx.database(), actor, as_of=as_of, limit=ctx.args.limit)
    lines = [
        f"{'P':<2}{'instruction':<18}{'status':<18}{'age':>4} {'deadline':<11}{'value':>18} {'ccy':<4}"
        f"{'penalty':>12}  reason"
    ]
    for it in items:
        penalty = it.penalty_debit - it.penalty_credit
        lines.append(
            f"{it.priority:<2}{it.instruction_ref:<18}{it.status:<18}{it.age_days:>4} {it.deadline.isoformat():<11}"
            f"{it.value_at_stake:>18,.2f} {it.currency:<4}{penalty:>12,.2f}  "
            f"{(it.exception_kind + ': ') if it.exception_kind else ''}{it.reason}"
        )
    lines.append(f"{len(items):,} failing or overdue item(s) as of {as_of}.")
    ctx.emit(
        {"ok": True, "as_of": as_of, "count": len(items), "items": [it.as_dict() for it in items]},
        "\n".join(lines),
    )
    return 0
