"""The optional date field of the filter bars: "Any" when empty, and a calendar that opens on a useful month."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import QDate, QPoint, Qt
from pytestqt.qtbot import QtBot

from app.views.common.filter_widgets import OptionalDateEdit


def _open_calendar(qtbot: QtBot, field: OptionalDateEdit) -> None:
    # A click on the drop-down arrow at the field's right edge, as a clerk opens it.
    qtbot.mouseClick(field, Qt.MouseButton.LeftButton, pos=QPoint(field.width() - 6, field.height() // 2))
    qtbot.waitUntil(lambda: field.calendarWidget().isVisible(), timeout=5_000)


def test_an_empty_date_reads_any_and_its_calendar_opens_on_this_month(qtbot: QtBot) -> None:
    field = OptionalDateEdit()
    qtbot.addWidget(field)
    field.resize(140, 28)
    field.show()
    assert field.value() is None and field.text() == "Any"
    _open_calendar(qtbot, field)
    today = QDate.currentDate()
    calendar = field.calendarWidget()
    assert (calendar.yearShown(), calendar.monthShown()) == (today.year(), today.month())  # not January 1900


def test_a_set_date_reads_back_and_its_calendar_opens_on_its_month(qtbot: QtBot) -> None:
    field = OptionalDateEdit()
    qtbot.addWidget(field)
    field.resize(140, 28)
    field.show()
    field.set_value(dt.date(2024, 2, 29))
    assert field.value() == dt.date(2024, 2, 29) and field.text() == "2024-02-29"
    _open_calendar(qtbot, field)
    calendar = field.calendarWidget()
    assert (calendar.yearShown(), calendar.monthShown()) == (2024, 2)
    field.set_value(None)
    assert field.value() is None and field.text() == "Any"


def test_a_checked_quick_filter_has_room_for_its_semibold_text(qtbot: QtBot) -> None:
    """The style sheet sets a checked quick filter's text in semibold; its width must hold that text, or "Failing
    validation" reads "Failing validatior" once the clerk turns it on."""
    from PySide6.QtGui import QFont, QFontMetrics
    from PySide6.QtWidgets import QToolButton

    from app.views import resources
    from app.views.common.filter_widgets import quick_toggle

    text = "Failing validation"
    button = quick_toggle(text, "tip", "exception")
    plain = QToolButton()  # the same button as Qt sizes it: the chrome around the text (icon, padding)
    plain.setText(text)
    plain.setIcon(resources.icon("exception"))
    plain.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    for b in (button, plain):
        qtbot.addWidget(b)
        b.setStyleSheet(resources.stylesheet())
        b.ensurePolished()
    button.setChecked(True)
    chrome = plain.sizeHint().width() - plain.fontMetrics().horizontalAdvance(text)
    semibold = QFont(button.font())
    semibold.setWeight(QFont.Weight.DemiBold)
    assert button.sizeHint().width() - chrome >= QFontMetrics(semibold).horizontalAdvance(text)
    assert button.minimumSizeHint().width() >= button.sizeHint().width()
