"""Counterparty confirmations and custodian positions as CSV/XLSX through mapping profiles."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from app.models import Statement, StatementLine
from app.models.enums import StatementKind
from app.services.db import Database
from app.services.errors import ValidationFailed
from app.services.permissions import Actor
from app.services.statements import StatementFileRefused, import_statements, read_statements
from app.services.statements.csv_profiles import load_profile

CONFIRMS = (
    "reference,our_reference,trade_date,settlement_date,isin,side,quantity,price,amount,currency,counterparty\n"
    "C-1,T-100,2024-03-01,2024-03-05,DE0005140008,BUY,1000,12.456,12456.00,EUR,BROKA\n"
    "C-2,,2024-03-01,2024-03-05,US0378331005,S,50,170.5,8525.00,USD,BROKA\n"
    "C-3,T-102,2024-03-02,2024-03-06,DE0005140008,SELL,10,12.5,125.00,EUR,BROKB\n"
)
DE_POSITIONS = (
    "Depot;ISIN;Bezeichnung;Bestand;Kurs;Kurswert;Währung;Stichtag\n"
    "4711;DE0005140008;Deutsche Bank;1.250,5;12,456;15.576,23;EUR;31.01.2024\n"
    "4711;XS0222550880;Lanxess 05/12;300.000;101,25;303.750,00;EUR;31.01.2024\n"
    "4712;US0378331005;Apple;200;170,50;34.100,00;EUR;31.01.2024\n"
)


def test_confirmations_group_by_counterparty_and_date() -> None:
    sts = read_statements(CONFIRMS.encode(), "conf.csv", "csv")
    assert [(s.account_identifier, s.statement_date.isoformat(), len(s.lines)) for s in sts] == [
        ("BROKA", "2024-03-01", 2),
        ("BROKB", "2024-03-02", 1),
    ]
    first = sts[0].lines[0]
    assert (first.reference, first.related_reference, first.side, first.quantity, first.price) == (
        "C-1",
        "T-100",
        "BUY",
        Decimal("1000"),
        Decimal("12.456"),
    )
    assert sts[0].kind == StatementKind.TRADE_CONFIRMATIONS and sts[0].format == "CSV:confirmations"
    assert sts[0].lines[1].side == "SELL"  # 'S'


def test_custodian_profile_decimal_comma_and_auto_detect() -> None:
    data = DE_POSITIONS.encode("cp1252")
    for profile in ("custodian_de", None):  # named, or recognised from the header
        sts = read_statements(data, "depot.csv", "csv", profile)
        assert [s.account_identifier for s in sts] == ["4711", "4712"]
        assert sts[0].kind == StatementKind.HOLDINGS and sts[0].format == "CSV:custodian_de"
        ln = sts[0].lines[0]
        assert (ln.quantity, ln.price, ln.amount) == (
            Decimal("1250.5"),
            Decimal("12.456"),
            Decimal("15576.23"),
        )


def test_bad_lines_refuse_the_whole_file_naming_each() -> None:
    bad = CONFIRMS + "C-4,,2024-02-30,,DE0005140009,X,ten,1,,EUR,BROKA\n"
    with pytest.raises(StatementFileRefused) as info:
        read_statements(bad.encode(), "bad.csv", "csv")
    where = {(p.line, p.field) for p in info.value.items}
    assert where == {(5, "isin"), (5, "side"), (5, "trade_date"), (5, "quantity")}
    with pytest.raises(StatementFileRefused, match="lacks the columns"):
        read_statements(b"a,b\n1,2\n", "x.csv", "csv", "confirmations")


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="no statement profile named"):
        load_profile("nope")


def test_xlsx_positions() -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["account", "isin", "quantity", "price", "value", "currency", "as_of"])
    ws.append(["SAFE-1", "DE0005140008", 100, 12.5, 1250, "EUR", "2024-01-31"])
    buf = io.BytesIO()
    wb.save(buf)
    (st,) = read_statements(buf.getvalue(), "pos.xlsx", "xlsx", "positions")
    assert (st.account_identifier, st.lines[0].quantity, st.lines[0].source_line) == (
        "SAFE-1",
        Decimal("100"),
        2,
    )


def rows(db: Database) -> tuple[int, int]:
    with db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(Statement)) or 0,
            s.scalar(select(func.count()).select_from(StatementLine)) or 0,
        )


def test_import_confirmations_twice(db: Database, users: dict[str, Actor], tmp_path: Path) -> None:
    f = tmp_path / "conf.csv"
    f.write_text(CONFIRMS)
    r = import_statements(db, users["clerk1"], [f])
    assert r.counts()["statements_imported"] == 2 and r.counts()["lines_imported"] == 3
    with db.read() as s:
        line = s.scalars(select(StatementLine).where(StatementLine.reference == "C-1")).one()
        assert (line.related_reference, line.quantity, line.price) == (
            "T-100",
            Decimal("1000"),
            Decimal("12.456"),
        )
    before = rows(db)
    r2 = import_statements(db, users["clerk2"], [f])
    assert r2.files[0].status == "duplicate" and rows(db) == before
    bad = tmp_path / "bad.csv"
    bad.write_text(CONFIRMS.replace("12.456", "12.4x6"))
    r3 = import_statements(db, users["clerk1"], [bad])
    assert r3.files[0].status == "refused" and r3.files[0].problems[0]["line"] == 2
    assert rows(db) == before
