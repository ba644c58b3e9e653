"""The settlement instruction lifecycle: which status may follow which, and the one audited way to move there.

::

    PENDING ──► INSTRUCTED ──► MATCHED ──► SETTLED
       │          │  ▲  │        │  │ ▲        ▲
       │          │  └──┼────────┘  │ └─ PARTIALLY_SETTLED ◄─┐ (another partial)
       ▼          ▼     ▼           ▼          │             │
    CANCELLED ◄── FAILED (reason) ◄─┴──────────┴─────────────┘

The allowed set, as a back office works it:

* PENDING (generated, not yet sent) → INSTRUCTED (sent to the agent / CSD) or CANCELLED (the trade went away, or the
  obligation was un-netted before it was sent).
* INSTRUCTED → MATCHED (the counterparty's instruction matched ours); → SETTLED / PARTIALLY_SETTLED directly, because
  a settlement confirmation (MT544–547, sese.025) proves the match even when no matched status advice arrived;
  → FAILED when still unmatched past the intended settlement date (reason CMIS, DDAT, DQUA ...); → INSTRUCTED again
  (re-instruct after a correction); → CANCELLED.
* MATCHED → SETTLED / PARTIALLY_SETTLED; → FAILED (LACK, MONY ... on or after the intended date); → INSTRUCTED (the
  counterparty cancelled their side: unmatched again, re-instructed); → CANCELLED (bilateral cancellation).
* PARTIALLY_SETTLED → PARTIALLY_SETTLED (a further partial), SETTLED (the remainder settled), FAILED (the remainder
  fails). It cannot be cancelled: part of it has moved at the CSD; the remainder is worked as a fail instead.
* FAILED → FAILED (the reason changed, e.g. LACK then MONY); → MATCHED (a DDAT/CMIS fail matched late); → SETTLED /
  PARTIALLY_SETTLED (late settlement); → INSTRUCTED (re-instructed); → CANCELLED (cancelled, bought in elsewhere).
* SETTLED and CANCELLED are final: nothing leaves them (a wrong settlement is reversed by a new instruction).

FAILED always carries a market reason code. ``transition`` keeps the trades an instruction settles in step
(``TRADE_STATUS``) and writes one audit entry per transition.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import InstructionTrade, SettlementInstruction, Trade, utcnow
from app.models.enums import ChangeAction, InstructionStatus, TradeStatus

from .. import audit, errors
from ..permissions import Actor, Permission, require

S = InstructionStatus

ALLOWED: dict[InstructionStatus, frozenset[InstructionStatus]] = {
    S.PENDING: frozenset({S.INSTRUCTED, S.CANCELLED}),
    S.INSTRUCTED: frozenset({S.INSTRUCTED, S.MATCHED, S.SETTLED, S.PARTIALLY_SETTLED, S.FAILED, S.CANCELLED}),
    S.MATCHED: frozenset({S.INSTRUCTED, S.SETTLED, S.PARTIALLY_SETTLED, S.FAILED, S.CANCELLED}),
    S.PARTIALLY_SETTLED: frozenset({S.PARTIALLY_SETTLED, S.SETTLED, S.FAILED}),
    S.FAILED: frozenset({S.FAILED, S.MATCHED, S.SETTLED, S.PARTIALLY_SETTLED, S.INSTRUCTED, S.CANCELLED}),
    S.SETTLED: frozenset(),
    S.CANCELLED: frozenset(),
}

# Why a pair is not allowed, in words a clerk understands (the generic sentence covers the rest).
_WHY: dict[tuple[InstructionStatus, InstructionStatus], str] = {
    (S.PENDING, S.MATCHED): "an instruction that was never sent cannot be matched; instruct it first",
    (S.PENDING, S.SETTLED): "an instruction that was never sent cannot settle; instruct it first",
    (S.PENDING, S.PARTIALLY_SETTLED): "an instruction that was never sent cannot settle; instruct it first",
    (S.PENDING, S.FAILED): "an instruction that was never sent has not failed at the CSD; instruct it first",
    (S.PENDING, S.PENDING): "it is already pending",
    (S.MATCHED, S.MATCHED): "it is already matched",
    (S.MATCHED, S.PENDING): "a sent instruction cannot go back to pending; re-instruct it instead",
    (S.PARTIALLY_SETTLED, S.CANCELLED): (
        "part of it has already settled at the CSD; work the remainder as a fail instead of cancelling"
    ),
    (S.PARTIALLY_SETTLED, S.INSTRUCTED): "part of it has already settled; the remainder settles or fails",
    (S.PARTIALLY_SETTLED, S.MATCHED): "part of it has already settled; the remainder settles or fails",
}

# The trade status that follows each instruction status (PENDING and CANCELLED are handled apart).
TRADE_STATUS: dict[InstructionStatus, TradeStatus] = {
    S.INSTRUCTED: TradeStatus.INSTRUCTED,
    S.MATCHED: TradeStatus.INSTRUCTED,
    S.PARTIALLY_SETTLED: TradeStatus.PARTIALLY_SETTLED,
    S.SETTLED: TradeStatus.SETTLED,
    S.FAILED: TradeStatus.FAILED,
}

# Trade statuses the lifecycle never overwrites: a cancelled or repaired trade is the front office's word.
_TRADE_KEEP = (TradeStatus.CANCELLED.value, TradeStatus.REPAIR.value)


class InvalidTransition(errors.InvalidTransition):
    """A status change the lifecycle does not allow; the text says from, to and why."""

    def __init__(
        self,
        instruction_ref: str,
        old: InstructionStatus,
        new: InstructionStatus,
        why: str,
    ) -> None:
        self.instruction_ref = instruction_ref
        self.old = old
        self.new = new
        self.why = why
        super().__init__(f"Instruction {instruction_ref} cannot go from {old.value} to {new.value}: {why}.")


def allowed(old: InstructionStatus, new: InstructionStatus) -> bool:
    return new in ALLOWED[InstructionStatus(old)]


def why_not(old: InstructionStatus, new: InstructionStatus) -> str:
    """The reason a transition is refused (empty when it is allowed)."""
    old, new = InstructionStatus(old), InstructionStatus(new)
    if allowed(old, new):
        return ""
    if old in (S.SETTLED, S.CANCELLED):
        return f"{old.value} is final; nothing follows it"
    if (old, new) in _WHY:
        return _WHY[(old, new)]
    nexts = ", ".join(sorted(s.value for s in ALLOWED[old]))
    return f"from {old.value} only {nexts} may follow"


def require_lifecycle_actor(actor: Actor) -> None:
    """Who may move instructions: clerks and supervisors working items, and whoever imports status messages or runs
    the settlement processes. Auditors never."""
    if not (
        actor.can(Permission.WORK_ITEMS)
        or actor.can(Permission.IMPORT)
        or actor.can(Permission.RUN_PROCESSES)
    ):
        require(actor, Permission.WORK_ITEMS)  # raises with the standard sentence


def _snapshot(i: SettlementInstruction) -> dict[str, Any]:
    return {
        "status": i.status,
        "reason_code": i.reason_code,
        "reason_text": i.reason_text,
        "settled_quantity": i.settled_quantity,
        "settled_amount": i.settled_amount,
        "version": i.version,
    }


def transition(
    session: Session,
    actor: Actor,
    instruction: SettlementInstruction,
    new: InstructionStatus,
    *,
    reason_code: str | None = None,
    reason_text: str | None = None,
    note: str = "",
) -> None:
    """Move ``instruction`` to ``new`` in ``session``'s unit of work, or raise InvalidTransition.

    Sets the status and reason (a FAILED item needs ``reason_code``; leaving FAILED or moving to MATCHED/SETTLED clears
    the reason unless one is given), bumps ``version``/``updated_by_id``, stamps ``instructed_at`` on the first
    instruction, keeps the linked trades' status in step, and writes the audit entry
    (``settlement_instructions.transition``) with before/after and the note.
    """
    _transition(session, actor, instruction, new, reason_code=reason_code, reason_text=reason_text, note=note)


def check_allowed(instruction: SettlementInstruction, new: InstructionStatus) -> None:
    """Raise InvalidTransition unless ``instruction`` may move to ``new`` (callers check before posting anything)."""
    old = InstructionStatus(instruction.status)
    if not allowed(old, InstructionStatus(new)):
        raise InvalidTransition(instruction.instruction_ref, old, InstructionStatus(new), why_not(old, new))


def _transition(
    session: Session,
    actor: Actor,
    instruction: SettlementInstruction,
    new: InstructionStatus,
    *,
    reason_code: str | None = None,
    reason_text: str | None = None,
    note: str = "",
    changes: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """``transition`` plus column ``changes`` applied after the before-image is taken (a settlement's quantities) and
    ``details`` added to the audit entry's after-image."""
    require_lifecycle_actor(actor)
    old = InstructionStatus(instruction.status)
    new = InstructionStatus(new)
    if not allowed(old, new):
        raise InvalidTransition(instruction.instruction_ref, old, new, why_not(old, new))
    if new is S.FAILED and not (reason_code or "").strip():
        raise InvalidTransition(
            instruction.instruction_ref,
            old,
            new,
            "a failed instruction needs the market reason code (LACK, MONY, CMIS ...)",
        )
    before = _snapshot(instruction)
    now = utcnow()
    for name, value in (changes or {}).items():
        setattr(instruction, name, value)
    instruction.status = new
    if reason_code is not None or reason_text is not None:
        instruction.reason_code = (reason_code or "").strip().upper() or None
        instruction.reason_text = reason_text
    elif new in (S.MATCHED, S.SETTLED, S.CANCELLED) or (old is S.FAILED and new is not S.FAILED):
        # The old reason (unmatched CMIS, failing LACK) no longer describes the item.
        instruction.reason_code = None
        instruction.reason_text = None
    if new is S.INSTRUCTED and (instruction.instructed_at is None or old is not S.INSTRUCTED):
        instruction.instructed_at = now
    instruction.version = (instruction.version or 1) + 1
    instruction.updated_by_id = actor.user_id
    instruction.updated_at = now
    session.flush()
    trades = _sync_trades(session, actor, instruction, old, new)
    after = _snapshot(instruction)
    audit.record(
        session,
        actor,
        "settlement_instructions.transition",
        "settlement_instructions",
        instruction.id,
        before=before,
        after={**after, "note": note, "trades": trades, **(details or {})},
        change=ChangeAction.UPDATE,
        summary={"action": "transition", "from": old.value, "to": new.value},
    )


def _trade_ids(session: Session, instruction_id: int) -> list[int]:
    return list(
        session.scalars(
            select(InstructionTrade.trade_id).where(InstructionTrade.instruction_id == instruction_id)
        )
    )


def _sync_trades(
    session: Session,
    actor: Actor,
    instruction: SettlementInstruction,
    old: InstructionStatus,
    new: InstructionStatus,
) -> list[int]:
    """Set the status of the instruction's trades to follow ``new``; returns the trade ids changed."""
    if new is S.PENDING or (old == new and new is not S.PARTIALLY_SETTLED):
        return []
    if instruction.exception_kind is not None:
        # Give-ups and out-trades are worked in the queue but settle nothing at a CSD: the futures trade keeps
        # its own status (the fails service changes the trade where the exception's outcome requires it).
        return []
    ids = _trade_ids(session, instruction.id)
    if not ids:
        return []
    now = utcnow()
    base = (
        update(Trade)
        .where(Trade.id.in_(ids), Trade.status.not_in(_TRADE_KEEP))
        .execution_options(synchronize_session=False)
    )
    if new is S.CANCELLED:
        # The obligation is gone but the trade is alive (un-netting, re-instruction): it goes back to the stage it
        # had reached before it was instructed, and will be instructed again.
        changed = 0
        for status, cond in (
            (TradeStatus.AFFIRMED, Trade.affirmed_at.is_not(None)),
            (TradeStatus.CONFIRMED, Trade.affirmed_at.is_(None) & Trade.confirmed_at.is_not(None)),
            (TradeStatus.VALIDATED, Trade.affirmed_at.is_(None) & Trade.confirmed_at.is_(None)),
        ):
            changed += session.execute(
                base.where(cond).values(
                    status=status,
                    version=Trade.version + 1,
                    updated_by_id=actor.user_id,
                    updated_at=now,
                )
            ).rowcount
    else:
        target = TRADE_STATUS[new]
        changed = session.execute(
            base.where(Trade.status != target.value).values(
                status=target,
                version=Trade.version + 1,
                updated_by_id=actor.user_id,
                updated_at=now,
            )
        ).rowcount
    if changed:
        # Open blotters reload these trades (one feed row; the audit entry above names them).
        audit.publish(
            session,
            actor,
            "trades",
            ids[0] if len(ids) == 1 else None,
            ChangeAction.UPDATE if len(ids) == 1 else ChangeAction.BULK,
            {"action": "settlement.status", "instruction": instruction.id, "status": new.value},
        )
    # The UPDATE bypassed the identity map: trades already loaded in this session must be read again.
    wanted = set(ids)
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Trade) and obj.id in wanted:
            session.expire(obj)
    return ids
