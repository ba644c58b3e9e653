"""MT540-543 writer and structure check against the real instructions, and MT544-548 readers."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from app.models.enums import AssetClass, InstructionType
from app.services.swift import fin, mt54x
from app.services.swift.incoming import NoSettlementData, UnsupportedMessage

from .helpers import REAL_FIXTURES

HERE = Path(__file__).resolve().parent
SWIFT = HERE / "fixtures" / "swift"
REAL = REAL_FIXTURES / "swift-mt-securities" / "prowide-core"

BASE = mt54x.OutgoingInstruction(
    reference="SEME000000000042",
    instruction_type=InstructionType.RVP,
    isin="GB00BH4HKS39",
    instrument_name="Vodafone Group plc – Ordinary Shares (€ listing) & more text beyond the limit of a line",
    asset_class=AssetClass.EQUITY,
    quantity=Decimal(5000),
    settlement_amount=Decimal("3562.00"),
    currency="GBP",
    trade_date=dt.date(2024, 1, 10),
    settlement_date=dt.date(2024, 1, 11),
    safekeeping_account="6990457647",
    our_agent_bic="CITIGB2L",
    place_of_settlement_bic="CRSTGB22",
    counterparty_bic="ISNTGB2L",
    their_agent_bic="CRSTGB22XXX",
    their_safekeeping_account="382",
    prepared_at=dt.datetime(2024, 1, 10, 9, 30, 5),
)


@pytest.mark.parametrize(
    ("itype", "mt", "agent", "party", "paid"),
    [
        (InstructionType.RFP, "540", "DEAG", "SELL", False),
        (InstructionType.RVP, "541", "DEAG", "SELL", True),
        (InstructionType.DFP, "542", "REAG", "BUYR", False),
        (InstructionType.DVP, "543", "REAG", "BUYR", True),
    ],
)
def test_writer_round_trips_through_the_parser(
    itype: InstructionType, mt: str, agent: str, party: str, paid: bool
) -> None:
    text = mt54x.write_mt54x(dataclasses.replace(BASE, instruction_type=itype))
    (msg,) = fin.parse_fin(text)  # strict: balanced sequences, every field well-formed
    assert mt54x.validate_mt54x(msg) == []
    assert msg.message_type == mt and msg.block2["direction"] == "I"
    assert (msg.sender_bic, msg.receiver_bic) == ("OPSDGB2L", "CITIGB2L")
    assert msg.block3 == {"108": "SEME000000000042"} and "CHK" in msg.block5
    assert [s.name for s in msg.root.children] == ["GENL", "TRADDET", "FIAC", "SETDET"]
    assert msg.reference == "SEME000000000042" and msg.function == "NEWM"
    assert msg.find("98C", "PREP").datetime() == dt.datetime(2024, 1, 10, 9, 30, 5)
    assert msg.find("98A", "SETT").date() == dt.date(2024, 1, 11)
    assert msg.find("36B", "SETT").quantity() == ("UNIT", Decimal(5000))
    parties = {s.fields[0].qualifier: s for s in msg.sequences("SETPRTY")}
    assert set(parties) == {agent, party, "PSET"}
    assert (
        parties[agent].find("95P").value == "CRSTGB22XXX"
        and parties[agent].find("97A", "SAFE").value == "382"
    )
    assert parties[party].find("95P").value == "ISNTGB2L"
    amt = msg.find("19A", "SETT")
    assert (amt.amount() if amt else None) == (("GBP", Decimal("3562")) if paid else None)
    # The instrument name is in the X character set, in lines of at most 35 characters.
    name_lines = msg.find("35B").value.split("\n")
    assert name_lines[0] == "ISIN GB00BH4HKS39"
    assert all(len(x) <= 35 and "€" not in x and "&" not in x for x in name_lines[1:])


def test_bonds_are_instructed_in_face_amount_and_cancellations_link() -> None:
    bond = dataclasses.replace(
        BASE,
        asset_class=AssetClass.GOVT_BOND,
        quantity=Decimal("1500000.50"),
        function="CANC",
        previous_reference="SEME000000000041",
    )
    (msg,) = fin.parse_fin(mt54x.write_mt54x(bond))
    assert msg.find("36B", "SETT").value == "FAMT/1500000,5"
    assert msg.find("20C", "PREV").value == "SEME000000000041"
    assert mt54x.validate_mt54x(msg) == []


def test_writer_matches_the_shape_of_the_real_mt541() -> None:
    """Same sequences, same fields per sequence (in order) as the bank's MT541 in the shared fixtures."""
    (real,) = fin.parse_fin((REAL / "MT541_SwiftParserConsumeBlockLenientTest_07.fin").read_text())
    (ours,) = fin.parse_fin(mt54x.write_mt54x(BASE))

    def shape(m: fin.FinMessage, seq: str) -> list[str]:
        return [f"{f.tag[:2]}:{f.qualifier}" for f in m.sequence(seq).fields]

    assert [s.name for s in ours.root.children] == [s.name for s in real.root.children]
    for seq in ("FIAC", "SETDET", "AMT"):
        assert shape(ours, seq) == shape(real, seq), seq
    assert {f.qualifier for f in ours.sequence("TRADDET").fields} >= {"SETT", "TRAD"}


