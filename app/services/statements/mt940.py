"""MT940 / MT942 / MT950 cash statements, read with the ``mt-940`` package (import name ``mt940``).

The package parses generously: it files what it can and silently passes over what it cannot (a ``:25:`` where a
``:86:`` belongs becomes a new account; 30 February becomes 29 February; a tag without its colon disappears into the
previous field). For money that is not good enough, so every statement block is first checked field by field here,
and a file with any fault in a field that carries money, a date or the statement's identity is refused as a whole,
with file, line, field and reason (``StatementFileRefused``). Only then does ``mt940`` build the statements, with
its date "fix-up" switched off and every opt-in correctness fix of :class:`mt940.Options` switched on (reversal
marks RC/RD signed correctly, lowercase marks, full ``:86:`` details, byte-order marks).

Configured beyond the package's defaults, honestly:

* **ASN Bank** puts the counterparty IBAN (18+ characters) in the ``:61:`` customer reference, which SWIFT caps at
  16. For a file from ASN Bank (sender BIC or account ``ASNB``) the package's own ``StatementASNB`` layout is used
  for the lines the standard layout cannot read; other banks never get the looser layout.
* **Forward available balances** (``:65:``) and available balances (``:64:``) are information only: one the sender
  garbled (Oldenburgische Landesbank's ``:65F:Dnullnull7414,3``) is left out with a warning kept on the statement
  instead of refusing the file. A statement without a closing balance (those same files) is imported with a warning
  that its balances cannot be checked.
* A currency or amount that is not there (``:60F:C221004EURO0,00`` in LBBW's file: a letter O in the amount; a
  ``:62F:`` without its colon) is *not* guessed: the file is refused saying so.

Files wrapped in FIN blocks (``{1:...}{2:O940...}{4: ... -}``, as SWIFT delivers MT940 and MT950) are split with the
project's ISO 15022 reader (``app.services.swift.fin``); bare MT940 files (as banks' e-banking exports are) are read
as text. MT942 (interim transaction report) statements have no opening/closing balances; their ``:90D:``/``:90C:``
totals are checked against the lines instead.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import mt940 as mt940pkg
from mt940.models import Transactions

from app.models.enums import StatementKind
from app.services.swift.fin import FinMessage, FinParseError, parse_fin

from .parsed import ParsedLine, ParsedStatement, Problem, StatementFileRefused, refuse, too_precise

# The mt940 package's own tag pattern (start of a line, two digits and an optional letter, or NS).
_TAG_LINE = re.compile(r"^:(\d{2}[A-Z]?|NS):")
# A line that looks like a known tag whose closing colon is missing (":62FC221018EUR1,00").
_KNOWN = (
    "20",
    "21",
    "25",
    "28",
    "28C",
    "60F",
    "60M",
    "61",
    "62F",
    "62M",
    "64",
    "65",
    "86",
    "13D",
    "34F",
    "90D",
    "90C",
)
_BROKEN_TAG = re.compile(r"^:(" + "|".join(sorted(_KNOWN, key=len, reverse=True)) + r")(?=[^:\s])")
_BALANCE = re.compile(r"^(?P<mark>[CD])(?P<date>\d{6})(?P<ccy>[A-Z]{3})(?P<amount>\d+,\d*)$")
_TOTALS = re.compile(r"^(?P<count>\d{1,5})(?P<ccy>[A-Z]{3})(?P<amount>\d+,\d*)$")
_NUMBER = re.compile(r"^(?P<number>\d{1,5})(?:/?(?P<page>\d{1,5}))?$")
_DATETIME = re.compile(r"^(?P<date>\d{6})(?P<time>\d{4})(?P<offset>[+-]\d{4})?$")
_PRINTABLE = re.compile(r"^[\x20-\x7e\n]*$")  # structured fields: SWIFT X character set is a subset of this

OPENING = ("60F", "60M", "60")
CLOSING = ("62F", "62M", "62")
SINGLE = ("20", "21", "25", "28", "28C", "13D", "64", "90D", "90C")
SINGLE_LINE = SINGLE + OPENING + CLOSING + ("34F",)
STATEMENT_TYPES = ("940", "942", "950")
_OPTIONS = mt940pkg.Options.all()
_PROCESSORS: dict[str, list[Any]] = {
    "pre_statement": []
}  # no silent February "fix-up": bad dates are refused
_STANDARD_61 = mt940pkg.tags.Statement()
_ASNB_61 = mt940pkg.tags.StatementASNB()


@dataclass
class _Tag:
    tag: str
    value: str
    line: int

    @property
    def single_line(self) -> bool:
        return self.tag in SINGLE_LINE or self.tag.startswith("65")

    @property
    def head(self) -> str:
        """The field's value: its first line for single-line fields (balances, references, numbers); text on
        further lines (a bank's separator or header between statements) is not part of the field."""
        return self.value.split("\n")[0].strip() if self.single_line else self.value.strip()

    @property
    def tail(self) -> str:
        return "\n".join(self.value.split("\n")[1:]).strip() if self.single_line else ""


@dataclass
class _Block:
    """One statement: its tags (from ``:20:`` to the next ``:20:``), sender and message type when known."""

    tags: list[_Tag]
    sender: str | None = None
    message_type: str | None = None  # 940/942/950 from the FIN header; None for a bare file
    envelope_problems: list[str] = field(default_factory=list)

    @property
    def line(self) -> int:
        return self.tags[0].line

    def all(self, *names: str) -> list[_Tag]:
        return [t for t in self.tags if t.tag in names]

    def first(self, *names: str) -> _Tag | None:
        found = self.all(*names)
        return found[0] if found else None


# --- entry point --------------------------------------------------------------------------------------------------


def read_mt940(text: str, file_name: str) -> list[ParsedStatement]:
    """Every statement in an MT940/MT942/MT950 file (bare or FIN-wrapped), or :class:`StatementFileRefused`."""
    blocks: list[_Block] | None = None
    envelope_note: str | None = None
    if "{1:" in text[:4000]:
        try:
            blocks = _fin_blocks(parse_fin(text, file_name=file_name, strict=False), file_name)
        except FinParseError as err:
            # E-banking downloads (ING, SNS, ASN Bank) wrap MT940 in headers that are not valid FIN; the statement
            # text inside is still MT940, so it is read as such, with the envelope lines set aside.
            envelope_note = (
                f"the FIN envelope is not standard ({err.reason}); the statement text was read as MT940"
            )
    if blocks is None:
        blocks = _bare_blocks(text, file_name)
    problems: list[Problem] = []
    for block in blocks:
        problems += _check_block(block)
    if problems:
        raise StatementFileRefused(file_name, problems)
    statements = [_build(block, file_name) for block in blocks]
    if envelope_note:
        for st in statements:
            st.extra["envelope"] = envelope_note
    return statements


def looks_like_mt940(text: str) -> bool:
    head = text[:4000]
    return (
        bool(re.search(r"(?m)^:20:", head))
        and bool(re.search(r"(?m)^:(25|28C?|60[FM]|61|62[FM]):", head))
        or (bool(re.search(r"\{2:[IO]9(40|42|50)", head)))
    )


# --- splitting ----------------------------------------------------------------------------------------------------


_SEPARATOR = re.compile(r"^-(\}.*|XXX)?\s*$")  # end of a message: "-", "-}", "-}{5:...}", ING's "-XXX"


def _bare_blocks(text: str, file_name: str) -> list[_Block]:
    tags: list[_Tag] = []
    problems: list[Problem] = []
    ended_at: int | None = None  # line of the last end-of-statement "-", until the next :20:
    for n, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip()
        if line.startswith("{"):
            # FIN envelope line ({1:...}{2:...}{4:); text after "{4:" on the same line is statement text.
            at = line.find("{4:")
            if at < 0 or not line[at + 3 :].strip():
                continue
            line = line[at + 3 :]
        m = _TAG_LINE.match(line)
        if m:
            if ended_at is not None and m.group(1) != "20":
                problems.append(
                    Problem(
                        n,
                        f":{m.group(1)}:",
                        f"field :{m.group(1)}: follows the end of the statement ('-' on line {ended_at}) without a "
                        "new :20: header: a fragment of another statement",
                    )
                )
            ended_at = None
            tags.append(_Tag(m.group(1), line[m.end() :], n))
            continue
        if not line.strip():
            continue
        if _SEPARATOR.match(line.strip()):
            ended_at = n if tags else None
            continue
        broken = _BROKEN_TAG.match(line)
        if broken:
            problems.append(
                Problem(
                    n,
                    f":{broken.group(1)}:",
                    f"'{line[:30]}' looks like field :{broken.group(1)}: without the colon after the tag; "
                    "the sender's file is damaged",
                )
            )
        if tags:
            tags[-1].value += "\n" + line
        # Text before the first field is a bank's file header (ABN AMRO "ABNANL2A / 940", ING "0000 01INGB...").
    if problems:
        raise StatementFileRefused(file_name, problems)
    return _split(tags, file_name)


def _fin_blocks(messages: list[FinMessage], file_name: str) -> list[_Block]:
    blocks: list[_Block] = []
    nak: FinMessage | None = None
    for msg in messages:
        if msg.is_service:
            nak = msg if msg.message_type == "NAK" else None  # ACK/NAK envelope of the message after it
            continue
        if nak is not None:
            raise refuse(
                file_name,
                f"message {msg.index} was rejected by the network (NAK): it was never delivered, so it is not a "
                "statement",
                msg.start_line,
            )
        if msg.message_type not in STATEMENT_TYPES:
            raise refuse(
                file_name,
                f"message {msg.index} is an MT{msg.message_type}, not a cash statement (MT940/MT942/MT950)",
                msg.start_line,
            )
        for block in _split([_Tag(f.tag, f.value, f.line) for f in msg.fields], file_name):
            block.sender, block.message_type = msg.sender_bic, msg.message_type
            block.envelope_problems = list(msg.problems)
            blocks.append(block)
    if not blocks:
        raise refuse(file_name, "it holds only service messages (ACK/NAK), no statement")
    return blocks


def _split(tags: list[_Tag], file_name: str) -> list[_Block]:
    if not any(t.tag == "20" for t in tags):
        found = ", ".join(f":{t.tag}:" for t in tags[:6]) or "no SWIFT field at all"
        raise refuse(
            file_name,
            f"there is no statement in it: a statement starts with :20: (found {found}); "
            "a fragment or a file of another kind",
        )
    blocks: list[_Block] = []
    for t in tags:
        if t.tag == "20" or not blocks:
            if t.tag != "20":
                raise refuse(file_name, f"field :{t.tag}: comes before the first :20:", t.line, f":{t.tag}:")
            blocks.append(_Block([]))
        blocks[-1].tags.append(t)
    return blocks


# --- checking one block ---------------------------------------------------------------------------------------------


def _is_942(block: _Block) -> bool:
    if block.message_type:
        return block.message_type == "942"
    return not block.all(*OPENING) and bool(block.all("34F", "13D"))


def _check_block(block: _Block) -> list[Problem]:
    probs: list[Problem] = []

    def bad(t: _Tag | None, reason: str, line: int | None = None) -> None:
        probs.append(Problem(t.line if t else line or block.line, f":{t.tag}:" if t else "", reason))

    is942 = _is_942(block)
    required = ("20", "25", "28C") if is942 else ("20", "25", "28C", "60")
    for name in required:
        present = (
            block.all(name, "28")
            if name == "28C"
            else block.all(*OPENING)
            if name == "60"
            else block.all(name)
        )
        if not present:
            what = {"28C": ":28C: statement number", "60": "an opening balance :60F:/:60M:"}.get(
                name, f":{name}:"
            )
            bad(None, f"the statement starting here has no {what}, which every statement must have")
    for name in SINGLE:
        seen = block.all(name)
        if len(seen) > 1:
            bad(
                seen[1],
                f"field :{name}: appears twice in one statement (first on line {seen[0].line}); "
                "the file is damaged or a field is mislabelled",
            )
    for group in (OPENING, CLOSING):
        seen = block.all(*group)
        if len(seen) > 1:
            bad(
                seen[1],
                f"a second {'opening' if group is OPENING else 'closing'} balance in one statement "
                f"(first on line {seen[0].line})",
            )
    for t in block.tags:
        v = t.head
        if t.tag in ("20", "21", "25", "28", "28C", "13D", "90D", "90C", "61") + OPENING + CLOSING:
            subject = t.value.split("\n")[0]
            if not _PRINTABLE.match(subject):
                ch = next(c for c in subject if not _PRINTABLE.match(c))
                bad(
                    t,
                    f"contains {ch!r}, a character outside the SWIFT character set (binary or damaged content)",
                )
                continue
        if t.tag in ("20", "25") and not v:
            bad(t, "is empty")
        elif t.tag == "20" and len(v) > 16:
            bad(t, f"reference '{v}' is longer than 16 characters")
        elif t.tag in ("28", "28C") and not _NUMBER.match(v):
            bad(t, f"statement number '{v}' is not 5n[/5n]")
        elif t.tag in OPENING + CLOSING:
            reason = _balance_problem(v)
            if reason:
                bad(t, reason)
        elif t.tag == "61":
            reason = _line_problem(t.value, block)
            if reason:
                bad(t, reason)
        elif t.tag == "13D":
            m = _DATETIME.match(v)
            if not m or _date(m.group("date")) is None:
                bad(t, f"'{v}' is not a date and time YYMMDDhhmm[+hhmm]")
        elif t.tag in ("90D", "90C") and not _TOTALS.match(v):
            bad(t, f"'{v}' is not a count, currency and amount (e.g. 3EUR12,50)")
    opening = block.first(*OPENING)
    if opening is not None:
        for t in block.all("61"):
            if t.line < opening.line:
                bad(t, "a statement line before the opening balance")
    closing = block.first(*CLOSING)
    if closing is not None:
        for t in block.all("61"):
            if t.line > closing.line:
                bad(t, "a statement line after the closing balance")
    return probs


def _date(yymmdd: str) -> dt.date | None:
    try:
        return dt.date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:6]))
    except ValueError:
        return None


