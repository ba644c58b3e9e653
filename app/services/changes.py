"""Reading the change feed: how a workstation learns that others changed something.

Workstations remember the last feed id they saw and ask for what is newer (polling, cheap thanks to the primary
key). On PostgreSQL the writers also NOTIFY ``opsdesk_changes`` so a listener can poll at once instead of waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from app.models import ChangeFeedEntry

from .db import Database
from .permissions import Actor, Permission, require


@dataclass(frozen=True)
class Change:
    id: int
    entity_type: str
    entity_id: str | None
    action: str
    user_id: int | None
    summary: dict[str, Any]


def latest_id(db: Database, actor: Actor) -> int:
    require(actor, Permission.VIEW)
    with db.read() as s:
        return int(s.scalar(select(func.coalesce(func.max(ChangeFeedEntry.id), 0))) or 0)


def since(db: Database, actor: Actor, last_id: int, limit: int = 1000) -> list[Change]:
    """Changes after ``last_id``, oldest first, at most ``limit`` (call again with the last id for more)."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        rows = s.scalars(
            select(ChangeFeedEntry)
            .where(ChangeFeedEntry.id > last_id)
            .order_by(ChangeFeedEntry.id)
            .limit(limit)
        ).all()
        return [
            Change(r.id, r.entity_type, r.entity_id, r.action.value, r.user_id, dict(r.summary)) for r in rows
        ]
