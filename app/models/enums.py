"""Enumerations shared by the models and the services: the words of the domain, as the market uses them.

They are plain ``StrEnum`` so they serialise to JSON and compare equal to their stored string.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    CLERK = "clerk"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    AUDITOR = "auditor"  # read-only


class AssetClass(StrEnum):
    EQUITY = "EQUITY"
    ETF = "ETF"
    GOVT_BOND = "GOVT_BOND"
    CORP_BOND = "CORP_BOND"
    FUTURE = "FUTURE"


class Liquidity(StrEnum):
    """CSDR cash-penalty classes (rates in bp/day of the reference value live in the settlement service)."""

    LIQUID_SHARE = "LIQUID_SHARE"
    ILLIQUID_SHARE = "ILLIQUID_SHARE"
    SOVEREIGN_DEBT = "SOVEREIGN_DEBT"
    OTHER_DEBT = "OTHER_DEBT"
    NOT_APPLICABLE = "NOT_APPLICABLE"


class AccountType(StrEnum):
    CLIENT = "CLIENT"
    HOUSE = "HOUSE"


class KycStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


class Segregation(StrEnum):
    SEGREGATED = "SEGREGATED"
    OMNIBUS = "OMNIBUS"
    HOUSE = "HOUSE"


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class TradeStatus(StrEnum):
    """Where a trade is in its life. REPAIR holds trades that failed validation (never dropped)."""

    REPAIR = "REPAIR"
    VALIDATED = "VALIDATED"
    CONFIRMED = "CONFIRMED"
    AFFIRMED = "AFFIRMED"
    INSTRUCTED = "INSTRUCTED"
    SETTLED = "SETTLED"
    PARTIALLY_SETTLED = "PARTIALLY_SETTLED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class TradeAction(StrEnum):
    """What a front-office version did to the trade."""

    NEW = "NEW"
    AMEND = "AMEND"
    CANCEL = "CANCEL"


class InstructionType(StrEnum):
    DVP = "DVP"  # deliver versus payment (we sell)
    RVP = "RVP"  # receive versus payment (we buy)
    DFP = "DFP"  # deliver free of payment
    RFP = "RFP"  # receive free of payment


class InstructionStatus(StrEnum):
    PENDING = "PENDING"
    INSTRUCTED = "INSTRUCTED"
    MATCHED = "MATCHED"
    PARTIALLY_SETTLED = "PARTIALLY_SETTLED"
    SETTLED = "SETTLED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class MessageDirection(StrEnum):
    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"


class MessageStatus(StrEnum):
    APPLIED = "APPLIED"
    QUARANTINED = "QUARANTINED"
    DUPLICATE = "DUPLICATE"
    SENT = "SENT"


class MovementKind(StrEnum):
    TRADED = "TRADED"  # booked on trade date
    SETTLED = "SETTLED"  # moved at the CSD / bank
    TRANSFER = "TRANSFER"
    DEPOSIT = "DEPOSIT"
    WITHDRAWAL = "WITHDRAWAL"


class SettlementExceptionKind(StrEnum):
    """Settlement queue items that are not CSD instructions: futures give-ups and out-trades."""

    GIVE_UP = "GIVE_UP"  # move a futures trade to another clearing broker (take-up to be acknowledged)
    OUT_TRADE = "OUT_TRADE"  # the counterparty does not recognise the trade


class ClearingExceptionState(StrEnum):
    RAISED = "RAISED"
    ACKNOWLEDGED = "ACKNOWLEDGED"  # give-up taken up / out-trade query acknowledged by the counterparty
    RESOLVED = "RESOLVED"
    REJECTED = "REJECTED"  # take-up refused by the clearing broker
    CANCELLED = "CANCELLED"


class PenaltyDirection(StrEnum):
    """Who pays a CSDR cash penalty: DEBIT we failed and pay, CREDIT the counterparty failed and pays us."""

    DEBIT = "DEBIT"
    CREDIT = "CREDIT"


class StatementKind(StrEnum):
    CASH = "CASH"  # MT940/MT942/MT950, camt.053/054
    HOLDINGS = "HOLDINGS"  # MT535, semt.002
    TRADE_CONFIRMATIONS = "TRADE_CONFIRMATIONS"  # counterparty confirmations
    SETTLEMENT_CONFIRMATIONS = "SETTLEMENT_CONFIRMATIONS"  # MT544-547, sese.025


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class BreakType(StrEnum):
    MISSING_INTERNAL = "MISSING_INTERNAL"  # the outside world has it, we do not
    MISSING_EXTERNAL = "MISSING_EXTERNAL"  # we have it, the outside world does not
    FIELD_MISMATCH = "FIELD_MISMATCH"
    DUPLICATE_KEY = "DUPLICATE_KEY"


class BreakStatus(StrEnum):
    OPEN = "OPEN"
    ASSIGNED = "ASSIGNED"
    PROPOSED = "PROPOSED"
    RESOLVED = "RESOLVED"
    WRITTEN_OFF = "WRITTEN_OFF"


class CorrectionKind(StrEnum):
    AMEND_TRADE = "AMEND_TRADE"
    CANCEL_REBOOK = "CANCEL_REBOOK"
    MANUAL_MATCH = "MANUAL_MATCH"
    UNMATCH = "UNMATCH"
    WRITE_OFF = "WRITE_OFF"
    FORCE_CLOSE = "FORCE_CLOSE"


class CorrectionStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"  # applied
    REJECTED = "REJECTED"
    WITHDRAWN = "WITHDRAWN"


class Decision(StrEnum):
    APPROVE = "APPROVE"
    REJECT = "REJECT"


class SlaState(StrEnum):
    ON_TRACK = "ON_TRACK"
    AT_RISK = "AT_RISK"
    BREACHED = "BREACHED"
    MET = "MET"  # closed in time; kept for attainment figures


class ChangeAction(StrEnum):
    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    BULK = "BULK"  # many rows of one kind changed at once (imports, runs)
