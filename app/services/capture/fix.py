"""FIX drop-copy capture: execution reports (35=8) from log files become trades, their fills versions.

**Log layouts.** One or more messages per line, fields separated by SOH (0x01), ``|`` or ``^A``, with or without a
prefix before ``8=FIX``: a QuickFIX messages log (``20240527-13:45:01.123 : 8=FIX.4.4...``), a QuickFIX/J log
(``20240527-13:45:01.123: 8=FIX...``), a session prefix (``FIX.4.4:SENDER->TARGET: 8=FIX...``) or any other text.
Each message is framed by its BodyLength (9) and checked against its CheckSum (10) (computed with SOH separators, as
on the wire): a message that is cut short or fails either check is rejected with its line number (FIX_GARBLED).
Messages that are not execution reports (heartbeats 35=0, logons 35=A, test requests, resends, orders sent ...)
and execution reports that carry no execution (150=0 New, 150=4 Canceled, 150=5 Replaced ...) are skipped, not
rejected. Fields are read with ``simplefix``.

**What a report means.**

=================================== ===============================================================================
ExecType (150) [ExecTransType (20)] effect
=================================== ===============================================================================
F Trade; 1/2 partial/fill (4.2)     a fill: creates the order's trade (version NEW) or extends it (version AMEND)
G Trade correct; 1/2 with 20=2      replaces the fill named by ExecRefID (19) with LastQty/LastPx: version AMEND
H Trade cancel; 1/2 with 20=1       removes the fill named by ExecRefID (19): version AMEND, or CANCEL (trade
                                    status CANCELLED) when no fill of the order is left
=================================== ===============================================================================

An ExecID (17) already captured (in this file or an earlier one, found in the versions of the order's trade) is a
duplicate and changes nothing; a correction or cancel of an execution never received is rejected (UNKNOWN_TRADE).

**One trade per order.** Partial fills of one order aggregate into one trade: trade_ref ``<SenderCompID>-<OrderID>``
(49, 37; ClOrdID 11 when OrderID is absent), quantity the sum of the fills' LastQty (32), price their
quantity-weighted average of LastPx (31) rounded half-even to 8 decimals, gross from the exact sum of the fills'
quantity x price. Each fill, correction or cancel is a trade version whose payload keeps the message (raw, with
``|``), its ExecID (also in ``trade_versions.source_ref``) and the fill's quantity and price, so later files can
replay the order's fills.

**Field mapping.**

================ ==================================================================================================
trade field      FIX tags
================ ==================================================================================================
isin             48 SecurityID when 22 IDSource = 4 (ISIN); a CUSIP (22=1) or SEDOL (22=2) whose US/CA or GB/IE ISIN
                 is in the instrument master; else 55 Symbol when it is a unique ticker in the master; else the
                 identifier as sent (the trade goes to repair with ISIN_CHECK/ISIN_UNKNOWN)
side             54: 1 buy, 2 sell, 3 buy minus, 4 sell plus, 5 sell short, 6 sell short exempt
quantity, price  32 LastQty, 31 LastPx per fill (6 AvgPx and 14 CumQty are kept in the version payload)
currency         15 (blank: the instrument's)
trade_date       75 TradeDate, else the UTC date of 60 TransactTime
trade_time       60 TransactTime of the order's first fill (UTC)
settlement_date  64 SettlDate if sent: checked against the computed date (SETTLE_DATE_DIFF)
account          1 Account, else party role 24 (customer account), else 109 ClientID (4.2), else party role 3
counterparty     party (453 group: 448 PartyID, 447 source N=LEI, B=BIC, else our code, 452 role) with role 17
                 (contra firm), else role 1 (executing firm); else 375 ContraBroker, else 76 ExecBroker (4.2)
order_ref        11 ClOrdID
================ ==================================================================================================
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd
import simplefix

from app.models.enums import TradeStatus
from app.services.errors import ValidationFailed
from app.services.identifiers import make_isin

from .convert import INCOMING_COLUMNS, empty_incoming
from .plan import DUPLICATE, OPEN_STATUSES, PLAN_EXTRA, REJECTED, ROW, SKIPPED, Plan
from .readers import ZIP_MAGIC, Problem, refuse
from .refdata import RefData
from .units import PRICE_SCALE, QTY_SCALE, frame_of, records_frame

MSG_TYPES = {
    "0": "Heartbeat",
    "1": "TestRequest",
    "2": "ResendRequest",
    "3": "Reject",
    "4": "SequenceReset",
    "5": "Logout",
    "8": "ExecutionReport",
    "9": "OrderCancelReject",
    "A": "Logon",
    "D": "NewOrderSingle",
    "F": "OrderCancelRequest",
    "G": "OrderCancelReplaceRequest",
    "j": "BusinessMessageReject",
    "AE": "TradeCaptureReport",
}
EXEC_TYPES = {
    "0": "New",
    "1": "Partial fill",
    "2": "Fill",
    "3": "Done for day",
    "4": "Canceled",
    "5": "Replaced",
    "6": "Pending cancel",
    "7": "Stopped",
    "8": "Rejected",
    "9": "Suspended",
    "A": "Pending new",
    "B": "Calculated",
    "C": "Expired",
    "D": "Restated",
    "E": "Pending replace",
    "F": "Trade",
    "G": "Trade correct",
    "H": "Trade cancel",
    "I": "Order status",
}
SIDES = {"1": "BUY", "2": "SELL", "3": "BUY", "4": "SELL", "5": "SELL", "6": "SELL"}
FILL, CORRECT, CANCEL = "FILL", "CORRECT", "CANCEL"

_START = re.compile(rb"(?<![0-9A-Za-z])8=FIXT?\.\d+\.\d+")
SOH = b"\x01"


@dataclass
class ExecReport:
    """An execution report that carries an execution (fill, correction or cancel), as read from the log."""

    line: int
    raw: str  # the message with '|' separators, for the version payload and the detail panel
    kind: str  # FILL, CORRECT, CANCEL
    begin_string: str
    sender: str
    exec_id: str
    exec_ref_id: str
    exec_type: str
    order_id: str
    cl_ord_id: str
    isin: str
    security_text: str  # what identified the security, for messages
    side: str
    last_qty: Decimal | None
    last_px: Decimal | None
    avg_px: str
    cum_qty: str
    currency: str
    trade_date: dt.date | None
    transact_time: dt.datetime | None
    settl_date: dt.date | None
    account: str
    cpty_code: str
    cpty_lei: str
    cpty_bic: str

    @property
    def trade_ref(self) -> str:
        return f"{self.sender}-{self.order_id or self.cl_ord_id}"[:64]


@dataclass
class FixLog:
    file_name: str
    reports: list[ExecReport] = field(default_factory=list)
    rejected: list[Problem] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, why)

    @property
    def messages(self) -> int:
        return len(self.reports) + len(self.rejected) + len(self.skipped)


# --- framing ---------------------------------------------------------------------------------------------------------


def _frame(seg: bytes) -> tuple[bytes | None, int, str]:
    """Frame the message at the start of ``seg`` (SOH-separated) by its BodyLength and check its CheckSum.

    Returns (message ending in SOH, bytes used, "") or (None, bytes to skip, the problem in words).
    """
    first = seg.find(SOH)
    if first < 0:
        return None, len(seg), "truncated: the message ends after its BeginString (8)"
    if not seg.startswith(b"9=", first + 1):
        return None, first + 1, "no BodyLength (9) after BeginString (8)"
    second = seg.find(SOH, first + 1)
    if second < 0:
        return None, len(seg), "truncated inside BodyLength (9)"
    length_text = seg[first + 3 : second]
    if not length_text.isdigit():
        return None, second + 1, f"BodyLength (9) '{length_text.decode('latin-1')}' is not a number"
    length = int(length_text)
    body_end = second + 1 + length
    if len(seg) < body_end + 6:
        return (
            None,
            len(seg),
            (
                f"truncated: BodyLength (9) announces {length} bytes of body but only {max(len(seg) - second - 1, 0)} "
                "follow, and no CheckSum (10)"
            ),
        )
    if seg[body_end : body_end + 3] != b"10=":
        return (
            None,
            second + 1,
            (
                f"BodyLength (9) says {length} but the CheckSum (10) field is not where that puts it "
                "(the message was altered or cut)"
            ),
        )
    checksum_text = seg[body_end + 3 : body_end + 6]
    expected = sum(seg[:body_end]) % 256
    if not checksum_text.isdigit() or int(checksum_text) != expected:
        return (
            None,
            body_end + 6,
            (
                f"CheckSum (10) is {checksum_text.decode('latin-1')} but the message sums to {expected:03d} "
                "(the message was altered or cut)"
            ),
        )
    return seg[: body_end + 6] + SOH, body_end + 7, ""


def _normalise(seg: bytes) -> bytes:
    """The delimiter follows the BeginString value: SOH, '|' or a printed '^A'."""
    begin_end = re.match(rb"8=FIXT?\.\d+\.\d+", seg)
    at = begin_end.end() if begin_end else 0
    if seg[at : at + 1] == b"|":
        return seg.replace(b"|", SOH)
    if seg[at : at + 2] == b"^A":
        return seg.replace(b"^A", SOH)
    return seg


def iter_messages(data: bytes) -> list[tuple[int, bytes | None, str]]:
    """(line number, SOH-separated message or None, problem) for every message start found in the log."""
    out: list[tuple[int, bytes | None, str]] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        line = line.rstrip(b"\r")
        pos = 0
        while True:
            m = _START.search(line, pos)
            if m is None:
                break
            seg = _normalise(line[m.start() :])
            msg, used, problem = _frame(seg)
            out.append((number, msg, problem))
            if msg is None and used <= 0:
                break
            # Continue after this message (a raw stream may hold several on one line); map back to the line.
            consumed = used if seg == line[m.start() :] else _original_length(line[m.start() :], used)
            pos = m.start() + max(consumed, 1)
    return out


def _original_length(orig: bytes, used_normalised: int) -> int:
    """How many bytes of the original segment (with '^A' separators) the first ``used`` normalised bytes are."""
    if b"^A" not in orig[:64]:
        return used_normalised
    count = 0
    i = 0
    while i < len(orig) and count < used_normalised:
        i += 2 if orig[i : i + 2] == b"^A" else 1
        count += 1
    return i


# --- reading ---------------------------------------------------------------------------------------------------------


def _text(msg: simplefix.FixMessage, tag: int) -> str:
    v = msg.get(tag)
    return v.decode("utf-8", "replace").strip() if v is not None else ""


def _decimal(
    msg: simplefix.FixMessage, tag: int, name: str, line: int, problems: list[Problem]
) -> Decimal | None:
    text = _text(msg, tag)
    if not text:
        return None
    try:
        value = Decimal(text)
        if not value.is_finite():
            raise InvalidOperation
        return value
    except InvalidOperation:
        problems.append(Problem(line, name, "FIX_FIELD", f"{name} ({tag}) '{text}' is not a number"))
        return None


def _date(text: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(text[:8], "%Y%m%d").date() if len(text) >= 8 else None
    except ValueError:
        return None


def _timestamp(text: str) -> dt.datetime | None:
    for fmt in ("%Y%m%d-%H:%M:%S.%f", "%Y%m%d-%H:%M:%S"):
        try:
            # FIX timestamps may carry up to nanoseconds; Python keeps microseconds.
            cut = text[:24] if "." in text else text
            return dt.datetime.strptime(cut, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    return None


def _parties(msg: simplefix.FixMessage) -> list[tuple[str, str, str]]:
    """(PartyID, PartyIDSource, PartyRole) of the Parties group (453), in order."""
    parties: list[list[str]] = []
    for tag, value in msg.pairs:
        tag = int(tag)
        text = value.decode("utf-8", "replace").strip()
        if tag == 448:
            parties.append([text, "", ""])
        elif tag == 447 and parties:
            parties[-1][1] = text
        elif tag == 452 and parties:
            parties[-1][2] = text
    return [(p[0], p[1], p[2]) for p in parties]


def _security(msg: simplefix.FixMessage, ref: RefData | None) -> tuple[str, str]:
    """(ISIN or the identifier as sent, words naming what was sent)."""
    sec_id, source, symbol = _text(msg, 48), _text(msg, 22), _text(msg, 55)
    if sec_id and source == "4":
        return sec_id.upper(), f"ISIN {sec_id}"
    if ref is not None:
        countries = {"1": ("US", "CA"), "2": ("GB", "IE")}.get(source, ())
        for country in countries:
            try:
                isin = make_isin(country, sec_id if source == "1" else "00" + sec_id)
            except ValidationFailed:
                continue
            if isin in ref.isin_pos:
                return isin, f"SecurityID {sec_id} (22={source})"
        if symbol and symbol.upper() in ref.ticker_pos:
            return str(ref.instruments["isin"].iloc[ref.ticker_pos[symbol.upper()]]), f"Symbol {symbol}"
    sent = sec_id or symbol
    return sent[:12].upper(), (f"SecurityID {sec_id} (22={source})" if sec_id else f"Symbol {symbol}")


def _party_pick(parties: list[tuple[str, str, str]], roles: tuple[str, ...]) -> tuple[str, str] | None:
    for role in roles:
        for pid, src, r in parties:
            if r == role and pid:
                return pid, src
    return None


def read_log(data: bytes, file_name: str, ref: RefData | None = None) -> FixLog:
    """Frame, check and read every message of a FIX log. Refuses a file that holds no FIX message at all."""
    if not data or not data.strip():
        raise refuse(file_name, "the file is empty")
    if data.startswith(ZIP_MAGIC) or b"\x00" in data[:65536]:
        raise refuse(file_name, "it is a binary file, not a FIX log")
    framed = iter_messages(data)
    if not framed:
        raise refuse(
            file_name, "it holds no FIX message (no '8=FIX' anywhere); is this the right file and format?"
        )
    log = FixLog(file_name)
    parser = simplefix.FixParser()
    for line, raw, problem in framed:
        if raw is None:
            log.rejected.append(Problem(line, "", "FIX_GARBLED", problem))
            continue
        parser.reset()
        try:
            parser.append_buffer(raw)
            msg = parser.get_message()
        except Exception as err:  # simplefix raises its own error types for malformed tag=value pairs
            log.rejected.append(Problem(line, "", "FIX_GARBLED", f"the message cannot be parsed ({err})"))
            continue
        if msg is None:
            log.rejected.append(Problem(line, "", "FIX_GARBLED", "the message cannot be parsed"))
            continue
        msg_type = _text(msg, 35)
        if msg_type != "8":
            log.skipped.append(
                (line, f"MsgType {msg_type} ({MSG_TYPES.get(msg_type, 'other')}) is not an execution report")
            )
            continue
        report = _report(msg, raw, line, ref, log)
        if report is not None:
            log.reports.append(report)
    return log


def _report(
    msg: simplefix.FixMessage, raw: bytes, line: int, ref: RefData | None, log: FixLog
) -> ExecReport | None:
    exec_type = _text(msg, 150)
    trans = _text(msg, 20)
    if exec_type in ("F",) or (exec_type in ("1", "2") and trans in ("", "0")):
        kind = FILL
    elif exec_type == "G" or (exec_type in ("1", "2") and trans == "2"):
        kind = CORRECT
    elif exec_type == "H" or (exec_type in ("1", "2") and trans == "1"):
        kind = CANCEL
    else:
        log.skipped.append(
            (
                line,
                f"ExecType {exec_type or '(none)'} ({EXEC_TYPES.get(exec_type, 'unknown')}) carries no execution",
            )
        )
        return None
    problems: list[Problem] = []
    text = raw.replace(SOH, b"|").decode("utf-8", "replace")
    exec_id, exec_ref_id = _text(msg, 17), _text(msg, 19)
    order_id, cl_ord_id = _text(msg, 37), _text(msg, 11)
    if not exec_id:
        problems.append(Problem(line, "ExecID", "FIX_FIELD", "no ExecID (17)"))
    if not (order_id or cl_ord_id):
        problems.append(Problem(line, "OrderID", "FIX_FIELD", "no OrderID (37) nor ClOrdID (11)"))
    if kind != FILL and not exec_ref_id:
        problems.append(
            Problem(
                line,
                "ExecRefID",
                "FIX_FIELD",
                f"a trade {kind.lower()} needs the ExecRefID (19) it applies to",
            )
        )
    last_qty = _decimal(msg, 32, "LastQty", line, problems)
    last_px = _decimal(msg, 31, "LastPx", line, problems)
    side_code = _text(msg, 54)
    side = SIDES.get(side_code, "")
    isin, security_text = _security(msg, ref)
    transact = _timestamp(_text(msg, 60))
    trade_date = _date(_text(msg, 75)) or (transact.date() if transact else None)
    if kind != CANCEL:
        if last_qty is None and not any(p.field == "LastQty" for p in problems):
            problems.append(Problem(line, "LastQty", "FIX_FIELD", "no LastQty (32)"))
        if last_px is None and not any(p.field == "LastPx" for p in problems):
            problems.append(Problem(line, "LastPx", "FIX_FIELD", "no LastPx (31)"))
        for value, name, scale in ((last_qty, "LastQty", QTY_SCALE), (last_px, "LastPx", PRICE_SCALE)):
            if value is not None and value != value.quantize(
                Decimal(1).scaleb(-scale), rounding=ROUND_HALF_EVEN
            ):
                problems.append(
                    Problem(line, name, "FIX_FIELD", f"{name} {value} has more than {scale} decimals")
                )
    if kind == FILL:
        if not side:
            problems.append(
                Problem(
                    line,
                    "Side",
                    "FIX_FIELD",
                    f"Side (54) '{side_code}' is not a buy or a sell" if side_code else "no Side (54)",
                )
            )
        if not isin:
            problems.append(Problem(line, "SecurityID", "FIX_FIELD", "no SecurityID (48) nor Symbol (55)"))
        if trade_date is None:
            problems.append(
                Problem(line, "TradeDate", "FIX_FIELD", "no readable TradeDate (75) nor TransactTime (60)")
            )
    if problems:
        log.rejected.extend(problems)
        return None
    parties = _parties(msg)
    account = _text(msg, 1)
    if not account:
        picked = _party_pick(parties, ("24",))
        account = picked[0] if picked else _text(msg, 109)
        if not account:
            picked = _party_pick(parties, ("3",))
            account = picked[0] if picked else ""
    cpty_code = cpty_lei = cpty_bic = ""
    picked = _party_pick(parties, ("17", "1"))
    if picked:
        pid, src = picked
        if src == "N":
            cpty_lei = pid.upper()
        elif src == "B":
            cpty_bic = pid.upper()
        else:
            cpty_code = pid.upper()
    else:
        cpty_code = (_text(msg, 375) or _text(msg, 76)).upper()
    return ExecReport(
        line=line,
        raw=text,
        kind=kind,
        begin_string=_text(msg, 8),
        sender=_text(msg, 49),
        exec_id=exec_id,
        exec_ref_id=exec_ref_id,
        exec_type=exec_type + (f"/20={trans}" if trans else ""),
        order_id=order_id,
        cl_ord_id=cl_ord_id,
        isin=isin,
        security_text=security_text,
        side=side,
        last_qty=last_qty,
        last_px=last_px,
        avg_px=_text(msg, 6),
        cum_qty=_text(msg, 14),
        currency=_text(msg, 15).upper(),
        trade_date=trade_date,
        transact_time=transact,
        settl_date=_date(_text(msg, 64)),
        account=account.upper(),
        cpty_code=cpty_code,
        cpty_lei=cpty_lei,
        cpty_bic=cpty_bic,
    )


# --- aggregation into trades -----------------------------------------------------------------------------------------


@dataclass
class Fill:
    exec_id: str
    qty: Decimal
    px: Decimal


@dataclass
class OrderState:
    """An order's trade while its executions are applied: active fills, every ExecID seen, new versions."""

    trade_ref: str
    trade_id: int = -1
    status: str | None = None  # of the existing trade
    fo_version: int = 0
    row_version: int = 0
    source: str = ""
    header: dict[str, Any] = field(default_factory=dict)
    fills: dict[str, Fill] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    replaced: dict[str, str] = field(default_factory=dict)  # corrected ExecID -> the correction's ExecID
    cancelled: bool = False
    versions: list[tuple[str, ExecReport]] = field(default_factory=list)  # (action, report)
    snapshot: tuple[Decimal, Decimal, int] | None = (
        None  # qty, avg price, notional units before a full cancel
    )

    def resolve(self, exec_id: str) -> str:
        while exec_id in self.replaced:
            exec_id = self.replaced[exec_id]
        return exec_id

    def totals(self) -> tuple[Decimal, Decimal, int]:
        """(quantity, average price rounded to 8 decimals, exact notional in units of 1e-14)."""
        qty = sum((f.qty for f in self.fills.values()), Decimal(0))
        notional = sum((f.qty * f.px for f in self.fills.values()), Decimal(0))
        avg = (
            (notional / qty).quantize(Decimal(1).scaleb(-PRICE_SCALE), rounding=ROUND_HALF_EVEN)
            if qty
            else Decimal(0)
        )
        return qty, avg, int(notional.scaleb(QTY_SCALE + PRICE_SCALE))

    def replay(self, payload: dict[str, Any]) -> None:
        """Re-apply a stored version's execution (from an earlier import) to rebuild the active fills."""
        exec_id = str(payload.get("exec_id", ""))
        kind = payload.get("kind")
        self.seen.add(exec_id)
        if kind == FILL:
            self.fills[exec_id] = Fill(exec_id, Decimal(payload["last_qty"]), Decimal(payload["last_px"]))
        elif kind == CORRECT:
            old = self.resolve(str(payload.get("exec_ref_id", "")))
            self.fills.pop(old, None)
            self.replaced[old] = exec_id
            self.fills[exec_id] = Fill(exec_id, Decimal(payload["last_qty"]), Decimal(payload["last_px"]))
        elif kind == CANCEL:
            self.fills.pop(self.resolve(str(payload.get("exec_ref_id", ""))), None)


