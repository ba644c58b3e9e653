"""What every command shares: the database, the acting user, and output as text or JSON."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

from app.config import ENV_PASSWORD
from app.services import auth, schema
from app.services.db import Database
from app.services.jsonable import to_jsonable
from app.services.permissions import SYSTEM, Actor

# Verbs several areas share (``opsdesk import trades``, ``opsdesk import messages``, ``opsdesk export blotter`` ...):
# the first module to ask creates the verb's parser, each module then adds its own WHAT under it.
GROUPS: dict[str, str] = {
    "import": "import files and messages (trades, settlement messages, statements)",
    "export": "export what a pane shows",
}


def group(sub: argparse._SubParsersAction, verb: str) -> argparse._SubParsersAction:
    """The sub-command list under a shared verb such as ``import``, created on first use."""
    parser = sub.choices.get(verb)
    if parser is None:
        parser = sub.add_parser(verb, help=GROUPS[verb])
        parser.add_subparsers(dest=f"{verb}_what", metavar="WHAT", required=True)
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return actions[0]


def json_flag(p: argparse.ArgumentParser) -> None:
    """``--json`` accepted after the sub-command too (``recon run NAME --json``), not only before it; SUPPRESS
    keeps an absent one from overwriting the global flag."""
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print a JSON summary")


class CommandFailed(Exception):
    """A refusal detected by the CLI itself (missing --user and the like)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class CliContext:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._db: Database | None = None

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def database(self, *, upgrade: bool = True) -> Database:
        """Open the database; bring its schema up to date first, as the app does on start."""
        if self._db is None:
            self._db = Database(self.args.db)
            if upgrade:
                schema.ensure_current(self._db)
        return self._db

    def password(self, prompt: str = "Password: ", env: str = ENV_PASSWORD) -> str:
        value = os.environ.get(env)
        if value:
            return value
        if not sys.stdin.isatty():
            raise CommandFailed(f"No password: set {env} or run in a terminal to be prompted.")
        return getpass.getpass(prompt)

    def actor(self, *, bootstrap: bool = False) -> Actor:
        """Sign in as --user. With ``bootstrap``, a database with no users at all is served as the system."""
        db = self.database()
        if bootstrap and not auth.has_users(db):
            return SYSTEM
        if not self.args.user:
            raise CommandFailed("This command changes data: name the user to act as with --user NAME.")
        return auth.login(db, self.args.user, self.password(f"Password for {self.args.user}: "))

    def emit(self, summary: dict[str, Any], text: str) -> None:
        if self.json:
            print(json.dumps(to_jsonable(summary), indent=2, sort_keys=True))
        else:
            print(text)

    def fail(self, message: str, code: int) -> None:
        if self.json:
            print(json.dumps({"ok": False, "error": message, "exit_code": code}, indent=2))
        print(f"opsdesk: {message}", file=sys.stderr)

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
