"""Reference data: markets and their calendars, instruments, counterparties, accounts and SSIs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, String, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, BigId, IdMixin, Price, Quantity, VersionedMixin, enum_type
from .enums import AccountType, AssetClass, KycStatus, Liquidity, Segregation


class Market(IdMixin, VersionedMixin, Base):
    """A trading venue (ISO 10383 MIC) with its settlement calendar and the instruction cut-off at its CSD."""

    __tablename__ = "markets"

    mic: Mapped[str] = mapped_column(String(4), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    timezone: Mapped[str] = mapped_column(String(64))
    # Name of the exchange-calendars calendar that gives this market's business days (e.g. XNYS, XETR).
    calendar_code: Mapped[str] = mapped_column(String(16))
    csd_bic: Mapped[str | None] = mapped_column(String(11), nullable=True)
    instruction_cutoff: Mapped[dt.time] = mapped_column(Time(), default=dt.time(16, 0))
    default_settlement_cycle: Mapped[int] = mapped_column(Integer, default=2)


class MarketHoliday(IdMixin, Base):
    """A closure that the calendar library does not know (settlement-system holidays, ad-hoc closures)."""

    __tablename__ = "market_holidays"
    __table_args__ = (UniqueConstraint("market_id", "holiday_date"),)

    market_id: Mapped[int] = mapped_column(BigId, ForeignKey("markets.id", ondelete="CASCADE"))
    holiday_date: Mapped[dt.date] = mapped_column(Date())
    name: Mapped[str] = mapped_column(String(200), default="")


class Instrument(IdMixin, VersionedMixin, Base):
    __tablename__ = "instruments"
    __table_args__ = (
        CheckConstraint("settlement_cycle >= 0", name="settlement_cycle_non_negative"),
        CheckConstraint("contract_size > 0", name="contract_size_positive"),
    )

    isin: Mapped[str] = mapped_column(String(12), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    ticker: Mapped[str | None] = mapped_column(String(32), nullable=True)
    asset_class: Mapped[AssetClass] = mapped_column(enum_type(AssetClass))
    currency: Mapped[str] = mapped_column(String(3))
    market_id: Mapped[int] = mapped_column(BigId, ForeignKey("markets.id"), index=True)
    settlement_cycle: Mapped[int] = mapped_column(Integer)
    liquidity: Mapped[Liquidity] = mapped_column(enum_type(Liquidity))
    # Last known price, for the fat-finger check and penalty reference values. Bonds are quoted in % of nominal.
    reference_price: Mapped[Decimal] = mapped_column(Price)
    contract_size: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(1))
    is_active: Mapped[bool] = mapped_column(default=True)

    market: Mapped[Market] = relationship(lazy="joined")


class Counterparty(IdMixin, VersionedMixin, Base):
    __tablename__ = "counterparties"

    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    lei: Mapped[str] = mapped_column(String(20), unique=True)
    bic: Mapped[str] = mapped_column(String(11), index=True)
    country: Mapped[str] = mapped_column(String(2))
    # Whether settlement obligations with this counterparty are netted (counterparty x ISIN x date x account).
    netting: Mapped[bool] = mapped_column(default=False)
    is_active: Mapped[bool] = mapped_column(default=True)


class Account(IdMixin, VersionedMixin, Base):
    """A client or house account whose positions and cash OpsDesk keeps."""

    __tablename__ = "accounts"

    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    account_type: Mapped[AccountType] = mapped_column(enum_type(AccountType))
    kyc_status: Mapped[KycStatus] = mapped_column(enum_type(KycStatus))
    segregation: Mapped[Segregation] = mapped_column(enum_type(Segregation))
    base_currency: Mapped[str] = mapped_column(String(3))
    lei: Mapped[str | None] = mapped_column(String(20), nullable=True)
    is_active: Mapped[bool] = mapped_column(default=True)


class StandingSettlementInstruction(IdMixin, VersionedMixin, Base):
    """Where a party settles: place of settlement (CSD), agent, safekeeping and cash accounts.

    An SSI belongs to a counterparty (their side) or to one of our accounts (our side), for a market and currency;
    asset class narrows it where a party settles bonds and equities differently.
    """

    __tablename__ = "ssis"
    __table_args__ = (
        CheckConstraint("(counterparty_id IS NULL) <> (account_id IS NULL)", name="exactly_one_owner"),
    )

    counterparty_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("counterparties.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("accounts.id"), index=True)
    market_id: Mapped[int] = mapped_column(BigId, ForeignKey("markets.id"))
    currency: Mapped[str] = mapped_column(String(3))
    asset_class: Mapped[AssetClass | None] = mapped_column(enum_type(AssetClass), nullable=True)
    place_of_settlement_bic: Mapped[str] = mapped_column(String(11))
    agent_bic: Mapped[str] = mapped_column(String(11))
    safekeeping_account: Mapped[str] = mapped_column(String(35))
    cash_account: Mapped[str] = mapped_column(String(35))
    valid_from: Mapped[dt.date] = mapped_column(Date())
    valid_to: Mapped[dt.date | None] = mapped_column(Date(), nullable=True)
