"""SQLAlchemy models: tables only, no behaviour beyond column defaults. Import them all so metadata is complete."""

from .audit import AuditEntry, ChangeFeedEntry
from .base import Base, utcnow
from .positions import CashBalance, CashMovement, Position, SecuritiesMovement
from .recon import Break, ReconDefinition, ReconMatch, ReconRun
from .reference import Account, Counterparty, Instrument, Market, MarketHoliday, StandingSettlementInstruction
from .settlement import FailPenalty, InstructionTrade, SettlementInstruction, SettlementMessage
from .sla import SlaDefinition, SlaEvent
from .statements import Statement, StatementLine
from .trades import ImportBatch, Trade, TradeException, TradeVersion
from .users import User, UserSetting
from .workflow import Attachment, Comment, Correction, CorrectionApproval

__all__ = [
    "Account",
    "Attachment",
    "AuditEntry",
    "Base",
    "Break",
    "CashBalance",
    "CashMovement",
    "ChangeFeedEntry",
    "Comment",
    "Correction",
    "CorrectionApproval",
    "Counterparty",
    "FailPenalty",
    "ImportBatch",
    "Instrument",
    "InstructionTrade",
    "Market",
    "MarketHoliday",
    "Position",
    "ReconDefinition",
    "ReconMatch",
    "ReconRun",
    "SecuritiesMovement",
    "SettlementInstruction",
    "SettlementMessage",
    "SlaDefinition",
    "SlaEvent",
    "StandingSettlementInstruction",
    "Statement",
    "StatementLine",
    "Trade",
    "TradeException",
    "TradeVersion",
    "User",
    "UserSetting",
    "utcnow",
]
