"""Settlement messages in and out: import status advices and confirmations, write instructions.

Incoming (:func:`import_messages`, :func:`import_bytes`): each file is one transaction. Its format is detected
(ISO 15022 FIN MT544-548, ISO 20022 XML sese.024/025, custodian CSV through a :class:`CsvProfile`), every message
in it parsed, hashed and stored in ``settlement_messages`` (raw text and parsed JSON: the settlement facts, and the
decoded header blocks only of a message it could not read), matched to its instruction — by our reference
(:20C::RELA, ``AcctOwnrTxId``), else by the matching fields (ISIN, quantity, settlement date, amount within the
market tolerance, counterparty BIC, direction), never by guessing between several candidates — and applied:
status advices move the instruction through ``lifecycle.transition`` (MATCHED; unmatched or pending with the market
reason code; FAILED once past the intended settlement date, or when the CSD says failing; CANCELLED), confirmations
settle it fully or partially through ``movements.apply_settlement``. Nothing here posts a movement or
sets a status by itself.

A message that cannot be read, is of a type settlement does not apply, carries no settlement data (a header-only
stub), matches no instruction or is refused by the lifecycle is stored QUARANTINED with the reason (file, message
number, field) for a clerk. A message whose content hash is already stored (this file or an earlier one) is a
DUPLICATE: counted, not stored again, and nothing changes. A file that is not text at all (binary) is refused as a
whole, with nothing stored.

Speed (100,000 messages in one file): a large FIN file's parts after the first are parsed, hashed and their stored
JSON encoded in a helper process (the other core) while this one applies and writes the parts before them; the
garbage collector is paused while a file is read and applied; duplicates
are checked in bulk by hash and instructions loaded in bulk by reference as plain states; the messages are applied in
file order to those states in memory (``movements.SettlementBatch`` / ``lifecycle.Batch``: exactly the lifecycle's
and the settlement's rules, so a second message about an instruction sees what the first did, and a refused message
undoes its own changes); then instructions, trades, movements, positions, balances and message rows are written
set-based: staged in temporary tables (COPY on PostgreSQL) and applied by one ``UPDATE ... FROM`` / ``INSERT ...
SELECT`` per part, before the next part is read. A file that changes up to
``lifecycle.PER_ROW_AUDIT_MAX`` instructions gets one audit entry per transition; a larger one, one entry listing
every transition, which each applied message row names (``parsed.transition_audit_entry``) beside the instruction
it changed.

Outgoing (:func:`write_outgoing`): MT540-543 or sese.023 for INSTRUCTED instructions, one file per message or one
batch, each message checked by the structure check of its format before anything is written, and recorded as
OUTBOUND/SENT (writing the same message again is recognised by its hash and not recorded twice).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import io
import json
import multiprocessing as mp
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import and_, insert, select
from sqlalchemy.orm import Session, aliased

from app.models import (
    Counterparty,
    Instrument,
    Market,
    SettlementInstruction,
    SettlementMessage,
    StandingSettlementInstruction,
    utcnow,
)
from app.models.enums import (
    ChangeAction,
    InstructionStatus,
    InstructionType,
    MessageDirection,
    MessageStatus,
)

from .. import audit
from ..capture import bulk
from ..collector import cycle_collector_paused
from ..db import Database
from ..errors import NotFound, OpsDeskError, ValidationFailed
from ..permissions import Actor, Permission, require
from ..swift import fin, incoming, iso20022, mt54x, mt54x_fast
from ..swift.incoming import IncomingSettlement, NoSettlementData, StatusReason, UnsupportedMessage
from . import lifecycle, movements, reasons

S = InstructionStatus
CHUNK = 900  # bind parameters per IN (...) lookup: below SQLite's limit


class FileRefused(ValidationFailed):
    """The file as a whole cannot be imported (binary, empty); nothing was stored."""


# --- result -------------------------------------------------------------------------------------------------------


@dataclass
class MessageImportResult:
    """Counts of one import (several files), per outcome and per message type, and the reasons of what went wrong."""

    files: int = 0
    messages: int = 0
    applied: int = 0
    unmatched: int = 0
    quarantined: int = (
        0  # unreadable, unsupported, refused by the lifecycle (unmatched ones are counted apart)
    )
    duplicates: int = 0
    refused_files: list[str] = field(default_factory=list)
    by_type: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    issues: list[dict[str, Any]] = field(default_factory=list)  # {file, message, type, outcome, reason}
    instructions_changed: int = 0

    def count(self, mtype: str, outcome: str) -> None:
        self.by_type[mtype][outcome] += 1
        setattr(self, outcome, getattr(self, outcome) + 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "messages": self.messages,
            "applied": self.applied,
            "unmatched": self.unmatched,
            "quarantined": self.quarantined,
            "duplicates": self.duplicates,
            "instructions_changed": self.instructions_changed,
            "refused_files": self.refused_files,
            "by_type": {k: dict(v) for k, v in sorted(self.by_type.items())},
            "issues": self.issues,
        }

    def summary(self) -> str:
        parts = [
            f"{self.messages} message(s) in {self.files} file(s): {self.applied} applied",
            f"{self.unmatched} unmatched",
            f"{self.quarantined} quarantined",
            f"{self.duplicates} duplicate(s)",
        ]
        if self.refused_files:
            parts.append(f"{len(self.refused_files)} file(s) refused")
        return ", ".join(parts)


# --- parsing a file into units ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Unit:
    """One message of a file on its way to the database."""

    index: int
    raw: str
    message_type: str
    incoming: IncomingSettlement | None = None
    error: str | None = None  # why it is quarantined before matching
    parsed: dict[str, Any] = field(default_factory=dict)
    content_hash: str = ""
    instruction_id: int | None = None
    status: MessageStatus = MessageStatus.APPLIED
    reason: str | None = None
    outcome: str = "applied"
    doc: str = ""  # ``parsed`` as stored (JSON), once prepared: the matching adds ``matched_by`` to it
    matched_by: str | None = None  # "reference" / "fields" once matched


@dataclass(frozen=True, slots=True)
class CsvProfile:
    """How a custodian's CSV names the columns of a status/confirmation report.

    ``columns`` maps our field → their header. Fields: ``related_reference`` (our instruction reference, required),
    ``reference``, ``kind`` (values in ``status_values`` / ``confirmation_values``), ``match_status`` (MACH/NMAT),
    ``settlement_status`` (PEND/PENF), ``reason_code``, ``reason_text``, ``isin``, ``quantity``, ``settled_quantity``,
    ``settled_amount``, ``currency``, ``settlement_date``, ``settled_on``.
    """

    name: str = "default"
    delimiter: str = ","
    date_format: str = "%Y-%m-%d"
    decimal_comma: bool = False
    columns: dict[str, str] = field(
        default_factory=lambda: {
            "related_reference": "our_ref",
            "reference": "their_ref",
            "kind": "type",
            "match_status": "match_status",
            "settlement_status": "settlement_status",
            "reason_code": "reason_code",
            "reason_text": "reason_text",
            "isin": "isin",
            "quantity": "quantity",
            "settled_quantity": "settled_quantity",
            "settled_amount": "settled_amount",
            "currency": "currency",
            "settlement_date": "settlement_date",
            "settled_on": "settled_on",
        }
    )
    status_values: tuple[str, ...] = ("STATUS", "STAT", "548")
    confirmation_values: tuple[str, ...] = ("CONFIRMATION", "CONF", "SETTLED", "545", "547")


DEFAULT_CSV_PROFILE = CsvProfile()


def _sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def _fin_units(text: str, file_name: str, *, fast: bool = True) -> list[_Unit]:
    """The units of a FIN file. A clean MT544-548 is read in one pass (``mt54x_fast``: the same facts, a fraction
    of the work); every other message (``fast`` False: all of them) through the full parser and reader."""
    return _fin_units_of(fin.split_fin(text, file_name=file_name), file_name, fast=fast)


def _fin_units_of(raws: list[fin.RawFin], file_name: str, *, fast: bool = True) -> list[_Unit]:
    units: list[_Unit] = []
    quick = mt54x_fast.read if fast else None
    for raw in raws:
        if quick is not None and (done := quick(raw)) is not None:
            mtype, raw_text, headers, inc = done
            units.append(_Unit(raw.index, raw_text, mtype, inc, None, {"format": "FIN", **headers}))
            continue
        unit = _Unit(raw.index, raw.text.strip(), "MT?")
        try:
            msg = fin.parse_message(raw, strict=False)
        except fin.FinParseError as err:
            unit.error = str(err)
            unit.raw = raw.text.strip().rstrip("$").strip()
            units.append(unit)
            continue
        unit.raw = msg.raw
        unit.message_type = msg.message_type if msg.is_service else f"MT{msg.message_type}"
        unit.parsed = {"format": "FIN", **_fin_headers(msg)}
        # A header-only stub: nothing but a GENL without sub-sequences (an MT548 keeps its STAT inside GENL).
        genl = msg.root.sequence("GENL")
        stub = (
            not msg.is_service
            and {s.name for s in msg.root.children} <= {"GENL"}
            and (genl is None or not genl.children)
        )
        if stub and msg.message_type.startswith("5"):
            unit.error = (
                f"{msg.describe()}: no settlement data — only the general information (GENL) is present"
                + (f"; {'; '.join(msg.problems)}" if msg.problems else "")
            )
        elif msg.problems:
            unit.error = f"{msg.describe()}: damaged structure: {'; '.join(msg.problems)}"
        else:
            try:
                unit.incoming = mt54x.read_incoming(msg)
            except (UnsupportedMessage, NoSettlementData) as err:
                unit.error = f"{file_name}, message {raw.index}: {err}"
            except fin.FinParseError as err:
                unit.error = str(err.located(file_name=file_name, message_index=raw.index))
        if unit.incoming is None:
            # Kept for the clerk who works the quarantine: the sequence tree as the parser saw it.
            unit.parsed["block4"] = msg.root.to_json()
        units.append(unit)
    return units


def _fin_headers(msg: fin.FinMessage) -> dict[str, Any]:
    """A FIN message's parsed headers (``FinMessage.to_json`` without the block-4 tree, which ``raw`` holds
    verbatim and the settlement facts summarise)."""
    return {
        "message_type": msg.message_type,
        "sender_bic": msg.sender_bic,
        "receiver_bic": msg.receiver_bic,
        "block1": msg.block1,
        "block2": msg.block2,
        "block3": msg.block3,
        "block5": msg.block5,
        "problems": msg.problems,
    }


def _xml_units(data: bytes, file_name: str) -> list[_Unit]:
    units: list[_Unit] = []
    for msg in iso20022.split_xml(data, file_name=file_name):
        unit = _Unit(msg.index, msg.raw.decode("utf-8"), msg.definition)
        unit.parsed = {"format": "ISO20022", "definition": msg.definition, "line": msg.line}
        try:
            unit.incoming = iso20022.read_xml(msg, file_name=file_name)
        except (UnsupportedMessage, NoSettlementData, iso20022.Iso20022Error) as err:
            unit.error = f"{file_name}, message {msg.index} (line {msg.line}): {err}"
        units.append(unit)
    return units


def _csv_decimal(text: str, profile: CsvProfile) -> Decimal | None:
    t = text.strip()
    if not t:
        return None
    if profile.decimal_comma:
        t = t.replace(".", "").replace(",", ".")
    return Decimal(t.replace(",", "") if not profile.decimal_comma else t)


def _csv_units(text: str, file_name: str, profile: CsvProfile) -> list[_Unit]:
    reader = csv.DictReader(io.StringIO(text), delimiter=profile.delimiter)
    cols = profile.columns
    headers = reader.fieldnames or []
    if cols["related_reference"] not in headers:
        raise FileRefused(
            f"{file_name}: CSV without the column {cols['related_reference']!r} (our reference) of profile "
            f"{profile.name!r}; headers are {', '.join(headers)}"
        )
    units: list[_Unit] = []
    for n, row in enumerate(reader, 2):
        raw_line = profile.delimiter.join(row.get(h) or "" for h in headers)
        unit = _Unit(n - 1, raw_line, "CSV")

        def get(key: str, _row: dict[str, str] = row) -> str:
            h = cols.get(key)
            return (_row.get(h) or "").strip() if h else ""

        unit.parsed = {"format": "CSV", "profile": profile.name, "line": n, "row": dict(row)}
        try:
            kind_text = get("kind").upper()
            kind: Literal["status", "confirmation"]
            if kind_text in profile.confirmation_values:
                kind = "confirmation"
            elif kind_text in profile.status_values:
                kind = "status"
            else:
                raise ValueError(
                    f"column {cols.get('kind')!r}: {kind_text!r} is neither a status nor a confirmation"
                )
            inc = IncomingSettlement(
                kind=kind,
                message_type="CSV",
                reference=get("reference") or None,
                related_reference=get("related_reference") or None,
                isin=get("isin") or None,
                currency=get("currency") or None,
                source=f"{file_name}, line {n}",
            )
            for key in ("quantity", "settled_quantity", "settled_amount"):
                try:
                    setattr(inc, key, _csv_decimal(get(key), profile))
                except InvalidOperation:
                    raise ValueError(f"column {cols.get(key)!r}: {get(key)!r} is not a number") from None
            for key in ("settlement_date", "settled_on"):
                if get(key):
                    try:
                        setattr(inc, key, dt.datetime.strptime(get(key), profile.date_format).date())
                    except ValueError:
                        raise ValueError(
                            f"column {cols.get(key)!r}: {get(key)!r} is not a date {profile.date_format}"
                        ) from None
            if kind == "status":
                code, text_ = get("reason_code") or None, get("reason_text") or None
                if get("match_status"):
                    inc.statuses.append(StatusReason("MTCH", get("match_status").upper(), code, text_))
                if get("settlement_status"):
                    inc.statuses.append(StatusReason("SETT", get("settlement_status").upper(), code, text_))
                if not inc.statuses:
                    raise ValueError("a status line needs a match_status or settlement_status")
            elif inc.settled_quantity is None or inc.settled_on is None:
                raise ValueError("a confirmation line needs settled_quantity and settled_on")
            elif inc.settled_amount is None:
                inc.settled_amount = Decimal(0)
            unit.incoming = inc
        except ValueError as err:
            unit.error = f"{file_name}, line {n}: {err}"
        units.append(unit)
    return units


def detect_format(data: bytes) -> str:
    """``fin``, ``xml``, ``csv`` or ``unknown`` from the content (never from the file name)."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return "xml"
    if b"{1:" in data[:65536]:
        return "fin"
    first = head.split(b"\n", 1)[0]
    if first.count(b",") >= 2 or first.count(b";") >= 2:
        return "csv"
    return "unknown"


