"""MT540-543 settlement instructions (writer and structure check) and MT544-548 readers.

Instruction type → message: RFP → MT540 (receive free), RVP → MT541 (receive against payment), DFP → MT542
(deliver free), DVP → MT543 (deliver against payment). The writer emits full FIN blocks 1-5 with the mandatory
sequences of the standard: GENL (SEME, function, preparation date), TRADDET (trade and settlement dates, ISIN),
FIAC (quantity, our safekeeping account), SETDET (SETR type, SETPRTY parties: the counterparty's agent DEAG/REAG
with their account, the counterparty BUYR/SELL, the place of settlement PSET, and for against-payment the AMT
sequence with the settlement amount). :func:`validate_mt54x` checks exactly those rules on any parsed MT540-543,
ours or a bank's.

Readers: MT544-547 settlement confirmations (settled quantity :36B::ESTT, amount :19A::ESTT, date :98a::ESET,
partial indicator :22F::PARS) and MT548 status advices (STAT sequences :25D::MTCH//NMAT, :25D::SETT//PEND …, each
with REAS :24B:: reason codes and :70D::REAS narrative; our reference in :20C::RELA) become an
:class:`IncomingSettlement`.

Block 5 of a message we write carries ``{CHK:...}``: a 12-hex digest of block 4 that lets a re-sent file be told
apart from a changed one. The real checksum is computed by the SWIFT interface when the message goes out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

from app.models.enums import AssetClass, InstructionType

from ..currencies import minor_units
from .fin import Field, FinMessage, FinParseError, Sequence
from .incoming import IncomingSettlement, NoSettlementData, StatusReason, UnsupportedMessage

# Our own BIC as sender of the instructions (the house's SWIFT address); callers may pass another.
HOUSE_BIC = "OPSDGB2L"

MESSAGE_TYPE: dict[InstructionType, str] = {
    InstructionType.RFP: "540",
    InstructionType.RVP: "541",
    InstructionType.DFP: "542",
    InstructionType.DVP: "543",
}
RECEIVE_TYPES = frozenset({"540", "541", "544", "545"})
AGAINST_PAYMENT_TYPES = frozenset({"541", "543", "545", "547"})
CONFIRMATION_TYPES = frozenset({"544", "545", "546", "547"})
# Face-amount instruments (bonds) are instructed in FAMT, everything else in units.
FACE_AMOUNT_CLASSES = frozenset({AssetClass.GOVT_BOND, AssetClass.CORP_BOND})

_X_ALLOWED = re.compile(r"[^A-Za-z0-9/\-?:().,'+ ]")


def x_charset(text: str) -> str:
    """Text in the SWIFT X character set: accents dropped, anything else outside the set becomes a space."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r" {2,}", " ", _X_ALLOWED.sub(" ", plain)).strip()


def swift_number(value: Decimal) -> str:
    """Decimal → SWIFT decimal: 1234.5 → ``1234,5``; 100 → ``100,`` (the comma is mandatory; no trailing zeros)."""
    d = Decimal(value)
    if d < 0:
        raise ValueError(f"{d} is negative; SWIFT numbers carry the sign apart (N)")
    text = format(d.normalize() if d != d.to_integral() else d.quantize(Decimal(1)), "f")
    whole, _, frac = text.partition(".")
    return f"{whole},{frac.rstrip('0')}"


def swift_amount_text(currency: str, amount: Decimal) -> str:
    """19A value ``[N]CCYamount``."""
    sign = "N" if amount < 0 else ""
    return f"{sign}{currency}{swift_number(abs(amount))}"


def lt_address(bic: str, terminal: str = "A") -> str:
    """BIC (8 or 11) → 12-character logical terminal address (terminal code inserted, branch XXX by default)."""
    b = bic.strip().upper()
    return f"{b[:8]}{terminal}{(b[8:11] or 'XXX')}"


