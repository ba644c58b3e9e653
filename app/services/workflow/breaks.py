"""The part of a break's life that people do: claim, release, assign, categorise, and its history.

Lifecycle (``BREAK_TRANSITIONS``)::

    OPEN ──claim/assign──▶ ASSIGNED ──propose a correction──▶ PROPOSED ──approve──▶ RESOLVED | WRITTEN_OFF
      ▲ ◀──release────────────┘   ◀──reject / withdraw──────────┘
      └──────── reopen (a resolved difference comes back in a later run) ◀── RESOLVED | WRITTEN_OFF

A recon run may also close an OPEN/ASSIGNED/PROPOSED break by itself when it finds the match (RESOLVED), and the
engine reopens a resolved break whose difference comes back; both use :func:`move_break` like everyone else, so
every change of status is a conditional UPDATE (``WHERE status IN (allowed sources)``) with an audit entry in the
same transaction. Resolving and writing a break off are never done directly by a clerk: :func:`resolve_break` and
:func:`write_off` propose a FORCE_CLOSE or WRITE_OFF correction that a supervisor approves (corrections.py).

Claiming is exactly-one-winner (conditional UPDATE ``WHERE owner_id IS NULL``); categorising is a versioned edit
refused with "changed by X at T; reload" when the break changed since the clerk loaded it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.models import AuditEntry, Break, User, utcnow
from app.models.enums import BreakStatus, CorrectionKind, Role
from app.models.workflow import Attachment, Comment, CorrectionItem
from app.services import audit
from app.services.concurrency import username_of, versioned_update
from app.services.db import Database
from app.services.errors import AlreadyClaimed, InvalidTransition, NotFound, StaleEdit, ValidationFailed
from app.services.permissions import Actor, Permission, require

from .comments import item_table, usernames

OPEN, ASSIGNED, PROPOSED, RESOLVED, WRITTEN_OFF = (
    BreakStatus.OPEN,
    BreakStatus.ASSIGNED,
    BreakStatus.PROPOSED,
    BreakStatus.RESOLVED,
    BreakStatus.WRITTEN_OFF,
)

# The only moves a break's status may make (from -> allowed targets).
BREAK_TRANSITIONS: dict[BreakStatus, frozenset[BreakStatus]] = {
    OPEN: frozenset({ASSIGNED, PROPOSED, RESOLVED}),  # PROPOSED: a supervisor proposes on an unowned break
    ASSIGNED: frozenset({OPEN, PROPOSED, RESOLVED}),
    PROPOSED: frozenset({OPEN, ASSIGNED, RESOLVED, WRITTEN_OFF}),
    RESOLVED: frozenset({OPEN}),  # reopened when the difference comes back
    WRITTEN_OFF: frozenset({OPEN}),
}
ACTIVE = (OPEN, ASSIGNED, PROPOSED)
CLOSED = (RESOLVED, WRITTEN_OFF)

# Categories a break is filed under (the work list filters on them) and root-cause codes: the market's own
# (MT548/sese.024 reason codes) where they fit, then a few of our own for causes the market has no code for.
CATEGORIES: tuple[str, ...] = (
    "Timing",
    "Booking error",
    "Static data",
    "Price",
    "Quantity",
    "Fees and commissions",
    "FX",
    "Corporate action",
    "Counterparty error",
    "Custodian error",
    "Duplicate",
    "Unknown",
)
ROOT_CAUSES: dict[str, str] = {
    "DQUA": "quantity differs",
    "DMON": "settlement amount differs",
    "DDAT": "settlement date differs",
    "DTRD": "trade date differs",
    "DSEC": "instrument differs",
    "DEPT": "place of settlement differs",
    "DELN": "direction (deliver/receive) differs",
    "DCUR": "currency differs",
    "DCPT": "counterparty differs",
    "CMIS": "no counterparty instruction",
    "LACK": "lack of securities",
    "MONY": "lack of cash",
    "TIME": "timing: will clear in a later run",
    "FEES": "fees or commission",
    "FXRT": "FX rate",
    "STAT": "static or reference data",
    "BOOK": "booking error",
    "DUPL": "duplicate record",
    "UNKN": "not yet known",
}


def _zone(actor: Actor) -> ZoneInfo:
    try:
        return ZoneInfo(actor.timezone)
    except Exception:  # an unknown zone name must not break the history
        return ZoneInfo("UTC")


def local_text(ts: dt.datetime | None, actor: Actor) -> str:
    if ts is None:
        return ""
    return ts.astimezone(_zone(actor)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _load(session: Session, break_id: int) -> Break:
    brk = session.get(Break, break_id)
    if brk is None:
        raise NotFound(f"Break #{break_id} does not exist (it may have been deleted).")
    return brk


def _sources(target: BreakStatus) -> list[BreakStatus]:
    return [src for src, targets in BREAK_TRANSITIONS.items() if target in targets]


def move_break(
    session: Session,
    actor: Actor,
    break_id: int,
    target: BreakStatus,
    *,
    action: str,
    values: dict[str, Any] | None = None,
    seen_version: int | None = None,
    from_statuses: tuple[BreakStatus, ...] | None = None,
    note: dict[str, Any] | None = None,
) -> int:
    """Move a break to ``target`` if the lifecycle allows it from its current status; audit it. New version.

    The UPDATE is conditional on the status (and on ``seen_version`` when given), so two people (or a person and a
    recon run) racing on one break cannot both win. ``from_statuses`` narrows the allowed sources further.
    """
    sources = _sources(target)
    if from_statuses is not None:
        sources = [s for s in sources if s in from_statuses]
    conds = [Break.id == break_id, Break.status.in_(sources)]
    if seen_version is not None:
        conds.append(Break.version == seen_version)
    before = session.execute(select(Break.status, Break.owner_id).where(Break.id == break_id)).first()
    if before is None:
        raise NotFound(f"Break #{break_id} does not exist (it may have been deleted).")
    now = utcnow()
    vals: dict[str, Any] = {"status": target, **(values or {})}
    if target in CLOSED:
        vals.setdefault("resolved_at", now)
    elif target == OPEN and before.status in CLOSED:
        vals.setdefault("resolved_at", None)
    new_version = session.execute(
        update(Break)
        .where(*conds)
        .values(**vals, version=Break.version + 1, updated_by_id=actor.user_id, updated_at=now)
        .returning(Break.version)
        .execution_options(synchronize_session=False)
    ).scalar()
    if new_version is None:
        row = session.execute(
            select(Break.status, Break.version, Break.updated_by_id, Break.updated_at).where(
                Break.id == break_id
            )
        ).first()
        if seen_version is not None and row.version != seen_version:
            raise StaleEdit(
                f"Break #{break_id} was changed by {username_of(session, row.updated_by_id)} at "
                f"{local_text(row.updated_at, actor)} (now version {row.version}, you had version {seen_version}); "
                "reload it and try again."
            )
        raise InvalidTransition(
            f"Break #{break_id} is {row.status.value}; it cannot become {target.value} "
            f"(allowed from {', '.join(s.value for s in sources) or 'no status'})."
        )
    after: dict[str, Any] = {"status": target.value, **{k: v for k, v in vals.items() if k != "status"}}
    audit.record(
        session,
        actor,
        action,
        "breaks",
        break_id,
        before={"status": before.status.value, "owner_id": before.owner_id},
        after={**after, **(note or {})},
    )
    return int(new_version)


def _check_can_work(session: Session, actor: Actor, brk: Break) -> None:
    """A break claimed by someone else is theirs: only they (or a supervisor) work it."""
    if brk.owner_id is not None and brk.owner_id != actor.user_id and not actor.can(Permission.ASSIGN_WORK):
        raise AlreadyClaimed(
            f"Break #{brk.id} is claimed by {username_of(session, brk.owner_id)} since "
            f"{local_text(brk.claimed_at, actor)}; ask them or a supervisor to reassign it."
        )


# --- claim, release, assign -------------------------------------------------------------------------------------


def _set_owner(session: Session, actor: Actor, owner_id: int | None, *conds: Any) -> int | None:
    """One versioned UPDATE making ``owner_id`` (None: nobody) the owner of the break ``conds`` select. Returns the
    new version, or None when no row matched (someone else got there first: the caller says who)."""
    now = utcnow()
    return session.execute(
        update(Break)
        .where(*conds)
        .values(
            owner_id=owner_id,
            claimed_at=None if owner_id is None else now,
            version=Break.version + 1,
            updated_by_id=actor.user_id,
            updated_at=now,
        )
        .returning(Break.version)
        .execution_options(synchronize_session=False)
    ).scalar()


def _open_becomes_assigned(session: Session, break_id: int) -> None:
    """A break with an owner is being worked: OPEN becomes ASSIGNED (other statuses stay as they are)."""
    session.execute(
        update(Break)
        .where(Break.id == break_id, Break.status == OPEN)
        .values(status=ASSIGNED)
        .execution_options(synchronize_session=False)
    )


def claim_in(session: Session, actor: Actor, break_id: int) -> int:
    """Claim in the caller's unit of work (a proposal claims the breaks it names). Returns the new version."""
    require(actor, Permission.CLAIM)
    before = session.execute(select(Break.status, Break.owner_id).where(Break.id == break_id)).first()
    new_version = _set_owner(
        session,
        actor,
        actor.user_id,
        Break.id == break_id,
        or_(Break.owner_id.is_(None), Break.owner_id == actor.user_id),
        Break.status.in_(ACTIVE),
    )
    if new_version is None:
        row = session.execute(
            select(Break.status, Break.owner_id, Break.claimed_at).where(Break.id == break_id)
        ).first()
        if row is None:
            raise NotFound(f"Break #{break_id} does not exist (it may have been deleted).")
        if row.status in CLOSED:
            raise InvalidTransition(
                f"Break #{break_id} is {row.status.value}; there is nothing left to work."
            )
        raise AlreadyClaimed(
            f"Break #{break_id} is already claimed by {username_of(session, row.owner_id)} since "
            f"{local_text(row.claimed_at, actor)}."
        )
    # The row is ours now (locked on PostgreSQL until commit): an OPEN break becomes ASSIGNED.
    _open_becomes_assigned(session, break_id)
    status_after = ASSIGNED if before.status == OPEN else before.status
    audit.record(
        session,
        actor,
        "breaks.claim",
        "breaks",
        break_id,
        before={"status": before.status.value, "owner_id": before.owner_id},
        after={"status": status_after.value, "owner_id": actor.user_id, "owner": actor.username},
    )
    return int(new_version)


