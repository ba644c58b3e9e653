"""Two timers every workstation runs: is the database there (connection monitor), and what did others change (feed).

Both do their database work through the TaskRunner as quiet tasks, so the busy indicator does not flicker every few
seconds and the GUI thread never waits on the network. Remote staff on a VPN are the reason for both: the link drops,
the status bar must say so at once, and the workstation must pick up where it left off when the link is back.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal

from app.services import changes

from .tasks import TaskFailure, TaskHandle, TaskRunner

if TYPE_CHECKING:
    from app.services.db import Database
    from app.services.permissions import Actor


class ConnectionMonitor(QObject):
    """Pings the database every ``interval_ms`` (``retry_ms`` while disconnected) and reports the state.

    ``connected`` is None until the first answer. Any task failing with DatabaseUnavailable flips the state to
    disconnected at once; only a successful ping flips it back.
    """

    #: The state changed: True connected, False disconnected.
    state_changed = Signal(bool)

    def __init__(
        self,
        db: Database,
        tasks: TaskRunner,
        *,
        interval_ms: int = 5000,
        retry_ms: int = 2000,
        answer_timeout_ms: int = 8000,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._db = db
        self._tasks = tasks
        self.interval_ms = interval_ms
        self.retry_ms = retry_ms
        self.answer_timeout_ms = answer_timeout_ms
        self.connected: bool | None = None
        self.detail = ""
        self._in_flight: TaskHandle | None = None
        self._started_at = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.check_now)
        # A ping over a half-open VPN link can hang until TCP gives up; after answer_timeout_ms without an answer
        # the database counts as unreachable even though the ping has not returned yet.
        self._watchdog = QTimer(self)
        self._watchdog.setSingleShot(True)
        self._watchdog.timeout.connect(self._no_answer)
        tasks.database_unavailable.connect(self._on_unavailable)

    def start(self) -> None:
        """Ping now, then keep pinging."""
        self.check_now()

    def stop(self) -> None:
        self._timer.stop()
        self._watchdog.stop()
        if self._in_flight is not None:
            self._in_flight.cancel()
            self._in_flight = None

    def check_now(self) -> None:
        """Ping at once (unless a ping is already on its way)."""
        self._timer.stop()
        if self._in_flight is not None:
            return
        self._started_at = time.monotonic()
        self._in_flight = self._tasks.run(
            _ping,
            self._db,
            on_done=self._on_ping,
            on_error=self._on_ping_error,
            on_cancelled=self._on_ping_cancelled,
            label="Checking the database connection",
            quiet=True,
            priority=10,  # ahead of queued pane refreshes: the state must stay current when the pool is busy
            owner=self,
        )
        self._watchdog.start(self.answer_timeout_ms)

    def _on_ping(self, ok: object) -> None:
        self._in_flight = None
        self._watchdog.stop()
        if ok:
            self._set_state(True, "")
        else:
            self._set_state(False, f"The database {self._db.description} does not answer.")
        self._schedule()

    def _on_ping_error(self, failure: TaskFailure) -> None:
        self._in_flight = None
        self._watchdog.stop()
        self._set_state(False, failure.message)
        self._schedule()

    def _on_ping_cancelled(self) -> None:
        self._in_flight = None

    def _no_answer(self) -> None:
        seconds = self.answer_timeout_ms / 1000
        self._set_state(False, f"The database {self._db.description} did not answer within {seconds:g} s.")

    def _on_unavailable(self, message: str) -> None:
        self._set_state(False, message)
        self._schedule()

    def _schedule(self) -> None:
        if self._in_flight is None:
            self._timer.start(self.interval_ms if self.connected else self.retry_ms)

    def _set_state(self, connected: bool, detail: str) -> None:
        self.detail = detail
        if connected != self.connected:
            self.connected = connected
            self.state_changed.emit(connected)


def _ping(_ctx: object, db: Database) -> bool:
    return db.ping()


class ChangeFeed(QObject):
    """Polls the change feed and emits ``changed`` with the entity types others (or we) changed since last time.

    Panes connect to ``changed`` and refresh when one of their entity types is in the list. While the connection
    monitor says the database is gone the feed stays quiet, and it polls at once when the connection comes back, so
    nothing that changed meanwhile is missed (the feed is read from the last id seen, not from "now").
    """

    #: Sorted, distinct entity types that changed (e.g. ["breaks", "user"]).
    changed = Signal(list)
    #: The first read ended (the starting point is known, or the database could not be read): once.
    first_read = Signal()

    def __init__(
        self,
        db: Database,
        actor: Actor,
        tasks: TaskRunner,
        *,
        interval_ms: int = 3000,
        batch: int = 1000,
        monitor: ConnectionMonitor | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._db = db
        self._actor = actor
        self._tasks = tasks
        self.interval_ms = interval_ms
        self.batch = batch
        self.last_id: int | None = None
        self._monitor = monitor
        self._in_flight: TaskHandle | None = None
        self._first_done = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.poll_now)
        if monitor is not None:
            monitor.state_changed.connect(self._on_connection)

    def start(self) -> None:
        """Remember where the feed is now (older changes are already on screen), then poll every interval."""
        self.poll_now()

    def stop(self) -> None:
        self._timer.stop()
        if self._in_flight is not None:
            self._in_flight.cancel()
            self._in_flight = None

    def poll_now(self) -> None:
        self._timer.stop()
        if self._in_flight is not None:
            return
        if self._monitor is not None and self._monitor.connected is False:
            self._timer.start(self.interval_ms)
            return
        self._in_flight = self._tasks.run(
            _read_feed,
            self._db,
            self._actor,
            self.last_id,
            self.batch,
            on_done=self._on_read,
            on_error=self._on_error,
            on_cancelled=self._on_cancelled,
            label="Reading the change feed",
            quiet=True,
            owner=self,
        )

    def _first_read_ended(self) -> None:
        if not self._first_done:
            self._first_done = True
            self.first_read.emit()

    def _on_read(self, result: object) -> None:
        self._in_flight = None
        assert isinstance(result, tuple)
        last_id, types, more = result
        self.last_id = last_id
        self._first_read_ended()
        if types:
            self.changed.emit(types)
        if more:
            self.poll_now()  # a burst (an import) filled the batch: read the rest now, not an interval later
        else:
            self._timer.start(self.interval_ms)

    def _on_error(self, _failure: TaskFailure) -> None:
        # DatabaseUnavailable has already reached the monitor through the runner; anything else is logged there.
        self._in_flight = None
        self._timer.start(self.interval_ms)
        self._first_read_ended()

    def _on_cancelled(self) -> None:
        self._in_flight = None
        self._first_read_ended()

    def _on_connection(self, connected: bool) -> None:
        if connected:
            self.poll_now()


def _read_feed(
    ctx: object, db: Database, actor: Actor, last_id: int | None, batch: int
) -> tuple[int, list[str], bool]:
    """(new last id, entity types changed, whether more may be waiting). First call: start at the feed's end."""
    if last_id is None:
        return changes.latest_id(db, actor), [], False
    rows = changes.since(db, actor, last_id, limit=batch)
    if not rows:
        return last_id, [], False
    return rows[-1].id, sorted({r.entity_type for r in rows}), len(rows) >= batch