def parse_file(data: bytes, file_name: str, *, csv_profile: CsvProfile | None = None) -> list[_Unit]:
    """The messages of one file, each either readable (``incoming``) or with the reason it is not (``error``)."""
    with cycle_collector_paused():
        return [u for part in _file_parts(data, file_name, csv_profile=csv_profile) for u in part]


# Messages of a FIN file parsed per part: the importer writes what one part changed before it parses the next.
# (A writer thread overlapping a part's writes with the next part's parsing was measured twice, and was slower
# both times: 100,000 messages on SQLite 24.2 s with it, 17.5 s without; PostgreSQL 28.7 s vs 20.9 s.)
PART = 5000
# From this many parts on (an import only), a FIN file's parts after the first are parsed and prepared in a helper
# process, on the other core, while this one applies and writes the parts before them (parsing, hashing and
# encoding were a third of a 100,000-message import).
POOL_MIN_PARTS = 4


def _file_parts(
    data: bytes, file_name: str, *, csv_profile: CsvProfile | None = None, pooled: bool = False
) -> Iterator[list[_Unit]]:
    """The file's units in parts, in order. What refuses the file as a whole (empty, binary, a FIN file without a
    message) is raised here, before the first part; a FIN file's messages are parsed part by part as the parts
    are taken (``pooled``: a large file's in a helper process, already prepared for the import)."""
    if not data.strip():
        raise FileRefused(f"{file_name}: the file is empty")
    if b"\x00" in data:
        raise FileRefused(f"{file_name}: binary content (NUL bytes) — not a settlement message file")
    fmt = detect_format(data)
    if fmt == "xml":
        try:
            return iter([_xml_units(data, file_name)])
        except iso20022.Iso20022Error as err:
            return iter([[_Unit(1, data.decode("utf-8", "replace"), "XML", error=str(err))]])
    text = data.decode("utf-8") if _is_utf8(data) else data.decode("latin-1")
    if fmt == "fin":
        raws = fin.split_fin(text, file_name=file_name)
        parts = [raws[i : i + PART] for i in range(0, len(raws), PART)]
        if pooled and len(parts) >= POOL_MIN_PARTS:
            return _pooled_parts(parts, file_name)
        return (_fin_units_of(part, file_name) for part in parts)
    if fmt == "csv":
        return iter([_csv_units(text, file_name, csv_profile or DEFAULT_CSV_PROFILE)])
    return iter(
        [
            [
                _Unit(
                    1,
                    text,
                    "UNKNOWN",
                    error=f"{file_name}: not a settlement message (neither ISO 15022 FIN, ISO 20022 XML nor "
                    "custodian CSV)",
                )
            ]
        ]
    )


