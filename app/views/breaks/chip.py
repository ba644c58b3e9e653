"""The drill-down chip: "Showing: <where the list came from>" with a button that removes it.

A pane opened from elsewhere (an SLA tile, a linked item) shows exactly the items it was asked for; the chip says
so, and removing it gives the clerk their own filter back.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

from app.views import resources


class DrillChip(QFrame):
    """Hidden until :meth:`show_for`; emits :attr:`cleared` when the user removes it."""

    cleared = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("drillChip")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 2, 4, 2)
        layout.setSpacing(6)
        icon = QLabel()
        icon.setPixmap(resources.pixmap("filter", 14))
        self.label = QLabel("")
        self.label.setObjectName("drillChipText")
        self.close_button = QToolButton()
        self.close_button.setObjectName("drillChipClose")
        self.close_button.setText("✕")
        self.close_button.setToolTip("Remove this filter and show your own again")
        self.close_button.setAccessibleName("Remove the drill-down filter")
        self.close_button.clicked.connect(self._clear)
        layout.addWidget(icon)
        layout.addWidget(self.label)
        layout.addWidget(self.close_button)
        self.hide()

    @property
    def text(self) -> str:
        return self.label.text()

    def show_for(self, title: str) -> None:
        self.label.setText(f"Showing: {title}")
        self.show()

    def _clear(self) -> None:
        self.hide()
        self.label.setText("")
        self.cleared.emit()
