"""Two-file reconciliation for analysts, from the service and from ``opsdesk recon files`` (no database, no user):
exact counts, every tolerance kind, duplicate keys counted apart, XLSX in and out, exact decimals, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from app.cli import main
from app.services.errors import ValidationFailed
from app.services.recon.files import reconcile_files

FIXTURES = Path(__file__).parent / "fixtures" / "recon"
OURS, THEIRS = FIXTURES / "ours.csv", FIXTURES / "theirs.csv"
COMPARE = ["quantity", "amount:abs=0.01", "settle_date:days=1", "counterparty"]
EXPECTED = {"matched": 2, "mismatched": 3, "missing_left": 1, "missing_right": 1, "duplicate_keys": 1}


def counts(summary: dict) -> dict:
    return {k: summary[k] for k in EXPECTED}


def test_counts_and_break_report(tmp_path: Path) -> None:
    out = tmp_path / "breaks.csv"
    result = reconcile_files(OURS, THEIRS, ["trade_id"], COMPARE, out=out)
    # T1 agrees within a cent and a day, T7 0.30 = 0.3; T2 quantity, T3 four days, T6 counterparty's case;
    # T4 only ours, T8 only theirs; T5 twice in ours: a duplicate key, counted nowhere else.
    assert counts(result.summary) == EXPECTED
    report = pd.read_csv(out, dtype=str, keep_default_na=False)
    by_key = {r["trade_id"]: r for r in report.to_dict("records")}
    assert set(by_key) == {"T2", "T3", "T4", "T5", "T6", "T8"}
    assert by_key["T2"]["status"] == "MISMATCH" and by_key["T2"]["fields"] == "quantity"
    assert (by_key["T2"]["left_quantity"], by_key["T2"]["right_quantity"]) == ("50", "55")
    assert by_key["T3"]["fields"] == "settle_date" and by_key["T6"]["fields"] == "counterparty"
    assert by_key["T4"]["status"] == "MISSING_RIGHT" and by_key["T8"]["status"] == "MISSING_LEFT"
    assert by_key["T5"]["status"] == "DUPLICATE_KEY" and by_key["T5"]["left_line"] == "6 7"


def test_tolerances_change_the_outcome() -> None:
    exact = reconcile_files(OURS, THEIRS, ["trade_id"], ["amount", "settle_date"])
    # Without tolerances T1 differs (a cent and a day); T3 still differs; T7 0.30 = 0.3 as numbers.
    assert exact.summary["mismatched"] == 2 and exact.summary["matched"] == 3
    loose = reconcile_files(OURS, THEIRS, ["trade_id"], ["quantity:rel=0.1", "settle_date:days=5"])
    assert loose.summary["mismatched"] == 0 and loose.summary["matched"] == 5


def test_composite_keys_and_default_compare(tmp_path: Path) -> None:
    result = reconcile_files(OURS, THEIRS, ["trade_id", "isin"])  # every common column compared exactly
    assert set(result.summary["compare"]) == {"quantity", "amount", "settle_date", "counterparty"}
    assert counts(result.summary) == {
        "matched": 1,
        "mismatched": 4,
        "missing_left": 1,
        "missing_right": 1,
        "duplicate_keys": 1,
    }


def test_xlsx_in_and_out_and_exact_decimals(tmp_path: Path) -> None:
    left = pd.DataFrame({"id": ["A", "B", "C"], "amount": ["0.1", "0.2", "1234567890123.1234"]})
    right = pd.DataFrame({"id": ["A", "B", "C"], "amount": ["0.10", "0.2000", "1234567890123.1235"]})
    left.to_excel(tmp_path / "l.xlsx", index=False)
    right.to_excel(tmp_path / "r.xlsx", index=False)
    result = reconcile_files(
        tmp_path / "l.xlsx", tmp_path / "r.xlsx", ["id"], ["amount"], out=tmp_path / "o.xlsx"
    )
    assert counts(result.summary) == {
        "matched": 2,
        "mismatched": 1,
        "missing_left": 0,
        "missing_right": 0,
        "duplicate_keys": 0,
    }
    report = pd.read_excel(tmp_path / "o.xlsx", dtype=str)
    assert report["id"].tolist() == ["C"]
    # 0.1 + 0.2 against 0.3 as a relative tolerance of zero: exactly equal, no float residue.
    (tmp_path / "a.csv").write_text("id,x\nK,0.3\n")
    (tmp_path / "b.csv").write_text("id,x\nK,0.30000000000000004\n")
    assert reconcile_files(tmp_path / "a.csv", tmp_path / "b.csv", ["id"], ["x"]).summary["mismatched"] == 1
    assert (
        reconcile_files(tmp_path / "a.csv", tmp_path / "b.csv", ["id"], ["x:abs=0.000001"]).summary["matched"]
        == 1
    )


@pytest.mark.parametrize(
    ("keys", "compare", "message"),
    [
        (["trade_ref"], [], r"LEFT file ours\.csv has no column 'trade_ref'"),
        (["trade_id"], ["amount:abz=1"], r"bad tolerance 'abz=1'"),
        (["trade_id"], ["amount:abs=ten"], r"'ten' in 'abs=ten' is not a number"),
        (["trade_id"], ["settle_date:abs=1"], r"LEFT file ours\.csv, line 2, column 'settle_date'"),
        (
            ["trade_id"],
            ["counterparty:days=1"],
            r"line 2, column 'counterparty': 'NORTHBRIDGE' is not a date",
        ),
    ],
)
def test_clear_errors(keys: list[str], compare: list[str], message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        reconcile_files(OURS, THEIRS, keys, compare)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="no such file"):
        reconcile_files(tmp_path / "nope.csv", THEIRS, ["trade_id"])
    (tmp_path / "bad.xlsx").write_bytes(b"this is not a workbook")
    with pytest.raises(ValidationFailed, match=r"LEFT file bad\.xlsx: unreadable"):
        reconcile_files(tmp_path / "bad.xlsx", THEIRS, ["trade_id"])
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValidationFailed, match="empty"):
        reconcile_files(OURS, tmp_path / "empty.csv", ["trade_id"])
    with pytest.raises(ValidationFailed, match=r"\.csv or \.xlsx"):
        reconcile_files(OURS, THEIRS, ["trade_id"], out=tmp_path / "x.pdf")


def test_cli_files_needs_no_database_and_no_user(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPSDESK_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")  # would fail if opened
    shutil.copy(OURS, tmp_path / "ours.csv")
    args = ["recon", "files", str(tmp_path / "ours.csv"), str(THEIRS), "--key", "trade_id"]
    for c in COMPARE:
        args += ["--compare", c]
    code = main([*args, "--out", str(tmp_path / "b.xlsx"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"] is True and counts(out) == EXPECTED
    assert (tmp_path / "b.xlsx").exists() and out["out"] == str(tmp_path / "b.xlsx")
    code = main(["--json", *args[:-2], "--compare", "amount:pct=1"])
    err = json.loads(capsys.readouterr().out)
    assert code == 1 and err["ok"] is False and "bad tolerance" in err["error"]
    with pytest.raises(SystemExit) as exit_:
        main(["recon", "files", str(OURS), str(THEIRS)])  # --key is required: usage error
    assert exit_.value.code == 2