def _start_method() -> str:
    """fork when this process runs one thread (CLI, bench: the helper starts at once, nothing to import); spawn
    otherwise (the GUI's worker thread: forking a process with other threads running is not safe)."""
    return "fork" if threading.active_count() == 1 and "fork" in mp.get_all_start_methods() else "spawn"


def _pooled_parts(parts: list[list[fin.RawFin]], file_name: str) -> Iterator[list[_Unit]]:
    """The units of ``parts`` in order: the first parsed here while the helper process starts, the others parsed
    and prepared (:func:`_prepare`) there, one part ahead of (or more) the part being applied here."""
    pool = mp.get_context(_start_method()).Pool(1)
    try:
        later = pool.imap(
            functools.partial(_parse_packed, file_name),
            ([(r.text, r.index, r.start_line) for r in part] for part in parts[1:]),
        )
        yield _fin_units_of(parts[0], file_name)
        for packed in later:
            yield [_unpack(t) for t in packed]
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _parse_packed(file_name: str, raws: list[tuple[str, int, int]]) -> list[tuple[Any, ...]]:
    """(Helper process.) One part's units, parsed and prepared exactly as here, as tuples of plain values."""
    with cycle_collector_paused():
        units = _fin_units_of([fin.RawFin(t, i, ln, file_name) for t, i, ln in raws], file_name)
        out = []
        for u in units:
            _prepare(u)
            inc = None if u.incoming is None else incoming.pack(u.incoming)
            out.append((u.index, u.raw, u.message_type, inc, u.error, u.content_hash, u.doc))
        return out


