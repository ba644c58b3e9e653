"""``opsdesk import statements`` and ``opsdesk statements list``: JSON summaries, text output and exit codes."""

from __future__ import annotations

import json

import pytest

from app.cli import main
from app.services.db import Database
from app.services.permissions import Actor

from .conftest import PASSWORD
from .helpers import REAL_FIXTURES

FIXTURES = REAL_FIXTURES
ABN = FIXTURES / "mt940/jejik-mt940/abnamro.txt"
BROKEN = FIXTURES / "mt940/wolph-mt940/self-provided/february_30.sta"
CAMT = FIXTURES / "camt/genkgo-camt/camt053.v2.multi.statement.xml"


@pytest.fixture
def url(db: Database, users: dict[str, Actor], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPSDESK_PASSWORD", PASSWORD)
    return db.engine.url.render_as_string(hide_password=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    out = cap.out
    return code, (json.loads(out) if out.strip().startswith("{") else {"text": out}), cap.err


def test_import_json_summary_and_exit_codes(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, _ = run(
        capsys, "--db", url, "--user", "clerk1", "--json", "import", "statements", str(ABN), str(CAMT)
    )
    assert code == 0 and out["ok"] is True and out["by"] == "clerk1"
    assert (out["files_imported"], out["statements_imported"], out["lines_imported"]) == (2, 4, 12)
    assert out["balance_mismatches"] == 2 and out["sequence_findings"] >= 1
    abn = out["results"][0]
    assert abn["format"] == "mt940" and [s["sequence_number"] for s in abn["statements"]] == [
        "19321/1",
        "19322/1",
    ]
    assert "BALANCE_MISMATCH" in [w["code"] for w in abn["statements"][0]["warnings"]]

    code, out, _ = run(capsys, "--db", url, "--user", "clerk1", "--json", "import", "statements", str(ABN))
    assert code == 0 and out["files_duplicate"] == 1 and out["statements_imported"] == 0

    code, out, err = run(
        capsys, "--db", url, "--user", "clerk1", "--json", "import", "statements", str(BROKEN)
    )
    assert code == 1 and out["ok"] is False and out["files_refused"] == 1
    assert "value date 160230 is not a calendar date" in out["results"][0]["reason"]


def test_text_output_and_list(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, _ = run(capsys, "--db", url, "--user", "clerk1", "import", "statements", str(ABN), str(BROKEN))
    text = out["text"]
    assert code == 1
    assert "abnamro.txt (mt940): 2 statements, 2 imported, 0 already there" in text
    assert "BALANCE_CHAIN" in text and "REFUSED february_30.sta" in text
    code, out, _ = run(capsys, "--db", url, "--json", "statements", "list")
    assert code == 0 and [r["sequence_number"] for r in out["statements"]] == ["19322/1", "19321/1"]
    assert out["statements"][0]["lines"] == 2


def test_usage_errors(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, _, err = run(capsys, "--db", url, "import", "statements", str(ABN))
    assert code == 1 and "--user" in err
    with pytest.raises(SystemExit) as info:
        main(["--db", url, "--user", "clerk1", "import", "statements", str(ABN), "--format", "pdf"])
    assert info.value.code == 2
    code, out, _ = run(capsys, "--db", url, "--user", "auditor", "--json", "import", "statements", str(ABN))
    assert code == 1 and out["ok"] is False
