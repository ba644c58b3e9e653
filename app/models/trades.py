"""Trades as the front office sends them, their front-office versions and their validation exceptions.

``trades`` holds the current state of each trade (one row per front-office trade reference); every version the
front office sent (new, amendments, cancel) is kept in ``trade_versions`` so the blotter can show what changed.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import (
    Base,
    BigId,
    ClaimableMixin,
    IdMixin,
    Money,
    Price,
    Quantity,
    UTCDateTime,
    VersionedMixin,
    enum_type,
    utcnow,
)
from .enums import Side, TradeAction, TradeStatus

SETTLE_SORT_SQL = "coalesce(settlement_date, '9999-12-31')"

# Further blotter sort columns with a (column, id) index (added in migration 0002).
BLOTTER_SORT_COLUMNS = (
    "isin",
    "quantity",
    "price",
    "currency",
    "gross_amount",
    "net_amount",
    "account_code",
    "counterparty_code",
    "source",
    "side",
)


class Trade(IdMixin, VersionedMixin, ClaimableMixin, Base):
    __tablename__ = "trades"
    __table_args__ = (
        CheckConstraint("fo_version >= 1", name="fo_version_positive"),
        # The blotter sorts in the database: every sortable column has an index ending in id (keyset pages).
        Index("ix_trades_trade_date_id", "trade_date", "id"),
        Index("ix_trades_settlement_date_id", "settlement_date", "id"),
        Index("ix_trades_status_id", "status", "id"),
        *(Index(f"ix_trades_{c}_id", c, "id") for c in BLOTTER_SORT_COLUMNS),
        # Repairs may lack a settlement date; they sort last through this expression (see services.blotter).
        Index("ix_trades_settle_sort", text(SETTLE_SORT_SQL), "id"),
    )

    trade_ref: Mapped[str] = mapped_column(String(64), unique=True)
    fo_version: Mapped[int] = mapped_column(Integer, default=1)
    source: Mapped[str] = mapped_column(String(32))  # CSV:<profile>, XLSX:<profile>, FIX:<session>, DEMO
    source_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)  # file line, FIX ExecID
    order_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)

    # Identifiers as received are kept even when they fail validation, so a repair shows what the FO sent.
    isin: Mapped[str] = mapped_column(String(12))
    account_code: Mapped[str] = mapped_column(String(32))
    counterparty_code: Mapped[str] = mapped_column(String(32))
    instrument_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("instruments.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("accounts.id"), index=True)
    counterparty_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("counterparties.id"), index=True)

    side: Mapped[Side] = mapped_column(enum_type(Side))
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    price: Mapped[Decimal] = mapped_column(Price)
    currency: Mapped[str] = mapped_column(String(3))
    gross_amount: Mapped[Decimal] = mapped_column(Money)
    commission: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    fees: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    net_amount: Mapped[Decimal] = mapped_column(Money)

    trade_date: Mapped[dt.date] = mapped_column(Date())
    trade_time: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    settlement_date: Mapped[dt.date | None] = mapped_column(Date(), nullable=True)

    status: Mapped[TradeStatus] = mapped_column(enum_type(TradeStatus))
    # Comma-separated reason codes of the open exceptions (denormalised from trade_exceptions for the blotter).
    exception_codes: Mapped[str] = mapped_column(String(200), default="")

    allocated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    affirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    our_ssi_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("ssis.id"), nullable=True)
    their_ssi_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("ssis.id"), nullable=True)

    exceptions: Mapped[list[TradeException]] = relationship(
        back_populates="trade", cascade="all, delete-orphan"
    )


class TradeVersion(IdMixin, Base):
    """One version of a trade as the front office sent it (new, amendment or cancel)."""

    __tablename__ = "trade_versions"
    __table_args__ = (UniqueConstraint("trade_id", "fo_version"),)

    trade_id: Mapped[int] = mapped_column(BigId, ForeignKey("trades.id", ondelete="CASCADE"))
    fo_version: Mapped[int] = mapped_column(Integer)
    action: Mapped[TradeAction] = mapped_column(enum_type(TradeAction))
    source: Mapped[str] = mapped_column(String(32))
    source_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column()


class TradeException(IdMixin, Base):
    """A validation failure on a trade: a reason code, the field at fault and words a clerk understands."""

    __tablename__ = "trade_exceptions"

    trade_id: Mapped[int] = mapped_column(BigId, ForeignKey("trades.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(16))
    field: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(String(500))
    raised_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    cleared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    trade: Mapped[Trade] = relationship(back_populates="exceptions")


class ImportBatch(IdMixin, Base):
    """A file or message batch imported; its hash makes re-importing the same file a no-op."""

    __tablename__ = "import_batches"
    __table_args__ = (UniqueConstraint("kind", "content_hash"),)

    kind: Mapped[str] = mapped_column(String(32))  # trades, messages, statement
    file_name: Mapped[str] = mapped_column(String(500))
    content_hash: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    imported_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), nullable=True)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