@dataclass(frozen=True, slots=True)
class OutgoingInstruction:
    """Everything an MT540-543 or sese.023 needs about one instruction (built from the instruction, its
    instrument, account, counterparty and both SSIs)."""

    reference: str  # our instruction_ref → :20C::SEME
    instruction_type: InstructionType
    isin: str
    instrument_name: str
    asset_class: AssetClass
    quantity: Decimal
    settlement_amount: Decimal
    currency: str
    trade_date: dt.date
    settlement_date: dt.date
    safekeeping_account: str  # ours (our SSI)
    our_agent_bic: str  # our custodian: receiver of the message
    place_of_settlement_bic: str  # the CSD (PSET)
    counterparty_bic: str  # BUYR / SELL
    their_agent_bic: str  # DEAG / REAG
    their_safekeeping_account: str | None = None
    sender_bic: str = HOUSE_BIC
    function: str = "NEWM"  # NEWM or CANC
    previous_reference: str | None = None  # CANC: the reference of the message cancelled
    prepared_at: dt.datetime | None = None

    @property
    def receiving(self) -> bool:
        return InstructionType(self.instruction_type) in (InstructionType.RFP, InstructionType.RVP)

    @property
    def against_payment(self) -> bool:
        return InstructionType(self.instruction_type) in (InstructionType.RVP, InstructionType.DVP)

    @property
    def quantity_type(self) -> str:
        return "FAMT" if AssetClass(self.asset_class) in FACE_AMOUNT_CLASSES else "UNIT"


def _name_lines(name: str, width: int = 35, lines: int = 3) -> list[str]:
    text = x_charset(name)
    out = [text[i : i + width].strip() for i in range(0, len(text), width)][:lines]
    # A continuation line must not start with ':' or '-' (it would read as a field or the block end).
    return [ln.lstrip(":-").strip() or "." for ln in out if ln]


def write_mt54x(instr: OutgoingInstruction) -> str:
    """The full FIN text (blocks 1-5, LF line ends) of the MT540-543 for ``instr``."""
    mt = MESSAGE_TYPE[InstructionType(instr.instruction_type)]
    prepared = instr.prepared_at or dt.datetime.now(dt.UTC)
    party_agent = "DEAG" if instr.receiving else "REAG"
    party_cpty = "SELL" if instr.receiving else "BUYR"
    lines = [
        ":16R:GENL",
        f":20C::SEME//{instr.reference}",
        f":23G:{instr.function}",
        f":98C::PREP//{prepared:%Y%m%d%H%M%S}",
    ]
    if instr.function != "NEWM" and instr.previous_reference:
        lines += [":16R:LINK", f":20C::PREV//{instr.previous_reference}", ":16S:LINK"]
    lines += [
        ":16S:GENL",
        ":16R:TRADDET",
        f":98A::TRAD//{instr.trade_date:%Y%m%d}",
        f":98A::SETT//{instr.settlement_date:%Y%m%d}",
        f":35B:ISIN {instr.isin}",
        *_name_lines(instr.instrument_name),
        ":16S:TRADDET",
        ":16R:FIAC",
        f":36B::SETT//{instr.quantity_type}/{swift_number(instr.quantity)}",
        f":97A::SAFE//{x_charset(instr.safekeeping_account)[:35]}",
        ":16S:FIAC",
        ":16R:SETDET",
        ":22F::SETR//TRAD",
        ":16R:SETPRTY",
        f":95P::{party_agent}//{instr.their_agent_bic}",
    ]
    if instr.their_safekeeping_account:
        lines.append(f":97A::SAFE//{x_charset(instr.their_safekeeping_account)[:35]}")
    lines += [
        ":16S:SETPRTY",
        ":16R:SETPRTY",
        f":95P::{party_cpty}//{instr.counterparty_bic}",
        ":16S:SETPRTY",
        ":16R:SETPRTY",
        f":95P::PSET//{instr.place_of_settlement_bic}",
        ":16S:SETPRTY",
    ]
    if instr.against_payment:
        lines += [
            ":16R:AMT",
            f":19A::SETT//{swift_amount_text(instr.currency, Decimal(instr.settlement_amount))}",
            ":16S:AMT",
        ]
    lines.append(":16S:SETDET")
    block4 = "\n".join(lines)
    chk = hashlib.sha256(block4.encode()).hexdigest()[:12].upper()
    return (
        f"{{1:F01{lt_address(instr.sender_bic)}0000000000}}"
        f"{{2:I{mt}{lt_address(instr.our_agent_bic, 'X')}N}}"
        f"{{3:{{108:{instr.reference[:16]}}}}}"
        f"{{4:\n{block4}\n-}}"
        f"{{5:{{CHK:{chk}}}}}"
    )


