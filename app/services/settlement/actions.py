"""What a clerk or supervisor does to instructions in the settlement queue: claim, release, assign, escalate,
re-instruct and cancel, one at a time or over a selection.

- **claim / release**: :func:`app.services.concurrency.claim` (a conditional UPDATE exactly one clerk wins; the
  other is told who has it and since when) and ``release`` (the owner, or a supervisor).
- **assign** (supervisors): make a clerk or supervisor the owner.
- **escalate**: hand the item to a supervisor (the one named, or the one with the fewest open instructions) with a
  comment "Escalated: <reason>" on the item and an audit entry ``escalate``.
- **re-instruct / cancel**: status changes, only ever through the lifecycle's
  :func:`~app.services.settlement.lifecycle.transition` (which refuses what the lifecycle does not allow).

Who may work an item: an unowned one, or one's own; an item another clerk has claimed is refused (a supervisor may
act on anyone's). :func:`bulk` applies one action to a selection in one transaction, each item in a savepoint, and
says per item what was done and what was refused and why; :func:`preview_bulk` runs the same checks without
writing, for the confirmation dialog.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import Comment, SettlementInstruction, User, utcnow
from app.models.enums import ChangeAction, InstructionStatus, Role

from .. import audit, concurrency
from ..db import Database
from ..errors import AlreadyClaimed, NotFound, OpsDeskError, ValidationFailed
from ..permissions import Actor, Permission, require
from . import lifecycle

SI = SettlementInstruction
S = InstructionStatus

ACTIONS = ("claim", "release", "assign", "escalate", "reinstruct", "cancel")
ACTION_LABELS = {
    "claim": "Claim",
    "release": "Release",
    "assign": "Assign",
    "escalate": "Escalate",
    "reinstruct": "Re-instruct",
    "cancel": "Cancel",
}
#: Instructions one bulk action takes at most (one transaction: it must stay short on a shared database).
MAX_BULK = 5000
#: Statuses a re-instruction starts from (the lifecycle allows INSTRUCTED from these).
REINSTRUCTABLE = (S.INSTRUCTED, S.MATCHED, S.FAILED)
_OPEN = (S.PENDING, S.INSTRUCTED, S.MATCHED, S.PARTIALLY_SETTLED, S.FAILED)
ITEM_TYPE = "instruction"  # how comments and attachments address an instruction


# --- single actions -------------------------------------------------------------------------------------------------


def claim(db: Database, actor: Actor, instruction_id: int) -> int:
    """Make ``actor`` the owner unless another clerk has it (AlreadyClaimed says who, since when). New version."""
    with db.write() as s:
        return concurrency.claim(s, actor, SI, instruction_id)


def release(db: Database, actor: Actor, instruction_id: int) -> None:
    with db.write() as s:
        concurrency.release(s, actor, SI, instruction_id)


def assign(db: Database, actor: Actor, instruction_id: int, assignee_id: int) -> None:
    require(actor, Permission.ASSIGN_WORK)
    with db.write() as s:
        who = _assignee(s, assignee_id)
        si = _get(s, instruction_id)
        refusal = _refusal(actor, "assign", si, s)
        if refusal:
            raise ValidationFailed(f"Instruction {si.instruction_ref}: {refusal}.")
        _assign(s, actor, si, who)


def escalate(
    db: Database, actor: Actor, instruction_id: int, reason: str, *, supervisor_id: int | None = None
) -> int:
    """Hand the instruction to a supervisor with the reason as a comment. Returns the supervisor's user id."""
    require(actor, Permission.WORK_ITEMS)
    reason = _need_reason(reason, "escalate")
    with db.write() as s:
        sup = _supervisor(s, supervisor_id)
        si = _get(s, instruction_id)
        refusal = _refusal(actor, "escalate", si, s)
        if refusal:
            raise ValidationFailed(f"Instruction {si.instruction_ref}: {refusal}.")
        _escalate(s, actor, si, sup, reason)
        return int(sup.id)


def reinstruct(db: Database, actor: Actor, instruction_id: int, reason: str = "") -> None:
    require(actor, Permission.WORK_ITEMS)
    with db.write() as s:
        si = _get(s, instruction_id)
        _check_owner(s, actor, si)
        _reinstruct(s, actor, si, reason)


def cancel(db: Database, actor: Actor, instruction_id: int, reason: str) -> None:
    require(actor, Permission.WORK_ITEMS)
    reason = _need_reason(reason, "cancel")
    with db.write() as s:
        si = _get(s, instruction_id)
        _check_owner(s, actor, si)
        _cancel(s, actor, si, reason)


# --- bulk -----------------------------------------------------------------------------------------------------------


@dataclass
class BulkResult:
    """What a bulk action did: the instructions changed, and each refused one with the reason in words."""

    action: str
    done: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        label = ACTION_LABELS.get(self.action, self.action).lower()
        text = f"{label}: {len(self.done):,} done"
        if self.refused:
            text += f", {len(self.refused):,} refused"
        return text


