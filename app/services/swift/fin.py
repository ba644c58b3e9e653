"""A small ISO 15022 FIN parser: blocks 1-5, block-4 fields, and the 16R/16S sequence tree.

No Python library parses securities (MT5xx) messages well, so this one is ours. It reads what banks and custodians
really send: several messages per file, CRLF or LF line ends, junk before/after/between messages, RJE batches
separated by ``$``, service (ACK/NAK) envelopes in front of the message they acknowledge, and an unterminated
trailer block. What it cannot read it refuses with a :class:`FinParseError` naming the file, the line and what is
wrong.

Two levels of strictness, because a clerk needs both:

* ``strict=True`` (default): any structural fault (unbalanced 16R/16S, a 16S closing the wrong sequence, block 4
  without its ``-}`` end, a block-5 without its closing brace) raises.
* ``strict=False``: those faults are recorded in :attr:`FinMessage.problems` (with line numbers) and the message is
  still returned, so a caller can show what was there and quarantine it with the reason. Syntax faults that leave
  nothing to read (no block 4, a line that looks like a field but is not one, no message type) always raise.

Field syntax (``:20C::SEME//REF1``): ``tag`` is ``20C``; a *generic* field (value starting with ``:``) carries a
4-character ``qualifier``, an optional data source scheme (``issuer``, between the single slashes of
``:95R::DEAG/CRST/382``) and the ``value``; a non-generic field (``:23G:NEWM``) has ``qualifier`` None. Multi-line
values keep their line breaks (``\\n``) and the line number of their first line.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from app.services.errors import OpsDeskError


class FinParseError(OpsDeskError):
    """A FIN message could not be read. ``str(err)`` names the file, the line, the field and the fault."""

    def __init__(
        self,
        reason: str,
        *,
        file_name: str = "",
        line: int | None = None,
        field: str | None = None,
        message_index: int | None = None,
    ) -> None:
        self.reason = reason
        self.file_name = file_name
        self.line = line
        self.field = field
        self.message_index = message_index
        super().__init__(self._compose())

    def _compose(self) -> str:
        where = []
        if self.file_name:
            where.append(self.file_name)
        if self.message_index is not None:
            where.append(f"message {self.message_index}")
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(f"field {self.field}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def located(self, *, file_name: str | None = None, message_index: int | None = None) -> FinParseError:
        """The same error with the file name / message number filled in by a caller that knows them."""
        if file_name and not self.file_name:
            self.file_name = file_name
        if message_index is not None and self.message_index is None:
            self.message_index = message_index
        self.args = (self._compose(),)
        return self


# --- value helpers ------------------------------------------------------------------------------------------------
# Cached (dates, times and amounts repeat across the messages of a file; the values are immutable).

_DECIMAL_RE = re.compile(r"^(N?)(\d+),(\d*)$")


@functools.lru_cache(maxsize=8192)
def swift_decimal(text: str) -> Decimal:
    """``"1234,56"`` → ``Decimal("1234.56")``; ``"1000,"`` → 1000; a leading ``N`` (MT535/537 balances) is a minus.

    SWIFT amounts always carry a decimal comma and never a point or a thousands separator; anything else is refused.
    """
    m = _DECIMAL_RE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a SWIFT decimal (digits with one decimal comma, e.g. 1234,56)")
    sign, whole, frac = m.groups()
    value = Decimal(f"{whole}.{frac or '0'}")
    return -value if sign else value


_DATE_RE = re.compile(r"\d{8}")
_DATETIME_RE = re.compile(r"(\d{8})(\d{2})(\d{2})(\d{2})(?:,(\d{1,3}))?(?:/(N?)(\d{2})(\d{2})?)?")
_QUANTITY_RE = re.compile(r"([A-Z]{4})/(N?\d+,\d*)")
_AMOUNT_RE = re.compile(r"(N?)([A-Z]{3})(\d+,\d*)")
_PRICE_RE = re.compile(r"([A-Z]{4})/(?:([A-Z]{3}))?(N?\d+,\d*)")


@functools.lru_cache(maxsize=4096)
def swift_date(text: str) -> dt.date:
    """``YYYYMMDD`` → date (98A). Refuses impossible dates such as 11111111."""
    s = text.strip()
    if not _DATE_RE.fullmatch(s):
        raise ValueError(f"{text!r} is not a date YYYYMMDD")
    try:
        return dt.date(int(s[:4]), int(s[4:6]), int(s[6:8]))
    except ValueError:
        raise ValueError(f"{text!r} is not a real calendar date") from None


@functools.lru_cache(maxsize=4096)
def swift_datetime(text: str) -> dt.datetime:
    """``YYYYMMDDHHMMSS`` (98C), optionally ``,nnn`` decimals and ``/[N]HHMM`` UTC offset (98E).

    Without an offset the result is naive (local time of the sender, as the standard says); with one it is aware.
    """
    m = _DATETIME_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a date-time YYYYMMDDHHMMSS")
    d = swift_date(m.group(1))
    micro = int((m.group(5) or "0").ljust(6, "0"))
    tz = None
    if m.group(7) is not None:
        offset = dt.timedelta(hours=int(m.group(7)), minutes=int(m.group(8) or 0))
        tz = dt.timezone(-offset if m.group(6) else offset)
    try:
        return dt.datetime(
            d.year, d.month, d.day, int(m.group(2)), int(m.group(3)), int(m.group(4)), micro, tzinfo=tz
        )
    except ValueError:
        raise ValueError(f"{text!r} is not a real time of day") from None


@functools.lru_cache(maxsize=4096)
def swift_quantity(text: str) -> tuple[str, Decimal]:
    """36B ``UNIT/100,`` → ("UNIT", 100). Types: UNIT (shares), FAMT (face amount), AMOR (amortised value)."""
    m = _QUANTITY_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a quantity TYPE/number (e.g. UNIT/100,)")
    return m.group(1), swift_decimal(m.group(2))


@functools.lru_cache(maxsize=8192)
def swift_amount(text: str) -> tuple[str, Decimal]:
    """19A ``EUR1234,56`` (optionally ``NEUR…`` for a negative amount) → ("EUR", Decimal("1234.56"))."""
    m = _AMOUNT_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not an amount CCYnumber (e.g. EUR1234,56)")
    value = swift_decimal(m.group(3))
    return m.group(2), -value if m.group(1) else value


def swift_price(text: str) -> tuple[str, str | None, Decimal]:
    """90A ``PRCT/102,713552`` → ("PRCT", None, …); 90B ``ACTU/EUR11,11`` → ("ACTU", "EUR", 11.11)."""
    m = _PRICE_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a price TYPE/[CCY]number (e.g. ACTU/EUR11,11)")
    return m.group(1), m.group(2), swift_decimal(m.group(3))


@functools.lru_cache(maxsize=4096)
def bic_from_lt(lt_address: str) -> str:
    """A 12-character logical terminal address → BIC: ``FOOBARXXAXXX`` → ``FOOBARXX``, ``BBBBFRPPAHCM`` →
    ``BBBBFRPPHCM`` (the 9th character is the terminal code, not part of the BIC; branch XXX is dropped)."""
    lt = lt_address.strip()
    if len(lt) != 12:
        return lt
    branch = lt[9:12]
    return lt[:8] if branch == "XXX" else lt[:8] + branch


# --- the parsed shapes --------------------------------------------------------------------------------------------


_NONE: list[Any] = []  # the empty result of a lookup (never mutated: callers get copies or read it)


def _tag_matches(wanted: str, tag: str) -> bool:
    # "98" matches every letter option (98A, 98C, 98E); "98A" only itself.
    return tag == wanted or (len(wanted) == 2 and tag[:2] == wanted)


class Field(NamedTuple):
    """One block-4 field. ``line`` is the (1-based) line of the file its first line is on.

    Immutable; a NamedTuple rather than a frozen dataclass because a file of 100,000 messages makes over a million
    of them, and a tuple is built several times faster.
    """

    tag: str
    qualifier: str | None
    value: str
    line: int
    issuer: str | None = None  # data source scheme of a generic field (``:95R::DEAG/CRST/382`` → "CRST")

    @property
    def label(self) -> str:
        """How the field is written in the standard: ``:36B::SETT`` or ``:23G:``."""
        return f":{self.tag}::{self.qualifier}" if self.qualifier else f":{self.tag}:"

    def _convert(self, fn: Any, what: str) -> Any:
        try:
            return fn(self.value)
        except ValueError as err:
            raise FinParseError(f"bad {what}: {err}", line=self.line, field=self.label) from None

    def decimal(self) -> Decimal:
        return self._convert(swift_decimal, "number")

    def date(self) -> dt.date:
        # 98A is a date, 98C/98E a date-time: a date is wanted either way.
        if self.tag[:2] == "98" and self.tag != "98A":
            return self._convert(swift_datetime, "date-time").date()
        return self._convert(swift_date, "date")

    def datetime(self) -> dt.datetime:
        return self._convert(swift_datetime, "date-time")

    def quantity(self) -> tuple[str, Decimal]:
        return self._convert(swift_quantity, "quantity")

    def amount(self) -> tuple[str, Decimal]:
        return self._convert(swift_amount, "amount")

    def price(self) -> tuple[str, str | None, Decimal]:
        return self._convert(swift_price, "price")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tag": self.tag, "value": self.value, "line": self.line}
        if self.qualifier:
            out["qualifier"] = self.qualifier
        if self.issuer:
            out["issuer"] = self.issuer
        return out


@dataclass(slots=True)
class Sequence:
    """A 16R/16S sequence (GENL, LINK, TRADDET, FIAC, SETDET, SETPRTY, AMT, STAT, REAS …) or the block-4 root."""

    name: str
    fields: list[Field] = field(default_factory=list)
    children: list[Sequence] = field(default_factory=list)
    line: int = 0  # line of the 16R (0 for the root)

    def find(self, tag: str, qualifier: str | None = None) -> Field | None:
        """The first field of this sequence itself (not its children) with ``tag`` (and ``qualifier``)."""
        for f in self.fields:
            if _tag_matches(tag, f.tag) and (qualifier is None or f.qualifier == qualifier):
                return f
        return None

    def find_all(self, tag: str, qualifier: str | None = None, *, deep: bool = False) -> list[Field]:
        """Every matching field of this sequence; ``deep`` also searches the sequences nested in it."""
        pool = self.walk_fields() if deep else iter(self.fields)
        return [
            f for f in pool if _tag_matches(tag, f.tag) and (qualifier is None or f.qualifier == qualifier)
        ]

    def find_deep(self, tag: str, qualifier: str | None = None) -> Field | None:
        return next(iter(self.find_all(tag, qualifier, deep=True)), None)

    def sequences(self, name: str) -> list[Sequence]:
        """Every sequence named ``name`` nested anywhere below this one, in document order."""
        out: list[Sequence] = []
        for child in self.children:
            if child.name == name:
                out.append(child)
            out.extend(child.sequences(name))
        return out

    def sequence(self, name: str) -> Sequence | None:
        """The first sequence named ``name`` below this one, or None."""
        return next(iter(self.sequences(name)), None)

    def walk_fields(self) -> Iterator[Field]:
        yield from self.fields
        for child in self.children:
            yield from child.walk_fields()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fields": [f.to_json() for f in self.fields],
            "children": [c.to_json() for c in self.children],
        }


@dataclass(slots=True)
class FinMessage:
    """One FIN message: its header blocks as dicts, its block-4 fields flat and as a sequence tree."""

    block1: dict[str, str]
    block2: dict[str, str]
    block3: dict[str, str]
    block5: dict[str, str]
    message_type: str  # "540" … "548", "535", "950"; "ACK"/"NAK" for a service message
    sender_bic: str | None
    receiver_bic: str | None
    fields: list[Field]
    root: Sequence
    raw: str = ""
    file_name: str = ""
    index: int = 1  # 1-based position in its file
    start_line: int = 1
    problems: list[str] = field(default_factory=list)  # structural faults tolerated with strict=False
    trailers: dict[str, str] = field(default_factory=dict)  # {S:...} user trailer block
    _index: dict[tuple[str, str | None], list[Field]] | None = field(default=None, repr=False, compare=False)
    _seqs: dict[str, list[Sequence]] | None = field(default=None, repr=False, compare=False)

    def _lookup(self, tag: str, qualifier: str | None) -> list[Field]:
        # Readers ask a message for a dozen fields: one pass builds an index by (tag, qualifier) and by the
        # two-digit tag (any letter option), with None standing for "any qualifier".
        idx = self._index
        if idx is None:
            idx = {}
            get = idx.setdefault
            for f in self.root.walk_fields():
                t, q = f.tag, f.qualifier
                for key in (t, t[:2]) if len(t) > 2 else (t,):
                    get((key, q), []).append(f)
                    if q is not None:
                        get((key, None), []).append(f)
            self._index = idx
        return idx.get((tag, qualifier), _NONE)

    @property
    def is_service(self) -> bool:
        """A service message (ACK/NAK, F21) rather than a user message."""
        return self.block1.get("service_id", "01") != "01"

    def find(self, tag: str, qualifier: str | None = None) -> Field | None:
        """The first field anywhere in block 4 (``tag`` "98" matches 98A/98C/98E; no qualifier: any)."""
        found = self._lookup(tag, qualifier)
        return found[0] if found else None

    def find_all(self, tag: str, qualifier: str | None = None) -> list[Field]:
        return list(self._lookup(tag, qualifier))

    def sequences(self, name: str) -> list[Sequence]:
        return list(self._sequence_map().get(name, _NONE))

    def sequence(self, name: str) -> Sequence | None:
        found = self._sequence_map().get(name)
        return found[0] if found else None

    def _sequence_map(self) -> dict[str, list[Sequence]]:
        # Every sequence by name in document order (what Sequence.sequences finds), built once per message.
        seqs = self._seqs
        if seqs is None:
            seqs = {}

            def visit(seq: Sequence) -> None:
                for child in seq.children:
                    seqs.setdefault(child.name, []).append(child)
                    if child.children:
                        visit(child)

            visit(self.root)
            self._seqs = seqs
        return seqs

    @property
    def reference(self) -> str | None:
        """The sender's message reference: :20C::SEME (MT5xx) or :20: (MT9xx)."""
        f = self.find("20C", "SEME") or self.root.find("20")
        return f.value if f else None

    @property
    def function(self) -> str | None:
        """:23G: function of the message (NEWM, CANC, …) without its sub-function."""
        f = self.find("23G")
        return f.value.split("/")[0] if f else None

    def describe(self) -> str:
        where = f"{self.file_name}, message {self.index}" if self.file_name else f"message {self.index}"
        return f"MT{self.message_type} {self.reference or '(no reference)'} ({where}, line {self.start_line})"

    def to_json(self) -> dict[str, Any]:
        return {
            "message_type": self.message_type,
            "sender_bic": self.sender_bic,
            "receiver_bic": self.receiver_bic,
            "block1": self.block1,
            "block2": self.block2,
            "block3": self.block3,
            "block5": self.block5,
            "block4": self.root.to_json(),
            "problems": self.problems,
        }


