"""The ISO 15022 FIN parser on every real message file we hold, and on hand-written broken ones."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from app.services.errors import OpsDeskError
from app.services.swift.fin import (
    FinParseError,
    RawFin,
    bic_from_lt,
    decode_bytes,
    parse_fin,
    split_fin,
    swift_amount,
    swift_date,
    swift_datetime,
    swift_decimal,
    swift_price,
    swift_quantity,
)

from .helpers import REAL_FIXTURES

REAL = REAL_FIXTURES / "swift-mt-securities" / "prowide-core"

# file → (message types in it, reference of the last message, top-level sequences of the last message,
#         what strict parsing says: None when the file is sound, else a phrase of the error)
EXPECTED: dict[str, tuple[list[str], str, list[str], str | None]] = {
    "MT535_MT535ParserTest_01.fin": (["535"], "ABC20070327P1", ["GENL", "ADDINFO"], None),
    "MT535_MtSwiftMessageJsonSchemaTest_02.fin": (
        ["535"],
        "ICF2750609140005",
        ["GENL", "SUBSAFE"],
        "block 5 is not closed",
    ),
    "MT535_SwiftParserConsumeTagTest_03.fin": (
        ["535"],
        "H200803121132222",
        ["GENL", "SUBSAFE"],
        "sequence FIN opened at line 31 is never closed",
    ),
    "MT535_SwiftParserConsumeTagTest_04.fin": (
        ["535"],
        "H200803121132222",
        ["GENL", "SUBSAFE"],
        "sequence FIN opened at line 31 is never closed",
    ),
    "MT535_SystemMessageTest_05.fin": (["NAK", "535"], "ABC20070327P1", ["GENL", "ADDINFO"], None),
    "MT537_Issue78_01.fin": (["537"], "000000000000251C", ["GENL", "STAT", "PENA"], None),
    "MT540_MT540Test_01.fin": (["540"], "TFH5436259-999", ["GENL", "TRADDET", "FIAC", "SETDET"], None),
    "MT540_MtSwiftMessageJsonSchemaTest_02.fin": (
        ["540"],
        "GC899999",
        ["GENL", "TRADDET", "FIAC", "SETDET"],
        None,
    ),
    "MT541_MT541ParserTest_01.fin": (
        ["541"],
        "2005080800000944",
        ["GENL", "TRADDET", "FIAC", "SETDET"],
        "16S:TRADFOO closes TRADDET",
    ),
    "MT541_MT541ParserTest_02.fin": (
        ["541"],
        "2002071500000614",
        ["GENL", "TRADDET", "FIAC", "SETDET"],
        None,
    ),
    "MT541_MT541ParserTest_03.fin": (
        ["541"],
        "2007071800000923",
        ["GENL", "TRADDET", "FIAC", "SETDET"],
        None,
    ),
    "MT541_MT541ParserTest_04.fin": (
        ["541"],
        "2001071800001228",
        ["GENL", "TRADDET", "FIAC", "SETDET"],
        None,
    ),
    "MT541_MT541ParserTest_05.fin": (
        ["541"],
        "2005071300000248",
        ["GENL", "TRADDET", "FIAC", "SETDET"],
        None,
    ),
    "MT541_SwiftMessageTest_06.fin": (
        ["541"],
        "K8N46BUK6XXXXXXXXXXXX",
        ["GENL"],
        "sequence GENL opened at line 2 is never closed",
    ),
    "MT541_SwiftParserConsumeBlockLenientTest_07.fin": (
        ["541"],
        "2005070600000006",
        ["GENL", "TRADDET", "FIAC", "SETDET"],
        None,
    ),
    "MT543_MT543ParserTest_01.fin": (
        ["543"],
        "2008101900002890",
        ["GENL", "TRADDET", "FIAC", "SETDET"],
        None,
    ),
    "MT543_MT543ParserTest_02.fin": (
        ["543"],
        "2004080300000523",
        ["GENL", "TRADDET", "FIAC", "SETDET"],
        None,
    ),
    "MT543_MT543ParserTest_03.fin": (
        ["543"],
        "2005071100000156",
        ["GENL", "TRADDET", "FIAC", "SETDET"],
        None,
    ),
    "MT543_MT543ParserTest_04.fin": (
        ["543"],
        "2005071400000574",
        ["GENL", "TRADDET", "FIAC", "SETDET"],
        None,
    ),
    "MT543_MT543ParserTest_05.fin": (["543"], "B070905000173", ["GENL", "TRADDET", "FIAC", "SETDET"], None),
    "MT547_AbstractMTTest_01.fin": (
        ["547"],
        "T314314CDM0",
        ["GENL", "TRADDET", "FIAC", "SETDET", "OTHRPRTY"],
        None,
    ),
    "MT950_MT950ParserTest_01.fin": (["950"], "12345678070403", [], None),
    "MT950_MtSwiftMessageJsonSchemaTest_02.fin": (["950"], "123456", [], "block 5 is not closed"),
    "MT950_SystemMessageTest_03.fin": (["ACK", "950"], "12345678070403", [], None),
}


def test_every_real_file_is_listed() -> None:
    assert sorted(p.name for p in REAL.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_file_parses(name: str) -> None:
    types, reference, top, strict_error = EXPECTED[name]
    text = (REAL / name).read_bytes().decode("ascii")
    messages = parse_fin(text, file_name=name, strict=False)
    assert [m.message_type for m in messages] == types
    last = messages[-1]
    assert last.reference == reference
    assert [s.name for s in last.root.children] == top
    assert last.file_name == name
    # Every field keeps the line it came from, in file order, and no structure field leaks into the flat list.
    lines = [f.line for f in last.fields]
    assert lines == sorted(lines)
    assert not any(f.tag in ("16R", "16S") for f in last.fields)
    if strict_error is None:
        assert last.problems == []
        assert [m.message_type for m in parse_fin(text, file_name=name)] == types
    else:
        assert any(strict_error in p for p in last.problems)
        with pytest.raises(FinParseError, match=strict_error) as err:
            parse_fin(text, file_name=name)
        assert name in str(err.value) and "line" in str(err.value)


def test_mt541_fields_values_and_sequences() -> None:
    (m,) = parse_fin((REAL / "MT541_MT541ParserTest_02.fin").read_text())
    assert (m.sender_bic, m.receiver_bic, m.block2["direction"]) == ("FOOBARXX", "FOOOFRPP", "I")
    assert m.function == "NEWM"
    trad = m.sequence("TRADDET")
    assert trad is not None
    assert trad.find("98A", "SETT").date() == dt.date(2002, 7, 18)
    assert trad.find("98", "TRAD").date() == dt.date(2002, 7, 13)  # any letter option
    assert trad.find("90B", "DEAL").price() == ("ACTU", "EUR", Decimal("22.22"))
    isin = trad.find("35B")
    assert isin.qualifier is None and isin.value == "ISIN FR1234567890\nFOO DE FRAN"
    assert m.find("36B", "SETT").quantity() == ("UNIT", Decimal("321.00"))
    assert m.find("19A", "SETT").amount() == ("EUR", Decimal("123456.78"))
    parties = m.sequences("SETPRTY")
    assert [p.fields[0].qualifier for p in parties] == ["DEAG", "SELL", "PSET"]
    deag = parties[0].find("95R")
    assert (deag.issuer, deag.value) == ("SICV", "4042")
    # find() on a sequence looks at its own fields only; find_all(deep=True) also below it.
    setdet = m.sequence("SETDET")
    assert setdet.find("19A") is None
    assert [f.value for f in setdet.find_all("97A", deep=True)] == ["123456789"]
    assert m.sequence("NOPE") is None and m.find("99Z") is None


def test_output_message_header_and_bics() -> None:
    (m,) = parse_fin((REAL / "MT547_AbstractMTTest_01.fin").read_text())
    assert m.block2["direction"] == "O"
    assert m.block2["sender_address"] == "CHASUSU9AXXX"
    assert (m.sender_bic, m.receiver_bic) == ("CHASUSU9", "FMACUS33")
    assert m.block3 == {"108": "001823CQ1833911"}
    assert m.find("20C", "RELA").value == "00013507299330A"
    assert [f.quantity() for f in m.find_all("36B", "ESTT")] == [
        ("AMOR", Decimal("7999999.573")),
        ("FAMT", Decimal("8167548")),
    ]
    assert m.find("98E", "PREP").datetime() == dt.datetime(
        2014, 11, 13, 13, 2, 18, tzinfo=dt.timezone(-dt.timedelta(hours=5))
    )
    amounts = {s.fields[0].qualifier: s.fields[0].amount() for s in m.sequences("AMT")}
    assert amounts["ESTT"] == ("USD", Decimal("8226417.05"))
    assert bic_from_lt("BBBBFRPPAHCM") == "BBBBFRPPHCM"


def test_service_message_in_front_of_its_message() -> None:
    nak, mt535 = parse_fin((REAL / "MT535_SystemMessageTest_05.fin").read_text())
    assert nak.is_service and nak.message_type == "NAK"
    assert {f.tag: f.value for f in nak.fields} == {"177": "0703281337", "451": "1", "405": "E66013"}
    assert not mt535.is_service and mt535.trailers == {"REF": "I20070328.386482886.out/1/1"}
    assert mt535.start_line == 1 and mt535.index == 2


def test_negative_balance_and_scheme_fields() -> None:
    (m,) = parse_fin((REAL / "MT535_MtSwiftMessageJsonSchemaTest_02.fin").read_text(), strict=False)
    avai = [f.quantity() for f in m.find_all("93B", "AVAI")]
    assert ("FAMT", Decimal("-990692")) in avai
    (m,) = parse_fin((REAL / "MT540_MtSwiftMessageJsonSchemaTest_02.fin").read_text())
    safe = m.find("97B", "SAFE")
    assert (safe.issuer, safe.value) == ("SA22", "AS11/123456")
    assert m.find("23G").value == "NEWM/COPY" and m.function == "NEWM"


# --- hand-written files ---------------------------------------------------------------------------------------

GOOD = (
    "{1:F01OURBANKXAXXX0000000000}{2:I548CUSTODYXXXXXN}{4:\n"
    ":16R:GENL\n"
    ":20C::SEME//STAT1\n"
    ":23G:INST\n"
    ":16R:LINK\n"
    ":20C::RELA//OUR-REF-1\n"
    ":16S:LINK\n"
    ":16R:STAT\n"
    ":25D::MTCH//NMAT\n"
    ":16R:REAS\n"
    ":24B::NMAT//CMIS\n"
    ":70D::REAS//NO COUNTERPARTY\n"
    "INSTRUCTION FOUND\n"
    ":16S:REAS\n"
    ":16S:STAT\n"
    ":16S:GENL\n"
    "-}"
)


def test_several_messages_crlf_junk_and_rje_separators() -> None:
    second = GOOD.replace("STAT1", "STAT2")
    text = "garbage line\r\n" + GOOD.replace("\n", "\r\n") + "\r\n$" + second + "\n$\n  trailing junk\n"
    messages = parse_fin(text, file_name="batch.rje")
    assert [m.reference for m in messages] == ["STAT1", "STAT2"]
    first, two = messages
    assert first.start_line == 2 and two.start_line == 19
    reas = first.sequence("REAS")
    assert reas.find("24B", "NMAT").value == "CMIS"
    text70 = reas.find("70D", "REAS")
    assert text70.value == "NO COUNTERPARTY\nINSTRUCTION FOUND" and text70.line == 13
    assert first.sequence("STAT").find("25D").value == "NMAT"
    assert "\r" not in first.raw and first.raw.endswith("-}")
    assert two.find("20C", "RELA").line == 19 + 5


@pytest.mark.parametrize(
    ("text", "phrase", "line"),
    [
        (GOOD.replace(":16S:REAS\n", ""), "16S:STAT closes REAS", 14),
        (GOOD.replace(":16R:LINK\n", ""), "16S:LINK closes GENL", 6),
        (GOOD.replace(":16S:GENL\n", ""), "sequence GENL opened at line 2 is never closed", 2),
        (GOOD.replace("-}", ""), "block 4 is not closed by '-}'", 16),
    ],
)
def test_unbalanced_structure_is_refused_when_strict(text: str, phrase: str, line: int) -> None:
    with pytest.raises(FinParseError) as err:
        parse_fin(text, file_name="bad.fin")
    assert phrase in str(err.value)
    assert err.value.line == line and err.value.file_name == "bad.fin"
    assert isinstance(err.value, OpsDeskError)
    (m,) = parse_fin(text, file_name="bad.fin", strict=False)
    assert any(phrase in p for p in m.problems)
    assert m.reference == "STAT1"


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("{1:F01OURBANKXAXXX0000000000}{2:I548CUSTODYXXXXXN}", "missing block 4"),
        (GOOD.replace(":23G:INST", ":23G INST"), "bad field syntax"),
        (GOOD.replace(":20C::RELA//", ":20C::RE//"), "bad generic field"),
        (GOOD.replace("{2:I548CUSTODYXXXXXN}", ""), "missing block 2"),
        (GOOD.replace("{2:I548CUSTODYXXXXXN}", "{2:I54CUSTODYXXXX}"), "bad application header"),
        ("%PDF-1.4 not a swift file at all\n", "no FIN message found"),
        ("", "no FIN message found"),
        (GOOD.replace("{4:\n", "{4:\nstray text\n"), "before the first field"),
    ],
)
def test_unreadable_messages_always_raise(text: str, phrase: str) -> None:
    for strict in (True, False):
        with pytest.raises(FinParseError, match=phrase):
            parse_fin(text, file_name="x.fin", strict=strict)


def test_bad_field_error_names_line_and_field() -> None:
    with pytest.raises(FinParseError) as err:
        parse_fin(GOOD.replace(":23G:INST", ":23G INST"), file_name="x.fin")
    assert str(err.value).startswith("x.fin, message 1, line 4:")


def test_one_bad_message_spoils_only_itself_when_split() -> None:
    raws = split_fin(GOOD + "\n" + GOOD.replace(":23G:INST", ":23G INST"), file_name="two.fin")
    assert len(raws) == 2 and raws[1].index == 2 and raws[1].start_line == 18


def test_binary_content_is_refused() -> None:
    with pytest.raises(FinParseError, match="binary"):
        decode_bytes(b"\x89PNG\r\n\x1a\n\x00\x00", file_name="img.png")
    with pytest.raises(FinParseError, match="binary"):
        parse_fin(GOOD.replace("STAT1", "ST\x00T1"))
    assert decode_bytes(b"{1:caf\xe9}") == "{1:caf\xe9}"


def test_value_field_conversion_errors_name_the_field() -> None:
    text = GOOD.replace(":23G:INST\n", ":23G:INST\n:98A::SETT//20240230\n:19A::SETT//EUR1.234,5\n")
    (m,) = parse_fin(text)
    with pytest.raises(FinParseError, match=r"line 5, field :98A::SETT: bad date") as err:
        m.find("98A", "SETT").date()
    assert err.value.line == 5
    with pytest.raises(FinParseError, match=r"field :19A::SETT: bad amount"):
        m.find("19A", "SETT").amount()


# --- value helpers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1234,56", Decimal("1234.56")),
        ("1000,", Decimal("1000")),
        ("0,5", Decimal("0.5")),
        ("N12,", Decimal(-12)),
    ],
)
def test_swift_decimal(text: str, value: Decimal) -> None:
    assert swift_decimal(text) == value


@pytest.mark.parametrize("text", ["1234.56", "1.234,56", "", ",5", "12", "abc,"])
def test_swift_decimal_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        swift_decimal(text)


def test_dates_quantities_amounts_prices() -> None:
    assert swift_date("20240115") == dt.date(2024, 1, 15)
    for bad in ("2024011", "20241301", "20240230"):
        with pytest.raises(ValueError):
            swift_date(bad)
    assert swift_datetime("20211216144402") == dt.datetime(2021, 12, 16, 14, 44, 2)
    assert swift_datetime("20141113130218,5/0130").utcoffset() == dt.timedelta(hours=1, minutes=30)
    assert swift_quantity("UNIT/100,") == ("UNIT", Decimal(100))
    assert swift_quantity("FAMT/31000000,") == ("FAMT", Decimal(31000000))
    assert swift_amount("EUR1234,56") == ("EUR", Decimal("1234.56"))
    assert swift_amount("NUSD5,") == ("USD", Decimal(-5))
    assert swift_price("PRCT/102,713552") == ("PRCT", None, Decimal("102.713552"))
    for fn, bad in [(swift_quantity, "100,"), (swift_amount, "1234,56"), (swift_price, "ACTU/11.1")]:
        with pytest.raises(ValueError):
            fn(bad)


# --- the fast path reads exactly what the line-by-line reading reads ----------------------------------------------


def _both_readings(raw: RawFin, strict: bool) -> tuple[object, object]:
    """(fast, reference) reading of a message's block 4: the tree and flat fields as JSON, the problems, or the
    error text; the reference is the line-by-line reading followed by the tree."""
    from app.services.swift import fin as fin_module

    out = []
    for fast in (True, False):
        reader = fin_module._Reader(raw, strict)
        try:
            blocks, _ = reader.blocks()
        except FinParseError:
            return None, None  # the message ends before block 4 can be read: nothing to compare
        if "4" not in blocks or blocks["4"][0].startswith("{"):
            return None, None
        try:
            if fast:
                root, flat = reader.fields_tree(*blocks["4"])
            else:
                root, flat = reader.tree(reader._fields_by_line(*blocks["4"]))
            out.append((root.to_json(), [f.to_json() for f in flat], list(reader.problems)))
        except FinParseError as err:
            out.append(str(err))
    return out[0], out[1]


def _variants(text: str) -> list[str]:
    """A message and damaged copies of it: a multi-line value with a blank line, a sequence closed wrongly, one never
    closed, a bad tag, a malformed generic field, text before the first field."""
    out = [text]
    if ":16S:" in text:
        out.append(text.replace(":16S:", ":16S:X", 1))
        i = text.rfind("\n:16S:")
        out.append(text[:i] + text[text.index("\n", i + 1) :])
    if "\n:20C::" in text:
        out.append(text.replace("\n:20C::", "\n:20C::SEME//A\n\nsecond line\n:20C::", 1))
        out.append(text.replace("\n:20C::", "\n:2X0C::", 1))
        out.append(text.replace("\n:20C::", "\n:20C::SE/", 1))
    if "{4:\n" in text:
        out.append(text.replace("{4:\n", "{4:\nstray text\n", 1))
    return out


@pytest.mark.parametrize("strict", [True, False])
def test_fast_block4_reading_equals_the_line_by_line_reading(strict: bool) -> None:
    files = sorted(REAL.glob("*.fin")) + sorted((Path(__file__).parent / "fixtures" / "swift").glob("*.fin"))
    assert len(files) > 10
    compared = 0
    for path in files:
        text = path.read_text(encoding="latin-1")
        for variant in _variants(text):
            try:
                raws = split_fin(variant, file_name=path.name)
            except FinParseError:
                continue
            for raw in raws:
                fast, reference = _both_readings(raw, strict)
                assert fast == reference, (path.name, raw.index)
                compared += fast is not None
    assert compared > 100
