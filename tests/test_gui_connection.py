"""A dropped connection is shown, operations fail with a clear sentence, and the workstation recovers by itself.

The workstation talks to the test PostgreSQL server through a small TCP forwarder on 127.0.0.1 that the test stops
and starts: stopping it drops every open link and refuses new ones, as a VPN that goes down does.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy.engine import make_url

from app.models.enums import Role
from app.services import auth
from app.services.db import Database
from app.services.permissions import SYSTEM, Actor
from app.views.main_window import MainWindow
from app.views.monitor import ConnectionMonitor
from app.views.status_bar import CONNECTED_TEXT, DISCONNECTED_TEXT
from app.views.tasks import TaskRunner

from .conftest import PASSWORD


class TcpForwarder:
    """Forwards 127.0.0.1:<port> to 127.0.0.1:<target>; ``stop`` drops the listener and every open link."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._listener: socket.socket | None = None
        self._links: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))  # the same port again after a stop
        listener.listen(32)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone does not on Linux.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            links, self._links = self._links, set()
        for s in links:
            _drop(s)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._links |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _drop(src)
            _drop(dst)


def _drop(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


@pytest.fixture
def forwarder(pg_db: Database) -> Iterator[TcpForwarder]:
    fwd = TcpForwarder(make_url(pg_db.url).port or 5432)
    fwd.start()
    yield fwd
    fwd.stop()


@pytest.fixture
def remote_db(pg_db: Database, forwarder: TcpForwarder) -> Iterator[Database]:
    """The same database as pg_db, reached through the forwarder (the VPN)."""
    url = make_url(pg_db.url).set(port=forwarder.port).render_as_string(hide_password=False)
    db = Database(url, connect_timeout=2)
    yield db
    db.dispose()


@pytest.fixture
def clerk(pg_db: Database) -> Actor:
    return auth.create_user(pg_db, SYSTEM, "clerk1", Role.CLERK, PASSWORD)


def _open(qtbot: QtBot, db: Database, actor: Actor, tasks: TaskRunner, **intervals: int) -> MainWindow:
    window = MainWindow(db, actor, tasks, **intervals)
    with qtbot.waitSignal(window.layout_restored, timeout=10_000):
        window.open()
    qtbot.waitUntil(lambda: window.status.connection_text == CONNECTED_TEXT)
    return window


def _close(qtbot: QtBot, window: MainWindow) -> None:
    with qtbot.waitSignal(window.closed, timeout=10_000):
        window.close()
    window.deleteLater()


def test_the_status_bar_shows_a_dropped_connection_and_recovers_by_itself(
    qtbot: QtBot, remote_db: Database, forwarder: TcpForwarder, clerk: Actor, tasks: TaskRunner
) -> None:
    window = _open(
        qtbot, remote_db, clerk, tasks, monitor_interval_ms=100, monitor_retry_ms=100, feed_interval_ms=100
    )
    blotter = window.panes["trade_blotter"]
    qtbot.waitUntil(lambda: blotter.loaded_at is not None)
    assert window.status.connection_dot.property("state") == "connected"

    forwarder.stop()
    qtbot.waitUntil(lambda: window.status.connection_text == DISCONNECTED_TEXT, timeout=10_000)
    assert window.status.connection_dot.property("state") == "disconnected"

    # What the clerk does meanwhile fails with a sentence, not a stack trace, and changes nothing.
    blotter.refresh()
    qtbot.waitUntil(blotter.error_label.isVisible, timeout=10_000)
    assert "database" in blotter.error_label.text() and "Nothing was changed" in blotter.error_label.text()

    forwarder.start()
    qtbot.waitUntil(lambda: window.status.connection_text == CONNECTED_TEXT, timeout=10_000)
    # The pane that failed is reloaded by itself once the link is back.
    qtbot.waitUntil(lambda: not blotter.error_label.isVisible(), timeout=10_000)
    assert window.status.currentMessage() == "Connection to the database restored."
    _close(qtbot, window)
    assert window.save_error is None


def test_a_task_that_finds_the_database_gone_flips_the_state_at_once(
    qtbot: QtBot, remote_db: Database, forwarder: TcpForwarder, clerk: Actor, tasks: TaskRunner
) -> None:
    # The monitor would not ping again for a minute: only the failing task can tell it.
    monitor = ConnectionMonitor(remote_db, tasks, interval_ms=60_000, retry_ms=100)
    monitor.start()
    qtbot.waitUntil(lambda: monitor.connected is True)
    forwarder.stop()
    with qtbot.waitSignal(monitor.state_changed, timeout=10_000) as signal:
        tasks.call(auth.has_users, remote_db, on_error=lambda _f: None, label="Checking users")
    assert signal.args == [False]
    assert "cannot be reached" in monitor.detail or "lost" in monitor.detail
    forwarder.start()
    with qtbot.waitSignal(monitor.state_changed, timeout=10_000) as signal:
        pass
    assert signal.args == [True]
    monitor.stop()