def _unpack(t: tuple[Any, ...]) -> _Unit:
    index, raw, mtype, inc, error, content_hash, doc = t
    unit = _Unit(index, raw, mtype, None if inc is None else incoming.unpack(inc), error)
    unit.content_hash, unit.doc = content_hash, doc
    return unit


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


# --- matching -----------------------------------------------------------------------------------------------------


def _chunks(items: list[Any], n: int = CHUNK) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _by_fields(
    s: Session, batch: movements.SettlementBatch, inc: IncomingSettlement
) -> tuple[lifecycle.InstructionState | None, str]:
    """The one live instruction the message's fields describe, or None and why not. Candidates are judged as they
    stand in the batch (an earlier message of the same file may have settled one already)."""
    if not inc.isin:
        return None, "no reference we know and no ISIN to match on"
    q = (
        select(SettlementInstruction.id, Counterparty.bic)
        .join(Instrument, Instrument.id == SettlementInstruction.instrument_id)
        .join(Counterparty, Counterparty.id == SettlementInstruction.counterparty_id)
        .where(
            Instrument.isin == inc.isin,
            SettlementInstruction.status.not_in([S.SETTLED.value, S.CANCELLED.value, S.PENDING.value]),
        )
    )
    if inc.settlement_date is not None:
        q = q.where(SettlementInstruction.intended_settlement_date == inc.settlement_date)
    if inc.quantity is not None:
        q = q.where(SettlementInstruction.quantity == inc.quantity)
    found = list(s.execute(q.limit(50)))
    batch.lifecycle.load(ids=[int(i) for i, _ in found])
    candidates = []
    for iid, bic in found:
        state = batch.lifecycle.states.get(int(iid))
        if state is None or lifecycle.as_status(state.status) in (S.SETTLED, S.CANCELLED, S.PENDING):
            continue
        if _fits(state, bic, inc):
            candidates.append(state)
    if len(candidates) == 1:
        return candidates[0], ""
    what = f"ISIN {inc.isin}" + (f", settlement date {inc.settlement_date}" if inc.settlement_date else "")
    what += f", quantity {inc.quantity:f}" if inc.quantity is not None else ""
    if not candidates:
        return None, f"no live instruction matches {what}"
    refs = ", ".join(sorted(c.instruction_ref for c in candidates)[:5])
    return None, f"{len(candidates)} instructions match {what} ({refs}); not guessing — match it by hand"


def _fits(instr: lifecycle.InstructionState, bic: str | None, inc: IncomingSettlement) -> bool:
    """Whether the message's other matching fields agree with ``instr`` (amount within the market tolerance)."""
    itype = lifecycle.as_type(instr.instruction_type)
    if inc.direction is not None and (itype in movements.RECEIVING) != (inc.direction == "RECE"):
        return False
    if inc.against_payment is not None and (itype in movements.AGAINST_PAYMENT) != inc.against_payment:
        return False
    tolerance = movements.amount_tolerance(instr.settlement_amount)
    if (
        inc.amount is not None
        and inc.against_payment is not False
        and abs(abs(inc.amount) - abs(instr.settlement_amount)) > tolerance
    ):
        return False
    if inc.currency and instr.currency != inc.currency:
        return False
    if inc.counterparty_bic and bic and inc.counterparty_bic[:8] != bic[:8]:
        return False
    open_qty = instr.quantity - (instr.settled_quantity or 0)
    return not (
        inc.kind == "confirmation" and inc.settled_quantity is not None and inc.settled_quantity > open_qty
    )


# --- applying -----------------------------------------------------------------------------------------------------

_QUALIFIER_ORDER = {"IPRC": 0, "MTCH": 1, "SETT": 2}


def _reason_text(st: StatusReason) -> str:
    base = (
        reasons.words(st.code)
        if st.code
        else {"NMAT": "Unmatched", "PEND": "Pending", "PENF": "Failing"}.get(st.status, st.status)
    )
    text = f"{base} — {st.text}" if st.text else base
    return text[:500]


def _day(inc: IncomingSettlement, as_of: dt.date) -> dt.date:
    return inc.sent_at.date() if inc.sent_at is not None else as_of


def _move(
    batch: movements.SettlementBatch,
    instr: lifecycle.InstructionState,
    new: InstructionStatus,
    note: str,
    st: StatusReason | None = None,
) -> bool:
    """One lifecycle transition (with reason when ``st`` has one); False when it is not allowed from here."""
    if not lifecycle.allowed(lifecycle.as_status(instr.status), new):
        return False
    code = st.code if st is not None else None
    if new is S.FAILED and not code:
        code = "NARR"  # FAILED needs a code: the CSD gave only words
    batch.lifecycle.transition(
        instr,
        new,
        reason_code=code,
        reason_text=_reason_text(st) if st is not None else None,
        note=note,
    )
    return True


