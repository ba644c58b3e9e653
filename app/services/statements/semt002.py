"""semt.002 (ISO 20022 custody statement of holdings) → HOLDINGS statements, one line per ISIN and safekeeping
account. The XML counterpart of MT535, read with lxml by local element names, so versions .001.08 to .001.11 (and
a business application header around the document) read alike.

Mapping: ``StmtGnlDtls/StmtId`` → statement reference; ``StmtDtTm`` → statement date; ``Pgntn/PgNb`` → page;
``SfkpgAcct/Id`` → account; each ``BalForAcct`` (or ``SubAcctDtls/BalForSubAcct``, with the sub-account's id) → a
line: ``FinInstrmId/ISIN`` and ``Desc``; ``AggtBal`` quantity (``Unit``, ``FaceAmt`` or ``AmtsdVal``; ``SHOR`` =
short = negative); the market price (``PricDtls`` of type MRKT, else the first; ``Val/Amt`` with its currency or
``Val/Rate`` in percent); ``AcctBaseCcyAmts/HldgVal`` → value. Available and not-available balances are kept in
the line's extra.

No schema for semt.002 ships with OpsDesk, so the rules a schema would enforce for what is read are checked here:
the statement names its safekeeping account and date; every holding has a valid ISIN and a numeric aggregate
quantity. A file that breaks them is refused, naming the line.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from lxml import etree
from stdnum import isin as stdnum_isin

from app.models.enums import StatementKind

from .camt import _Bad, _date, _descendant, _find, _kids, _local, _text
from .parsed import ParsedLine, ParsedStatement, Problem, StatementFileRefused, refuse, too_precise

_NS_RE = re.compile(r"urn:iso:std:iso:20022:tech:xsd:(semt\.002\.\d{3}\.\d{2})$")


def read_semt002(data: bytes, file_name: str) -> list[ParsedStatement]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as err:
        raise refuse(
            file_name, f"it is not well-formed XML ({err.msg})", getattr(err, "lineno", None)
        ) from None
    document = root if _local(root) == "Document" else _descendant(root, "Document")
    ns = etree.QName(document).namespace if document is not None else None
    m = _NS_RE.match(ns or "")
    if document is None or m is None:
        raise refuse(file_name, f"it is not a semt.002 statement of holdings (namespace '{ns or 'none'}')")
    version = m.group(1)
    report = next((c for c in document if isinstance(c.tag, str)), None)
    if report is None:
        raise refuse(file_name, "the document is empty", document.sourceline)
    sender = (
        _text(_descendant(_descendant(root, "AppHdr"), "Fr"), "FIId", "FinInstnId", "BICFI")
        if root is not document
        else None
    )
    try:
        return [_statement(report, version, sender)]
    except _Bad as bad:
        raise StatementFileRefused(file_name, [Problem(bad.line, bad.field, bad.reason)]) from None


def _decimal(el: etree._Element | None, what: str, decimals: int) -> Decimal | None:
    if el is None:
        return None
    text = _text(el) or ""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _Bad(el.sourceline, what, f"'{text}' is not a number") from None
    if not value.is_finite() or too_precise(value, decimals):
        raise _Bad(el.sourceline, what, f"'{text}' cannot be stored exactly ({decimals} decimals)")
    return value


def _quantity(bal: etree._Element | None, what: str) -> Decimal | None:
    node = _descendant(bal, "Unit", "FaceAmt", "AmtsdVal")
    value = _decimal(node, what, 6)
    if value is not None and _text(_descendant(bal, "ShrtLngInd")) == "SHOR":
        value = -value
    return value


def _holding(bal: etree._Element, account: str) -> ParsedLine:
    ident = _find(bal, "FinInstrmId")
    code = _text(ident, "ISIN")
    if not code or not stdnum_isin.is_valid(code):
        raise _Bad(bal.sourceline, "BalForAcct/FinInstrmId/ISIN", f"'{code or ''}' is not a valid ISIN")
    aggr = _find(bal, "AggtBal")
    quantity = _quantity(aggr, "AggtBal")
    if quantity is None:
        raise _Bad(bal.sourceline, "BalForAcct/AggtBal", "the holding has no aggregate quantity")
    prices = _kids(bal, "PricDtls")
    price_el = next(
        (p for p in prices if _text(_descendant(_find(p, "Tp"), "Cd")) == "MRKT"),
        prices[0] if prices else None,
    )
    price = currency = None
    extra: dict[str, str] = {}
    if price_el is not None:
        amt = _descendant(_find(price_el, "Val"), "Amt")
        if amt is not None:
            price, currency = _decimal(amt, "PricDtls/Val/Amt", 8), amt.get("Ccy")
            extra["price_type"] = "ACTU"
        else:
            price = _decimal(_descendant(_find(price_el, "Val"), "Rate"), "PricDtls/Val/Rate", 8)
            extra["price_type"] = "PRCT"
    value_el = _descendant(_find(bal, "AcctBaseCcyAmts"), "HldgVal")
    value = None
    if value_el is not None:
        amt = _find(value_el, "Amt")
        value = _decimal(amt, "HldgVal/Amt", 4)
        currency = (amt.get("Ccy") if amt is not None else None) or currency
        if value is not None and _text(value_el, "ShrtLngInd") == "SHOR":
            value = -value
    for name in ("AvlblBal", "NotAvlblBal"):
        q = _quantity(_find(bal, name), name)
        if q is not None:
            extra[name] = str(q)
    return ParsedLine(
        isin=code,
        quantity=quantity,
        price=price,
        amount=value,
        currency=currency,
        account_identifier=account[:64],
        description=_text(ident, "Desc"),
        extra=extra,
        source_line=bal.sourceline,
    )


def _statement(report: etree._Element, version: str, sender: str | None) -> ParsedStatement:
    general = _find(report, "StmtGnlDtls")
    if general is None:
        raise _Bad(report.sourceline, "StmtGnlDtls", "the statement's general details are missing")
    day = _date(_find(general, "StmtDtTm"), "StmtGnlDtls/StmtDtTm")
    if day is None:
        raise _Bad(general.sourceline, "StmtGnlDtls/StmtDtTm", "the statement date is missing")
    account = _text(report, "SfkpgAcct", "Id")
    if not account:
        raise _Bad(report.sourceline, "SfkpgAcct/Id", "the statement does not name its safekeeping account")
    lines = [_holding(b, account) for b in _kids(report, "BalForAcct")]
    for sub in _kids(report, "SubAcctDtls"):
        sub_account = _text(sub, "SfkpgAcct", "Id") or account
        lines += [_holding(b, sub_account) for b in _kids(sub, "BalForSubAcct")]
    total = _find(_find(report, "AcctBaseCcyTtlAmts"), "TtlHldgsValOfStmt")
    page = _text(report, "Pgntn", "PgNb")
    currencies = {ln.currency for ln in lines if ln.currency}
    st = ParsedStatement(
        kind=StatementKind.HOLDINGS,
        format=version,
        account_identifier=account[:64],
        statement_date=day,
        statement_ref=(_text(general, "StmtId") or _text(general, "Id") or "")[:64] or None,
        sequence_number=page,
        sender=sender,
        currency=next(iter(currencies)) if len(currencies) == 1 else None,
        lines=lines,
        extra={
            k: v
            for k, v in {
                "page": page,
                "last_page": _text(report, "Pgntn", "LastPgInd"),
                "frequency": _text(_find(general, "Frqcy"), "Cd"),
                "update_type": _text(_find(general, "UpdTp"), "Cd"),
                "basis": _text(_find(general, "StmtBsis"), "Cd"),
                "activity": _text(general, "ActvtyInd"),
                "total_value": _text(_find(total, "Amt")),
            }.items()
            if v
        },
        source_line=report.sourceline,
        period_end=day,
    )
    if total is not None and lines and all(ln.amount is not None for ln in lines):
        stated = _decimal(_find(total, "Amt"), "TtlHldgsValOfStmt", 4)
        summed = sum((ln.amount for ln in lines if ln.amount is not None), Decimal(0))
        if stated is not None and stated != summed:
            st.note(
                "VALUE_TOTAL_MISMATCH",
                f"the holdings are worth {summed} together but the statement's total says {stated}",
            )
    return st
