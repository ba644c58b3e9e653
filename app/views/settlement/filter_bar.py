"""The queue's filter bar: a view to start from, the fields of a :class:`QueueFilter`, a group-by choice and, after a
drill-down from another pane, a removable chip naming where the list came from.

Views: **My queue** (open instructions that are mine or nobody's: the clerk's day), **Failing** (failed, or open past
the settlement date), **All open**, **Everything**. Typing is debounced; choices from lists apply at once.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QToolButton, QVBoxLayout, QWidget

from app.models.enums import InstructionStatus
from app.services.settlement.queue import GROUP_BY, GROUP_LABELS, OPEN_STATUSES, QueueFilter
from app.views import resources
from app.views.common.filter_widgets import OptionalDateEdit, line_edit
from app.views.common.flow_layout import FlowLayout, group
from app.views.qt_models.settlement_model import STATUS_TONES
from app.views.qt_models.status_counts import status_label, tone_dot
from app.views.settlement.reason_words import describe

TYPING_DELAY_MS = 300
ANY = "Any"
VIEWS = ("My queue", "Failing", "All open", "Everything")
REASON_CODES = ("CMIS", "DDAT", "DQUA", "DMON", "DSEC", "DEPT", "DELN", "LACK", "MONY")
OWNERS = (
    ("Anyone", None),
    ("Mine", "mine"),
    ("Unassigned", "unassigned"),
    ("Mine or nobody's", "mine_or_unassigned"),
)


def _line(placeholder: str, width: int, tip: str) -> QLineEdit:
    return line_edit(placeholder, width, tip, max_width=width + 60)


class QueueFilterBar(QWidget):
    #: The filter changed (the new QueueFilter).
    changed = Signal(object)
    #: The group-by choice changed ("" for none).
    group_by_changed = Signal(str)
    #: The drill-down chip was removed.
    drill_cleared = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("queueFilterBar")
        self._drill: dict[str, Any] = {}
        self._quiet = False
        # Two rows that wrap where the pane is narrow: the bar needs the width of its widest field, not of a row.
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(4)
        first = FlowLayout()
        second = FlowLayout()
        outer.addLayout(first)
        outer.addLayout(second)

        self.view = QComboBox()
        self.view.addItems(VIEWS)
        self.view.setToolTip("Where to start: your queue, the failing items, everything open, or everything")
        self.view.setAccessibleName("View")
        self.status = QComboBox()
        self.status.addItem(ANY, None)
        for s in InstructionStatus:
            self.status.addItem(tone_dot(STATUS_TONES[s.value]), status_label(s.value), s.value)
        self.status.setAccessibleName("Status")
        self.reason = QComboBox()
        self.reason.addItem(ANY, None)
        for code in REASON_CODES:
            self.reason.addItem(code, code)
            self.reason.setItemData(self.reason.count() - 1, describe(code), Qt.ItemDataRole.ToolTipRole)
        self.reason.setAccessibleName("Reason")
        self.owner = QComboBox()
        for label, value in OWNERS:
            self.owner.addItem(label, value)
        self.owner.setAccessibleName("Owner")
        self.search = _line(
            "Reference…", 130, "Part of our instruction reference or the counterparty's (Ctrl+F)"
        )
        self.group_by = QComboBox()
        self.group_by.addItem("No grouping", "")
        for key in GROUP_BY:
            self.group_by.addItem(f"By {GROUP_LABELS[key].lower()}", key)
        self.group_by.setToolTip("Group the queue: counts per group on the left; click a group to show it")
        self.group_by.setAccessibleName("Group by")
        self.chip = QToolButton()
        self.chip.setObjectName("drillChip")
        self.chip.setIcon(resources.icon("cancel"))
        self.chip.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.chip.setToolTip("Showing the items another pane sent; click to go back to the whole queue")
        self.chip.clicked.connect(self.clear_drill_down)
        self.chip.hide()
        for label, w in (
            ("View", self.view),
            ("Status", self.status),
            ("Reason", self.reason),
            ("Owner", self.owner),
        ):
            first.addWidget(group(QLabel(label), w))
        first.addWidget(self.search, 1)
        first.addStretch(1)
        first.addWidget(self.chip)

        self.date_from = OptionalDateEdit()
        self.date_from.setToolTip("Intended settlement date from")
        self.date_to = OptionalDateEdit()
        self.date_to.setToolTip("Intended settlement date to")
        self.counterparty = _line("Counterparty", 90, "Counterparty code")
        self.market = _line("Market", 60, "Market MIC (XNYS, XETR …)")
        self.account = _line("Account", 80, "Account code")
        self.isin = _line("ISIN or name", 110, "An ISIN, or part of the instrument's name")
        self.currency = _line("Ccy", 40, "Settlement currency")
        second.addWidget(group(QLabel("Settles"), self.date_from, QLabel("to"), self.date_to))
        for w in (self.counterparty, self.market, self.account, self.isin, self.currency):
            second.addWidget(w, 1)
        # The grouping choice ends the second row: at 1,000 px the first row then fits one line, and the bar three.
        second.addStretch(1)
        second.addWidget(self.group_by)

        self._typing = QTimer(self)
        self._typing.setSingleShot(True)
        self._typing.setInterval(TYPING_DELAY_MS)
        self._typing.timeout.connect(self._emit)
        for combo in (self.view, self.status, self.reason, self.owner):
            combo.currentIndexChanged.connect(lambda _i: self._emit())
        for edit in (self.search, self.counterparty, self.market, self.account, self.isin, self.currency):
            edit.textChanged.connect(lambda _t: self._typing.start())
        for date in (self.date_from, self.date_to):
            date.dateChanged.connect(lambda _d: self._emit())
        self.group_by.currentIndexChanged.connect(
            lambda _i: self.group_by_changed.emit(self.current_group_by())
        )

    # --- reading and writing --------------------------------------------------------------------------------------

    def current(self) -> QueueFilter:
        view = self.view.currentText()
        statuses: tuple[str, ...] = ()
        owner = self.owner.currentData()
        failing = False
        if view == "My queue":
            statuses = OPEN_STATUSES
            owner = owner or "mine_or_unassigned"
        elif view == "Failing":
            failing = True
        elif view == "All open":
            statuses = OPEN_STATUSES
        if self.status.currentData():
            statuses = (self.status.currentData(),)
        text = lambda e: e.text().strip() or None  # noqa: E731
        flt = QueueFilter(
            settlement_date_from=self.date_from.value(),
            settlement_date_to=self.date_to.value(),
            statuses=statuses,
            reasons=(self.reason.currentData(),) if self.reason.currentData() else (),
            counterparty=text(self.counterparty),
            market=text(self.market),
            owner=owner,
            account=text(self.account),
            isin=text(self.isin),
            currency=text(self.currency),
            failing_only=failing,
            text=text(self.search),
        )
        if self._drill:
            flt = replace(flt, **self._drill)
        return flt

    def current_group_by(self) -> str:
        return str(self.group_by.currentData() or "")

    def set_group_by(self, key: str) -> None:
        i = self.group_by.findData(key)
        self.group_by.setCurrentIndex(max(0, i))

    def set_view(self, name: str) -> None:
        self.view.setCurrentIndex(max(0, VIEWS.index(name) if name in VIEWS else 0))

    def reset_fields(self) -> None:
        """Every field back to Any (a drill-down starts from the whole queue)."""
        self._quiet = True
        try:
            self.view.setCurrentIndex(VIEWS.index("Everything"))
            for combo in (self.status, self.reason, self.owner):
                combo.setCurrentIndex(0)
            for edit in (self.search, self.counterparty, self.market, self.account, self.isin, self.currency):
                edit.clear()
            self.date_from.set_value(None)
            self.date_to.set_value(None)
        finally:
            self._quiet = False
        self._typing.stop()

    def set_drill_down(self, criteria: dict[str, Any]) -> None:
        """Show exactly what another pane asked for, with a chip saying so; the fields start from Any."""
        self.reset_fields()
        drill: dict[str, Any] = {}
        if criteria.get("ids") is not None:
            drill["ids"] = tuple(int(i) for i in criteria["ids"])
        title = str(criteria.get("title") or "").strip()
        self._quiet = True
        try:
            if criteria.get("status"):
                i = self.status.findData(str(criteria["status"]).upper())
                if i >= 0:
                    self.status.setCurrentIndex(i)
            if criteria.get("reason"):
                i = self.reason.findData(str(criteria["reason"]).upper())
                if i >= 0:
                    self.reason.setCurrentIndex(i)
                else:
                    drill["reasons"] = (str(criteria["reason"]).upper(),)
        finally:
            self._quiet = False
        if not title:
            n = len(drill.get("ids", ()))
            title = f"{n:,} instruction{'s' if n != 1 else ''} sent here" if "ids" in drill else "Drill-down"
        drill["ids_title"] = title
        self._drill = drill
        self.chip.setText(title)
        self.chip.setAccessibleName(f"Remove filter: {title}")
        self.chip.show()
        self._emit()

    @property
    def drilled(self) -> bool:
        return bool(self._drill)

    def clear_drill_down(self) -> None:
        if not self._drill:
            return
        self._drill = {}
        self.chip.hide()
        self.drill_cleared.emit()
        self._emit()

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _emit(self) -> None:
        if not self._quiet:
            self.changed.emit(self.current())
