"""The docked panes of the main window, in their default tab order."""

from __future__ import annotations

from .approvals_inbox import ApprovalsInboxPane
from .base import Pane, Workspace
from .break_investigation import BreakInvestigationPane
from .settlement_queue import SettlementQueuePane
from .sla_monitors import SlaMonitorsPane
from .trade_blotter import TradeBlotterPane

#: Default order: the tabs left to right and the Ctrl+1..Ctrl+5 shortcuts.
PANE_CLASSES: tuple[type[Pane], ...] = (
    TradeBlotterPane,
    SettlementQueuePane,
    BreakInvestigationPane,
    SlaMonitorsPane,
    ApprovalsInboxPane,
)

__all__ = [
    "PANE_CLASSES",
    "ApprovalsInboxPane",
    "BreakInvestigationPane",
    "Pane",
    "SettlementQueuePane",
    "SlaMonitorsPane",
    "TradeBlotterPane",
    "Workspace",
]
