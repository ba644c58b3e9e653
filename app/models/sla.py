"""SLA rules and the state history of the items they watch."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, BigId, IdMixin, UTCDateTime, VersionedMixin, enum_type, utcnow
from .enums import SlaState


class SlaDefinition(IdMixin, VersionedMixin, Base):
    """A deadline rule on a kind of item, e.g. ``affirm by 21:00 America/New_York on trade date``.

    ``rule`` holds the parameters the SLA engine reads (anchor field, offset in business days or hours, local cut-off
    time and zone, filters by category or amount band); ``warning_minutes`` is the AT_RISK window.
    """

    __tablename__ = "sla_definitions"

    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    item_type: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text(), default="")
    rule: Mapped[dict[str, Any]] = mapped_column()
    warning_minutes: Mapped[int] = mapped_column(Integer, default=60)
    market_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("markets.id"), nullable=True)
    is_active: Mapped[bool] = mapped_column(default=True)


class SlaEvent(IdMixin, Base):
    """An item entering a state under an SLA (the history the monitor's trend and alerts read)."""

    __tablename__ = "sla_events"
    __table_args__ = (Index("ix_sla_events_item", "sla_id", "item_type", "item_id"),)

    sla_id: Mapped[int] = mapped_column(BigId, ForeignKey("sla_definitions.id", ondelete="CASCADE"))
    item_type: Mapped[str] = mapped_column(String(32))
    item_id: Mapped[int] = mapped_column(BigId)
    state: Mapped[SlaState] = mapped_column(enum_type(SlaState))
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
