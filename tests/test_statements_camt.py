"""camt.052/053/054 statements: every real file in tests/fixtures/real/camt/ imports or is refused with the
schema's reason; all versions, multi-statement files, five decimals, all balance types, application header."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.models import Statement, StatementLine
from app.services.db import Database
from app.services.permissions import Actor
from app.services.statements import StatementFileRefused, import_statements, read_statements

from .helpers import REAL_FIXTURES

CAMT_DIR = REAL_FIXTURES / "camt"
FILES = sorted(CAMT_DIR.rglob("*.xml"))
REFUSED = {"genkgo-camt/camt053.v2.wrong.xml": "does not follow the camt.053.001.02 schema"}


def rel(p: Path) -> str:
    return p.relative_to(CAMT_DIR).as_posix()


def parse(name: str):  # type: ignore[no-untyped-def]
    return read_statements((CAMT_DIR / name).read_bytes(), name, "camt")


@pytest.mark.parametrize("path", FILES, ids=rel)
def test_every_file_imports_or_is_refused(path: Path) -> None:
    name = rel(path)
    if name in REFUSED:
        with pytest.raises(StatementFileRefused) as info:
            parse(name)
        assert REFUSED[name] in info.value.reason and "Tag 'Stmt' expected" in info.value.reason
        assert info.value.items[0].line == 3
        return
    statements = parse(name)
    assert statements
    kind = next(k for k in ("052", "053", "054") if k in name.split("/")[-1] or f"camt{k[1:]}" in name)
    for st in statements:
        assert st.format.startswith(f"camt.{kind}.001.")
        assert st.account_identifier and st.statement_date
        assert st.intraday == (kind == "052")
        assert all(ln.amount is not None and ln.currency for ln in st.lines)


def test_versions_are_read_alike() -> None:
    v2, v3, v4, v8 = (parse(f"genkgo-camt/camt053.v{v}.xml")[0] for v in ("2.minimal", 3, 4, 8))
    for st in (v2, v3, v4, v8):
        assert st.account_identifier == "NL26VAYB8060476890"
        assert (st.opening_balance, st.closing_balance) == (Decimal("18.15"), Decimal("-27.00"))
        assert st.lines[0].counterparty == "NAME NAME"
    assert [st.format for st in (v2, v3, v4, v8)] == [
        "camt.053.001.02",
        "camt.053.001.03",
        "camt.053.001.04",
        "camt.053.001.08",
    ]


def test_multi_statement_five_decimals_all_balance_types_and_header() -> None:
    multi = parse("genkgo-camt/camt053.v2.multi.statement.xml")
    assert [(s.opening_balance, s.closing_balance) for s in multi] == [
        (Decimal("18.15"), Decimal("27.00")),
        (Decimal("27.00"), Decimal("20.00")),
    ]
    (five,) = parse("genkgo-camt/camt053.v2.five.decimals.xml")
    assert five.opening_balance == Decimal("18.150") and five.lines[0].amount == Decimal("8.850")
    (allb,) = parse("genkgo-camt/camt053.v2.all-balance-types.xml")
    assert set(allb.extra["balances"]) >= {
        "OPBD",
        "PRCD",
        "OPAV",
        "CLBD",
        "CLAV",
        "FWAV",
        "ITAV",
        "ITBD",
        "XPCD",
    }
    (hdr,) = parse("prowide-iso20022/camt.053.001.07.xml")
    assert (hdr.sender, hdr.account_identifier, hdr.currency) == ("MLCOUS33XXX", "2345234534", "USD")
    assert hdr.opening_balance is None and set(hdr.extra["balances"]) == {"OPAV", "ITBD"}


def test_intraday_report_and_notification() -> None:
    (rpt,) = parse("genkgo-camt/camt052.v4.xml")
    assert rpt.intraday and rpt.extra["intraday"] and rpt.extra["closing_type"] == "ITBD"
    (ntf,) = parse("genkgo-camt/camt054.v8.xml")
    assert not ntf.intraday and ntf.opening_balance is None and len(ntf.lines) == 1


def test_damaged_xml_is_refused() -> None:
    with pytest.raises(StatementFileRefused, match="not well-formed XML"):
        read_statements(
            b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.08'><Bk", "x.xml", "camt"
        )
    with pytest.raises(StatementFileRefused, match="not a camt"):
        read_statements(b"<Document xmlns='urn:other'/>", "y.xml", "camt")


def rows(db: Database) -> tuple[int, int]:
    with db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(Statement)) or 0,
            s.scalar(select(func.count()).select_from(StatementLine)) or 0,
        )


def test_import_all_camt_then_again(db: Database, users: dict[str, Actor]) -> None:
    result = import_statements(db, users["clerk1"], FILES)
    c = result.counts()
    assert c["files_refused"] == 1 and result.refused[0].file == "camt053.v2.wrong.xml"
    expected = sum(len(parse(rel(p))) for p in FILES if rel(p) not in REFUSED)
    assert c["statements_imported"] + c["statements_duplicate"] == expected
    first = rows(db)
    again = import_statements(db, users["clerk1"], FILES)
    assert again.counts()["statements_imported"] == 0
    assert rows(db) == first


def test_balance_mismatch_of_five_decimals_file(db: Database, users: dict[str, Actor]) -> None:
    r = import_statements(db, users["clerk1"], [CAMT_DIR / "genkgo-camt/camt053.v2.five.decimals.xml"])
    (st,) = r.files[0].statements
    w = next(w for w in st.warnings if w["code"] == "BALANCE_MISMATCH")
    assert Decimal(w["difference"]) == Decimal("0.050")
    with db.read() as s:
        stored = s.get(Statement, st.statement_id)
        assert stored is not None and Decimal(stored.extra["balances"]["OPBD"]["amount"]) == Decimal("18.15")


def test_wrong_file_changes_nothing(db: Database, users: dict[str, Actor]) -> None:
    before = rows(db)
    r = import_statements(db, users["clerk1"], [CAMT_DIR / "genkgo-camt/camt053.v2.wrong.xml"])
    assert r.files[0].status == "refused" and "Stmt" in (r.files[0].reason or "")
    assert rows(db) == before


def camt053(seq: int, opening: str, entries: list[str], closing: str, day: str) -> bytes:
    def bal(code: str, amount: str) -> str:
        ind = "DBIT" if amount.startswith("-") else "CRDT"
        return (
            f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy='EUR'>{amount.lstrip('-')}</Amt>"
            f"<CdtDbtInd>{ind}</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>"
        )

    ntry = "".join(
        f"<Ntry><Amt Ccy='EUR'>{a.lstrip('-')}</Amt><CdtDbtInd>{'DBIT' if a.startswith('-') else 'CRDT'}</CdtDbtInd>"
        f"<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt></Ntry>"
        for a in entries
    )
    return (
        "<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.08'><BkToCstmrStmt>"
        f"<GrpHdr><MsgId>M{seq}</MsgId><CreDtTm>{day}T20:00:00</CreDtTm></GrpHdr>"
        f"<Stmt><Id>S{seq}</Id><ElctrncSeqNb>{seq}</ElctrncSeqNb><CreDtTm>{day}T20:00:00</CreDtTm>"
        "<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>"
        f"{bal('OPBD', opening)}{bal('CLBD', closing)}{ntry}</Stmt></BkToCstmrStmt></Document>"
    ).encode()


def test_electronic_sequence_gap_and_overlap(db: Database, users: dict[str, Actor]) -> None:
    clerk = users["clerk1"]
    r = import_statements(
        db,
        clerk,
        [
            ("s1.xml", camt053(1, "100.00", ["10.00"], "110.00", "2024-05-02")),
            ("s2.xml", camt053(2, "110.00", ["-5.00"], "105.00", "2024-05-03")),
        ],
    )
    assert [s.warnings for f in r.files for s in f.statements] == [[], []]
    r = import_statements(db, clerk, [("s4.xml", camt053(4, "105.00", [], "105.00", "2024-05-07"))])
    (st,) = r.files[0].statements
    assert [w["code"] for w in st.warnings] == ["SEQUENCE_GAP"]
    assert "statement number 3 not received" in st.warnings[0]["message"]
    r = import_statements(db, clerk, [("s2b.xml", camt053(2, "110.00", ["-6.00"], "104.00", "2024-05-06"))])
    (st,) = r.files[0].statements
    assert st.status == "imported" and st.warnings[0]["code"] == "SEQUENCE_OVERLAP"