def _amount(text: str) -> Decimal | None:
    if text.count(",") != 1 or not re.fullmatch(r"\d+,\d*", text):
        return None
    try:
        return Decimal(text.replace(",", "."))
    except InvalidOperation:
        return None


def _whole_amount(text: str) -> Decimal | None:
    """Digits without the decimal comma SWIFT requires (Knab writes ``C500NTRF``). In :61: the amount is followed by
    the transaction type (a letter), so the digits are unambiguous: read as a whole amount, with a note."""
    return Decimal(text) if re.fullmatch(r"\d{1,15}", text) else None


def _balance_problem(value: str) -> str | None:
    m = _BALANCE.match(value)
    if m is None:
        if len(value) >= 7 and value[0] in "CD" and not re.fullmatch(r"[A-Z]{3}", value[7:10]):
            return f"'{value}' has no currency (3 letters expected after the date {value[1:7]})"
        if len(value) >= 10 and _amount(value[10:]) is None:
            return f"amount '{value[10:]}' in '{value}' is not a SWIFT amount (digits with one decimal comma)"
        return f"'{value}' is not a balance: mark C/D, date YYMMDD, currency, amount (e.g. C240131EUR1234,56)"
    if _date(m.group("date")) is None:
        return f"balance date {m.group('date')} is not a calendar date"
    amount = _amount(m.group("amount"))
    if amount is None or too_precise(amount):
        return f"amount '{m.group('amount')}' cannot be stored exactly"
    return None