def claim_break(db: Database, actor: Actor, break_id: int) -> int:
    """Make the break the actor's (exactly one of two racing clerks wins; the loser is told who has it).

    Re-claiming one's own break is allowed. Returns the break's new version.
    """
    require(actor, Permission.CLAIM)
    with db.write() as s:
        return claim_in(s, actor, break_id)


def release_break(db: Database, actor: Actor, break_id: int) -> int:
    """Give a break back to the unclaimed pool (its owner, or a supervisor). ASSIGNED goes back to OPEN; a break
    with a pending correction stays PROPOSED. Returns the new version."""
    require(actor, Permission.CLAIM)
    with db.write() as s:
        brk = _load(s, break_id)
        if brk.owner_id is None:
            raise InvalidTransition(f"Break #{break_id} is not claimed by anyone.")
        if brk.owner_id != actor.user_id and not actor.can(Permission.ASSIGN_WORK):
            raise AlreadyClaimed(
                f"Break #{break_id} is claimed by {username_of(s, brk.owner_id)}, not by you; only they or a supervisor "
                "may release it."
            )
        if brk.status == ASSIGNED:
            return move_break(
                s,
                actor,
                break_id,
                OPEN,
                action="breaks.release",
                values={"owner_id": None, "claimed_at": None},
                from_statuses=(ASSIGNED,),
            )
        version = _set_owner(s, actor, None, Break.id == break_id, Break.owner_id == brk.owner_id)
        if version is None:
            raise StaleEdit(f"Break #{break_id} changed while it was being released; reload it.")
        audit.record(
            s,
            actor,
            "breaks.release",
            "breaks",
            break_id,
            before={"owner_id": brk.owner_id},
            after={"owner_id": None},
        )
        return int(version)


