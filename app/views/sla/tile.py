"""One SLA tile: open items by state (each count a drill-down), attainment today and over the window, a trend line.

The tile is built once per SLA and updated in place on every refresh (labels re-texted, the trend curve fed with
``setData``); a click on a count opens exactly those items, a click on a trend point opens the items that breached
that day.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from app.services.sla.kpis import Tile, fmt_pct
from app.views import resources

from .dates import day_seconds

STATE_WORDS = (
    ("ON_TRACK", "on track", "ok"),
    ("AT_RISK", "at risk", "warn"),
    ("BREACHED", "breached", "bad"),
)
TREND_HEIGHT = 46


class SlaTile(QFrame):
    #: A count was clicked: the state ("" for every open item).
    drill = Signal(str)
    #: A trend point was clicked: the business date.
    trend_point = Signal(object)

    def __init__(self, code: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.code = code
        self.tile: Tile | None = None
        self.setObjectName("slaTile")
        self.setProperty("tone", "neutral")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(250)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(4)

        top = QHBoxLayout()
        self.name_label = QLabel(code)
        self.name_label.setObjectName("slaTileName")
        top.addWidget(self.name_label, 1)
        self.open_button = QPushButton("–")
        self.open_button.setObjectName("slaTileOpen")
        self.open_button.setFlat(True)
        self.open_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.open_button.clicked.connect(lambda: self.drill.emit(""))
        top.addWidget(self.open_button)
        layout.addLayout(top)

        counts = QHBoxLayout()
        counts.setSpacing(6)
        self.count_buttons: dict[str, QPushButton] = {}
        for state, words, tone in STATE_WORDS:
            b = QPushButton(f"0 {words}")
            b.setObjectName("slaCount")
            b.setProperty("tone", tone)
            b.setProperty("empty", True)
            b.setCursor(Qt.CursorShape.PointingHandCursor)
            b.setToolTip(f"Open the items {words}")
            b.setAccessibleName(f"{code} {words}")
            b.clicked.connect(lambda _c=False, s=state: self.drill.emit(s))
            self.count_buttons[state] = b
            counts.addWidget(b)
        counts.addStretch(1)
        layout.addLayout(counts)

        self.attainment_label = QLabel("Today – · 30 d –")
        self.attainment_label.setObjectName("slaTileAttainment")
        layout.addWidget(self.attainment_label)

        self.trend = pg.PlotWidget(background="#ffffff", enableMenu=False)
        self.trend.setObjectName("slaTrend")
        self.trend.setFixedHeight(TREND_HEIGHT)
        self.trend.hideAxis("left")
        self.trend.hideAxis("bottom")
        self.trend.setMouseEnabled(False, False)
        self.trend.hideButtons()
        self.trend.getPlotItem().setContentsMargins(0, 2, 0, 2)
        self.trend.setYRange(0, 100, padding=0.08)
        self.trend.setToolTip("Attainment per day; click a point to open the items that breached that day")
        self.curve = self.trend.plot(
            [],
            [],
            pen=pg.mkPen("#1f5fbf", width=1.6),
            symbol="o",
            symbolSize=5,
            symbolBrush="#1f5fbf",
            symbolPen=None,
        )
        self.curve.sigPointsClicked.connect(self._point_clicked)
        layout.addWidget(self.trend)
        self.next_label = QLabel("")
        self.next_label.setObjectName("muted")
        layout.addWidget(self.next_label)

    # --- update in place ----------------------------------------------------------------------------------------

    def update_tile(self, tile: Tile, zone: str) -> None:
        if tile == self.tile:
            return  # unchanged since the last refresh: nothing to repaint (most minute-timer refreshes)
        self.tile = tile
        self.name_label.setText(tile.name)
        self.setToolTip(
            f"<b>{tile.name}</b> ({tile.code})<br>{tile.description}<br><i>Rule:</i> {tile.rule_text}"
            f"<br><i>At risk:</i> within {tile.warning_minutes} min of the deadline"
        )
        self.open_button.setText(f"{tile.open:,} open")
        self.open_button.setToolTip(f"Open all {tile.open:,} open items of this SLA")
        for state, words, _tone in STATE_WORDS:
            n = tile.counts.get(state, 0)
            b = self.count_buttons[state]
            b.setText(f"{n:,} {words}")
            resources.set_style_property(b, "empty", n == 0)
            b.setEnabled(n > 0)
        tone = "bad" if tile.counts.get("BREACHED") else ("warn" if tile.counts.get("AT_RISK") else "ok")
        resources.set_style_property(self, "tone", tone if tile.open else "neutral")
        self.attainment_label.setText(
            f"Attainment today <b>{fmt_pct(tile.attainment_today)}</b> · {len(tile.trend)} d "
            f"<b>{fmt_pct(tile.attainment_window)}</b>"
        )
        xs, ys = self.trend_data(tile)
        self.curve.setData(xs, ys)
        if len(xs):
            self.trend.setXRange(float(xs.min()) - 43_200, float(xs.max()) + 43_200, padding=0)
        if tile.next_due is not None:
            from zoneinfo import ZoneInfo

            local = tile.next_due.astimezone(ZoneInfo(zone))
            self.next_label.setText(f"Next deadline {local:%a %d %b %H:%M}")
        else:
            self.next_label.setText("No deadline ahead")

    @staticmethod
    def trend_data(tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        pts = [(day_seconds(d), v) for d, v in tile.trend if v is not None]
        if not pts:
            return np.zeros(0), np.zeros(0)
        arr = np.array(pts, dtype=float)
        return arr[:, 0], arr[:, 1]

    def _point_clicked(self, _item: Any, points: Any, *_args: Any) -> None:
        if len(points):
            x = float(points[0].pos().x())
            self.trend_point.emit(dt.datetime.fromtimestamp(x, dt.UTC).date())

    def count_text(self, state: str) -> str:
        return self.count_buttons[state].text()