def _apply_status(
    batch: movements.SettlementBatch, instr: lifecycle.InstructionState, inc: IncomingSettlement, day: dt.date
) -> str:
    """Apply a status advice; returns a note of what it did (raises InvalidTransition when refused)."""
    done: list[str] = []
    note = f"{inc.message_type} {inc.reference or ''} of {day.isoformat()}".strip()
    past_isd = day > instr.intended_settlement_date
    final = lifecycle.as_status(instr.status) in (S.SETTLED, S.CANCELLED)
    for st in sorted(inc.statuses, key=lambda x: _QUALIFIER_ORDER.get(x.qualifier, 9)):
        status = lifecycle.as_status(instr.status)
        if final:
            break
        key = (st.qualifier, st.status)
        if key == ("IPRC", "CAND") or st.status == "CAND":
            batch.lifecycle.check_allowed(instr, S.CANCELLED)
            _move(batch, instr, S.CANCELLED, f"{note}: cancelled at the agent", st)
            done.append("cancelled")
        elif key == ("IPRC", "REJT"):
            batch.lifecycle.check_allowed(instr, S.FAILED)
            _move(batch, instr, S.FAILED, f"{note}: rejected by the agent", st)
            done.append(f"rejected {st.code or ''}".strip())
        elif key == ("MTCH", "MACH"):
            if status in (S.INSTRUCTED, S.FAILED):
                _move(batch, instr, S.MATCHED, f"{note}: matched")
                done.append("matched")
        elif key == ("MTCH", "NMAT") or key[1] in ("PEND", "PENF"):
            failing = st.status == "PENF" or past_isd
            if failing:
                batch.lifecycle.check_allowed(instr, S.FAILED)
                _move(batch, instr, S.FAILED, f"{note}: failing", st)
                done.append(f"failed {st.code or ''}".strip())
            elif st.status == "NMAT" and status in (S.INSTRUCTED, S.MATCHED, S.FAILED):
                # Unmatched before the settlement date: it stays (or goes back to) instructed, with the reason.
                target = S.FAILED if status is S.FAILED else S.INSTRUCTED
                _move(batch, instr, target, f"{note}: unmatched", st)
                done.append(f"unmatched {st.code or ''}".strip())
            elif status in (S.INSTRUCTED, S.FAILED, S.PARTIALLY_SETTLED):
                _move(batch, instr, status, f"{note}: pending", st)
                done.append(f"pending {st.code or ''}".strip())
            else:
                done.append(f"pending {st.code or ''} noted (status {status.value} kept)".strip())
        # IPRC//PACK and other informative statuses change nothing.
    if final:
        return f"no change: instruction already {lifecycle.as_status(instr.status).value}"
    return ", ".join(done) or "acknowledged, no change"


def _apply_confirmation(
    batch: movements.SettlementBatch, instr: lifecycle.InstructionState, inc: IncomingSettlement
) -> str:
    if inc.function not in ("NEWM",):
        raise ValidationFailed(
            f"{inc.message_type} with function {inc.function} (cancel/reversal of a confirmation) is not applied "
            "automatically; a clerk must review the movements"
        )
    itype = lifecycle.as_type(instr.instruction_type)
    receiving = itype in movements.RECEIVING
    if inc.direction is not None and receiving != (inc.direction == "RECE"):
        raise ValidationFailed(
            f"{inc.message_type} confirms a {'receipt' if inc.direction == 'RECE' else 'delivery'} but instruction "
            f"{instr.instruction_ref} is {itype.value}"
        )
    if inc.against_payment is not None and inc.against_payment != (itype in movements.AGAINST_PAYMENT):
        raise ValidationFailed(
            f"{inc.message_type} is {'against payment' if inc.against_payment else 'free of payment'} but "
            f"instruction {instr.instruction_ref} is {itype.value}"
        )
    if inc.currency and itype in movements.AGAINST_PAYMENT and inc.currency != instr.currency:
        raise ValidationFailed(
            f"{inc.message_type} settled in {inc.currency} but instruction {instr.instruction_ref} is in "
            f"{instr.currency}"
        )
    qty = inc.settled_quantity or Decimal(0)
    amount = (inc.settled_amount or Decimal(0)) if itype in movements.AGAINST_PAYMENT else Decimal(0)
    settled_on = inc.settled_on or inc.settlement_date
    if settled_on is None:
        raise ValidationFailed(f"{inc.message_type} gives no settlement date")
    batch.settle(instr, qty, amount, settled_on)
    return f"settled {qty:f} against {amount:f} on {settled_on.isoformat()} → {lifecycle.as_status(instr.status).value}"


# --- import -------------------------------------------------------------------------------------------------------


def import_messages(
    db: Database,
    actor: Actor,
    paths: list[Path] | list[str],
    *,
    as_of: dt.date | None = None,
    csv_profile: CsvProfile | None = None,
) -> MessageImportResult:
    """Import every file (one transaction each); a refused file does not stop the others."""
    require(actor, Permission.IMPORT)
    result = MessageImportResult()
    for p in paths:
        path = Path(p)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise NotFound(f"{path}: cannot read the file ({err.strerror or err})") from None
        import_bytes(db, actor, data, path.name, as_of=as_of, csv_profile=csv_profile, result=result)
    return result


def import_bytes(
    db: Database,
    actor: Actor,
    data: bytes,
    file_name: str,
    *,
    as_of: dt.date | None = None,
    csv_profile: CsvProfile | None = None,
    result: MessageImportResult | None = None,
) -> MessageImportResult:
    """Import one file's content (the GUI hands bytes); ``as_of`` is the day a status without a date is from."""
    require(actor, Permission.IMPORT)
    result = result if result is not None else MessageImportResult()
    result.files += 1
    as_of = as_of or dt.date.today()
    with cycle_collector_paused():
        try:
            parts = _file_parts(data, file_name, csv_profile=csv_profile, pooled=True)
        except (FileRefused, fin.FinParseError) as err:
            result.refused_files.append(file_name)
            result.issues.append(
                {"file": file_name, "message": None, "type": None, "outcome": "refused", "reason": str(err)}
            )
            return result
        with db.write() as s:
            # Every unit is freed when this returns, while the collector is still paused: otherwise its first
            # pass after the pause walks every one of them (a noticeable share of a large file's time) only to
            # find they are garbage anyway.
            try:
                _import_units(s, actor, parts, file_name, as_of, result)
            finally:
                close = getattr(parts, "close", None)
                if close is not None:
                    close()  # a helper process still parsing stops now (the import failed)
    return result


