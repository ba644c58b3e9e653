"""What an incoming settlement status or confirmation says, whatever its format (MT544-548, sese.024/025, CSV).

Readers of every format produce an :class:`IncomingSettlement`; the importer matches it to an instruction and
applies it without caring where it came from. ``NoSettlementData`` and ``UnsupportedMessage`` are the two ways a
well-formed message can still be useless to settlement: a header-only stub, or a holdings statement sent to the
settlement importer.
"""

from __future__ import annotations

import datetime as dt
import operator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from app.services.errors import OpsDeskError


class NoSettlementData(OpsDeskError):
    """A message that parses but carries no settlement data (a header-only stub)."""


class UnsupportedMessage(OpsDeskError):
    """A message type the settlement importer does not apply (e.g. an MT535 holdings statement)."""


@dataclass(slots=True)
class StatusReason:
    """One status and its reason: ``:25D::MTCH//NMAT`` + ``:24B::NMAT//CMIS`` → ("MTCH", "NMAT", "CMIS", text)."""

    qualifier: str  # MTCH, SETT, IPRC, INMH … (sese.024: the element name mapped to these)
    status: str  # NMAT, MACH, PEND, PENF, PACK, REJT, CAND …
    code: str | None = None  # CMIS, DDAT, LACK …
    text: str | None = None  # :70D::REAS narrative

    def to_json(self) -> dict[str, Any]:
        return {"qualifier": self.qualifier, "status": self.status, "code": self.code, "text": self.text}


@dataclass(slots=True)
class IncomingSettlement:
    """The settlement facts of one incoming message, with where they came from (for quarantine reasons)."""

    kind: Literal["status", "confirmation"]
    message_type: str  # "MT548", "MT545", "sese.024.001.10", "CSV"
    reference: str | None  # the sender's own reference (SEME / AcctSvcrTxId)
    related_reference: str | None  # OUR reference (RELA / AcctOwnrTxId)
    function: str = "NEWM"  # NEWM, CANC, RVSL … (23G)
    sender: str | None = None
    # Matching fields (fallback when the reference is missing or unknown).
    isin: str | None = None
    quantity: Decimal | None = None  # instructed quantity (36B::SETT) when given
    settlement_date: dt.date | None = None
    trade_date: dt.date | None = None
    amount: Decimal | None = None  # instructed settlement amount (19A::SETT) when given
    currency: str | None = None
    direction: Literal["RECE", "DELI"] | None = None
    against_payment: bool | None = None
    counterparty_bic: str | None = None
    safekeeping_account: str | None = None
    # Confirmation.
    settled_quantity: Decimal | None = None
    settled_amount: Decimal | None = None
    settled_on: dt.date | None = None
    partial: str | None = None  # PAIN (partial) / PARC (remainder of a partial) when the sender says so
    # Status advice.
    statuses: list[StatusReason] = field(default_factory=list)
    sent_at: dt.datetime | None = None  # preparation date-time (98C::PREP / CreDtTm)
    source: str = ""  # "file, message n" for quarantine reasons

    def status(self, qualifier: str) -> StatusReason | None:
        return next((s for s in self.statuses if s.qualifier == qualifier), None)

    def to_json(self) -> dict[str, Any]:
        # Runs once per message of a file: every value read in one C call; plain values pass through, the rest is
        # converted by type.
        out: dict[str, Any] = {}
        for k, x in zip(_JSON_KEYS, _json_values(self), strict=True):
            if x is None:
                continue
            t = type(x)
            if t is str or t is bool:
                pass
            elif isinstance(x, Decimal):
                x = str(x)
            elif isinstance(x, dt.date):  # date and datetime
                x = x.isoformat()
            out[k] = x
        out["statuses"] = [s.to_json() for s in self.statuses]
        return out


_JSON_KEYS = tuple(k for k in IncomingSettlement.__slots__ if k != "statuses")  # type: ignore[attr-defined]
_json_values = operator.attrgetter(*_JSON_KEYS)


# Every field, in the order the constructor takes them: what crosses to and from a helper process (a tuple of plain
# values pickles in a fraction of the time of the dataclasses themselves).
_FIELDS: tuple[str, ...] = IncomingSettlement.__slots__  # type: ignore[attr-defined]
_all_values = operator.attrgetter(*_FIELDS)
_STATUSES = _FIELDS.index("statuses")


def pack(inc: IncomingSettlement) -> tuple[Any, ...]:
    """``inc`` as a tuple of plain values (its statuses as tuples), for :func:`unpack`."""
    v = _all_values(inc)
    statuses = [(s.qualifier, s.status, s.code, s.text) for s in inc.statuses]
    return (*v[:_STATUSES], statuses, *v[_STATUSES + 1 :])


def unpack(values: tuple[Any, ...]) -> IncomingSettlement:
    """The :class:`IncomingSettlement` that :func:`pack` made ``values`` of."""
    inc = IncomingSettlement(*values)
    inc.statuses = [StatusReason(*s) for s in inc.statuses]  # type: ignore[misc]
    return inc
