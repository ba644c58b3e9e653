"""camt.052 / camt.053 / camt.054 (ISO 20022 bank-to-customer cash messages), read with lxml.

Every version from .001.01 to .001.08 is read by the same code: elements are found by their local name, so the
namespace (which names the version) does not matter, and the few renamings between versions are handled where they
occur (``BIC``/``BICFI``, ``Sts`` as text or ``Sts/Cd``, ``PrtryAcct`` in version 1, ``Pty`` around party names in
version 8). The document may be wrapped with its business application header (``AppHdr``, head.001) in any root
element; the sender then comes from the header's ``Fr`` BIC.

Validation: where a schema for the exact message version ships with OpsDesk (``xsd/``: camt.053.001.02 and
camt.054.001.02) the ``Document`` is validated with xmlschema first and a file that fails is refused with the
schema's reason and line (``camt053.v2.wrong.xml``: a statement message without a statement). Other versions are
checked by the rules below, which a schema would also enforce: each statement names its account; amounts are
non-negative decimals with a currency; credit/debit indicators are CRDT or DBIT; dates are dates.

What becomes what:

* camt.053 ``Stmt`` → a CASH statement; opening balance = ``OPBD`` (else ``PRCD``), closing = ``CLBD``; every
  balance (all types: OPAV, CLAV, ITBD, FWAV, ...) is kept in ``extra["balances"]``.
* camt.054 ``Ntfctn`` → a CASH statement without balances (debit/credit notifications).
* camt.052 ``Rpt`` → **imported**, as an *intraday* CASH statement (``intraday``: left out of the statement sequence,
  like MT942, its MT equivalent). Why import rather than refuse: banks send intraday reports for cash management,
  and the clerk reconciling today's settlements needs to see the bookings before the end-of-day statement arrives;
  the format (``camt.052...``) and ``extra["intraday"]`` tell the reconciliation to prefer the camt.053 for the same
  day rather than count the bookings twice. Closing balance = ``CLBD``, else the last interim booked ``ITBD``.
* ``Ntry`` → one line: signed amount (CRDT +, DBIT −; a reversal's indicator already gives its direction), booking
  and value dates, the end-to-end id (else the entry or servicer reference) as reference, the servicer reference as
  related reference, the counterparty (debtor of a credit, creditor of a debit), remittance text as description.
  Only *booked* entries (``Sts`` BOOK) move the booked balance; pending and information entries are kept as lines
  but not counted in the balance check.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

import xmlschema
from lxml import etree

from app.models.enums import StatementKind

from .parsed import ParsedLine, ParsedStatement, Problem, StatementFileRefused, refuse, too_precise

XSD_DIR = Path(__file__).with_name("xsd")
_NS_RE = re.compile(r"urn:iso:std:iso:20022:tech:xsd:(camt\.05[234]\.\d{3}\.\d{2})$")
_CONTAINERS = {"053": ("Stmt",), "052": ("Rpt",), "054": ("Ntfctn",)}


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _kids(el: etree._Element | None, name: str) -> list[etree._Element]:
    if el is None:
        return []
    return [c for c in el if isinstance(c.tag, str) and _local(c) == name]


def _find(el: etree._Element | None, *path: str) -> etree._Element | None:
    for name in path:
        if el is None:
            return None
        found = _kids(el, name)
        el = found[0] if found else None
    return el


def _text(el: etree._Element | None, *path: str) -> str | None:
    node = _find(el, *path) if path else el
    if node is None or node.text is None:
        return None
    value = " ".join(node.text.split())
    return value or None


def _descendant(el: etree._Element | None, *names: str) -> etree._Element | None:
    if el is None:
        return None
    for node in el.iter():
        if isinstance(node.tag, str) and _local(node) in names:
            return node
    return None


@cache
def _schema(version: str) -> xmlschema.XMLSchema | None:
    path = XSD_DIR / f"{version}.xsd"
    return xmlschema.XMLSchema(str(path)) if path.is_file() else None


def looks_like_camt(data: bytes) -> bool:
    head = data[:4000]
    return b"<" in head and b"camt.05" in head


def message_version(data: bytes) -> str | None:
    m = re.search(rb"urn:iso:std:iso:20022:tech:xsd:(camt\.05[234]\.\d{3}\.\d{2})", data[:8000])
    return m.group(1).decode() if m else None


def read_camt(data: bytes, file_name: str) -> list[ParsedStatement]:
    """Every statement (report, notification) in a camt.052/053/054 file, or :class:`StatementFileRefused`."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as err:
        line = err.lineno if hasattr(err, "lineno") else None
        raise refuse(file_name, f"it is not well-formed XML ({err.msg})", line) from None
    document = root if _local(root) == "Document" else _descendant(root, "Document")
    if document is None:
        raise refuse(file_name, "there is no ISO 20022 <Document> in it", root.sourceline)
    ns = etree.QName(document).namespace or ""
    m = _NS_RE.match(ns)
    if m is None:
        raise refuse(
            file_name,
            f"it is not a camt.052/053/054 bank-to-customer message (namespace '{ns or 'none'}')",
            document.sourceline,
        )
    version = m.group(1)
    schema = _schema(version)
    if schema is not None:
        problems = [
            Problem(
                getattr(e, "sourceline", None),
                (e.path or "").replace(f"{{{ns}}}", ""),
                f"it does not follow the {version} schema: {_schema_reason(e, ns)}",
            )
            for e in list(schema.iter_errors(etree.ElementTree(document)))[:20]
        ]
        if problems:
            raise StatementFileRefused(file_name, problems)
    kind = version.split(".")[1]
    body = next((c for c in document if isinstance(c.tag, str)), None)
    containers = [c for name in _CONTAINERS[kind] for c in _kids(body, name)]
    if not containers:
        what = {"053": "statement (<Stmt>)", "052": "report (<Rpt>)", "054": "notification (<Ntfctn>)"}[kind]
        raise refuse(
            file_name, f"the {version} message holds no {what}", body.sourceline if body is not None else None
        )
    header = _find(body, "GrpHdr")
    app_sender = (
        _text(_descendant(_descendant(root, "AppHdr"), "Fr"), "FIId", "FinInstnId", "BICFI")
        if root is not document
        else None
    )
    problems: list[Problem] = []
    statements: list[ParsedStatement] = []
    for n, el in enumerate(containers, start=1):
        try:
            statements.append(_statement(el, version, kind, header, app_sender, n))
        except _Bad as bad:
            problems.append(Problem(bad.line, bad.field, bad.reason))
    if problems:
        raise StatementFileRefused(file_name, problems)
    return statements


