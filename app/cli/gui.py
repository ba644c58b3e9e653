"""``opsdesk gui`` (also what ``opsdesk`` and ``python main.py`` do without a command)."""

from __future__ import annotations

import argparse

from .common import CliContext


def register(sub: argparse._SubParsersAction) -> None:
    gui = sub.add_parser("gui", help="start the workstation window (the default)")
    gui.set_defaults(handler=run)


def run(ctx: CliContext) -> int:
    from app.gui import run_gui  # Qt is imported only when the window is wanted

    return run_gui(ctx.args.db)