def _from_asn_bank(block: _Block) -> bool:
    account = (block.first("25").head if block.first("25") else "").upper()
    return (block.sender or "").startswith("ASNB") or account[4:8] == "ASNB"


def _line_problem(value: str, block: _Block) -> str | None:
    m = _STANDARD_61.re.match(value)
    if m is None and _from_asn_bank(block):
        m = _ASNB_61.re.match(value)
    if m is None:
        return (
            f"statement line '{value.split(chr(10))[0][:40]}' does not follow the :61: layout (value date, "
            "entry date, D/C mark, amount, type, references)"
        )
    g = m.groupdict()
    vdate = _date(f"{g['year']}{g['month']}{g['day']}")
    if vdate is None:
        return f"value date {g['year']}{g['month']}{g['day']} is not a calendar date"
    em, ed = (g.get("entry_month") or "").strip(), (g.get("entry_day") or "").strip()
    if em and ed:
        month, day = int(em), int(ed)
        if not 1 <= month <= 12 or not 1 <= day <= max(
            calendar.monthrange(vdate.year, month)[1], 29 if month == 2 else 0
        ):
            return f"entry date {em}{ed} (MMDD) is not a calendar date"
    amount = _amount(g["amount"] or "")
    if amount is None:
        amount = _whole_amount(g["amount"] or "")
    if amount is None:
        return f"amount '{g['amount']}' is not a SWIFT amount (digits with one decimal comma)"
    if too_precise(amount):
        return f"amount '{g['amount']}' has more decimals than can be stored exactly"
    return None