def _schema_reason(err: Any, ns: str) -> str:
    reason = (getattr(err, "reason", None) or str(err)).replace(f"{{{ns}}}", "")
    return reason.rstrip(".")


class _Bad(Exception):
    def __init__(self, line: int | None, field: str, reason: str) -> None:
        super().__init__(reason)
        self.line, self.field, self.reason = line, field, reason


def _date(el: etree._Element | None, what: str) -> dt.date | None:
    """<X><Dt>2024-01-31</Dt></X> or <X><DtTm>2024-01-31T10:00:00+01:00</DtTm></X> (the date as written)."""
    if el is None:
        return None
    node = _find(el, "Dt") if _find(el, "Dt") is not None else _find(el, "DtTm")
    if node is None and _local(el) in ("Dt", "DtTm", "CreDtTm", "FrDtTm", "ToDtTm", "FrDt", "ToDt"):
        node = el
    text = _text(node)
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise _Bad(node.sourceline, what, f"'{text}' is not a date") from None


def _money(amt: etree._Element | None, what: str) -> tuple[Decimal, str | None]:
    if amt is None:
        raise _Bad(None, what, "the amount is missing")
    text = _text(amt) or ""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _Bad(amt.sourceline, what, f"amount '{text}' is not a number") from None
    if not value.is_finite() or value < 0:
        raise _Bad(
            amt.sourceline, what, f"amount '{text}' must be a non-negative number (the sign is CdtDbtInd)"
        )
    if too_precise(value):
        raise _Bad(amt.sourceline, what, f"amount '{text}' has more decimals than can be stored exactly (4)")
    ccy = amt.get("Ccy")
    if ccy is not None and not re.fullmatch(r"[A-Z]{3}", ccy):
        raise _Bad(amt.sourceline, what, f"currency '{ccy}' is not an ISO 4217 code")
    return value, ccy


