"""The blotter's filter bar: what to show, in two rows of plain widgets, and three quick filters a clerk lives in.

Every widget maps to one field of :class:`~app.services.blotter.BlotterFilter`; the database does the filtering.
Typing is debounced (a query per pause, not per key); choices from lists apply at once. Quick filters:

- **My repairs**: status REPAIR, owned by me or by nobody (the clerk's own queue);
- **Today**: trade date is today (the user's date);
- **Failing validation**: trades with open validation exceptions, whatever their status.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QLineEdit,
    QMenu,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.models.enums import Side, TradeStatus
from app.services.blotter import BlotterFilter
from app.views import resources
from app.views.common.filter_widgets import (
    DebouncedFilterBar,
    OptionalDateEdit,
)
from app.views.common.filter_widgets import caption as _caption
from app.views.common.filter_widgets import combo as _combo
from app.views.common.filter_widgets import line_edit as _line
from app.views.common.filter_widgets import quick_toggle as _quick
from app.views.common.flow_layout import FlowLayout, group
from app.views.qt_models.blotter_model import STATUS_TONES
from app.views.qt_models.status_counts import status_label, tone_dot

#: A pause in typing this long applies the filter.
SOURCES = ("CSV", "XLSX", "FIX", "DEMO")


class FilterBar(DebouncedFilterBar):
    """Emits :attr:`changed` with the new filter whenever the user changes one (debounced while typing)."""

    def __init__(
        self, user_id: int | None, parent: QWidget | None = None, *, today: dt.date | None = None
    ) -> None:
        super().__init__(parent)
        self._user_id = user_id
        self._today = today

        self.text = _line(
            "Trade, order or source ref…", 210, "Part of a trade, order or source reference (Ctrl+F)"
        )
        self.text.addAction(resources.icon("filter"), QLineEdit.ActionPosition.LeadingPosition)
        self.status_button = QToolButton()
        self.status_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.status_button.setMinimumWidth(130)
        self.status_button.setToolTip("Show only trades in these statuses")
        self.status_button.setAccessibleName("Status filter")
        self.status_menu = QMenu(self.status_button)
        self.status_actions = {}
        for status in TradeStatus:
            action = self.status_menu.addAction(
                tone_dot(STATUS_TONES.get(status.value, "neutral")), status_label(status.value)
            )
            action.setCheckable(True)
            action.setData(status.value)
            action.toggled.connect(self._statuses_edited)
            self.status_actions[status.value] = action
        self.status_menu.addSeparator()
        self.status_menu.addAction("Any status", self._clear_statuses)
        self.status_button.setMenu(self.status_menu)
        self.side = _combo(
            [("Any side", None), ("Buy", Side.BUY.value), ("Sell", Side.SELL.value)], "Buy or sell"
        )
        self.source = _combo(
            [("Any source", None)] + [(s, s) for s in SOURCES],
            "Where the trade came from (file profile, FIX session, demo)",
        )
        self.account = _line("Account", 90, "Account code (exact)")
        self.counterparty = _line("Counterparty", 100, "Counterparty code (exact)")
        self.instrument = _line("ISIN or instrument name", 150, "An ISIN, or part of the instrument's name")

        self.trade_from = OptionalDateEdit()
        self.trade_to = OptionalDateEdit()
        self.settle_from = OptionalDateEdit()
        self.settle_to = OptionalDateEdit()
        for edit, tip in (
            (self.trade_from, "Trade date from"),
            (self.trade_to, "Trade date to"),
            (self.settle_from, "Settlement date from"),
            (self.settle_to, "Settlement date to"),
        ):
            edit.setToolTip(tip)
            edit.setAccessibleName(tip)
        # The reason codes arrive with the pane's settings (set_reasons); a code can be typed meanwhile.
        self.exception = _combo(
            [("Any exception", None)],
            "Trades with this open validation exception (reason code)",
            editable=True,
        )
        self.exception.lineEdit().setPlaceholderText("Any exception")

        self.my_repairs = _quick("My repairs", "Trades in repair that are mine or unassigned")
        self.my_repairs.setIcon(resources.icon("repair"))
        self.today_button = _quick("Today", "Trades booked today")
        self.failing = _quick("Failing validation", "Trades with open validation exceptions")
        self.failing.setIcon(resources.icon("exception"))
        self.clear_button = QToolButton()
        self.clear_button.setText("Clear")
        self.clear_button.setToolTip("Show every trade (clear all filters)")
        self.clear_button.clicked.connect(self.clear)
        if user_id is None:
            self.my_repairs.setEnabled(False)
        # Drill-down chip: shown while the blotter is limited to trades another pane sent (an SLA tile ...).
        self._ids: tuple[int, ...] | None = None
        self._ids_title: str | None = None
        self.drill_chip = QToolButton()
        self.drill_chip.setObjectName("drillChip")
        self.drill_chip.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.drill_chip.setToolTip(
            "Showing only the trades another pane sent; click to show every trade again"
        )
        self.drill_chip.clicked.connect(self._clear_ids)
        self.drill_chip.hide()

        # Two rows that wrap where the pane is narrow (a laptop screen shared with another pane): the bar needs only
        # the width of its widest field, not of a whole row.
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(6)
        row1 = FlowLayout()
        outer.addLayout(row1)
        row1.addWidget(self.text, 2)
        row1.addWidget(self.status_button)
        row1.addWidget(self.side)
        row1.addWidget(self.source)
        row1.addWidget(self.account, 1)
        row1.addWidget(self.counterparty, 1)
        row1.addWidget(self.instrument, 2)
        row2 = FlowLayout()
        outer.addLayout(row2)
        row2.addWidget(group(_caption("Trade date"), self.trade_from, _caption("–"), self.trade_to))
        row2.addWidget(group(_caption("Settles"), self.settle_from, _caption("–"), self.settle_to))
        row2.addWidget(self.exception, 1)
        row2.addWidget(group(self.my_repairs, self.today_button, self.failing, spacing=6))
        row2.addStretch(1)
        row2.addWidget(self.drill_chip)
        row2.addWidget(self.clear_button)

        for edit in (self.text, self.account, self.counterparty, self.instrument):
            edit.textEdited.connect(self._typed)
            edit.returnPressed.connect(self._emit_now)
            # The clear button inside the field changes the text without textEdited.
            edit.textChanged.connect(lambda text: self._emit_now() if not text else None)
        self.exception.editTextChanged.connect(self._typed)
        self.exception.activated.connect(lambda _i: self._emit_now())
        self.side.currentIndexChanged.connect(lambda _i: self._emit_now())
        self.source.currentIndexChanged.connect(lambda _i: self._emit_now())
        for edit in (self.trade_from, self.trade_to):
            edit.dateChanged.connect(self._trade_dates_edited)
        for edit in (self.settle_from, self.settle_to):
            edit.dateChanged.connect(lambda _d: self._emit_now())
        self.my_repairs.toggled.connect(self._my_repairs_toggled)
        self.today_button.toggled.connect(self._today_toggled)
        self.failing.toggled.connect(lambda _on: self._emit_now())
        self._update_status_text()
        self._last = self.current()

    # --- reading and writing the filter -------------------------------------------------------------------------

    def set_reasons(self, reasons: dict[str, str]) -> None:
        """Offer the validation reason codes (code -> words) in the exception list."""
        self._quiet = True
        text = self.exception.currentText()
        while self.exception.count() > 1:
            self.exception.removeItem(1)
        for code in sorted(reasons):
            self.exception.addItem(code, code)
            self.exception.setItemData(self.exception.count() - 1, reasons[code], Qt.ItemDataRole.ToolTipRole)
        self.exception.setEditText(text if text != self.exception.itemText(0) else "")
        self._quiet = False

    def today(self) -> dt.date:
        return self._today or dt.date.today()

    def current(self) -> BlotterFilter:
        statuses = tuple(s for s, a in self.status_actions.items() if a.isChecked())
        exception = self.exception.currentText().strip().upper() or None
        if exception == self.exception.itemText(0).upper():
            exception = None
        return BlotterFilter(
            statuses=statuses,
            exception_code=exception,
            trade_date_from=self.trade_from.value(),
            trade_date_to=self.trade_to.value(),
            settlement_date_from=self.settle_from.value(),
            settlement_date_to=self.settle_to.value(),
            account=self.account.text().strip() or None,
            counterparty=self.counterparty.text().strip() or None,
            instrument=self.instrument.text().strip() or None,
            side=self.side.currentData(),
            source=self.source.currentData(),
            text=self.text.text().strip() or None,
            owner_or_unassigned=self._user_id if self.my_repairs.isChecked() else None,
            with_exceptions=self.failing.isChecked(),
            ids=self._ids,
            ids_title=self._ids_title if self._ids is not None else None,
        )

    def set_filter(self, flt: BlotterFilter, *, emit: bool = True) -> None:
        """Show a filter (a saved view); emits :attr:`changed` once unless ``emit`` is False."""
        self._quiet = True
        try:
            for status, action in self.status_actions.items():
                action.setChecked(status in flt.statuses)
            self.exception.setCurrentIndex(0)
            self.exception.setEditText(flt.exception_code or "")
            self.trade_from.set_value(flt.trade_date_from)
            self.trade_to.set_value(flt.trade_date_to)
            self.settle_from.set_value(flt.settlement_date_from)
            self.settle_to.set_value(flt.settlement_date_to)
            self.account.setText(flt.account or "")
            self.counterparty.setText(flt.counterparty or "")
            self.instrument.setText(flt.instrument or "")
            self.text.setText(flt.text or "")
            _select_data(self.side, flt.side.upper() if flt.side else None)
            _select_data(self.source, flt.source)
            self.my_repairs.setChecked(flt.owner_or_unassigned is not None and flt.statuses == ("REPAIR",))
            today = self.today()
            self.today_button.setChecked(flt.trade_date_from == today and flt.trade_date_to == today)
            self.failing.setChecked(flt.with_exceptions)
            self._set_ids(flt.ids, flt.ids_title)
        finally:
            self._quiet = False
        self._update_status_text()
        if emit:
            self._emit_now()
        else:
            self._last = self.current()

    def clear(self) -> None:
        self.set_filter(BlotterFilter())

    def _set_ids(self, ids: tuple[int, ...] | None, title: str | None) -> None:
        self._ids = None if ids is None else tuple(ids)
        self._ids_title = title
        if self._ids is not None:
            what = title or "Selected trades"
            self.drill_chip.setText(f"{what} ({len(self._ids):,})  ✕")
        self.drill_chip.setVisible(self._ids is not None)

    def _clear_ids(self) -> None:
        self._set_ids(None, None)
        self._emit_now()

    def focus_search(self) -> None:
        self.text.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.text.selectAll()

    # --- reacting to the widgets --------------------------------------------------------------------------------

    def _statuses_edited(self, _checked: bool) -> None:
        if self._quiet:
            return
        self._update_status_text()
        statuses = [s for s, a in self.status_actions.items() if a.isChecked()]
        if self.my_repairs.isChecked() and statuses != ["REPAIR"]:
            self._set_quietly(self.my_repairs, False)
        self._emit_now()

    def _clear_statuses(self) -> None:
        self._quiet = True
        for action in self.status_actions.values():
            action.setChecked(False)
        self.my_repairs.setChecked(False)
        self._quiet = False
        self._update_status_text()
        self._emit_now()

    def _update_status_text(self) -> None:
        chosen = [status_label(s) for s, a in self.status_actions.items() if a.isChecked()]
        if not chosen:
            text = "Any status"
        elif len(chosen) <= 2:
            text = ", ".join(chosen)
        else:
            text = f"{len(chosen)} statuses"
        self.status_button.setText(text)

    def _my_repairs_toggled(self, on: bool) -> None:
        if self._quiet:
            return
        self._quiet = True
        for status, action in self.status_actions.items():
            action.setChecked(on and status == TradeStatus.REPAIR.value)
        self._quiet = False
        self._update_status_text()
        self._emit_now()

    def _today_toggled(self, on: bool) -> None:
        if self._quiet:
            return
        self._quiet = True
        today = self.today() if on else None
        self.trade_from.set_value(today)
        self.trade_to.set_value(today)
        self._quiet = False
        self._emit_now()

    def _trade_dates_edited(self, _date: Any) -> None:
        if self._quiet:
            return
        today = self.today()
        is_today = self.trade_from.value() == today and self.trade_to.value() == today
        if self.today_button.isChecked() != is_today:
            self._set_quietly(self.today_button, is_today)
        self._emit_now()

    def _set_quietly(self, button: QToolButton, checked: bool) -> None:
        self._quiet = True
        button.setChecked(checked)
        self._quiet = False


def _select_data(combo: QComboBox, data: str | None) -> None:
    i = combo.findData(data)
    if i < 0 and data:
        # A saved view may name a source not in the list (a new FIX session): add it rather than lose it.
        combo.addItem(data, data)
        i = combo.count() - 1
    combo.setCurrentIndex(max(i, 0))
