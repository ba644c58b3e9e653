"""The dashboard charts (pyqtgraph): settlement fail and STP rates, affirmation, break ageing, throughput, workload.

Each chart and each of its curves or bar sets is created once; a refresh feeds new numbers with ``setData`` /
``setOpts``, never re-plotting (the pane's timer refreshes every minute). Time axes are dates (``DateAxisItem``).
A click on a point or a bar emits ``point_clicked(chart, key)``; the pane turns it into the exact items.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from app.services.sla.kpis import Dashboard

from .dates import day_seconds, seconds_day

RED, GREEN, AMBER, BLUE, GREY = "#c62828", "#2e7d32", "#b26a00", "#1f5fbf", "#9aa5b1"
CHART_HEIGHT = 230
DAY_S = 86_400


def _plot(title: str, *, dates: bool, percent: bool) -> pg.PlotWidget:
    axes = {"bottom": pg.DateAxisItem(orientation="bottom", utcOffset=0)} if dates else {}
    w = pg.PlotWidget(background="w", axisItems=axes, enableMenu=False)
    w.setFixedHeight(CHART_HEIGHT)
    w.setMouseEnabled(False, False)
    w.hideButtons()
    item = w.getPlotItem()
    item.showGrid(x=False, y=True, alpha=0.15)
    item.setTitle(f"<span style='color:#1f2933;font-size:9pt;font-weight:600'>{title}</span>")
    for name in ("left", "bottom"):
        axis = item.getAxis(name)
        axis.setPen(pg.mkPen("#c4cbd3"))
        axis.setTextPen(pg.mkPen("#616e7c"))
    if percent:
        w.setYRange(0, 118, padding=0)  # headroom above 100% for the legend
        item.getAxis("left").setTicks([[(v, str(v)) for v in range(0, 101, 20)]])
    w.addLegend(offset=(-8, 8), labelTextColor="#1f2933", labelTextSize="8pt")
    return w


def _curve(plot: pg.PlotWidget, name: str, colour: str) -> pg.PlotDataItem:
    return plot.plot(
        [],
        [],
        name=name,
        pen=pg.mkPen(colour, width=2),
        symbol="o",
        symbolSize=6,
        symbolBrush=colour,
        symbolPen=None,
    )


def _signature(d: Dashboard) -> tuple[Any, ...]:
    """Everything the charts show, as comparable values."""

    def frame(f: Any) -> Any:
        return f.to_numpy().tobytes() if len(f) else b""

    workload = None if d.workload is None else tuple(d.workload.itertuples(index=False, name=None))
    return (
        frame(d.settlement[["due", "on_time"]]) + str(list(d.settlement["day"])).encode(),
        frame(d.stp[["trades", "stp"]]) + str(list(d.stp["day"])).encode(),
        frame(d.affirmation[["trades", "on_time"]]) + str(list(d.affirmation["day"])).encode(),
        tuple((label, n) for label, n, _ in d.ageing),
        frame(d.throughput),
        workload,
        d.zone,
    )


def nearest(xs: np.ndarray, x: float, tolerance: float) -> int | None:
    """Index of the value in ``xs`` closest to ``x`` if within ``tolerance``."""
    if len(xs) == 0:
        return None
    i = int(np.argmin(np.abs(xs - x)))
    return i if abs(xs[i] - x) <= tolerance else None


class DashboardCharts(QWidget):
    #: (chart, key): settlement/stp/affirmation -> date; ageing -> bucket index; throughput -> (series, hour_s);
    #: workload -> owner id.
    point_clicked = Signal(str, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(10)

        self.settlement = _plot("Settlement fail rate and STP rate by day (%)", dates=True, percent=True)
        self.fail_curve = _curve(self.settlement, "Fail rate", RED)
        self.stp_curve = _curve(self.settlement, "STP rate", GREEN)

        self.affirmation = _plot(
            "Affirmed by the 21:00 ET cut-off, by trade date (%)", dates=True, percent=True
        )
        self.affirm_curve = _curve(self.affirmation, "Affirmed on time", BLUE)
        self.late_curve = _curve(self.affirmation, "Not affirmed / late", AMBER)

        self.ageing = _plot("Open breaks by age (business days)", dates=False, percent=False)
        self.ageing_bars = pg.BarGraphItem(
            x=np.arange(6), height=np.zeros(6), width=0.7, brush=BLUE, pen=None
        )
        self.ageing.addItem(self.ageing_bars)
        self.ageing_labels: list[str] = []

        self.throughput = _plot("Throughput per hour", dates=True, percent=False)
        self.tp_bars: dict[str, pg.BarGraphItem] = {}
        for i, (key, name, colour) in enumerate(
            (
                ("trades", "Trades captured", BLUE),
                ("instructions", "Instructions sent", GREEN),
                ("breaks", "Breaks resolved", AMBER),
            )
        ):
            bars = pg.BarGraphItem(x=[], height=[], width=1000, brush=colour, pen=None, name=name)
            bars.setProperty("offset", (i - 1) * 1100)  # three bars side by side within the hour
            self.throughput.addItem(bars)
            self.tp_bars[key] = bars  # named items join the legend by themselves

        self.workload = _plot("Open SLA items per owner", dates=False, percent=False)
        self.work_risk = pg.BarGraphItem(x=[], height=[], width=0.6, brush=AMBER, pen=None, name="At risk")
        self.work_breached = pg.BarGraphItem(x=[], height=[], width=0.6, brush=RED, pen=None, name="Breached")
        self.workload.addItem(self.work_breached)
        self.workload.addItem(self.work_risk)
        self.workload_owners: list[int] = []
        self.workload_box = QWidget()
        wl = QVBoxLayout(self.workload_box)
        wl.setContentsMargins(0, 0, 0, 0)
        wl.addWidget(self.workload)

        grid.addWidget(self.settlement, 0, 0)
        grid.addWidget(self.affirmation, 0, 1)
        grid.addWidget(self.throughput, 1, 0)
        grid.addWidget(self.ageing, 1, 1)
        grid.addWidget(self.workload_box, 2, 0, 1, 2)
        self.no_workload = QLabel("")
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)

        self._signature: tuple[Any, ...] | None = None
        # Plain data behind the points, for the click handlers.
        self._settle_x = np.zeros(0)
        self._stp_x = np.zeros(0)
        self._affirm_x = np.zeros(0)
        self._tp_x = np.zeros(0)
        for plot, handler in (
            (self.settlement, self._settlement_click),
            (self.affirmation, self._affirmation_click),
            (self.ageing, self._ageing_click),
            (self.throughput, self._throughput_click),
            (self.workload, self._workload_click),
        ):
            plot.scene().sigMouseClicked.connect(lambda ev, p=plot, h=handler: self._clicked(p, h, ev))

    # --- update in place ----------------------------------------------------------------------------------------

    def update_charts(self, d: Dashboard) -> None:
        """Feed new numbers to the charts; a chart whose numbers did not change is not touched (no repaint)."""
        sig = _signature(d)
        if sig == self._signature:
            return
        self._signature = sig
        s = d.settlement
        self._settle_x = np.array([day_seconds(x) for x in s["day"]], dtype=float)
        self.fail_curve.setData(self._settle_x, s["fail_rate"].to_numpy(dtype=float))
        stp = d.stp
        self._stp_x = np.array([day_seconds(x) for x in stp["day"]], dtype=float)
        self.stp_curve.setData(self._stp_x, stp["stp_rate"].to_numpy(dtype=float))
        self._fit_days(self.settlement, np.concatenate([self._settle_x, self._stp_x]))

        af = d.affirmation
        self._affirm_x = np.array([day_seconds(x) for x in af["day"]], dtype=float)
        rate = af["rate"].to_numpy(dtype=float)
        self.affirm_curve.setData(self._affirm_x, rate)
        self.late_curve.setData(self._affirm_x, 100.0 - rate if len(rate) else rate)
        self._fit_days(self.affirmation, self._affirm_x)

        labels = [label for label, _, _ in d.ageing]
        counts = np.array([n for _, n, _ in d.ageing], dtype=float)
        self.ageing_bars.setOpts(x=np.arange(len(counts)), height=counts)
        if labels != self.ageing_labels:
            self.ageing.getPlotItem().getAxis("bottom").setTicks([list(enumerate(labels))])
            self.ageing_labels = labels
        self.ageing.setYRange(0, max(1.0, float(counts.max()) if len(counts) else 1.0) * 1.12, padding=0)
        self.ageing.setXRange(-0.6, len(counts) - 0.4, padding=0)

        tp = d.throughput
        self._tp_x = tp["hour"].to_numpy(dtype=float) + 1800.0
        top = 1.0
        for key, bars in self.tp_bars.items():
            h = tp[key].to_numpy(dtype=float)
            bars.setOpts(x=self._tp_x + bars.property("offset"), height=h, width=1000)
            top = max(top, float(h.max()) if len(h) else 0.0)
        if len(self._tp_x):
            self.throughput.setXRange(
                float(self._tp_x.min()) - 1800, float(self._tp_x.max()) + 1800, padding=0.01
            )
        self.throughput.setYRange(0, top * 1.12, padding=0)
        bottom = self.throughput.getPlotItem().getAxis("bottom")
        if isinstance(bottom, pg.DateAxisItem):
            # Hours in the user's zone on the axis (the offset is the zone's at the end of the window).
            try:
                offset = d.at.astimezone(ZoneInfo(d.zone)).utcoffset()
                bottom.utcOffset = -offset.total_seconds() if offset is not None else 0
            except Exception:
                bottom.utcOffset = 0

        if d.workload is None:
            self.workload_box.hide()
        else:
            self.workload_box.show()
            w = d.workload
            self.workload_owners = [int(o) for o in w["owner_id"]]
            x = np.arange(len(w), dtype=float)
            breached = w["BREACHED"].to_numpy(dtype=float)
            risk = w["AT_RISK"].to_numpy(dtype=float)
            self.work_breached.setOpts(x=x, height=breached, y0=np.zeros(len(w)))
            self.work_risk.setOpts(x=x, height=risk, y0=breached)
            self.workload.getPlotItem().getAxis("bottom").setTicks([list(enumerate(w["username"].tolist()))])
            self.workload.setXRange(-0.6, max(len(w), 6) - 0.4, padding=0)  # bars keep a clerk's width
            self.workload.setYRange(
                0, max(1.0, float((breached + risk).max()) if len(w) else 1.0) * 1.12, padding=0
            )

    @staticmethod
    def _fit_days(plot: pg.PlotWidget, xs: np.ndarray) -> None:
        if len(xs):
            plot.setXRange(float(xs.min()) - DAY_S / 2, float(xs.max()) + DAY_S / 2, padding=0.02)

    # --- clicks -------------------------------------------------------------------------------------------------

    def _clicked(self, plot: pg.PlotWidget, handler: Any, ev: Any) -> None:
        vb = plot.getPlotItem().vb
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        p = vb.mapSceneToView(ev.scenePos())
        handler(float(p.x()), float(p.y()))

    def _settlement_click(self, x: float, y: float) -> None:
        # The nearer curve at that day decides: fail rate (instructions) or STP (trades).
        i = nearest(self._settle_x, x, DAY_S / 2)
        j = nearest(self._stp_x, x, DAY_S / 2)
        if i is None and j is None:
            return
        fail_y = self.fail_curve.yData[i] if i is not None else np.inf
        stp_y = self.stp_curve.yData[j] if j is not None else np.inf
        if abs(fail_y - y) <= abs(stp_y - y):
            self.point_clicked.emit("settlement", seconds_day(self._settle_x[i]))
        else:
            self.point_clicked.emit("stp", seconds_day(self._stp_x[j]))

    def _affirmation_click(self, x: float, _y: float) -> None:
        i = nearest(self._affirm_x, x, DAY_S / 2)
        if i is not None:
            self.point_clicked.emit("affirmation", seconds_day(self._affirm_x[i]))

    def _ageing_click(self, x: float, _y: float) -> None:
        i = int(round(x))
        if 0 <= i < len(self.ageing_labels):
            self.point_clicked.emit("ageing", i)

    def _throughput_click(self, x: float, _y: float) -> None:
        i = nearest(self._tp_x, x, 1800)
        if i is None:
            return
        # Which of the three bars within the hour.
        offset = x - self._tp_x[i]
        key = min(self.tp_bars, key=lambda k: abs(self.tp_bars[k].property("offset") - offset))
        self.point_clicked.emit("throughput", (key, int(self._tp_x[i] - 1800)))

    def _workload_click(self, x: float, _y: float) -> None:
        i = int(round(x))
        if 0 <= i < len(self.workload_owners):
            self.point_clicked.emit("workload", self.workload_owners[i])