def _prepare(u: _Unit) -> None:
    """Content hash and the settlement facts as stored (``parsed``, encoded into ``doc``) of a unit about to be
    imported. What a message of a large file needs of it is done here, in the helper process that parsed it."""
    u.content_hash = _sha(u.raw.replace("\r\n", "\n"))
    if u.incoming is not None:
        u.parsed["settlement"] = u.incoming.to_json()
        codes = [st.code for st in u.incoming.statuses if st.code]
        if codes:
            # Where the queue's detail looks for the reason codes a message carries.
            u.parsed["reason_codes"] = list(dict.fromkeys(codes))
        u.doc = _dumps({k: v for k, v in u.parsed.items() if k not in _DERIVED})
    else:
        u.doc = _dumps(u.parsed)


_dumps = json.JSONEncoder(default=str, ensure_ascii=False, separators=(",", ":")).encode


def _existing_hashes(s: Session, hashes: list[str]) -> set[str]:
    found: set[str] = set()
    if not hashes:
        return found
    if s.get_bind().dialect.name == "postgresql":
        # One array parameter: an IN list of 10,000 binds costs the server more to plan than to run.
        return set(
            s.connection()
            .exec_driver_sql(
                "SELECT content_hash FROM settlement_messages WHERE direction = %(d)s AND content_hash = ANY(%(h)s)",
                {"d": MessageDirection.INBOUND.value, "h": sorted(set(hashes))},
            )
            .scalars()
        )
    # SQLite: driver-level statements (a file of 100,000 messages makes over a hundred of them; building and
    # compiling each through the ORM cost more than running it).
    conn = s.connection()
    inbound = MessageDirection.INBOUND.value
    for part in _chunks(sorted(set(hashes)), CHUNK):
        found.update(
            h
            for (h,) in conn.exec_driver_sql(
                "SELECT content_hash FROM settlement_messages WHERE direction = ? AND content_hash IN "
                f"({', '.join('?' * len(part))})",
                (inbound, *part),
            )
        )
    return found


def _import_units(
    s: Session,
    actor: Actor,
    parts: Iterator[list[_Unit]],
    file_name: str,
    as_of: dt.date,
    result: MessageImportResult,
) -> None:
    """Match and apply a file's messages in order against in-memory instruction states (a second message about an
    instruction sees what the first did), then write everything set-based: instructions, trades, movements,
    positions, balances, the audit trail and the message rows. A message that is refused leaves its instruction as
    it was (its own transitions are undone) and is quarantined with the reason.

    Part by part (``PART`` messages of a large FIN file): the instructions and movements a part changed are written
    once the part is applied, so the rows built for them never pile up for the whole file; the trades, the audit
    trail (one batch entry for a large file, listing every transition of the file) and the message rows are written
    once all parts are applied."""
    batch = movements.SettlementBatch(s, actor)
    seen: set[str] = set()
    by_ref: dict[str, lifecycle.InstructionState] = {}
    changed: set[int] = set()
    live: list[_Unit] = []
    rows: list[tuple[Any, ...]] = []
    to_name: list[int] = []  # rows of applied messages: they name the file's batch audit entry
    total = 0
    encode = _message_rows(s, file_name)
    with bulk.bulk_write(s):  # SQLite: a page cache for the indexes updated
        for units in parts:
            for u in units:
                if not u.content_hash:  # (prepared already when parsed in the helper process)
                    _prepare(u)
            total += len(units)
            known = _existing_hashes(s, [u.content_hash for u in units if u.content_hash not in seen])
            fresh: list[_Unit] = []
            for u in units:
                result.messages += 1
                if u.content_hash in seen or u.content_hash in known:
                    result.count(u.message_type, "duplicates")
                    continue
                seen.add(u.content_hash)
                fresh.append(u)
            for st in batch.lifecycle.load(
                refs=[u.incoming.related_reference or "" for u in fresh if u.incoming is not None]
            ):
                by_ref[st.instruction_ref] = st
            for u in fresh:
                _apply_unit(s, batch, by_ref, u, as_of, changed)
                result.count(u.message_type, u.outcome)
                if u.outcome != "applied":
                    result.issues.append(
                        {
                            "file": file_name,
                            "message": u.index,
                            "type": u.message_type,
                            "outcome": u.outcome,
                            "reason": u.reason,
                        }
                    )
            _write_part(batch)
            for u in fresh:
                if u.instruction_id is not None and u.outcome == "applied":
                    to_name.append(len(rows))
                rows.append(encode(u))
            live.extend(fresh)
        batch.flush()
        result.instructions_changed += len(changed)
        if not live:
            return
        batch_entry = batch.lifecycle.audit_entry_id
        if batch_entry is not None:
            # The instruction's history for a large file: this message, and the entry listing the change. The
            # key goes last into the message's parsed JSON, as if set on the dict before it was encoded.
            named = f'"transition_audit_entry":{int(batch_entry)}'
            for i in to_name:
                row = rows[i]
                rows[i] = (*row[:10], _with_key(row[10], named), *row[11:])
        _insert_messages(s, rows)
    counts = Counter(u.outcome for u in live)
    audit.record(
        s,
        actor,
        "settlement_messages.import",
        "settlement_messages",
        None,
        after={
            "file": file_name,
            "messages": total,
            **counts,
            "duplicates": total - len(live),
            "instructions_changed": len(changed),
            "transition_audit_entry": batch_entry,
        },
        change=ChangeAction.BULK,
        summary={"action": "import", "file": file_name, "rows": len(live)},
    )


