"""The two concurrency primitives every pane uses on the shared database.

* **claim**: a conditional UPDATE (``... WHERE owner_id IS NULL``) that exactly one of two competing clerks wins;
  the loser is told who has the item and since when.
* **versioned edit**: an UPDATE guarded by the version the user loaded (``... WHERE version = :seen``); a stale edit
  changes nothing and is refused with "changed by X at T; reload".

Both run in the caller's unit of work, so the audit entry for the change commits with it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.models import User, utcnow
from app.models.enums import ChangeAction

from . import audit
from .errors import AlreadyClaimed, NotFound, StaleEdit, ValidationFailed
from .jsonable import to_jsonable
from .permissions import Actor, Permission, require

# Columns a versioned edit may never set directly (they are the bookkeeping of the primitive itself).
_PROTECTED = {"id", "version", "updated_at", "updated_by_id", "created_at", "owner_id", "claimed_at"}


def _label(model: type) -> str:
    return getattr(model, "__tablename__", model.__name__).rstrip("s").replace("_", " ")


def username_of(session: Session, user_id: int | None) -> str:
    """Who a user id is, for the sentences people read ("the system" for none)."""
    if user_id is None:
        return "the system"
    return session.scalar(select(User.username).where(User.id == user_id)) or f"user #{user_id}"


def _local(ts: dt.datetime | None, actor: Actor) -> str:
    if ts is None:
        return "an unknown time"
    try:
        zone = ZoneInfo(actor.timezone)
    except Exception:  # an unknown zone name must not hide the refusal itself
        zone = ZoneInfo("UTC")
    return ts.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def claim(session: Session, actor: Actor, model: type, item_id: int) -> int:
    """Make ``actor`` the owner of the item if nobody else owns it. Returns the new version.

    Re-claiming one's own item is allowed (idempotent); taking someone else's needs ``reassign``.
    """
    require(actor, Permission.CLAIM)
    now = utcnow()
    result = session.execute(
        update(model)
        .where(model.id == item_id, or_(model.owner_id.is_(None), model.owner_id == actor.user_id))
        .values(
            owner_id=actor.user_id,
            claimed_at=now,
            version=model.version + 1,
            updated_by_id=actor.user_id,
            updated_at=now,
        )
        .returning(model.version)
        .execution_options(synchronize_session=False)
    )
    new_version = result.scalar()
    if new_version is None:
        row = session.execute(select(model.owner_id, model.claimed_at).where(model.id == item_id)).first()
        if row is None:
            raise NotFound(f"The {_label(model)} #{item_id} does not exist (it may have been deleted).")
        raise AlreadyClaimed(
            f"The {_label(model)} #{item_id} is already claimed by {username_of(session, row.owner_id)} "
            f"since {_local(row.claimed_at, actor)}."
        )
    audit.record(
        session,
        actor,
        f"{model.__tablename__}.claim",
        model.__tablename__,
        item_id,
        after={"owner": actor.username},
        change=ChangeAction.UPDATE,
    )
    return int(new_version)


def release(session: Session, actor: Actor, model: type, item_id: int) -> None:
    """Give an item back to the unclaimed pool (only its owner, or a supervisor, may)."""
    require(actor, Permission.CLAIM)
    conds = [model.id == item_id]
    if not actor.can(Permission.ASSIGN_WORK):
        conds.append(model.owner_id == actor.user_id)
    now = utcnow()
    res = session.execute(
        update(model)
        .where(*conds)
        .values(
            owner_id=None,
            claimed_at=None,
            version=model.version + 1,
            updated_by_id=actor.user_id,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        raise AlreadyClaimed(f"The {_label(model)} #{item_id} is not yours to release.")
    audit.record(session, actor, f"{model.__tablename__}.release", model.__tablename__, item_id)


def versioned_update(
    session: Session,
    actor: Actor,
    model: type,
    item_id: int,
    seen_version: int,
    changes: dict[str, Any],
    *,
    action: str | None = None,
) -> int:
    """Apply ``changes`` only if the row is still at ``seen_version``; audit before/after. Returns the new version."""
    bad = set(changes) & _PROTECTED
    unknown = {k for k in changes if not hasattr(model, k)}
    if bad or unknown:
        raise ValidationFailed(f"These fields cannot be edited: {', '.join(sorted(bad | unknown))}.")
    cols = [getattr(model, k) for k in changes]
    current = session.execute(select(model.version, *cols).where(model.id == item_id)).first()
    if current is None:
        raise NotFound(f"The {_label(model)} #{item_id} does not exist (it may have been deleted).")
    before = {k: current[i + 1] for i, k in enumerate(changes)}
    now = utcnow()
    result = session.execute(
        update(model)
        .where(model.id == item_id, model.version == seen_version)
        .values(**changes, version=model.version + 1, updated_by_id=actor.user_id, updated_at=now)
        .returning(model.version)
        .execution_options(synchronize_session=False)
    )
    new_version = result.scalar()
    if new_version is None:
        row = session.execute(
            select(model.updated_by_id, model.updated_at, model.version).where(model.id == item_id)
        ).first()
        raise StaleEdit(
            f"The {_label(model)} #{item_id} was changed by {username_of(session, row.updated_by_id)} at "
            f"{_local(row.updated_at, actor)} (now version {row.version}, you had version {seen_version}); "
            "reload it and make your change again."
        )
    audit.record(
        session,
        actor,
        action or f"{model.__tablename__}.edit",
        model.__tablename__,
        item_id,
        before=to_jsonable(before),
        after=to_jsonable(changes),
    )
    return int(new_version)