def _signed(el: etree._Element, what: str) -> tuple[Decimal, str | None]:
    value, ccy = _money(_find(el, "Amt"), f"{what}/Amt")
    ind = _text(el, "CdtDbtInd")
    if ind not in ("CRDT", "DBIT"):
        node = _find(el, "CdtDbtInd")
        raise _Bad(
            node.sourceline if node is not None else el.sourceline,
            f"{what}/CdtDbtInd",
            f"credit/debit indicator '{ind}' is not CRDT or DBIT",
        )
    return (value if ind == "CRDT" else -value), ccy


def _account(acct: etree._Element | None) -> str | None:
    ident = _find(acct, "Id")
    if ident is None:
        return None
    for node in ident.iter():
        if (
            isinstance(node.tag, str)
            and _local(node) in ("IBAN", "BBAN", "UPIC", "Id")
            and _text(node)
            and node is not ident
        ):
            return _text(node)
    return None


def _bic(el: etree._Element | None) -> str | None:
    fin = _descendant(el, "FinInstnId")
    return _text(fin, "BICFI") or _text(fin, "BIC")


def _party(tx: etree._Element | None, role: str) -> tuple[str | None, str | None]:
    parties = _find(tx, "RltdPties")
    party = _find(parties, role)
    name = _text(party, "Nm") or _text(party, "Pty", "Nm")  # version 8 wraps the party in <Pty>
    account = _account(_find(parties, f"{role}Acct"))
    return name, account


