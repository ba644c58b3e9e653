"""Settlement instructions (per trade or netted), the messages exchanged about them, and fail penalties."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from .base import (
    Base,
    BigId,
    ClaimableMixin,
    IdMixin,
    Money,
    Quantity,
    UTCDateTime,
    VersionedMixin,
    enum_type,
    utcnow,
)
from .enums import (
    ClearingExceptionState,
    InstructionStatus,
    InstructionType,
    MessageDirection,
    MessageStatus,
    PenaltyDirection,
    SettlementExceptionKind,
)


class SettlementInstruction(IdMixin, VersionedMixin, ClaimableMixin, Base):
    __tablename__ = "settlement_instructions"
    __table_args__ = (
        Index("ix_settlement_instructions_isd_id", "intended_settlement_date", "id"),
        Index("ix_settlement_instructions_status_id", "status", "id"),
        # The settlement queue's sorts and filters at a million rows (keyset paging on (column, id)).
        Index("ix_settlement_instructions_trade_date_id", "trade_date", "id"),
        Index("ix_settlement_instructions_amount_id", "settlement_amount", "id"),
        Index("ix_settlement_instructions_quantity_id", "quantity", "id"),
        Index("ix_settlement_instructions_currency_id", "currency", "id"),
        Index("ix_settlement_instructions_updated_at_id", "updated_at", "id"),
        Index("ix_settlement_instructions_status_isd_id", "status", "intended_settlement_date", "id"),
        # Full, though mostly NULL: the queue's count per reason reads every row in reason order from it (SQLite,
        # no filter: measured 0.18 s at 200,000 instructions with it, 0.28 s with a partial one).
        Index("ix_settlement_instructions_reason_code", "reason_code"),
        # Partial: only rows that have a value. Most instructions have no owner and replace nothing; no query reads
        # these two for the NULLs (the queue finds the unowned ones through its sort index), so they hold only the
        # rows they are read for, and a new (PENDING, unclaimed) instruction adds nothing to them.
        Index(
            "ix_settlement_instructions_owner_id",
            "owner_id",
            postgresql_where=text("owner_id IS NOT NULL"),
            sqlite_where=text("owner_id IS NOT NULL"),
        ),
        Index(
            "ix_settlement_instructions_replaces_id",
            "replaces_id",
            postgresql_where=text("replaces_id IS NOT NULL"),
            sqlite_where=text("replaces_id IS NOT NULL"),
        ),
    )

    instruction_ref: Mapped[str] = mapped_column(String(35), unique=True)  # our :20C::SEME
    instruction_type: Mapped[InstructionType] = mapped_column(enum_type(InstructionType))
    is_netted: Mapped[bool] = mapped_column(default=False)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id"), index=True)
    counterparty_id: Mapped[int] = mapped_column(BigId, ForeignKey("counterparties.id"), index=True)
    instrument_id: Mapped[int] = mapped_column(BigId, ForeignKey("instruments.id"), index=True)
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    settlement_amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    trade_date: Mapped[dt.date] = mapped_column(Date())
    intended_settlement_date: Mapped[dt.date] = mapped_column(Date())
    actual_settlement_date: Mapped[dt.date | None] = mapped_column(Date(), nullable=True)
    settled_quantity: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
    settled_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    status: Mapped[InstructionStatus] = mapped_column(enum_type(InstructionStatus))
    # Market reason code (MT548 / sese.024: CMIS, DDAT, LACK, MONY ...) for unmatched, pending and failed items.
    reason_code: Mapped[str | None] = mapped_column(String(8), nullable=True)
    reason_text: Mapped[str | None] = mapped_column(String(500), nullable=True)
    our_ssi_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("ssis.id"), nullable=True)
    their_ssi_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("ssis.id"), nullable=True)
    instructed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    counterparty_ref: Mapped[str | None] = mapped_column(String(35), nullable=True)
    # NULL for a CSD instruction; GIVE_UP / OUT_TRADE for the futures exceptions worked in the same queue (their
    # details in clearing_exceptions).
    exception_kind: Mapped[SettlementExceptionKind | None] = mapped_column(
        enum_type(SettlementExceptionKind), nullable=True
    )
    # The instruction this one replaces (un-netting: the cancelled net obligation its gross or re-netted
    # replacements came from), so a clerk can trace an obligation back through every re-instruction. A plain
    # column, no foreign key: SQLite can only add a column in place with an inline, unnamed-when-reflected key,
    # and instructions are never deleted (cancelled ones stay), so the link cannot dangle.
    replaces_id: Mapped[int | None] = mapped_column(BigId, nullable=True)  # partial index above
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    @declared_attr
    def owner_id(cls) -> Mapped[int | None]:
        """ClaimableMixin's owner, with the partial index above instead of the mixin's full one; last, where the
        mixin puts it (bulk writers render rows in the table's column order)."""
        return mapped_column(BigId, ForeignKey("users.id"), nullable=True, sort_order=10)


class InstructionTrade(Base):
    """Which trades an instruction settles: one for a gross instruction, several for a netted obligation."""

    __tablename__ = "instruction_trades"

    instruction_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("settlement_instructions.id", ondelete="CASCADE"), primary_key=True
    )
    trade_id: Mapped[int] = mapped_column(BigId, ForeignKey("trades.id"), primary_key=True, index=True)


