"""The append-only, hash-chained audit log, and the change feed other workstations poll.

Append-only is enforced by the database (triggers created in the initial migration refuse UPDATE and DELETE);
tamper-evidence comes from each entry's hash covering the previous entry's hash (see services.audit).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, BigId, IdMixin, UTCDateTime, enum_type, utcnow
from .enums import ChangeAction


class AuditEntry(IdMixin, Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity_type", "entity_id"),)

    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), nullable=True)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))  # trade.repair, break.claim, user.login_failed ...
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    # Unique: two writers that read the same tip cannot both append, so the chain never forks.
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


class ChangeFeedEntry(IdMixin, Base):
    """One row per change; workstations remember the last id they saw and fetch what is newer."""

    __tablename__ = "change_feed"

    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    entity_type: Mapped[str] = mapped_column(String(32), index=True)
    entity_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[ChangeAction] = mapped_column(enum_type(ChangeAction))
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), nullable=True)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
