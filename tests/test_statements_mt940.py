"""MT940 / MT942 cash statements: every real file in tests/fixtures/real/mt940/ imports or is refused with a clear
reason; broken files change nothing; duplicates change nothing; balance mismatches and sequence gaps/overlaps are
flagged (on SQLite and PostgreSQL where the database is involved)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.models import AuditEntry, Statement, StatementLine
from app.services.db import Database
from app.services.permissions import Actor
from app.services.statements import StatementFileRefused, import_statements, read_statements
from app.services.statements.parsed import decode_text

from .helpers import REAL_FIXTURES

FIXTURES = REAL_FIXTURES
MT940_DIR = FIXTURES / "mt940"
FILES = sorted(p for p in MT940_DIR.rglob("*") if p.is_file() and "LICENSE" not in p.name)

# Files refused, and a phrase the reason must contain (the clerk must learn *why*).
REFUSED = {
    # The deliberately broken ones.
    "wolph-mt940/self-provided/invalid_statement.sta": "there is no statement in it",
    "wolph-mt940/betterplace/sepa_snippet_broken.sta": "field :25: appears twice",
    "wolph-mt940/self-provided/empty_non_swift.sta": "there is no statement in it",
    "wolph-mt940/self-provided/february_30.sta": "value date 160230 is not a calendar date",
    "wolph-mt940/betterplace/with_binary_character.sta": "outside the SWIFT character set",
    # Two more copies of the February 30 statement (the parser's own tests of its date "fix-up").
    "wolph-mt940/self-provided/transaction_details_wrapped.sta": "value date 160230 is not a calendar date",
    "wolph-mt940/self-provided/wrapped_timestamp.sta": "value date 160230 is not a calendar date",
    # LBBW: a letter O in the opening amount and a closing balance tag without its colon. Not guessed.
    "jejik-mt940/lbbw2.txt": "looks like field :62F: without the colon",
    # Balances without a currency: the amount cannot be told from the currency.
    "wolph-mt940/self-provided/raphaelm.sta": "has no currency",
    # A second statement's lines after the end-of-statement '-' without its header.
    "wolph-mt940/self-provided/multiline.sta": "without a new :20: header",
    # Single-field fragments from parsers' unit tests: not statements.
    "wolph-mt940/betterplace/amount_formats.sta": "there is no statement in it",
    "wolph-mt940/betterplace/currency_in_25.sta": "there is no statement in it",
    "wolph-mt940/betterplace/empty_86.sta": "there is no statement in it",
    "wolph-mt940/betterplace/empty_entry_date.sta": "there is no statement in it",
    "wolph-mt940/betterplace/missing_crlf_at_end.sta": "there is no statement in it",
    "wolph-mt940/betterplace/empty_line.sta": "has no :25:",
    "wolph-mt940/cmxl/account_balance_credit.sta": "there is no statement in it",
    "wolph-mt940/cmxl/account_balance_debit.sta": "there is no statement in it",
    "wolph-mt940/cmxl/account_identification_iban.sta": "there is no statement in it",
    "wolph-mt940/cmxl/account_identification_legacy.sta": "there is no statement in it",
    "wolph-mt940/cmxl/available_balance.sta": "there is no statement in it",
    "wolph-mt940/cmxl/closing_balance.sta": "there is no statement in it",
    "wolph-mt940/cmxl/reference.sta": "has no :25:",
    "wolph-mt940/cmxl/statement_details.sta": "there is no statement in it",
    "wolph-mt940/cmxl/statement_line.sta": "there is no statement in it",
    "wolph-mt940/cmxl/statement_number.sta": "there is no statement in it",
    "wolph-mt940/self-provided/account_identification.sta": "has no :28C: statement number",
    "wolph-mt940/self-provided/sparkassen.sta": "there is no statement in it",
}
BROKEN = [
    "wolph-mt940/self-provided/invalid_statement.sta",
    "wolph-mt940/betterplace/sepa_snippet_broken.sta",
    "wolph-mt940/self-provided/empty_non_swift.sta",
    "wolph-mt940/self-provided/february_30.sta",
    "wolph-mt940/betterplace/with_binary_character.sta",
]


def rel(p: Path) -> str:
    return p.relative_to(MT940_DIR).as_posix()


def parse(relpath: str):  # type: ignore[no-untyped-def]
    data = (MT940_DIR / relpath).read_bytes()
    return read_statements(data, relpath, "mt940")


def test_fixture_table_names_real_files() -> None:
    names = {rel(p) for p in FILES}
    assert set(REFUSED) <= names
    assert len(FILES) >= 88


@pytest.mark.parametrize("path", FILES, ids=rel)
def test_every_file_imports_or_is_refused_with_a_reason(path: Path) -> None:
    name = rel(path)
    if name in REFUSED:
        with pytest.raises(StatementFileRefused) as info:
            parse(name)
        assert REFUSED[name] in info.value.reason
        assert str(info.value).startswith(f"{name}") and "Nothing was changed" in str(info.value)
        return
    statements = parse(name)
    assert statements
    for st in statements:
        assert st.account_identifier
        assert st.format in ("MT940", "MT942", "MT950")
        assert all(isinstance(ln.amount, Decimal) for ln in st.lines)
        if st.format != "MT942":
            assert st.opening_balance is not None


def test_refusals_name_line_and_field() -> None:
    with pytest.raises(StatementFileRefused) as info:
        parse("wolph-mt940/betterplace/sepa_snippet_broken.sta")
    p = info.value.items[0]
    assert (p.line, p.field) == (6, ":25:")
    with pytest.raises(StatementFileRefused) as info:
        parse("wolph-mt940/self-provided/february_30.sta")
    assert (info.value.items[0].line, info.value.items[0].field) == (6, ":61:")


def test_representative_files() -> None:
    abn = parse("jejik-mt940/abnamro.txt")
    assert [len(s.lines) for s in abn] == [8, 2]
    assert [s.sequence_number for s in abn] == ["19321/1", "19322/1"]
    assert abn[0].opening_balance == Decimal("3236.28") and abn[0].closing_balance == Decimal("876.84")
    assert abn[0].currency == "EUR" and abn[0].account_identifier == "517852257"

    sepa = parse("wolph-mt940/betterplace/sepa_mt9401.sta")
    assert (len(sepa), sum(len(s.lines) for s in sepa)) == (26, 97)
    first = sepa[0]
    # Opening + lines = closing in this real bank file, to the cent.
    assert first.opening_balance + sum(ln.amount for ln in first.lines) == first.closing_balance

    citi = parse("wolph-mt940/citi/mt940.txt")[0]
    assert (citi.currency, len(citi.lines)) == ("USD", 5)
    assert citi.opening_balance + sum(ln.amount for ln in citi.lines) == citi.closing_balance


def test_asn_bank_files_use_the_asn_layout() -> None:
    for name in ("wolph-mt940/ASNB/mt940.txt", "wolph-mt940/ASNB/mt940_with_spaces_for_entry_date.txt"):
        sts = parse(name)
        assert len(sts) == 31
        first = sts[0]
        assert first.lines[0].amount == Decimal("-65.00")
        assert first.lines[0].reference == "NL47INGB9999999999"
        assert first.opening_balance + first.lines[0].amount == first.closing_balance
        assert any(n["code"] == "BANK_LAYOUT" for n in first.notes)


def test_oldenburgische_landesbank_forward_balance_is_left_out_with_a_warning() -> None:
    for name in ("jejik-mt940/oldenburgischelandesbank2.txt", "jejik-mt940/K4262927_20200905-080000-952.txt"):
        (st,) = parse(name)
        codes = [n["code"] for n in st.notes]
        assert codes == ["FIELD_IGNORED", "NO_CLOSING_BALANCE"]
        assert "Dnullnull7414,3" in st.notes[0]["message"]
        assert st.lines[0].amount == Decimal("230.00") and st.closing_balance is None


def test_amount_without_decimal_comma_is_read_with_a_note() -> None:
    st = parse("jejik-mt940/knab.txt")[1]
    assert [ln.amount for ln in st.lines] == [Decimal("-7260"), Decimal("500")]
    assert any(n["code"] == "AMOUNT_FORMAT" for n in st.notes)


def test_soh_etx_framed_files_are_read() -> None:
    (st,) = parse("wolph-mt940/mBank/mt940.sta")
    assert (st.currency, len(st.lines)) == ("PLN", 3)


def test_mt942_is_intraday_with_totals() -> None:
    (st,) = parse("wolph-mt940/mBank/mt942.sta")
    assert st.format == "MT942" and st.intraday
    assert st.entry_totals == {"D": (0, Decimal("0.00")), "C": (3, Decimal("0.03"))}


def test_binary_file_is_refused() -> None:
    with pytest.raises(StatementFileRefused, match="binary"):
        read_statements(b":20:X\x00\x07\n", "bad.sta", "mt940")
    with pytest.raises(StatementFileRefused, match="empty"):
        decode_text(b"  \n", "empty.sta")


# --- through the database -------------------------------------------------------------------------------------------


def counts(db: Database) -> tuple[int, int, int]:
    with db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(Statement)) or 0,
            s.scalar(select(func.count()).select_from(StatementLine)) or 0,
            s.scalar(select(func.count()).select_from(AuditEntry)) or 0,
        )


def test_broken_files_change_nothing(db: Database, users: dict[str, Actor]) -> None:
    before = counts(db)
    result = import_statements(db, users["clerk1"], [MT940_DIR / b for b in BROKEN])
    assert [f.status for f in result.files] == ["refused"] * len(BROKEN)
    assert all(f.reason and f.problems for f in result.files)
    assert counts(db) == before


def test_import_every_file_then_again_changes_nothing(db: Database, users: dict[str, Actor]) -> None:
    result = import_statements(db, users["clerk1"], FILES)
    c = result.counts()
    assert c["files_refused"] == len(REFUSED)
    assert c["files"] == len(FILES)
    parsed = [st for p in FILES if rel(p) not in REFUSED for st in parse(rel(p))]
    assert c["statements_imported"] + c["statements_duplicate"] == len(parsed)
    # Files copied between the two fixture sets (wolph's jejik/ folder) hold the same statements: kept once.
    assert c["statements_duplicate"] > 0
    assert c["lines_imported"] == sum(
        s.lines for f in result.files for s in f.statements if s.status == "imported"
    )
    assert c["balance_mismatches"] > 0
    first = counts(db)
    assert first[0] == c["statements_imported"] and first[1] == c["lines_imported"]
    again = import_statements(db, users["clerk2"], FILES)
    c2 = again.counts()
    assert c2["statements_imported"] == 0
    assert c2["statements_duplicate"] == c["statements_imported"] + c["statements_duplicate"]
    assert counts(db) == first


def test_balance_mismatch_is_flagged_and_stored(db: Database, users: dict[str, Actor]) -> None:
    result = import_statements(db, users["clerk1"], [MT940_DIR / "jejik-mt940/abnamro.txt"])
    s1, s2 = result.files[0].statements
    mismatch = next(w for w in s1.warnings if w["code"] == "BALANCE_MISMATCH")
    assert Decimal(mismatch["difference"]) == Decimal("876.84") - (
        Decimal("3236.28") + Decimal(mismatch["lines_total"])
    )
    # 19322 opens at 2,876.84 although 19321 closed at 876.84: a booking is missing in between.
    assert any(w["code"] == "BALANCE_CHAIN" for w in s2.warnings)
    with db.read() as s:
        stored = s.get(Statement, s1.statement_id)
        assert stored is not None and "BALANCE_MISMATCH" in [w["code"] for w in stored.warnings]
        assert stored.opening_balance == Decimal("3236.28")
    assert result.counts()["balance_mismatches"] >= 1


def test_consistent_statements_have_no_warnings(db: Database, users: dict[str, Actor]) -> None:
    result = import_statements(db, users["clerk1"], [MT940_DIR / "jejik-mt940/generic.txt"])
    assert [s.warnings for s in result.files[0].statements] == [[], []]


def statement(number: str, opening: str, lines: list[str], closing: str, ref: str = "REF") -> str:
    body = "".join(f":61:2401020102{ln}NTRFNONREF\n:86:line\n" for ln in lines)
    return f":20:{ref}\n:25:NL91ABNA0417164300\n:28C:{number}\n:60F:{opening}\n{body}:62F:{closing}\n-\n"


def test_sequence_gap_and_overlap_are_flagged(db: Database, users: dict[str, Actor]) -> None:
    clerk = users["clerk1"]
    s1 = statement("1/1", "C240101EUR100,00", ["C10,00"], "C240102EUR110,00", "S1")
    s2 = statement("2/1", "C240102EUR110,00", ["D5,00"], "C240103EUR105,00", "S2")
    s4 = statement("4/1", "C240104EUR200,00", [], "C240105EUR200,00", "S4")
    r = import_statements(db, clerk, [("day1.sta", (s1 + s2).encode())])
    assert [s.warnings for s in r.files[0].statements] == [[], []]
    r = import_statements(db, clerk, [("day4.sta", s4.encode())])
    codes = [w["code"] for w in r.files[0].statements[0].warnings]
    assert codes == ["SEQUENCE_GAP", "BALANCE_CHAIN"]
    assert "statement number 3 not received" in r.files[0].statements[0].warnings[0]["message"]
    # Number 2 again, with other content: an overlap, imported and flagged.
    s2b = statement("2/1", "C240102EUR110,00", ["D6,00"], "C240103EUR104,00", "S2B")
    r = import_statements(db, clerk, [("again.sta", s2b.encode())])
    (st,) = r.files[0].statements
    assert st.status == "imported" and [w["code"] for w in st.warnings][0] == "SEQUENCE_OVERLAP"
    assert r.counts()["sequence_findings"] >= 1


def test_same_statement_resent_in_another_file_is_a_duplicate(db: Database, users: dict[str, Actor]) -> None:
    s1 = statement("7/1", "C240101EUR100,00", ["C10,00"], "C240102EUR110,00")
    import_statements(db, users["clerk1"], [("a.sta", s1.encode())])
    before = counts(db)
    # Same statement inside a bigger file with a header line: the statement is a duplicate, nothing changes.
    r = import_statements(db, users["clerk2"], [("b.sta", ("BANKHEADER\n" + s1).encode())])
    assert r.files[0].status == "duplicate" and r.files[0].statements[0].status == "duplicate"
    assert counts(db) == before
    # Same number, reference and date but different lines: not imported, and the report says so.
    s1b = statement("7/1", "C240101EUR100,00", ["C11,00"], "C240102EUR110,00")
    r = import_statements(db, users["clerk2"], [("c.sta", s1b.encode())])
    (st,) = r.files[0].statements
    assert st.status == "duplicate" and st.warnings[0]["code"] == "DIFFERENT_CONTENT"
    assert counts(db) == before
