"""External statements (bank cash statements, custodian holdings, counterparty confirmations) and their lines."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, BigId, IdMixin, Money, Price, Quantity, UTCDateTime, enum_type, utcnow
from .enums import StatementKind


class Statement(IdMixin, Base):
    __tablename__ = "statements"
    __table_args__ = (
        UniqueConstraint("content_hash"),
        Index("ix_statements_account_seq", "account_identifier", "statement_date"),
    )

    kind: Mapped[StatementKind] = mapped_column(enum_type(StatementKind))
    format: Mapped[str] = mapped_column(String(32))  # MT940, camt.053.001.02, MT535, CSV:<profile>, DEMO
    sender: Mapped[str | None] = mapped_column(String(64), nullable=True)
    account_identifier: Mapped[str] = mapped_column(String(64))  # IBAN / safekeeping account as sent
    account_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("accounts.id"), nullable=True, index=True
    )
    statement_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sequence_number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    statement_date: Mapped[dt.date] = mapped_column(Date())
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    opening_balance: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    closing_balance: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    # Findings of the import: balance check, sequence gap/overlap. Kept with the statement for the clerk.
    warnings: Mapped[list[Any]] = mapped_column(default=list)
    # What the statement says beyond the columns: every balance by type, message id, period, page, intraday flag,
    # sequence keys the next import compares with. Only a server default (no Python one): the demo's bulk insert
    # compiles INSERTs for the columns it names, and a Python default would add a column it does not bind.
    extra: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'"))
    file_name: Mapped[str] = mapped_column(String(500))
    content_hash: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    imported_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), nullable=True)


class StatementLine(IdMixin, Base):
    __tablename__ = "statement_lines"
    __table_args__ = (UniqueConstraint("statement_id", "line_no"),)

    statement_id: Mapped[int] = mapped_column(BigId, ForeignKey("statements.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(Integer)
    reference: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    related_reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    value_date: Mapped[dt.date | None] = mapped_column(Date(), nullable=True)
    entry_date: Mapped[dt.date | None] = mapped_column(Date(), nullable=True)
    trade_date: Mapped[dt.date | None] = mapped_column(Date(), nullable=True)
    amount: Mapped[Decimal | None] = mapped_column(Money, nullable=True)  # signed: + credit
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    isin: Mapped[str | None] = mapped_column(String(12), nullable=True, index=True)
    quantity: Mapped[Decimal | None] = mapped_column(Quantity, nullable=True)
    price: Mapped[Decimal | None] = mapped_column(Price, nullable=True)
    side: Mapped[str | None] = mapped_column(String(8), nullable=True)
    counterparty: Mapped[str | None] = mapped_column(String(200), nullable=True)
    account_identifier: Mapped[str | None] = mapped_column(String(64), nullable=True)
    description: Mapped[str | None] = mapped_column(Text(), nullable=True)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