# --- building statements ------------------------------------------------------------------------------------------


def _balance(t: _Tag | None) -> tuple[Decimal, dt.date, str] | None:
    if t is None:
        return None
    m = _BALANCE.match(t.head)
    if m is None:
        return None
    amount = _amount(m.group("amount"))
    assert amount is not None  # checked
    date = _date(m.group("date"))
    assert date is not None
    return (-amount if m.group("mark") == "D" else amount), date, m.group("ccy")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    return s or None


def _build(block: _Block, file_name: str) -> ParsedStatement:
    is942 = _is_942(block)
    fmt = f"MT{block.message_type}" if block.message_type else ("MT942" if is942 else "MT940")
    notes: list[dict[str, Any]] = []
    keep: list[_Tag] = []
    balances: dict[str, Any] = {}
    closing_tag = block.first(*CLOSING)
    information: list[str] = []
    ignored: list[str] = []
    for t in block.tags:
        if t.tail:
            ignored.append(f"line {t.line + 1}: {t.tail[:80]}")
        if t.tag in ("64", "65") or t.tag.startswith("65"):
            b = None if _balance_problem(t.head) else _balance(t)
            if b is None:
                notes.append(
                    {
                        "code": "FIELD_IGNORED",
                        "message": f"line {t.line}: :{t.tag}: '{t.head}' is not a valid balance; it was left out "
                        "(information only, not used for checks)",
                        "line": t.line,
                    }
                )
                continue
            entry = {"amount": b[0], "date": b[1], "currency": b[2], "line": t.line}
            if t.tag == "64":
                balances["available"] = entry
            else:
                balances.setdefault("forward_available", []).append(entry)
        if t.tag == "86" and closing_tag is not None and t.line > closing_tag.line:
            information.append(t.value.strip())  # statement-level information after the closing balance
            continue
        keep.append(t)
    use_asnb = any(_STANDARD_61.re.match(t.value) is None for t in block.all("61"))
    tags = {61: _ASNB_61} if use_asnb else None
    parsed = Transactions(processors=_PROCESSORS, tags=tags, options=_OPTIONS)
    parsed.parse("\n".join(f":{t.tag}:{t.head if t.single_line else t.value}" for t in keep) + "\n")
    line_tags = block.all("61")
    if len(parsed.transactions) != len(line_tags):
        raise refuse(
            file_name,
            f"{len(line_tags)} statement lines (:61:) but {len(parsed.transactions)} could be read",
            block.line,
        )

    opening = _balance(block.first(*OPENING))
    closing = _balance(block.first(*CLOSING))
    for tag, b in (("opening", opening), ("closing", closing)):
        if b is not None:
            src = block.first(*(OPENING if tag == "opening" else CLOSING))
            assert src is not None
            balances[tag] = {"amount": b[0], "date": b[1], "currency": b[2], "tag": src.tag, "line": src.line}
    currency = (opening or closing or (None, None, None))[2]
    if currency is None:
        floor = block.first("34F")
        currency = floor.head[:3] if floor else None
    stamp = block.first("13D")
    stamp_date = _date(stamp.head[:6]) if stamp else None

    lines: list[ParsedLine] = []
    for tx, t in zip(parsed.transactions, line_tags, strict=True):
        d = tx.data
        amount = d["amount"].amount
        extra = {
            k: (v if isinstance(v, str) else str(v))
            for k, v in d.items()
            if v not in (None, "")
            and k
            not in (
                "amount",
                "date",
                "entry_date",
                "guessed_entry_date",
                "currency",
                "transaction_details",
                "customer_reference",
                "bank_reference",
                "transaction_reference",
                "applicant_name",
                "applicant_iban",
            )
            and isinstance(v, str | int | Decimal)
        }
        ref = _text(d.get("customer_reference"))
        raw = _STANDARD_61.re.match(t.value) or _ASNB_61.re.match(t.value)
        if raw is not None and "," not in (raw.group("amount") or ","):
            notes.append(
                {
                    "code": "AMOUNT_FORMAT",
                    "message": f"line {t.line}: amount '{raw.group('amount')}' has no decimal comma; read as "
                    f"{amount}",
                    "line": t.line,
                }
            )
        lines.append(
            ParsedLine(
                amount=amount,
                currency=d.get("currency") or currency,
                value_date=_as_date(d.get("date")),
                entry_date=_as_date(d.get("entry_date")),
                reference=None if ref and ref.upper() == "NONREF" else ref,
                related_reference=_text(d.get("bank_reference")),
                counterparty=_text(d.get("applicant_name")),
                account_identifier=_text(d.get("applicant_iban")),
                description=_text(d.get("transaction_details")),
                extra=extra,
                source_line=t.line,
            )
        )
    if use_asnb:
        notes.append(
            {
                "code": "BANK_LAYOUT",
                "message": "statement lines read with ASN Bank's :61: layout (counterparty IBAN as customer reference)",
            }
        )
    ref_tag = block.first("20")
    num_tag = block.first("28C", "28")
    assert ref_tag is not None and num_tag is not None or is942
    number = page = None
    seq_text = num_tag.head if num_tag else None
    if seq_text:
        m = _NUMBER.match(seq_text)
        assert m is not None
        number = int(m.group("number")) or None  # 0 / 00000: the bank does not number its statements
        page = int(m.group("page")) if m.group("page") else None
    dates = [ln.value_date for ln in lines if ln.value_date] + [
        ln.entry_date for ln in lines if ln.entry_date
    ]
    statement_date = (
        (closing[1] if closing else None)
        or stamp_date
        or (max(dates) if dates else None)
        or (opening[1] if opening else None)
    )
    if statement_date is None:
        raise refuse(file_name, "the statement has no date (no balance, no :13D:, no line)", block.line)
    totals: dict[str, tuple[int, Decimal]] = {}
    for mark in ("D", "C"):
        t = block.first(f"90{mark}")
        if t is not None:
            m = _TOTALS.match(t.head)
            assert m is not None
            amount = _amount(m.group("amount"))
            assert amount is not None
            totals[mark] = (int(m.group("count")), amount)
    account = block.first("25")
    assert account is not None
    stmt = ParsedStatement(
        kind=StatementKind.CASH,
        format=fmt,
        account_identifier=account.head[:64],
        statement_date=statement_date,
        statement_ref=ref_tag.head[:64] if ref_tag else None,
        sequence_number=seq_text,
        sender=block.sender,
        currency=currency,
        opening_balance=opening[0] if opening else None,
        closing_balance=closing[0] if closing else None,
        lines=lines,
        extra={"balances": balances}
        | ({"related_reference": block.first("21").head} if block.first("21") else {}),
        notes=notes,
        source_line=block.line,
        number=number,
        page=page,
        period_start=opening[1] if opening else None,
        period_end=closing[1] if closing else statement_date,
        intraday=fmt == "MT942",
        entry_totals=totals,
    )
    if stamp is not None:
        stmt.extra["created"] = stamp.head
    if information:
        stmt.extra["information"] = information
    if ignored:
        stmt.extra["ignored_text"] = ignored
    for problem in block.envelope_problems:
        stmt.note("ENVELOPE", f"FIN envelope: {problem}")
    if not is942 and closing is None:
        stmt.note(
            "NO_CLOSING_BALANCE",
            "the statement has no closing balance (:62F:/:62M:); its lines cannot be checked against the balances",
            line=block.line,
        )
    return stmt


def _as_date(value: Any) -> dt.date | None:
    if value is None:
        return None
    return dt.date(value.year, value.month, value.day)


def message_types(messages: list[FinMessage]) -> set[str]:
    return {m.message_type for m in messages if not m.is_service}