def version_payload(rep: ExecReport, file_name: str, batch_id: int) -> dict[str, Any]:
    return {
        "file": file_name,
        "line": rep.line,
        "batch": batch_id,
        "kind": rep.kind,
        "exec_id": rep.exec_id,
        "exec_ref_id": rep.exec_ref_id or None,
        "exec_type": rep.exec_type,
        "order_id": rep.order_id,
        "cl_ord_id": rep.cl_ord_id,
        "last_qty": None if rep.last_qty is None else format(rep.last_qty, "f"),
        "last_px": None if rep.last_px is None else format(rep.last_px, "f"),
        "avg_px": rep.avg_px or None,
        "cum_qty": rep.cum_qty or None,
        "transact_time": rep.transact_time.isoformat() if rep.transact_time else None,
        "raw": rep.raw,
    }


def state_from_trade(trade: dict[str, Any], payloads: list[dict[str, Any]]) -> OrderState:
    """The state of an order's trade captured earlier: its row and the executions its versions recorded."""
    state = OrderState(
        trade_ref=str(trade["trade_ref"]),
        trade_id=int(trade["id"]),
        status=str(trade["status"]),
        fo_version=int(trade["fo_version"]),
        row_version=int(trade["version"]),
        source=str(trade["source"]),
        header={
            "isin": trade["isin"],
            "account_code": trade["account_code"],
            "counterparty_code": trade["counterparty_code"],
            "cpty_lei": "",
            "cpty_bic": "",
            "side": trade["side"],
            "currency": trade["currency"],
            "trade_date": np.datetime64(trade["trade_date"], "D"),
            "trade_time": np.datetime64(trade["trade_time"], "us"),
            "settle_given": np.datetime64("NaT", "D"),
            "order_ref": trade["order_ref"] or "",
        },
    )
    state.cancelled = state.status == TradeStatus.CANCELLED.value
    for payload in payloads:
        state.replay(payload)
    return state


