"""One-pass reader for the well-formed MT544-548 of a large file: the same settlement facts, a fraction of the work.

:func:`read` takes a message cut by ``fin.split_fin`` and returns exactly what ``fin.parse_message`` followed by
``mt54x.read_incoming`` gives for it — the message type, the raw text, the parsed header blocks and the
:class:`IncomingSettlement` — without building ``Field`` and ``Sequence`` objects.

How: one regular expression cuts the header blocks and one ``findall`` the block-4 fields (both in C). Which field
the readers take for what (our reference, the dates, the quantities, each status and its reasons, …) depends only
on the message's *shape* — its type, the tags and qualifiers of its fields in order and the names of its 16R/16S
sequences — never on the values. So the first message of a shape is read into a :class:`_Plan` (the field index of
every fact, found with the readers' own rules: the first field in the tree's walk order, a sequence's own fields
before those nested in it), and every later message of that shape — in a custodian's file, nearly all of them — only
picks its values by index and converts them.

Only the usual shape is read here: blocks 1, 2, optional 3, 4 and optional 5 in that order, a user message of type
544-548, a well-nested block 4 and every field the reader needs present and readable. Anything else — a service
message, a trailer block, junk, a structural fault, a stub, a missing or malformed field — returns None, and the
caller reads the message with the full parser, which gives the precise reason. ``tests/test_swift_fast.py`` checks
both readings agree on the real, the hand-written and thousands of mangled messages.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from operator import itemgetter
from typing import Any

from .fin import (
    _TAG_BLOCK_RE,
    RawFin,
    bic_from_lt,
    swift_amount,
    swift_date,
    swift_datetime,
    swift_quantity,
)
from .incoming import IncomingSettlement, StatusReason
from .mt54x import AGAINST_PAYMENT_TYPES, CONFIRMATION_TYPES, RECEIVE_TYPES

# {1:…}{2:…}[{3:{t:v}…}]{4:\n … \n-}[{5:{t:v}…}] then nothing but blanks and RJE '$'. Block 4 ends at the first
# "\n-}" exactly as fin._Reader.blocks cuts it; blocks 1 and 2 hold no brace, 3 and 5 only {tag:value} blocks.
_HEAD_RE = re.compile(r"\{1:([^{}]*)\}\{2:([^{}]*)\}(?:\{3:((?:\{[A-Za-z0-9]+:[^{}]*\})*)\})?\{4:\n")
_TAIL_RE = re.compile(r"(?:\{5:((?:\{[A-Za-z0-9]+:[^{}]*\})*)\})?[ \t\n$]*")
# The start of every block-4 field, as fin._FIELDS_RE reads it: tag, then a generic field's :QUAL/SCHEME/. A field's
# value is the rest of its text up to the next "\n:" (its continuation lines), exactly _FIELDS_RE's value.
_FIELD_HEAD_RE = re.compile(r"\n:(\d{2}[A-Z]?:(?::[A-Z0-9]{4}/[A-Za-z0-9]*/)?)")
# fin._BLOCK1_RE / _BLOCK2_IN_RE / _BLOCK2_OUT_RE with their groups named as fin._Reader's dicts name them (the
# input header's delivery monitoring and obsolescence period are not kept there either).
_B1_RE = re.compile(
    r"(?P<app_id>[FAL])(?P<service_id>\d{2})(?P<lt_address>[A-Z0-9]{12})(?P<session>[A-Z0-9]{4})?"
    r"(?P<sequence>[A-Z0-9]{6})?"
)
_B2_IN_RE = re.compile(
    r"(?P<direction>I)(?P<message_type>\d{3})(?P<receiver_address>[A-Z0-9]{12})(?P<priority>[SUN])?(?:\d)?(?:\d{3})?"
)
_B2_OUT_RE = re.compile(
    r"(?P<direction>O)(?P<message_type>\d{3})(?P<input_time>\d{4})(?P<mir_date>\d{6})(?P<sender_address>[A-Z0-9]{12})"
    r"(?P<mir_session>[A-Z0-9]{4})(?P<mir_sequence>[A-Z0-9]{6})(?P<output_date>\d{6})(?P<output_time>\d{4})"
    r"(?P<priority>[SUN])?"
)
# A field ":NNa::…" that is not a well-formed generic field (fin refuses it line by line).
_MALFORMED_RE = re.compile(r"\n:\d{2}[A-Z]?::(?![A-Z0-9]{4}/[A-Za-z0-9]*/)")
_ISIN_RE = re.compile(r"ISIN ([A-Z]{2}[A-Z0-9]{9}\d)")
_TYPES = CONFIRMATION_TYPES | {"548"}
_PARTIES = ("SELL", "BUYR")
_PLANS_MAX = 4096  # shapes remembered (a file from one custodian has a handful)


class _Irregular(Exception):
    """Not the usual shape: the full parser reads this message."""


def read(raw: RawFin) -> tuple[str, str, dict[str, Any], IncomingSettlement] | None:
    """(message type "MT545", raw text, parsed headers, settlement facts) of a clean MT544-548, else None."""
    try:
        return _read(raw)
    except (_Irregular, ValueError):
        return None


def _read(raw: RawFin) -> tuple[str, str, dict[str, Any], IncomingSettlement] | None:
    text = raw.text
    head = _HEAD_RE.match(text)
    if head is None:
        return None
    start4 = head.end() - 1  # block 4's content starts with its newline
    end4 = text.find("\n-}", start4)
    if end4 <= start4:
        return None
    tail = _TAIL_RE.fullmatch(text, end4 + 3)
    if tail is None:
        return None
    c1, c2, c3 = head.groups()
    c5 = tail.group(1)
    content = text[start4 : end4 + 1]
    m1 = _B1_RE.fullmatch(c1.strip())
    if m1 is None or m1.group(2) != "01":
        return None
    b1 = m1.groupdict("")  # fin._Reader.block1's dict, optional parts ""
    c2 = c2.strip()
    m2 = _B2_OUT_RE.fullmatch(c2) or _B2_IN_RE.fullmatch(c2)
    if m2 is None:
        return None
    b2 = m2.groupdict("")  # fin._Reader.block2's dict, in its key order
    mtype = b2["message_type"]
    if b2["direction"] == "O":
        sender, receiver = bic_from_lt(b2["sender_address"]), bic_from_lt(b1["lt_address"])
    else:
        sender, receiver = bic_from_lt(b1["lt_address"]), bic_from_lt(b2["receiver_address"])
    if mtype not in _TYPES:
        return None
    # fin._Reader.fields_tree's conditions for reading block 4 in one go (else it reads line by line, to name a
    # fault): nothing before the first field, every ":" line a field, no malformed generic field.
    pieces = content.split("\n:")
    if len(pieces) < 2 or pieces[0].strip() or _MALFORMED_RE.search(content):
        return None
    heads = tuple(_FIELD_HEAD_RE.findall(content))
    if len(heads) != len(pieces) - 1:
        return None
    plan = _plan(mtype, heads, pieces)
    if plan is None:
        return None
    where = f"{raw.file_name}, message {raw.index}" if raw.file_name else f"message {raw.index}"
    inc = plan.read(mtype, pieces, where)
    inc.sender = sender
    headers = {
        "message_type": mtype,
        "sender_bic": sender,
        "receiver_bic": receiver,
        "block1": b1,
        "block2": b2,
        "block3": dict(_TAG_BLOCK_RE.findall(c3)) if c3 is not None else {},
        "block5": dict(_TAG_BLOCK_RE.findall(c5)) if c5 is not None else {},
        "problems": [],
    }
    # fin._Reader.parse: the raw text ends where the last block does.
    end = tail.end(1) + 1 if c5 is not None else end4 + 3
    return f"MT{mtype}", text[:end].rstrip(" \t\n$"), headers, inc


# --- plans: which field holds which fact, per shape ----------------------------------------------------------------

# (type, field heads) → (getter of the 16R/16S fields' text, {that text: plan, or None when irregular})
_plans: dict[tuple[Any, ...], tuple[Any, dict[tuple[str, ...], _Plan | None]]] = {}


def _plan(mtype: str, heads: tuple[str, ...], pieces: list[str]) -> _Plan | None:
    key = (mtype, heads)
    entry = _plans.get(key)
    if entry is None:
        marks = [i + 1 for i, h in enumerate(heads) if h in ("16R:", "16S:")]
        getter = (
            (lambda p: ())
            if not marks
            else itemgetter(*marks)
            if len(marks) > 1
            else lambda p: (p[marks[0]],)
        )
        if len(_plans) >= _PLANS_MAX:
            _plans.clear()
        entry = _plans[key] = (getter, {})
    getter, by_names = entry
    names = getter(pieces)
    if names in by_names:
        return by_names[names]
    try:
        plan: _Plan | None = _Plan(mtype, heads, pieces)
    except _Irregular:
        plan = None
    by_names[names] = plan
    return plan


def _date(tag: str, v: str) -> dt.date:
    # Field.date: 98A is a date, 98C/98E a date-time.
    return swift_date(v) if tag == "98A" else swift_datetime(v).date()


def _value(v: str) -> str:
    # fin: a value's continuation lines, blank ones dropped.
    if "\n" in v:
        lines = v.split("\n")
        return "\n".join([lines[0], *(ln for ln in lines[1:] if ln.strip())])
    return v


class _Plan:
    """Where the facts of one shape of message are (field indices, -1 for absent), found once with the rules of
    ``fin.FinMessage.find`` / ``Sequence.find`` / ``sequences`` and of ``mt54x.read_confirmation`` /
    ``read_status``. Raises _Irregular for a shape the full parser must read (structural fault, stub, a mandatory
    field missing)."""

    __slots__ = (
        "amt", "estt_amt", "estt_qty", "eset", "func", "isin", "pars", "party", "paym", "prep", "qty", "rede",
        "reference", "rela", "safe", "sett", "stats", "trad", "tran", "tags", "cuts",
    )  # fmt: skip

    def __init__(self, mtype: str, heads: tuple[str, ...], pieces: list[str]) -> None:
        # Each field from its head ("20C::SEME//", "23G:") and its piece of block 4 (head, value): as fin reads it.
        tags = tuple(h[: h.index(":")] for h in heads)
        quals = tuple(
            h[len(t) + 2 : len(t) + 6] if len(h) > len(t) + 1 else ""
            for t, h in zip(tags, heads, strict=True)
        )
        values = tuple(p[len(h) :] for h, p in zip(heads, pieces[1:], strict=True))
        self.tags = tags
        self.cuts = tuple(len(h) for h in heads)
        # The sequence tree: [name, own field indices, end (pre-order index after its last descendant)].
        root: list[Any] = ["", [], 0]
        seqs = [root]
        stack = [0]
        top = root
        for i, tag in enumerate(tags):
            if tag == "16R":
                top = [_value(values[i]).strip(), [], 0]
                stack.append(len(seqs))
                seqs.append(top)
            elif tag == "16S":
                if len(stack) == 1 or top[0] != _value(values[i]).strip():
                    raise _Irregular  # a structural fault: the full parser names it
                top[2] = len(seqs)
                stack.pop()
                top = seqs[stack[-1]]
            else:
                top[1].append(i)
        if len(stack) != 1:
            raise _Irregular  # a sequence never closed
        root[2] = len(seqs)
        # Walk order (Sequence.walk_fields): pre-order of sequences, each one's own fields first.
        walk = [i for seq in seqs for i in seq[1]]

        def first(tag: str, qualifier: str | None = None, pool: list[int] = walk) -> int:
            # FinMessage.find / Sequence.find: "98" stands for any 98a option; no qualifier means any.
            for i in pool:
                t = tags[i]
                if (t == tag or (len(tag) == 2 and t[:2] == tag)) and (
                    qualifier is None or quals[i] == qualifier
                ):
                    return i
            return -1

        def below(name: str, within: int = 0) -> list[int]:
            return [j for j in range(within + 1, seqs[within][2]) if seqs[j][0] == name]

        # (A header-only stub, nothing but a GENL without sub-sequences, has no FIAC or STAT: irregular below.)
        self.rela = first("20C", "RELA")
        self.prep = first("98", "PREP")
        self.sett = first("98", "SETT")
        self.trad = first("98", "TRAD")
        self.func = first("23G")
        self.isin = first("35B")
        seme = first("20C", "SEME")
        self.reference = seme if seme >= 0 else first("20", pool=root[1])
        fiac = next(iter(below("FIAC")), None)
        self.safe = first("97", "SAFE", seqs[fiac][1]) if fiac is not None else -1
        self.qty = first("36B", "SETT")
        self.amt = first("19A", "SETT")
        parties = [
            i for s in below("SETPRTY") for i in seqs[s][1] if tags[i] == "95P" and quals[i] in _PARTIES
        ]
        self.party = parties[0] if parties else -1
        self.stats: list[tuple[int, str, list[tuple[int, int]]]] = []
        self.tran = False
        self.rede = self.paym = -1
        self.estt_qty: list[int] = []
        self.estt_amt = self.eset = self.pars = -1
        if mtype in CONFIRMATION_TYPES:
            if fiac is None:
                raise _Irregular  # NoSettlementData
            self.estt_qty = [i for i in seqs[fiac][1] if tags[i] == "36B" and quals[i] == "ESTT"]
            self.estt_amt = first("19A", "ESTT")
            self.eset = first("98", "ESET")
            self.pars = first("22F", "PARS")
            if not self.estt_qty or self.eset < 0 or (self.estt_amt < 0 and mtype in AGAINST_PAYMENT_TYPES):
                raise _Irregular  # the reader's FinParseError
        else:
            genl = next(iter(below("GENL")), None)
            stats = below("STAT", genl) if genl is not None else []
            if not stats:
                raise _Irregular  # NoSettlementData
            for st in stats:
                status = first("25D", pool=seqs[st][1])
                if status < 0:
                    raise _Irregular  # STAT without :25D:
                reasons = [
                    (first("24B", pool=seqs[r][1]), first("70D", "REAS", seqs[r][1]))
                    for r in below("REAS", st)
                ]
                self.stats.append((status, quals[status] or "", reasons))
            tran = next(iter(below("SETTRAN")), None)
            if tran is not None:
                self.tran = True
                self.rede = first("22H", "REDE", seqs[tran][1])
                self.paym = first("22H", "PAYM", seqs[tran][1])

    def read(self, mtype: str, pieces: list[str], where: str) -> IncomingSettlement:
        """mt54x.read_confirmation / read_status (and their _common) with the values of one message."""
        cuts, tags = self.cuts, self.tags

        def val(i: int) -> str:
            return _value(pieces[i + 1][cuts[i] :])

        rela = val(self.rela).strip() if self.rela >= 0 else ""
        func = val(self.func).split("/")[0] if self.func >= 0 else None
        m = _ISIN_RE.match(val(self.isin)) if self.isin >= 0 else None
        prep = self.prep
        inc = IncomingSettlement(
            kind="confirmation" if mtype in CONFIRMATION_TYPES else "status",
            message_type=f"MT{mtype}",
            reference=val(self.reference) if self.reference >= 0 else None,
            related_reference=rela if self.rela >= 0 and rela != "NONREF" else None,
            function=func or "NEWM",
            isin=m.group(1) if m else None,
            settlement_date=_date(tags[self.sett], val(self.sett)) if self.sett >= 0 else None,
            trade_date=_date(tags[self.trad], val(self.trad)) if self.trad >= 0 else None,
            sent_at=swift_datetime(val(prep)) if prep >= 0 and tags[prep] != "98A" else None,
            source=where,
        )
        if prep >= 0 and tags[prep] == "98A":
            d = _date(tags[prep], val(prep))
            inc.sent_at = dt.datetime(d.year, d.month, d.day)
        inc.safekeeping_account = val(self.safe) if self.safe >= 0 else None
        if self.qty >= 0:
            inc.quantity = swift_quantity(val(self.qty))[1]
        if self.amt >= 0:
            inc.currency, inc.amount = swift_amount(val(self.amt))
        party = val(self.party).strip() if self.party >= 0 else None
        if mtype in CONFIRMATION_TYPES:
            inc.direction = "RECE" if mtype in RECEIVE_TYPES else "DELI"
            inc.against_payment = mtype in AGAINST_PAYMENT_TYPES
            by_type = dict(swift_quantity(val(i)) for i in self.estt_qty)
            inc.settled_quantity = by_type.get("FAMT", by_type.get("UNIT", next(iter(by_type.values()))))
            if self.estt_amt >= 0:
                inc.currency, inc.settled_amount = swift_amount(val(self.estt_amt))
            else:
                inc.settled_amount = Decimal(0)
            inc.settled_on = _date(tags[self.eset], val(self.eset))
            inc.partial = val(self.pars) if self.pars >= 0 else None
            inc.counterparty_bic = party
            return inc
        append = inc.statuses.append
        for status, qualifier, reasons in self.stats:
            value = val(status).strip()
            if not reasons:
                append(StatusReason(qualifier, value))
            for code, text in reasons:
                append(
                    StatusReason(
                        qualifier,
                        value,
                        val(code).strip() if code >= 0 else None,
                        " ".join(val(text).split()) if text >= 0 else None,
                    )
                )
        if self.tran:
            rede = val(self.rede) if self.rede >= 0 else None
            inc.direction = rede if rede in ("RECE", "DELI") else None  # type: ignore[assignment]
            inc.against_payment = val(self.paym) == "APMT" if self.paym >= 0 else None
            inc.counterparty_bic = party
        return inc
