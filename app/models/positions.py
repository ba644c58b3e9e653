"""Securities and cash movements, and the positions and balances they add up to.

Positions and balances change only through movements; the invariant (a position equals the sum of its movements)
is checked by a service test.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, BigId, IdMixin, Money, Quantity, TimestampMixin, UTCDateTime, enum_type, utcnow
from .enums import MovementKind


class SecuritiesMovement(IdMixin, Base):
    __tablename__ = "securities_movements"

    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id"), index=True)
    instrument_id: Mapped[int] = mapped_column(BigId, ForeignKey("instruments.id"), index=True)
    kind: Mapped[MovementKind] = mapped_column(enum_type(MovementKind))
    quantity: Mapped[Decimal] = mapped_column(Quantity)  # signed: + receive, - deliver
    value_date: Mapped[dt.date] = mapped_column(Date())
    trade_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("trades.id"), nullable=True, index=True)
    instruction_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("settlement_instructions.id"), nullable=True, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CashMovement(IdMixin, Base):
    __tablename__ = "cash_movements"

    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    kind: Mapped[MovementKind] = mapped_column(enum_type(MovementKind))
    amount: Mapped[Decimal] = mapped_column(Money)  # signed: + credit, - debit
    value_date: Mapped[dt.date] = mapped_column(Date())
    trade_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("trades.id"), nullable=True, index=True)
    instruction_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("settlement_instructions.id"), nullable=True, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Position(IdMixin, TimestampMixin, Base):
    """Traded (trade-date) and settled quantity of one ISIN in one account."""

    __tablename__ = "positions"
    __table_args__ = (UniqueConstraint("account_id", "instrument_id"),)

    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id"))
    instrument_id: Mapped[int] = mapped_column(BigId, ForeignKey("instruments.id"), index=True)
    traded_quantity: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
    settled_quantity: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))


class CashBalance(IdMixin, TimestampMixin, Base):
    __tablename__ = "cash_balances"
    __table_args__ = (UniqueConstraint("account_id", "currency"),)

    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id"))
    currency: Mapped[str] = mapped_column(String(3))
    traded_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    settled_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
