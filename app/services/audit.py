"""The audit trail and the change feed, written in the caller's transaction.

Every change a service makes calls :func:`record` inside the same unit of work, so the change and its audit entry
commit or roll back together. Entries are hash-chained: ``entry_hash = sha256(prev_hash + canonical entry)``, and
``prev_hash`` is unique, so two writers can never fork the chain; on PostgreSQL an advisory transaction lock
serialises writers at the tip (SQLite write transactions are already serial, see db.py). The database refuses
UPDATE and DELETE on the table (triggers in the initial migration).

Convention: ``entity_type`` is the table name of the item (``trades``, ``breaks``, ``users``), so the change feed's
entity types name exactly what a pane must reload.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.models import AuditEntry, ChangeFeedEntry, utcnow
from app.models.enums import ChangeAction

from .jsonable import canonical_json, to_jsonable
from .permissions import Actor

GENESIS = "0" * 64
_AUDIT_LOCK_KEY = 0x0A0D17  # arbitrary constant naming the audit-chain advisory lock


def _entry_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(entry)).encode()).hexdigest()


def _hashed_fields(e: AuditEntry) -> dict[str, Any]:
    return {
        "occurred_at": e.occurred_at.isoformat(),
        "user_id": e.user_id,
        "username": e.username,
        "action": e.action,
        "entity_type": e.entity_type,
        "entity_id": e.entity_id,
        "before": e.before,
        "after": e.after,
    }


def _tip(session: Session) -> str:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _AUDIT_LOCK_KEY})
    last = session.execute(select(AuditEntry.entry_hash).order_by(AuditEntry.id.desc()).limit(1)).scalar()
    return last or GENESIS


def record(
    session: Session,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: Any = None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    change: ChangeAction | None = ChangeAction.UPDATE,
    summary: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an audit entry (and, unless ``change`` is None, a change-feed row) in ``session``'s transaction."""
    entry = AuditEntry(
        occurred_at=utcnow(),
        user_id=actor.user_id,
        username=actor.username,
        action=action,
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        before=to_jsonable(before) if before is not None else None,
        after=to_jsonable(after) if after is not None else None,
    )
    # Round-trip precision: both backends keep microseconds, so the hash recomputed later matches.
    entry.prev_hash = _tip(session)
    entry.entry_hash = _entry_hash(entry.prev_hash, _hashed_fields(entry))
    session.add(entry)
    if change is not None:
        publish(session, actor, entity_type, entity_id, change, summary or {"action": action})
    session.flush()
    return entry


def publish(
    session: Session,
    actor: Actor,
    entity_type: str,
    entity_id: Any,
    change: ChangeAction,
    summary: dict[str, Any] | None = None,
) -> None:
    """Tell other workstations that something changed (they poll the feed; PostgreSQL also gets a NOTIFY)."""
    session.add(
        ChangeFeedEntry(
            entity_type=entity_type,
            entity_id=None if entity_id is None else str(entity_id),
            action=change,
            user_id=actor.user_id,
            summary=to_jsonable(summary or {}),
        )
    )
    if session.get_bind().dialect.name == "postgresql":
        # Delivered at commit, and only if the transaction commits.
        session.execute(text("SELECT pg_notify('opsdesk_changes', :p)"), {"p": entity_type})


@dataclass
class ChainReport:
    entries: int
    intact: bool
    first_bad_id: int | None = None
    problem: str | None = None


def _iter_entries(session: Session, batch: int = 5000) -> Iterator[AuditEntry]:
    last_id = 0
    while True:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id
        session.expunge_all()


def verify_chain(session: Session) -> ChainReport:
    """Recompute every hash from the first entry; report the first entry that does not fit."""
    prev = GENESIS
    n = 0
    for e in _iter_entries(session):
        n += 1
        if e.prev_hash != prev:
            return ChainReport(n, False, e.id, "links to a different previous entry (an entry was removed?)")
        if _entry_hash(prev, _hashed_fields(e)) != e.entry_hash:
            return ChainReport(n, False, e.id, "its content does not match its hash (the entry was altered)")
        prev = e.entry_hash
    return ChainReport(n, True)


def history(session: Session, entity_type: str, entity_id: Any) -> list[AuditEntry]:
    """Every audit entry about one item, oldest first."""
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.entity_type == entity_type, AuditEntry.entity_id == str(entity_id))
            .order_by(AuditEntry.id)
        )
    )