class SettlementMessage(IdMixin, Base):
    """A message sent or received about settlement (MT54x, sese.02x, custodian CSV), raw and as parsed."""

    __tablename__ = "settlement_messages"
    __table_args__ = (UniqueConstraint("direction", "content_hash"),)

    direction: Mapped[MessageDirection] = mapped_column(enum_type(MessageDirection))
    message_type: Mapped[str] = mapped_column(String(32))  # MT548, sese.025.001.09 ...
    sender: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Not indexed: nothing looks a message up by either reference (migration 0018), and each index costs every
    # message of an import.
    reference: Mapped[str | None] = mapped_column(String(35), nullable=True)
    related_reference: Mapped[str | None] = mapped_column(String(35), nullable=True)
    instruction_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("settlement_instructions.id"), nullable=True, index=True
    )
    status: Mapped[MessageStatus] = mapped_column(enum_type(MessageStatus))
    status_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    raw: Mapped[str] = mapped_column(Text())
    parsed: Mapped[dict[str, Any]] = mapped_column(default=dict)
    file_name: Mapped[str | None] = mapped_column(String(500), nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FailPenalty(IdMixin, Base):
    """A CSDR-style cash penalty accrued for one day an instruction failed to settle."""

    __tablename__ = "fail_penalties"
    __table_args__ = (UniqueConstraint("instruction_id", "penalty_date"),)

    instruction_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("settlement_instructions.id", ondelete="CASCADE")
    )
    penalty_date: Mapped[dt.date] = mapped_column(Date())
    reference_value: Mapped[Decimal] = mapped_column(Money)
    rate_bp: Mapped[Decimal] = mapped_column(Money)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    # DEBIT: we failed and pay; CREDIT: the counterparty failed and we receive (CSDR penalties go both ways).
    direction: Mapped[PenaltyDirection] = mapped_column(
        enum_type(PenaltyDirection), default=PenaltyDirection.DEBIT, server_default="DEBIT"
    )
    reason_code: Mapped[str | None] = mapped_column(String(8), nullable=True)
    accrued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True, default=utcnow)


class ClearingException(IdMixin, Base):
    """A futures give-up or out-trade, the details behind its settlement-queue row (``exception_kind`` set).

    A give-up moves a trade from the executing broker (``from_counterparty``) to another clearing broker
    (``to_counterparty``); it is done when the take-up is acknowledged (``ack_ref``). An out-trade is a trade the
    counterparty does not recognise; it is resolved as recognised (the trade stands) or cancelled.
    """

    __tablename__ = "clearing_exceptions"

    instruction_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("settlement_instructions.id", ondelete="CASCADE"), unique=True
    )
    kind: Mapped[SettlementExceptionKind] = mapped_column(enum_type(SettlementExceptionKind))
    trade_id: Mapped[int] = mapped_column(BigId, ForeignKey("trades.id"), index=True)
    state: Mapped[ClearingExceptionState] = mapped_column(enum_type(ClearingExceptionState))
    from_counterparty_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("counterparties.id"), nullable=True
    )
    to_counterparty_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("counterparties.id"), nullable=True
    )
    reason: Mapped[str] = mapped_column(String(500), default="")
    ack_ref: Mapped[str | None] = mapped_column(String(35), nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(32), nullable=True)
    raised_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    raised_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), nullable=True)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolved_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), nullable=True)
