"""Holdings statements (MT535, semt.002) and MT950 cash statements: every file in
tests/fixtures/real/swift-mt-securities/ imports or is refused naming what it is or what is wrong."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.models import Statement, StatementLine
from app.models.enums import StatementKind
from app.services.db import Database
from app.services.permissions import Actor
from app.services.statements import StatementFileRefused, detect_format, import_statements, read_statements

from .helpers import REAL_FIXTURES

SWIFT_DIR = REAL_FIXTURES / "swift-mt-securities"
OWN = Path(__file__).parent / "fixtures" / "statements"
FILES = sorted(SWIFT_DIR.rglob("*.fin"))
IMPORTED = {
    "MT535_MT535ParserTest_01.fin": ("MT535", 0),
    "MT535_MtSwiftMessageJsonSchemaTest_02.fin": ("MT535", 2),
    "MT950_MT950ParserTest_01.fin": ("MT950", 1),
    "MT950_MtSwiftMessageJsonSchemaTest_02.fin": ("MT950", 9),
    "MT950_SystemMessageTest_03.fin": ("MT950", 1),
}
REFUSED_BECAUSE = {
    "MT535_SwiftParserConsumeTagTest_03.fin": "truncated or damaged",
    "MT535_SwiftParserConsumeTagTest_04.fin": "truncated or damaged",
    "MT535_SystemMessageTest_05.fin": "rejected by the network (NAK E66013)",
    "MT537_Issue78_01.fin": "MT537",
}


def parse(path: Path):  # type: ignore[no-untyped-def]
    data = path.read_bytes()
    return read_statements(data, path.name, detect_format(data, path.name))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_file_imports_or_is_refused(path: Path) -> None:
    if path.name in IMPORTED:
        fmt, n_lines = IMPORTED[path.name]
        (st,) = parse(path)
        assert (st.format, len(st.lines)) == (fmt, n_lines)
        return
    with pytest.raises(StatementFileRefused) as info:
        parse(path)
    reason = info.value.reason
    expected = REFUSED_BECAUSE.get(path.name) or (
        "settlement" if path.name[:5] in ("MT540", "MT541", "MT543", "MT547") else "?"
    )
    assert expected in reason, reason


def test_mt535_holdings_with_derived_isin() -> None:
    (st,) = parse(SWIFT_DIR / "prowide-core/MT535_MtSwiftMessageJsonSchemaTest_02.fin")
    assert st.kind == StatementKind.HOLDINGS
    assert (st.account_identifier, st.statement_ref, st.sequence_number) == (
        "F275",
        "ICF2750609140005",
        "00005/MORE",
    )
    first, second = st.lines
    assert first.isin == "US31392EXH88" and first.extra["isin_derived_from"] == "/US/31392EXH8"
    assert first.quantity == Decimal("35732656") and first.extra["quantity_type"] == "FAMT"
    assert Decimal(second.extra["avai"]) == Decimal("-990692")  # N990692: short
    assert first.description == "FEDERAL NATL MTG ASSN"


def test_mt535_empty_statement_keeps_totals() -> None:
    (st,) = parse(SWIFT_DIR / "prowide-core/MT535_MT535ParserTest_01.fin")
    assert st.lines == [] and st.extra["totals"]["HOLS"]["amount"] == Decimal("0")
    assert st.statement_date.isoformat() == "2007-03-27"


def test_mt950_statement() -> None:
    (st,) = parse(SWIFT_DIR / "prowide-core/MT950_MtSwiftMessageJsonSchemaTest_02.fin")
    assert (st.format, st.currency, st.opening_balance, st.closing_balance) == (
        "MT950",
        "EUR",
        Decimal("3723495"),
        Decimal("3709865.13"),
    )
    assert st.opening_balance + sum(ln.amount for ln in st.lines) == st.closing_balance
    assert any(n["code"] == "ENVELOPE" for n in st.notes)  # trailer block left open: noted, not fatal


def test_semt002_holdings() -> None:
    data = (OWN / "semt002_holdings_v10.xml").read_bytes()
    (st,) = read_statements(data, "h.xml", detect_format(data, "h.xml"))
    assert (st.format, st.sender, st.account_identifier) == ("semt.002.001.10", "CUSTDEFFXXX", "DEPOT-4711")
    got = [(ln.isin, ln.quantity, ln.price, ln.amount, ln.account_identifier) for ln in st.lines]
    assert got == [
        ("DE0005140008", Decimal("12500"), Decimal("12.456"), Decimal("155700.00"), "DEPOT-4711"),
        ("XS0222550880", Decimal("300000"), Decimal("101.25"), Decimal("303750.00"), "DEPOT-4711"),
        ("US0378331005", Decimal("-200"), Decimal("170.50"), Decimal("-34100.00"), "DEPOT-4711-02"),
    ]
    assert st.notes == []  # the holdings add up to the stated total


def test_semt002_bad_isin_refused() -> None:
    data = (OWN / "semt002_bad_isin_v11.xml").read_bytes()
    with pytest.raises(StatementFileRefused, match="DE0005140009") as info:
        read_statements(data, "b.xml", "semt002")
    assert info.value.items[0].line == 22


def counts(db: Database) -> tuple[int, int]:
    with db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(Statement)) or 0,
            s.scalar(select(func.count()).select_from(StatementLine)) or 0,
        )


def test_import_folder_and_semt002_then_again(db: Database, users: dict[str, Actor]) -> None:
    paths = [*FILES, OWN / "semt002_holdings_v10.xml", OWN / "semt002_bad_isin_v11.xml"]
    r = import_statements(db, users["clerk1"], paths)
    c = r.counts()
    assert c["files_refused"] == len(FILES) - len(IMPORTED) + 1
    # MT950 01 and 03 are the same statement (03 carries its ACK): kept once.
    assert (c["statements_imported"], c["statements_duplicate"]) == (len(IMPORTED) - 1 + 1, 1)
    with db.read() as s:
        holdings = s.scalars(select(Statement).where(Statement.kind == StatementKind.HOLDINGS)).all()
        assert sorted(h.format for h in holdings) == ["MT535", "MT535", "semt.002.001.10"]
        lines = s.scalars(select(StatementLine).where(StatementLine.isin == "US0378331005")).all()
        assert [ln.quantity for ln in lines] == [Decimal("-200")]
    before = counts(db)
    again = import_statements(db, users["clerk2"], paths)
    assert again.counts()["statements_imported"] == 0 and counts(db) == before
