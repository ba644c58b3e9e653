"""``opsdesk breaks …`` and ``opsdesk corrections …``: the same services from the shell, with JSON summaries and
exit codes (0 done, 1 refused, 2 usage), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from app.cli import main
from app.models.enums import BreakStatus, BreakType
from app.services.db import Database

from .conftest import PASSWORD
from .test_workflow_breaks import get_break, make_break, make_definition


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSDESK_PASSWORD", PASSWORD)


def run(capsys: pytest.CaptureFixture[str], db: Database, user: str | None, *argv: str) -> tuple[int, dict]:
    args = ["--db", db.url, "--json", *(["--user", user] if user else []), *argv]
    code = main(args)
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_breaks_claim_assign_comment_and_list(capsys, db: Database, users) -> None:
    d = make_definition(db)
    b1 = make_break(db, d, internal_ref="T-1")
    b2 = make_break(db, d, internal_ref="T-2")
    code, out = run(capsys, db, "clerk1", "breaks", "claim", str(b1))
    assert code == 0 and out["owner"] == "clerk1"
    code, out = run(capsys, db, "clerk2", "breaks", "claim", str(b1))
    assert code == 1 and "already claimed by clerk1" in out["error"]
    code, out = run(capsys, db, "clerk2", "breaks", "assign", str(b2), "clerk2")
    assert code == 1 and "may not assign" in out["error"]
    code, _ = run(capsys, db, "supervisor", "breaks", "assign", str(b2), "clerk2")
    assert code == 0 and get_break(db, b2).owner_id == users["clerk2"].user_id
    code, out = run(capsys, db, "clerk1", "breaks", "comment", str(b1), "Asked the custodian")
    assert code == 0 and out["comment"] > 0
    code, out = run(capsys, db, "clerk1", "breaks", "list", "--mine")
    assert [r["id"] for r in out["breaks"]] == [b1]
    code, out = run(capsys, db, None, "breaks", "history", str(b1))
    assert [h["kind"] for h in out["history"]] == ["audit", "comment"]


def test_corrections_propose_list_approve_reject(capsys, db: Database, users) -> None:
    d = make_definition(db)
    ext = make_break(db, d, kind=BreakType.MISSING_INTERNAL, external_ref="C-1", amount="100")
    mine = make_break(db, d, kind=BreakType.MISSING_EXTERNAL, internal_ref="T-1", amount="100")
    other = make_break(db, d, internal_ref="T-2")
    code, out = run(
        capsys,
        db,
        "clerk1",
        "corrections",
        "propose",
        "manual_match",
        "break",
        str(ext),
        "--break",
        str(mine),
        "--reason",
        "same trade",
    )
    assert code == 0
    match_id = out["correction"]
    code, out = run(
        capsys, db, "clerk1", "corrections", "propose", "FORCE_CLOSE", "breaks", str(other), "--reason", "t"
    )
    close_id = out["correction"]
    code, out = run(capsys, db, "supervisor", "corrections", "list")
    assert [c["id"] for c in out["corrections"]] == [match_id, close_id]
    assert all(c["can_decide"] for c in out["corrections"])
    code, out = run(capsys, db, "clerk2", "corrections", "approve", str(match_id))
    assert code == 1 and "may not approve" in out["error"]
    code, out = run(
        capsys, db, "supervisor", "corrections", "reject", str(close_id), "--comment", "not timing"
    )
    assert code == 0 and out["status"] == "REJECTED"
    code, out = run(capsys, db, "supervisor", "corrections", "approve", str(match_id), str(close_id))
    assert code == 1 and out["decided"] == [match_id] and str(close_id) in out["refused"]
    assert get_break(db, ext).status == get_break(db, mine).status == BreakStatus.RESOLVED
    code, out = run(capsys, db, None, "corrections", "show", str(match_id))
    assert out["correction"]["status"] == "APPROVED"
    code, out = run(capsys, db, None, "corrections", "list", "--status", "rejected")
    assert [c["id"] for c in out["corrections"]] == [close_id]


def test_corrections_thresholds_are_listed_and_set_by_supervisors_only(capsys, db: Database, users) -> None:
    code, out = run(
        capsys, db, "supervisor", "corrections", "thresholds", "--set", "eur=250000", "--set", "*=1e6"
    )
    assert code == 0 and Decimal(out["thresholds"]["EUR"]) == Decimal("250000")
    assert Decimal(out["thresholds"]["*"]) == Decimal("1000000")
    code, out = run(capsys, db, "clerk1", "corrections", "thresholds", "--set", "EUR=1")
    assert code == 1 and out["error"]
    code, out = run(capsys, db, "supervisor", "corrections", "thresholds", "--set", "EURO=5")
    assert code == 1 and "3-letter currency" in out["error"]
    code, out = run(capsys, db, "supervisor", "corrections", "thresholds", "--set", "EUR")
    assert code == 2 and "CURRENCY=AMOUNT" in out["error"]
    code, out = run(capsys, db, None, "corrections", "thresholds")
    assert code == 0 and Decimal(out["thresholds"]["EUR"]) == Decimal(
        "250000"
    )  # the clerk's attempt changed nothing
