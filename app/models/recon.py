"""Reconciliation: definitions, runs, matches and the breaks they leave for people to work."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, BigId, ClaimableMixin, IdMixin, Money, UTCDateTime, VersionedMixin, enum_type, utcnow
from .enums import BreakStatus, BreakType, RunStatus


class ReconDefinition(IdMixin, VersionedMixin, Base):
    """What to compare with what: sides, keys, compared fields with tolerances, ordered passes (JSON config)."""

    __tablename__ = "recon_definitions"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text(), default="")
    left_source: Mapped[str] = mapped_column(String(64))
    right_source: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column()
    is_active: Mapped[bool] = mapped_column(default=True)


class ReconRun(IdMixin, Base):
    __tablename__ = "recon_runs"

    definition_id: Mapped[int] = mapped_column(BigId, ForeignKey("recon_definitions.id"), index=True)
    as_of_date: Mapped[dt.date] = mapped_column(Date())
    status: Mapped[RunStatus] = mapped_column(enum_type(RunStatus))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    run_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), nullable=True)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ReconMatch(IdMixin, Base):
    """A group of internal and external records a run (or a person) declared to agree."""

    __tablename__ = "recon_matches"

    run_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("recon_runs.id"), nullable=True, index=True)
    definition_id: Mapped[int] = mapped_column(BigId, ForeignKey("recon_definitions.id"), index=True)
    pass_name: Mapped[str] = mapped_column(String(64))  # exact_ref, composite, aggregate, manual
    left_refs: Mapped[list[Any]] = mapped_column()
    right_refs: Mapped[list[Any]] = mapped_column()
    matched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    matched_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), nullable=True)
    unmatched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ReconRunPairs(IdMixin, Base):
    """Every one-to-one match one pass of a run made, in one row: ``left_refs[i]`` matched ``right_refs[i]``.

    A daily run re-matches the whole population, so a row per pair per run (a million rows a day) would record the
    same routine agreements again and again. The run's full answer to "what matched what" is kept here compactly,
    as two JSON arrays of record identities (``json.loads`` / ``::jsonb`` to read); ``recon_matches`` keeps the
    matches people look at and act on: aggregations, pairs that closed a break, and people's manual matches.
    """

    __tablename__ = "recon_run_pairs"

    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("recon_runs.id"), index=True)
    definition_id: Mapped[int] = mapped_column(BigId, ForeignKey("recon_definitions.id"), index=True)
    pass_name: Mapped[str] = mapped_column(String(64))
    pairs: Mapped[int] = mapped_column()
    left_refs: Mapped[str] = mapped_column(Text())  # JSON array of internal record identities
    right_refs: Mapped[str] = mapped_column(Text())  # JSON array of external identities, same order


class Break(IdMixin, VersionedMixin, ClaimableMixin, Base):
    __tablename__ = "breaks"
    __table_args__ = (
        # The same difference is never raised twice: a run finds the existing break by its fingerprint.
        UniqueConstraint("definition_id", "fingerprint"),
        Index("ix_breaks_status_opened", "status", "opened_at"),
    )

    definition_id: Mapped[int] = mapped_column(BigId, ForeignKey("recon_definitions.id"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    first_run_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("recon_runs.id"), nullable=True)
    last_run_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("recon_runs.id"), nullable=True)
    break_type: Mapped[BreakType] = mapped_column(enum_type(BreakType))
    status: Mapped[BreakStatus] = mapped_column(enum_type(BreakStatus))
    category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    root_cause: Mapped[str | None] = mapped_column(String(16), nullable=True)  # DQUA, DMON, DDAT ...
    internal_ref: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    external_ref: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    internal_record: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    external_record: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    differences: Mapped[list[Any]] = mapped_column(default=list)  # [{field, internal, external}]
    amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    as_of_date: Mapped[dt.date] = mapped_column(Date())
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
