"""Per-user preferences stored in the shared database, so a user's layout follows them to any workstation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from app.models import UserSetting

from .db import Database
from .permissions import Actor, Permission, require


def get(db: Database, actor: Actor, key: str, default: Any = None) -> Any:
    require(actor, Permission.VIEW)
    if actor.user_id is None:
        return default
    with db.read() as s:
        value = s.scalar(
            select(UserSetting.value).where(UserSetting.user_id == actor.user_id, UserSetting.key == key)
        )
    return default if value is None else value.get("v", default)


def put(db: Database, actor: Actor, key: str, value: Any) -> None:
    """Store a preference (not audited: it is the user's screen, not business data)."""
    require(actor, Permission.SAVE_PREFERENCES)
    if actor.user_id is None:
        return
    with db.write() as s:
        row = s.scalar(
            select(UserSetting).where(UserSetting.user_id == actor.user_id, UserSetting.key == key)
        )
        if row is None:
            s.add(UserSetting(user_id=actor.user_id, key=key, value={"v": value}))
        else:
            row.value = {"v": value}


def remove(db: Database, actor: Actor, key: str) -> None:
    require(actor, Permission.SAVE_PREFERENCES)
    with db.write() as s:
        s.execute(delete(UserSetting).where(UserSetting.user_id == actor.user_id, UserSetting.key == key))


def keys(db: Database, actor: Actor, prefix: str) -> list[str]:
    require(actor, Permission.VIEW)
    with db.read() as s:
        return list(
            s.scalars(
                select(UserSetting.key)
                .where(UserSetting.user_id == actor.user_id, UserSetting.key.like(prefix + "%"))
                .order_by(UserSetting.key)
            )
        )