# --- structure check ---------------------------------------------------------------------------------------------

_REF_RE = re.compile(r"^[A-Za-z0-9/\-?:().,'+ ]{1,16}$")


def _check_reference(value: str, label: str, problems: list[str]) -> None:
    if not _REF_RE.match(value) or value.startswith("/") or value.endswith("/") or "//" in value:
        problems.append(
            f"{label} {value!r}: a reference is 1-16 characters, no leading/trailing '/' and no '//'"
        )


def _need(
    seq: Sequence | None, tag: str, qualifier: str | None, where: str, problems: list[str]
) -> Field | None:
    if seq is None:
        return None
    f = seq.find(tag, qualifier)
    if f is None:
        label = f":{tag}::{qualifier}" if qualifier else f":{tag}:"
        problems.append(f"{where}: mandatory field {label} missing")
    return f


def validate_mt54x(msg: FinMessage) -> list[str]:
    """The structure problems of a parsed MT540-543 (empty list: it has what the standard makes mandatory)."""
    problems = [f"structure: {p}" for p in msg.problems]
    mt = msg.message_type
    if mt not in ("540", "541", "542", "543"):
        return [*problems, f"MT{mt} is not a settlement instruction (MT540-543)"]
    top = [s.name for s in msg.root.children]
    mandatory = ["GENL", "TRADDET", "FIAC", "SETDET"]
    for name in mandatory:
        if name not in top:
            problems.append(f"mandatory sequence {name} missing")
    present = [n for n in top if n in mandatory]
    if present != [n for n in mandatory if n in present]:
        problems.append(f"sequences out of order: {', '.join(top)} (expected GENL, TRADDET, FIAC, SETDET)")
    genl = msg.root.sequence("GENL")
    seme = _need(genl, "20C", "SEME", "GENL", problems)
    if seme is not None:
        _check_reference(seme.value, ":20C::SEME", problems)
    func = _need(genl, "23G", None, "GENL", problems)
    if func is not None:
        fn = func.value.split("/")[0]
        if fn not in ("NEWM", "CANC", "PREA"):
            problems.append(f"GENL: :23G: function {fn!r} is not NEWM, CANC or PREA")
        links = genl.sequences("LINK") if genl else []
        if fn == "CANC" and not any(s.find("20C", "PREV") for s in links):
            problems.append("GENL: a cancellation (CANC) needs LINK :20C::PREV naming the message cancelled")
    trad = msg.root.sequence("TRADDET")
    sett = _need(trad, "98", "SETT", "TRADDET", problems)
    if sett is not None:
        try:
            sett.date()
        except FinParseError as err:
            problems.append(f"TRADDET: {err}")
    isin = _need(trad, "35B", None, "TRADDET", problems)
    if isin is not None and not re.match(r"^(ISIN [A-Z]{2}[A-Z0-9]{9}\d|/[A-Z]{2}/)", isin.value):
        problems.append(f"TRADDET: :35B: {isin.value.splitlines()[0]!r} has neither ISIN nor /CC/ local code")
    fiac = msg.root.sequence("FIAC")
    qty = _need(fiac, "36B", "SETT", "FIAC", problems)
    if qty is not None:
        try:
            kind, value = qty.quantity()
            if kind not in ("UNIT", "FAMT", "AMOR"):
                problems.append(f"FIAC: :36B::SETT quantity type {kind} is not UNIT, FAMT or AMOR")
            if value <= 0:
                problems.append("FIAC: :36B::SETT quantity must be positive")
        except FinParseError as err:
            problems.append(f"FIAC: {err}")
    if fiac is not None and fiac.find("97", "SAFE") is None:
        problems.append("FIAC: mandatory field :97a::SAFE (safekeeping account) missing")
    setdet = msg.root.sequence("SETDET")
    _need(setdet, "22F", "SETR", "SETDET", problems)
    if setdet is not None:
        parties = {s.fields[0].qualifier for s in setdet.sequences("SETPRTY") if s.fields}
        agent = "DEAG" if mt in RECEIVE_TYPES else "REAG"
        for needed in ("PSET", agent):
            if needed not in parties:
                problems.append(f"SETDET: party sequence SETPRTY with :95a::{needed} missing")
        settle_amounts = [
            f for a in setdet.sequences("AMT") for f in a.fields if f.tag == "19A" and f.qualifier == "SETT"
        ]
        if mt in AGAINST_PAYMENT_TYPES and not settle_amounts:
            problems.append(f"SETDET: MT{mt} is against payment and needs AMT :19A::SETT (settlement amount)")
        if mt not in AGAINST_PAYMENT_TYPES and settle_amounts:
            problems.append(f"SETDET: MT{mt} is free of payment and must not carry :19A::SETT")
        for f in settle_amounts:
            try:
                ccy, amount = f.amount()
            except FinParseError as err:
                problems.append(f"SETDET: {err}")
                continue
            decimals = max(0, -amount.normalize().as_tuple().exponent)  # type: ignore[operator]
            if decimals > minor_units(ccy):
                problems.append(
                    f"SETDET: :19A::SETT {f.value} has {decimals} decimals; {ccy} has {minor_units(ccy)} "
                    "(SWIFT refuses more decimals than the currency has)"
                )
    return problems


