"""Futures give-ups and out-trades as units of work: the entry the GUI (and scripts) call.

The rules live in :mod:`.fails`, whose functions take a session because the demo and the netting code call them
inside larger units of work. Each function here opens one unit of work (``db.write()`` / ``db.read()``), calls the
rule function — which checks the actor and the state and writes the audit — and returns plain values, so a caller
holds no ORM object.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from app.models import Counterparty, Trade
from app.models.enums import SettlementExceptionKind
from app.models.settlement import ClearingException
from app.services.db import Database
from app.services.errors import NotFound, ValidationFailed
from app.services.permissions import Actor, Permission, require

from . import fails

GIVE_UP = SettlementExceptionKind.GIVE_UP.value
OUT_TRADE = SettlementExceptionKind.OUT_TRADE.value


def _value(v: Any) -> Any:
    return getattr(v, "value", v)


def exception_of(db: Database, actor: Actor, instruction_id: int) -> dict[str, Any] | None:
    """The give-up or out-trade behind a settlement-queue item, as plain values (None for a CSD instruction)."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        exc = fails.exceptions_of(s, instruction_id)
        if exc is None:
            return None
        codes = dict(
            s.execute(
                select(Counterparty.id, Counterparty.code).where(
                    Counterparty.id.in_([i for i in (exc.from_counterparty_id, exc.to_counterparty_id) if i])
                )
            ).all()
        )
        trade_ref = s.scalar(select(Trade.trade_ref).where(Trade.id == exc.trade_id))
        return {
            "id": exc.id,
            "instruction_id": exc.instruction_id,
            "kind": _value(exc.kind),
            "state": _value(exc.state),
            "trade_id": exc.trade_id,
            "trade_ref": trade_ref,
            "from": codes.get(exc.from_counterparty_id, ""),
            "to": codes.get(exc.to_counterparty_id, ""),
            "reason": exc.reason or "",
            "ack_ref": exc.ack_ref or "",
            "resolution": exc.resolution or "",
            "raised_at": exc.raised_at,
        }


def counterparties(db: Database, actor: Actor) -> list[tuple[int, str, str]]:
    """(id, code, name) of the active counterparties a trade can be given up to."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        rows = s.execute(
            select(Counterparty.id, Counterparty.code, Counterparty.name)
            .where(Counterparty.is_active.is_(True))
            .order_by(Counterparty.code)
        ).all()
    return [(int(i), str(c), str(n)) for i, c, n in rows]


def _trade_id(s: Any, trade_ref: str) -> int:
    ref = (trade_ref or "").strip()
    if not ref:
        raise ValidationFailed("Give the reference of the futures trade.")
    found = s.scalar(select(Trade.id).where(Trade.trade_ref == ref))
    if found is None:
        raise NotFound(f"There is no trade {ref} in the blotter.")
    return int(found)


def raise_give_up(
    db: Database, actor: Actor, trade_ref: str, to_counterparty_id: int, reason: str
) -> dict[str, Any]:
    """Give a futures trade up to another clearing broker; returns the new exception."""
    with db.write() as s:
        exc = fails.raise_give_up(s, actor, _trade_id(s, trade_ref), to_counterparty_id, reason)
        instruction_id = exc.instruction_id
    out = exception_of(db, actor, instruction_id)
    assert out is not None
    return out


def raise_out_trade(db: Database, actor: Actor, trade_ref: str, reason: str) -> dict[str, Any]:
    """Record that the counterparty does not recognise a futures trade; returns the new exception."""
    with db.write() as s:
        exc = fails.raise_out_trade(s, actor, _trade_id(s, trade_ref), reason)
        instruction_id = exc.instruction_id
    out = exception_of(db, actor, instruction_id)
    assert out is not None
    return out


#: verb -> (service function, words for the result). Each takes (session, actor, exception id, *args).
VERBS: dict[str, tuple[Any, str]] = {
    "acknowledge_give_up": (
        fails.acknowledge_give_up,
        "Take-up acknowledged: the trade now clears with {to}.",
    ),
    "reject_give_up": (fails.reject_give_up, "Take-up rejected: the give-up fails (REJT) until re-sent."),
    "resend_give_up": (fails.resend_give_up, "Give-up re-sent to {to}, awaiting take-up."),
    "acknowledge_out_trade": (
        fails.acknowledge_out_trade,
        "Out-trade query acknowledged by the counterparty.",
    ),
    "resolve_out_trade": (fails.resolve_out_trade, "Out-trade resolved."),
    "cancel_exception": (fails.cancel_exception, "Withdrawn."),
}


def act(db: Database, actor: Actor, verb: str, exception_id: int, *args: Any) -> dict[str, Any]:
    """Run one give-up/out-trade action in its own unit of work; returns the exception as it is now."""
    fn, _words = VERBS[verb]
    with db.write() as s:
        exc = s.get(ClearingException, exception_id)
        if exc is None:
            raise NotFound(f"There is no give-up or out-trade #{exception_id}.")
        instruction_id = exc.instruction_id
        if verb == "resolve_out_trade":
            fn(s, actor, exception_id, *args, on=dt.date.today())
        else:
            fn(s, actor, exception_id, *args)
    out = exception_of(db, actor, instruction_id)
    assert out is not None
    return out
