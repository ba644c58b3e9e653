"""The health checklist as a small table model: area, check, measured value and status, the detail as tooltip.

Rows are plain ``kpis.HealthItem`` values computed on the worker thread; the model only shows them.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from app.services.sla.kpis import HealthItem

from .status_counts import tone_dot

_Index = QModelIndex | QPersistentModelIndex
STATUS_WORDS = {"ok": "OK", "warn": "Watch", "bad": "Action", "neutral": "n/a"}


class SlaHealthModel(QAbstractTableModel):
    HEADERS = ("Area", "Check", "Value", "Status")
    COL_AREA, COL_CHECK, COL_VALUE, COL_STATUS = range(4)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[HealthItem] = []

    def set_items(self, items: list[HealthItem]) -> None:
        if [(h.check, h.value, h.status, h.detail) for h in items] == [
            (h.check, h.value, h.status, h.detail) for h in self._rows
        ]:
            return  # unchanged: no reset, no repaint, selection kept
        self.beginResetModel()
        self._rows = list(items)
        self.endResetModel()

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
            return (h.area, h.check, h.value, STATUS_WORDS.get(h.status, h.status))[col]
        if role == Qt.ItemDataRole.ToolTipRole:
            return h.detail
        if role == Qt.ItemDataRole.DecorationRole and col == self.COL_STATUS:
            return tone_dot(h.status if h.status != "neutral" else "neutral")
        if role == Qt.ItemDataRole.UserRole:
            return h.status
        return None