def _header(rep: ExecReport) -> dict[str, Any]:
    return {
        "isin": rep.isin,
        "account_code": rep.account,
        "counterparty_code": rep.cpty_code,
        "cpty_lei": rep.cpty_lei,
        "cpty_bic": rep.cpty_bic,
        "side": rep.side,
        "currency": rep.currency,
        "trade_date": np.datetime64(rep.trade_date, "D"),
        "trade_time": np.datetime64(
            (rep.transact_time or dt.datetime.combine(rep.trade_date, dt.time(0), dt.UTC))  # type: ignore[arg-type]
            .astimezone(dt.UTC)
            .replace(tzinfo=None),
            "us",
        ),
        "settle_given": np.datetime64(rep.settl_date, "D") if rep.settl_date else np.datetime64("NaT", "D"),
        "order_ref": rep.cl_ord_id,
    }


def plan_fix(log: FixLog, states: dict[str, OrderState], batch_id: int, source: str) -> Plan:
    """Apply the log's executions, in order, to their orders' trades (see the module docstring)."""
    open_statuses = OPEN_STATUSES
    kind: list[str] = []
    line_state: list[OrderState | None] = []
    problems = list(log.rejected)
    notes: dict[int, str] = {}
    lines: list[int] = []
    refs: list[str] = []
    for rep in log.reports:
        ref = rep.trade_ref
        state = states.get(ref)
        if state is None:
            state = states[ref] = OrderState(trade_ref=ref)
        lines.append(rep.line)
        refs.append(ref)
        line_state.append(None)
        if rep.exec_id in state.seen:
            kind.append(DUPLICATE)
            notes[rep.line] = f"ExecID {rep.exec_id} was already captured (trade {ref})"
            continue
        locked = state.trade_id >= 0 and state.status not in open_statuses and not state.cancelled
        if state.trade_id >= 0 and not state.source.startswith("FIX"):
            kind.append(REJECTED)
            problems.append(
                Problem(
                    rep.line,
                    "OrderID",
                    "TRADE_LOCKED",
                    f"trade {ref} exists but was captured from {state.source}",
                )
            )
            continue
        if locked or state.cancelled:
            kind.append(REJECTED)
            status = TradeStatus.CANCELLED.value if state.cancelled else state.status
            verb = {FILL: "extended by a fill", CORRECT: "corrected", CANCEL: "cancelled"}[rep.kind]
            problems.append(
                Problem(
                    rep.line,
                    "ExecID",
                    "TRADE_LOCKED",
                    f"trade {ref} is {status} and cannot be {verb} by FIX"
                    + ("" if state.cancelled else "; propose a correction instead"),
                )
            )
            continue
        if rep.kind == FILL:
            if not state.header:
                state.header = _header(rep)
            state.fills[rep.exec_id] = Fill(rep.exec_id, rep.last_qty, rep.last_px)  # type: ignore[arg-type]
            action = "NEW" if state.fo_version == 0 and not state.versions else "AMEND"
        else:
            target = state.resolve(rep.exec_ref_id)
            if target not in state.fills:
                kind.append(REJECTED)
                verb = "corrects" if rep.kind == CORRECT else "cancels"
                problems.append(
                    Problem(
                        rep.line,
                        "ExecRefID",
                        "UNKNOWN_TRADE",
                        f"ExecID {rep.exec_id} {verb} execution {rep.exec_ref_id} of order {ref}, which OpsDesk "
                        "never received (or which was already cancelled)",
                    )
                )
                continue
            if rep.kind == CORRECT:
                state.fills.pop(target)
                state.replaced[target] = rep.exec_id
                state.fills[rep.exec_id] = Fill(rep.exec_id, rep.last_qty, rep.last_px)  # type: ignore[arg-type]
                action = "AMEND"
            else:
                state.snapshot = state.totals()
                state.fills.pop(target)
                state.replaced[target] = rep.exec_id
                action = "AMEND" if state.fills else "CANCEL"
                state.cancelled = not state.fills
        state.seen.add(rep.exec_id)
        state.versions.append((action, rep))
        kind.append(ROW)
        line_state[-1] = state

    row_records: list[dict[str, Any]] = []
    version_records: list[tuple[int, int, str, str, str]] = []
    row_index: dict[int, int] = {}
    for state in states.values():
        if not state.versions:
            continue
        idx = len(row_records)
        row_index[id(state)] = idx
        status_only = state.trade_id >= 0 and state.cancelled and not state.fills
        qty, avg, notional = (
            state.totals() if state.fills else (state.snapshot or (Decimal(0), Decimal(0), 0))
        )
        last = state.versions[-1][1]
        row_records.append(
            {
                "line": last.line,
                "trade_ref": state.trade_ref,
                "action": state.versions[-1][0],
                "source_ref": last.exec_id,
                **state.header,
                "qty_u": int(qty.scaleb(QTY_SCALE)),
                "px_u": int(avg.scaleb(PRICE_SCALE)),
                "trade_id": state.trade_id,
                "fo_version": state.fo_version + len(state.versions),
                "row_version": state.row_version,
                "cancelled": state.cancelled,
                "status_only": status_only,
                "prior_status": state.status,
                "notional_14": notional,
            }
        )
        for k, (action, rep) in enumerate(state.versions, start=1):
            version_records.append(
                (
                    idx,
                    state.fo_version + k,
                    action,
                    rep.exec_id,
                    json.dumps(version_payload(rep, log.file_name, batch_id), ensure_ascii=False),
                )
            )
    if row_records:
        rows = records_frame(row_records)
        rows["trade_date"] = rows["trade_date"].to_numpy().astype("datetime64[D]")
        rows["settle_given"] = pd.to_datetime(rows["settle_given"]).to_numpy().astype("datetime64[D]")
        rows["trade_time"] = pd.to_datetime(rows["trade_time"]).to_numpy().astype("datetime64[us]")
        for c in INCOMING_COLUMNS:
            if c not in rows:
                rows[c] = ""
    else:
        rows = empty_incoming()
        for c in PLAN_EXTRA:
            rows[c] = pd.Series([], dtype=object)
    versions = frame_of(
        {
            "row": np.array([v[0] for v in version_records], dtype=np.int64),
            "fo_version": np.array([v[1] for v in version_records], dtype=np.int64),
            "action": [v[2] for v in version_records],
            "source_ref": [v[3] for v in version_records],
            "payload": [v[4] for v in version_records],
        }
    )
    line_row = [row_index[id(s)] if s is not None else -1 for s in line_state]
    skipped_lines = [ln for ln, _ in log.skipped]
    for ln, why in log.skipped:
        notes[ln] = why
    rej_lines = sorted({p.line for p in log.rejected})
    all_lines = np.array(lines + rej_lines + skipped_lines, dtype=np.int64)
    all_kind = np.array(kind + [REJECTED] * len(rej_lines) + [SKIPPED] * len(skipped_lines), dtype=object)
    all_row = np.array(line_row + [-1] * (len(rej_lines) + len(skipped_lines)), dtype=np.int64)
    all_ref = np.array(refs + [""] * (len(rej_lines) + len(skipped_lines)), dtype=object)
    order = np.argsort(all_lines, kind="stable")
    return Plan(
        rows=rows,
        versions=versions,
        line_no=all_lines[order],
        line_kind=all_kind[order],
        line_row=all_row[order],
        line_ref=all_ref[order],
        problems=problems,
        notes=notes,
    )
