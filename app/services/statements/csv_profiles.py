"""Counterparty trade confirmations and custodian position files as CSV or XLSX, read through a mapping profile.

A profile (like trade capture's, ``app/services/capture/profiles.py``) names the column for each canonical field and
says how the sender writes numbers, dates and sides. Its ``kind`` says what the file is:

* ``TRADE_CONFIRMATIONS``: one line per trade the counterparty confirms. Required: ``reference`` (theirs),
  ``trade_date``, ``isin``, ``side``, ``quantity``, ``price``; optional ``our_reference`` (our trade reference,
  kept as the line's related reference), ``settlement_date``, ``amount`` (settlement amount), ``currency``,
  ``counterparty``, ``account``. One statement per counterparty and trade date.
* ``HOLDINGS``: one line per position. Required: ``account`` (safekeeping account), ``isin``, ``quantity``,
  ``as_of`` (the position date); optional ``price``, ``value``, ``currency``, ``description``. One statement per
  account and date.

Built-in profiles: ``confirmations`` and ``positions`` (OpsDesk's own field names as headers, comma-separated
UTF-8, ISO dates, '.' decimals), ``broker_confirm_us`` (a US broker's confirmation export) and ``custodian_de`` (a
German custodian's ``Depotauszug`` export: ';'-separated Windows-1252, decimal comma, day-first dates). A profile can
also be a JSON file with the keys of :class:`StatementProfile`.

A file is imported whole or not at all: a line with a value that is not what its column should hold (a date that is
no date, an ISIN with a wrong check digit, a side the profile does not know) refuses the file, and the refusal lists
every such line with its line number (the header is line 1; for XLSX, the worksheet row) and column.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from stdnum import isin as stdnum_isin

from app.models.enums import StatementKind
from app.services.capture.profiles import lookup_profile
from app.services.errors import ValidationFailed

from .parsed import ParsedLine, ParsedStatement, Problem, StatementFileRefused, refuse, too_precise

CONFIRMATION_FIELDS = (
    "reference",
    "our_reference",
    "trade_date",
    "settlement_date",
    "isin",
    "side",
    "quantity",
    "price",
    "amount",
    "currency",
    "counterparty",
    "account",
)
CONFIRMATION_REQUIRED = ("reference", "trade_date", "isin", "side", "quantity", "price")
HOLDING_FIELDS = ("account", "isin", "quantity", "price", "value", "currency", "as_of", "description")
HOLDING_REQUIRED = ("account", "isin", "quantity", "as_of")
MAX_PROBLEMS = 50
_SIDES = {"BUY": "BUY", "B": "BUY", "SELL": "SELL", "S": "SELL"}


@dataclass(frozen=True)
class StatementProfile:
    """How one sender writes its confirmation or position files."""

    name: str
    kind: str  # TRADE_CONFIRMATIONS or HOLDINGS
    description: str
    columns: Mapping[str, str]  # canonical field -> the sender's column header
    delimiter: str = ","
    encoding: str = "utf-8-sig"
    decimal: str = "."
    thousands: str | None = None
    date_format: str = "%Y-%m-%d"
    side_codes: Mapping[str, str] = field(default_factory=lambda: dict(_SIDES))
    sheet: str | None = None
    sender: str | None = None  # default counterparty / custodian when the file has no such column

    def as_dict(self) -> dict[str, Any]:
        return {
            f.name: (dict(v) if isinstance(v := getattr(self, f.name), Mapping) else v) for f in fields(self)
        }


BUILTIN: dict[str, StatementProfile] = {
    p.name: p
    for p in (
        StatementProfile(
            name="confirmations",
            kind="TRADE_CONFIRMATIONS",
            description="counterparty confirmations in OpsDesk's own layout: field names as headers, ISO dates",
            columns={f: f for f in CONFIRMATION_FIELDS},
        ),
        StatementProfile(
            name="positions",
            kind="HOLDINGS",
            description="custodian positions in OpsDesk's own layout: field names as headers, ISO dates",
            columns={f: f for f in HOLDING_FIELDS},
        ),
        StatementProfile(
            name="broker_confirm_us",
            kind="TRADE_CONFIRMATIONS",
            description="US broker confirmation export: month-first dates, quoted '1,000' thousands, B/S sides",
            columns={
                "reference": "Confirm #",
                "our_reference": "Client Ref",
                "trade_date": "Trade Date",
                "settlement_date": "Settle Date",
                "isin": "ISIN",
                "side": "B/S",
                "quantity": "Quantity",
                "price": "Price",
                "amount": "Net Amount",
                "currency": "Ccy",
                "counterparty": "Broker",
                "account": "Account",
            },
            thousands=",",
            date_format="%m/%d/%Y",
        ),
        StatementProfile(
            name="custodian_de",
            kind="HOLDINGS",
            description="German custodian position export (Depotauszug): ';'-separated Windows-1252, decimal comma, "
            "'.' thousands, day-first dates",
            columns={
                "account": "Depot",
                "isin": "ISIN",
                "description": "Bezeichnung",
                "quantity": "Bestand",
                "price": "Kurs",
                "value": "Kurswert",
                "currency": "Währung",
                "as_of": "Stichtag",
            },
            delimiter=";",
            encoding="cp1252",
            decimal=",",
            thousands=".",
            date_format="%d.%m.%Y",
        ),
    )
}


def known_profiles() -> list[str]:
    return sorted(BUILTIN)


def _check(p: StatementProfile, origin: str) -> StatementProfile:
    if p.kind not in ("TRADE_CONFIRMATIONS", "HOLDINGS"):
        raise ValidationFailed(
            f"Profile {origin}: kind must be TRADE_CONFIRMATIONS or HOLDINGS, not '{p.kind}'."
        )
    allowed, required = (
        (CONFIRMATION_FIELDS, CONFIRMATION_REQUIRED)
        if p.kind == "TRADE_CONFIRMATIONS"
        else (HOLDING_FIELDS, HOLDING_REQUIRED)
    )
    unknown = sorted(set(p.columns) - set(allowed))
    missing = [f for f in required if f not in p.columns]
    if unknown or missing:
        raise ValidationFailed(
            f"Profile {origin}: "
            + (f"unknown fields {', '.join(unknown)}; " if unknown else "")
            + (f"required fields not mapped: {', '.join(missing)}; " if missing else "")
            + f"the fields are {', '.join(allowed)}."
        )
    return p


def load_profile(name_or_path: str | None, kind: str | None = None) -> StatementProfile:
    """A built-in profile by name (default by kind: ``confirmations``), or a JSON profile file by path."""
    key = (name_or_path or ("positions" if kind == "HOLDINGS" else "confirmations")).strip()
    fields_ = {f.name for f in fields(StatementProfile)}
    return lookup_profile(
        key, BUILTIN, StatementProfile, fields_, _check, what="statement", say_allowed=False
    )


for _p in BUILTIN.values():
    _check(_p, f"'{_p.name}'")


# --- reading ----------------------------------------------------------------------------------------------------------


def _rows_csv(data: bytes, name: str, p: StatementProfile) -> tuple[list[str], list[tuple[int, list[str]]]]:
    if data.startswith(b"PK\x03\x04"):
        raise refuse(name, "it is a spreadsheet (XLSX), not CSV; choose --format xlsx")
    if b"\x00" in data[:100_000]:
        raise refuse(name, "it is binary, not a CSV text file")
    try:
        text = data.decode(p.encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise refuse(
            name, f"it is not valid {p.encoding} text (byte 0x{data[err.start]:02x})", line
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=p.delimiter)
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    for values in reader:
        line = reader.line_num
        if header is None:
            if any(v.strip() for v in values):
                header = [v.strip().lstrip("\ufeff") for v in values]
            continue
        rows.append((line, values))
    if header is None:
        raise refuse(name, "the file is empty")
    return header, rows


def _rows_xlsx(data: bytes, name: str, p: StatementProfile) -> tuple[list[str], list[tuple[int, list[str]]]]:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as err:
        raise refuse(name, f"it is not a readable XLSX workbook ({err})") from None
    try:
        ws = wb[p.sheet] if p.sheet else wb.worksheets[0]
    except KeyError:
        raise refuse(name, f"it has no worksheet named '{p.sheet}'") from None
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for n, values in enumerate(ws.iter_rows(values_only=True), start=1):
        cells = [
            "" if v is None else (v.date().isoformat() if isinstance(v, dt.datetime) else str(v))
            for v in values
        ]
        if header is None:
            if any(c.strip() for c in cells):
                header = [c.strip() for c in cells]
            continue
        rows.append((n, cells))
    wb.close()
    if header is None:
        raise refuse(name, "the worksheet is empty")
    return header, rows


def _number(text: str, p: StatementProfile) -> Decimal:
    t = text.strip().replace(" ", "")
    if p.thousands:
        t = t.replace(p.thousands, "")
    if p.decimal != ".":
        t = t.replace(p.decimal, ".")
    value = Decimal(t)
    if not value.is_finite():
        raise InvalidOperation
    return value


def _date(text: str, p: StatementProfile) -> dt.date:
    t = text.strip()
    try:
        return dt.datetime.strptime(t, p.date_format).date()
    except ValueError:
        return dt.date.fromisoformat(t[:10])  # XLSX date cells arrive as ISO text


class _Cells:
    """One data line's values, read field by field; every problem is collected with its line and column."""

    def __init__(self, p: StatementProfile, pos: dict[str, int], line: int, values: list[str]) -> None:
        self.p, self.pos, self.line, self.values = p, pos, line, values
        self.bad: list[Problem] = []

    def get(self, key: str) -> str:
        i = self.pos.get(key)
        return self.values[i].strip() if i is not None and i < len(self.values) else ""

    def _col(self, key: str) -> str:
        return self.p.columns.get(key, key)

    def num(self, key: str, decimals: int, required: bool = False) -> Decimal | None:
        raw = self.get(key)
        if not raw:
            if required:
                self.bad.append(Problem(self.line, self._col(key), f"{key} is empty"))
            return None
        try:
            v = _number(raw, self.p)
        except (InvalidOperation, ValueError):
            self.bad.append(Problem(self.line, self._col(key), f"'{raw}' is not a number"))
            return None
        if too_precise(v, decimals):
            self.bad.append(Problem(self.line, self._col(key), f"'{raw}' has more than {decimals} decimals"))
        return v

    def day(self, key: str, required: bool = False) -> dt.date | None:
        raw = self.get(key)
        if not raw:
            if required:
                self.bad.append(Problem(self.line, self._col(key), f"{key} is empty"))
            return None
        try:
            return _date(raw, self.p)
        except ValueError:
            self.bad.append(
                Problem(self.line, self._col(key), f"'{raw}' is not a date ({self.p.date_format})")
            )
            return None


