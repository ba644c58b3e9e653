"""The dialog a clerk proposes a correction with: what to change (by kind) and the reason the checker will read.

Kinds offered from a break:

- **Amend the trade**: the internal record's trade, with the fields to correct (the differing ones are prefilled
  with the external side's value, the rest may be added);
- **Write off**: the difference, up to the amount at stake;
- **Force close**: closed as resolved without a system match (an explained timing difference);
- **Unmatch**: undo a match that paired the wrong records (the match is chosen from those naming this break's refs);
- **Manual match**: the break with the chosen candidates (one-to-one or one-to-many); opened from the candidates.

The dialog only gathers input; the pane runs the proposal in the background and the service decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.services.capture.detail import EDITABLE  # a light module: no pandas
from app.services.workflow.worklist import BreakDetail

AMEND, WRITE_OFF, FORCE_CLOSE, UNMATCH, MANUAL_MATCH = (
    "AMEND_TRADE",
    "WRITE_OFF",
    "FORCE_CLOSE",
    "UNMATCH",
    "MANUAL_MATCH",
)
TITLES = {
    AMEND: "Propose an amendment of the trade",
    WRITE_OFF: "Propose a write-off",
    FORCE_CLOSE: "Propose to force-close the break",
    UNMATCH: "Propose to undo a match",
    MANUAL_MATCH: "Propose a manual match",
}
CHANGED = QColor("#fff3c4")


@dataclass
class Proposal:
    """What the clerk asked for: the kind, the correction's payload, the reason, and the item it applies to."""

    kind: str
    reason: str
    payload: dict[str, Any] = field(default_factory=dict)
    item_type: str = "breaks"
    item_id: int | None = None
    trade_ref: str | None = None  # an amendment: the trade is found by its reference in the background


