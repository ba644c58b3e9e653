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

Many at once (a file of 100,000 status messages): :class:`Batch` / :func:`transition_many` apply the same rules to
plain in-memory states and write the rows, the trades and the audit trail set-based; a large batch is audited by
one entry listing every instruction's before and after (see ``PER_ROW_AUDIT_MAX``), and each message row names the
instruction it changed.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session

from app.models import InstructionTrade, SettlementInstruction, Trade, utcnow
from app.models.base import UTCDateTime
from app.models.enums import ChangeAction, InstructionStatus, InstructionType, TradeStatus

from .. import audit, errors
from ..jsonable import to_jsonable
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


def as_status(value: InstructionStatus | str) -> InstructionStatus:
    """``InstructionStatus(value)`` by a dict lookup (a member and its value are the same key): the Enum call costs
    more than the rule it feeds, and a 100,000-message file makes a million of them."""
    found = _STATUS.get(value)
    return found if found is not None else InstructionStatus(value)


def as_type(value: InstructionType | str) -> InstructionType:
    """``InstructionType(value)`` by a dict lookup (see :func:`as_status`)."""
    found = _TYPE.get(value)
    return found if found is not None else InstructionType(value)


def allowed(old: InstructionStatus, new: InstructionStatus) -> bool:
    return new in ALLOWED[as_status(old)]


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


def _check(ref: str, old: InstructionStatus, new: InstructionStatus, reason_code: str | None) -> None:
    """Refuse a move ``ALLOWED`` does not have, and a FAILED without its market reason code."""
    if not allowed(old, new):
        raise InvalidTransition(ref, old, new, why_not(old, new))
    if new is S.FAILED and not (reason_code or "").strip():
        raise InvalidTransition(
            ref, old, new, "a failed instruction needs the market reason code (LACK, MONY, CMIS ...)"
        )


def _apply(
    item: Any,
    old: InstructionStatus,
    new: InstructionStatus,
    reason_code: str | None,
    reason_text: str | None,
    changes: dict[str, Any] | None,
    now: dt.datetime,
) -> None:
    """Set status, reason, instructed stamp and version on an instruction or its in-memory state (the single and the
    batch path share the rule)."""
    for name, value in (changes or {}).items():
        setattr(item, name, value)
    item.status = new
    if reason_code is not None or reason_text is not None:
        item.reason_code = (reason_code or "").strip().upper() or None
        item.reason_text = reason_text
    elif new in (S.MATCHED, S.SETTLED, S.CANCELLED) or (old is S.FAILED and new is not S.FAILED):
        # The old reason (unmatched CMIS, failing LACK) no longer describes the item.
        item.reason_code = None
        item.reason_text = None
    if new is S.INSTRUCTED and (item.instructed_at is None or old is not S.INSTRUCTED):
        item.instructed_at = now
    item.version = (item.version or 1) + 1


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
    _check(instruction.instruction_ref, old, new, reason_code)
    before = _snapshot(instruction)
    now = utcnow()
    _apply(instruction, old, new, reason_code, reason_text, changes, now)
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


# =====================================================================================================================
# Many transitions at once (incoming message files, bulk settlement): the same rules, set-based writes
# =====================================================================================================================

#: Up to this many transitions in one batch, each gets its own audit entry (the instruction's history shows it);
#: above, the batch writes one entry that lists every instruction's before and after (entries per row would cost
#: more than the changes themselves: a hash-chain step, a JSON document and a change-feed row each).
PER_ROW_AUDIT_MAX = 200
# PostgreSQL: above this many changed rows the update goes through COPY into a temporary table and one UPDATE ...
# FROM; below, one executemany (SQLite always: its executemany is a C loop on one connection).
_PG_COPY_MIN = 500
# SQLite: from this many changed rows on, they are staged in a temporary table and written by UPDATE ... FROM.
_SQLITE_STAGE_MIN = 64
_CHUNK = 900  # values per IN (...) on SQLite (below its bind limit); PostgreSQL takes larger chunks

# The columns a batch reads; the ones after "status" are the ones it may write.
_STATE_COLUMNS = (
    "id",
    "instruction_ref",
    "instruction_type",
    "exception_kind",
    "account_id",
    "counterparty_id",
    "instrument_id",
    "quantity",
    "settlement_amount",
    "currency",
    "intended_settlement_date",
    "status",
    "reason_code",
    "reason_text",
    "settled_quantity",
    "settled_amount",
    "actual_settlement_date",
    "instructed_at",
    "version",
)
_WRITTEN = (
    "status",
    "reason_code",
    "reason_text",
    "settled_quantity",
    "settled_amount",
    "actual_settlement_date",
    "instructed_at",
    "version",
)
_ALL_CHANGED = (True,) * 7  # a state read without its loaded values: every data column written
_written_values = operator.attrgetter(*_WRITTEN)  # one C call per state (a file changes 100,000)


