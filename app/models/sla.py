"""SLA rules, the current state of every item they watch, the history of state changes, and regulatory reports.

``sla_item_states`` holds one row per (SLA, open item): the state the last evaluation found. The evaluator compares
a fresh evaluation with it and appends an ``sla_events`` row only where the state changed, so the events are the
history of when each item went ON_TRACK -> AT_RISK -> BREACHED (or MET). ``owner_id`` on both is a snapshot of the
item's owner at that moment (who to alert), deliberately without a foreign key: bulk evaluation writes many rows
and the snapshot must survive the user's later removal.

``regulatory_reports`` records that a trade's transaction report (MiFIR RTS 22) was filed and when: the
"regulatory report filed by T+1" SLA is met by the ``reported_at`` of this row. The reporting itself (building and
sending the report, reconciling the regulator's feedback) is a later area; it only has to write these rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, BigId, IdMixin, UTCDateTime, VersionedMixin, enum_type, utcnow
from .enums import SlaState


class SlaDefinition(IdMixin, VersionedMixin, Base):
    """A deadline rule on a kind of item, e.g. ``affirm by 21:00 America/New_York on trade date``.

    ``rule`` holds the parameters the SLA engine reads (anchor field, offset in business days or hours, local cut-off
    time and zone, filters by category or amount band); ``warning_minutes`` is the AT_RISK window.
    ``last_evaluated_at`` is the moment the last recorded evaluation looked at (items closed since then are
    given their final MET or BREACHED event by the next one); it is bookkeeping, not an edit, so it does not bump
    ``version``.
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
    last_evaluated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SlaEvent(IdMixin, Base):
    """An item entering a state under an SLA (the history the monitor's trend and alerts read).

    ``business_date`` is the local date the deadline belongs to (trade date for affirmation, intended settlement
    date for settlement ...), so attainment per day is a GROUP BY on both backends.
    """

    __tablename__ = "sla_events"
    __table_args__ = (
        Index("ix_sla_events_item", "sla_id", "item_type", "item_id"),
        Index("ix_sla_events_sla_business_date", "sla_id", "business_date"),
        # Covers the dashboard's MET/BREACHED outcomes per SLA and day (a GROUP BY over the whole history window):
        # read from the index alone, 4x faster at 300,000 events.
        Index("ix_sla_events_outcomes", "business_date", "state", "sla_id", "item_id"),
    )

    sla_id: Mapped[int] = mapped_column(BigId, ForeignKey("sla_definitions.id", ondelete="CASCADE"))
    item_type: Mapped[str] = mapped_column(String(32))
    item_id: Mapped[int] = mapped_column(BigId)
    state: Mapped[SlaState] = mapped_column(enum_type(SlaState))
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    business_date: Mapped[dt.date | None] = mapped_column(Date(), nullable=True)
    owner_id: Mapped[int | None] = mapped_column(BigId, nullable=True)


class SlaItemState(Base):
    """The state the last recorded evaluation gave an open item under an SLA (one row per SLA and item).

    ``due_at`` (also as ``due_s``, its epoch seconds: integers to compare, for the evaluator's bulk read and the
    monitor's state-at-a-moment tests) and ``owner_id`` are kept equal to the last evaluation's (rewritten when the
    deadline or the owner changed, not only the state), so the monitor reads counts, "time left" and workload from
    here and from its aggregate ``sla_due_counts``: the state at any later moment is a comparison of the deadline
    with the clock.
    """

    __tablename__ = "sla_item_states"

    sla_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sla_definitions.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    state: Mapped[SlaState] = mapped_column(enum_type(SlaState))
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    due_s: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # NULL (rows before 0012): rewritten
    since: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    owner_id: Mapped[int | None] = mapped_column(BigId, nullable=True)


class SlaDueCount(Base):
    """How many open items of an SLA share a deadline and an owner (``owner_key`` -1: nobody), from the states.

    A stored aggregate of ``sla_item_states`` (a few rows per deadline instant: deadlines are cut-offs per date and
    market, except the hour-based rules), moved in the same transaction by the recording evaluation by exactly
    the rows it rewrites or drops. The monitor counts items by state at any moment (deadline ranges) and the
    workload per owner from here, in a few thousand rows instead of every open item.
    """

    __tablename__ = "sla_due_counts"

    sla_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sla_definitions.id", ondelete="CASCADE"), primary_key=True
    )
    due_s: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # the deadline, epoch seconds
    owner_key: Mapped[int] = mapped_column(BigId, primary_key=True)
    items: Mapped[int] = mapped_column(Integer)


class SlaDailyOutcome(Base):
    """Per SLA and business date: the distinct items that ended MET and BREACHED (attainment and its trend).

    A stored aggregate of ``sla_events``: the recording evaluation recomputes, in the same transaction, the rows
    of every (SLA, business date) it wrote a MET or BREACHED event for, with the very GROUP BY the dashboard would
    run over the events; the monitor then reads a few hundred rows instead of counting the whole history.
    """

    __tablename__ = "sla_daily_outcomes"

    sla_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sla_definitions.id", ondelete="CASCADE"), primary_key=True
    )
    business_date: Mapped[dt.date] = mapped_column(Date(), primary_key=True)
    met: Mapped[int] = mapped_column(Integer, default=0)
    breached: Mapped[int] = mapped_column(Integer, default=0)


class RegulatoryReport(IdMixin, Base):
    """A trade's transaction report as filed (one per trade and regime)."""

    __tablename__ = "regulatory_reports"
    __table_args__ = (Index("ix_regulatory_reports_trade_regime", "trade_id", "regime", unique=True),)

    trade_id: Mapped[int] = mapped_column(BigId, ForeignKey("trades.id", ondelete="CASCADE"))
    regime: Mapped[str] = mapped_column(String(16), default="MIFIR")
    report_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), nullable=True)
