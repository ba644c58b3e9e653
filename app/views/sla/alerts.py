"""The SLA alert watcher: tells the signed-in user when one of their items (or an unowned one) turns AT_RISK or
BREACHED under an SLA they chose.

Every ``interval_ms`` it runs, on the task runner (quietly: no busy indicator), ``evaluate_if_stale`` (records a
fresh evaluation if nobody did in the last minute, so the history moves even when no SLA pane is open) and then
``new_alerts`` since the last event it saw. It starts from the newest event at sign-in, so old history never
floods a user. Each batch becomes one status-bar message (``message``) and, where the desktop has a system tray,
one tray notification.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import QSystemTrayIcon, QWidget

from app.services.sla import alerts as alert_service
from app.views import resources
from app.views.tasks import TaskFailure, TaskHandle, TaskRunner

if TYPE_CHECKING:
    from app.services.db import Database
    from app.services.permissions import Actor

log = logging.getLogger(__name__)

POLL_MS = 30_000
SHOWN_IN_FULL = 3  # a batch of more alerts than this becomes one summary line


def describe(alerts: list[alert_service.Alert], zone: str) -> str:
    """One line for the status bar: the alert itself, or a summary of a batch."""
    if len(alerts) <= SHOWN_IN_FULL:
        return " ".join(a.text(zone) for a in alerts)
    breached = sum(1 for a in alerts if a.state.value == "BREACHED")
    at_risk = len(alerts) - breached
    parts = []
    if breached:
        parts.append(f"{breached:,} breached")
    if at_risk:
        parts.append(f"{at_risk:,} at risk")
    slas = sorted({a.sla_name for a in alerts})
    more = f" and {len(slas) - 3} more" if len(slas) > 3 else ""
    return f"SLA alerts: {' and '.join(parts)} ({', '.join(slas[:3])}{more}). See the SLA monitors."


class AlertWatcher(QObject):
    #: The text to show in the status bar.
    message = Signal(str)
    #: The alerts of one poll (tests, and a future alert list).
    alerted = Signal(list)

    def __init__(
        self,
        db: Database,
        actor: Actor,
        tasks: TaskRunner,
        *,
        interval_ms: int = POLL_MS,
        evaluate_max_age: dt.timedelta = dt.timedelta(minutes=1),
        tray: bool = True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.db, self.actor, self.tasks = db, actor, tasks
        self.max_age = evaluate_max_age
        self.last_event_id: int | None = None
        self._task: TaskHandle | None = None
        self._tray: QSystemTrayIcon | None = None
        self._want_tray = tray
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.poll)
        # Owned by a window: start when it is first shown (a window built and never shown never polls).
        if isinstance(parent, QWidget):
            parent.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Show and watched is self.parent() and not self.timer.isActive():
            self.start()
        return False

    def start(self) -> None:
        """Start polling (the first poll only takes the newest event as the starting point)."""
        self.timer.start()
        self.poll()

    def stop(self) -> None:
        self.timer.stop()
        if self._task is not None:
            self._task.cancel()

    def poll(self) -> None:
        if self.tasks.closed:
            self.stop()  # the window's runner is gone (window closed): nothing may start any more
            return
        if self._task is not None:
            return  # the last poll is still running (slow link): skip this tick
        db, actor, since, max_age = self.db, self.actor, self.last_event_id, self.max_age

        def work(_ctx: Any) -> tuple[int, list[alert_service.Alert]]:
            if since is None:
                return alert_service.latest_event_id(db, actor), []
            # Imported here, on the worker, from the second poll on: the evaluation brings in pandas and Arrow,
            # which the main window's start does not need (most of a second of it when imported with the window).
            from app.services.sla import evaluate  # noqa: PLC0415

            evaluate.evaluate_if_stale(db, actor, max_age=max_age)
            found = alert_service.new_alerts(db, actor, since)
            newest = max([since, *(a.event_id for a in found)])
            if len(found) >= alert_service.MAX_ALERTS:
                newest = max(newest, alert_service.latest_event_id(db, actor))  # skip the flood, keep up
            return newest, found

        self._task = self.tasks.run(
            work,
            on_done=self._done,
            on_error=self._failed,
            label="Checking SLA alerts",
            quiet=True,
            owner=self,
        )

    def _done(self, result: tuple[int, list[alert_service.Alert]]) -> None:
        self._task = None
        self.last_event_id, found = result
        if not found:
            return
        text = describe(found, self.actor.timezone)
        self.message.emit(text)
        self.alerted.emit(found)
        self._notify(found, text)

    def _failed(self, failure: TaskFailure) -> None:
        # The connection monitor already tells the user about an outage; a watcher must not add dialogs.
        self._task = None
        log.info("SLA alert poll failed: %s", failure.message)

    def _notify(self, found: list[alert_service.Alert], text: str) -> None:
        if not self._want_tray or not QSystemTrayIcon.isSystemTrayAvailable():
            return
        if self._tray is None:
            self._tray = QSystemTrayIcon(resources.icon("sla_monitors"), self)
            self._tray.setToolTip("OpsDesk SLA alerts")
            self._tray.show()
        worst = any(a.state.value == "BREACHED" for a in found)
        icon = QSystemTrayIcon.MessageIcon.Warning if worst else QSystemTrayIcon.MessageIcon.Information
        self._tray.showMessage("OpsDesk – SLA alert", text, icon, 10_000)
