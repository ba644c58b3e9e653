"""Importing settlement status advices and confirmations, and writing instructions, on both backends."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.models import (
    Account,
    AuditEntry,
    CashBalance,
    Counterparty,
    Instrument,
    Market,
    Position,
    SecuritiesMovement,
    SettlementInstruction,
    SettlementMessage,
    StandingSettlementInstruction,
)
from app.models.enums import (
    AccountType,
    AssetClass,
    InstructionStatus,
    InstructionType,
    KycStatus,
    Liquidity,
    MessageDirection,
    MessageStatus,
    Segregation,
)
from app.services.db import Database
from app.services.errors import PermissionDenied
from app.services.permissions import SYSTEM, Actor
from app.services.settlement import messages, movements, reasons
from app.services.swift import fin, iso20022, mt54x

from .helpers import REAL_FIXTURES

HERE = Path(__file__).resolve().parent
SWIFT = HERE / "fixtures" / "swift"
XML = HERE / "fixtures" / "iso20022"
REAL_MT = REAL_FIXTURES / "swift-mt-securities" / "prowide-core"
REAL_XML = REAL_FIXTURES / "iso20022-securities" / "prowide-iso20022"
ISD = dt.date(2024, 1, 15)
S = InstructionStatus


def _refdata(db: Database) -> dict[str, int]:
    """One market, SAP SE, one counterparty, one account, and an SSI on each side: all the tests need."""
    with db.write() as s:
        m = Market(
            mic="XETR",
            name="Xetra",
            country="DE",
            timezone="Europe/Berlin",
            calendar_code="XETR",
            csd_bic="DAKVDEFF",
        )
        s.add(m)
        s.flush()
        inst = Instrument(
            isin="DE0007164600",
            name="SAP SE",
            ticker="SAP",
            asset_class=AssetClass.EQUITY,
            currency="EUR",
            market_id=m.id,
            settlement_cycle=2,
            liquidity=Liquidity.LIQUID_SHARE,
            reference_price=Decimal("241.5"),
        )
        cpty = Counterparty(
            code="BROK", name="Broker Ltd", lei="5493001KJTIIGC8Y1R12", bic="BROKGB2L", country="GB"
        )
        acct = Account(
            code="ACC1",
            name="Fund one",
            account_type=AccountType.CLIENT,
            kyc_status=KycStatus.APPROVED,
            segregation=Segregation.SEGREGATED,
            base_currency="EUR",
        )
        s.add_all([inst, cpty, acct])
        s.flush()
        common = dict(
            market_id=m.id, currency="EUR", place_of_settlement_bic="DAKVDEFF", valid_from=dt.date(2020, 1, 1)
        )
        ours = StandingSettlementInstruction(
            account_id=acct.id,
            agent_bic="CUSTDEFF",
            safekeeping_account="OPS-XETR-001",
            cash_account="C1",
            **common,
        )
        theirs = StandingSettlementInstruction(
            counterparty_id=cpty.id,
            agent_bic="DEUTDEFF",
            safekeeping_account="CPTY-77",
            cash_account="C2",
            **common,
        )
        s.add_all([ours, theirs])
        s.flush()
        return {
            "instrument": inst.id,
            "cpty": cpty.id,
            "account": acct.id,
            "ours": ours.id,
            "theirs": theirs.id,
        }


def _instr(
    db: Database,
    ref: dict[str, int],
    code: str,
    itype: InstructionType = InstructionType.RVP,
    *,
    qty: str = "1000",
    amount: str = "241500",
    status: S = S.INSTRUCTED,
    isd: dt.date = ISD,
) -> int:
    with db.write() as s:
        i = SettlementInstruction(
            instruction_ref=code,
            instruction_type=itype,
            account_id=ref["account"],
            counterparty_id=ref["cpty"],
            instrument_id=ref["instrument"],
            quantity=Decimal(qty),
            settlement_amount=Decimal(amount) if itype in movements.AGAINST_PAYMENT else Decimal(0),
            currency="EUR",
            trade_date=dt.date(2024, 1, 11),
            intended_settlement_date=isd,
            status=status,
            our_ssi_id=ref["ours"],
            their_ssi_id=ref["theirs"],
        )
        s.add(i)
        s.flush()
        return i.id


def _get(db: Database, code: str) -> SettlementInstruction:
    with db.read() as s:
        return s.scalars(
            select(SettlementInstruction).where(SettlementInstruction.instruction_ref == code)
        ).one()


def _import(
    db: Database, *paths: Path, as_of: dt.date = ISD, actor: Actor = SYSTEM
) -> messages.MessageImportResult:
    return messages.import_messages(db, actor, list(paths), as_of=as_of)


@pytest.fixture
def ref(db: Database) -> dict[str, int]:
    return _refdata(db)


# --- confirmations ------------------------------------------------------------------------------------------------


def test_partial_then_remainder_settlement(db: Database, ref: dict[str, int]) -> None:
    _instr(db, ref, "OPSTEST0001")
    r = _import(db, SWIFT / "MT545_partial_settlement.fin")
    assert (r.applied, r.quarantined, r.unmatched, r.duplicates) == (1, 0, 0, 0)
    assert r.by_type["MT545"]["applied"] == 1
    i = _get(db, "OPSTEST0001")
    assert i.status == S.PARTIALLY_SETTLED
    assert (i.settled_quantity, i.settled_amount) == (Decimal(400), Decimal(96600))
    r = _import(db, SWIFT / "MT545_remainder_settled.fin")
    i = _get(db, "OPSTEST0001")
    assert r.applied == 1 and i.status == S.SETTLED
    assert i.settled_quantity == Decimal(1000) and i.actual_settlement_date == dt.date(2024, 1, 16)
    with db.read() as s:
        assert s.scalar(select(Position.settled_quantity)) == Decimal(1000)
        assert s.scalar(select(CashBalance.settled_amount)) == Decimal(-241500)  # we paid
        assert movements.check_invariant(s) == []
        msgs = s.scalars(select(SettlementMessage).order_by(SettlementMessage.id)).all()
        assert [(m.status, m.instruction_id, m.related_reference) for m in msgs] == [
            (MessageStatus.APPLIED, i.id, "OPSTEST0001")
        ] * 2
        assert msgs[0].parsed["settlement"]["partial"] == "PAIN" and msgs[0].raw.startswith("{1:F01")


@pytest.mark.parametrize(
    ("name", "itype", "sign"),
    [("MT544_receive_free.fin", InstructionType.RFP, 1), ("MT546_deliver_free.fin", InstructionType.DFP, -1)],
)
def test_free_of_payment_confirmations(
    db: Database, ref: dict[str, int], name: str, itype: InstructionType, sign: int
) -> None:
    code = "OPSTEST0002" if itype is InstructionType.RFP else "OPSTEST0003"
    qty = "500" if itype is InstructionType.RFP else "200"
    _instr(db, ref, code, itype, qty=qty)
    r = _import(db, SWIFT / name)
    assert r.applied == 1
    i = _get(db, code)
    assert i.status == S.SETTLED
    with db.read() as s:
        assert s.scalar(select(Position.settled_quantity)) == sign * Decimal(qty)
        assert s.scalar(select(func.count()).select_from(CashBalance)) == 0  # free of payment moves no cash
        assert movements.check_invariant(s) == []


def test_confirmation_in_the_wrong_direction_is_quarantined(db: Database, ref: dict[str, int]) -> None:
    _instr(
        db, ref, "OPSTEST0003", InstructionType.RFP, qty="200"
    )  # we expect to receive; MT546 says delivered
    r = _import(db, SWIFT / "MT546_deliver_free.fin")
    assert r.quarantined == 1 and r.applied == 0
    assert "confirms a delivery but instruction OPSTEST0003 is RFP" in r.issues[0]["reason"]
    assert _get(db, "OPSTEST0003").status == S.INSTRUCTED
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(SecuritiesMovement)) == 0
        m = s.scalars(select(SettlementMessage)).one()
        assert (
            m.status == MessageStatus.QUARANTINED and "MT546_deliver_free.fin, message 1" in m.status_reason
        )


def test_over_settlement_is_refused_and_nothing_moves(db: Database, ref: dict[str, int]) -> None:
    _instr(db, ref, "OPSTEST0001", qty="300", amount="72450")
    r = _import(db, SWIFT / "MT545_partial_settlement.fin")  # 400 settled on a 300 instruction
    assert r.quarantined == 1
    assert "over-settle" in r.issues[0]["reason"]
    assert _get(db, "OPSTEST0001").settled_quantity == 0
    with db.read() as s:
        assert movements.check_invariant(s) == []


def test_real_mt547_settles_a_matching_delivery(db: Database, ref: dict[str, int]) -> None:
    # The prowide MT547 confirms delivery of 8,167,548 face against USD 8,226,417.05 for our 00013507299330A.
    _instr(db, ref, "00013507299330A", InstructionType.DVP, qty="8167548", amount="8226417.05")
    with db.write() as s:
        s.scalars(select(SettlementInstruction)).one().currency = "USD"
    r = _import(db, REAL_MT / "MT547_AbstractMTTest_01.fin")
    assert r.applied == 1, r.issues
    i = _get(db, "00013507299330A")
    assert i.status == S.SETTLED and i.actual_settlement_date == dt.date(2014, 11, 13)
    with db.read() as s:
        assert s.scalar(select(CashBalance.settled_amount)) == Decimal("8226417.05")  # we were paid
        assert movements.check_invariant(s) == []


# --- status advices -----------------------------------------------------------------------------------------------

UNMATCHED = ["CMIS", "DDAT", "DQUA", "DMON", "DSEC", "DEPT", "DELN"]


@pytest.mark.parametrize("code", UNMATCHED)
def test_unmatched_with_each_reason(db: Database, ref: dict[str, int], code: str) -> None:
    our = f"OPSTEST{11 + UNMATCHED.index(code):04d}"
    _instr(db, ref, our)
    r = _import(db, SWIFT / f"MT548_unmatched_{code}.fin")
    assert r.applied == 1, r.issues
    i = _get(db, our)
    # The advice is dated before the settlement date: still instructed, with the market's reason in words.
    assert i.status == S.INSTRUCTED and i.reason_code == code
    assert i.reason_text.startswith(reasons.words(code))
    assert reasons.describe(code).startswith(f"{code} — {reasons.words(code)}")
    # The same advice dated after the intended settlement date makes it a fail.
    text = (SWIFT / f"MT548_unmatched_{code}.fin").read_text().replace("PREP//20240112", "PREP//20240117")
    messages.import_bytes(db, SYSTEM, text.encode(), "late.fin", as_of=ISD)
    i = _get(db, our)
    assert i.status == S.FAILED and i.reason_code == code


def test_matched_then_pending_lack_fails_after_isd(db: Database, ref: dict[str, int]) -> None:
    _instr(db, ref, "OPSTEST0001")
    _instr(db, ref, "OPSTEST0020")
    r = _import(db, SWIFT / "MT548_matched.fin")  # CRLF file
    assert r.applied == 1 and _get(db, "OPSTEST0001").status == S.MATCHED
    r = _import(db, SWIFT / "MT548_pending_LACK.fin")  # dated 16 Jan, the day after ISD
    i = _get(db, "OPSTEST0020")
    assert r.applied == 1 and i.status == S.FAILED and i.reason_code == "LACK"
    assert "INSUFFICIENT SECURITIES ON DELIVERING ACCOUNT" in i.reason_text


def test_failing_mony_and_every_transition_audited(db: Database, ref: dict[str, int]) -> None:
    _instr(db, ref, "OPSTEST0021", status=S.MATCHED)
    _import(db, SWIFT / "MT548_failing_MONY.fin")
    i = _get(db, "OPSTEST0021")
    assert i.status == S.FAILED and i.reason_code == "MONY"
    with db.read() as s:
        actions = s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions[-2:] == ["settlement_instructions.transition", "settlement_messages.import"]


def test_match_by_fields_when_no_reference(db: Database, ref: dict[str, int]) -> None:
    _instr(db, ref, "OPSTEST0030")  # 1000 SAP RVP EUR 241,500 on 15 Jan: what the SETTRAN describes
    _instr(db, ref, "OPSTEST0031", qty="999")  # a near miss that must not be taken
    r = _import(db, SWIFT / "MT548_no_reference_settran.fin")
    assert r.applied == 1, r.issues
    assert _get(db, "OPSTEST0030").reason_code == "CMIS"
    assert _get(db, "OPSTEST0031").reason_code is None
    with db.read() as s:
        m = s.scalars(select(SettlementMessage)).one()
        assert m.parsed["matched_by"] == "fields"


def test_two_candidates_are_never_guessed(db: Database, ref: dict[str, int]) -> None:
    _instr(db, ref, "OPSTEST0030")
    _instr(db, ref, "OPSTEST0032")  # identical economics
    r = _import(db, SWIFT / "MT548_no_reference_settran.fin")
    assert r.unmatched == 1 and r.applied == 0
    assert "2 instructions match" in r.issues[0]["reason"] and "not guessing" in r.issues[0]["reason"]


def test_unknown_reference_is_unmatched_and_kept(db: Database, ref: dict[str, int]) -> None:
    r = _import(db, SWIFT / "MT548_unmatched_CMIS.fin")
    assert r.unmatched == 1
    with db.read() as s:
        m = s.scalars(select(SettlementMessage)).one()
    assert m.status == MessageStatus.QUARANTINED and "OPSTEST0011" in m.status_reason


# --- duplicates, garbage, real files ------------------------------------------------------------------------------


def test_duplicate_message_changes_nothing(db: Database, ref: dict[str, int]) -> None:
    _instr(db, ref, "OPSTEST0001")
    first = _import(db, SWIFT / "MT545_partial_settlement.fin")
    # The same message again, with CRLF line ends and junk around it: still the same message.
    text = "\r\n" + (SWIFT / "MT545_partial_settlement.fin").read_text().replace("\n", "\r\n") + "\r\n"
    again = messages.import_bytes(db, SYSTEM, text.encode(), "resent.fin")
    assert first.applied == 1 and again.duplicates == 1 and again.applied == 0
    assert again.by_type["MT545"]["duplicates"] == 1
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(SettlementMessage)) == 1
        assert s.scalar(select(func.count()).select_from(SecuritiesMovement)) == 1
    assert _get(db, "OPSTEST0001").settled_quantity == Decimal(400)


def test_duplicate_within_one_file(db: Database, ref: dict[str, int]) -> None:
    _instr(db, ref, "OPSTEST0001")
    text = (SWIFT / "MT545_partial_settlement.fin").read_text()
    r = messages.import_bytes(db, SYSTEM, (text + "$" + text).encode(), "twice.fin")
    assert (r.messages, r.applied, r.duplicates) == (2, 1, 1)


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary content"),
        (b"", "empty"),
        (b"   \n", "empty"),
    ],
)
def test_binary_and_empty_files_are_refused(
    db: Database, ref: dict[str, int], data: bytes, phrase: str
) -> None:
    r = messages.import_bytes(db, SYSTEM, data, "bad.bin")
    assert r.refused_files == ["bad.bin"] and phrase in r.issues[0]["reason"]
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(SettlementMessage)) == 0


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"hello, this is not a message\n", "not a settlement message"),
        (b"<Document><unclosed>", "not well-formed XML"),
        (
            (SWIFT / "MT545_partial_settlement.fin").read_bytes().split(b":16R:SETDET")[0],
            "block 4 is not closed",
        ),
        (
            (SWIFT / "MT545_partial_settlement.fin").read_bytes().replace(b":23G:NEWM", b":23G NEWM"),
            "bad field syntax",
        ),
    ],
)
def test_garbage_and_truncated_messages_are_quarantined(
    db: Database, ref: dict[str, int], data: bytes, phrase: str
) -> None:
    _instr(db, ref, "OPSTEST0001")
    r = messages.import_bytes(db, SYSTEM, data, "junk.txt")
    assert r.quarantined == 1 and phrase in r.issues[0]["reason"], r.issues
    assert "junk.txt" in r.issues[0]["reason"]
    assert _get(db, "OPSTEST0001").status == S.INSTRUCTED
    with db.read() as s:
        m = s.scalars(select(SettlementMessage)).one()
        assert m.status == MessageStatus.QUARANTINED and m.instruction_id is None and m.raw


def test_every_real_fin_file_is_read_with_a_clear_outcome(db: Database, ref: dict[str, int]) -> None:
    r = _import(db, *sorted(REAL_MT.iterdir()))
    assert r.files == 24 and r.refused_files == []
    # Nothing in them is ours except the MT547's reference: the rest is quarantined (or unmatched) with a reason.
    assert r.applied == 0
    reasons_by_file = {}
    for issue in r.issues:
        reasons_by_file.setdefault(issue["file"], []).append(issue["reason"])
    stub = " ".join(reasons_by_file["MT541_SwiftMessageTest_06.fin"])
    assert "no settlement data" in stub
    assert "holdings statement" in " ".join(reasons_by_file["MT535_MT535ParserTest_01.fin"])
    assert "NAK service message" in " ".join(reasons_by_file["MT535_SystemMessageTest_05.fin"])
    assert "unmatched" in " ".join(reasons_by_file["MT547_AbstractMTTest_01.fin"])
    assert "settlement instruction" in " ".join(reasons_by_file["MT543_MT543ParserTest_01.fin"])


def test_real_sese025_and_handwritten_sese024(db: Database, ref: dict[str, int]) -> None:
    _instr(db, ref, "OPSTEST0011")
    r = _import(db, XML / "sese.024_unmatched_CMIS.xml")
    assert r.applied == 1 and r.by_type["sese.024.001.10"]["applied"] == 1, r.issues
    assert _get(db, "OPSTEST0011").reason_code == "CMIS"
    r = _import(db, REAL_XML / "sese.025.001.09_RequestPayload.xml")
    # Its AcctOwnrTxId "FOO" is nobody's, and NL0000009165 is not in this book.
    assert r.unmatched == 1 and "FOO" in r.issues[0]["reason"]


def test_sese025_partial_confirmation(db: Database, ref: dict[str, int]) -> None:
    _instr(db, ref, "OPSTEST0001")
    r = _import(db, XML / "sese.025_partial.xml")
    assert r.applied == 1, r.issues
    i = _get(db, "OPSTEST0001")
    assert i.status == S.PARTIALLY_SETTLED and i.settled_quantity == Decimal(250)


def test_custodian_csv(db: Database, ref: dict[str, int], tmp_path: Path) -> None:
    _instr(db, ref, "OPSTEST0001")
    _instr(db, ref, "OPSTEST0002", InstructionType.RFP, qty="500")
    p = tmp_path / "custodian.csv"
    p.write_text(
        "our_ref,their_ref,type,match_status,settlement_status,reason_code,reason_text,isin,quantity,"
        "settled_quantity,settled_amount,currency,settlement_date,settled_on\n"
        "OPSTEST0001,C1,STATUS,NMAT,,DQUA,their qty 900,DE0007164600,1000,,,EUR,2024-01-15,\n"
        "OPSTEST0002,C2,CONFIRMATION,,,,,DE0007164600,500,500,0,EUR,2024-01-15,2024-01-15\n"
        "OPSTEST0002,C3,BOGUS,,,,,,,,,,,\n"
    )
    r = _import(db, p)
    assert (r.applied, r.quarantined) == (2, 1), r.issues
    assert "line 4" in r.issues[0]["reason"] and "BOGUS" in r.issues[0]["reason"]
    assert _get(db, "OPSTEST0001").reason_code == "DQUA"
    assert _get(db, "OPSTEST0002").status == S.SETTLED


def test_auditor_may_not_import(db: Database, ref: dict[str, int], users: dict[str, Actor]) -> None:
    with pytest.raises(PermissionDenied):
        _import(db, SWIFT / "MT548_matched.fin", actor=users["auditor"])


# --- outgoing -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["mt", "sese023"])
def test_write_outgoing_one_file_each_and_recorded_once(
    db: Database, ref: dict[str, int], tmp_path: Path, fmt: str
) -> None:
    for n, itype in enumerate(InstructionType):
        _instr(db, ref, f"OUT{n:04d}", itype)
    _instr(db, ref, "PENDING1", status=S.PENDING)  # not instructed yet: not sent
    r = messages.write_outgoing(db, SYSTEM, fmt=fmt, out_dir=tmp_path, batch=False)  # type: ignore[arg-type]
    assert r.written == 4 and len(r.files) == 4
    for path in map(Path, r.files):
        if fmt == "mt":
            (msg,) = fin.parse_fin(path.read_text())
            assert mt54x.validate_mt54x(msg) == []
        else:
            assert iso20022.validate_sese023(path.read_bytes()) == []
    if fmt == "mt":
        types = sorted(fin.parse_fin(Path(p).read_text())[0].message_type for p in r.files)
        assert types == ["540", "541", "542", "543"]
    again = messages.write_outgoing(db, SYSTEM, fmt=fmt, out_dir=tmp_path / "again", batch=True)  # type: ignore[arg-type]
    assert again.written == 0 and again.already_sent == 4 and len(again.files) == 1
    with db.read() as s:
        rows = s.scalars(
            select(SettlementMessage).where(SettlementMessage.direction == MessageDirection.OUTBOUND)
        ).all()
    assert len(rows) == 4 and {m.status for m in rows} == {MessageStatus.SENT}


def test_write_outgoing_batch_reads_back(db: Database, ref: dict[str, int], tmp_path: Path) -> None:
    for n in range(3):
        _instr(db, ref, f"OUT{n:04d}", InstructionType.DVP)
    r = messages.write_outgoing(db, SYSTEM, fmt="mt", out_dir=tmp_path, batch=True)
    (path,) = map(Path, r.files)
    msgs = fin.parse_fin(path.read_text())
    assert [m.reference for m in msgs] == ["OUT0000", "OUT0001", "OUT0002"]
    assert all(m.message_type == "543" and mt54x.validate_mt54x(m) == [] for m in msgs)
    r = messages.write_outgoing(db, SYSTEM, fmt="sese023", out_dir=tmp_path, batch=True)
    (path,) = (p for p in map(Path, r.files))
    assert iso20022.validate_sese023(path.read_bytes()) == []
    assert len(iso20022.split_xml(path.read_bytes())) == 3


# --- command line -------------------------------------------------------------------------------------------------


def test_cli_import_and_export(
    db: Database, ref: dict[str, int], users: dict[str, Actor], tmp_path: Path, capsys, monkeypatch
) -> None:  # noqa: ANN001
    import json

    from app.cli import main

    from .conftest import PASSWORD

    monkeypatch.setenv("OPSDESK_PASSWORD", PASSWORD)
    _instr(db, ref, "OPSTEST0001")
    _instr(db, ref, "OUT0001", InstructionType.DVP)
    base = ["--db", db.url, "--user", "clerk1"]
    code = main([*base, "import", "messages", str(SWIFT / "MT545_partial_settlement.fin"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["applied"] == 1 and out["by_type"] == {"MT545": {"applied": 1}}
    code = main(
        [
            *base,
            "--json",
            "import",
            "messages",
            str(SWIFT / "MT545_partial_settlement.fin"),
            str(REAL_MT / "MT950_MT950ParserTest_01.fin"),
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 4 and (out["duplicates"], out["quarantined"]) == (1, 1)
    assert "cash statement" in out["issues"][0]["reason"]
    code = main([*base, "import", "messages", str(tmp_path / "missing.fin")])
    assert code == 2
    capsys.readouterr()
    code = main([*base, "export", "messages", "--format", "mt", "--out", str(tmp_path / "out"), "--json"])
    out = json.loads(capsys.readouterr().out)
    # OPSTEST0001 is partially settled now; only the instructed DVP is written.
    assert code == 0 and out["written"] == 1 and out["files"][0].endswith("OUT0001.fin")
    code = main(["--db", db.url, "--user", "auditor", "import", "messages", str(SWIFT / "MT548_matched.fin")])
    assert code == 1


# --- one file, many messages: order per instruction, a refused message undoes only itself, large files ------------


def test_several_messages_about_one_instruction_in_one_file_apply_in_order(
    db: Database, ref: dict[str, int]
) -> None:
    _instr(db, ref, "OPSTEST0001")  # 1000 SAP against 241,500
    _instr(db, ref, "OPSTEST0009", qty="100", amount="24150")
    partial = (SWIFT / "MT545_partial_settlement.fin").read_text()  # 400 against 96,600
    remainder = (SWIFT / "MT545_remainder_settled.fin").read_text()  # 600 against 144,900
    matched = (SWIFT / "MT548_matched.fin").read_text().replace("OPSTEST0001", "OPSTEST0009")
    # The partial again under another reference: 400 more would over-settle after the remainder.
    over = partial.replace("CUST0001PART1", "CUST0001PART9")
    text_ = "\n$".join([partial, matched, remainder, over])
    r = messages.import_bytes(db, SYSTEM, text_.encode(), "day.fin", as_of=ISD)
    assert (r.messages, r.applied, r.quarantined) == (4, 3, 1), r.issues
    assert "over-settle" in r.issues[0]["reason"] and r.issues[0]["message"] == 4
    i = _get(db, "OPSTEST0001")
    # The remainder saw the partial before it (PARTIALLY_SETTLED -> SETTLED), the refused one changed nothing.
    assert (i.status, i.settled_quantity, i.settled_amount) == (S.SETTLED, Decimal(1000), Decimal(241500))
    assert _get(db, "OPSTEST0009").status == S.MATCHED
    with db.read() as s:
        assert s.scalar(select(Position.settled_quantity)) == Decimal(1000)
        assert movements.check_invariant(s) == []
        history = s.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.entity_id == str(i.id), AuditEntry.action == "settlement_instructions.transition"
            )
            .order_by(AuditEntry.id)
        ).all()
        assert [(e.before["status"], e.after["status"]) for e in history] == [
            ("INSTRUCTED", "PARTIALLY_SETTLED"),
            ("PARTIALLY_SETTLED", "SETTLED"),
        ]


def test_a_large_file_is_audited_by_one_entry_its_messages_name(
    db: Database, ref: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services.settlement import lifecycle

    monkeypatch.setattr(lifecycle, "PER_ROW_AUDIT_MAX", 1)
    codes = ["OPSTEST0001", "OPSTEST0009"]
    for code in codes:
        _instr(db, ref, code)
    matched = (SWIFT / "MT548_matched.fin").read_text()
    text_ = "\n$".join(
        matched.replace("OPSTEST0001", c).replace(":20C::SEME//", f":20C::SEME//{n}")
        for n, c in enumerate(codes)
    )
    r = messages.import_bytes(db, SYSTEM, text_.encode(), "big.fin", as_of=ISD)
    assert r.applied == 2 and all(_get(db, c).status == S.MATCHED for c in codes)
    with db.read() as s:
        (entry,) = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "settlement_instructions.transition")
        ).all()
        assert entry.entity_id is None and entry.after["transitions"] == 2
        msgs = s.scalars(select(SettlementMessage).order_by(SettlementMessage.id)).all()
        assert {m.parsed["transition_audit_entry"] for m in msgs} == {entry.id}
        assert {m.instruction_id for m in msgs} == {_get(db, c).id for c in codes}
        imported = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "settlement_messages.import")
        ).one()
        assert imported.after["transition_audit_entry"] == entry.id
        # The instruction's history still shows what changed it: its row of the batch entry.
        (h,) = lifecycle.history(s, _get(db, codes[1]).id)
        assert (h["action"], h["before"]["status"], h["after"]["status"]) == (
            "settlement_instructions.transition",
            "INSTRUCTED",
            "MATCHED",
        )
        assert "matched" in h["after"]["note"]
