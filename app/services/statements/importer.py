"""Importing what banks, custodians and counterparties send into ``statements`` / ``statement_lines``.

``import_statements(db, actor, paths, fmt=None, profile=None)`` is what ``opsdesk import statements`` and the GUI
call (a path, or ``(file_name, bytes)`` for a file dropped on a pane). For each file, in order:

1. Permission IMPORT. The file is read, its format detected (``--format`` overrides): camt.052/053/054 and semt.002
   XML by their namespace, FIN messages by their type (MT940/942/950 → cash, MT535 → holdings; any other MT is
   refused naming what it is), bare MT940 by its fields, XLSX by its ZIP signature, CSV by extension or ``--profile``.
2. The reader (mt940.py, camt.py, mt535.py, semt002.py, csv_profiles.py) returns every statement of the file or
   refuses the file as a whole with file, line, field and reason: nothing of a refused file is written.
3. One transaction per file: each statement is checked and written, or recognised as already there:

   * **duplicate** (changes nothing): the same content (SHA-256 of what the statement says, in any file), or the
     same account, currency, statement reference, sequence number and date as one already imported (a re-sent
     statement; if its content differs, the report says so, and the first one stands);
   * **balance check**: opening balance + booked lines = closing balance, exactly (Decimal); a difference is kept
     in ``Statement.warnings`` (code BALANCE_MISMATCH) and counted; MT942 reports are checked against their
     :90D:/:90C: totals instead (ENTRY_TOTALS_MISMATCH);
   * **sequence** per account and currency (intraday reports excluded): against the statement before it (by its
     number — MT940 :28C: statement/page, camt ElctrncSeqNb/LglSeqNb — or by date when not numbered): a number
     skipped (SEQUENCE_GAP), a number or period already covered by another statement (SEQUENCE_OVERLAP), or an
     opening balance that does not continue the previous closing balance (BALANCE_CHAIN: a statement or booking is
     missing in between);
   * the account identifier is resolved to ``accounts.id`` where it matches an account code or one of our SSIs'
     cash or safekeeping accounts (ignoring spaces and case; also the part after a ``BLZ/`` or ``BIC/`` prefix).

   One audit entry and one change-feed row (``statements``, BULK) per file.

The result lists every file (imported, duplicate, refused) and every statement in it with its warnings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import exc, insert, select
from sqlalchemy.orm import Session

from app.models import Account, StandingSettlementInstruction, Statement, StatementLine
from app.models.enums import ChangeAction, StatementKind
from app.services import audit
from app.services.db import Database
from app.services.errors import ValidationFailed
from app.services.jsonable import to_jsonable
from app.services.permissions import Actor, Permission, require

from .parsed import ParsedStatement, StatementFileRefused, decode_text, refuse

FORMATS = ("mt940", "camt", "mt535", "semt002", "csv", "xlsx")
ZIP_MAGIC = b"PK\x03\x04"
SEQUENCE_CODES = ("SEQUENCE_GAP", "SEQUENCE_OVERLAP", "BALANCE_CHAIN")
BALANCE_CODES = ("BALANCE_MISMATCH", "ENTRY_TOTALS_MISMATCH")

Source = str | Path | tuple[str, bytes]


@dataclass
class StatementOutcome:
    """What became of one statement of a file."""

    index: int  # 1-based position in its file
    status: str  # imported, duplicate
    kind: str
    format: str
    account_identifier: str
    statement_date: dt.date
    statement_ref: str | None
    sequence_number: str | None
    currency: str | None
    opening_balance: Decimal | None
    closing_balance: Decimal | None
    lines: int
    source_line: int | None = None
    statement_id: int | None = None
    account_id: int | None = None
    duplicate_of: int | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return to_jsonable({k: getattr(self, k) for k in self.__dataclass_fields__})


@dataclass
class FileOutcome:
    file: str
    sha256: str
    format: str | None
    status: str  # imported, duplicate (every statement already there), refused
    reason: str | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)
    statements: list[StatementOutcome] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "format": self.format,
            "status": self.status,
            "reason": self.reason,
            "problems": self.problems,
            "statements": [s.as_dict() for s in self.statements],
        }


@dataclass
class StatementImportResult:
    files: list[FileOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def _statements(self, status: str | None = None) -> list[StatementOutcome]:
        return [s for f in self.files for s in f.statements if status is None or s.status == status]

    def counts(self) -> dict[str, int]:
        imported = self._statements("imported")
        codes = [w.get("code") for s in imported for w in s.warnings]
        return {
            "files": len(self.files),
            "files_imported": sum(f.status == "imported" for f in self.files),
            "files_duplicate": sum(f.status == "duplicate" for f in self.files),
            "files_refused": sum(f.status == "refused" for f in self.files),
            "statements_imported": len(imported),
            "statements_duplicate": len(self._statements("duplicate")),
            "lines_imported": sum(s.lines for s in imported),
            "warnings": len(codes),
            "balance_mismatches": sum(c in BALANCE_CODES for c in codes),
            "sequence_findings": sum(c in SEQUENCE_CODES for c in codes),
        }

    @property
    def refused(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "refused"]

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.counts(),
            "milliseconds": int(self.seconds * 1000),
            "results": [f.as_dict() for f in self.files],
        }


# --- reading and detecting ------------------------------------------------------------------------------------------


def _load(source: Source) -> tuple[str, bytes]:
    if isinstance(source, tuple):
        return source[0], source[1]
    path = Path(source)
    try:
        return path.name, path.read_bytes()
    except FileNotFoundError:
        raise refuse(path.name, f"there is no such file ({path})") from None
    except IsADirectoryError:
        raise refuse(path.name, "it is a folder, not a file") from None
    except OSError as err:
        raise refuse(path.name, f"it cannot be read ({err.strerror or err})") from None


def detect_format(data: bytes, file_name: str) -> str:
    """mt940, camt, mt535, semt002, csv or xlsx, from the content (and the extension for CSV)."""
    head = data[:8000].lstrip(b"\xef\xbb\xbf \t\r\n\x01")
    if data.startswith(ZIP_MAGIC):
        return "xlsx"
    if head.startswith(b"<"):
        if b"camt.05" in head:
            return "camt"
        if b"semt.002" in head:
            return "semt002"
        ns = re.search(rb'xmlns(?::\w+)?=["\']([^"\']+)', head)
        raise refuse(
            file_name,
            "it is XML but not a camt.052/053/054 or semt.002 statement"
            + (f" (namespace {ns.group(1).decode(errors='replace')})" if ns else ""),
        )
    text = head.decode("latin-1")
    mt = re.search(r"\{2:[IO](\d{3})", text)
    if mt:
        kind = mt.group(1)
        if kind in ("940", "942", "950"):
            return "mt940"
        if kind == "535":
            return "mt535"
        raise refuse(
            file_name, f"it holds an MT{kind}, {_MT_NAMES.get(kind, 'not a statement OpsDesk imports here')}"
        )
    if re.search(r"(?m)^:16R:GENL", text) and re.search(r"(?m)^:(93B|97A|35B):", text):
        return "mt535"
    if re.search(r"(?m)^:(20|25|28C?|60[FM]|61|62[FM]|86|NS):", text):
        return "mt940"
    if Path(file_name).suffix.lower() in (".csv", ".txt", ".tsv"):
        return "csv"
    raise refuse(
        file_name,
        "its format is not recognised (not MT940/942/950, MT535, camt, semt.002, CSV or XLSX); "
        "name it with --format",
    )


_MT_NAMES = {
    "536": "a statement of transactions (MT536), not imported as a statement yet",
    "537": "a statement of pending transactions / penalties (MT537), not a holdings or cash statement",
    "540": "a settlement instruction (receive free), not a statement: import it as a settlement message",
    "541": "a settlement instruction (receive against payment), not a statement: import it as a settlement message",
    "542": "a settlement instruction (deliver free), not a statement: import it as a settlement message",
    "543": "a settlement instruction (deliver against payment), not a statement: import it as a settlement message",
    "544": "a settlement confirmation, not a statement: import it as a settlement message",
    "545": "a settlement confirmation, not a statement: import it as a settlement message",
    "546": "a settlement confirmation, not a statement: import it as a settlement message",
    "547": "a settlement confirmation, not a statement: import it as a settlement message",
    "548": "a settlement status advice, not a statement: import it as a settlement message",
}


def read_statements(
    data: bytes, file_name: str, fmt: str, profile: str | None = None
) -> list[ParsedStatement]:
    """Parse one file into statements (no database). Raises :class:`StatementFileRefused`."""
    if fmt == "camt":
        from .camt import read_camt

        return read_camt(data, file_name)
    if fmt == "semt002":
        from .semt002 import read_semt002

        return read_semt002(data, file_name)
    if fmt in ("csv", "xlsx"):
        from .csv_profiles import read_table

        return read_table(data, file_name, fmt, profile)
    text = decode_text(data, file_name)
    if fmt == "mt535":
        from .mt535 import read_mt535

        return read_mt535(text, file_name)
    from .mt940 import read_mt940

    return read_mt940(text, file_name)


# --- the import -----------------------------------------------------------------------------------------------------


def import_statements(
    db: Database,
    actor: Actor,
    paths: Iterable[Source],
    *,
    fmt: str | None = None,
    profile: str | None = None,
) -> StatementImportResult:
    """Import statement files, one transaction each (see the module docstring)."""
    require(actor, Permission.IMPORT)
    if fmt is not None and fmt.lower() not in FORMATS:
        raise ValidationFailed(f"Unknown statement format '{fmt}'; use one of {', '.join(FORMATS)}.")
    if profile is not None:
        from .csv_profiles import load_profile

        load_profile(profile)  # an unknown profile is refused before any file is read
    started = time.perf_counter()
    result = StatementImportResult()
    for source in paths:
        result.files.append(import_one(db, actor, source, fmt=fmt, profile=profile))
    result.seconds = time.perf_counter() - started
    return result


def import_one(
    db: Database, actor: Actor, source: Source, *, fmt: str | None = None, profile: str | None = None
) -> FileOutcome:
    require(actor, Permission.IMPORT)
    name = source[0] if isinstance(source, tuple) else Path(source).name
    digest = ""
    chosen: str | None = None
    try:
        name, data = _load(source)
        digest = hashlib.sha256(data).hexdigest()
        chosen = (
            fmt
            or ("csv" if profile and not data.startswith(ZIP_MAGIC) else None)
            or detect_format(data, name)
        )
        chosen = chosen.lower()
        parsed = read_statements(data, name, chosen, profile)
    except StatementFileRefused as err:
        return FileOutcome(name, digest, chosen, "refused", err.reason, [p.as_dict() for p in err.items])
    for attempt in (1, 2):
        try:
            with db.write() as s:
                return _write_file(s, actor, name, digest, chosen, parsed)
        except exc.IntegrityError as err:
            # Another workstation imported one of these statements while we parsed: the second pass sees it.
            if attempt == 2 or "content_hash" not in str(err.orig or err):
                raise
    raise AssertionError("unreachable")


@dataclass
class _Known:
    """A statement already in the database (or written earlier in this file), as the checks need it."""

    id: int
    kind: str
    account_identifier: str
    currency: str | None
    statement_ref: str | None
    sequence_number: str | None
    statement_date: dt.date
    opening: Decimal | None
    closing: Decimal | None
    content_hash: str
    extra: dict[str, Any]

    @property
    def seq_key(self) -> tuple[int, int] | None:
        key = self.extra.get("seq_key")
        return (int(key[0]), int(key[1])) if key else None

    @property
    def intraday(self) -> bool:
        return bool(self.extra.get("intraday"))

    def period(self) -> tuple[dt.date | None, dt.date | None]:
        p = self.extra.get("period") or [None, None]
        return tuple(dt.date.fromisoformat(x) if x else None for x in p)  # type: ignore[return-value]

    def label(self) -> str:
        bits = [self.statement_ref or "", self.sequence_number or "", self.statement_date.isoformat()]
        return f"statement {' '.join(b for b in bits if b)} (id {self.id})"


def _write_file(
    s: Session, actor: Actor, name: str, digest: str, fmt: str, parsed: list[ParsedStatement]
) -> FileOutcome:
    accounts = sorted({p.account_identifier for p in parsed})
    known: list[_Known] = []
    for chunk in range(0, len(accounts), 500):
        rows = s.execute(
            select(
                Statement.id,
                Statement.kind,
                Statement.account_identifier,
                Statement.currency,
                Statement.statement_ref,
                Statement.sequence_number,
                Statement.statement_date,
                Statement.opening_balance,
                Statement.closing_balance,
                Statement.content_hash,
                Statement.extra,
            ).where(Statement.account_identifier.in_(accounts[chunk : chunk + 500]))
        ).all()
        known += [
            _Known(r[0], str(r[1].value if hasattr(r[1], "value") else r[1]), *r[2:10], r[10] or {})
            for r in rows
        ]
    hashes = [p.content_hash() for p in parsed]
    by_hash = {k.content_hash: k for k in known}
    missing = [h for h in hashes if h not in by_hash]
    for chunk in range(0, len(missing), 500):  # the same statement filed under another account spelling
        for sid, h in s.execute(
            select(Statement.id, Statement.content_hash).where(
                Statement.content_hash.in_(missing[chunk : chunk + 500])
            )
        ):
            by_hash.setdefault(h, _Known(sid, "", "", None, None, None, dt.date.min, None, None, h, {}))
    resolver = _AccountResolver(s)
    outcome = FileOutcome(name, digest, fmt, "imported")
    written: list[int] = []
    for index, (st, h) in enumerate(zip(parsed, hashes, strict=True), start=1):
        so = StatementOutcome(
            index=index,
            status="imported",
            kind=st.kind.value,
            format=st.format,
            account_identifier=st.account_identifier,
            statement_date=st.statement_date,
            statement_ref=st.statement_ref,
            sequence_number=st.sequence_number,
            currency=st.currency,
            opening_balance=st.opening_balance,
            closing_balance=st.closing_balance,
            lines=len(st.lines),
            source_line=st.source_line,
        )
        outcome.statements.append(so)
        same = by_hash.get(h) or _same_identity(st, known)
        if same is not None:
            so.status, so.duplicate_of, so.statement_id = "duplicate", same.id, same.id
            if same.content_hash != h:
                so.warnings.append(
                    {
                        "code": "DIFFERENT_CONTENT",
                        "message": f"{same.label()} has the same account, reference, number and date but different "
                        "content; it was kept and this one was not imported: ask the sender which is right",
                    }
                )
            continue
        warnings = list(st.notes) + _balance_findings(st) + _sequence_findings(st, known)
        account_id, note = resolver.resolve(st)
        if note:
            warnings.append(note)
        extra = dict(st.extra)
        if st.number is not None:
            extra["seq_key"] = [st.number, st.page or 1]
        if st.intraday:
            extra["intraday"] = True
        extra["period"] = [
            st.period_start.isoformat() if st.period_start else None,
            (st.period_end or st.statement_date).isoformat(),
        ]
        if st.source_line:
            extra["source_line"] = st.source_line
        row = Statement(
            kind=st.kind,
            format=st.format[:32],
            sender=(st.sender or None) and st.sender[:64],
            account_identifier=st.account_identifier[:64],
            account_id=account_id,
            statement_ref=st.statement_ref,
            sequence_number=(st.sequence_number or None) and st.sequence_number[:32],
            statement_date=st.statement_date,
            currency=st.currency,
            opening_balance=st.opening_balance,
            closing_balance=st.closing_balance,
            warnings=to_jsonable(warnings),
            extra=to_jsonable(extra),
            file_name=name[:500],
            content_hash=h,
            imported_by_id=actor.user_id,
        )
        s.add(row)
        s.flush()
        _insert_lines(s, row.id, st)
        so.status, so.statement_id, so.account_id, so.warnings = (
            "imported",
            row.id,
            account_id,
            to_jsonable(warnings),
        )
        written.append(row.id)
        k = _Known(
            row.id,
            st.kind.value,
            row.account_identifier,
            st.currency,
            st.statement_ref,
            row.sequence_number,
            st.statement_date,
            st.opening_balance,
            st.closing_balance,
            h,
            row.extra,
        )
        known.append(k)
        by_hash[h] = k
    if not written:
        outcome.status = "duplicate"
        return outcome
    audit.record(
        s,
        actor,
        "statements.import",
        "statements",
        written[0] if len(written) == 1 else None,
        after={
            "file": name,
            "sha256": digest,
            "format": fmt,
            "statement_ids": written,
            "duplicates": sum(x.status == "duplicate" for x in outcome.statements),
            "warnings": sum(len(x.warnings) for x in outcome.statements if x.status == "imported"),
        },
        change=ChangeAction.BULK,
        summary={"action": "statements.import", "file": name, "statements": len(written)},
    )
    return outcome


def _insert_lines(s: Session, statement_id: int, st: ParsedStatement) -> None:
    if not st.lines:
        return
    rows = []
    for n, ln in enumerate(st.lines, start=1):
        extra = dict(ln.extra)
        if ln.source_line:
            extra["source_line"] = ln.source_line
        if not ln.booked:
            extra["booked"] = False
        rows.append(
            {
                "statement_id": statement_id,
                "line_no": n,
                "reference": (ln.reference or None) and ln.reference[:64],
                "related_reference": (ln.related_reference or None) and ln.related_reference[:64],
                "value_date": ln.value_date,
                "entry_date": ln.entry_date,
                "trade_date": ln.trade_date,
                "amount": ln.amount,
                "currency": ln.currency,
                "isin": ln.isin,
                "quantity": ln.quantity,
                "price": ln.price,
                "side": ln.side,
                "counterparty": (ln.counterparty or None) and ln.counterparty[:200],
                "account_identifier": (ln.account_identifier or None) and ln.account_identifier[:64],
                "description": ln.description,
                "extra": to_jsonable(extra),
            }
        )
    for start in range(0, len(rows), 10_000):
        s.execute(insert(StatementLine), rows[start : start + 10_000])


# --- checks ---------------------------------------------------------------------------------------------------------


def _fmt(value: Decimal | None) -> str:
    return (
        "none"
        if value is None
        else f"{value:,.2f}"
        if value == value.quantize(Decimal("0.01"))
        else f"{value:,}"
    )


def _balance_findings(st: ParsedStatement) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if st.kind != StatementKind.CASH:
        return out
    if st.opening_balance is not None and st.closing_balance is not None:
        moved = sum((ln.amount or Decimal(0) for ln in st.lines if ln.booked), Decimal(0))
        expected = st.opening_balance + moved
        if expected != st.closing_balance:
            out.append(
                {
                    "code": "BALANCE_MISMATCH",
                    "message": f"opening balance {_fmt(st.opening_balance)} + booked lines {_fmt(moved)} = "
                    f"{_fmt(expected)}, but the closing balance is {_fmt(st.closing_balance)} "
                    f"(difference {_fmt(st.closing_balance - expected)})",
                    "opening": st.opening_balance,
                    "lines_total": moved,
                    "closing": st.closing_balance,
                    "difference": st.closing_balance - expected,
                }
            )
    for mark, (count, total) in st.entry_totals.items():
        lines = [ln.amount for ln in st.lines if ln.amount is not None and (ln.amount < 0) == (mark == "D")]
        actual = abs(sum(lines, Decimal(0)))
        if len(lines) != count or actual != total:
            word = "debit" if mark == "D" else "credit"
            out.append(
                {
                    "code": "ENTRY_TOTALS_MISMATCH",
                    "message": f"the report's {word} total :90{mark}: says {count} entries of {_fmt(total)}; "
                    f"its lines have {len(lines)} of {_fmt(actual)}",
                }
            )
    return out


def _same_identity(st: ParsedStatement, known: Sequence[_Known]) -> _Known | None:
    """A statement already imported with the same account, currency, reference, number and date (a re-send)."""
    if not st.sequence_number or st.number is None:
        return None
    for k in known:
        if (
            k.kind == st.kind.value
            and k.account_identifier == st.account_identifier
            and k.currency == st.currency
            and k.statement_ref == st.statement_ref
            and k.sequence_number == st.sequence_number
            and k.statement_date == st.statement_date
        ):
            return k
    return None


def _sequence_findings(st: ParsedStatement, known: Sequence[_Known]) -> list[dict[str, Any]]:
    """Gap, overlap and balance chain against the statement before this one for the same account and currency."""
    if st.intraday or st.kind != StatementKind.CASH:
        return []
    family = [
        k
        for k in known
        if not k.intraday
        and k.kind == st.kind.value
        and k.account_identifier == st.account_identifier
        and k.currency == st.currency
    ]
    if not family:
        return []
    out: list[dict[str, Any]] = []
    prev: _Known | None = None
    key = (st.number, st.page or 1) if st.number is not None else None
    numbered = [k for k in family if k.seq_key is not None]
    if key is not None and numbered:
        same = [k for k in numbered if k.seq_key == key]
        lower = [k for k in numbered if k.seq_key < key]  # type: ignore[operator]
        if same:
            out.append(
                {
                    "code": "SEQUENCE_OVERLAP",
                    "message": f"statement number {st.sequence_number} was already received: {same[0].label()}",
                    "other_statement_id": same[0].id,
                }
            )
        elif lower:
            prev = max(lower, key=lambda k: (k.seq_key, k.id))  # type: ignore[arg-type, return-value]
            pn, pp = prev.seq_key  # type: ignore[misc]
            if key not in ((pn, pp + 1), (pn + 1, 1)):
                missing = f"{pn + 1}" if key[0] > pn + 1 and key[0] == pn + 2 else f"{pn + 1} to {key[0] - 1}"
                what = (
                    f"statement number{'s' if key[0] > pn + 2 else ''} {missing}"
                    if key[0] > pn + 1
                    else f"page{'s' if key[1] > pp + 2 else ''} {pp + 1}"
                    + (f" to {key[1] - 1}" if key[1] > pp + 2 else "")
                    + f" of statement {pn}"
                )
                out.append(
                    {
                        "code": "SEQUENCE_GAP",
                        "message": f"{what} not received: the previous statement of this account is "
                        f"{prev.label()}, this one is number {st.sequence_number}",
                        "previous_statement_id": prev.id,
                    }
                )
        elif key[0] == 1 and any(k.statement_date < st.statement_date for k in numbered):
            prev = None  # the bank restarted its numbering (a new year): nothing is missing
    if prev is None and (key is None or not numbered):
        start = st.period_start
        earlier = [
            k
            for k in family
            if k.statement_date < st.statement_date
            or (
                k.statement_date == st.statement_date
                and (k.period()[0] or k.statement_date) < (start or st.statement_date)
            )
        ]
        if earlier:
            prev = max(earlier, key=lambda k: (k.statement_date, k.id))
            prev_start, prev_end = prev.period()
            if start is not None and prev_end is not None and start < prev_end:
                out.append(
                    {
                        "code": "SEQUENCE_OVERLAP",
                        "message": f"the period from {start} overlaps {prev.label()}, which runs to {prev_end}",
                        "other_statement_id": prev.id,
                    }
                )
    if (
        prev is not None
        and prev.closing is not None
        and st.opening_balance is not None
        and prev.closing != st.opening_balance
    ):
        out.append(
            {
                "code": "BALANCE_CHAIN",
                "message": f"opening balance {_fmt(st.opening_balance)} does not continue the closing balance "
                f"{_fmt(prev.closing)} of {prev.label()}: a statement or a booking is missing in between",
                "previous_statement_id": prev.id,
                "difference": st.opening_balance - prev.closing,
            }
        )
    return out


# --- accounts -------------------------------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"[\s\-.]", "", text).upper()


class _AccountResolver:
    """account_identifier → accounts.id via account codes and our SSIs' cash and safekeeping accounts."""

    def __init__(self, s: Session) -> None:
        self._s = s
        self._maps: dict[str, dict[str, set[int]]] | None = None

    def _load(self) -> dict[str, dict[str, set[int]]]:
        cash: dict[str, set[int]] = {}
        safe: dict[str, set[int]] = {}
        codes: dict[str, set[int]] = {}
        for aid, code in self._s.execute(select(Account.id, Account.code)):
            codes.setdefault(_norm(code), set()).add(aid)
        for aid, c, k in self._s.execute(
            select(
                StandingSettlementInstruction.account_id,
                StandingSettlementInstruction.cash_account,
                StandingSettlementInstruction.safekeeping_account,
            ).where(StandingSettlementInstruction.account_id.is_not(None))
        ):
            cash.setdefault(_norm(c), set()).add(aid)
            safe.setdefault(_norm(k), set()).add(aid)
        return {"codes": codes, "cash": cash, "safe": safe}

    def resolve(self, st: ParsedStatement) -> tuple[int | None, dict[str, Any] | None]:
        if self._maps is None:
            self._maps = self._load()
        m = self._maps
        raw = st.account_identifier
        candidates = [_norm(raw)]
        if "/" in raw:
            candidates.append(_norm(raw.rstrip("/").split("/")[-1]))
        table = m["cash"] if st.kind == StatementKind.CASH else m["safe"]
        found: set[int] = set()
        for c in candidates:
            found |= table.get(c, set()) | m["codes"].get(c, set())
            if found:
                break
        if len(found) == 1:
            return next(iter(found)), None
        if len(found) > 1:
            return None, {
                "code": "ACCOUNT_AMBIGUOUS",
                "message": f"account '{raw}' matches {len(found)} of our accounts (ids "
                f"{', '.join(str(i) for i in sorted(found))}); link it by hand",
            }
        return None, None


def list_statements(db: Database, actor: Actor, *, limit: int = 200) -> list[dict[str, Any]]:
    """The latest statements (newest first) with their line counts and warnings, for ``opsdesk statements list``."""
    from sqlalchemy import func

    require(actor, Permission.VIEW)
    with db.read() as s:
        counts = (
            select(StatementLine.statement_id, func.count().label("n"))
            .group_by(StatementLine.statement_id)
            .subquery()
        )
        rows = s.execute(
            select(Statement, counts.c.n)
            .outerjoin(counts, counts.c.statement_id == Statement.id)
            .order_by(Statement.id.desc())
            .limit(limit)
        ).all()
        return [
            {
                "id": st.id,
                "kind": st.kind.value,
                "format": st.format,
                "account_identifier": st.account_identifier,
                "account_id": st.account_id,
                "statement_ref": st.statement_ref,
                "sequence_number": st.sequence_number,
                "statement_date": st.statement_date,
                "currency": st.currency,
                "opening_balance": st.opening_balance,
                "closing_balance": st.closing_balance,
                "lines": int(n or 0),
                "warnings": st.warnings or [],
                "file_name": st.file_name,
            }
            for st, n in rows
        ]
