"""``opsdesk db upgrade|status`` and ``opsdesk audit verify``."""

from __future__ import annotations

import argparse

from app.services import audit, schema
from app.services.errors import DatabaseUnavailable

from .common import CliContext, CommandFailed


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="database schema")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = dbsub.add_parser("upgrade", help="bring the schema to this OpsDesk's version")
    up.set_defaults(handler=upgrade)
    st = dbsub.add_parser("status", help="show the database, its schema revision and this OpsDesk's")
    st.set_defaults(handler=status)

    au = sub.add_parser("audit", help="audit trail")
    ausub = au.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    ver = ausub.add_parser("verify", help="recompute the hash chain of the audit trail")
    ver.set_defaults(handler=verify)


def upgrade(ctx: CliContext) -> int:
    db = ctx.database(upgrade=False)
    if not db.ping():
        raise DatabaseUnavailable(f"Cannot connect to {db.description}.")
    before, after = schema.upgrade(db)
    ctx.emit(
        {"ok": True, "database": db.description, "from": before, "to": after},
        f"{db.description}: schema {before or '(empty)'} -> {after}",
    )
    return 0


def status(ctx: CliContext) -> int:
    db = ctx.database(upgrade=False)
    if not db.ping():
        raise DatabaseUnavailable(f"Cannot connect to {db.description}.")
    current, head = schema.current_revision(db), schema.head_revision()
    ctx.emit(
        {
            "ok": True,
            "database": db.description,
            "revision": current,
            "app_revision": head,
            "up_to_date": current == head,
        },
        f"{db.description}\n  schema revision: {current or '(empty)'}\n  this OpsDesk:    {head}",
    )
    return 0


def verify(ctx: CliContext) -> int:
    db = ctx.database()
    with db.read() as s:
        report = audit.verify_chain(s)
    ctx.emit(
        {
            "ok": report.intact,
            "entries": report.entries,
            "intact": report.intact,
            "first_bad_id": report.first_bad_id,
            "problem": report.problem,
        },
        f"{report.entries} audit entries; chain {'intact' if report.intact else 'BROKEN'}"
        + ("" if report.intact else f" at entry {report.first_bad_id}: {report.problem}"),
    )
    if not report.intact:
        raise CommandFailed(f"The audit chain is broken at entry {report.first_bad_id}: {report.problem}.")
    return 0