def _write_part(batch: movements.SettlementBatch) -> None:
    """Write what a part changed: its movements (with positions and balances) and its instructions' rows."""
    batch.post_movements()
    batch.lifecycle.write_changed()


def _apply_unit(
    s: Session,
    batch: movements.SettlementBatch,
    by_ref: dict[str, lifecycle.InstructionState],
    u: _Unit,
    as_of: dt.date,
    changed: set[int],
) -> None:
    """Match one message and apply it to the batch's states; sets the unit's outcome, status and reason."""
    inc = u.incoming
    if inc is None:
        u.status, u.reason, u.outcome = MessageStatus.QUARANTINED, u.error, "quarantined"
        return
    instr = by_ref.get(inc.related_reference or "")
    why = ""
    if instr is None:
        instr, why = _by_fields(s, batch, inc)
        if instr is not None:
            u.matched_by = "fields"
        elif inc.related_reference:
            why = f"no instruction with our reference {inc.related_reference!r}; {why}"
    else:
        u.matched_by = "reference"
    if instr is None:
        u.status, u.outcome = MessageStatus.QUARANTINED, "unmatched"
        u.reason = f"{inc.source}: unmatched — {why}"
        return
    u.instruction_id = instr.id
    token = batch.checkpoint(instr)
    try:
        if inc.kind == "confirmation":
            note = _apply_confirmation(batch, instr, inc)
        else:
            note = _apply_status(batch, instr, inc, _day(inc, as_of))
        u.reason = note
        changed.add(instr.id)
    except OpsDeskError as err:
        batch.restore(instr, token)
        u.status, u.outcome = MessageStatus.QUARANTINED, "quarantined"
        u.reason = f"{inc.source}: refused for instruction {instr.instruction_ref} — {err}"


_MESSAGE_COLUMNS = (
    "direction", "message_type", "sender", "reference", "related_reference", "instruction_id", "status",
    "status_reason", "content_hash", "raw", "parsed", "file_name", "received_at",
)  # fmt: skip


# What the stored JSON of a message whose settlement facts were read leaves out: the decoded FIN header blocks (the
# raw text stored beside them holds the same blocks verbatim, and nothing reads them back: the queue's detail shows
# the facts, the reason codes and the batch audit entry). A message that could not be read keeps everything, so a
# clerk working the quarantine sees the parser's whole view of it.
_DERIVED = frozenset({"block1", "block2", "block3", "block5", "problems"})


def _message_rows(s: Session, file_name: str) -> Callable[[_Unit], tuple[Any, ...]]:
    """The settlement_messages row of a unit (its parsed JSON serialised once), received now, from ``file_name``."""
    now = bulk.timestamp(utcnow(), s)
    inbound = MessageDirection.INBOUND.value
    name = file_name[:500]
    status_value = {m: m.value for m in MessageStatus} | {m.value: m.value for m in MessageStatus}

    def row(u: _Unit) -> tuple[Any, ...]:
        inc = u.incoming
        return (
            inbound,
            u.message_type[:32],
            inc.sender if inc else None,
            ((inc.reference or "")[:35] or None) if inc else None,
            ((inc.related_reference or "")[:35] or None) if inc else None,
            u.instruction_id,
            status_value[u.status],
            (u.reason or "")[:500] or None,
            u.content_hash,
            u.raw,
            u.doc if u.matched_by is None else _with_key(u.doc, _MATCHED_BY[u.matched_by]),
            name,
            now,
        )

    return row


def _with_key(doc: str, item: str) -> str:
    """A JSON object's text with ``item`` (``"key":value`` as JSON) added last, exactly as if the key had been set
    on the dict before it was encoded."""
    return "{" + item + "}" if doc == "{}" else f"{doc[:-1]},{item}}}"


_MATCHED_BY = {way: f'"matched_by":{json.dumps(way)}' for way in ("reference", "fields")}


def _insert_messages(s: Session, rows: list[tuple[Any, ...]]) -> None:
    """The message rows in bulk (COPY on PostgreSQL, staged and one INSERT ... SELECT on SQLite)."""
    movements.insert_rows(s, "settlement_messages", _MESSAGE_COLUMNS, rows)


# --- outgoing -----------------------------------------------------------------------------------------------------


def load_outgoing(
    s: Session, ids: list[int] | None = None, *, sender_bic: str = mt54x.HOUSE_BIC
) -> list[tuple[SettlementInstruction, mt54x.OutgoingInstruction]]:
    """INSTRUCTED instructions (all, or ``ids``) with everything a message about them needs, in one query."""
    ours = aliased(StandingSettlementInstruction)
    theirs = aliased(StandingSettlementInstruction)
    q = (
        select(SettlementInstruction, Instrument, Counterparty, ours, theirs, Market)
        .join(Instrument, Instrument.id == SettlementInstruction.instrument_id)
        .join(Market, Market.id == Instrument.market_id)
        .join(Counterparty, Counterparty.id == SettlementInstruction.counterparty_id)
        .outerjoin(ours, ours.id == SettlementInstruction.our_ssi_id)
        .outerjoin(theirs, theirs.id == SettlementInstruction.their_ssi_id)
        .where(SettlementInstruction.status == S.INSTRUCTED.value)
        .order_by(SettlementInstruction.id)
    )
    if ids is not None:
        q = q.where(SettlementInstruction.id.in_(ids))
    out = []
    now = dt.datetime.now(dt.UTC)
    for instr, inst, cpty, our_ssi, their_ssi, market in s.execute(q):
        if our_ssi is None or their_ssi is None:
            raise ValidationFailed(
                f"Instruction {instr.instruction_ref} has no {'own' if our_ssi is None else 'counterparty'} SSI: "
                "a message cannot name the agents and accounts; fix the SSIs and regenerate it."
            )
        out.append(
            (
                instr,
                mt54x.OutgoingInstruction(
                    reference=instr.instruction_ref,
                    instruction_type=InstructionType(instr.instruction_type),
                    isin=inst.isin,
                    instrument_name=inst.name,
                    asset_class=inst.asset_class,
                    quantity=Decimal(instr.quantity),
                    settlement_amount=Decimal(instr.settlement_amount),
                    currency=instr.currency,
                    trade_date=instr.trade_date,
                    settlement_date=instr.intended_settlement_date,
                    safekeeping_account=our_ssi.safekeeping_account,
                    our_agent_bic=our_ssi.agent_bic,
                    place_of_settlement_bic=our_ssi.place_of_settlement_bic or market.csd_bic or "",
                    counterparty_bic=cpty.bic,
                    their_agent_bic=their_ssi.agent_bic,
                    their_safekeeping_account=their_ssi.safekeeping_account,
                    sender_bic=sender_bic,
                    prepared_at=now,
                ),
            )
        )
    return out


