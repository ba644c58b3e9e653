"""``opsdesk settle generate | penalties | fails`` on both backends: JSON summaries, idempotence, exit codes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.cli import main
from app.models.enums import InstructionStatus, Side
from app.services.db import Database
from app.services.permissions import Actor

from .conftest import PASSWORD
from .helpers import run_cli
from .test_settlement_lifecycle import ISD, add_trade, make_book, make_instruction


def test_generate_penalties_and_fails_from_the_shell(
    db: Database, users: dict[str, Actor], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSDESK_PASSWORD", PASSWORD)
    book = make_book(db)
    add_trade(db, book, cp=book.cp_net, side=Side.BUY, qty="100")
    add_trade(db, book, cp=book.cp_net, side=Side.SELL, qty="40")
    add_trade(db, book, side=Side.SELL, qty="10")
    failing = make_instruction(db, book, InstructionStatus.FAILED, side=Side.SELL, reason="LACK")
    base = ["--db", db.url]

    code, out = run_cli(capsys, *base, "--json", "--user", "clerk1", "settle", "generate", "--gross")
    assert (
        code == 0 and out["ok"] and out["instructions"] == 3 and out["netted"] == 0 and out["net"] == "gross"
    )
    code, out = run_cli(
        capsys, *base, "--json", "--user", "clerk1", "settle", "generate", "--date", ISD.isoformat()
    )
    assert code == 0 and out["instructions"] == 0  # idempotent

    code, out = run_cli(
        capsys, *base, "--json", "--user", "clerk1", "settle", "penalties", "--as-of", "2026-11-24"
    )
    assert (
        code == 0
        and out["penalties_added"] == 2
        and Decimal(out["totals"]["EUR"]["DEBIT"]) == Decimal("4.00")
    )
    code, out = run_cli(capsys, *base, "--user", "clerk1", "settle", "penalties", "--as-of", "2026-11-24")
    assert code == 0 and "No new penalties" in out["text"]

    code, out = run_cli(
        capsys, *base, "--json", "--user", "auditor", "settle", "fails", "--as-of", "2026-11-24"
    )
    assert code == 0 and out["count"] >= 1
    item = next(i for i in out["items"] if i["id"] == failing)
    assert (
        item["reason_code"] == "LACK"
        and item["age_days"] == 2
        and Decimal(item["penalty_debit"]) == Decimal(4)
    )
    code, out = run_cli(capsys, *base, "--user", "auditor", "settle", "fails", "--as-of", "2026-11-24")
    assert code == 0 and "lack of securities" in out["text"] and "failing or overdue" in out["text"]


def test_refusals_and_usage(
    db: Database, users: dict[str, Actor], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSDESK_PASSWORD", PASSWORD)
    base = ["--db", db.url]
    code, out = run_cli(capsys, *base, "--json", "settle", "generate")
    assert code == 1 and "--user" in out["error"]
    code, out = run_cli(capsys, *base, "--json", "--user", "auditor", "settle", "generate")
    assert code == 1 and "may not" in out["error"]
    with pytest.raises(SystemExit) as info:
        main([*base, "settle", "generate", "--net", "--gross"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main([*base, "settle", "penalties", "--as-of", "not-a-date"])
    assert info.value.code == 2
