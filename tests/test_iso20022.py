"""sese.023 writer and its schema check; sese.024/025 readers on the real and hand-written files."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from app.models.enums import AssetClass, InstructionType
from app.services.swift import iso20022
from app.services.swift.incoming import NoSettlementData, UnsupportedMessage
from app.services.swift.mt54x import OutgoingInstruction

from .helpers import REAL_FIXTURES

HERE = Path(__file__).resolve().parent
XML = HERE / "fixtures" / "iso20022"
REAL = REAL_FIXTURES / "iso20022-securities" / "prowide-iso20022"
NS = {"s": iso20022.SESE023_NS}

BASE = OutgoingInstruction(
    reference="SEME000000000007",
    instruction_type=InstructionType.DVP,
    isin="DE0007164600",
    instrument_name="SAP SE & Co <Ordinary>",
    asset_class=AssetClass.EQUITY,
    quantity=Decimal(1000),
    settlement_amount=Decimal("241500.50"),
    currency="EUR",
    trade_date=dt.date(2024, 1, 11),
    settlement_date=dt.date(2024, 1, 15),
    safekeeping_account="OPS-XETR-001",
    our_agent_bic="CUSTDEFF",
    place_of_settlement_bic="DAKVDEFF",
    counterparty_bic="BROKGB2L",
    their_agent_bic="DEUTDEFFXXX",
    their_safekeeping_account="CPTY-77",
)


def _text(doc: etree._Element, path: str) -> str | None:
    return doc.findtext(path, namespaces=NS)


@pytest.mark.parametrize(
    ("itype", "mvmt", "pmt", "cdt"),
    [
        (InstructionType.DVP, "DELI", "APMT", "CRDT"),
        (InstructionType.RVP, "RECE", "APMT", "DBIT"),
        (InstructionType.DFP, "DELI", "FREE", None),
        (InstructionType.RFP, "RECE", "FREE", None),
    ],
)
def test_sese023_is_schema_shaped(itype: InstructionType, mvmt: str, pmt: str, cdt: str | None) -> None:
    data = iso20022.write_sese023(dataclasses.replace(BASE, instruction_type=itype))
    assert data.startswith(b"<?xml") and iso20022.validate_sese023(data) == []
    doc = etree.fromstring(data)
    body = "s:SctiesSttlmTxInstr"
    assert _text(doc, f"{body}/s:TxId") == "SEME000000000007"
    assert _text(doc, f"{body}/s:SttlmTpAndAddtlParams/s:SctiesMvmntTp") == mvmt
    assert _text(doc, f"{body}/s:SttlmTpAndAddtlParams/s:Pmt") == pmt
    assert _text(doc, f"{body}/s:TradDtls/s:SttlmDt/s:Dt/s:Dt") == "2024-01-15"
    assert _text(doc, f"{body}/s:QtyAndAcctDtls/s:SttlmQty/s:Qty/s:Unit") == "1000"
    assert _text(doc, f"{body}/s:FinInstrmId/s:Desc") == "SAP SE & Co <Ordinary>"  # escaped, not mangled
    assert _text(doc, f"{body}/s:SttlmAmt/s:CdtDbtInd") == cdt
    theirs = "s:DlvrgSttlmPties" if mvmt == "RECE" else "s:RcvgSttlmPties"
    assert _text(doc, f"{body}/{theirs}/s:Pty1/s:Id/s:AnyBIC") == "DEUTDEFFXXX"
    assert _text(doc, f"{body}/{theirs}/s:Pty2/s:Id/s:AnyBIC") == "BROKGB2L"


def test_bond_in_face_amount_and_batch() -> None:
    bond = dataclasses.replace(BASE, asset_class=AssetClass.CORP_BOND, quantity=Decimal("250000.5"))
    doc = etree.fromstring(iso20022.write_sese023(bond))
    assert doc.findtext(".//s:FaceAmt", namespaces=NS) == "250000.5"
    batch = iso20022.write_sese023_batch([BASE, bond], created=dt.datetime(2024, 1, 12, tzinfo=dt.UTC))
    assert iso20022.validate_sese023(batch) == []
    msgs = iso20022.split_xml(batch, file_name="batch.xml")
    assert [m.definition for m in msgs] == ["sese.023.001.09"] * 2
    assert msgs[0].sender == "OPSDGB2L" and msgs[0].created == dt.datetime(2024, 1, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("edit", "phrase"),
    [
        (lambda d: d.replace(b"<ISIN>DE0007164600</ISIN>", b""), "ISIN"),
        (lambda d: d.replace(b"<ISIN>DE0007164600", b"<ISIN>DE000716460X"), "ISIN"),
        (lambda d: d.replace(b"<Pmt>APMT</Pmt>", b"<Pmt>CASH</Pmt>"), "Pmt"),
        (lambda d: d.replace(b"2024-01-15", b"2024-02-30"), "SttlmDt"),
        (lambda d: d.replace(b"</Document>", b""), "not well-formed"),
        (lambda d: d.replace(b"sese.023.001.09", b"sese.023.001.11"), "namespace"),
    ],
)
def test_sese023_check_catches_broken_documents(edit, phrase: str) -> None:  # noqa: ANN001
    problems = iso20022.validate_sese023(edit(iso20022.write_sese023(BASE)))
    assert problems and any(phrase in p for p in problems), problems


def test_real_sese025_with_application_header() -> None:
    (msg,) = iso20022.split_xml(
        (REAL / "sese.025.001.09_RequestPayload.xml").read_bytes(), file_name="real.xml"
    )
    assert (msg.definition, msg.sender, msg.business_id) == (
        "sese.025.001.09",
        "IJKLMNOPXXX",
        "1423905641002",
    )
    assert msg.created == dt.datetime(2024, 7, 17, 5, 27, 51, tzinfo=dt.UTC)
    inc = iso20022.read_xml(msg, file_name="real.xml")
    assert inc.kind == "confirmation"
    assert (inc.related_reference, inc.reference, inc.isin) == ("FOO", "BAR", "NL0000009165")
    assert (inc.direction, inc.against_payment) == ("RECE", True)
    assert (inc.settled_quantity, inc.settled_amount, inc.currency) == (Decimal(0), Decimal(1), "EUR")
    assert inc.settled_on == dt.date(2024, 7, 17) and inc.trade_date == dt.date(2024, 7, 16)
    assert inc.safekeeping_account == "NECISOGEFRPPAGN000L10"
    # The nested supplementary-data Document is not taken for a second message.
    assert len(iso20022.split_xml((REAL / "sese.025.001.09_RequestPayload.xml").read_bytes())) == 1


def test_handwritten_sese024() -> None:
    (msg,) = iso20022.split_xml((XML / "sese.024_unmatched_CMIS.xml").read_bytes())
    inc = iso20022.read_xml(msg)
    assert inc.kind == "status" and inc.related_reference == "OPSTEST0011" and inc.sender == "CUSTDEFFXXX"
    assert [(s.qualifier, s.status, s.code) for s in inc.statuses] == [
        ("MTCH", "NMAT", "CMIS"),
        ("IPRC", "PACK", None),
    ]
    assert inc.status("MTCH").text == "No counterparty instruction received at the CSD"
    assert (inc.isin, inc.quantity, inc.amount, inc.settlement_date) == (
        "DE0007164600",
        Decimal(1000),
        Decimal(241500),
        dt.date(2024, 1, 15),
    )
    assert inc.sent_at == dt.datetime(2024, 1, 12, 9, 30, tzinfo=dt.UTC)
    (msg,) = iso20022.split_xml((XML / "sese.024_pending_LACK.xml").read_bytes())
    inc = iso20022.read_xml(msg)
    assert [(s.qualifier, s.status, s.code) for s in inc.statuses] == [
        ("MTCH", "MACH", None),
        ("SETT", "PEND", "LACK"),
    ]


def test_handwritten_sese025_partial() -> None:
    (msg,) = iso20022.split_xml((XML / "sese.025_partial.xml").read_bytes())
    inc = iso20022.read_xml(msg)
    assert (inc.partial, inc.settled_quantity, inc.settled_amount) == ("PAIN", Decimal(250), Decimal(60375))
    assert inc.settled_on == dt.date(2024, 1, 15)


def test_refusals_are_clear() -> None:
    with pytest.raises(iso20022.Iso20022Error, match=r"bad.xml, line 1: not well-formed XML"):
        iso20022.split_xml(b"<a><b></a>", file_name="bad.xml")
    with pytest.raises(iso20022.Iso20022Error, match="no ISO 20022 Document"):
        iso20022.split_xml(b"<html><body/></html>", file_name="page.html")
    # Entity expansion is never performed (billion laughs stays a few bytes).
    bomb = b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><Document>&a;</Document>'
    (msg,) = iso20022.split_xml(bomb)
    assert b"aaaa" not in msg.raw
    (cash,) = iso20022.split_xml(
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt/></Document>'
    )
    with pytest.raises(UnsupportedMessage, match="camt.053.001.02 is not a settlement status"):
        iso20022.read_xml(cash)
    (empty,) = iso20022.split_xml(
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:sese.024.001.10"><SctiesSttlmTxStsAdvc>'
        b"<TxId><AcctOwnrTxId>X</AcctOwnrTxId></TxId></SctiesSttlmTxStsAdvc></Document>"
    )
    with pytest.raises(NoSettlementData, match="no processing, matching or settlement status"):
        iso20022.read_xml(empty)
