"""Which blotter columns show, in what order and how wide: the header's state as plain data, and a menu to choose.

The state is a list of ``{"key", "visible", "width"}`` in visual order, stored per user under the preference key
:data:`COLUMNS_KEY` (and inside saved views). Keys, not positions, are stored: a column added in a later release
appears (at the end, with its default visibility) instead of shifting every saved layout by one.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHeaderView, QMenu, QToolButton, QWidget

from app.services.blotter import COLUMN_KEYS, COLUMNS
from app.views import resources

COLUMNS_KEY = "blotter.columns"
STATE_VERSION = 1
MIN_WIDTH = 30


# Widths that fit what the columns hold at the stylesheet's 10 pt (the service's widths are a rough guide).
WIDTHS = {
    "trade_ref": 185,
    "status": 125,
    "exception_codes": 175,
    "trade_date": 100,
    "settlement_date": 100,
    "side": 55,
    "isin": 125,
    "quantity": 100,
    "price": 95,
    "currency": 50,
    "gross_amount": 135,
    "net_amount": 135,
    "account_code": 95,
    "counterparty_code": 115,
    "source": 95,
    "trade_time": 150,
    "affirmed_at": 150,
}


def default_width(key: str) -> int:
    return WIDTHS.get(key, COLUMNS[COLUMN_KEYS.index(key)].width)


def default_state() -> list[dict[str, Any]]:
    return [{"key": c.key, "visible": c.default_visible, "width": default_width(c.key)} for c in COLUMNS]


def header_state(header: QHeaderView) -> list[dict[str, Any]]:
    """The header's columns in visual order, with visibility and width."""
    out = []
    for visual in range(header.count()):
        logical = header.logicalIndex(visual)
        hidden = header.isSectionHidden(logical)
        width = header.sectionSize(logical) if not hidden else _remembered_width(header, logical)
        out.append({"key": COLUMN_KEYS[logical], "visible": not hidden, "width": int(width)})
    return out


def _remembered_width(header: QHeaderView, logical: int) -> int:
    # A hidden section reports size 0; the width it will come back with is kept in a dynamic property.
    widths = header.property("hiddenWidths") or {}
    return int(widths.get(str(logical), default_width(COLUMN_KEYS[logical])))


def apply_state(header: QHeaderView, state: object) -> bool:
    """Apply a stored state to the header; anything unreadable leaves the header alone. True if applied."""
    if not isinstance(state, list):
        return False
    entries = [e for e in state if isinstance(e, dict) and e.get("key") in COLUMN_KEYS]
    if not entries:
        return False
    seen = {e["key"] for e in entries}
    # Columns the stored state does not know (added later) keep their default place at the end.
    entries += [
        {"key": c.key, "visible": c.default_visible, "width": default_width(c.key)}
        for c in COLUMNS
        if c.key not in seen
    ]
    hidden_widths: dict[str, int] = {}
    for visual, entry in enumerate(entries):
        logical = COLUMN_KEYS.index(entry["key"])
        current = header.visualIndex(logical)
        if current != visual:
            header.moveSection(current, visual)
        width = entry.get("width")
        width = max(MIN_WIDTH, int(width)) if isinstance(width, int | float) else default_width(entry["key"])
        visible = bool(entry.get("visible", True))
        if visible:
            header.setSectionHidden(logical, False)
            header.resizeSection(logical, width)
        else:
            header.resizeSection(logical, width)
            header.setSectionHidden(logical, True)
            hidden_widths[str(logical)] = width
    header.setProperty("hiddenWidths", hidden_widths)
    return True


def visible_keys(header: QHeaderView) -> list[str]:
    """The keys of the columns on screen, in visual order (what an export or a copy contains)."""
    return [e["key"] for e in header_state(header) if e["visible"]]


class ColumnChooser(QToolButton):
    """A "Columns" button whose menu ticks columns on and off; dragging headers reorders, dragging edges resizes."""

    #: The user changed the columns (visibility from the menu, or a reset); the pane saves the state.
    columns_changed = Signal()

    def __init__(self, header: QHeaderView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._header = header
        self.setText("Columns")
        self.setIcon(resources.icon("columns"))
        self.setToolTip("Choose the columns; drag a header to move a column, its edge to resize it")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.menu_ = QMenu(self)
        self.menu_.aboutToShow.connect(self._sync)
        self.actions_ = {}
        for logical, column in enumerate(COLUMNS):
            action = self.menu_.addAction(column.label)
            action.setCheckable(True)
            action.toggled.connect(lambda on, i=logical: self._toggle(i, on))
            self.actions_[column.key] = action
        self.menu_.addSeparator()
        self.menu_.addAction("Reset to the default columns", self.reset)
        self.setMenu(self.menu_)

    def _sync(self) -> None:
        for logical, column in enumerate(COLUMNS):
            action = self.actions_[column.key]
            action.blockSignals(True)
            action.setChecked(not self._header.isSectionHidden(logical))
            action.blockSignals(False)

    def set_visible(self, key: str, visible: bool) -> None:
        self._toggle(COLUMN_KEYS.index(key), visible)

    def _toggle(self, logical: int, on: bool) -> None:
        header = self._header
        if on == (not header.isSectionHidden(logical)):
            return
        widths = dict(header.property("hiddenWidths") or {})
        if on:
            header.setSectionHidden(logical, False)
            header.resizeSection(logical, int(widths.pop(str(logical), default_width(COLUMN_KEYS[logical]))))
        else:
            if len([i for i in range(header.count()) if not header.isSectionHidden(i)]) <= 1:
                return  # the last visible column stays: an empty table helps nobody
            widths[str(logical)] = header.sectionSize(logical)
            header.setSectionHidden(logical, True)
        header.setProperty("hiddenWidths", widths)
        self.columns_changed.emit()

    def reset(self) -> None:
        apply_state(self._header, default_state())
        self.columns_changed.emit()
