"""SLA monitors: a tile per SLA, the operations dashboard charts and the health checklist.

Two kinds of background work, both on the task runner (the GUI thread only feeds numbers into widgets built once:
labels re-texted, curves and bars fed with ``setData``/``setOpts``):

- **Refresh** (the pane's ``loader``): ``monitor.read_dashboard`` reads what is stored: the item states the last
  recorded evaluation left (their state now taken from their deadlines), the per-day outcomes, the open breaks'
  ageing, and the slowly changing KPIs this pane measured last (kept in ``self.slow``, shown with their time).
  A few set-based queries: nothing is evaluated, no item is loaded.
- **Evaluation** (its own timer, every ``EVALUATE_MS``, and a few seconds after a change-feed event about trades,
  instructions, breaks or corrections): ``evaluate_all(record=True)`` writes the state changes, the events (the
  alerts every workstation's watcher reads) and the stored states; every ``SLOW_MAX_AGE`` (sooner after a
  business change) it also measures the slow KPIs. When it finishes the pane refreshes from the stored data.

Any count, bar or point drills down to the exact items, opened in their own pane (trade blotter, settlement queue,
breaks, approvals) through ``open_items``; a count's items are read at the moment the count was (the same stored
rows). Supervisors, admins and auditors also see the per-owner workload.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
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
from app.views.tasks import TaskContext, TaskFailure, TaskHandle

REFRESH_MS = 60_000  # deadlines move with the clock: re-read the stored states at least this often
EVALUATE_MS = 60_000  # the background evaluation (records state changes: history, alerts)
EVALUATE_AFTER_CHANGE_MS = 3_000  # a burst of change-feed events becomes one evaluation
SLOW_MAX_AGE = dt.timedelta(minutes=5)  # daily charts, throughput, checklist: measured at most this long ago
SLOW_AFTER_CHANGE = dt.timedelta(minutes=1)  # ... or this long, once the business data changed
BUSINESS_TYPES = frozenset({"trades", "settlement_instructions", "breaks", "corrections"})
STORED_TYPES = frozenset({"sla_events", "sla_definitions"})  # someone recorded or edited: read again
TILE_COLUMNS = 3
STATE_WORDS = {"ON_TRACK": "on track", "AT_RISK": "at risk", "BREACHED": "breached", "": "open"}


class SlaMonitorsPane(Pane):
    pane_id = "sla_monitors"
    title = "SLA monitors"
    subtitle = "Deadlines at risk, attainment and the health of the day"
    icon_name = "sla_monitors"
    entity_types = BUSINESS_TYPES | STORED_TYPES

    #: A background evaluation finished (its refresh follows).
    evaluated = Signal()

    def __init__(
        self,
        workspace: Workspace,
        parent: QWidget | None = None,
        *,
        refresh_ms: int = REFRESH_MS,
        evaluate_ms: int = EVALUATE_MS,
    ) -> None:
        super().__init__(workspace, parent)
        self.evaluation: Any = None  # the last background evaluation (evaluate.Evaluation)
        self.dashboard: Any = None
        self.slow: Any = None  # monitor.SlowKpis: the slowly changing KPIs, measured in the background
        self.tiles: dict[str, Any] = {}
        self.charts: Any = None
        self._audit_item: Any = None
        self._built = False
        self._eval_task: TaskHandle | None = None
        self._eval_due = True  # evaluate once the pane is first on screen
        self._eval_again = False
        self._business_changed = False

        bar = QHBoxLayout()
        self.summary_label = QLabel("")
        self.summary_label.setObjectName("slaSummary")
        bar.addWidget(self.summary_label, 1)
        self.asof_label = QLabel("")
        self.asof_label.setObjectName("muted")
        bar.addWidget(self.asof_label)
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
        self.eval_timer = QTimer(self)
        self.eval_timer.setInterval(evaluate_ms)
        self.eval_timer.timeout.connect(self._eval_tick)
        self.eval_timer.start()
        self.eval_soon = QTimer(self)
        self.eval_soon.setSingleShot(True)
        self.eval_soon.setInterval(EVALUATE_AFTER_CHANGE_MS)
        self.eval_soon.timeout.connect(lambda: self.evaluate_now() if self.on_screen else self._eval_tick())

    # --- building (once, on the first load: keeps pyqtgraph out of start-up) ------------------------------------

    def _build(self) -> None:
        from app.views.qt_models.sla_health_model import SlaHealthModel
        from app.views.sla.charts import DashboardCharts

        heading = QLabel("Operations dashboard")
        heading.setObjectName("slaHeading")
        self.content_layout.addWidget(heading)
        self.charts_asof = QLabel("")
        self.charts_asof.setObjectName("muted")
        self.content_layout.addWidget(self.charts_asof)
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
        for col, width in ((0, 110), (2, 200), (3, 90), (4, 90)):
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
        # Deadlines move with the clock even when nothing changes in the database (and even if no evaluation
        # could run): a read counts the stored deadlines against the clock again.
        if self.evaluating:
            return  # its refresh follows
        if self.on_screen:
            self.refresh()
        else:
            self.stale = True

    def loader(self) -> Callable[[TaskContext], Any]:
        from app.services.sla import monitor

        db, actor, slow = self.ws.db, self.ws.actor, self.slow

        def load(_ctx: TaskContext) -> tuple[Any, Any]:
            return monitor.read_dashboard(db, actor, slow=slow)

        return load

    # --- the background evaluation ------------------------------------------------------------------------------

    def on_changed(self, entity_types: list[str]) -> None:
        types = set(entity_types)
        if types & BUSINESS_TYPES:
            # Items opened, closed or moved: re-evaluate (which records and then refreshes), after the burst.
            self._business_changed = True
            if self.on_screen:
                self.eval_soon.start()
            else:
                self._eval_due = True
                self.stale = True
        if types & STORED_TYPES:
            self.mark_stale()  # another workstation recorded, or an SLA was edited: read what is stored

    def _eval_tick(self) -> None:
        if self.on_screen:
            # On the timer, record only if no workstation did in the last minute (their alert watchers record
            # too); after a business change, always (see on_changed / eval_soon).
            self.evaluate_now(force=self._business_changed)
        else:
            self._eval_due = True  # evaluate when brought forward (alerts are the watcher's: it records too)

    @property
    def evaluating(self) -> bool:
        return self._eval_task is not None

    def evaluate_now(self, *, force: bool = True, measure_slow: bool | None = None) -> None:
        """Record an evaluation in the background (without ``force``: only if nobody recorded one in the last
        ``EVALUATE_MS``), and measure the slow KPIs when due (or as ``measure_slow`` says); then refresh from what
        is stored."""
        from app.services.sla import evaluate, monitor

        if self._eval_task is not None:
            self._eval_again = True
            return
        self._eval_due = False
        db, actor = self.ws.db, self.ws.actor
        age = None if self.slow is None else dt.datetime.now(dt.UTC) - self.slow.as_of
        limit = SLOW_AFTER_CHANGE if self._business_changed else SLOW_MAX_AGE
        measure = (age is None or age >= limit) if measure_slow is None else measure_slow
        self._business_changed = False

        max_age = dt.timedelta(milliseconds=self.eval_timer.interval() * 0.9)

        def work(ctx: TaskContext) -> tuple[Any, Any]:
            if force:
                ev = evaluate.evaluate_all(db, actor, record=True)
            else:
                ev = evaluate.evaluate_if_stale(db, actor, max_age=max_age)  # None: recorded recently
            ctx.check()
            return ev, monitor.slow_kpis(db, actor) if measure else None

        self._eval_task = self.ws.tasks.run(
            work,
            on_done=self._evaluated,
            on_error=self._eval_failed,
            on_cancelled=self._eval_finished,
            label="Evaluating the SLAs",
            quiet=True,
            owner=self,
        )

    def _evaluated(self, result: tuple[Any, Any]) -> None:
        ev, slow = result
        if ev is not None:
            self.evaluation = ev
        if slow is not None:
            self.slow = slow
        self._eval_finished()
        self.evaluated.emit()
        self.mark_stale()  # read what it stored (now, or when next on screen)

    def _eval_failed(self, failure: TaskFailure) -> None:
        # Keep showing the stored states (their time says how old); the next tick tries again.
        self.error_label.setText(f"Could not evaluate the SLAs: {failure.message}")
        self.error_label.show()
        self._eval_finished()

    def _eval_finished(self) -> None:
        self._eval_task = None
        if self._eval_again:
            self._eval_again = False
            self.evaluate_now()

    def present(self, result: Any) -> None:
        if not self._built:
            self._build()
        d, slow = result
        self.dashboard = d
        if self.slow is None or slow.as_of > self.slow.as_of:
            self.slow = slow  # measured by this load (the first, or a new day)
        if self._eval_due and self.on_screen:
            self.evaluate_now()
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
        self._show_times(d)
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
        self.health_model.set_items(health, d.zone)

    def _show_times(self, d: Any) -> None:
        """Say how current each part is: states as recorded, counted by the clock; the slow KPIs' time."""
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(d.zone)
        today = d.at.astimezone(tz).date()

        def clock(t: dt.datetime | None) -> str:
            if t is None:
                return "–"
            local = t.astimezone(tz)
            return f"{local:%H:%M:%S}" if local.date() == today else f"{local:%d %b %H:%M}"

        states = "not evaluated yet" if d.states_as_of is None else f"evaluated {clock(d.states_as_of)}"
        self.asof_label.setText(f"Items {states} · states at {clock(d.at)}")
        tip = "Open items as the last recorded evaluation found them; their state counted at the time shown."
        ev = self.evaluation
        if ev is not None:
            tip += f"\nThis pane's last evaluation: {ev.items:,} open items in {ev.seconds * 1000:.0f} ms."
        self.asof_label.setToolTip(tip)
        self.summary_label.setToolTip(tip)
        self.charts_asof.setText(
            f"Daily charts and throughput measured at {clock(d.kpis_as_of)} (every "
            f"{int(SLOW_MAX_AGE.total_seconds() // 60)} min, sooner after changes) · break ageing and workload "
            f"at {clock(d.at)}"
        )

    # --- drill-down ---------------------------------------------------------------------------------------------

    def drill_tile(self, code: str, state: str) -> None:
        """Open the items behind a count: read off the GUI thread at the moment the count was read."""
        from app.services.sla import monitor

        tile = self.tiles.get(code)
        if tile is None or tile.tile is None or self.dashboard is None:
            return
        t = tile.tile
        title = f"SLA {STATE_WORDS.get(state, state.lower())}: {t.name}"
        self.ws.tasks.call(
            monitor.tile_items,
            self.ws.db,
            self.ws.actor,
            t.sla_id,
            state,
            self.dashboard.at,
            on_done=lambda found: self.open_items.emit(found.pane_id, {"ids": found.ids, "title": title}),
            on_error=self._drill_failed,
            label="Finding the items behind the count",
            owner=self,
        )

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
        if chart == "workload" and self.dashboard is not None and self.dashboard.workload is not None:
            from app.services.sla import monitor

            row = self.dashboard.workload[self.dashboard.workload["owner_id"] == int(key)]
            who = row["username"].iloc[0] if len(row) else "owner"

            def show(found: Any) -> None:
                if found is not None:
                    self.open_items.emit(
                        found.pane_id, {"ids": found.ids, "title": f"At risk or breached: {who}"}
                    )

            self.ws.tasks.call(
                monitor.owner_items,
                self.ws.db,
                self.ws.actor,
                int(key),
                self.dashboard.at,
                on_done=show,
                on_error=self._drill_failed,
                label="Finding the owner's items",
                owner=self,
            )
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