@dataclass
class BulkPreview:
    """What a bulk action would do (the confirmation dialog): how many apply, how many would be refused and why."""

    action: str
    total: int
    applicable: int
    refused: dict[str, int] = field(default_factory=dict)  # reason -> how many
    examples: list[tuple[str, str]] = field(default_factory=list)  # (instruction ref, reason), a few


def preview_bulk(
    db: Database,
    actor: Actor,
    action: str,
    ids: Sequence[int],
    *,
    assignee_id: int | None = None,
    reason: str = "",
) -> BulkPreview:
    """The same checks :func:`bulk` makes, read only."""
    _check_action(actor, action, ids, assignee_id, reason, preview=True)
    refused: Counter[str] = Counter()
    examples: list[tuple[str, str]] = []
    with db.read() as s:
        if action in ("assign", "escalate") and assignee_id is not None:
            _assignee(s, assignee_id, supervisor=action == "escalate")
        found = {si.id: si for si in _load(s, ids)}
        for item in dict.fromkeys(ids):
            si = found.get(item)
            why = "it no longer exists" if si is None else _refusal(actor, action, si, s)
            if why:
                refused[why] += 1
                if len(examples) < 5:
                    examples.append((si.instruction_ref if si is not None else f"#{item}", why))
    total = len(dict.fromkeys(ids))
    return BulkPreview(action, total, total - sum(refused.values()), dict(refused), examples)


def bulk(
    db: Database,
    actor: Actor,
    action: str,
    ids: Sequence[int],
    *,
    assignee_id: int | None = None,
    reason: str = "",
) -> BulkResult:
    """Apply ``action`` to every instruction in ``ids`` in one transaction; refused items change nothing."""
    _check_action(actor, action, ids, assignee_id, reason)
    result = BulkResult(action)
    reason = reason.strip()
    with db.write() as s:
        who = None
        if action == "assign":
            who = _assignee(s, assignee_id)  # type: ignore[arg-type]
        elif action == "escalate":
            who = _supervisor(s, assignee_id)
        found = {si.id: si for si in _load(s, ids)}
        for item in dict.fromkeys(ids):
            si = found.get(item)
            if si is None:
                result.refused[item] = "it no longer exists"
                continue
            why = _refusal(actor, action, si, s)
            if why:
                result.refused[item] = why
                continue
            try:
                # A savepoint per item: an item refused half-way (the lifecycle said no) leaves no trace.
                with s.begin_nested():
                    _apply(s, actor, action, si, who, reason)
            except OpsDeskError as err:
                s.expire(si)
                result.refused[item] = str(err)
                continue
            result.done.append(item)
        if result.done:
            audit.record(
                s,
                actor,
                f"settlement_instructions.bulk_{action}",
                "settlement_instructions",
                None,
                after={
                    "action": action,
                    "done": result.done,
                    "refused": len(result.refused),
                    "reason": reason,
                },
                change=ChangeAction.BULK,
                summary={"action": f"bulk_{action}", "rows": len(result.done)},
            )
    return result


def _check_action(
    actor: Actor,
    action: str,
    ids: Sequence[int],
    assignee_id: int | None,
    reason: str,
    *,
    preview: bool = False,
) -> None:
    if action not in ACTIONS:
        raise ValidationFailed(f"Unknown action {action!r}; choose one of {', '.join(ACTIONS)}.")
    if action in ("claim", "release"):
        require(actor, Permission.CLAIM)
    elif action == "assign":
        require(actor, Permission.ASSIGN_WORK)
        if assignee_id is None:
            raise ValidationFailed("Choose whom to assign the instructions to.")
    else:
        require(actor, Permission.WORK_ITEMS)
    if action in ("escalate", "cancel") and not preview:
        _need_reason(reason, action)
    if not ids:
        raise ValidationFailed("Select at least one instruction.")
    if len(dict.fromkeys(ids)) > MAX_BULK:
        raise ValidationFailed(
            f"{len(dict.fromkeys(ids)):,} instructions are too many for one action (at most {MAX_BULK:,}); "
            "narrow the filter."
        )


def _apply(s: Session, actor: Actor, action: str, si: SI, who: User | None, reason: str) -> None:
    if action == "claim":
        concurrency.claim(s, actor, SI, si.id)
    elif action == "release":
        concurrency.release(s, actor, SI, si.id)
    elif action == "assign":
        assert who is not None
        _assign(s, actor, si, who)
    elif action == "escalate":
        assert who is not None
        _escalate(s, actor, si, who, reason)
    elif action == "reinstruct":
        _reinstruct(s, actor, si, reason)
    elif action == "cancel":
        _cancel(s, actor, si, reason)


# --- checks ---------------------------------------------------------------------------------------------------------


