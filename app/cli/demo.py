"""``opsdesk demo --trades N --seed S``: build the demonstration book into a fresh database."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from app.services import overview
from app.services.permissions import SYSTEM

from .common import CliContext, CommandFailed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="build a realistic, deterministic demo book (into a database without trades)"
    )
    p.add_argument("--trades", type=int, default=10_000, help="number of trades (default 10,000)")
    p.add_argument(
        "--seed", type=int, default=1, help="random seed; the same seed and date give the same book"
    )
    p.add_argument(
        "--password", help="one password for every demo user (for scripts); default: random ones, printed"
    )
    p.add_argument(
        "--today", type=dt.date.fromisoformat, help="build as of this date (YYYY-MM-DD); default today"
    )
    p.add_argument(
        "--if-empty",
        action="store_true",
        help="do nothing (exit 0) when the database already holds a book, instead of refusing",
    )
    p.add_argument(
        "--book-only",
        action="store_true",
        help="load the book only; skip the demo's day of work (fails and penalties, reconciliations, "
        "corrections, SLA evaluation)",
    )
    p.set_defaults(handler=run)


def run(ctx: CliContext) -> int:
    a = ctx.args
    if a.trades < 0:
        raise CommandFailed("--trades must be zero or more.", 2)
    from app.services import demo  # numpy/pandas load only for the commands that need them

    db = ctx.database()
    if a.if_empty and overview.overview(db, SYSTEM).total_trades > 0:
        ctx.emit(
            {"ok": True, "skipped": True, "database": db.description},
            f"{db.description} already holds a book; nothing built.",
        )
        return 0
    actor = ctx.actor(bootstrap=True)
    started = time.perf_counter()

    def progress(done: int, total: int, text: str) -> None:
        if not ctx.json:
            print(f"  [{done:>3}/{total}] {text}", file=sys.stderr)

    summary = demo.build_demo(
        db, actor, trades=a.trades, seed=a.seed, password=a.password, today=a.today, progress=progress
    )
    info = summary.as_dict()
    if not a.book_only:
        from app.services import demo_workflows

        work = demo_workflows.seed_workflows(db, today=a.today, progress=progress)
        info["workflows"] = work.as_dict()
    seconds = round(time.perf_counter() - started, 2)
    info.update(ok=True, seconds=seconds, database=db.description)
    users = "\n".join(
        f"  {u['username']:<12} {u['role']:<11} password: {u['password']}" for u in info["users"]
    )
    counts = ", ".join(f"{k} {v:,}" for k, v in info["counts"].items())
    failed = "".join(
        f"\n  demo work '{k}' did not run: {v}"
        for k, v in info.get("workflows", {}).get("failed", {}).items()
    )
    ctx.emit(
        info, f"Demo book built in {seconds} s on {db.description}\n  {counts}{failed}\nLog-ins:\n{users}"
    )
    return 0
