"""The one-pass MT544-548 reader (``swift.mt54x_fast``) reads exactly what the full parser and reader read.

Every unit of a FIN file — raw text, message type, parsed headers, settlement facts, or the reason it is
quarantined — must be the same whether clean messages take the fast path or not: on every real and hand-written
file, on a large generated file, and on thousands of mangled messages (lines dropped, doubled, swapped, values and
sequence names changed, junk, truncation, blanks between blocks, multi-line values, a field after a nested
sequence), where any fault must still reach the full parser and give its precise reason.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from app.services.settlement import messages
from app.services.swift import fin, mt54x_fast

from .helpers import REAL_FIXTURES

HERE = Path(__file__).resolve().parent
HANDWRITTEN = sorted((HERE / "fixtures" / "swift").glob("*.fin"))
REAL = sorted((REAL_FIXTURES / "swift-mt-securities" / "prowide-core").glob("*.fin"))


def _units(text: str, *, fast: bool) -> list[tuple[Any, ...]]:
    units = messages._fin_units(fin.normalise(text), "f.fin", fast=fast)
    return [
        (u.index, u.raw, u.message_type, u.error, u.parsed, u.incoming.to_json() if u.incoming else None)
        for u in units
    ]


def _readings(text: str) -> tuple[Any, Any]:
    """The full and the fast reading of ``text``: the units, or the error the file is refused with."""

    def read(fast: bool) -> Any:
        try:
            return _units(text, fast=fast)
        except fin.FinParseError as err:
            return ("refused", str(err))

    return read(False), read(True)


def _same(text: str) -> list[tuple[Any, ...]]:
    """The units of ``text``, asserting both readings agree (a refused file reads as no unit)."""
    slow, fast = _readings(text)
    assert fast == slow
    return [] if isinstance(slow, tuple) else slow


def _fast_reads(text: str) -> int:
    return sum(mt54x_fast.read(raw) is not None for raw in fin.split_fin(fin.normalise(text)))


@pytest.mark.parametrize("path", REAL + HANDWRITTEN, ids=lambda p: p.name)
def test_every_fixture_reads_the_same(path: Path) -> None:
    slow, fast = _readings(path.read_bytes().decode("latin-1"))
    assert fast == slow


def test_the_fast_path_is_taken_for_clean_status_and_confirmations() -> None:
    # Every hand-written MT544-548 and the bank's real MT547 are clean: the fast reader takes them all …
    for path in [
        *HANDWRITTEN,
        REAL_FIXTURES / "swift-mt-securities/prowide-core/MT547_AbstractMTTest_01.fin",
    ]:
        assert _fast_reads(path.read_text("latin-1")) == 1, path.name
    # … and leaves the instructions, statements, service messages and damaged files to the full parser.
    for path in REAL:
        if "MT547" not in path.name:
            assert _fast_reads(path.read_text("latin-1")) == 0, path.name


def _status(i: int, *, reasons: list[tuple[str, str | None]] | None = None, settran: bool = False) -> str:
    reas = "".join(
        f":16R:REAS\n:24B::NMAT//{code}\n" + (f":70D::REAS//{text}\n" if text else "") + ":16S:REAS\n"
        for code, text in (reasons or [])
    )
    status = ":25D::MTCH//NMAT\n" + reas if reasons else ":25D::MTCH//MACH\n"
    tran = (
        ":16R:SETTRAN\n:35B:ISIN DE0007164600\n:36B::SETT//UNIT/100,\n:19A::SETT//EUR24150,\n:22H::REDE//DELI\n"
        ":22H::PAYM//APMT\n:98A::SETT//20240115\n:16R:SETPRTY\n:95P::BUYR//BROKGB2L\n:16S:SETPRTY\n:16S:SETTRAN\n"
        if settran
        else ""
    )
    return (
        "{1:F01OPSDGB2LAXXX0000000000}{2:O5481200240115CUSTDEFFAXXX00000000002401151200N}{4:\n"
        f":16R:GENL\n:20C::SEME//S{i}\n:23G:INST\n:98C::PREP//20240115090000\n:16R:LINK\n"
        f":20C::RELA//SEME{i:012d}\n:16S:LINK\n:16R:STAT\n{status}:16S:STAT\n:16S:GENL\n{tran}-}}"
    )


def _confirmation(i: int, mtype: str = "545", qty: str = "100,", amount: str = "EUR24150,") -> str:
    return (
        f"{{1:F01OPSDGB2LAXXX0000000000}}{{2:O{mtype}1200240115CUSTDEFFAXXX00000000002401151200N}}"
        "{3:{108:REF}}{4:\n"
        f":16R:GENL\n:20C::SEME//C{i}\n:23G:NEWM\n:16R:LINK\n:20C::RELA//SEME{i:012d}\n:16S:LINK\n:16S:GENL\n"
        ":16R:TRADDET\n:98A::ESET//20240115\n:98A::SETT//20240115\n:35B:ISIN DE0007164600\n:16S:TRADDET\n"
        f":16R:FIAC\n:36B::ESTT//UNIT/{qty}\n:97A::SAFE//S1\n:16S:FIAC\n:16R:SETDET\n:22F::SETR//TRAD\n"
        ":16R:SETPRTY\n:95P::SELL//BROKGB2L\n:16S:SETPRTY\n"
        f":16R:AMT\n:19A::ESTT//{amount}\n:16S:AMT\n:16S:SETDET\n-}}{{5:{{CHK:0123456789AB}}}}"
    )


def test_a_file_of_one_shape_keeps_each_messages_own_values() -> None:
    # Same shape, different values: the plan is shared, the values never are.
    codes = ["CMIS", "DDAT", "DQUA", "LACK"]
    parts = [
        _status(i, reasons=[(codes[i % 4], f"WHY {i}"), ("DMON", None)], settran=i % 3 == 0)
        for i in range(40)
    ]
    parts += [_confirmation(i, qty=f"{i + 1},5", amount=f"EUR{i * 7},25") for i in range(40)]
    text = "\n$".join(parts)
    units = _same(text)
    assert _fast_reads(text) == 80
    facts = [u[5] for u in units]
    assert [f["related_reference"] for f in facts[:3]] == [
        "SEME000000000000",
        "SEME000000000001",
        "SEME000000000002",
    ]
    assert facts[6]["statuses"][0]["code"] == "DQUA" and facts[6]["statuses"][0]["text"] == "WHY 6"
    assert facts[3]["direction"] == "DELI" and facts[4].get("direction") is None
    assert facts[41]["settled_quantity"] == "2.5" and facts[41]["settled_amount"] == "7.25"


def test_stubs_and_faults_go_to_the_full_parser() -> None:
    stub = _status(7).split(":16R:LINK")[0] + ":16S:GENL\n-}"
    unbalanced = _confirmation(8).replace(":16S:FIAC\n", "")
    (unit,) = _same(stub)
    assert "no settlement data" in unit[3] and unit[5] is None
    (unit,) = _same(unbalanced)
    assert "damaged structure" in unit[3] and unit[5] is None
    assert _fast_reads(stub) == _fast_reads(unbalanced) == 0


def test_walk_order_a_field_after_a_nested_sequence_wins() -> None:
    # FinMessage.find takes a sequence's own fields before those nested in it, whatever the text order.
    text = _confirmation(1).replace(
        ":16R:TRADDET\n:98A::ESET//20240115\n:98A::SETT//20240115\n",
        ":16R:TRADDET\n:16R:FIA\n:98A::SETT//20240301\n:98A::ESET//20240302\n:16S:FIA\n:98A::SETT//20240115\n",
    )
    (unit,) = _same(text)
    assert unit[5]["settlement_date"] == "2024-01-15" and unit[5]["settled_on"] == "2024-03-02"
    assert _fast_reads(text) == 1


_MUTATIONS = (
    "drop",
    "double",
    "swap",
    "char",
    "rename",
    "junk",
    "truncate",
    "blank",
    "continue",
    "crlf",
    "prep98a",
    "nonref",
)


def _mutate(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    kind = rng.choice(_MUTATIONS)
    i = rng.randrange(len(lines))
    if kind == "drop":
        del lines[i]
    elif kind == "double":
        lines.insert(i, lines[i])
    elif kind == "swap":
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "char":
        line = lines[i]
        if line:
            k = rng.randrange(len(line))
            lines[i] = line[:k] + rng.choice(":/{}-$ AZ09,N\n") + line[k + 1 :]
    elif kind == "rename":
        lines[i] = lines[i].replace("GENL", "GENX").replace("FIAC", "FIAX").replace("STAT", "STAX")
    elif kind == "junk":
        lines.insert(i, rng.choice(["junk", ":XX:nonsense", "", "  ", "{S:{SAC:}}", "$"]))
    elif kind == "truncate":
        return "\n".join(lines[: i + 1])
    elif kind == "blank":
        return text.replace("}{", rng.choice(["} {", "}\n{", "}{"]), 1)
    elif kind == "continue":
        lines.insert(i + 1, rng.choice(["MORE TEXT", "  ", "LINE 2 OF THE VALUE"]))
    elif kind == "crlf":
        return text.replace("\n", "\r\n")
    elif kind == "prep98a":
        return text.replace(":98C::PREP//20240115090000", ":98A::PREP//20240115")
    elif kind == "nonref":
        return text.replace("RELA//SEME", "RELA//NONREF ", 1)
    return "\n".join(lines)


@pytest.mark.parametrize("seed", range(4))
def test_mangled_messages_read_the_same(seed: int) -> None:
    rng = random.Random(seed)
    bases = [
        _status(1),
        _status(2, reasons=[("CMIS", "NO INSTRUCTION\nAT THE CSD"), ("DDAT", None)], settran=True),
        _confirmation(3),
        _confirmation(4, mtype="544"),
        _confirmation(5, mtype="547"),
        # An input header (with delivery monitoring and obsolescence) and a block 3 of several tags.
        _status(6).replace(
            "{2:O5481200240115CUSTDEFFAXXX00000000002401151200N}",
            "{2:I548CUSTDEFFXXXXN3020}{3:{113:X}{108:R}}",
        ),
        *(p.read_text("latin-1") for p in HANDWRITTEN),
        (REAL_FIXTURES / "swift-mt-securities/prowide-core/MT547_AbstractMTTest_01.fin").read_text("latin-1"),
    ]
    for _ in range(600):
        text = rng.choice(bases)
        for _ in range(rng.choice((1, 1, 2, 3))):
            text = _mutate(text, rng)
        slow, fast = _readings(text)
        assert fast == slow, text