def read_table(data: bytes, file_name: str, fmt: str, profile_name: str | None) -> list[ParsedStatement]:
    """Statements from a CSV/XLSX confirmation or position file, or :class:`StatementFileRefused`."""
    p = load_profile(profile_name)
    reader = _rows_xlsx if fmt == "xlsx" else _rows_csv
    if profile_name is None:
        # No profile named: the built-in profile whose required columns the header has (own layouts first).
        for candidate in ("confirmations", "positions", "broker_confirm_us", "custodian_de"):
            c = BUILTIN[candidate]
            try:
                header, _ = reader(data, file_name, c)
            except StatementFileRefused:
                continue
            heads = {h.casefold() for h in header}
            required = CONFIRMATION_REQUIRED if c.kind == "TRADE_CONFIRMATIONS" else HOLDING_REQUIRED
            if all(c.columns[f].casefold() in heads for f in required):
                p = c
                break
    header, rows = reader(data, file_name, p)
    norm = [h.casefold() for h in header]
    pos: dict[str, int] = {}
    for canonical, title in p.columns.items():
        if title.casefold() in norm:
            pos[canonical] = norm.index(title.casefold())
    required = CONFIRMATION_REQUIRED if p.kind == "TRADE_CONFIRMATIONS" else HOLDING_REQUIRED
    missing = [f"{p.columns[f]} ({f})" for f in required if f not in pos]
    if missing:
        raise refuse(
            file_name, f"the header lacks the columns {', '.join(missing)} that profile '{p.name}' needs", 1
        )
    problems: list[Problem] = []
    groups: dict[tuple[str, dt.date], list[ParsedLine]] = {}

    def get(values: list[str], key: str) -> str:
        i = pos.get(key)
        return values[i].strip() if i is not None and i < len(values) else ""

    for line, values in rows:
        if not any(v.strip() for v in values):
            continue
        cells = _Cells(p, pos, line, values)
        bad, num, day = cells.bad, cells.num, cells.day

        def col(key: str) -> str:
            return p.columns.get(key, key)

        code = get(values, "isin").upper()
        if not stdnum_isin.is_valid(code):
            bad.append(
                Problem(line, col("isin"), f"'{code}' is not a valid ISIN" if code else "isin is empty")
            )
        currency = get(values, "currency").upper() or None
        if currency and not (len(currency) == 3 and currency.isalpha()):
            bad.append(Problem(line, col("currency"), f"'{currency}' is not a currency code"))
        if p.kind == "TRADE_CONFIRMATIONS":
            ref = get(values, "reference")
            if not ref:
                bad.append(Problem(line, col("reference"), "reference is empty"))
            side_raw = get(values, "side")
            side = {k.upper(): v for k, v in p.side_codes.items()}.get(side_raw.upper())
            if side is None:
                bad.append(
                    Problem(
                        line,
                        col("side"),
                        f"'{side_raw}' is not a side this profile knows ({', '.join(sorted(p.side_codes))})",
                    )
                )
            trade_date = day("trade_date", True)
            qty = num("quantity", 6, True)
            price = num("price", 8, True)
            amount = num("amount", 4)
            settle = day("settlement_date")
            party = get(values, "counterparty") or p.sender or ""
            if not party:
                bad.append(
                    Problem(
                        line, col("counterparty"), "no counterparty (no column, and the profile names none)"
                    )
                )
            if bad:
                problems += bad
                continue
            assert trade_date is not None
            groups.setdefault((party, trade_date), []).append(
                ParsedLine(
                    reference=ref[:64],
                    related_reference=get(values, "our_reference")[:64] or None,
                    trade_date=trade_date,
                    value_date=settle,
                    isin=code,
                    side=side,
                    quantity=qty,
                    price=price,
                    amount=amount,
                    currency=currency,
                    counterparty=party[:200],
                    account_identifier=get(values, "account")[:64] or None,
                    source_line=line,
                )
            )
        else:
            account = get(values, "account")
            if not account:
                bad.append(Problem(line, col("account"), "account is empty"))
            as_of = day("as_of", True)
            qty = num("quantity", 6, True)
            price = num("price", 8)
            value = num("value", 4)
            if bad:
                problems += bad
                continue
            assert as_of is not None
            groups.setdefault((account, as_of), []).append(
                ParsedLine(
                    isin=code,
                    quantity=qty,
                    price=price,
                    amount=value,
                    currency=currency,
                    account_identifier=account[:64],
                    description=get(values, "description") or None,
                    value_date=as_of,
                    source_line=line,
                )
            )
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise StatementFileRefused(file_name, problems[:MAX_PROBLEMS])
    if not groups:
        raise refuse(file_name, "it has a header but no data lines")
    kind = StatementKind(p.kind)
    stem = Path(file_name).stem
    out: list[ParsedStatement] = []
    for (account, day_), lines in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        currencies = {ln.currency for ln in lines if ln.currency}
        out.append(
            ParsedStatement(
                kind=kind,
                format=f"{fmt.upper()}:{p.name}"[:32],
                account_identifier=account[:64],
                statement_date=day_,
                statement_ref=f"{stem}:{account}:{day_.isoformat()}"[:64],
                sender=(p.sender or (account if kind == StatementKind.TRADE_CONFIRMATIONS else None)),
                currency=next(iter(currencies)) if len(currencies) == 1 else None,
                lines=lines,
                extra={"profile": p.name},
                source_line=lines[0].source_line,
                period_end=day_,
            )
        )
    return out
