"""The ``opsdesk`` command line: the same services the GUI calls, for scripts, operators and CI.

Exit codes: 0 ok, 1 input refused (the message says why), 2 usage error, 3 database unavailable or too new.
Each sub-command lives in a small module that registers its parser and a handler; later areas add theirs in
``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app import __version__
from app.services.errors import OpsDeskError

from . import database, demo, gui, messages, recon, settle, sla, statements, trades, users, workflow
from .common import CliContext, CommandFailed

COMMAND_MODULES = [gui, database, users, demo, trades, sla, recon, statements, settle, workflow, messages]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opsdesk",
        description="OpsDesk back-office workstation. Without a command, starts the GUI.",
    )
    parser.add_argument("--version", action="version", version=f"opsdesk {__version__}")
    parser.add_argument(
        "--db",
        metavar="URL",
        help="database URL (default: OPSDESK_DATABASE_URL, else the "
        "SQLite file in your data directory); postgresql://user@host/db for the team database",
    )
    parser.add_argument(
        "--user",
        metavar="NAME",
        help="act as this user (password from OPSDESK_PASSWORD or a "
        "prompt); needed by commands that change data",
    )
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON summary")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args.command = "gui"
        args.handler = gui.run
    ctx = CliContext(args)
    try:
        return int(args.handler(ctx) or 0)
    except CommandFailed as err:
        ctx.fail(str(err), err.exit_code)
        return err.exit_code
    except OpsDeskError as err:
        ctx.fail(str(err), err.exit_code)
        return err.exit_code
    except KeyboardInterrupt:
        ctx.fail("Interrupted; nothing was committed for the operation in progress.", 1)
        return 1
    finally:
        ctx.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