@dataclass(slots=True)
class InstructionState:
    """An instruction's columns as plain values, changed in memory by a :class:`Batch` and written in bulk.

    Attribute names are the model's, so rules written for a ``SettlementInstruction`` read a state as well.
    """

    id: int
    instruction_ref: str
    instruction_type: InstructionType
    exception_kind: Any
    account_id: int
    counterparty_id: int
    instrument_id: int
    quantity: Decimal
    settlement_amount: Decimal
    currency: str
    intended_settlement_date: dt.date
    status: InstructionStatus
    reason_code: str | None
    reason_text: str | None
    settled_quantity: Decimal
    settled_amount: Decimal
    actual_settlement_date: dt.date | None
    instructed_at: dt.datetime | None
    version: int
    loaded_version: int = 0  # what the database had: the bulk UPDATE only touches rows still at it
    loaded: tuple[
        Any, ...
    ] = ()  # the written columns as the database had them (only changed ones are written)

    def values(self) -> tuple[Any, ...]:
        return _written_values(self)

    def restore(self, values: tuple[Any, ...]) -> None:
        for c, v in zip(_WRITTEN, values, strict=True):
            setattr(self, c, v)


@dataclass(frozen=True, slots=True)
class Change:
    """One status change for :func:`transition_many` (the arguments of :func:`transition`, by instruction id)."""

    instruction_id: int
    new: InstructionStatus
    reason_code: str | None = None
    reason_text: str | None = None
    note: str = ""


@dataclass(slots=True)
class _Step:
    state: InstructionState
    old: InstructionStatus
    new: InstructionStatus
    before: tuple[Any, ...]  # the _SNAPSHOT columns before and after the transition
    after: tuple[Any, ...]
    note: str
    details: dict[str, Any] | None
    sync: bool  # the linked trades follow (what _sync_trades would do for this transition)


# What an audit entry's before and after images hold of an instruction (as ``_snapshot`` of the single path).
_SNAPSHOT = ("status", "reason_code", "reason_text", "settled_quantity", "settled_amount", "version")
_snapshot_values = operator.attrgetter(*_SNAPSHOT)  # one C call per image (a file makes 200,000)


def _state_snapshot(st: InstructionState) -> dict[str, Any]:
    return dict(zip(_SNAPSHOT, _snapshot_values(st), strict=True))


def _chunks(values: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(values), n):
        yield values[i : i + n]


def load_states(
    session: Session, *, ids: Iterable[int] = (), refs: Iterable[str] = ()
) -> list[InstructionState]:
    """The states of the instructions with these ids and/or references (unknown ones are simply absent).

    One driver-level query per chunk (a file may name 100,000 instructions): PostgreSQL hands back decimals and
    dates as they are; SQLite's floats and ISO text are converted here exactly as the model's types would.
    """
    pg = session.get_bind().dialect.name == "postgresql"
    conn = session.connection()
    cols = ", ".join(_STATE_COLUMNS)
    out: list[InstructionState] = []
    for column, wanted in (
        ("id", sorted({int(i) for i in ids})),
        ("instruction_ref", sorted({r for r in refs if r})),
    ):
        if not wanted:
            continue
        if pg:
            rows: Iterable[Any] = conn.exec_driver_sql(
                f"SELECT {cols} FROM settlement_instructions WHERE {column} = ANY(%(v)s)", {"v": wanted}
            ).all()
        else:
            rows = []
            for part in _chunks(wanted, _CHUNK):
                rows += conn.exec_driver_sql(
                    f"SELECT {cols} FROM settlement_instructions WHERE {column} IN ({', '.join('?' * len(part))})",
                    tuple(part),
                ).all()
        make = _state_from_pg if pg else _state_from_sqlite
        out.extend(make(row) for row in rows)
    return out


_STATUS = {s.value: s for s in InstructionStatus}
_TYPE = {t.value: t for t in InstructionType}


def _state_from_pg(row: Any) -> InstructionState:
    st = InstructionState(*row)
    st.status = _STATUS[st.status]
    st.instruction_type = _TYPE[st.instruction_type]
    st.settled_quantity = st.settled_quantity if st.settled_quantity is not None else Decimal(0)
    st.settled_amount = st.settled_amount if st.settled_amount is not None else Decimal(0)
    st.version = st.version or 1
    st.loaded_version = st.version
    st.loaded = st.values()
    return st