# --- readers: MT544-547 confirmations, MT548 status advice ---------------------------------------------------------


def _first(msg: FinMessage, tag: str, qualifier: str) -> Field | None:
    return msg.find(tag, qualifier)


def _isin(msg: FinMessage) -> str | None:
    f = msg.find("35B")
    if f is None:
        return None
    m = re.match(r"ISIN ([A-Z]{2}[A-Z0-9]{9}\d)", f.value)
    return m.group(1) if m else None


def _party_bic(msg: FinMessage, qualifiers: tuple[str, ...]) -> str | None:
    for seq in msg.sequences("SETPRTY"):
        for f in seq.fields:
            if f.tag == "95P" and f.qualifier in qualifiers:
                return f.value.strip()
    return None


def _common(msg: FinMessage, kind: str) -> IncomingSettlement:
    rela = msg.find("20C", "RELA")
    prep = msg.find("98", "PREP")
    sett = msg.find("98", "SETT")
    trad = msg.find("98", "TRAD")
    where = f"{msg.file_name}, message {msg.index}" if msg.file_name else f"message {msg.index}"
    inc = IncomingSettlement(
        kind=kind,  # type: ignore[arg-type]
        message_type=f"MT{msg.message_type}",
        reference=msg.reference,
        related_reference=rela.value.strip() if rela and rela.value.strip() != "NONREF" else None,
        function=msg.function or "NEWM",
        sender=msg.sender_bic,
        isin=_isin(msg),
        settlement_date=sett.date() if sett else None,
        trade_date=trad.date() if trad else None,
        sent_at=prep.datetime() if prep and prep.tag != "98A" else None,
        source=where,
    )
    if prep is not None and prep.tag == "98A":
        d = prep.date()
        inc.sent_at = dt.datetime(d.year, d.month, d.day)
    safe = msg.sequence("FIAC")
    f = safe.find("97", "SAFE") if safe else None
    inc.safekeeping_account = f.value if f else None
    qty = msg.find("36B", "SETT")
    if qty is not None:
        inc.quantity = qty.quantity()[1]
    amt = msg.find("19A", "SETT")
    if amt is not None:
        inc.currency, inc.amount = amt.amount()
    return inc