def assign_break(
    db: Database, actor: Actor, break_id: int, user_id: int, *, seen_version: int | None = None
) -> int:
    """A supervisor gives a break to a clerk (or takes it from one). Returns the new version."""
    require(actor, Permission.ASSIGN_WORK)
    with db.write() as s:
        user = s.get(User, user_id)
        if user is None or not user.is_active:
            raise NotFound(f"There is no active user #{user_id} to assign break #{break_id} to.")
        if user.role not in (Role.CLERK, Role.SUPERVISOR):
            raise ValidationFailed(
                f"{user.username} is {user.role.value}; breaks are worked by clerks and supervisors."
            )
        brk = _load(s, break_id)
        if brk.status in CLOSED:
            raise InvalidTransition(
                f"Break #{break_id} is {brk.status.value}; there is nothing left to assign."
            )
        conds = [Break.id == break_id, Break.status.in_(ACTIVE)]
        if seen_version is not None:
            conds.append(Break.version == seen_version)
        version = _set_owner(s, actor, user_id, *conds)
        if version is None:
            row = s.execute(
                select(Break.version, Break.updated_by_id, Break.updated_at).where(Break.id == break_id)
            ).first()
            raise StaleEdit(
                f"Break #{break_id} was changed by {username_of(s, row.updated_by_id)} at {local_text(row.updated_at, actor)}; "
                "reload it."
            )
        _open_becomes_assigned(s, break_id)
        audit.record(
            s,
            actor,
            "breaks.assign",
            "breaks",
            break_id,
            before={
                "status": brk.status.value,
                "owner_id": brk.owner_id,
                "owner": username_of(s, brk.owner_id) if brk.owner_id else None,
            },
            after={
                "status": (ASSIGNED if brk.status == OPEN else brk.status).value,
                "owner_id": user_id,
                "owner": user.username,
            },
        )
        return int(version)