@functools.lru_cache(maxsize=65536)
def _sqlite_decimal(value: float | int | str, scale: int) -> Decimal:
    # What SQLAlchemy's Numeric(asdecimal) result processor makes of SQLite's REAL: the value to the column's scale
    # (SQLite's NUMERIC affinity may hand back an integer, or text it could not convert).
    return Decimal(f"{value if isinstance(value, int | float) else float(value):.{scale}f}")


@functools.lru_cache(maxsize=4096)
def _sqlite_date(value: str) -> dt.date:
    return dt.date.fromisoformat(value[:10])


def _state_from_sqlite(row: Any) -> InstructionState:
    (
        iid,
        ref,
        itype,
        kind,
        acct,
        cpty,
        inst,
        qty,
        amount,
        ccy,
        isd,
        status,
        code,
        text_,
        sq,
        sa,
        asd,
        at,
        version,
    ) = row
    version = version or 1
    st = InstructionState(
        iid,
        ref,
        _TYPE[itype],
        kind,
        acct,
        cpty,
        inst,
        _sqlite_decimal(qty, 6),
        _sqlite_decimal(amount, 4),
        ccy,
        _sqlite_date(isd),
        _STATUS[status],
        code,
        text_,
        _sqlite_decimal(sq or 0.0, 6),
        _sqlite_decimal(sa or 0.0, 4),
        _sqlite_date(asd) if asd else None,
        dt.datetime.fromisoformat(at).replace(tzinfo=dt.UTC) if at else None,
        version,
        version,
    )
    st.loaded = st.values()
    return st