class ProposeDialog(QDialog):
    """``proposal()`` gives the input once accepted; OK stays disabled until the input is complete."""

    def __init__(
        self,
        kind: str,
        detail: BreakDetail,
        parent: QWidget | None = None,
        *,
        candidates: list[dict[str, Any]] | None = None,
        matches: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("proposeDialog")
        self.kind = kind
        self.detail = detail
        self.candidates = candidates or []
        self.matches = matches or []
        self.setWindowTitle(TITLES.get(kind, "Propose a correction"))
        self.setModal(True)
        self.resize(560, 420)
        outer = QVBoxLayout(self)
        title = QLabel(f"<b>{TITLES.get(kind, kind)}</b> — break #{detail.id} ({detail.recon})")
        title.setObjectName("dialogTitle")
        outer.addWidget(title)
        note = QLabel(
            "A supervisor who is neither you nor the last editor approves or rejects it; nothing changes until then."
        )
        note.setObjectName("muted")
        note.setWordWrap(True)
        outer.addWidget(note)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.amount: QLineEdit | None = None
        self.fields: QTableWidget | None = None
        self.match: QComboBox | None = None
        if kind == WRITE_OFF:
            self.amount = QLineEdit(f"{abs(detail.amount):.2f}")
            self.amount.setToolTip(
                f"At most {abs(detail.amount):,.2f} {detail.currency or ''} (the amount at stake)"
            )
            self.amount.setAccessibleName("Amount to write off")
            form.addRow(f"Amount ({detail.currency or '—'})", self.amount)
            self.amount.textChanged.connect(self._check)
        elif kind == AMEND:
            ref = detail.internal_ref or "—"
            form.addRow("Trade", QLabel(ref))
            self.fields = self._fields_table()
            form.addRow("Fields", self.fields)
        elif kind == UNMATCH:
            self.match = QComboBox()
            self.match.setAccessibleName("Match to undo")
            for m in self.matches:
                refs = ", ".join([*m.get("left_refs", []), *m.get("right_refs", [])])
                self.match.addItem(f"Match #{m['id']} ({m.get('pass_name', '')}): {refs}", m["id"])
            if not self.matches:
                self.match.addItem("No match names this break's references", None)
            form.addRow("Match", self.match)
        elif kind == MANUAL_MATCH:
            names = ", ".join(f"#{c['break_id']}" for c in self.candidates)
            shape = "one-to-one" if len(self.candidates) == 1 else f"one-to-{len(self.candidates)}"
            form.addRow("Breaks", QLabel(f"#{detail.id} with {names} ({shape})"))
        elif kind == FORCE_CLOSE:
            form.addRow("Effect", QLabel("The break is closed as resolved without a system match."))
        outer.addLayout(form)
        outer.addWidget(QLabel("Reason (the checker reads it before deciding):"))
        self.reason = QPlainTextEdit()
        self.reason.setAccessibleName("Reason")
        self.reason.setPlaceholderText(
            "Why is this the right correction? Name the evidence (statement, e-mail …)."
        )
        self.reason.textChanged.connect(self._check)
        outer.addWidget(self.reason, 1)
        self.problem = QLabel("")
        self.problem.setObjectName("muted")
        outer.addWidget(self.problem)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Propose")
        self.ok_button.setProperty("primary", True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        outer.addWidget(self.buttons)
        self._check()

    def _fields_table(self) -> QTableWidget:
        table = QTableWidget(0, 3)
        table.setHorizontalHeaderLabels(["Field", "Now (internal)", "Corrected value"])
        table.verticalHeader().hide()
        table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        internal = self.detail.internal_record or {}
        differing = {f.field: f for f in self.detail.fields if f.differs}
        for name in EDITABLE:  # what an amendment may correct: the service's list (the repair queue's)
            if name not in internal and name not in differing:
                continue
            r = table.rowCount()
            table.insertRow(r)
            key = QTableWidgetItem(name)
            key.setFlags(Qt.ItemFlag.ItemIsEnabled)
            now = QTableWidgetItem("" if internal.get(name) is None else str(internal.get(name)))
            now.setFlags(Qt.ItemFlag.ItemIsEnabled)
            # The external side's value is the likely correction of a field that differs.
            proposed = differing[name].external if name in differing else internal.get(name)
            new = QTableWidgetItem("" if proposed is None else str(proposed))
            if name in differing:
                for item in (key, now, new):
                    item.setBackground(CHANGED)
            table.setItem(r, 0, key)
            table.setItem(r, 1, now)
            table.setItem(r, 2, new)
        table.itemChanged.connect(lambda _i: self._check())
        return table

    def amended_fields(self) -> dict[str, str]:
        if self.fields is None:
            return {}
        out = {}
        for r in range(self.fields.rowCount()):
            name = self.fields.item(r, 0).text()
            now = self.fields.item(r, 1).text()
            new = self.fields.item(r, 2).text().strip()
            if new and new != now:
                out[name] = new
        return out

    def _problem(self) -> str:
        if self.kind == WRITE_OFF and self.amount is not None:
            try:
                amount = Decimal(self.amount.text().replace(",", "").strip())
            except InvalidOperation:
                return "Enter the amount to write off."
            if amount <= 0:
                return "A write-off needs a positive amount."
            if self.detail.amount and amount > abs(self.detail.amount):
                return f"At most {abs(self.detail.amount):,.2f} is at stake on this break."
        if self.kind == AMEND and not self.amended_fields():
            return "Change at least one field."
        if self.kind == UNMATCH and (self.match is None or self.match.currentData() is None):
            return "There is no match to undo."
        if not self.reason.toPlainText().strip():
            return "Give a reason."
        return ""

    def _check(self) -> None:
        problem = self._problem()
        self.problem.setText(problem)
        self.ok_button.setEnabled(not problem)

    def proposal(self) -> Proposal:
        reason = self.reason.toPlainText().strip()
        d = self.detail
        if self.kind == WRITE_OFF and self.amount is not None:
            amount = Decimal(self.amount.text().replace(",", "").strip())
            return Proposal(WRITE_OFF, reason, {"amount": str(amount)}, "breaks", d.id)
        if self.kind == AMEND:
            return Proposal(
                AMEND,
                reason,
                {"fields": self.amended_fields(), "break_ids": [d.id]},
                "trades",
                None,
                d.internal_ref,
            )
        if self.kind == UNMATCH and self.match is not None:
            return Proposal(UNMATCH, reason, {}, "recon_matches", int(self.match.currentData()))
        if self.kind == MANUAL_MATCH:
            ids = [int(c["break_id"]) for c in self.candidates]
            return Proposal(MANUAL_MATCH, reason, {"break_ids": ids}, "breaks", d.id)
        return Proposal(FORCE_CLOSE, reason, {}, "breaks", d.id)
