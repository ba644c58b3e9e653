"""Exporting the blotter: the file holds exactly what fetch_page returns for the same filter and sort."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from app.models.enums import Role
from app.services import blotter
from app.services.blotter import COLUMN_KEYS, BlotterFilter, Sort
from app.services.capture import export as export_module
from app.services.capture import import_trades
from app.services.capture.export import ExportCancelled, default_columns, export_blotter
from app.services.db import Database
from app.services.errors import ValidationFailed
from app.services.permissions import Actor

from .test_capture_refdata import SAP, TODAY, build_reference, line, write_csv

CLERK = Actor(user_id=None, username="c", role=Role.CLERK, timezone="America/New_York")


def _book(db: Database, tmp_path: Path) -> None:
    build_reference(db)
    rows = [
        line(
            f"T{i:03d}",
            qty=str(100 + i),
            price=f"{189 + i / 100:.2f}",
            side="SELL" if i % 2 else "BUY",
            account="NOPE" if i % 7 == 0 else "ACC1",
            time=f"{10 + i % 6}:0{i % 10}:00",
        )
        for i in range(60)
    ]
    rows += [line(f"S{i}", isin=SAP, price="120", ccy="EUR", qty=str(i + 1)) for i in range(5)]
    import_trades(db, CLERK, write_csv(tmp_path / "book.csv", *rows), today=TODAY)


def _all_pages(db: Database, flt: BlotterFilter, sort: Sort) -> list[tuple]:
    rows, after = [], None
    while True:
        page = blotter.fetch_page(db, CLERK, flt, sort, limit=7, after=after)
        rows += page.rows
        if len(page.rows) < 7:
            return rows
        after = page.last_key


@pytest.mark.parametrize(
    "sort", [Sort("trade_date", True), Sort("gross_amount", False), Sort("settlement_date", True)]
)
def test_csv_export_equals_the_blotter(db: Database, tmp_path: Path, sort: Sort) -> None:
    _book(db, tmp_path)
    flt = BlotterFilter(statuses=("VALIDATED", "REPAIR"), account=None, side="BUY")
    out = tmp_path / "blotter.csv"
    result = export_blotter(db, CLERK, out, flt, sort, columns=COLUMN_KEYS, page_size=10)
    expected = _all_pages(db, flt, sort)
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][0] == "Trade ref" and len(rows) - 1 == result.rows == len(expected) == 35
    zone = export_module._zone(CLERK)
    assert rows[1:] == [[export_module.csv_value(v, zone) for v in r] for r in expected]
    # Exact decimals, timestamps in the user's zone with the offset.
    first = dict(zip(COLUMN_KEYS, rows[1], strict=True))
    t = dict(zip(COLUMN_KEYS, expected[0], strict=True))
    assert Decimal(first["gross_amount"]) == t["gross_amount"]
    assert dt.datetime.fromisoformat(first["trade_time"]) == t["trade_time"] and first["trade_time"].endswith(
        "-05:00"
    )


def test_xlsx_export_equals_the_blotter(db: Database, tmp_path: Path) -> None:
    _book(db, tmp_path)
    flt = BlotterFilter(exception_code="ACCOUNT_UNKNOWN")
    out = tmp_path / "repairs.xlsx"
    result = export_blotter(db, CLERK, out, flt, Sort("trade_ref", False))
    expected = _all_pages(db, flt, Sort("trade_ref", False))
    ws = openpyxl.load_workbook(out, read_only=True).worksheets[0]
    rows = list(ws.iter_rows(values_only=True))
    keys = default_columns()
    assert result.columns == keys and rows[0][0] == "Trade ref" and len(rows) - 1 == len(expected) == 9
    for got, want in zip(rows[1:], expected, strict=True):
        w = dict(zip(COLUMN_KEYS, want, strict=True))
        g = dict(zip(keys, got, strict=True))
        assert g["trade_ref"] == w["trade_ref"] and g["status"] == w["status"].value
        assert Decimal(str(g["gross_amount"])) == w["gross_amount"]
        assert (
            g["trade_date"].date() == w["trade_date"] and g["settlement_date"].date() == w["settlement_date"]
        )


def test_export_refusals_leave_no_file(sqlite_db: Database, tmp_path: Path, monkeypatch) -> None:
    _book(sqlite_db, tmp_path)
    with pytest.raises(ValidationFailed, match="give a file ending in .csv or .xlsx"):
        export_blotter(sqlite_db, CLERK, tmp_path / "out.pdf")
    with pytest.raises(ValidationFailed, match="Unknown blotter columns: colour"):
        export_blotter(sqlite_db, CLERK, tmp_path / "out.csv", columns=["trade_ref", "colour"])
    monkeypatch.setattr(export_module, "XLSX_MAX_ROWS", 10)
    with pytest.raises(ValidationFailed, match="65 trades match this filter but an XLSX sheet holds 10"):
        export_blotter(sqlite_db, CLERK, tmp_path / "out.xlsx")
    with pytest.raises(ExportCancelled):
        export_blotter(
            sqlite_db,
            CLERK,
            tmp_path / "out.csv",
            page_size=10,
            progress=lambda d, t, s: None,
            cancel=lambda: True,
        )
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith((".out", "out"))]
