"""``opsdesk import trades`` and ``opsdesk export blotter``: JSON summaries and exit codes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from app.models.enums import Role
from app.services import auth, schema
from app.services.db import Database
from app.services.permissions import SYSTEM

from .conftest import PASSWORD
from .helpers import run_cli
from .test_capture_refdata import FIXTURES, build_reference, line, write_csv


@pytest.fixture
def url(tmp_path: Path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    db = Database(url)
    schema.upgrade(db)
    build_reference(db)
    admin = auth.create_user(db, SYSTEM, "boss", Role.ADMIN, PASSWORD)
    auth.create_user(db, admin, "clerk1", Role.CLERK, PASSWORD)
    auth.create_user(db, admin, "audrey", Role.AUDITOR, PASSWORD)
    db.dispose()
    monkeypatch.setenv("OPSDESK_PASSWORD", PASSWORD)
    return url


def test_import_json_summary_and_exit_codes(capsys, url: str, tmp_path: Path) -> None:
    clean = write_csv(tmp_path / "clean.csv", line("T1"), line("T2", account="NOPE"))
    code, out = run_cli(
        capsys,
        "--db",
        url,
        "--user",
        "clerk1",
        "--json",
        "import",
        "trades",
        str(clean),
        "--today",
        "2026-11-20",
    )
    assert code == 0 and out["ok"] is True and out["by"] == "clerk1"
    assert {k: out[k] for k in ("accepted", "repair", "rejected", "duplicates", "skipped", "lines")} == {
        "accepted": 1,
        "repair": 1,
        "rejected": 0,
        "duplicates": 0,
        "skipped": 0,
        "lines": 2,
    }
    assert out["issues"][0]["code"] == "ACCOUNT_UNKNOWN" and out["issues"][0]["line"] == 3
    # The same file again: a duplicate, nothing changed, still a success.
    code, out = run_cli(capsys, "--db", url, "--user", "clerk1", "--json", "import", "trades", str(clean))
    assert code == 0 and out["duplicate_file"] is True and out["duplicates"] == 2 and out["accepted"] == 0
    # Rejected lines: imported, exit code 4, the per-line report written.
    mixed = write_csv(tmp_path / "mixed.csv", line("T3"), line("T4", qty="x"))
    report = tmp_path / "report.csv"
    code, out = run_cli(
        capsys,
        "--db",
        url,
        "--user",
        "clerk1",
        "--json",
        "import",
        "trades",
        str(mixed),
        "--today",
        "2026-11-20",
        "--report",
        str(report),
    )
    assert code == 4 and (out["accepted"], out["rejected"], out["exit_code"]) == (1, 1, 4)
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    assert [(r["line"], r["status"], r["code"]) for r in rows] == [
        ("2", "accepted", ""),
        ("3", "rejected", "BAD_NUMBER"),
    ]


def test_import_refusals_exit_1_and_change_nothing(capsys, url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x00\x01\x02binary")
    code, out = run_cli(capsys, "--db", url, "--user", "clerk1", "--json", "import", "trades", str(bad))
    assert code == 1 and out["ok"] is False and "bad.csv was not imported: it is binary" in out["error"]
    good = write_csv(tmp_path / "good.csv", line("T1"))
    code, out = run_cli(capsys, "--db", url, "--user", "audrey", "--json", "import", "trades", str(good))
    assert code == 1 and "may not import files and messages" in out["error"]
    code, out = run_cli(capsys, "--db", url, "--json", "import", "trades", str(good))
    assert code == 1 and "--user" in out["error"]
    code, out = run_cli(
        capsys, "--db", url, "--user", "clerk1", "--json", "import", "trades", str(good), "--profile", "nope"
    )
    assert code == 1 and "Known profiles: de_oms, default, us_blotter" in out["error"]


def test_import_a_fix_log_and_list_profiles(capsys, url: str) -> None:
    code, out = run_cli(
        capsys,
        "--db",
        url,
        "--user",
        "clerk1",
        "--json",
        "import",
        "trades",
        str(FIXTURES / "quickfix_messages.log"),
        "--today",
        "2026-11-20",
    )
    assert (
        code == 0
        and out["format"] == "fix"
        and (out["accepted"], out["duplicates"], out["skipped"]) == (3, 1, 3)
    )
    code, out = run_cli(capsys, "--db", url, "--json", "import", "profiles")
    assert code == 0 and set(out["profiles"]) == {"default", "de_oms", "us_blotter"}


def test_export_blotter(capsys, url: str, tmp_path: Path) -> None:
    run_cli(
        capsys,
        "--db",
        url,
        "--user",
        "clerk1",
        "import",
        "trades",
        str(write_csv(tmp_path / "t.csv", line("T1"), line("T2", side="SELL"), line("T3", account="NOPE"))),
        "--today",
        "2026-11-20",
    )
    out_file = tmp_path / "sells.csv"
    code, out = run_cli(
        capsys,
        "--db",
        url,
        "--json",
        "export",
        "blotter",
        "--out",
        str(out_file),
        "--side",
        "SELL",
        "--columns",
        "trade_ref,side,net_amount",
    )
    assert code == 0 and out["rows"] == 1 and out["filter"] == {"side": "SELL"}
    assert list(csv.reader(out_file.open(encoding="utf-8"))) == [
        ["Trade ref", "Side", "Net"],
        ["T2", "SELL", "18915.0100"],
    ]  # 18,925 - 9.46 commission - 0.53 SEC fee
    code, out = run_cli(
        capsys,
        "--db",
        url,
        "--user",
        "clerk1",
        "--json",
        "export",
        "blotter",
        "--out",
        str(tmp_path / "repair.xlsx"),
        "--status",
        "repair",
    )
    assert code == 0 and out["rows"] == 1 and out["format"] == "xlsx"
    code, out = run_cli(capsys, "--db", url, "--json", "export", "blotter", "--out", str(tmp_path / "x.txt"))
    assert code == 1 and "give a file ending in .csv or .xlsx" in out["error"]