# --- splitting a file into messages -------------------------------------------------------------------------------


@dataclass(slots=True)
class RawFin:
    """One message's text as cut from its file, before parsing (so one bad message spoils only itself)."""

    text: str
    index: int
    start_line: int
    file_name: str = ""


def _line_of(text: str, offset: int) -> int:
    """1-based line number of ``offset`` in the normalised text (one C-level count, no table to build)."""
    return text.count("\n", 0, offset) + 1


def normalise(text: str) -> str:
    """CRLF and lone CR → LF, so line numbers and offsets agree whatever the sender's platform."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def split_fin(text: str, *, file_name: str = "") -> list[RawFin]:
    """Cut a file into message texts, each starting at ``{1:`` (junk and ``$`` RJE separators between are dropped).

    A service message (F21 ACK/NAK) and the message it carries are two entries. Raises if no ``{1:`` is found.
    """
    text = normalise(text)
    if "\x00" in text:
        raise FinParseError(
            "binary content (NUL bytes): not a FIN message file",
            file_name=file_name,
            line=_line_of(text, text.index("\x00")),
        )
    starts = [m.start() for m in _START_RE.finditer(text)]
    if not starts:
        raise FinParseError("no FIN message found (no '{1:' basic header block)", file_name=file_name, line=1)
    out: list[RawFin] = []
    # A "{1:" inside another message's block 4 is impossible in valid FIN (braces are not in the X character set),
    # so each occurrence starts a message; the text up to the next one (minus trailing junk) belongs to it.
    line, prev = 1, 0
    count = text.count
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(text)
        line += count("\n", prev, start)
        prev = start
        out.append(RawFin(text[start:end], n + 1, line, file_name))
    return out


# --- parsing one message ------------------------------------------------------------------------------------------

_START_RE = re.compile(r"\{1:")
_BLOCK_START_RE = re.compile(r"\{([1-5A-Za-z]):")
_TAG_RE = re.compile(r":(\d{2}[A-Z]?):")
# Every field of block 4 at once: a line starting ":NNa:", then (generic) qualifier and data source scheme, then the
# value with its continuation lines (lines not starting with ':').
_FIELDS_RE = re.compile(r"\n:(\d{2}[A-Z]?):(?::([A-Z0-9]{4})/([A-Za-z0-9]*)/)?([^\n]*(?:\n(?!:)[^\n]*)*)")
_BLOCK1_RE = re.compile(r"([FAL])(\d{2})([A-Z0-9]{12})([A-Z0-9]{4})?([A-Z0-9]{6})?")
_BLOCK2_IN_RE = re.compile(r"I(\d{3})([A-Z0-9]{12})([SUN])?(\d)?(\d{3})?")
_BLOCK2_OUT_RE = re.compile(
    r"O(\d{3})(\d{4})(\d{6})([A-Z0-9]{12})([A-Z0-9]{4})([A-Z0-9]{6})(\d{6})(\d{4})([SUN])?"
)
_GENERIC_RE = re.compile(r"^:([A-Z0-9]{4})/([A-Za-z0-9]*)/(.*)$", re.S)
_TAG_BLOCK_RE = re.compile(r"\{([A-Za-z0-9]+):([^{}]*)\}")


class _Reader:
    def __init__(self, raw: RawFin, strict: bool) -> None:
        self.raw = raw
        self.text = raw.text
        self.strict = strict
        self.problems: list[str] = []

    def line(self, offset: int) -> int:
        return self.raw.start_line + self.text.count("\n", 0, offset)

    def fail(
        self, reason: str, offset: int | None = None, *, line: int | None = None, fld: str | None = None
    ):
        return FinParseError(
            reason,
            file_name=self.raw.file_name,
            line=line if line is not None else (self.line(offset) if offset is not None else None),
            field=fld,
            message_index=self.raw.index,
        )

    def tolerate(self, reason: str, *, line: int, fld: str | None = None) -> None:
        """A structural fault: raise when strict, else remember it with its line."""
        if self.strict:
            raise self.fail(reason, line=line, fld=fld)
        self.problems.append(f"line {line}: {reason}")

    # Blocks ------------------------------------------------------------------------------------------------------

    def blocks(self) -> tuple[dict[str, tuple[str, int]], int]:
        """{block id: (content, offset of content)} and the offset where the message's text ends."""
        t = self.text
        pos = 0
        found: dict[str, tuple[str, int]] = {}
        while pos < len(t):
            # Skip whitespace between blocks; anything else after the last block is trailing junk.
            while pos < len(t) and t[pos] in " \t\n":
                pos += 1
            m = _BLOCK_START_RE.match(t, pos)
            if not m:
                break
            bid = m.group(1)
            if bid in found:
                break  # a second {1: etc. is the next message (split_fin cuts there already)
            body_start = m.end()
            if bid == "4" and (body_start >= len(t) or t[body_start] != "{"):
                end = t.find("\n-}", body_start)
                if end < 0:
                    # Block 4 never closed: read what is there (the message is truncated).
                    self.tolerate(
                        "block 4 is not closed by '-}' (message truncated?)", line=self.line(len(t) - 1)
                    )
                    found[bid] = (t[body_start:], body_start)
                    pos = len(t)
                    break
                found[bid] = (t[body_start : end + 1], body_start)
                pos = end + 3
                continue
            # Brace-matched block (1, 2, 3, 5, S, and a service message's {4:{177:..}{451:0}}).
            close = t.find("}", body_start)
            if close >= 0 and t.find("{", body_start, close) < 0:
                # No nested block (blocks 1 and 2, always): the first brace closes it.
                found[bid] = (t[body_start:close], body_start)
                pos = close + 1
                continue
            depth, i = 1, body_start
            while i < len(t) and depth:
                if t[i] == "{":
                    depth += 1
                elif t[i] == "}":
                    depth -= 1
                i += 1
            if depth:
                self.tolerate(f"block {bid} is not closed by '}}'", line=self.line(pos))
                found[bid] = (t[body_start:].rstrip("\n"), body_start)
                pos = len(t)
                break
            found[bid] = (t[body_start : i - 1], body_start)
            pos = i
        return found, pos

    # Header blocks -----------------------------------------------------------------------------------------------

    def block1(self, content: str, offset: int) -> dict[str, str]:
        m = _BLOCK1_RE.fullmatch(content.strip())
        if not m:
            raise self.fail(f"bad basic header block {{1:{content}}}", offset)
        return {
            "app_id": m.group(1),
            "service_id": m.group(2),
            "lt_address": m.group(3),
            "session": m.group(4) or "",
            "sequence": m.group(5) or "",
        }

    def block2(self, content: str, offset: int) -> dict[str, str]:
        c = content.strip()
        m = _BLOCK2_IN_RE.fullmatch(c)
        if m:
            return {
                "direction": "I",
                "message_type": m.group(1),
                "receiver_address": m.group(2),
                "priority": m.group(3) or "",
            }
        # Session and ISN are digits in the standard, but real output (prowide's MT540 sample) has "5C3E".
        m = _BLOCK2_OUT_RE.fullmatch(c)
        if m:
            return {
                "direction": "O",
                "message_type": m.group(1),
                "input_time": m.group(2),
                "mir_date": m.group(3),
                "sender_address": m.group(4),
                "mir_session": m.group(5),
                "mir_sequence": m.group(6),
                "output_date": m.group(7),
                "output_time": m.group(8),
                "priority": m.group(9) or "",
            }
        raise self.fail(f"bad application header block {{2:{content}}}", offset)

    def tag_block(self, content: str) -> dict[str, str]:
        return {k: v for k, v in _TAG_BLOCK_RE.findall(content)}

    # Block 4 -----------------------------------------------------------------------------------------------------

    def fields(self, content: str, offset: int) -> list[Field]:
        """Block 4's fields. Fast path: one C-level ``findall`` cuts every field (a line starting ``:NNa:`` and the
        continuation lines after it) into tag, qualifier, scheme and value; when anything is unusual (text before
        the first field, a line starting ':' that is not a field, a malformed generic field) the block is read
        again line by line, which raises the precise error."""
        first = content.find("\n:")
        if (
            first < 0
            or content[:first].strip()
            or len(found := _FIELDS_RE.findall(content)) != content.count("\n:")
        ):
            return self._fields_by_line(content, offset)
        out: list[Field] = []
        append = out.append
        new = tuple.__new__  # Field(...) without the Python-level __new__ of a NamedTuple
        line_no = self.line(offset) + content.count("\n", 0, first) + 1
        for tag, qualifier, issuer, value in found:
            if qualifier:
                if "\n" in value:
                    n_lines = value.count("\n")
                    lines = value.split("\n")
                    value = "\n".join([lines[0], *(ln for ln in lines[1:] if ln.strip())])
                    append(new(Field, (tag, qualifier, value, line_no, issuer or None)))
                    line_no += n_lines + 1
                    continue
                append(new(Field, (tag, qualifier, value, line_no, issuer or None)))
            else:
                if value[:1] == ":":
                    return self._fields_by_line(content, offset)  # a generic field that is not well formed
                if "\n" in value:
                    n_lines = value.count("\n")
                    lines = value.split("\n")
                    value = "\n".join([lines[0], *(ln for ln in lines[1:] if ln.strip())])
                    append(new(Field, (tag, None, value, line_no, None)))
                    line_no += n_lines + 1
                    continue
                append(new(Field, (tag, None, value, line_no, None)))
            line_no += 1
        return out

    def _fields_by_line(self, content: str, offset: int) -> list[Field]:
        # Line by line with the line number counted along: the reference reading, and the one that names faults.
        out: list[Field] = []
        append = out.append
        make = self.make_field
        match_tag = _TAG_RE.match
        tag: str | None = None
        parts: list[str] = []
        first_line = 0
        line_no = self.line(offset)
        for text_line in content.split("\n"):
            if text_line[:1] == ":":
                m = match_tag(text_line)
                if m is None:
                    raise self.fail(
                        f"bad field syntax {text_line[:40]!r}: a field starts with :NNa: (e.g. :20C:)",
                        line=line_no,
                    )
                if tag is not None:
                    append(make(tag, parts[0] if len(parts) == 1 else "\n".join(parts), first_line))
                tag, parts, first_line = m.group(1), [text_line[m.end() :]], line_no
            elif text_line.strip():
                if tag is None:
                    raise self.fail(
                        f"text {text_line[:40]!r} before the first field of block 4", line=line_no
                    )
                parts.append(text_line)
            line_no += 1
        if tag is not None:
            append(make(tag, parts[0] if len(parts) == 1 else "\n".join(parts), first_line))
        return out

    def make_field(self, tag: str, value: str, line: int) -> Field:
        if value[:1] == ":":
            m = _GENERIC_RE.match(value)
            if not m:
                raise self.fail(
                    f"bad generic field :{tag}:{value[:40]!r}: expected :QUAL//value or :QUAL/SCHEME/value",
                    line=line,
                    fld=f":{tag}:",
                )
            return Field(tag, m.group(1), m.group(3), line, m.group(2) or None)
        return Field(tag, None, value, line)

    def tree(self, fields: list[Field]) -> tuple[Sequence, list[Field]]:
        root = Sequence("")
        stack = [root]
        top = root
        flat: list[Field] = []
        add = flat.append
        for f in fields:
            tag = f.tag
            if tag == "16R":
                seq = Sequence(f.value.strip(), [], [], f.line)
                top.children.append(seq)
                stack.append(seq)
                top = seq
            elif tag == "16S":
                name = f.value.strip()
                if len(stack) == 1:
                    self.tolerate(
                        f"16S:{name} closes a sequence that was never opened", line=f.line, fld=":16S:"
                    )
                    continue
                if top.name != name:
                    self.tolerate(
                        f"16S:{name} closes {top.name}, opened at line {top.line}",
                        line=f.line,
                        fld=":16S:",
                    )
                stack.pop()
                top = stack[-1]
            else:
                top.fields.append(f)
                add(f)
        for seq in reversed(stack[1:]):
            self.tolerate(
                f"sequence {seq.name} opened at line {seq.line} is never closed (16S missing)", line=seq.line
            )
        return root, flat

    def fields_tree(self, content: str, offset: int) -> tuple[Sequence, list[Field]]:
        """``tree(fields(...))`` in one pass for the usual block 4 (the fast path of :meth:`fields`): no Field is
        made for a 16R/16S, and structural faults are replayed after the pass in their order, so the result, the
        problems and the error raised (syntax faults before structural ones) are exactly those of the two steps."""
        first = content.find("\n:")
        if first < 0 or content[:first].strip():
            return self.tree(self._fields_by_line(content, offset))
        found = _FIELDS_RE.findall(content)
        if len(found) != content.count("\n:"):
            return self.tree(self._fields_by_line(content, offset))
        new = tuple.__new__
        root = Sequence("")
        stack = [root]
        top = root
        flat: list[Field] = []
        add = flat.append
        faults: list[tuple[str, int]] = []
        line_no = self.line(offset) + content.count("\n", 0, first) + 1
        for tag, qualifier, issuer, value in found:
            n_lines = 1
            if "\n" in value:
                n_lines = value.count("\n") + 1
                lines = value.split("\n")
                value = "\n".join([lines[0], *(ln for ln in lines[1:] if ln.strip())])
            if not qualifier and value[:1] == ":":
                return self.tree(self._fields_by_line(content, offset))  # a malformed generic field
            if tag == "16R":
                seq = Sequence(value.strip(), [], [], line_no)
                top.children.append(seq)
                stack.append(seq)
                top = seq
            elif tag == "16S":
                name = value.strip()
                if len(stack) == 1:
                    faults.append((f"16S:{name} closes a sequence that was never opened", line_no))
                else:
                    if top.name != name:
                        faults.append((f"16S:{name} closes {top.name}, opened at line {top.line}", line_no))
                    stack.pop()
                    top = stack[-1]
            else:
                f = new(Field, (tag, qualifier or None, value, line_no, issuer or None))
                top.fields.append(f)
                add(f)
            line_no += n_lines
        for reason, line in faults:
            self.tolerate(reason, line=line, fld=":16S:")
        for seq in reversed(stack[1:]):
            self.tolerate(
                f"sequence {seq.name} opened at line {seq.line} is never closed (16S missing)", line=seq.line
            )
        return root, flat

    # The whole message -------------------------------------------------------------------------------------------

    def parse(self) -> FinMessage:
        blocks, end = self.blocks()
        if "1" not in blocks:
            raise self.fail("no basic header block {1:}", 0)
        b1 = self.block1(*blocks["1"])
        b2 = self.block2(*blocks["2"]) if "2" in blocks else {}
        b3 = self.tag_block(blocks["3"][0]) if "3" in blocks else {}
        b5 = self.tag_block(blocks["5"][0]) if "5" in blocks else {}
        trailers = self.tag_block(blocks["S"][0]) if "S" in blocks else {}
        if "4" not in blocks:
            raise self.fail("missing block 4 (the text block {4: ... -})", line=self.raw.start_line)
        content, offset = blocks["4"]
        if b1["service_id"] != "01":
            # Service message (ACK/NAK): block 4 is a set of {tag:value} blocks; 451 is 0 for ACK, 1 for NAK.
            tags = self.tag_block(content)
            mtype = {"0": "ACK", "1": "NAK"}.get(tags.get("451", ""), f"F{b1['service_id']}")
            fields = [Field(k, None, v, self.line(offset)) for k, v in tags.items()]
            return self.finish(b1, b2, b3, b5, trailers, mtype, fields, Sequence("", list(fields)), end)
        if not b2:
            raise self.fail("missing block 2 (application header): the message type is unknown", 0)
        if content.startswith("{"):
            raise self.fail("block 4 of a user message must be text (':tag:' lines), not '{...}'", offset)
        root, flat = self.fields_tree(content, offset)
        return self.finish(b1, b2, b3, b5, trailers, b2["message_type"], flat, root, end)

    def finish(
        self,
        b1: dict[str, str],
        b2: dict[str, str],
        b3: dict[str, str],
        b5: dict[str, str],
        trailers: dict[str, str],
        mtype: str,
        fields: list[Field],
        root: Sequence,
        end: int,
    ) -> FinMessage:
        if b2.get("direction") == "O":
            sender, receiver = bic_from_lt(b2["sender_address"]), bic_from_lt(b1["lt_address"])
        else:
            sender = bic_from_lt(b1["lt_address"])
            receiver = bic_from_lt(b2["receiver_address"]) if b2 else None
        return FinMessage(
            block1=b1,
            block2=b2,
            block3=b3,
            block5=b5,
            message_type=mtype,
            sender_bic=sender,
            receiver_bic=receiver,
            fields=fields,
            root=root,
            raw=self.text[:end].rstrip(" \t\n$"),
            file_name=self.raw.file_name,
            index=self.raw.index,
            start_line=self.raw.start_line,
            problems=self.problems,
            trailers=trailers,
        )


def parse_message(raw: RawFin, *, strict: bool = True) -> FinMessage:
    """Parse one message cut by :func:`split_fin`."""
    return _Reader(raw, strict).parse()


def parse_fin(text: str, *, file_name: str = "", strict: bool = True) -> list[FinMessage]:
    """Every message in ``text`` (a file may hold several). Raises :class:`FinParseError` on the first bad one."""
    return [parse_message(raw, strict=strict) for raw in split_fin(text, file_name=file_name)]


def decode_bytes(data: bytes, *, file_name: str = "") -> str:
    """Bytes of a FIN file → text. FIN is ASCII; Latin-1 is accepted so a stray byte is shown, never a crash."""
    if b"\x00" in data:
        raise FinParseError("binary content (NUL bytes): not a FIN message file", file_name=file_name)
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        return data.decode("latin-1")
