"""``opsdesk user add|list|unlock|passwd``."""

from __future__ import annotations

import argparse

from app.models.enums import Role
from app.services import auth
from app.services.permissions import SYSTEM

from .common import CliContext, CommandFailed

NEW_PASSWORD_ENV = "OPSDESK_NEW_PASSWORD"


def register(sub: argparse._SubParsersAction) -> None:
    user = sub.add_parser("user", help="users and roles")
    usub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = usub.add_parser(
        "add",
        help=f"add a user (new password from {NEW_PASSWORD_ENV} or a prompt); "
        "on a database without users, the first admin needs no --user",
    )
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--full-name", default="")
    add.add_argument("--timezone", default="Europe/London", help="zone the user's times are shown in")
    add.set_defaults(handler=add_user)
    ls = usub.add_parser("list", help="list users")
    ls.set_defaults(handler=list_users)
    un = usub.add_parser("unlock", help="unlock an account locked after failed log-ins")
    un.add_argument("name")
    un.set_defaults(handler=unlock)
    pw = usub.add_parser("passwd", help=f"set a password (new one from {NEW_PASSWORD_ENV} or a prompt)")
    pw.add_argument("name")
    pw.set_defaults(handler=passwd)


def _new_password(ctx: CliContext, name: str) -> str:
    first = ctx.password(f"New password for {name}: ", env=NEW_PASSWORD_ENV)
    return first


def add_user(ctx: CliContext) -> int:
    a = ctx.args
    actor = ctx.actor(bootstrap=True)
    if actor is SYSTEM and a.role != Role.ADMIN.value:
        raise CommandFailed("The database has no users yet: create an admin first (--role admin).")
    created = auth.create_user(
        ctx.database(),
        actor,
        a.name,
        a.role,
        _new_password(ctx, a.name),
        full_name=a.full_name,
        timezone=a.timezone,
    )
    ctx.emit(
        {"ok": True, "user": created.username, "role": created.role.value, "by": actor.username},
        f"Added {created.username} ({created.role.value}).",
    )
    return 0


def list_users(ctx: CliContext) -> int:
    db = ctx.database()
    actor = ctx.actor() if ctx.args.user else SYSTEM
    rows = auth.list_users(db, actor)
    lines = [f"{r['username']:<16} {r['role']:<11} {'locked' if r['locked'] else ''}" for r in rows]
    ctx.emit({"ok": True, "users": rows}, "\n".join(lines) or "(no users)")
    return 0


def unlock(ctx: CliContext) -> int:
    actor = ctx.actor()
    auth.unlock(ctx.database(), actor, ctx.args.name)
    ctx.emit({"ok": True, "unlocked": ctx.args.name}, f"Unlocked {ctx.args.name}.")
    return 0


def passwd(ctx: CliContext) -> int:
    actor = ctx.actor()
    auth.set_password(ctx.database(), actor, ctx.args.name, _new_password(ctx, ctx.args.name))
    ctx.emit({"ok": True, "user": ctx.args.name}, f"Password set for {ctx.args.name}.")
    return 0
