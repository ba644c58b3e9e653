"""The approvals inbox's decision panel: one correction's before/after, its maker and reason, and the decision.

The supervisor reads what would change (field, before, after), who proposed it and why, how many approvals it has
and needs, then approves or rejects it with a comment (a rejection needs one: the maker reads it). When the rule
forbids the signed-in user to decide it (they proposed it, they last edited the item, they already approved it, or
their role does not approve), the buttons are disabled and the refusal is said in words beside them.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.services.workflow.worklist import InboxItem
from app.views import resources
from app.views.qt_models.approvals_model import KIND_LABELS, waiting_text

AFTER_BACKGROUND = QColor("#e3f1e4")
BEFORE_BACKGROUND = QColor("#fdecec")


def _value(v: object) -> str:
    return "—" if v is None or v == "" else str(v)


class DecisionPanel(QFrame):
    """Shows one :class:`InboxItem`; emits the supervisor's decision with the comment typed."""

    approve_requested = Signal(int, str)  # correction id, comment
    reject_requested = Signal(int, str)

    def __init__(self, timezone: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("decisionPanel")
        try:
            self.zone = ZoneInfo(timezone)
        except Exception:
            self.zone = ZoneInfo("UTC")
        self.item: InboxItem | None = None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 6, 0, 0)
        outer.setSpacing(6)
        self.title = QLabel("No correction selected")
        self.title.setObjectName("detailTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(self.title)
        self.facts = QLabel("")
        self.facts.setWordWrap(True)
        self.facts.setObjectName("breakFacts")
        outer.addWidget(self.facts)
        self.reason = QLabel("")
        self.reason.setWordWrap(True)
        self.reason.setObjectName("correctionReason")
        self.reason.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(self.reason)
        self.changes = QTableWidget(0, 3)
        self.changes.setHorizontalHeaderLabels(["Field", "Before", "After"])
        self.changes.setAccessibleName("Before and after")
        self.changes.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.changes.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.changes.verticalHeader().hide()
        self.changes.verticalHeader().setDefaultSectionSize(22)
        self.changes.setShowGrid(False)
        self.changes.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.changes.horizontalHeader().setDefaultAlignment(
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        )
        outer.addWidget(self.changes, 1)
        self.refusal = QLabel("")
        self.refusal.setObjectName("refusal")
        self.refusal.setWordWrap(True)
        self.refusal.hide()
        outer.addWidget(self.refusal)
        row = QHBoxLayout()
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("Comment for the maker (needed to reject)…")
        self.comment.setAccessibleName("Decision comment")
        self.comment.setClearButtonEnabled(True)
        self.comment.textChanged.connect(lambda _t: self._update())
        self.approve_button = QPushButton(resources.icon("approve"), "Approve")
        self.approve_button.setProperty("primary", True)
        self.approve_button.setToolTip("Approve: the change is applied at once, with its audit entries")
        self.reject_button = QPushButton(resources.icon("reject"), "Reject")
        self.reject_button.setToolTip("Reject: the item goes back to the maker with your comment")
        self.approve_button.clicked.connect(self._approve)
        self.reject_button.clicked.connect(self._reject)
        row.addWidget(self.comment, 1)
        row.addWidget(self.approve_button)
        row.addWidget(self.reject_button)
        outer.addLayout(row)
        self.show_item(None)

    def when(self, ts: dt.datetime) -> str:
        return ts.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")

    def show_item(self, item: InboxItem | None) -> None:
        same = item is not None and self.item is not None and item.id == self.item.id
        self.item = item
        if not same:
            self.comment.clear()
        if item is None:
            self.title.setText("No correction selected")
            self.facts.setText("Select a correction to see what it changes and decide it.")
            self.reason.setText("")
            self.changes.setRowCount(0)
            self.refusal.hide()
            self._update()
            return
        kind = KIND_LABELS.get(item.kind, item.kind)
        self.title.setText(f"<b>Correction #{item.id}</b> · {kind} · {item.item_label}")
        needs = "needs two approvers (above the threshold)" if item.required > 1 else "needs one approver"
        given = f"approved so far by {', '.join(item.approvers)}" if item.approvers else "no approval yet"
        self.facts.setText(
            f"Proposed by <b>{item.maker}</b> on {self.when(item.created_at)} ({waiting_text(item.age_hours)} ago) · "
            f"<b>{item.currency or ''} {item.amount:,.2f}</b> · {item.approvals}/{item.required}: {needs}, {given}"
        )
        self.reason.setText(f"<b>Reason:</b> {item.reason}")
        self.changes.setRowCount(0)
        for c in item.changes:
            r = self.changes.rowCount()
            self.changes.insertRow(r)
            cells = [
                QTableWidgetItem(c.field),
                QTableWidgetItem(_value(c.before)),
                QTableWidgetItem(_value(c.after)),
            ]
            if c.before not in (None, ""):
                cells[1].setBackground(QBrush(BEFORE_BACKGROUND))
            cells[2].setBackground(QBrush(AFTER_BACKGROUND))
            for i, cell in enumerate(cells):
                cell.setToolTip(cell.text())
                self.changes.setItem(r, i, cell)
        if item.refusal:
            self.refusal.setText(item.refusal)
            self.refusal.show()
        else:
            self.refusal.hide()
        self._update()

    def _update(self) -> None:
        item = self.item
        may = item is not None and item.may_decide
        self.approve_button.setEnabled(may)
        self.reject_button.setEnabled(may and bool(self.comment.text().strip()))
        self.comment.setEnabled(may)
        if may:
            self.reject_button.setToolTip(
                "Reject: the item goes back to the maker with your comment"
                if self.comment.text().strip()
                else "Write a comment first: the maker needs to know why"
            )

    def _approve(self) -> None:
        if self.item is not None and self.item.may_decide:
            self.approve_requested.emit(self.item.id, self.comment.text().strip())

    def _reject(self) -> None:
        text = self.comment.text().strip()
        if self.item is not None and self.item.may_decide and text:
            self.reject_requested.emit(self.item.id, text)
