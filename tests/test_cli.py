"""The ``opsdesk`` command line: exit codes, JSON summaries, acting as a named user, audited as that user."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from app.cli import main
from app.models import AuditEntry
from app.services.db import Database

from .conftest import PASSWORD
from .helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.sqlite'}"


def test_upgrade_then_status(capsys, url: str) -> None:
    code, out = run_cli(capsys, "--db", url, "--json", "db", "upgrade")
    assert code == 0 and out["from"] is None and out["to"]
    code, out = run_cli(capsys, "--db", url, "--json", "db", "status")
    assert code == 0 and out["up_to_date"] is True


def test_first_admin_then_users_added_as_that_admin(capsys, url: str, monkeypatch) -> None:
    monkeypatch.setenv("OPSDESK_NEW_PASSWORD", PASSWORD)
    code, out = run_cli(capsys, "--db", url, "--json", "user", "add", "boss", "--role", "admin")
    assert code == 0 and out["by"] == "system"
    # Now the database has a user: the next change must name who acts.
    code, out = run_cli(capsys, "--db", url, "--json", "user", "add", "clerk1", "--role", "clerk")
    assert code == 1 and "--user" in out["error"]
    monkeypatch.setenv("OPSDESK_PASSWORD", PASSWORD)
    code, out = run_cli(
        capsys, "--db", url, "--user", "boss", "--json", "user", "add", "clerk1", "--role", "clerk"
    )
    assert code == 0 and out["by"] == "boss"
    db = Database(url)
    with db.read() as s:
        entry = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "user.create").order_by(AuditEntry.id.desc())
        ).first()
    db.dispose()
    assert entry.username == "boss" and entry.after["username"] == "clerk1"


def test_refusals_have_exit_code_1_and_a_message(capsys, url: str, monkeypatch) -> None:
    monkeypatch.setenv("OPSDESK_NEW_PASSWORD", PASSWORD)
    run_cli(capsys, "--db", url, "user", "add", "boss", "--role", "admin")
    monkeypatch.setenv("OPSDESK_PASSWORD", "wrong-password")
    code, out = run_cli(
        capsys, "--db", url, "--user", "boss", "--json", "user", "add", "x1", "--role", "clerk"
    )
    assert code == 1 and out["error"] == "Wrong user name or password."
    monkeypatch.setenv("OPSDESK_PASSWORD", PASSWORD)
    code, out = run_cli(
        capsys, "--db", url, "--user", "boss", "--json", "user", "add", "x1", "--role", "clerk"
    )
    assert code == 0
    code, out = run_cli(capsys, "--db", url, "--user", "x1", "--json", "user", "add", "x2", "--role", "admin")
    assert code == 1 and "may not manage users" in out["error"]


def test_usage_errors_exit_2(url: str) -> None:
    with pytest.raises(SystemExit) as err:
        main(["--db", url, "user", "add", "someone", "--role", "trader"])
    assert err.value.code == 2


def test_unreachable_database_exit_3(capsys) -> None:
    code, out = run_cli(capsys, "--db", "postgresql://nobody@127.0.0.1:1/none", "--json", "db", "status")
    assert code == 3 and "Cannot connect" in out["error"]


def test_audit_verify(capsys, url: str, monkeypatch) -> None:
    monkeypatch.setenv("OPSDESK_NEW_PASSWORD", PASSWORD)
    run_cli(capsys, "--db", url, "user", "add", "boss", "--role", "admin")
    code, out = run_cli(capsys, "--db", url, "--json", "audit", "verify")
    assert code == 0 and out["intact"] is True and out["entries"] == 1


def test_main_py_is_the_same_cli(url: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--db", url, "--json", "db", "upgrade"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ok"] is True