# --- categorise -------------------------------------------------------------------------------------------------


def set_category(
    db: Database,
    actor: Actor,
    break_id: int,
    category: str | None,
    root_cause: str | None,
    *,
    seen_version: int,
) -> int:
    """File the break under a category and root-cause code (a versioned edit). Returns the new version."""
    require(actor, Permission.WORK_ITEMS)
    cat = (category or "").strip() or None
    code = (root_cause or "").strip().upper() or None
    if cat is not None and cat not in CATEGORIES:
        matches = [c for c in CATEGORIES if c.lower() == cat.lower()]
        if not matches:
            raise ValidationFailed(f"'{cat}' is not a break category; use one of: {', '.join(CATEGORIES)}.")
        cat = matches[0]
    if code is not None and code not in ROOT_CAUSES:
        raise ValidationFailed(
            f"'{code}' is not a root-cause code; use one of: "
            + ", ".join(f"{k} ({v})" for k, v in ROOT_CAUSES.items())
            + "."
        )
    with db.write() as s:
        brk = _load(s, break_id)
        _check_can_work(s, actor, brk)
        if brk.status in CLOSED:
            raise InvalidTransition(f"Break #{break_id} is {brk.status.value}; reopen it before changing it.")
        return versioned_update(
            s,
            actor,
            Break,
            break_id,
            seen_version,
            {"category": cat, "root_cause": code},
            action="breaks.categorise",
        )


# --- resolution goes through the four-eyes workflow --------------------------------------------------------------


def resolve_break(
    db: Database, actor: Actor, break_id: int, reason: str, *, seen_version: int | None = None
) -> int:
    """Propose closing the break as resolved (a FORCE_CLOSE correction a supervisor approves). Correction id."""
    from .corrections import propose

    return propose(
        db, actor, CorrectionKind.FORCE_CLOSE, "breaks", break_id, {}, reason, seen_version=seen_version
    )


def write_off(
    db: Database,
    actor: Actor,
    break_id: int,
    reason: str,
    *,
    amount: Any = None,
    seen_version: int | None = None,
) -> int:
    """Propose writing the break's difference off (a WRITE_OFF correction). ``amount`` defaults to the break's
    amount at stake. Returns the correction id."""
    from .corrections import propose

    payload = {} if amount is None else {"amount": str(amount)}
    return propose(
        db, actor, CorrectionKind.WRITE_OFF, "breaks", break_id, payload, reason, seen_version=seen_version
    )


