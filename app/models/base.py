"""Declarative base, naming convention and the column types every model shares.

Money and quantities are ``Numeric`` (Decimal in Python), never float. Timestamps are stored as timezone-aware
UTC: PostgreSQL keeps ``timestamptz`` natively; SQLite has no time zone, so ``UTCDateTime`` normalises to UTC on the
way in and re-attaches UTC on the way out, so both backends hand the services the same aware datetimes.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, MetaData, Numeric, TypeDecorator
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

# Every constraint and index gets a deterministic name, so migrations can drop or alter them on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the backend stores."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a time zone first")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            # Stored without offset; the result processor re-attaches UTC.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


# Integer surrogate keys: BIGINT on PostgreSQL (tables reach millions of rows), INTEGER on SQLite so that the
# column is the rowid alias and autoincrements.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# JSON documents: JSONB on PostgreSQL (indexable), JSON text on SQLite.
JSONDoc = JSON().with_variant(postgresql.JSONB(), "postgresql").with_variant(sqlite.JSON(), "sqlite")

# Fixed-point types. Money to 4 decimals (enough for prices in minor units and FX-converted amounts), quantities
# to 6 (fractional units and bond nominals), prices to 8.
Money = Numeric(20, 4, asdecimal=True)
Quantity = Numeric(20, 6, asdecimal=True)
Price = Numeric(20, 8, asdecimal=True)
Rate = Numeric(12, 8, asdecimal=True)


class Base(DeclarativeBase):
    """Base of every OpsDesk table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dt.datetime: UTCDateTime(),
        Decimal: Money,
        dict[str, Any]: JSONDoc,
        list[Any]: JSONDoc,
    }


class IdMixin:
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True, sort_order=-10)


class TimestampMixin:
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class VersionedMixin(TimestampMixin):
    """Rows people edit: ``version`` increments on every change; a stale edit is refused (see services.concurrency).

    ``updated_by_id`` names the last editor so the refusal can say who changed it, and so the four-eyes rule can
    exclude the last editor from approving.
    """

    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    @declared_attr
    def updated_by_id(cls) -> Mapped[int | None]:
        return mapped_column(BigId, ForeignKey("users.id"), nullable=True)


class ClaimableMixin:
    """Work items a clerk claims: exactly one owner at a time (see services.concurrency.claim)."""

    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    @declared_attr
    def owner_id(cls) -> Mapped[int | None]:
        return mapped_column(BigId, ForeignKey("users.id"), nullable=True, index=True)


def enum_type(enum_cls: type, name: str | None = None) -> SAEnum:
    """A string column restricted to an enum's values by a named CHECK constraint (portable to both backends)."""
    values = [m.value for m in enum_cls]  # type: ignore[attr-defined]
    return SAEnum(
        enum_cls,
        native_enum=False,
        create_constraint=True,
        length=max(len(v) for v in values),
        name=name or enum_cls.__name__.lower(),
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )
