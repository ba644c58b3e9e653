"""The widgets of the two-row filter bars (blotter, breaks, queue): an optional date, line edits, combos, quick
toggles, captions, and the debounced "the filter changed" plumbing they share."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import QDate, QEvent, QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QFontMetrics, QKeyEvent, QMouseEvent
from PySide6.QtWidgets import QComboBox, QDateEdit, QLabel, QLineEdit, QToolButton, QWidget

from app.views import resources

#: Typing in a text field runs the query this long after the last key.
TYPING_DELAY_MS = 300
ANY = "Any"


class OptionalDateEdit(QDateEdit):
    """A date field that may be empty ("Any"): its minimum date stands for "no date" (Qt's special value text)."""

    EMPTY = QDate(1900, 1, 1)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setCalendarPopup(True)
        self.setDisplayFormat("yyyy-MM-dd")
        self.setMinimumDate(self.EMPTY)
        self.setSpecialValueText(ANY)
        self.setDate(self.EMPTY)
        self.setMinimumWidth(104)
        self._watching_calendar = False

    def _watch_calendar(self) -> None:
        # Opening the calendar on an empty field should show this month, not January 1900. Qt builds the calendar
        # (some thirty widgets) when it first opens, which is a click or a key away; asking for it here built it
        # with the field: 2.8 ms a field, four of them in the blotter's filter bar.
        if not self._watching_calendar:
            self._watching_calendar = True
            self.calendarWidget().installEventFilter(self)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._watch_calendar()
        super().mousePressEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        self._watch_calendar()
        super().keyPressEvent(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Show and self.value() is None:
            today = QDate.currentDate()
            self.calendarWidget().setCurrentPage(today.year(), today.month())
        return super().eventFilter(watched, event)

    def value(self) -> dt.date | None:
        d = self.date()
        return None if d == self.EMPTY else dt.date(d.year(), d.month(), d.day())

    def set_value(self, value: dt.date | None) -> None:
        self.setDate(self.EMPTY if value is None else QDate(value.year, value.month, value.day))


def line_edit(placeholder: str, width: int, tip: str, *, max_width: int | None = None) -> QLineEdit:
    """A clearable text field named (for screen readers) by its placeholder."""
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    edit.setClearButtonEnabled(True)
    edit.setMinimumWidth(width)
    if max_width is not None:
        edit.setMaximumWidth(max_width)
    edit.setToolTip(tip)
    edit.setAccessibleName(placeholder)
    return edit


def combo(items: list[tuple[str, object]], tip: str, *, editable: bool = False) -> QComboBox:
    """A choice of ``(text, data)`` items, named by its tooltip."""
    box = QComboBox()
    for text, data in items:
        box.addItem(text, data)
    if editable:
        box.setEditable(True)
    box.setToolTip(tip)
    box.setAccessibleName(tip)
    return box


class QuickToggle(QToolButton):
    """A quick filter button as wide as its text set in the checked state's semibold (resources/style.qss): Qt
    works out a button's size hint from its unchecked font, so "Failing validation" was clipped once checked."""

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        hint = super().sizeHint()
        semibold = QFont(self.font())
        semibold.setWeight(QFont.Weight.DemiBold)
        extra = QFontMetrics(semibold).horizontalAdvance(self.text()) - self.fontMetrics().horizontalAdvance(
            self.text()
        )
        return QSize(hint.width() + max(0, extra), hint.height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return self.sizeHint()


def quick_toggle(text: str, tip: str, icon: str = "") -> QToolButton:
    """A checkable quick filter ("My breaks", "Today" …), styled by resources/style.qss's ``#quickFilter``."""
    button = QuickToggle()
    button.setText(text)
    button.setCheckable(True)
    button.setToolTip(tip)
    button.setObjectName("quickFilter")
    if icon:
        button.setIcon(resources.icon(icon))
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    return button


def caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("muted")
    return label


class DebouncedFilterBar(QWidget):
    """Emits :attr:`changed` with the new filter whenever the user changes one: at once for a click, after a pause
    for typing, and never twice for the same filter (a focus change or a re-selected item must not run the same
    query again). Subclasses implement :meth:`current`; ``_quiet`` silences changes made by code."""

    changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("filterBar")
        self._quiet = False
        self._last: object | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(TYPING_DELAY_MS)
        self._timer.timeout.connect(self._emit)

    def current(self) -> object:
        raise NotImplementedError

    def _typed(self, _text: str = "") -> None:
        if not self._quiet:
            self._timer.start()

    def _emit_now(self) -> None:
        if self._quiet:
            return
        self._timer.stop()
        self._emit()

    def _emit(self) -> None:
        flt = self.current()
        if flt != self._last:
            self._last = flt
            self.changed.emit(flt)
