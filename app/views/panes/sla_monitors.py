"""SLA monitors: a tile per SLA, the operations dashboard charts and the health checklist, refreshed every minute.

Each refresh runs on the task runner: ``evaluate_all`` (records the state changes, so the history and everyone's
alerts move while the pane is open) and ``kpis.dashboard`` (the aggregates); the GUI thread only feeds the numbers
into widgets built once (labels re-texted, curves and bars fed with ``setData``/``setOpts``). Any count, bar or
point drills down to the exact items, opened in their own pane (trade blotter, settlement queue, breaks,
approvals) through ``open_items``. Supervisors, admins and auditors also see the per-owner workload.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.views.panes.base import Pane, Workspace
from app.views.tasks import TaskContext, TaskFailure

REFRESH_MS = 60_000
VERIFY_AUDIT_EVERY = 10  # refreshes between two audit-chain verifications (it reads the whole log)
TILE_COLUMNS = 3
STATE_WORDS = {"ON_TRACK": "on track", "AT_RISK": "at risk", "BREACHED": "breached", "": "open"}


class SlaMonitorsPane(Pane):
    pane_id = "sla_monitors"
    title = "SLA monitors"
    subtitle = "Deadlines at risk, attainment and the health of the day"
    icon_name = "sla_monitors"
    entity_types = frozenset(
        {"trades", "settlement_instructions", "breaks", "corrections", "sla_events", "sla_definitions"}
    )

    def __init__(
        self, workspace: Workspace, parent: QWidget | None = None, *, refresh_ms: int = REFRESH_MS
    ) -> None:
        super().__init__(workspace, parent)
        self.evaluation: Any = None
        self.dashboard: Any = None
        self.tiles: dict[str, Any] = {}
        self.charts: Any = None
        self._refreshes = 0
        self._audit_item: Any = None
        self._built = False

        bar = QHBoxLayout()
        self.summary_label = QLabel("")
        self.summary_label.setObjectName("slaSummary")
        bar.addWidget(self.summary_label, 1)
        self.alerts_button = QPushButton("Alerts…")
        self.alerts_button.setToolTip("Choose which SLAs alert you when your items turn at risk or breached")
        self.alerts_button.clicked.connect(self.edit_alerts)
        bar.addWidget(self.alerts_button)
        self.body.addLayout(bar)

        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.content = QWidget()
        self.content.setObjectName("slaContent")
        self.content_layout = QVBoxLayout(self.content)
        self.content_layout.setContentsMargins(0, 0, 6, 0)
        self.content_layout.setSpacing(12)
        self.tile_grid = QGridLayout()
        self.tile_grid.setSpacing(10)
        self.content_layout.addLayout(self.tile_grid)
        self.scroll.setWidget(self.content)
        self.body.addWidget(self.scroll, 1)

        self.timer = QTimer(self)
        self.timer.setInterval(refresh_ms)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    # --- building (once, on the first load: keeps pyqtgraph out of start-up) ------------------------------------

    def _build(self) -> None:
        from app.views.qt_models.sla_health_model import SlaHealthModel
        from app.views.sla.charts import DashboardCharts

        heading = QLabel("Operations dashboard")
        heading.setObjectName("slaHeading")
        self.content_layout.addWidget(heading)
        self.charts = DashboardCharts()
        self.charts.point_clicked.connect(self._chart_clicked)
        self.content_layout.addWidget(self.charts)
        heading = QLabel("Health checklist")
        heading.setObjectName("slaHeading")
        self.content_layout.addWidget(heading)
        self.health_model = SlaHealthModel(self)
        self.health_view = QTableView()
        self.health_view.setObjectName("slaHealth")
        self.health_view.setModel(self.health_model)
        self.health_view.setAccessibleName("Health checklist")
        self.health_view.verticalHeader().hide()
        self.health_view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.health_view.verticalHeader().setDefaultSectionSize(26)
        self.health_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.health_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.health_view.setAlternatingRowColors(True)
        self.health_view.setShowGrid(False)
        header = self.health_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 110), (2, 200), (3, 90)):
            header.resizeSection(col, width)
        self.health_view.setFixedHeight(26 * 9 + header.sizeHint().height() + 4)
        self.content_layout.addWidget(self.health_view)
        self.health_detail = QLabel("Hover a check for how it is measured.")
        self.health_detail.setObjectName("muted")
        self.health_detail.setWordWrap(True)
        self.health_view.clicked.connect(
            lambda idx: self.health_detail.setText(self.health_model.item(idx.row()).detail)
        )
        self.content_layout.addWidget(self.health_detail)
        self.content_layout.addStretch(1)
        self._built = True
        # Like start-up (app/gui.py): the charts brought pyqtgraph and thousands of long-lived objects; freezing
        # them keeps every later full collection (which holds the GIL) from walking them mid-refresh.
        gc.freeze()

    def _tile(self, code: str) -> Any:
        from app.views.sla.tile import SlaTile

        tile = self.tiles.get(code)
        if tile is None:
            tile = SlaTile(code)
            tile.drill.connect(lambda state, c=code: self.drill_tile(c, state))
            tile.trend_point.connect(lambda day, c=code: self._trend_clicked(c, day))
            n = len(self.tiles)
            self.tile_grid.addWidget(tile, n // TILE_COLUMNS, n % TILE_COLUMNS)
            self.tiles[code] = tile
        return tile

    # --- loading ------------------------------------------------------------------------------------------------

    def _tick(self) -> None:
        # Deadlines move with the clock even when nothing changes in the database.
        if self.on_screen:
            self.refresh()
        else:
            self.stale = True

    def loader(self) -> Callable[[TaskContext], Any]:
        from app.services.sla import evaluate, kpis

        db, actor = self.ws.db, self.ws.actor
        verify = self._refreshes % VERIFY_AUDIT_EVERY == 0
        self._refreshes += 1

        def load(ctx: TaskContext) -> tuple[Any, Any]:
            ev = evaluate.evaluate_all(db, actor, record=True)
            ctx.check()
            return ev, kpis.dashboard(db, actor, ev, verify_audit=verify)

        return load

    def present(self, result: Any) -> None:
        if not self._built:
            self._build()
        ev, d = result
        self.evaluation, self.dashboard = ev, d
        seen = set()
        for t in d.tiles:
            self._tile(t.code).update_tile(t, d.zone)
            self.tiles[t.code].show()
            seen.add(t.code)
        for code, tile in self.tiles.items():
            if code not in seen:
                tile.hide()  # an SLA switched off since the last refresh
        h = d.headline()
        if d.tiles:
            text = (
                f"<b>{h['open_items']:,}</b> open SLA items · <b style='color:#b26a00'>{h['at_risk']:,}</b> at risk · "
                f"<b style='color:#c62828'>{h['breached']:,}</b> breached"
            )
        else:
            text = "No SLA is defined yet: a supervisor creates the defaults (opsdesk sla defaults)."
        if text != self.summary_label.text():
            self.summary_label.setText(text)
        self.summary_label.setToolTip(f"Evaluated {ev.items:,} open items in {ev.seconds * 1000:.0f} ms")
        self.charts.update_charts(d)
        health = list(d.health)
        audit_now = next((x for x in health if x.check == "Audit chain intact"), None)
        if audit_now is not None:
            self._audit_item = audit_now
        elif self._audit_item is not None:
            health.insert(
                next((i for i, x in enumerate(health) if x.area == "Compliance"), len(health)),
                self._audit_item,
            )
        self.health_model.set_items(health)

    # --- drill-down ---------------------------------------------------------------------------------------------

    def drill_tile(self, code: str, state: str) -> None:
        tile = self.tiles.get(code)
        if tile is None or tile.tile is None:
            return
        t = tile.tile
        if state:
            ids = list(t.ids.get(state, []))
        else:
            ids = [i for s in ("BREACHED", "AT_RISK", "ON_TRACK") for i in t.ids.get(s, [])]
        title = f"SLA {STATE_WORDS.get(state, state.lower())}: {t.name}"
        self.open_items.emit(t.pane_id, {"ids": ids, "title": title})

    def _trend_clicked(self, code: str, day: dt.date) -> None:
        tile = self.tiles.get(code)
        if tile is not None and tile.tile is not None:
            self._point("sla_trend", (tile.tile.sla_id, day))

    def _chart_clicked(self, chart: str, key: Any) -> None:
        if chart == "ageing" and self.dashboard is not None:
            label, _n, ids = self.dashboard.ageing[int(key)]
            self.open_items.emit(
                "break_investigation", {"ids": list(ids), "title": f"Open breaks aged {label}"}
            )
            return
        if chart == "workload" and self.evaluation is not None:
            from app.services.sla import kpis

            found = kpis.workload_items(self.evaluation, int(key))
            if found is not None:
                row = self.dashboard.workload[self.dashboard.workload["owner_id"] == int(key)]
                who = row["username"].iloc[0] if len(row) else "owner"
                self.open_items.emit(found[0], {"ids": found[1], "title": f"At risk or breached: {who}"})
            return
        self._point(chart, key)

    def _point(self, chart: str, key: Any) -> None:
        from app.services.sla import kpis

        db, actor = self.ws.db, self.ws.actor
        self.ws.tasks.call(
            kpis.point_items,
            db,
            actor,
            chart,
            key,
            on_done=lambda d: self.open_items.emit(d.pane_id, {"ids": d.ids, "title": d.title}),
            on_error=self._drill_failed,
            label="Finding the items behind the chart",
            owner=self,
        )

    def _drill_failed(self, failure: TaskFailure) -> None:
        self.error_label.setText(f"Could not open those items: {failure.message}")
        self.error_label.show()

    # --- alerts -------------------------------------------------------------------------------------------------

    def edit_alerts(self) -> None:
        from app.views.sla.alert_settings import AlertSettingsDialog

        dialog = AlertSettingsDialog(self.ws.db, self.ws.actor, self.ws.tasks, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
