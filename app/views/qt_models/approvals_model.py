"""The approvals inbox's table model: the corrections the inbox shows, as plain values read in the background.

An inbox holds what supervisors have not decided yet (dozens, at most a few thousand), so the model keeps the whole
list (:class:`~app.services.workflow.worklist.InboxItem`) and the pane replaces it after each load; selection is
kept by correction id across a replacement. Rows the signed-in user may not decide (their own, ones they last
edited, ones they already approved) read muted, with the reason as tooltip.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QFont

from app.services.workflow.worklist import InboxItem
from app.views.qt_models.status_counts import status_label, tone_dot

_Index = QModelIndex | QPersistentModelIndex

CorrectionIdRole = Qt.ItemDataRole.UserRole + 30
MayDecideRole = Qt.ItemDataRole.UserRole + 31

COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("id", "Correction", True),
    ("kind", "Kind", False),
    ("item", "Item", False),
    ("change", "Before → after", False),
    ("amount", "Amount", True),
    ("currency", "Ccy", False),
    ("maker", "Maker", False),
    ("age", "Waiting", True),
    ("approvals", "Approvals", False),
    ("reason", "Reason", False),
    ("yours", "You", False),
)
COLUMN_KEYS = tuple(c[0] for c in COLUMNS)
WIDTHS = {
    "id": 96,
    "kind": 110,
    "item": 240,
    "change": 220,
    "amount": 110,
    "currency": 45,
    "maker": 80,
    "age": 70,
    "approvals": 90,
    "reason": 220,
    "yours": 150,
}
KIND_LABELS = {
    "AMEND_TRADE": "Amend trade",
    "CANCEL_REBOOK": "Cancel & rebook",
    "MANUAL_MATCH": "Manual match",
    "UNMATCH": "Unmatch",
    "WRITE_OFF": "Write-off",
    "FORCE_CLOSE": "Force close",
}
MUTED = QColor("#7b8794")
OK = QColor("#2e7d32")


def waiting_text(hours: float) -> str:
    if hours < 1:
        return f"{max(1, int(hours * 60))} min"
    if hours < 48:
        return f"{int(hours)} h"
    return f"{int(hours // 24)} d"


def _value(v: Any) -> str:
    return "—" if v is None or v == "" else str(v)


def change_summary(item: InboxItem) -> str:
    """One line of the before/after for the table (the decision panel shows every line)."""
    if not item.changes:
        return ""
    first = item.changes[0]
    text = f"{first.field}: {_value(first.before)} → {_value(first.after)}"
    if len(item.changes) > 1:
        text += f" (+{len(item.changes) - 1})"
    return text


class ApprovalsModel(QAbstractTableModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._items: list[InboxItem] = []
        self._bold = QFont()
        self._bold.setWeight(QFont.Weight.DemiBold)

    def set_items(self, items: list[InboxItem]) -> None:
        self.beginResetModel()
        self._items = list(items)
        self.endResetModel()

    @property
    def total(self) -> int:
        """Corrections listed (what the summary model this replaced called its total)."""
        return len(self._items)

    def items(self) -> list[InboxItem]:
        return list(self._items)

    def item(self, row: int) -> InboxItem | None:
        return self._items[row] if 0 <= row < len(self._items) else None

    def row_of(self, correction_id: int) -> int | None:
        for i, it in enumerate(self._items):
            if it.id == correction_id:
                return i
        return None

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._items)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        key, label, numeric = COLUMNS[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return label
        if role == Qt.ItemDataRole.TextAlignmentRole:
            h = Qt.AlignmentFlag.AlignRight if numeric else Qt.AlignmentFlag.AlignLeft
            return int((h | Qt.AlignmentFlag.AlignVCenter).value)
        if role == Qt.ItemDataRole.ToolTipRole:
            return {
                "approvals": "Approvals given so far / approvals required (amounts above the threshold need two)",
                "yours": "Whether you may approve or reject it (four eyes: never your own, nor what you last edited)",
                "age": "How long it has waited for a decision",
            }.get(key, label)
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def text(self, item: InboxItem, key: str) -> str:
        if key == "id":
            return f"#{item.id}"
        if key == "kind":
            return KIND_LABELS.get(item.kind, status_label(item.kind))
        if key == "item":
            return item.item_label
        if key == "change":
            return change_summary(item)
        if key == "amount":
            return f"{item.amount:,.2f}"
        if key == "currency":
            return item.currency or ""
        if key == "maker":
            return item.maker
        if key == "age":
            return waiting_text(item.age_hours)
        if key == "approvals":
            return f"{item.approvals} / {item.required}"
        if key == "reason":
            return item.reason.replace("\n", " ")
        if key == "yours":
            if item.may_decide:
                return "You may decide"
            return "Not yours to decide" if item.status == "PENDING" else status_label(item.status)
        return ""

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        item = self.item(index.row())
        col = index.column()
        if item is None or not 0 <= col < len(COLUMNS):
            return None
        key, _label, numeric = COLUMNS[col]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(item, key)
        if role == Qt.ItemDataRole.ToolTipRole:
            if key == "yours" or not item.may_decide:
                return item.refusal or "You may approve or reject this correction."
            if key == "change":
                return "\n".join(f"{c.field}: {_value(c.before)} → {_value(c.after)}" for c in item.changes)
            return self.text(item, key) or None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            h = Qt.AlignmentFlag.AlignRight if numeric else Qt.AlignmentFlag.AlignLeft
            return int((h | Qt.AlignmentFlag.AlignVCenter).value)
        if role == Qt.ItemDataRole.ForegroundRole:
            if key == "yours":
                return OK if item.may_decide else MUTED
            return None if item.may_decide else MUTED
        if role == Qt.ItemDataRole.FontRole:
            return self._bold if key in ("id", "kind") else None
        if role == Qt.ItemDataRole.DecorationRole and key == "yours":
            return tone_dot("ok" if item.may_decide else "neutral")
        if role == CorrectionIdRole:
            return item.id
        if role == MayDecideRole:
            return item.may_decide
        return None


__all__ = [
    "COLUMNS",
    "COLUMN_KEYS",
    "KIND_LABELS",
    "WIDTHS",
    "ApprovalsModel",
    "CorrectionIdRole",
    "MayDecideRole",
]
