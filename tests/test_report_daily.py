"""The end-of-day report: the XLSX holds the KPIs, health checklist, breached items and native charts; the PDF is a
PDF with the same KPI text; the CLI writes either by extension and refuses anything else."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import zlib
from pathlib import Path

import pytest
from openpyxl import load_workbook

from app.cli import main as cli_main
from app.models.enums import TradeStatus
from app.services.reports import daily
from app.services.sla import rules

from .conftest import PASSWORD
from .test_sla_support import SlaBook, utc

DAY = dt.date(2026, 11, 19)


@pytest.fixture
def report(db, users) -> daily.DailyReport:
    rules.ensure_default_slas(db, users["supervisor"])
    book = SlaBook(db)
    book.trade(trade_date=DAY, affirmed_at=utc(2026, 11, 19, 20), status=TradeStatus.AFFIRMED)
    book.trade(trade_date=DAY)  # affirmation due 02:00 UTC on the 20th: after the report's end of day
    # Repair due 13:00 UTC: breached within the day, owned by clerk1.
    book.trade(
        trade_date=DAY,
        status=TradeStatus.REPAIR,
        created_at=utc(2026, 11, 19, 9),
        owner_id=users["clerk1"].user_id,
    )
    return daily.build_daily(db, users["supervisor"], DAY, zone="Europe/London")


def test_xlsx_holds_kpis_health_breached_items_and_charts(report, tmp_path: Path) -> None:
    out = daily.write_report(report, tmp_path / "eod.xlsx")
    wb = load_workbook(out)
    assert {
        "Summary",
        "SLAs",
        "Breached items",
        "Settlement & STP",
        "Break ageing",
        "Throughput",
        "Affirmation",
    } <= set(wb.sheetnames)
    summary = wb["Summary"]
    cells = {
        summary.cell(row=r, column=1).value: summary.cell(row=r, column=2).value
        for r in range(1, summary.max_row + 1)
    }
    h = report.dashboard.headline()
    assert cells["Open SLA items"] == f"{h['open_items']:,}"
    assert cells["Breached"] == f"{h['breached']:,}" and h["breached"] > 0
    checks = [summary.cell(row=r, column=2).value for r in range(1, summary.max_row + 1)]
    assert "Audit chain intact" in checks and "Straight-through processing" in checks
    # Breached items: exactly the evaluation's breached items, by id, with their trade references.
    sheet = wb["Breached items"]
    header = [c.value for c in sheet[2]]
    rows = [dict(zip(header, [c.value for c in r], strict=True)) for r in sheet.iter_rows(min_row=3)]
    expected = report.evaluation.breached()
    assert sorted((r["SLA"], r["Id"]) for r in rows) == sorted(
        zip(expected["sla_name"], expected["item_id"], strict=True)
    )
    assert all(r["Reference"].startswith("T-") for r in rows if r["Item"] == "trade")
    assert "clerk1" in {r["Owner"] for r in rows}
    # Native charts, not pictures.
    assert len(wb["SLAs"]._charts) == 1 and len(wb["Throughput"]._charts) == 1
    slas = wb["SLAs"]
    codes = [slas.cell(row=r, column=1).value for r in range(2, slas.max_row + 1)]
    assert codes[: len(rules.DEFAULT_SLAS)] == [d.code for d in rules.DEFAULT_SLAS]


def _pdf_text(data: bytes) -> str:
    """The page content streams, decoded (ASCII85) and inflated when compressed."""
    out = []
    for body in re.findall(rb"stream\r?\n(.*?)\s*endstream", data, re.S):
        if body.rstrip().endswith(b"~>"):  # reportlab's ASCII85 layer over Flate
            body = base64.a85decode(body.rstrip()[:-2])
        try:
            out.append(zlib.decompress(body).decode("latin-1"))
        except zlib.error:
            out.append(body.decode("latin-1"))
    return "\n".join(out)


def test_pdf_is_a_pdf_with_the_kpis(report, tmp_path: Path) -> None:
    plain = daily.write_report(report, tmp_path / "eod.pdf", compress=False)
    data = plain.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    text = data.decode("latin-1")
    h = report.dashboard.headline()
    assert "Open SLA items" in text and "Health checklist" in text and "Breached items" in text
    assert f"({h['open_items']:,})" in text  # the KPI value as drawn
    assert "Trade affirmed by 21:00 ET" in text
    # The compressed file (the default) carries the same text once inflated.
    packed = daily.write_report(report, tmp_path / "eod2.pdf")
    assert packed.stat().st_size < plain.stat().st_size
    assert "Health checklist" in _pdf_text(packed.read_bytes())


def test_cli_writes_either_format_and_refuses_others(sqlite_db, tmp_path: Path, capsys, monkeypatch) -> None:
    from app.models.enums import Role
    from app.services import auth
    from app.services.permissions import SYSTEM

    auth.create_user(sqlite_db, SYSTEM, "sup", Role.SUPERVISOR, PASSWORD)
    monkeypatch.setenv("OPSDESK_PASSWORD", PASSWORD)
    url = sqlite_db.url
    assert cli_main(["--db", url, "--user", "sup", "sla", "defaults"]) == 0
    SlaBook(sqlite_db).trade(trade_date=DAY)
    capsys.readouterr()
    assert (
        cli_main(["--db", url, "sla", "evaluate", "--at", "2026-11-20T12:00+00:00", "--ids", "5", "--json"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    affirm = next(x for x in summary["slas"] if x["code"] == "AFFIRM_SAME_DAY")
    assert summary["recorded"] and affirm["counts"]["BREACHED"] == 1 and len(affirm["ids"]["BREACHED"]) == 1
    with pytest.raises(SystemExit) as usage:  # a time without its offset is a usage error
        cli_main(["--db", url, "sla", "evaluate", "--at", "2026-11-20T12:00"])
    assert usage.value.code == 2
    for name in ("r.xlsx", "r.pdf"):
        assert (
            cli_main(["--db", url, "report", "daily", "--date", "2026-11-19", "--out", str(tmp_path / name)])
            == 0
        )
        assert (tmp_path / name).stat().st_size > 1000
    capsys.readouterr()
    assert (
        cli_main(["--db", url, "report", "daily", "--date", "2026-11-19", "--out", str(tmp_path / "r.txt")])
        == 2
    )
    assert ".xlsx or .pdf" in capsys.readouterr().err
