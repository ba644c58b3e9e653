"""A strip of countdowns to each market's instruction cut-off, ticking every second without touching the database.

The pane reads the cut-offs (:func:`app.services.settlement.queue.cutoffs`: each one an aware UTC moment, with the
open instructions due by it) in the background now and then; the strip only subtracts the clock from them. When a
cut-off passes the strip asks for the next one (``expired``). Tones: red under 30 minutes, amber under two hours.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QScrollArea, QWidget

from app.services.settlement.queue import Cutoff
from app.views import resources

SOON = dt.timedelta(minutes=30)
LATER = dt.timedelta(hours=2)


def countdown_text(left: dt.timedelta) -> str:
    """``1d 02:03:04`` / ``02:03:04`` / ``passed``."""
    seconds = int(left.total_seconds())
    if seconds <= 0:
        return "passed"
    days, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    clock = f"{h:02d}:{m:02d}:{s:02d}"
    return f"{days}d {clock}" if days else clock


def tone_for(left: dt.timedelta) -> str:
    if left <= dt.timedelta(0):
        return "neutral"
    if left < SOON:
        return "bad"
    if left < LATER:
        return "warn"
    return "ok"


class CutoffStrip(QWidget):
    #: A cut-off passed: read the next ones.
    expired = Signal()
    #: A market chip was clicked (its MIC): show that market's instructions.
    market_clicked = Signal(str)

    def __init__(self, clock: Callable[[], dt.datetime] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("cutoffStrip")
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.cutoffs: list[Cutoff] = []
        self.labels: dict[str, QLabel] = {}
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        title = QLabel("Cut-offs")
        title.setObjectName("muted")
        layout.addWidget(title)
        self.inner = QWidget()
        self.row = QHBoxLayout(self.inner)
        self.row.setContentsMargins(0, 0, 0, 0)
        self.row.setSpacing(6)
        self.row.addStretch(1)
        scroll = QScrollArea()
        scroll.setObjectName("cutoffScroll")
        scroll.setWidget(self.inner)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFixedHeight(34)
        layout.addWidget(scroll, 1)
        self.timer = QTimer(self)
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self.tick)
        self._asked = False

    def set_cutoffs(self, cutoffs: Sequence[Cutoff]) -> None:
        for label in self.labels.values():
            label.deleteLater()
        self.labels = {}
        self.cutoffs = list(cutoffs)
        for c in self.cutoffs:
            label = QLabel()
            label.setObjectName("cutoffChip")
            label.setCursor(Qt.CursorShape.PointingHandCursor)
            label.setToolTip(
                f"{c.name}: instructions for {c.settlement_date:%a %d %b} must reach the CSD by "
                f"{c.cutoff_local:%H:%M} {c.timezone}.\n{c.due:,} open instruction(s) due by then, "
                f"{c.failing:,} failing. Click to show them."
            )
            label.mousePressEvent = lambda _e, mic=c.mic: self.market_clicked.emit(mic)  # type: ignore[method-assign]
            self.row.insertWidget(self.row.count() - 1, label)
            self.labels[c.mic] = label
        self._asked = False
        self.tick()
        if not self.timer.isActive():
            self.timer.start()

    def tick(self) -> None:
        """Recompute every countdown from the clock (no database)."""
        now = self.clock()
        passed = False
        for c in self.cutoffs:
            left = c.at - now
            passed = passed or left.total_seconds() <= 0
            label = self.labels.get(c.mic)
            if label is None:
                continue
            due = f" · {c.due:,} due" if c.due else ""
            label.setText(f"{c.mic} {countdown_text(left)}{due}")
            resources.set_style_property(label, "tone", tone_for(left))
        if passed and not self._asked:
            self._asked = True  # once per set of cut-offs: the next read brings the following ones
            self.expired.emit()

    def text_of(self, mic: str) -> str:
        label = self.labels.get(mic)
        return label.text() if label is not None else ""