def _statement(
    el: etree._Element,
    version: str,
    kind: str,
    header: etree._Element | None,
    app_sender: str | None,
    index: int,
) -> ParsedStatement:
    where = f"{_local(el)}[{index}]"
    acct = _find(el, "Acct")
    account = _account(acct)
    if not account:
        raise _Bad(el.sourceline, f"{where}/Acct/Id", "the statement does not name its account")
    balances: dict[str, Any] = {}
    opening = closing = None
    bal_ccy: str | None = None
    interim: list[tuple[dt.date | None, Decimal]] = []
    for b in _kids(el, "Bal"):
        tp = _find(b, "Tp")
        code = _text(_descendant(tp, "Cd")) or _text(_descendant(tp, "Prtry")) or "UNKNOWN"
        amount, ccy = _signed(b, f"{where}/Bal")
        bal_ccy = bal_ccy or ccy
        day = _date(_find(b, "Dt"), f"{where}/Bal/Dt")
        entry = {"amount": amount, "currency": ccy, "date": day, "line": b.sourceline}
        if code in balances:
            prev = balances[code]
            balances[code] = (prev if isinstance(prev, list) else [prev]) + [entry]
        else:
            balances[code] = entry
        if code == "OPBD" or (code == "PRCD" and opening is None):
            opening = (amount, day)
        elif code == "CLBD":
            closing = (amount, day)
        elif code == "ITBD":
            interim.append((day, amount))
    closing_type = "CLBD" if closing else None
    if kind == "052" and closing is None and interim:
        day, amount = interim[-1]
        closing, closing_type = (amount, day), "ITBD"

    currency = _text(acct, "Ccy") or bal_ccy
    lines: list[ParsedLine] = []
    for ntry in _kids(el, "Ntry"):
        amount, ccy = _signed(ntry, f"{where}/Ntry")
        status = _text(ntry, "Sts", "Cd") or _text(ntry, "Sts")
        details = _kids(_find(ntry, "NtryDtls"), "TxDtls")
        tx = details[0] if details else None
        refs = _find(tx, "Refs")
        e2e = _text(refs, "EndToEndId")
        if e2e and e2e.upper() == "NOTPROVIDED":
            e2e = None
        credit = amount >= 0
        cp_name, cp_account = _party(tx, "Dbtr" if credit else "Cdtr")
        if cp_name is None and cp_account is None:
            cp_name, cp_account = _party(tx, "UltmtDbtr" if credit else "UltmtCdtr")
        remittance = [
            t.text.strip()
            for t in (tx.iter() if tx is not None else [])
            if isinstance(t.tag, str) and _local(t) == "Ustrd" and t.text and t.text.strip()
        ]
        domain = _find(ntry, "BkTxCd", "Domn")
        extra: dict[str, Any] = {
            k: v
            for k, v in {
                "status": status,
                "reversal": _text(ntry, "RvslInd") == "true" or None,
                "entry_ref": _text(ntry, "NtryRef"),
                "bank_tx_code": "/".join(
                    x
                    for x in (
                        _text(domain, "Cd"),
                        _text(domain, "Fmly", "Cd"),
                        _text(domain, "Fmly", "SubFmlyCd"),
                    )
                    if x
                )
                or _text(ntry, "BkTxCd", "Prtry", "Cd"),
                "end_to_end_id": e2e,
                "instruction_id": _text(refs, "InstrId"),
                "message_id": _text(refs, "MsgId"),
                "uetr": _text(refs, "UETR"),
                "transactions": len(details) if len(details) > 1 else None,
                "additional_info": _text(ntry, "AddtlNtryInf"),
            }.items()
            if v
        }
        lines.append(
            ParsedLine(
                amount=amount,
                currency=ccy or currency,
                value_date=_date(_find(ntry, "ValDt"), f"{where}/Ntry/ValDt"),
                entry_date=_date(_find(ntry, "BookgDt"), f"{where}/Ntry/BookgDt"),
                reference=(e2e or _text(ntry, "NtryRef") or _text(ntry, "AcctSvcrRef") or "")[:64] or None,
                related_reference=(_text(ntry, "AcctSvcrRef") or _text(refs, "AcctSvcrRef") or "")[:64]
                or None,
                counterparty=(cp_name or "")[:200] or None,
                account_identifier=(cp_account or "")[:64] or None,
                description=" ".join(remittance) or _text(ntry, "AddtlNtryInf"),
                extra=extra,
                source_line=ntry.sourceline,
                booked=(status or "BOOK") == "BOOK",
            )
        )

    currency = currency or next((ln.currency for ln in lines if ln.currency), None)
    period = _find(el, "FrToDt")
    start = _date(_find(period, "FrDtTm"), f"{where}/FrToDt") or _date(
        _find(period, "FrDt"), f"{where}/FrToDt"
    )
    end = _date(_find(period, "ToDtTm"), f"{where}/FrToDt") or _date(_find(period, "ToDt"), f"{where}/FrToDt")
    created = _date(_find(el, "CreDtTm"), f"{where}/CreDtTm") or _date(
        _find(header, "CreDtTm"), "GrpHdr/CreDtTm"
    )
    booking_days = [ln.entry_date for ln in lines if ln.entry_date]
    statement_date = (
        end or (closing[1] if closing else None) or created or (max(booking_days) if booking_days else None)
    )
    if statement_date is None:
        raise _Bad(
            el.sourceline, where, "the statement has no date (no period, balance, creation time or booking)"
        )
    seq = _text(el, "ElctrncSeqNb") or _text(el, "LglSeqNb")
    number = int(seq) if seq and seq.isdigit() and int(seq) > 0 else None
    page = _text(header, "MsgPgntn", "PgNb")
    extra: dict[str, Any] = {
        k: v
        for k, v in {
            "balances": balances,
            "message_id": _text(header, "MsgId"),
            "created": _text(el, "CreDtTm") or _text(header, "CreDtTm"),
            "electronic_seq": _text(el, "ElctrncSeqNb"),
            "legal_seq": _text(el, "LglSeqNb"),
            "copy_duplicate": _text(el, "CpyDplctInd"),
            "account_name": _text(acct, "Nm"),
            "page": page,
            "last_page": _text(header, "MsgPgntn", "LastPgInd"),
            "closing_type": closing_type if closing_type != "CLBD" else None,
            "intraday": True if kind == "052" else None,
            "information": _text(el, "AddtlStmtInf")
            or _text(el, "AddtlRptInf")
            or _text(el, "AddtlNtfctnInf"),
        }.items()
        if v
    }
    return ParsedStatement(
        kind=StatementKind.CASH,
        format=version,
        account_identifier=account[:64],
        statement_date=statement_date,
        statement_ref=(_text(el, "Id") or "")[:64] or None,
        sequence_number=seq,
        sender=(_bic(_find(acct, "Svcr")) or app_sender),
        currency=currency,
        opening_balance=opening[0] if opening else None,
        closing_balance=closing[0] if closing else None,
        lines=lines,
        extra=extra,
        source_line=el.sourceline,
        number=number if kind == "053" else None,
        page=int(page) if page and page.isdigit() else None,
        period_start=start or (opening[1] if opening else None),
        period_end=end or (closing[1] if closing else None),
        intraday=kind == "052",
    )