REAL_INSTRUCTIONS = sorted(p.name for p in REAL.glob("MT54[0-3]_*.fin"))


@pytest.mark.parametrize("name", REAL_INSTRUCTIONS)
def test_structure_check_on_the_real_instructions(name: str) -> None:
    (msg,) = fin.parse_fin((REAL / name).read_text(), strict=False)
    problems = mt54x.validate_mt54x(msg)
    if name == "MT541_MT541ParserTest_01.fin":
        assert problems == ["structure: line 14: 16S:TRADFOO closes TRADDET, opened at line 7"]
    elif name == "MT541_SwiftMessageTest_06.fin":  # the header-only stub
        assert (
            "mandatory sequence TRADDET missing" in problems
            and "GENL: mandatory field :23G: missing" in problems
        )
    else:
        assert problems == []


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            lambda t: t.replace(":16R:FIAC\n", ":16R:FIAX\n").replace(":16S:FIAC\n", ":16S:FIAX\n"),
            "mandatory sequence FIAC missing",
        ),
        (
            lambda t: t.replace(":95P::PSET//CRSTGB22\n", ":95P::BENM//CRSTGB22\n"),
            "SETPRTY with :95a::PSET missing",
        ),
        (lambda t: t.replace(":95P::DEAG//", ":95P::REAG//"), "SETPRTY with :95a::DEAG missing"),
        (lambda t: t.replace(":16R:AMT\n:19A::SETT//GBP3562,\n:16S:AMT\n", ""), "needs AMT :19A::SETT"),
        (lambda t: t.replace("SEME//SEME000000000042", "SEME//A//B"), "no '//'"),
        (lambda t: t.replace(":23G:NEWM", ":23G:CANC"), "needs LINK :20C::PREV"),
        (lambda t: t.replace("UNIT/5000,", "UNIT/0,"), "quantity must be positive"),
        (lambda t: t.replace("//20240111\n", "//20240231\n"), "bad date"),
        (lambda t: t.replace(":35B:ISIN GB00BH4HKS39", ":35B:GB00BH4HKS39"), "neither ISIN"),
        (lambda t: t.replace("I541", "I548"), "not a settlement instruction"),
        (
            lambda t: t.replace("//GBP3562,", "//GBP3562,125"),
            ":19A::SETT GBP3562,125 has 3 decimals; GBP has 2",
        ),
        (lambda t: t.replace("//GBP3562,", "//JPY3562,5"), "has 1 decimals; JPY has 0"),
    ],
)
def test_structure_check_finds_each_missing_piece(edit, problem: str) -> None:  # noqa: ANN001
    (msg,) = fin.parse_fin(edit(mt54x.write_mt54x(BASE)))
    problems = mt54x.validate_mt54x(msg)
    assert any(problem in p for p in problems), problems


def test_free_of_payment_must_not_carry_an_amount() -> None:
    text = mt54x.write_mt54x(dataclasses.replace(BASE, instruction_type=InstructionType.RFP))
    text = text.replace(":16S:SETDET", ":16R:AMT\n:19A::SETT//GBP1,\n:16S:AMT\n:16S:SETDET")
    (msg,) = fin.parse_fin(text)
    assert "SETDET: MT540 is free of payment and must not carry :19A::SETT" in mt54x.validate_mt54x(msg)


def test_amounts_within_the_currencys_decimals_pass() -> None:
    for amount in ("GBP3562,12", "GBP3562,1", "GBP3562,10", "JPY3562,", "KWD3562,125"):
        (msg,) = fin.parse_fin(mt54x.write_mt54x(BASE).replace("//GBP3562,", f"//{amount}"))
        assert not [p for p in mt54x.validate_mt54x(msg) if "decimals" in p], amount


def test_swift_number_formatting() -> None:
    assert mt54x.swift_number(Decimal("1234.5600")) == "1234,56"
    assert mt54x.swift_number(Decimal(100)) == "100,"
    assert mt54x.swift_number(Decimal("0.001")) == "0,001"
    assert mt54x.swift_number(Decimal("1E+3")) == "1000,"
    assert mt54x.swift_amount_text("EUR", Decimal("-5")) == "NEUR5,"
    assert mt54x.x_charset("Société Générale & Cie_ (Paris)") == "Societe Generale Cie (Paris)"


# --- readers ------------------------------------------------------------------------------------------------------


def _one(path: Path) -> fin.FinMessage:
    (msg,) = fin.parse_fin(path.read_text(), file_name=path.name)
    return msg