@dataclass
class OutgoingResult:
    written: int = 0
    already_sent: int = 0
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"written": self.written, "already_sent": self.already_sent, "files": self.files}


def render(fmt: str, items: list[mt54x.OutgoingInstruction]) -> list[tuple[str, bytes]]:
    """Message texts for ``items`` as (reference, bytes), each checked by its format's structure check."""
    out = []
    for o in items:
        if fmt == "mt":
            text = mt54x.write_mt54x(o)
            (msg,) = fin.parse_fin(text, file_name=o.reference)
            problems = mt54x.validate_mt54x(msg)
            data = text.replace("\n", "\r\n").encode("ascii")
        elif fmt == "sese023":
            data = iso20022.write_sese023(o)
            problems = iso20022.validate_sese023(data)
        else:
            raise ValidationFailed(f"Unknown message format {fmt!r}: use mt or sese023.")
        if problems:
            raise ValidationFailed(
                f"The {fmt} message for {o.reference} fails its structure check: {'; '.join(problems)}",
                [(o.reference, "", p) for p in problems],
            )
        out.append((o.reference, data))
    return out


def write_outgoing(
    db: Database,
    actor: Actor,
    *,
    fmt: Literal["mt", "sese023"],
    out_dir: Path | str,
    batch: bool = False,
    ids: list[int] | None = None,
    sender_bic: str = mt54x.HOUSE_BIC,
) -> OutgoingResult:
    """Write MT540-543 or sese.023 for INSTRUCTED items into ``out_dir`` and record them as OUTBOUND/SENT.

    One file per message (``<reference>.fin`` / ``.xml``) or, with ``batch``, one file holding them all. Everything
    is checked before the first file is written; the files are written before the transaction commits, so a
    failure leaves no SENT record without its file.
    """
    require(actor, Permission.RUN_PROCESSES)
    if fmt not in ("mt", "sese023"):
        raise ValidationFailed(f"Unknown message format {fmt!r}: use mt or sese023.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = OutgoingResult()
    with db.write() as s:
        loaded = load_outgoing(s, ids, sender_bic=sender_bic)
        rendered = render(fmt, [o for _, o in loaded])
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        ext = "fin" if fmt == "mt" else "xml"
        mtype = {InstructionType.RFP: "MT540", InstructionType.RVP: "MT541", InstructionType.DFP: "MT542"}
        hashes = {ref: _sha(_stable(data)) for ref, data in rendered}
        known = _existing_outbound(s, list(hashes.values()))
        files: list[tuple[Path, bytes]] = []
        if batch and rendered:
            if fmt == "mt":
                body = b"\r\n$".join(data for _, data in rendered)
            else:
                body = iso20022.write_sese023_batch([o for _, o in loaded])
            files.append((out / f"instructions-{fmt}-{stamp}.{ext}", body))
        else:
            files.extend((out / f"{ref}.{ext}", data) for ref, data in rendered)
        rows = []
        for (instr, o), (ref, data) in zip(loaded, rendered, strict=True):
            if hashes[ref] in known:
                result.already_sent += 1
                continue
            known.add(hashes[ref])
            rows.append(
                {
                    "direction": MessageDirection.OUTBOUND,
                    "message_type": "sese.023.001.09"
                    if fmt == "sese023"
                    else mtype.get(InstructionType(o.instruction_type), "MT543"),
                    "sender": o.sender_bic,
                    "reference": ref,
                    "related_reference": None,
                    "instruction_id": instr.id,
                    "status": MessageStatus.SENT,
                    "status_reason": None,
                    "content_hash": hashes[ref],
                    "raw": data.decode("utf-8"),
                    "parsed": {"format": fmt, "receiver": o.our_agent_bic, "batch": batch},
                    "file_name": (files[0][0].name if batch else f"{ref}.{ext}"),
                    "received_at": utcnow(),
                }
            )
        for path, data in files:
            path.write_bytes(data)
            result.files.append(str(path))
        for part in _chunks(rows, 5000):
            s.execute(insert(SettlementMessage), part)
        result.written = len(rows)
        if rows:
            audit.record(
                s,
                actor,
                "settlement_messages.send",
                "settlement_messages",
                None,
                after={
                    "format": fmt,
                    "batch": batch,
                    "messages": len(rows),
                    "files": [p.name for p, _ in files],
                },
                change=ChangeAction.BULK,
                summary={"action": "send", "rows": len(rows)},
            )
    return result


def _stable(data: bytes) -> bytes:
    """The message without its preparation time stamp, so writing the same instruction again hashes the same."""
    import re

    text = data.decode("utf-8")
    text = re.sub(r":98C::PREP//\d{14}", ":98C::PREP//", text)
    text = re.sub(r"\{CHK:[0-9A-F]{12}\}", "{CHK:}", text)
    return text.encode()


def _existing_outbound(s: Session, hashes: list[str]) -> set[str]:
    found: set[str] = set()
    for part in _chunks(sorted(set(hashes))):
        found.update(
            s.scalars(
                select(SettlementMessage.content_hash).where(
                    and_(
                        SettlementMessage.direction == MessageDirection.OUTBOUND.value,
                        SettlementMessage.content_hash.in_(part),
                    )
                )
            )
        )
    return found