# --- history ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryLine:
    at: dt.datetime  # in the reader's zone
    when: str  # the same, as text with the zone's abbreviation
    who: str
    kind: str  # audit, comment, attachment
    action: str
    text: str  # one sentence a person reads
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = field(default=None)


def _fmt(value: Any) -> str:
    return "—" if value is None or value == "" else str(value)


_VERBS = {
    "propose": "proposed",
    "approve": "approved",
    "reject": "rejected",
    "withdraw": "withdrawn",
    "first_approval": "approved once, waiting for a second approver",
}


def describe_entry(action: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    b, a = before or {}, after or {}
    status = (
        f" ({b['status']} → {a['status']})"
        if b.get("status") and a.get("status") and b["status"] != a["status"]
        else ""
    )
    if action.endswith(".claim"):
        return f"claimed by {a.get('owner', '')}{status}".strip()
    if action.endswith(".assign"):
        return (
            f"assigned to {a.get('owner', '')}" + (f" (was {b['owner']})" if b.get("owner") else "") + status
        )
    if action.endswith(".release"):
        return "released to the unclaimed pool" + status
    if action.endswith(".categorise"):
        return (
            f"category {_fmt(b.get('category'))} → {_fmt(a.get('category'))}, "
            f"root cause {_fmt(b.get('root_cause'))} → {_fmt(a.get('root_cause'))}"
        )
    if action.startswith("corrections."):
        verb = action.split(".", 1)[1]
        kind = a.get("kind") or b.get("kind") or "correction"
        said = _VERBS.get(verb, verb.replace("_", " "))
        if verb == "first_approval":
            said += f" ({a.get('approvals', 1)} of {a.get('required', 2)})"
        text = f"{kind} correction #{a.get('correction_id', '')} {said}"
        if a.get("reason"):
            text += f": {a['reason']}"
        if a.get("comment"):
            text += f" — “{a['comment']}”"
        return text
    if action.startswith("breaks.correction_"):
        verb = action.split("_", 1)[1]
        text = f"correction #{a.get('correction_id', '')} {verb}{status}"
        if a.get("comment"):
            text += f" — “{a['comment']}”"
        return text
    changed = [k for k in a if k not in ("owner_id",) and b.get(k) != a.get(k) and k != "status"]
    detail = ", ".join(f"{k.replace('_', ' ')} {_fmt(b.get(k))} → {_fmt(a.get(k))}" for k in changed[:6])
    label = action.split(".", 1)[-1].replace("_", " ")
    return f"{label}{status}" + (f": {detail}" if detail else "")


def history(db: Database, actor: Actor, item_type: str, item_id: int) -> list[HistoryLine]:
    """Everything that happened to an item, oldest first: its audit entries, the entries of the corrections that
    name it, its comments and attachments, with times in the reader's zone."""
    require(actor, Permission.VIEW)
    table = item_table(item_type)
    zone = _zone(actor)
    with db.read() as s:
        entries: list[AuditEntry] = list(audit.history(s, table, item_id))
        correction_ids = s.scalars(
            select(CorrectionItem.correction_id).where(
                CorrectionItem.item_type == table, CorrectionItem.item_id == item_id
            )
        ).all()
        if correction_ids:
            entries.extend(
                s.scalars(
                    select(AuditEntry).where(
                        AuditEntry.entity_type == "corrections",
                        AuditEntry.entity_id.in_([str(c) for c in correction_ids]),
                    )
                )
            )
        entries.sort(key=lambda e: e.id)  # the chain's order breaks ties between equal timestamps
        lines: list[tuple[dt.datetime, int, HistoryLine]] = []
        for e in entries:
            at = e.occurred_at.astimezone(zone)
            lines.append(
                (
                    e.occurred_at,
                    0,
                    HistoryLine(
                        at=at,
                        when=at.strftime("%Y-%m-%d %H:%M:%S %Z"),
                        who=e.username,
                        kind="audit",
                        action=e.action,
                        text=describe_entry(e.action, e.before, e.after),
                        before=e.before,
                        after=e.after,
                    ),
                )
            )
        notes = s.scalars(
            select(Comment).where(Comment.item_type == table, Comment.item_id == item_id).order_by(Comment.id)
        ).all()
        files = s.execute(
            select(
                Attachment.id, Attachment.file_name, Attachment.uploaded_by_id, Attachment.uploaded_at
            ).where(Attachment.item_type == table, Attachment.item_id == item_id)
        ).all()
        names = usernames(s, {c.author_id for c in notes} | {f.uploaded_by_id for f in files})
        for c in notes:
            at = c.created_at.astimezone(zone)
            who = names.get(c.author_id, f"user #{c.author_id}")
            lines.append(
                (
                    c.created_at,
                    1,
                    HistoryLine(at, at.strftime("%Y-%m-%d %H:%M:%S %Z"), who, "comment", "comment", c.body),
                )
            )
        for f in files:
            at = f.uploaded_at.astimezone(zone)
            who = names.get(f.uploaded_by_id, f"user #{f.uploaded_by_id}")
            lines.append(
                (
                    f.uploaded_at,
                    2,
                    HistoryLine(
                        at,
                        at.strftime("%Y-%m-%d %H:%M:%S %Z"),
                        who,
                        "attachment",
                        "attachment",
                        f"attached {f.file_name}",
                        after={"attachment_id": f.id},
                    ),
                )
            )
        lines.sort(key=lambda t: (t[0], t[1]))  # stable: equal times keep the order above
        return [line for _, _, line in lines]


def owner_check(session: Session, actor: Actor, brk: Break) -> None:
    """Public form of the ownership rule for the correction workflow."""
    _check_can_work(session, actor, brk)


# --- a plain listing (the CLI's; the pane pages through worklist.work_list) --------------------------------------


@dataclass(frozen=True)
class BreakRow:
    id: int
    definition_id: int
    break_type: str
    status: str
    category: str | None
    root_cause: str | None
    internal_ref: str | None
    external_ref: str | None
    amount: Any
    currency: str | None
    owner: str | None
    opened_at: dt.datetime
    version: int


def list_breaks(
    db: Database,
    actor: Actor,
    *,
    statuses: tuple[str, ...] = ("OPEN", "ASSIGNED", "PROPOSED"),
    mine: bool = False,
    unassigned: bool = False,
    definition_id: int | None = None,
    limit: int = 200,
) -> list[BreakRow]:
    """Breaks oldest first (by default the ones still being worked), optionally only the actor's or nobody's."""
    require(actor, Permission.VIEW)
    try:
        wanted = [BreakStatus(s.upper()) for s in statuses]
    except ValueError:
        raise ValidationFailed(
            f"Unknown break status in {', '.join(statuses)}; use {', '.join(s.value for s in BreakStatus)}."
        ) from None
    with db.read() as s:
        q = select(Break).where(Break.status.in_(wanted))
        if mine:
            q = q.where(Break.owner_id == actor.user_id)
        if unassigned:
            q = q.where(Break.owner_id.is_(None))
        if definition_id is not None:
            q = q.where(Break.definition_id == definition_id)
        rows = list(s.scalars(q.order_by(Break.opened_at, Break.id).limit(max(1, min(limit, 10_000)))))
        names = usernames(s, {b.owner_id for b in rows})
        return [
            BreakRow(
                id=b.id,
                definition_id=b.definition_id,
                break_type=b.break_type.value,
                status=b.status.value,
                category=b.category,
                root_cause=b.root_cause,
                internal_ref=b.internal_ref,
                external_ref=b.external_ref,
                amount=b.amount,
                currency=b.currency,
                owner=names.get(b.owner_id) if b.owner_id else None,
                opened_at=b.opened_at,
                version=b.version,
            )
            for b in rows
        ]


def user_id_of(db: Database, username: str) -> int:
    """The id of a user by name (the CLI names people; the services take ids)."""
    with db.read() as s:
        uid = s.scalar(select(User.id).where(User.username == username))
    if uid is None:
        raise NotFound(f"There is no user called {username}.")
    return int(uid)