def test_real_mt547_confirmation() -> None:
    inc = mt54x.read_incoming(_one(REAL / "MT547_AbstractMTTest_01.fin"))
    assert inc.kind == "confirmation" and inc.message_type == "MT547"
    assert (inc.reference, inc.related_reference) == ("T314314CDM0", "00013507299330A")
    assert inc.direction == "DELI" and inc.against_payment is True
    assert inc.settled_quantity == Decimal(8167548)  # face amount, not the amortised 7,999,999.573
    assert (inc.currency, inc.settled_amount, inc.settled_on) == (
        "USD",
        Decimal("8226417.05"),
        dt.date(2014, 11, 13),
    )
    assert inc.isin is None  # a CUSIP (/US/3132MAD40), not an ISIN
    assert inc.counterparty_bic is None and inc.sender == "CHASUSU9"


def test_handwritten_confirmations_mirror_the_real_mt547() -> None:
    real = _one(REAL / "MT547_AbstractMTTest_01.fin")
    for name, mt in [
        ("MT544_receive_free.fin", "544"),
        ("MT545_partial_settlement.fin", "545"),
        ("MT546_deliver_free.fin", "546"),
    ]:
        msg = _one(SWIFT / name)
        assert msg.message_type == mt and msg.block2["direction"] == "O"
        assert [s.name for s in msg.root.children] == [s.name for s in real.root.children][:4]
        for seq in ("GENL", "FIAC"):
            wanted = {(f.tag, f.qualifier) for f in real.sequence(seq).fields} - {
                ("98E", "PREP"),
                ("98C", "PREP"),
            }
            have = {(f.tag, f.qualifier) for f in msg.sequence(seq).fields}
            assert wanted <= have | {("36B", "ESTT")}, (name, seq, wanted - have)


def test_partial_confirmation() -> None:
    inc = mt54x.read_incoming(_one(SWIFT / "MT545_partial_settlement.fin"))
    assert inc.partial == "PAIN" and inc.settled_quantity == Decimal(400)
    assert (inc.settled_amount, inc.settled_on, inc.isin) == (
        Decimal(96600),
        dt.date(2024, 1, 15),
        "DE0007164600",
    )
    assert inc.counterparty_bic == "BROKGB2L" and inc.direction == "RECE"


@pytest.mark.parametrize("code", ["CMIS", "DDAT", "DQUA", "DMON", "DSEC", "DEPT", "DELN"])
def test_mt548_unmatched_reasons(code: str) -> None:
    inc = mt54x.read_incoming(_one(SWIFT / f"MT548_unmatched_{code}.fin"))
    assert inc.kind == "status" and inc.related_reference.startswith("OPSTEST")
    assert inc.status("IPRC").status == "PACK"
    st = inc.status("MTCH")
    assert (st.status, st.code) == ("NMAT", code) and st.text and "\n" not in st.text
    assert inc.sent_at == dt.datetime(2024, 1, 12, 9, 30)


def test_mt548_pending_failing_matched_and_settran() -> None:
    lack = mt54x.read_incoming(_one(SWIFT / "MT548_pending_LACK.fin")).status("SETT")
    assert (lack.status, lack.code, lack.text) == (
        "PEND",
        "LACK",
        "INSUFFICIENT SECURITIES ON DELIVERING ACCOUNT",
    )
    mony = mt54x.read_incoming(_one(SWIFT / "MT548_failing_MONY.fin")).status("SETT")
    assert (mony.status, mony.code) == ("PENF", "MONY")
    assert mt54x.read_incoming(_one(SWIFT / "MT548_matched.fin")).status("MTCH").status == "MACH"
    inc = mt54x.read_incoming(_one(SWIFT / "MT548_no_reference_settran.fin"))
    assert inc.related_reference is None  # NONREF
    assert (inc.isin, inc.quantity, inc.amount, inc.settlement_date) == (
        "DE0007164600",
        Decimal(1000),
        Decimal(241500),
        dt.date(2024, 1, 15),
    )
    assert (inc.direction, inc.against_payment, inc.counterparty_bic) == ("RECE", True, "BROKGB2L")


def test_stub_and_other_types_say_why() -> None:
    stub = fin.parse_fin((REAL / "MT541_SwiftMessageTest_06.fin").read_text(), strict=False)[0]
    with pytest.raises(UnsupportedMessage, match="settlement instruction"):
        mt54x.read_incoming(stub)
    text = (SWIFT / "MT548_matched.fin").read_text()
    head = text.split(":16R:STAT")[0] + ":16S:GENL\r\n-}"
    with pytest.raises(NoSettlementData, match="no settlement data"):
        mt54x.read_incoming(fin.parse_fin(head)[0])
    with pytest.raises(UnsupportedMessage, match="holdings statement"):
        mt54x.read_incoming(_one(REAL / "MT535_MT535ParserTest_01.fin"))
    conf = (SWIFT / "MT544_receive_free.fin").read_text().replace(":98A::ESET//20240115\n", "")
    with pytest.raises(fin.FinParseError, match="ESET"):
        mt54x.read_incoming(fin.parse_fin(conf)[0])
