"""The docked panes of the main window, in their default tab order.

``PANES`` names each pane without importing it: the main window makes a dock for every pane at once but imports and
builds a pane only when it first comes on screen (or is asked for), so starting the app pays for the pane in front
only (``bench/bench_startup.py``). ``PANE_CLASSES`` and the pane classes themselves are still importable from here;
asking for them imports every pane module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .base import Pane, Workspace

if TYPE_CHECKING:
    from .approvals_inbox import ApprovalsInboxPane
    from .break_investigation import BreakInvestigationPane
    from .settlement_queue import SettlementQueuePane
    from .sla_monitors import SlaMonitorsPane
    from .trade_blotter import TradeBlotterPane


@dataclass(frozen=True)
class PaneEntry:
    """A pane as the main window's docks and menus know it before it is built. The pane's module and icon are
    named after its id; the class says the same id, title and icon (a test holds them together)."""

    pane_id: str
    title: str
    class_name: str

    @property
    def icon_name(self) -> str:
        return self.pane_id

    def load(self) -> type[Pane]:
        """The pane's class (imports its module on first use)."""
        cls: type[Pane] = getattr(importlib.import_module(f"{__name__}.{self.pane_id}"), self.class_name)
        return cls


#: Default order: the tabs left to right and the Ctrl+1..Ctrl+5 shortcuts.
PANES: tuple[PaneEntry, ...] = (
    PaneEntry("trade_blotter", "Trade blotter", "TradeBlotterPane"),
    PaneEntry("settlement_queue", "Settlement queue", "SettlementQueuePane"),
    PaneEntry("break_investigation", "Break investigation", "BreakInvestigationPane"),
    PaneEntry("sla_monitors", "SLA monitors", "SlaMonitorsPane"),
    PaneEntry("approvals_inbox", "Approvals inbox", "ApprovalsInboxPane"),
)

PANE_BY_ID = {e.pane_id: e for e in PANES}
_BY_CLASS = {e.class_name: e for e in PANES}


def __getattr__(name: str) -> Any:
    # PEP 562: the pane classes (and the tuple of them) are imported when somebody asks for them.
    if name == "PANE_CLASSES":
        return tuple(e.load() for e in PANES)
    if name in _BY_CLASS:
        return _BY_CLASS[name].load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PANES",
    "PANE_BY_ID",
    "PANE_CLASSES",
    "ApprovalsInboxPane",
    "BreakInvestigationPane",
    "Pane",
    "PaneEntry",
    "SettlementQueuePane",
    "SlaMonitorsPane",
    "TradeBlotterPane",
    "Workspace",
]
