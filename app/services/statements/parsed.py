"""What every statement reader produces: statements and lines in OpsDesk's terms, or a refusal naming file, line
and field.

Readers (mt940.py, camt.py, mt535.py, semt002.py, csv_profiles.py) only read: they never touch the database. The
importer (importer.py) checks balances and sequences, finds duplicates and writes. A reader either returns every
statement of a file or raises :class:`StatementFileRefused` with every problem it found, so a damaged file is never
half-imported.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from app.models.enums import StatementKind
from app.services.errors import ValidationFailed

# Money is stored with 4 decimals (app.models.base.Money); an amount with more significant decimals is refused
# rather than rounded.
MONEY_DECIMALS = 4


@dataclass(frozen=True)
class Problem:
    """One reason a file is refused: where (line, field) and why."""

    line: int | None
    field: str
    reason: str

    def where(self, file_name: str) -> str:
        out = file_name + (f":{self.line}" if self.line else "")
        return out + (f" {self.field}" if self.field else "")

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "reason": self.reason}


class StatementFileRefused(ValidationFailed):
    """The file as a whole is refused; nothing of it is imported. ``problems`` lists each reason."""

    def __init__(self, file_name: str, problems: list[Problem], summary: str | None = None) -> None:
        self.file_name = file_name
        self.items = problems
        first = problems[0] if problems else Problem(None, "", summary or "it cannot be read")
        more = (
            f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
            if len(problems) > 1
            else ""
        )
        text = summary or f"{first.where(file_name)}: {first.reason}{more}"
        super().__init__(
            f"{file_name} was not imported: {text}. Nothing was changed.",
            [(p.where(file_name), p.field, p.reason) for p in problems],
        )
        self.reason = text


def refuse(file_name: str, reason: str, line: int | None = None, fld: str = "") -> StatementFileRefused:
    return StatementFileRefused(file_name, [Problem(line, fld, reason)])


@dataclass
class ParsedLine:
    """One statement line: a booking (cash), a holding (holdings) or a confirmed trade (confirmations)."""

    amount: Decimal | None = None  # signed: + credit
    currency: str | None = None
    value_date: dt.date | None = None
    entry_date: dt.date | None = None
    trade_date: dt.date | None = None
    reference: str | None = None
    related_reference: str | None = None
    isin: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    side: str | None = None
    counterparty: str | None = None
    account_identifier: str | None = None
    description: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    source_line: int | None = None  # where the line starts in its file
    booked: bool = True  # camt: only booked entries move the booked balance

    def fingerprint(self) -> dict[str, Any]:
        out = {
            k: getattr(self, k)
            for k in (
                "amount",
                "currency",
                "value_date",
                "entry_date",
                "trade_date",
                "reference",
                "related_reference",
                "isin",
                "quantity",
                "price",
                "side",
                "counterparty",
                "account_identifier",
                "description",
            )
        }
        out["extra"] = self.extra
        return out


@dataclass
class ParsedStatement:
    """One statement (one MT940 :20: block, one camt <Stmt>/<Ntfctn>/<Rpt>, one MT535 message, one CSV group)."""

    kind: StatementKind
    format: str  # MT940, MT942, MT950, camt.053.001.02, MT535, semt.002.001.10, CSV:<profile>
    account_identifier: str
    statement_date: dt.date
    statement_ref: str | None = None
    sequence_number: str | None = None
    sender: str | None = None
    currency: str | None = None
    opening_balance: Decimal | None = None
    closing_balance: Decimal | None = None
    lines: list[ParsedLine] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # balances by type, message id, period, page ...
    notes: list[dict[str, Any]] = field(default_factory=list)  # findings of the reader (kept as warnings)
    source_line: int | None = None
    # Sequence keys: numbers the importer compares with the previous statement of the account (None: not numbered).
    number: int | None = None
    page: int | None = None
    period_start: dt.date | None = None
    period_end: dt.date | None = None
    intraday: bool = False  # MT942, camt.052: interim reports, not part of the statement sequence
    # MT942 :90D:/:90C: totals to check the lines against, {"D": (count, amount), "C": (count, amount)}
    entry_totals: dict[str, tuple[int, Decimal]] = field(default_factory=dict)

    def note(self, code: str, message: str, **details: Any) -> None:
        self.notes.append({"code": code, "message": message, **details})

    def content_hash(self) -> str:
        """SHA-256 of what the statement says (not of the file): the same statement sent twice, in the same or
        another file, has the same hash."""
        doc = {
            "kind": self.kind.value,
            "format": self.format.split(".")[0] if self.format.startswith(("camt", "semt")) else self.format,
            "account": self.account_identifier,
            "ref": self.statement_ref,
            "seq": self.sequence_number,
            "date": self.statement_date,
            "ccy": self.currency,
            "open": self.opening_balance,
            "close": self.closing_balance,
            "balances": self.extra.get("balances"),
            "lines": [ln.fingerprint() for ln in self.lines],
        }
        text = json.dumps(doc, sort_keys=True, default=_canonical, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, StatementKind):
        return value.value
    raise TypeError(type(value).__name__)


def too_precise(value: Decimal, decimals: int = MONEY_DECIMALS) -> bool:
    """True when ``value`` has significant digits beyond ``decimals`` (storing it would round it)."""
    return value != value.quantize(Decimal(1).scaleb(-decimals)) if value.is_finite() else True


def _unframe(data: bytes) -> bytes:
    if b"\x01" not in data and b"\x03" not in data:
        return data
    import re

    data = re.sub(rb"\x01(?=[{:\r\n])", b"", data)
    return re.sub(rb"(?<=[}\-\r\n])\x03", b"", data)


def decode_text(data: bytes, file_name: str) -> str:
    """Bytes of a text statement file → text: UTF-8 (with or without BOM), else Windows-1252 as German and Dutch
    banks write it. Binary content (NUL and other control bytes) is refused."""
    if not data or not data.strip():
        raise refuse(file_name, "the file is empty")
    # SOH (0x01) and ETX (0x03) frame messages in SWIFT transmissions (PostFinance, mBank): framing, not content.
    data = _unframe(data)
    bad = next((i for i, b in enumerate(data[:1_000_000]) if b < 32 and b not in (9, 10, 13, 26)), None)
    if bad is not None:
        line = data.count(b"\n", 0, bad) + 1
        raise refuse(
            file_name,
            f"it is binary, not a text statement (control byte 0x{data[bad]:02x} at offset {bad})",
            line,
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x1a", "")
