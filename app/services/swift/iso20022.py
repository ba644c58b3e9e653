"""ISO 20022 securities settlement: sese.023 writer, sese.024 (status advice) and sese.025 (confirmation) readers.

Writer: :func:`write_sese023` builds a ``Document`` of sese.023.001.09 from the same :class:`OutgoingInstruction`
the MT54x writer uses; :func:`validate_sese023` checks it against ``schemas/sese.023.001.09.minimal.xsd`` (kept in
the repository: the official element names, order and mandatory elements for what we write). A batch is written as
one ``<Batch>`` envelope holding AppHdr + Document pairs (``urn:opsdesk:xsd:batch``), because several root documents
in one file would not be well-formed XML.

Readers accept a bare ``Document``, an AppHdr + Document pair inside any envelope (SWIFT's ``DataPDU``, prowide's
``RequestPayload``, our ``Batch``) and any message version: elements are looked up by local name, so a version
change that keeps the names (most of them) still reads. The business application header gives the sender (``Fr``)
and the message definition (``MsgDefIdr``). Parsing is safe against hostile XML: no entity expansion, no network, no
DTD.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path

from lxml import etree

from app.services.errors import OpsDeskError

from .incoming import IncomingSettlement, NoSettlementData, StatusReason, UnsupportedMessage
from .mt54x import OutgoingInstruction

SESE023_NS = "urn:iso:std:iso:20022:tech:xsd:sese.023.001.09"
HEAD_NS = "urn:iso:std:iso:20022:tech:xsd:head.001.001.02"
BATCH_NS = "urn:opsdesk:xsd:batch"
SCHEMA_PATH = Path(__file__).with_name("schemas") / "sese.023.001.09.minimal.xsd"


class Iso20022Error(OpsDeskError):
    """An XML message that cannot be read: not XML, not a message we know, or a mandatory element missing."""

    def __init__(
        self, reason: str, *, file_name: str = "", line: int | None = None, element: str | None = None
    ):
        self.reason, self.file_name, self.line, self.element = reason, file_name, line, element
        where = [
            w
            for w in (file_name, f"line {line}" if line else "", f"element {element}" if element else "")
            if w
        ]
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)


# --- writer -------------------------------------------------------------------------------------------------------


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    el = etree.SubElement(parent, f"{{{SESE023_NS}}}{tag}", attrib)
    if text is not None:
        el.text = text
    return el


def _path(parent: etree._Element, *tags: str, text: str | None = None) -> etree._Element:
    el = parent
    for t in tags:
        el = _sub(el, t)
    if text is not None:
        el.text = text
    return el


def _xml_decimal(d: Decimal) -> str:
    d = Decimal(d)
    return format(d.normalize() if d != d.to_integral() else d.quantize(Decimal(1)), "f")


def _party(
    parent: etree._Element, name: str, depository: str, agent: str, account: str | None, party2: str | None
):
    pties = _sub(parent, name)
    _path(pties, "Dpstry", "Id", "AnyBIC", text=depository)
    p1 = _sub(pties, "Pty1")
    _path(p1, "Id", "AnyBIC", text=agent)
    if account:
        _path(p1, "SfkpgAcct", "Id", text=account[:35])
    if party2:
        _path(pties, "Pty2", "Id", "AnyBIC", text=party2)


def sese023_element(instr: OutgoingInstruction) -> etree._Element:
    """The ``Document`` element of the sese.023 for ``instr``."""
    doc = etree.Element(f"{{{SESE023_NS}}}Document", nsmap={None: SESE023_NS})
    body = _sub(doc, "SctiesSttlmTxInstr")
    _sub(body, "TxId", instr.reference)
    params = _sub(body, "SttlmTpAndAddtlParams")
    _sub(params, "SctiesMvmntTp", "RECE" if instr.receiving else "DELI")
    _sub(params, "Pmt", "APMT" if instr.against_payment else "FREE")
    trad = _sub(body, "TradDtls")
    _path(trad, "TradDt", "Dt", "Dt", text=instr.trade_date.isoformat())
    _path(trad, "SttlmDt", "Dt", "Dt", text=instr.settlement_date.isoformat())
    fin = _sub(body, "FinInstrmId")
    _sub(fin, "ISIN", instr.isin)
    if instr.instrument_name.strip():
        _sub(fin, "Desc", instr.instrument_name.strip()[:140])
    qa = _sub(body, "QtyAndAcctDtls")
    kind = "FaceAmt" if instr.quantity_type == "FAMT" else "Unit"
    _path(qa, "SttlmQty", "Qty", kind, text=_xml_decimal(instr.quantity))
    _path(qa, "SfkpgAcct", "Id", text=instr.safekeeping_account[:35])
    _path(_sub(body, "SttlmParams"), "SctiesTxTp", "Cd", text="TRAD")
    # The counterparty's side: they deliver when we receive, and the other way round.
    theirs, ours = (
        ("DlvrgSttlmPties", "RcvgSttlmPties") if instr.receiving else ("RcvgSttlmPties", "DlvrgSttlmPties")
    )
    sides = {
        theirs: (instr.their_agent_bic, instr.their_safekeeping_account, instr.counterparty_bic),
        ours: (instr.our_agent_bic, None, None),
    }
    for name in ("DlvrgSttlmPties", "RcvgSttlmPties"):
        agent, account, party2 = sides[name]
        _party(body, name, instr.place_of_settlement_bic, agent, account, party2)
    if instr.against_payment:
        amt = _sub(body, "SttlmAmt")
        value = Decimal(instr.settlement_amount)
        _sub(amt, "Amt", _xml_decimal(abs(value)), Ccy=instr.currency)
        # We pay when we receive securities against payment, unless a netted obligation's cash runs the other way.
        pays = instr.receiving == (value >= 0)
        _sub(amt, "CdtDbtInd", "DBIT" if pays else "CRDT")
    return doc


def app_header(instr: OutgoingInstruction, created: dt.datetime) -> etree._Element:
    """A business application header (head.001.001.02) naming sender, receiver and the message definition."""
    h = etree.Element(f"{{{HEAD_NS}}}AppHdr", nsmap={None: HEAD_NS})

    def s(parent: etree._Element, *tags: str, text: str | None = None) -> etree._Element:
        el = parent
        for t in tags:
            el = etree.SubElement(el, f"{{{HEAD_NS}}}{t}")
        el.text = text
        return el

    s(h, "Fr", "FIId", "FinInstnId", "BICFI", text=instr.sender_bic)
    s(h, "To", "FIId", "FinInstnId", "BICFI", text=instr.our_agent_bic)
    s(h, "BizMsgIdr", text=instr.reference)
    s(h, "MsgDefIdr", text="sese.023.001.09")
    s(h, "CreDt", text=created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return h


def write_sese023(instr: OutgoingInstruction) -> bytes:
    """One sese.023 ``Document`` as UTF-8 XML bytes (with declaration)."""
    return etree.tostring(sese023_element(instr), xml_declaration=True, encoding="UTF-8", pretty_print=True)


def write_sese023_batch(instrs: list[OutgoingInstruction], created: dt.datetime | None = None) -> bytes:
    """Several sese.023 in one file: ``<Batch>`` holding an AppHdr + Document pair per instruction."""
    created = created or dt.datetime.now(dt.UTC)
    root = etree.Element(f"{{{BATCH_NS}}}Batch", nsmap={None: BATCH_NS})
    for instr in instrs:
        msg = etree.SubElement(root, f"{{{BATCH_NS}}}Msg")
        msg.append(app_header(instr, instr.prepared_at or created))
        msg.append(sese023_element(instr))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


@cache
def _schema():  # noqa: ANN202 - xmlschema's type
    import xmlschema

    return xmlschema.XMLSchema(str(SCHEMA_PATH))


def validate_sese023(xml: bytes | etree._Element) -> list[str]:
    """Problems of a sese.023 ``Document`` against the minimal schema (empty list: well-formed and schema-shaped)."""
    try:
        root = xml if isinstance(xml, etree._Element) else etree.fromstring(xml, _parser())
    except etree.XMLSyntaxError as err:
        return [f"not well-formed XML: {err}"]
    docs = [root] if etree.QName(root).localname == "Document" else _documents(root)
    problems: list[str] = []
    for n, doc in enumerate(docs, 1):
        if etree.QName(doc).namespace != SESE023_NS:
            problems.append(f"document {n}: namespace {etree.QName(doc).namespace!r} is not {SESE023_NS}")
            continue
        for err in _schema().iter_errors(etree.tostring(doc).decode()):
            problems.append(f"document {n}: {err.path or ''}: {err.reason}")
    if not docs:
        problems.append("no Document element")
    return problems


# --- readers ------------------------------------------------------------------------------------------------------


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _documents(root: etree._Element) -> list[etree._Element]:
    # Envelope documents (SupplementaryData's Envlp) nest a Document too: only the outermost ones are messages.
    out = []
    for el in root.iter("{*}Document"):
        if not any(etree.QName(a).localname == "Document" for a in el.iterancestors()):
            out.append(el)
    return out


def _x(el: etree._Element | None, path: str) -> etree._Element | None:
    """First element at a ``/``-separated path of local names below ``el`` (any namespace)."""
    if el is None:
        return None
    found = el.find("/".join(f"{{*}}{p}" for p in path.split("/")))
    return found


def _t(el: etree._Element | None, path: str) -> str | None:
    found = _x(el, path)
    return found.text.strip() if found is not None and found.text else None


def _date(el: etree._Element | None, path: str) -> dt.date | None:
    """A DateAndDateTime choice (``…/Dt/Dt`` or ``…/Dt/DtTm``) → date."""
    text = _t(el, f"{path}/Dt/Dt") or _t(el, f"{path}/Dt/DtTm") or _t(el, f"{path}/Dt")
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise Iso20022Error(f"{text!r} is not a date", element=path) from None


def _decimal(text: str | None, what: str) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        raise Iso20022Error(f"{text!r} is not a number", element=what) from None


def _quantity(el: etree._Element | None, path: str) -> Decimal | None:
    for kind in ("Unit", "FaceAmt", "AmtsdVal"):
        v = _t(el, f"{path}/Qty/{kind}") or _t(el, f"{path}/{kind}")
        if v is not None:
            return _decimal(v, f"{path}/{kind}")
    return None


@dataclass(slots=True)
class XmlMessage:
    """One message of a file: its header facts and the ``Document`` element."""

    definition: str  # sese.024.001.10 ...
    document: etree._Element
    sender: str | None
    business_id: str | None
    raw: bytes
    index: int
    line: int
    created: dt.datetime | None = None  # AppHdr CreDt


def _created(hdr: etree._Element | None) -> dt.datetime | None:
    text = _t(hdr, "CreDt") if hdr is not None else None
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def split_xml(data: bytes, *, file_name: str = "") -> list[XmlMessage]:
    """Every ``Document`` in a file, with the definition from its namespace (or its AppHdr's MsgDefIdr)."""
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as err:
        raise Iso20022Error(f"not well-formed XML: {err.msg}", file_name=file_name, line=err.lineno) from None
    docs = _documents(root)
    if not docs:
        raise Iso20022Error("no ISO 20022 Document element in the file", file_name=file_name, line=1)
    out = []
    for n, doc in enumerate(docs, 1):
        parent = doc.getparent()
        hdr = None
        if parent is not None:
            hdr = next(
                (c for c in parent if isinstance(c.tag, str) and etree.QName(c).localname == "AppHdr"), None
            )
        ns = etree.QName(doc).namespace or ""
        definition = ns.rsplit(":", 1)[-1] if ns.startswith("urn:iso:std:iso:20022") else ""
        if not definition and hdr is not None:
            definition = _t(hdr, "MsgDefIdr") or ""
        sender = _t(hdr, "Fr/FIId/FinInstnId/BICFI") if hdr is not None else None
        out.append(
            XmlMessage(
                definition=definition or "unknown",
                document=doc,
                sender=sender,
                business_id=_t(hdr, "BizMsgIdr") if hdr is not None else None,
                raw=etree.tostring(hdr) + b"\n" + etree.tostring(doc)
                if hdr is not None
                else etree.tostring(doc),
                index=n,
                line=doc.sourceline or 1,
                created=_created(hdr),
            )
        )
    return out


def _common(msg: XmlMessage, body: etree._Element, kind: str, ids: str, file_name: str) -> IncomingSettlement:
    tx = _x(body, ids)
    inc = IncomingSettlement(
        kind=kind,  # type: ignore[arg-type]
        message_type=msg.definition,
        reference=_t(tx, "AcctSvcrTxId") or _t(tx, "MktInfrstrctrTxId") or msg.business_id,
        related_reference=_t(tx, "AcctOwnrTxId"),
        sender=msg.sender,
        sent_at=msg.created,
        source=f"{file_name}, message {msg.index}" if file_name else f"message {msg.index}",
    )
    if inc.related_reference in ("NONREF", ""):
        inc.related_reference = None
    return inc


def _details(inc: IncomingSettlement, tx: etree._Element | None) -> None:
    """Transaction details both sese.024 (TxDtls) and sese.025 carry: ISIN, dates, direction, payment."""
    if tx is None:
        return
    inc.isin = _t(tx, "FinInstrmId/ISIN") or inc.isin
    inc.trade_date = _date(tx, "TradDt") or _date(tx, "TradDtls/TradDt") or inc.trade_date
    inc.settlement_date = _date(tx, "SttlmDt") or _date(tx, "TradDtls/SttlmDt") or inc.settlement_date
    mvmt = _t(tx, "SctiesMvmntTp") or _t(tx, "TxIdDtls/SctiesMvmntTp")
    if mvmt in ("RECE", "DELI"):
        inc.direction = mvmt  # type: ignore[assignment]
    pmt = _t(tx, "Pmt") or _t(tx, "TxIdDtls/Pmt")
    if pmt in ("APMT", "FREE"):
        inc.against_payment = pmt == "APMT"
    inc.safekeeping_account = _t(tx, "SfkpgAcct/Id") or _t(tx, "QtyAndAcctDtls/SfkpgAcct/Id")


def _reason(container: etree._Element | None) -> list[tuple[str | None, str | None]]:
    """``Rsn`` children → [(code, text)]; ``NoSpcfdRsn`` → [(None, None)]."""
    if container is None:
        return []
    out: list[tuple[str | None, str | None]] = []
    for rsn in container.findall("{*}Rsn"):
        code = _t(rsn, "Cd/Cd") or _t(rsn, "Cd/Prtry/Id") or _t(rsn, "Cd")
        text = _t(rsn, "AddtlRsnInf")
        out.append((code, " ".join(text.split()) if text else None))
    return out or [(None, None)]


_STATUS_MAP = {
    # (status element, choice) → (MT548 qualifier, status code)
    ("MtchgSts", "Mtchd"): ("MTCH", "MACH"),
    ("MtchgSts", "Umtchd"): ("MTCH", "NMAT"),
    ("SttlmSts", "Pdg"): ("SETT", "PEND"),
    ("SttlmSts", "Flng"): ("SETT", "PENF"),
    ("PrcgSts", "AckdAccptd"): ("IPRC", "PACK"),
    ("PrcgSts", "Rjctd"): ("IPRC", "REJT"),
    ("PrcgSts", "Canc"): ("IPRC", "CAND"),
    ("PrcgSts", "Cancelled"): ("IPRC", "CAND"),
    ("PrcgSts", "PdgPrcg"): ("IPRC", "PPRC"),
}


def read_sese024(msg: XmlMessage, *, file_name: str = "") -> IncomingSettlement:
    body = next((c for c in msg.document if isinstance(c.tag, str)), None)
    if body is None or etree.QName(body).localname != "SctiesSttlmTxStsAdvc":
        raise UnsupportedMessage(f"{msg.definition}: expected SctiesSttlmTxStsAdvc")
    inc = _common(msg, body, "status", "TxId", file_name)
    for (group, choice), (qual, status) in _STATUS_MAP.items():
        el = _x(body, f"{group}/{choice}")
        if el is None:
            continue
        for code, text in _reason(el):
            inc.statuses.append(StatusReason(qual, status, code, text))
    if not inc.statuses:
        raise NoSettlementData(
            f"{inc.source}: {msg.definition} carries no processing, matching or settlement status"
        )
    _details(inc, _x(body, "TxDtls"))
    tx = _x(body, "TxDtls")
    inc.quantity = _quantity(tx, "SttlmQty")
    amt = _x(tx, "SttlmAmt/Amt")
    if amt is not None:
        inc.amount, inc.currency = _decimal(amt.text, "SttlmAmt/Amt"), amt.get("Ccy")
    return inc


def read_sese025(msg: XmlMessage, *, file_name: str = "") -> IncomingSettlement:
    body = next((c for c in msg.document if isinstance(c.tag, str)), None)
    if body is None or etree.QName(body).localname != "SctiesSttlmTxConf":
        raise UnsupportedMessage(f"{msg.definition}: expected SctiesSttlmTxConf")
    inc = _common(msg, body, "confirmation", "TxIdDtls", file_name)
    _details(inc, body)
    inc.settled_quantity = _quantity(body, "QtyAndAcctDtls/SttldQty")
    if inc.settled_quantity is None:
        raise NoSettlementData(
            f"{inc.source}: {msg.definition} has no settled quantity (QtyAndAcctDtls/SttldQty)"
        )
    amt = _x(body, "SttldAmt/Amt")
    if amt is not None:
        inc.settled_amount = _decimal(amt.text, "SttldAmt/Amt")
        inc.currency = amt.get("Ccy")
    elif inc.against_payment:
        raise Iso20022Error(f"{inc.source}: against payment but no settled amount", element="SttldAmt/Amt")
    else:
        inc.settled_amount = Decimal(0)
    inc.settled_on = _date(body, "TradDtls/FctvSttlmDt") or inc.settlement_date
    partial = next(iter(body.iter("{*}PrtlSttlm")), None)
    inc.partial = partial.text.strip() if partial is not None and partial.text else None
    return inc


def read_xml(msg: XmlMessage, *, file_name: str = "") -> IncomingSettlement:
    """sese.024 / sese.025 of any version → IncomingSettlement; other definitions raise UnsupportedMessage."""
    d = msg.definition
    if d.startswith("sese.024"):
        return read_sese024(msg, file_name=file_name)
    if d.startswith("sese.025"):
        return read_sese025(msg, file_name=file_name)
    raise UnsupportedMessage(f"{d} is not a settlement status (sese.024) or confirmation (sese.025)")
