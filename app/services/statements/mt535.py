"""MT535 statements of holdings (ISO 15022) → HOLDINGS statements, one line per instrument and safekeeping account.

Messages are read with the project's ISO 15022 reader (``app.services.swift.fin``: blocks, fields, 16R/16S
sequences); this module only says what the fields mean:

* GENL: ``:20C::SEME`` statement reference, ``:28E:`` page number and continuation (``1/ONLY``, ``5/MORE``),
  ``:98A::STAT`` (or 98C) statement date, ``:97A::SAFE`` safekeeping account, ``:17B::ACTI`` activity flag,
  ``:22F::STBA`` basis (settled/traded).
* SUBSAFE (repeatable, optional ``:97A::SAFE`` sub-account) → FIN (one per instrument): ``:35B:`` the instrument
  (``ISIN XS0222550880`` and its description; a national code such as ``/US/31392EXH8`` is turned into the ISIN it
  stands for with python-stdnum, noted in the line's extra); ``:93B::AGGR`` the aggregate holding (``N`` = short)
  → quantity; ``:90A:``/``:90B::MRKT`` (else INDC, else any) → price; ``:19A::HOLD`` → value (the line's amount);
  available, not available and the sub-balances (``SUBBAL``, with their place of safekeeping) are kept in extra.
* ADDINFO ``:19A::HOLP`` / ``HOLS`` (total value of the page / statement) are kept on the statement.

Refused with file, line and field: a truncated message (a sequence opened and never closed, block 4 not ended), a
holding without an instrument or without its aggregate balance, a quantity, price, amount or date that is not one,
and a message the network rejected (a NAK in front of it: it was never delivered). A trailer block left open is
only noted.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from stdnum import isin as stdnum_isin

from app.models.enums import StatementKind
from app.services.swift.fin import Field, FinMessage, FinParseError, Sequence, parse_fin

from .parsed import ParsedLine, ParsedStatement, Problem, StatementFileRefused, refuse, too_precise

HOLDINGS_TYPES = ("535",)
_FATAL = ("sequence", "16S", "block 4")  # structural faults of the data, as opposed to the trailer


def read_mt535(text: str, file_name: str) -> list[ParsedStatement]:
    """Every MT535 statement in a FIN file, or :class:`StatementFileRefused`."""
    try:
        messages = parse_fin(text, file_name=file_name, strict=False)
    except FinParseError as err:
        raise refuse(file_name, err.reason, err.line, err.field or "") from None
    out: list[ParsedStatement] = []
    problems: list[Problem] = []
    rejected_next = False
    for msg in messages:
        if msg.is_service:
            rejected_next = msg.message_type == "NAK"
            nak = msg
            continue
        if rejected_next:
            code = next((f.value for f in nak.fields if f.tag == "405"), "")
            problems.append(
                Problem(
                    msg.start_line,
                    "",
                    f"message {msg.index} was rejected by the network (NAK{' ' + code if code else ''}): "
                    "it was never delivered, so it is not a statement",
                )
            )
            rejected_next = False
            continue
        if msg.message_type not in HOLDINGS_TYPES:
            problems.append(
                Problem(
                    msg.start_line,
                    "",
                    f"message {msg.index} is an MT{msg.message_type}, not an MT535 statement of holdings",
                )
            )
            continue
        fatal = [p for p in msg.problems if any(w in p for w in _FATAL)]
        if fatal:
            problems.append(Problem(None, "", f"message {msg.index} is truncated or damaged: {fatal[0]}"))
            continue
        try:
            out.append(_statement(msg))
        except FinParseError as err:
            problems.append(Problem(err.line, err.field or "", err.reason))
    if problems:
        raise StatementFileRefused(file_name, problems)
    if not out:
        raise refuse(file_name, "it holds no MT535 statement")
    return out


def _need(seq: Sequence | None, tag: str, qualifier: str | None, what: str, line: int) -> Field:
    f = seq.find(tag, qualifier) if seq is not None else None
    if f is None:
        label = f":{tag}::{qualifier}" if qualifier else f":{tag}:"
        raise FinParseError(f"{what} ({label}) is missing", line=line, field=label)
    return f


def _statement(msg: FinMessage) -> ParsedStatement:
    genl = msg.sequence("GENL")
    if genl is None:
        raise FinParseError("the mandatory sequence GENL is missing", line=msg.start_line)
    ref = _need(genl, "20C", "SEME", "the statement reference", genl.line).value.strip()
    date_field = genl.find("98A", "STAT") or genl.find("98C", "STAT")
    if date_field is None:
        raise FinParseError("the statement date (:98A::STAT) is missing", line=genl.line, field=":98A::STAT")
    day = date_field.date()
    safe = _need(genl, "97A", "SAFE", "the safekeeping account", genl.line).value.strip()
    page_field = genl.find("28E")
    page_text = page_field.value.strip() if page_field else None
    page = int(page_text.split("/")[0]) if page_text and page_text.split("/")[0].isdigit() else None
    lines: list[ParsedLine] = []
    for subsafe in msg.sequences("SUBSAFE"):
        sub_account = subsafe.find("97A", "SAFE") or subsafe.find("97B", "SAFE")
        for fin in [c for c in subsafe.children if c.name == "FIN"]:
            lines.append(_holding(fin, sub_account.value.strip() if sub_account else safe))
    flags = {f.qualifier: f.value.strip() for f in genl.find_all("17B") if f.qualifier}
    indicators = {f.qualifier: f.value.strip() for f in genl.find_all("22F") if f.qualifier}
    totals: dict[str, Any] = {}
    addinfo = msg.sequence("ADDINFO")
    for f in addinfo.find_all("19A") if addinfo else []:
        ccy, amount = f.amount()
        totals[f.qualifier or "?"] = {"amount": amount, "currency": ccy}
    currencies = {ln.currency for ln in lines if ln.currency} | {t["currency"] for t in totals.values()}
    st = ParsedStatement(
        kind=StatementKind.HOLDINGS,
        format="MT535",
        account_identifier=safe[:64],
        statement_date=day,
        statement_ref=ref[:64],
        sequence_number=page_text,
        sender=msg.sender_bic,
        currency=next(iter(currencies)) if len(currencies) == 1 else None,
        lines=lines,
        extra={
            k: v
            for k, v in {
                "function": (genl.find("23G").value.strip() if genl.find("23G") else None),
                "flags": flags or None,
                "indicators": indicators or None,
                "totals": totals or None,
                "page": page,
                "continuation": page_text.split("/")[1] if page_text and "/" in page_text else None,
                "receiver": msg.receiver_bic,
            }.items()
            if v is not None
        },
        source_line=msg.start_line,
        period_end=day,
    )
    for problem in msg.problems:
        st.note("ENVELOPE", f"FIN envelope: {problem}")
    if flags.get("ACTI") == "N" and lines:
        st.note("ACTIVITY_FLAG", "the statement says it has no holdings (:17B::ACTI//N) but lists some")
    value_sum = sum((ln.amount for ln in lines if ln.amount is not None), Decimal(0))
    hols = totals.get("HOLS") or totals.get("HOLP")
    if (
        hols
        and lines
        and all(ln.amount is not None for ln in lines)
        and len(currencies) == 1
        and value_sum != hols["amount"]
    ):
        st.note(
            "VALUE_TOTAL_MISMATCH",
            f"the holdings are worth {value_sum} together but the statement's total (:19A::HOLS/HOLP) says "
            f"{hols['amount']}",
        )
    return st


def _isin(fin: Sequence) -> tuple[str | None, str, dict[str, Any]]:
    f = fin.find("35B")
    if f is None:
        raise FinParseError("a holding without its instrument (:35B:)", line=fin.line, field=":35B:")
    first, *rest = f.value.split("\n")
    extra: dict[str, Any] = {}
    description = " ".join(x.strip() for x in rest if x.strip())
    if first.startswith("ISIN "):
        code = first[5:].strip()
        if not stdnum_isin.is_valid(code):
            raise FinParseError(f"'{code}' is not a valid ISIN (check digit)", line=f.line, field=":35B:")
        return code, description, extra
    if first.startswith("/") and first.count("/") >= 2:
        _, country, national = first.split("/", 2)
        extra["security_id"] = first.strip()
        try:
            code = stdnum_isin.from_natid(country, national.strip())
            if stdnum_isin.is_valid(code):
                extra["isin_derived_from"] = first.strip()
                return code, description, extra
        except Exception:  # noqa: BLE001 - stdnum raises several kinds for a code it cannot convert
            pass
        return None, description, extra
    return None, " ".join([first.strip(), description]).strip(), extra


def _holding(fin: Sequence, account: str) -> ParsedLine:
    isin, description, extra = _isin(fin)
    aggr = fin.find("93B", "AGGR") or fin.find("93C", "AGGR")
    if aggr is None:
        raise FinParseError(
            "a holding without its aggregate balance (:93B::AGGR)", line=fin.line, field=":93B::AGGR"
        )
    qty_type, quantity = aggr.quantity()
    extra["quantity_type"] = qty_type
    for qual in ("AVAI", "NAVL"):
        f = fin.find("93B", qual)
        if f is not None:
            extra[qual.lower()] = str(f.quantity()[1])
    price_field = next(
        (
            p
            for q in ("MRKT", "INDC", None)
            for p in (fin.find("90A", q), fin.find("90B", q))
            if p is not None
        ),
        None,
    )
    price = price_ccy = None
    if price_field is not None:
        ptype, price_ccy, price = price_field.price()
        extra["price_type"] = ptype
        if price_field.qualifier:
            extra["price_source"] = price_field.qualifier
    price_date = fin.find("98A", "PRIC")
    value = value_ccy = None
    hold = fin.find("19A", "HOLD")
    if hold is not None:
        value_ccy, value = hold.amount()
        if too_precise(value):
            raise FinParseError(
                "the holding value has more decimals than can be stored", line=hold.line, field=hold.label
            )
    subs = []
    for sub in [c for c in fin.children if c.name == "SUBBAL"]:
        q = sub.find("93B") or sub.find("93C")
        place = sub.find("94F", "SAFE")
        subs.append(
            {
                "type": q.qualifier if q else None,
                "quantity": str(q.quantity()[1]) if q else None,
                "place": place.value.strip() if place else None,
            }
        )
    if subs:
        extra["sub_balances"] = subs
    place = fin.find("94F", "SAFE") or fin.find("94B", "SAFE")
    if place is not None:
        extra["place_of_safekeeping"] = place.value.strip()
    if price_date is not None:
        extra["price_date"] = price_date.date().isoformat()
    return ParsedLine(
        amount=value,
        currency=value_ccy or price_ccy,
        isin=isin,
        quantity=quantity,
        price=price,
        account_identifier=account[:64],
        description=description or None,
        value_date=None,
        extra=extra,
        source_line=fin.line,
    )
