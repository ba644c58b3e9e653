"""Corrections under maker-checker control, their approvals, and the comments and attachments on any work item.

Work items are addressed generically as (``item_type``, ``item_id``) where ``item_type`` is the item's table name
(``trades``, ``breaks``, ``recon_matches`` ...), the same words the audit trail and the change feed use.
The four-eyes rule is also held by the database: an approval row carries the maker and the item's last editor and a
CHECK refuses an approver who is either; triggers (migration 0008) compare them with the correction row itself and
refuse an APPROVED status without enough distinct approvals, or fewer required approvals than the threshold asks.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, BigId, IdMixin, Money, UTCDateTime, VersionedMixin, enum_type, utcnow
from .enums import CorrectionKind, CorrectionStatus, Decision


class Correction(IdMixin, VersionedMixin, Base):
    __tablename__ = "corrections"
    __table_args__ = (
        CheckConstraint("required_approvals BETWEEN 1 AND 2", name="required_approvals_range"),
        Index("ix_corrections_status_created", "status", "created_at"),
        Index("ix_corrections_item", "item_type", "item_id"),
    )

    kind: Mapped[CorrectionKind] = mapped_column(enum_type(CorrectionKind))
    item_type: Mapped[str] = mapped_column(String(32))
    item_id: Mapped[int] = mapped_column(BigId)
    item_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # version the maker saw
    payload: Mapped[dict[str, Any]] = (
        mapped_column()
    )  # what to change: {field: {before, after}} or match refs
    reason: Mapped[str] = mapped_column(Text())
    amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    status: Mapped[CorrectionStatus] = mapped_column(enum_type(CorrectionStatus))
    maker_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    item_last_editor_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), nullable=True)
    required_approvals: Mapped[int] = mapped_column(Integer, default=1)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decision_comment: Mapped[str | None] = mapped_column(Text(), nullable=True)


class CorrectionApproval(IdMixin, Base):
    __tablename__ = "correction_approvals"
    __table_args__ = (
        UniqueConstraint("correction_id", "approver_id"),
        CheckConstraint("approver_id <> maker_id", name="approver_not_maker"),
        CheckConstraint(
            "item_last_editor_id IS NULL OR approver_id <> item_last_editor_id",
            name="approver_not_last_editor",
        ),
    )

    correction_id: Mapped[int] = mapped_column(BigId, ForeignKey("corrections.id", ondelete="CASCADE"))
    approver_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    maker_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    item_last_editor_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), nullable=True)
    decision: Mapped[Decision] = mapped_column(enum_type(Decision))
    comment: Mapped[str] = mapped_column(Text(), default="")
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Comment(IdMixin, Base):
    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_item", "item_type", "item_id"),)

    item_type: Mapped[str] = mapped_column(String(32))
    item_id: Mapped[int] = mapped_column(BigId)
    author_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Attachment(IdMixin, Base):
    __tablename__ = "attachments"
    __table_args__ = (Index("ix_attachments_item", "item_type", "item_id"),)

    item_type: Mapped[str] = mapped_column(String(32))
    item_id: Mapped[int] = mapped_column(BigId)
    file_name: Mapped[str] = mapped_column(String(500))
    media_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")
    content: Mapped[bytes] = mapped_column(LargeBinary())
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CorrectionItem(IdMixin, Base):
    """Every item a correction touches (a manual match names several breaks; an amend may name the breaks it
    resolves), so a work item finds its pending corrections and a rejection knows what to give back."""

    __tablename__ = "correction_items"
    __table_args__ = (
        UniqueConstraint("correction_id", "item_type", "item_id"),
        Index("ix_correction_items_item", "item_type", "item_id"),
    )

    correction_id: Mapped[int] = mapped_column(BigId, ForeignKey("corrections.id", ondelete="CASCADE"))
    item_type: Mapped[str] = mapped_column(String(32))
    item_id: Mapped[int] = mapped_column(BigId)
    role: Mapped[str] = mapped_column(String(16), default="primary")  # primary, linked
    prior_status: Mapped[str | None] = mapped_column(String(32), nullable=True)


class ApprovalThreshold(IdMixin, VersionedMixin, Base):
    """Above ``amount`` (in ``currency``; ``*`` for any currency without its own row) a correction needs a second,
    different approver. Supervisors edit these; the database reads them when a correction is stored."""

    __tablename__ = "approval_thresholds"
    __table_args__ = (CheckConstraint("amount >= 0", name="amount_not_negative"),)

    currency: Mapped[str] = mapped_column(String(3), unique=True)
    amount: Mapped[Decimal] = mapped_column(Money)