def _refusal(actor: Actor, action: str, si: SI, s: Session) -> str:
    """Why ``actor`` may not do ``action`` to ``si`` now (empty: it may)."""
    status = S(si.status)
    theirs = si.owner_id is not None and si.owner_id != actor.user_id
    if action == "claim":
        if si.owner_id == actor.user_id:
            return "it is already yours"
        if theirs:
            return f"it is claimed by {_name(s, si.owner_id)}"
        return ""
    if action == "release":
        if si.owner_id is None:
            return "nobody has claimed it"
        if theirs and not actor.can(Permission.ASSIGN_WORK):
            return f"it is claimed by {_name(s, si.owner_id)}, not you"
        return ""
    if action == "assign":
        return "" if status in _OPEN else f"it is {status.value.lower().replace('_', ' ')}; nothing to work"
    if theirs and not actor.can(Permission.ASSIGN_WORK):
        return f"it is claimed by {_name(s, si.owner_id)}"
    if action == "escalate":
        return (
            "" if status in _OPEN else f"it is {status.value.lower().replace('_', ' ')}; nothing to escalate"
        )
    if action == "reinstruct":
        if status not in REINSTRUCTABLE:
            return (
                lifecycle.why_not(status, S.INSTRUCTED)
                or f"a {status.value} instruction is not re-instructed"
            )
        return ""
    if action == "cancel":
        return lifecycle.why_not(status, S.CANCELLED)
    return ""


def _check_owner(s: Session, actor: Actor, si: SI) -> None:
    if si.owner_id is not None and si.owner_id != actor.user_id and not actor.can(Permission.ASSIGN_WORK):
        raise AlreadyClaimed(
            f"Instruction {si.instruction_ref} is claimed by {_name(s, si.owner_id)}; ask them or a supervisor."
        )


def _need_reason(reason: str, action: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(
            f"Give a reason to {ACTION_LABELS[action].lower()} (it goes into the history)."
        )
    return reason


def _get(s: Session, instruction_id: int) -> SI:
    si = s.get(SI, instruction_id)
    if si is None:
        raise NotFound(
            f"The settlement instruction #{instruction_id} does not exist (it may have been deleted)."
        )
    return si


def _load(s: Session, ids: Sequence[int]) -> list[SI]:
    out: list[SI] = []
    wanted = list(dict.fromkeys(ids))
    for i in range(0, len(wanted), 900):  # SQLite's bound-parameter limit
        out.extend(s.scalars(select(SI).where(SI.id.in_(wanted[i : i + 900]))))
    return out


def _name(s: Session, user_id: int | None) -> str:
    if user_id is None:
        return "nobody"
    return s.scalar(select(User.username).where(User.id == user_id)) or f"user #{user_id}"


def _assignee(s: Session, user_id: int | None, *, supervisor: bool = False) -> User:
    user = s.get(User, user_id) if user_id is not None else None
    if user is None or not user.is_active:
        raise ValidationFailed(f"There is no active user #{user_id} to give the work to.")
    allowed = (Role.SUPERVISOR,) if supervisor else (Role.CLERK, Role.SUPERVISOR)
    if Role(user.role) not in allowed:
        what = "a supervisor" if supervisor else "a clerk or a supervisor"
        raise ValidationFailed(f"{user.username} is {Role(user.role).value}; work goes to {what}.")
    return user


def _supervisor(s: Session, user_id: int | None) -> User:
    """The supervisor named, or the active one with the fewest open instructions (ties: by name)."""
    if user_id is not None:
        return _assignee(s, user_id, supervisor=True)
    load = (
        select(func.count())
        .select_from(SI)
        .where(SI.owner_id == User.id, SI.status.in_(list(_OPEN)))
        .correlate(User)
        .scalar_subquery()
    )
    user = s.scalars(
        select(User)
        .where(User.role == Role.SUPERVISOR, User.is_active.is_(True))
        .order_by(load, User.username)
        .limit(1)
    ).first()
    if user is None:
        raise ValidationFailed("There is no active supervisor to escalate to.")
    return user


# --- the changes ----------------------------------------------------------------------------------------------------


def _set_owner(s: Session, actor: Actor, si: SI, user_id: int) -> None:
    now = utcnow()
    s.execute(
        update(SI)
        .where(SI.id == si.id)
        .values(
            owner_id=user_id,
            claimed_at=now,
            version=SI.version + 1,
            updated_by_id=actor.user_id,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    s.expire(si)


def _assign(s: Session, actor: Actor, si: SI, who: User) -> None:
    before = _name(s, si.owner_id)
    _set_owner(s, actor, si, who.id)
    audit.record(
        s,
        actor,
        "assign",
        "settlement_instructions",
        si.id,
        before={"owner": before},
        after={"owner": who.username},
    )


def _escalate(s: Session, actor: Actor, si: SI, sup: User, reason: str) -> None:
    before = _name(s, si.owner_id)
    _set_owner(s, actor, si, sup.id)
    s.add(Comment(item_type=ITEM_TYPE, item_id=si.id, author_id=actor.user_id, body=f"Escalated: {reason}"))
    audit.record(
        s,
        actor,
        "escalate",
        "settlement_instructions",
        si.id,
        before={"owner": before},
        after={"owner": sup.username, "reason": reason},
    )


def _reinstruct(s: Session, actor: Actor, si: SI, reason: str) -> None:
    note = f"re-instructed: {reason}" if reason else "re-instructed"
    lifecycle.transition(s, actor, si, S.INSTRUCTED, note=note)


def _cancel(s: Session, actor: Actor, si: SI, reason: str) -> None:
    lifecycle.transition(s, actor, si, S.CANCELLED, note=f"cancelled: {reason}")