def read_confirmation(msg: FinMessage) -> IncomingSettlement:
    """MT544-547 → the settled quantity, amount and date it confirms (raises NoSettlementData on a stub)."""
    if msg.message_type not in CONFIRMATION_TYPES:
        raise UnsupportedMessage(f"MT{msg.message_type} is not a settlement confirmation (MT544-547)")
    if msg.sequence("FIAC") is None:
        raise NoSettlementData(_no_data(msg, "FIAC (settled quantity)"))
    inc = _common(msg, "confirmation")
    inc.direction = "RECE" if msg.message_type in RECEIVE_TYPES else "DELI"
    inc.against_payment = msg.message_type in AGAINST_PAYMENT_TYPES
    qty = [f for f in msg.sequence("FIAC").fields if f.tag == "36B" and f.qualifier == "ESTT"]  # type: ignore[union-attr]
    if not qty:
        raise FinParseError("FIAC has no :36B::ESTT settled quantity", line=msg.sequence("FIAC").line)  # type: ignore[union-attr]
    # A bond may be reported both amortised (AMOR) and at face (FAMT): the face amount is what was instructed.
    by_type = dict(f.quantity() for f in qty)
    inc.settled_quantity = by_type.get("FAMT", by_type.get("UNIT", next(iter(by_type.values()))))
    estt = msg.find("19A", "ESTT")
    if estt is not None:
        inc.currency, inc.settled_amount = estt.amount()
    elif inc.against_payment:
        raise FinParseError(f"MT{msg.message_type} is against payment but has no :19A::ESTT settled amount")
    else:
        inc.settled_amount = Decimal(0)
    eset = msg.find("98", "ESET")
    if eset is None:
        raise FinParseError("TRADDET has no :98a::ESET effective settlement date")
    inc.settled_on = eset.date()
    pars = msg.find("22F", "PARS")
    inc.partial = pars.value if pars else None
    inc.counterparty_bic = _party_bic(msg, ("SELL", "BUYR"))
    return inc


def read_status(msg: FinMessage) -> IncomingSettlement:
    """MT548 → its statuses with reason codes and narrative, our reference, and the transaction details if given."""
    if msg.message_type != "548":
        raise UnsupportedMessage(f"MT{msg.message_type} is not a settlement status advice (MT548)")
    genl = msg.sequence("GENL")
    stats = genl.sequences("STAT") if genl else []
    if not stats:
        raise NoSettlementData(_no_data(msg, "STAT (status)"))
    inc = _common(msg, "status")
    for st in stats:
        f = st.find("25D")
        if f is None:
            raise FinParseError("STAT sequence without :25D: status", line=st.line, field=":25D:")
        reasons = st.sequences("REAS")
        if not reasons:
            inc.statuses.append(StatusReason(f.qualifier or "", f.value.strip()))
        for reas in reasons:
            code = reas.find("24B")
            text = reas.find("70D", "REAS")
            inc.statuses.append(
                StatusReason(
                    f.qualifier or "",
                    f.value.strip(),
                    code.value.strip() if code else None,
                    " ".join(text.value.split()) if text else None,
                )
            )
    tran = msg.sequence("SETTRAN")
    if tran is not None:
        rede = tran.find("22H", "REDE")
        paym = tran.find("22H", "PAYM")
        inc.direction = rede.value if rede and rede.value in ("RECE", "DELI") else None  # type: ignore[assignment]
        inc.against_payment = paym.value == "APMT" if paym else None
        inc.counterparty_bic = _party_bic(msg, ("SELL", "BUYR"))
    return inc


def _no_data(msg: FinMessage, what: str) -> str:
    seqs = ", ".join(s.name for s in msg.root.children) or "none"
    extra = f"; {'; '.join(msg.problems)}" if msg.problems else ""
    return (
        f"{msg.describe()}: no settlement data — the message has no {what} sequence "
        f"(sequences present: {seqs}){extra}"
    )


def read_incoming(msg: FinMessage) -> IncomingSettlement:
    """Any MT544-548 → IncomingSettlement; other types raise UnsupportedMessage naming what they are."""
    if msg.is_service:
        raise UnsupportedMessage(
            f"{msg.message_type} service message (network acknowledgement), not settlement data"
        )
    if msg.message_type in CONFIRMATION_TYPES:
        return read_confirmation(msg)
    if msg.message_type == "548":
        return read_status(msg)
    what = {
        "535": "a holdings statement",
        "536": "a transaction statement",
        "537": "a statement of pending transactions / penalties",
        "540": "a settlement instruction (receive free), not a status or confirmation",
        "541": "a settlement instruction (receive against payment), not a status or confirmation",
        "542": "a settlement instruction (deliver free), not a status or confirmation",
        "543": "a settlement instruction (deliver against payment), not a status or confirmation",
        "940": "a cash statement",
        "950": "a cash statement",
    }.get(msg.message_type, "not a settlement status or confirmation")
    raise UnsupportedMessage(f"MT{msg.message_type} is {what}; settlement import reads MT544-548 only")
