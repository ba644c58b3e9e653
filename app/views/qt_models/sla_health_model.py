"""The health checklist as a small table model: area, check, measured value and status, the detail as tooltip.

Rows are plain ``kpis.HealthItem`` values computed on the worker thread; the model only shows them, each with the
time it was measured (the monitor measures some checks every few minutes and says so).
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from app.services.sla.kpis import HealthItem

from .status_counts import tone_dot

_Index = QModelIndex | QPersistentModelIndex


def _zone(name: str | None) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except Exception:
        return None


STATUS_WORDS = {"ok": "OK", "warn": "Watch", "bad": "Action", "neutral": "n/a"}


class SlaHealthModel(QAbstractTableModel):
    HEADERS = ("Area", "Check", "Value", "Status", "Measured")
    COL_AREA, COL_CHECK, COL_VALUE, COL_STATUS, COL_MEASURED = range(5)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[HealthItem] = []
        self._zone: ZoneInfo | None = None

    def set_items(self, items: list[HealthItem], zone: str | None = None) -> None:
        tz = _zone(zone)
        if tz == self._zone and [(h.check, h.value, h.status, h.detail, h.as_of) for h in items] == [
            (h.check, h.value, h.status, h.detail, h.as_of) for h in self._rows
        ]:
            return  # unchanged: no reset, no repaint, selection kept
        self.beginResetModel()
        self._rows = list(items)
        self._zone = tz
        self.endResetModel()

    def measured(self, row: int) -> str:
        """When the row's check was measured, in the user's zone ("" if not stated)."""
        when = self._rows[row].as_of
        if when is None:
            return ""
        return f"{when.astimezone(self._zone):%H:%M:%S}" if self._zone else f"{when:%H:%M:%S} UTC"

    def item(self, row: int) -> HealthItem:
        return self._rows[row]

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        h = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.COL_MEASURED:
                return self.measured(index.row())
            return (h.area, h.check, h.value, STATUS_WORDS.get(h.status, h.status))[col]
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == self.COL_MEASURED:
                return "When this check was last measured"
            return h.detail
        if role == Qt.ItemDataRole.DecorationRole and col == self.COL_STATUS:
            return tone_dot(h.status if h.status != "neutral" else "neutral")
        if role == Qt.ItemDataRole.UserRole:
            return h.status
        return None
