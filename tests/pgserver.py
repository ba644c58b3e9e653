"""A throwaway PostgreSQL server for the test suite, started from the server binaries on the machine.

PostgreSQL refuses to run as root, so when the suite runs as root the server runs as the ``postgres`` user (via
``runuser``). Set OPSDESK_TEST_PG_URL to use an existing server instead (a superuser URL; the suite creates and
drops its own databases there).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class PgUnavailable(RuntimeError):
    pass


def _find(binary: str) -> str | None:
    found = shutil.which(binary)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{binary}"), reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempPostgres:
    def __init__(self) -> None:
        self.initdb = _find("initdb")
        self.pg_ctl = _find("pg_ctl")
        if not self.initdb or not self.pg_ctl:
            raise PgUnavailable("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
        self.as_user: list[str] = []
        self.owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError as err:
                raise PgUnavailable(
                    "running as root and there is no 'postgres' user to run the server"
                ) from err
            self.owner = (pw.pw_uid, pw.pw_gid)
            runuser = shutil.which("runuser")
            self.as_user = (
                [runuser, "-u", "postgres", "--"] if runuser else ["su", "postgres", "-s", "/bin/sh", "-c"]
            )
        self.dir = Path(tempfile.mkdtemp(prefix="opsdesk-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        if self.owner:
            os.chown(self.dir, *self.owner)

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self.as_user and self.as_user[0] == "su":
            cmd = [*self.as_user, " ".join(cmd)]
        else:
            cmd = [*self.as_user, *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise PgUnavailable(f"{' '.join(args[:2])} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def start(self) -> str:
        self._run(
            self.initdb,
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(
            self.pg_ctl,
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        with contextlib.suppress(PgUnavailable):  # already gone: nothing left to stop
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)