class Batch:
    """Transitions applied in memory with exactly :func:`transition`'s rules, written together by :meth:`flush`.

    Several transitions of one instruction apply in the order given, each seeing the status the previous one left.
    A refused transition raises ``InvalidTransition`` and changes nothing (callers that want to go on with the
    others use :meth:`checkpoint` / :meth:`restore` around a unit of several transitions). ``flush`` writes the
    instruction rows (only those still at the version read: another writer's change in between raises
    ``StaleEdit``), moves the linked trades in step with one UPDATE per target status, and writes the audit trail:
    one entry per transition for a small batch, else one entry listing every transition.
    """

    def __init__(self, session: Session, actor: Actor) -> None:
        require_lifecycle_actor(actor)
        self.session = session
        self.actor = actor
        self.now = utcnow()
        self.states: dict[int, InstructionState] = {}
        self._by_ref: dict[str, InstructionState] = {}  # the same states by reference (unique)
        self._taken = 0  # steps whose rows write_changed has written already
        self.steps: list[_Step] = []
        self.audit_entry_id: int | None = None  # the batch entry (large batches), once flushed

    # Reading ------------------------------------------------------------------------------------------------------

    def load(self, *, ids: Iterable[int] = (), refs: Iterable[str] = ()) -> list[InstructionState]:
        """Load (or return the already loaded) states; a state already in the batch keeps its in-memory changes."""
        ids, refs = list(ids), {r for r in refs if r}
        by_ref = self._by_ref
        want_ids = [i for i in ids if i not in self.states]
        want_refs = [r for r in refs if r not in by_ref]
        for st in load_states(self.session, ids=want_ids, refs=want_refs):
            st = self.states.setdefault(st.id, st)
            by_ref.setdefault(st.instruction_ref, st)
        out = [self.states[i] for i in ids if i in self.states]
        if refs:
            # A file is loaded part by part: look the references up, never walk every state loaded so far.
            out += sorted((by_ref[r] for r in refs if r in by_ref), key=lambda st: st.id)
        return out

    def get(self, instruction_id: int) -> InstructionState | None:
        if instruction_id not in self.states:
            self.load(ids=[instruction_id])
        return self.states.get(instruction_id)

    # Changing -----------------------------------------------------------------------------------------------------

    def checkpoint(self, state: InstructionState) -> tuple[int, tuple[Any, ...]]:
        return len(self.steps), state.values()

    def restore(self, state: InstructionState, token: tuple[int, tuple[Any, ...]]) -> None:
        """Undo every transition since ``checkpoint`` (of this state; nothing else may have changed since)."""
        n, values = token
        del self.steps[n:]
        self._taken = min(self._taken, n)
        state.restore(values)

    def check_allowed(self, state: InstructionState, new: InstructionStatus) -> None:
        old = as_status(state.status)
        new = as_status(new)
        if not allowed(old, new):
            raise InvalidTransition(state.instruction_ref, old, new, why_not(old, new))

    def transition(
        self,
        state: InstructionState,
        new: InstructionStatus,
        *,
        reason_code: str | None = None,
        reason_text: str | None = None,
        note: str = "",
        changes: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """``transition`` for a state: the same checks, reason handling, stamps and version bump."""
        old = as_status(state.status)
        new = as_status(new)
        _check(state.instruction_ref, old, new, reason_code)
        self.states.setdefault(state.id, state)
        self._by_ref.setdefault(state.instruction_ref, state)
        before = _snapshot_values(state)
        _apply(state, old, new, reason_code, reason_text, changes, self.now)
        sync = (
            not (new is S.PENDING or (old == new and new is not S.PARTIALLY_SETTLED))
            and state.exception_kind is None
        )
        self.steps.append(_Step(state, old, new, before, _snapshot_values(state), note, details, sync))

    # Writing ------------------------------------------------------------------------------------------------------

    def flush(self) -> int:
        """Write everything changed since the last flush; returns the number of instructions written."""
        if not self.steps:
            return 0
        steps, self.steps = self.steps, []
        self._taken = 0
        changed: dict[int, InstructionState] = {}
        synced: dict[int, InstructionState] = {}
        for step in steps:
            changed[step.state.id] = step.state
            if step.sync:
                synced[step.state.id] = step.state
        # Only what changed since it was last written (write_changed may have written the rest already).
        self._write_rows([st for st in changed.values() if st.version != st.loaded_version])
        trades_by_instruction = self._sync_trades(
            list(synced.values()), per_row=len(steps) <= PER_ROW_AUDIT_MAX
        )
        self._audit(steps, trades_by_instruction)
        for st in changed.values():
            st.loaded_version = st.version
            st.loaded = st.values()
        # The UPDATEs bypassed the identity map: ORM objects of these rows already loaded must be read again.
        for obj in list(self.session.identity_map.values()):
            if (isinstance(obj, SettlementInstruction) and obj.id in changed) or (
                synced and isinstance(obj, Trade)
            ):
                self.session.expire(obj)
        return len(changed)

    def write_changed(self) -> None:
        """Write the rows of every instruction changed since they were last written (a large file goes part by
        part, so the rows built never pile up for the whole file); raises ``StaleEdit`` as :meth:`flush` does. The
        transitions stay in the batch: :meth:`flush` moves the trades and writes the audit trail of all of them."""
        # The states of the steps since the last write (not every state loaded so far).
        fresh = {step.state.id: step.state for step in self.steps[self._taken :]}
        self._taken = len(self.steps)
        dirty = [st for st in fresh.values() if st.version != st.loaded_version]
        self._write_rows(dirty)
        for st in dirty:
            st.loaded_version = st.version
            st.loaded = st.values()

    def _write_rows(self, states: list[InstructionState]) -> None:
        """UPDATE the rows of ``states`` as they are now, each only if still at the version it was read at; raises
        ``StaleEdit`` when any was changed by someone else in between (the caller's transaction then keeps nothing).

        Set-based for a large set: the new values are staged in a temporary table (COPY on PostgreSQL, one
        executemany on SQLite) and applied by one ``UPDATE ... FROM``; a small set is one executemany. On SQLite
        only the columns that changed are SET (one UPDATE per set of changed columns): SQLite rewrites the entries
        of every index on a SET column, changed or not (a matched status leaves the reason-code index alone)."""
        if not states:
            return
        n = len(states)
        if self._pg():
            done = (
                self._update_pg(states) if n >= _PG_COPY_MIN else self._update_grouped(states, staged=False)
            )
        else:
            done = self._update_grouped(states, staged=n >= _SQLITE_STAGE_MIN)
        if done != n:
            raise errors.StaleEdit(
                f"{n - done} of {n} settlement instruction(s) were changed by someone else while this batch was "
                "applied; nothing was saved — run it again."
            )

    def _pg(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    def _rows(self, states: list[InstructionState], pg: bool) -> list[tuple[Any, ...]]:
        """Per state: the written columns (``_WRITTEN``), then updated_by_id, updated_at, id and the version read,
        in the form the backend's driver stores (SQLite: floats, ISO text, as SQLAlchemy's types write them)."""
        uid = self.actor.user_id
        if pg:
            now = self.now
            return [
                (_STATUS_VALUE.get(st.status) or as_status(st.status).value, st.reason_code, st.reason_text,
                 st.settled_quantity, st.settled_amount, st.actual_settlement_date, st.instructed_at, st.version,
                 uid, now, st.id, st.loaded_version)
                for st in states
            ]  # fmt: skip
        now_text = _sqlite_stamp(self.now)
        stamps: dict[dt.datetime, str] = {}  # instructed_at: most rows of a file share a handful of values
        out = []
        for st in states:
            sq, sa, asd, at = (
                st.settled_quantity,
                st.settled_amount,
                st.actual_settlement_date,
                st.instructed_at,
            )
            if at is not None:
                at_text = stamps.get(at)
                if at_text is None:
                    at_text = stamps[at] = _sqlite_stamp(at)
            else:
                at_text = None
            out.append(
                (
                    _STATUS_VALUE.get(st.status) or as_status(st.status).value,
                    st.reason_code,
                    st.reason_text,
                    float(sq) if sq is not None else None,
                    float(sa) if sa is not None else None,
                    asd.isoformat() if asd is not None else None,
                    at_text,
                    st.version,
                    uid,
                    now_text,
                    st.id,
                    st.loaded_version,
                )
            )
        return out

    def _update_pg(self, states: list[InstructionState]) -> int:
        """PostgreSQL: COPY into a temporary table, one UPDATE ... FROM (every written column: an update that
        changes an indexed column writes a new entry in every index of the table anyway)."""
        rows = self._rows(states, True)
        conn = self.session.connection()
        conn.exec_driver_sql(
            "CREATE TEMP TABLE lc_batch (status varchar(20), reason_code varchar(8), reason_text varchar(500), "
            "settled_quantity numeric(20, 6), settled_amount numeric(20, 4), actual_settlement_date date, "
            "instructed_at timestamptz, version integer, updated_by_id bigint, updated_at timestamptz, id bigint, "
            "loaded_version integer) ON COMMIT DROP"
        )
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy("COPY lc_batch FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
        cursor.close()
        # Each staged row finds its instruction by primary key (a nested loop). Left to itself the planner hashes
        # the whole instructions table for every part when its statistics are stale or missing (a table just
        # loaded): a scan of a million rows per 5,000 changed.
        was = conn.exec_driver_sql(
            "SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')"
        ).one()
        conn.exec_driver_sql("SET LOCAL enable_hashjoin = off")
        conn.exec_driver_sql("SET LOCAL enable_mergejoin = off")
        done = conn.exec_driver_sql(
            "UPDATE settlement_instructions SET status = b.status, reason_code = b.reason_code, "
            "reason_text = b.reason_text, settled_quantity = b.settled_quantity, settled_amount = b.settled_amount, "
            "actual_settlement_date = b.actual_settlement_date, instructed_at = b.instructed_at, "
            "version = b.version, updated_by_id = b.updated_by_id, updated_at = b.updated_at FROM lc_batch b "
            "WHERE settlement_instructions.id = b.id AND settlement_instructions.version = b.loaded_version"
        ).rowcount
        conn.exec_driver_sql(
            "SELECT set_config('enable_hashjoin', %(h)s, true), set_config('enable_mergejoin', %(m)s, true)",
            {"h": was[0], "m": was[1]},
        )
        conn.exec_driver_sql("DROP TABLE lc_batch")
        return int(done)

    def _update_grouped(self, states: list[InstructionState], *, staged: bool) -> int:
        """One UPDATE per set of changed columns: an executemany each, or (``staged``, SQLite) every row staged in
        a temporary table once and one ``UPDATE ... FROM`` per set. The staged form is one statement where the
        executemany is one per row, and with foreign keys on SQLite opens a statement journal for each of those."""
        pg = self._pg()
        # Rows by which of the 7 data columns of _WRITTEN changed (version is always written): the comparisons
        # of a state in one C call (map), its row's group looked up by their result.
        by_mask: dict[tuple[bool, ...], list[tuple[Any, ...]]] = {}
        ordered = sorted(states, key=operator.attrgetter("id"))
        ne = operator.ne
        for st, full in zip(ordered, self._rows(ordered, pg), strict=True):
            loaded = st.loaded
            mask = tuple(map(ne, st.values()[:7], loaded)) if loaded else _ALL_CHANGED
            rows_ = by_mask.get(mask)
            if rows_ is None:
                rows_ = by_mask[mask] = []
            rows_.append(full)
        groups: dict[tuple[int, ...], list[tuple[Any, ...]]] = {}
        for mask, fulls in by_mask.items():
            cols = tuple(k for k, differs in enumerate(mask) if differs)
            groups[cols] = fulls if staged else [tuple(f[k] for k in cols) + f[7:] for f in fulls]
        if not staged:
            from ..capture import bulk  # a service helper, imported late to keep this module's imports light

            done = 0
            for cols, params in groups.items():
                sets = "".join(f"{_WRITTEN[k]} = ?, " for k in cols)
                done += bulk.execute_many(
                    self.session,
                    f"UPDATE settlement_instructions SET {sets}version = ?, updated_by_id = ?, updated_at = ? "
                    "WHERE id = ? AND version = ?",
                    params,
                )
            return done
        conn = self.session.connection()
        conn.exec_driver_sql("DROP TABLE IF EXISTS temp.lc_batch")
        # No declared types: the values keep the form bound here, and the instruction's columns apply their own
        # affinity on assignment exactly as when the same values are bound to the UPDATE directly.
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE lc_batch (grp INTEGER, {', '.join(_WRITTEN)}, updated_by_id, updated_at, "
            "id INTEGER PRIMARY KEY, loaded_version)"
        )
        staged_rows = [(g, *row) for g, rows in enumerate(groups.values()) for row in rows]
        staged_rows.sort(key=operator.itemgetter(11))  # by id: the UPDATE walks the instructions in id order
        conn.exec_driver_sql(f"INSERT INTO temp.lc_batch VALUES ({', '.join('?' * 13)})", staged_rows)
        done = 0
        for g, cols in enumerate(groups):
            sets = "".join(f"{_WRITTEN[k]} = b.{_WRITTEN[k]}, " for k in cols)
            # "+b.id": the staged rows drive the join (each instruction found by its primary key), never a scan
            # of the instructions table looking each one up in the stage.
            done += int(
                conn.exec_driver_sql(
                    f"UPDATE settlement_instructions SET {sets}version = b.version, "
                    "updated_by_id = b.updated_by_id, updated_at = b.updated_at FROM temp.lc_batch AS b "
                    "WHERE b.grp = ? AND settlement_instructions.id = +b.id "
                    "AND settlement_instructions.version = b.loaded_version",
                    (g,),
                ).rowcount
            )
        conn.exec_driver_sql("DROP TABLE temp.lc_batch")
        return done

    def _ids_statement(self, sql: str, ids: list[int], params: dict[str, Any]) -> int:
        """``sql`` with ``{ids}`` standing for the id list (= ANY on PostgreSQL, json_each on SQLite)."""
        session = self.session
        if session.get_bind().dialect.name == "postgresql":
            stmt = text(sql.replace("IN {ids}", "= ANY(:ids)"))
            bind: Any = ids
        else:
            stmt = text(sql.replace("{ids}", "(SELECT value FROM json_each(:ids))"))
            bind = json.dumps(ids)
        stmt = stmt.bindparams(bindparam("now", type_=UTCDateTime()))
        return int(session.execute(stmt, {**params, "ids": bind}).rowcount)  # type: ignore[attr-defined]

    def _sync_trades(self, states: list[InstructionState], *, per_row: bool) -> dict[int, list[int]]:
        """Trades follow their instructions' final status: one UPDATE per target status (and for CANCELLED one per
        stage the trade returns to). Returns the trade ids per instruction when ``per_row`` (for the audit)."""
        if not states:
            return {}
        trades_of: dict[int, list[int]] = {}
        if per_row:
            for part in _chunks([st.id for st in states], _CHUNK):
                for iid, tid in self.session.execute(
                    select(InstructionTrade.instruction_id, InstructionTrade.trade_id)
                    .where(InstructionTrade.instruction_id.in_(part))
                    .order_by(InstructionTrade.instruction_id, InstructionTrade.trade_id)
                ):
                    trades_of.setdefault(int(iid), []).append(int(tid))
        groups: dict[InstructionStatus, list[int]] = {}
        for st in states:
            groups.setdefault(as_status(st.status), []).append(st.id)
        keep = ", ".join(f"'{s}'" for s in _TRADE_KEEP)
        base = (
            "UPDATE trades SET status = :st, version = version + 1, updated_by_id = :uid, updated_at = :now "
            "WHERE id IN (SELECT trade_id FROM instruction_trades WHERE instruction_id IN {ids}) "
            f"AND status NOT IN ({keep}) "
        )
        params = {"uid": self.actor.user_id, "now": self.now}
        for status, ids in groups.items():
            if status is S.PENDING:
                continue
            changed = 0
            if status is S.CANCELLED:
                for target, cond in (
                    (TradeStatus.AFFIRMED, "affirmed_at IS NOT NULL"),
                    (TradeStatus.CONFIRMED, "affirmed_at IS NULL AND confirmed_at IS NOT NULL"),
                    (TradeStatus.VALIDATED, "affirmed_at IS NULL AND confirmed_at IS NULL"),
                ):
                    changed += self._ids_statement(f"{base}AND {cond}", ids, {**params, "st": target.value})
            else:
                target = TRADE_STATUS[status]
                changed = self._ids_statement(f"{base}AND status <> :st", ids, {**params, "st": target.value})
            if changed:
                audit.publish(
                    self.session,
                    self.actor,
                    "trades",
                    None,
                    ChangeAction.BULK,
                    {"action": "settlement.status", "instructions": len(ids), "status": status.value},
                )
        return trades_of

    def _audit(self, steps: list[_Step], trades_of: dict[int, list[int]]) -> None:
        if len(steps) <= PER_ROW_AUDIT_MAX:
            for step in steps:
                audit.record(
                    self.session,
                    self.actor,
                    "settlement_instructions.transition",
                    "settlement_instructions",
                    step.state.id,
                    before=dict(zip(_SNAPSHOT, step.before, strict=True)),
                    after={
                        **dict(zip(_SNAPSHOT, step.after, strict=True)),
                        "note": step.note,
                        "trades": trades_of.get(step.state.id, []) if step.sync else [],
                        **(step.details or {}),
                    },
                    change=ChangeAction.UPDATE,
                    summary={"action": "transition", "from": step.old.value, "to": step.new.value},
                )
            return
        # One entry for the batch: every transition in order, one compact JSON array per row (a string each, so the
        # hashing of a 100,000-row entry does not walk a million values twice; decimals exact, as text).
        columns = ["id", "instruction_ref", "from", "to", "before", "after", "note", "details"]
        rows = [audit_row(step) for step in steps]
        moves: dict[str, int] = {}
        for step in steps:
            key = f"{step.old.value}->{step.new.value}"
            moves[key] = moves.get(key, 0) + 1
        entry = audit.record(
            self.session,
            self.actor,
            "settlement_instructions.transition",
            "settlement_instructions",
            None,
            after={
                "batch": True,
                "transitions": len(steps),
                "instructions": len({s.state.id for s in steps}),
                "moves": moves,
                "snapshot_columns": list(_SNAPSHOT),
                "columns": columns,
                "rows": rows,  # each a JSON array in the order of "columns"
                "trades": "the trades of every instruction whose status moved followed it (instruction_trades)",
            },
            change=ChangeAction.BULK,
            summary={"action": "transition", "rows": len(steps), "moves": moves},
        )
        self.audit_entry_id = entry.id


def _sqlite_stamp(v: dt.datetime) -> str:
    """A UTC timestamp as SQLAlchemy stores it in SQLite (naive UTC, always with microseconds)."""
    return v.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def canonical_decimal(v: Decimal) -> str:
    """to_jsonable's text of a Decimal (no exponent, no trailing zeros)."""
    return format(v.normalize(), "f")


_PLAIN = frozenset({str, int, type(None)})


@functools.lru_cache(maxsize=65536)
def _nonzero_decimal_text(v: Decimal) -> str:
    # Equal non-zero decimals have the same canonical text (100 and 100.000000), so their values key the cache;
    # zero is left out because -0 equals 0 but reads "-0".
    return format(v.normalize(), "f")


def _decimal_text(v: Decimal) -> str:
    """``canonical_decimal``, each distinct value worked out once (a file's quantities and amounts repeat)."""
    if v:
        return _nonzero_decimal_text(v)
    return "-0" if v.is_signed() else "0"


_STATUS_VALUE = {s: s.value for s in InstructionStatus}


def _jsonable_details(details: dict[str, Any]) -> Any:
    """``to_jsonable(details)``: a settlement's details are already plain text (one level of nesting), passed as
    they are; anything else is converted."""
    for v in details.values():
        if type(v) is dict:
            if any(type(x) not in _PLAIN for x in v.values()):
                return to_jsonable(details)
        elif type(v) not in _PLAIN:
            return to_jsonable(details)
    return details


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# The string encoder of that JSONEncoder (the C one where there is one): strings encoded alone, the same text.
_string = json.encoder.c_encode_basestring or json.encoder.py_encode_basestring  # type: ignore[attr-defined]
_STATUS_JSON = {s: f'"{s.value}"' for s in InstructionStatus}


def audit_row(step: _Step) -> str:
    """A transition's row of a batch audit entry: the JSON text ``_dumps`` gives of ``[id, instruction_ref, from,
    to, before, after, note, details]`` (images compacted by :func:`_compact`), assembled from its parts' texts (a
    file makes 100,000 of them)."""
    st = step.state
    details = step.details
    return (
        f"[{int(st.id)},{_string(st.instruction_ref)},{_STATUS_JSON[step.old]},{_STATUS_JSON[step.new]},"
        f"{_snapshot_json(step.before)},{_snapshot_json(step.after)},{_string(step.note)},"
        f"{_dumps(_jsonable_details(details)) if details else 'null'}]"
    )


def _snapshot_json(snapshot: tuple[Any, ...]) -> str:
    """``_dumps(_compact(snapshot))``: decimals as quoted canonical text, statuses as their value."""
    out = []
    for v in snapshot:
        t = type(v)
        if t is Decimal:
            out.append(f'"{_decimal_text(v)}"')
        elif t is InstructionStatus:
            out.append(_STATUS_JSON[v])
        elif v is None:
            out.append("null")
        elif t is str:
            out.append(_string(v))
        elif t is int:
            out.append(int.__repr__(v))
        else:
            return _dumps(_compact(snapshot))  # anything unusual: the generic way
    return f"[{','.join(out)}]"


def _compact(snapshot: tuple[Any, ...]) -> list[Any]:
    out: list[Any] = []
    for v in snapshot:
        t = type(v)
        if t is Decimal:
            v = _decimal_text(v)
        elif t is InstructionStatus:
            v = _STATUS_VALUE[v]
        elif t in _PLAIN:
            pass
        elif isinstance(v, Decimal):
            v = format(v.normalize(), "f")
        elif isinstance(v, InstructionStatus):
            v = v.value
        elif v is not None and not isinstance(v, str | int):
            v = to_jsonable(v)
        out.append(v)
    return out


def transition_many(session: Session, actor: Actor, changes: Iterable[Change]) -> list[InstructionState]:
    """Apply every change in order, validated exactly as :func:`transition` validates one, and write them together.

    All or nothing: the first refused change raises ``InvalidTransition`` (an unknown id ``NotFound``) before
    anything is written. Returns the final states.
    """
    changes = list(changes)
    batch = Batch(session, actor)
    batch.load(ids=[c.instruction_id for c in changes])
    for c in changes:
        state = batch.states.get(c.instruction_id)
        if state is None:
            raise errors.NotFound(f"Settlement instruction #{c.instruction_id} does not exist.")
        batch.transition(state, c.new, reason_code=c.reason_code, reason_text=c.reason_text, note=c.note)
    batch.flush()
    return [batch.states[i] for i in dict.fromkeys(c.instruction_id for c in changes)]


def history(session: Session, instruction_id: int) -> list[dict[str, Any]]:
    """One instruction's audit history, oldest first, as the queue's detail shows it (occurred_at, username,
    action, before, after): its own entries, and its rows of the batch entries that audited a large message file
    (found through the messages applied to it, which name their batch entry)."""
    from app.models import AuditEntry, SettlementMessage  # local: only this reader needs them

    out: list[tuple[int, int, dict[str, Any]]] = [
        (e.id, 0, {"occurred_at": e.occurred_at, "username": e.username, "action": e.action,
                   "before": e.before, "after": e.after})
        for e in audit.history(session, "settlement_instructions", instruction_id)
    ]  # fmt: skip
    batch_ids: set[int] = set()
    for parsed in session.scalars(
        select(SettlementMessage.parsed).where(SettlementMessage.instruction_id == instruction_id)
    ):
        entry_id = parsed.get("transition_audit_entry") if isinstance(parsed, dict) else None
        if isinstance(entry_id, int):
            batch_ids.add(entry_id)
    for entry_id in sorted(batch_ids):
        e = session.get(AuditEntry, entry_id)
        if e is None or not isinstance(e.after, dict):
            continue
        names = e.after.get("snapshot_columns") or []
        for n, text_row in enumerate(e.after.get("rows") or []):
            row = json.loads(text_row)
            if row[0] != instruction_id:
                continue
            before = dict(zip(names, row[4], strict=False))
            after = {**dict(zip(names, row[5], strict=False)), "note": row[6], **(row[7] or {})}
            out.append((e.id, n + 1, {"occurred_at": e.occurred_at, "username": e.username, "action": e.action,
                                      "before": before, "after": after}))  # fmt: skip
    return [item for _, _, item in sorted(out, key=lambda t: (t[0], t[1]))]
