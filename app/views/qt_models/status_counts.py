"""A small table model of counts by status (or by kind of item), for the panes' summary tables.

It holds a handful of plain rows, never ORM objects: the counts are computed in the database (GROUP BY) by
``app.services.overview`` and handed over as numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

# Colours of the status "tones", the same as the stylesheet's (resources/style.qss).
TONE_COLOURS = {
    "ok": QColor("#2e7d32"),
    "warn": QColor("#b26a00"),
    "bad": QColor("#c62828"),
    "info": QColor("#1f5fbf"),
    "neutral": QColor("#9aa5b1"),
}

#: Custom role: the row's share of the total as a float 0..1 (the share-bar delegate paints it).
ShareRole = Qt.ItemDataRole.UserRole + 1
#: Custom role: the row's key (the status code as stored, e.g. "PARTIALLY_SETTLED").
KeyRole = Qt.ItemDataRole.UserRole + 2

_Index = QModelIndex | QPersistentModelIndex
_DOTS: dict[str, QIcon] = {}


def tone_dot(tone: str) -> QIcon:
    """A small filled circle in the tone's colour (made on first use: pixmaps need the QApplication)."""
    if tone not in _DOTS:
        size = 20  # drawn large and scaled down by the view, so it stays round on high-DPI screens
        pix = QPixmap(size, size)
        pix.fill(QColor(0, 0, 0, 0))
        painter = QPainter(pix)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QColor(0, 0, 0, 0))
        painter.setBrush(TONE_COLOURS.get(tone, TONE_COLOURS["neutral"]))
        painter.drawEllipse(5, 5, 10, 10)
        painter.end()
        _DOTS[tone] = QIcon(pix)
    return _DOTS[tone]


@dataclass(frozen=True)
class CountRow:
    key: str
    label: str
    count: int
    tone: str = "neutral"
    hint: str = ""


def status_label(code: str) -> str:
    """``PARTIALLY_SETTLED`` -> ``Partially settled``: how a clerk reads a status in a table."""
    return code.replace("_", " ").capitalize()


class StatusCountsModel(QAbstractTableModel):
    """Rows of (label, count, share of total); three columns."""

    COL_LABEL, COL_COUNT, COL_SHARE = range(3)

    def __init__(self, first_header: str = "Status", parent: object | None = None) -> None:
        super().__init__(parent)  # type: ignore[arg-type]
        self._headers = (first_header, "Items", "Share")
        self._rows: list[CountRow] = []
        self._total = 0

    def set_rows(self, rows: list[CountRow]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._total = sum(r.count for r in rows)
        self.endResetModel()

    def rows(self) -> list[CountRow]:
        return list(self._rows)

    @property
    def total(self) -> int:
        return self._total

    def count_of(self, key: str) -> int | None:
        for row in self._rows:
            if row.key == key:
                return row.count
        return None

    # --- QAbstractTableModel ------------------------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's own default argument idiom
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._headers)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return self._headers[section]
            if role == Qt.ItemDataRole.TextAlignmentRole:
                # Headers sit over their figures: numbers right, the label column left.
                horizontal = (
                    Qt.AlignmentFlag.AlignLeft if section == self.COL_LABEL else Qt.AlignmentFlag.AlignRight
                )
                return int(horizontal | Qt.AlignmentFlag.AlignVCenter)
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        col = index.column()
        share = row.count / self._total if self._total else 0.0
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.COL_LABEL:
                return row.label
            if col == self.COL_COUNT:
                return f"{row.count:,}"
            return f"{share:.0%}" if self._total else "–"
        if role == Qt.ItemDataRole.TextAlignmentRole and col != self.COL_LABEL:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.DecorationRole and col == self.COL_LABEL:
            return tone_dot(row.tone)
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.hint or row.key
        if role == Qt.ItemDataRole.ForegroundRole and col == self.COL_COUNT and row.count == 0:
            return QColor("#9aa5b1")  # zero rows recede, so the eye lands on where the work is
        if role == ShareRole:
            return share
        if role == KeyRole:
            return row.key
        return None
