"""The main window: five panes showing real counts, a status bar that says who and where, a layout per user,
panes that follow the change feed, and not one database call on the GUI thread from start to close.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot
from sqlalchemy import event, text

from app import __version__
from app import gui as gui_module
from app.models import Trade
from app.models.enums import ChangeAction, Side, TradeStatus
from app.services import audit, auth, calendar_helper, preferences
from app.services.db import Database
from app.services.permissions import Actor
from app.views.login import LoginDialog
from app.views.main_window import LAYOUT_KEY, MainWindow
from app.views.monitor import ChangeFeed
from app.views.qt_models.blotter_model import StatusRole
from app.views.status_bar import CONNECTED_TEXT
from app.views.tasks import TaskRunner

from .conftest import PASSWORD

sqlite_only = pytest.mark.parametrize("db", ["sqlite"], indirect=True)

PANE_TITLES = ["Trade blotter", "Settlement queue", "Break investigation", "SLA monitors", "Approvals inbox"]

WindowFactory = Callable[[Actor], MainWindow]


@pytest.fixture
def new_window(qtbot: QtBot, db: Database, tasks: TaskRunner) -> Iterator[WindowFactory]:
    """A main window for an actor, not opened yet; every one is closed properly at the end."""
    windows: list[MainWindow] = []

    def factory(actor: Actor) -> MainWindow:
        window = MainWindow(
            db, actor, tasks, monitor_interval_ms=200, monitor_retry_ms=200, feed_interval_ms=100
        )
        # Not qtbot.addWidget: pytest-qt would delete the window while it saves its layout; we close it below.
        windows.append(window)
        return window

    yield factory
    for window in windows:
        close_window(qtbot, window)
        window.deleteLater()


def opened(qtbot: QtBot, window: MainWindow) -> MainWindow:
    """Open the window as run_gui does: its saved layout read and applied, then shown."""
    with qtbot.waitSignal(window.layout_restored, timeout=10_000):
        window.open()
    return window


@pytest.fixture
def open_window(qtbot: QtBot, new_window: WindowFactory) -> WindowFactory:
    """Open a main window for an actor, as run_gui does, and close every window properly at the end."""
    return lambda actor: opened(qtbot, new_window(actor))


def close_window(qtbot: QtBot, window: MainWindow) -> None:
    if window.isVisible():
        with qtbot.waitSignal(window.closed, timeout=10_000):
            window.close()


def wait_loaded(qtbot: QtBot, window: MainWindow, pane_id: str) -> None:
    pane = window.panes[pane_id]
    qtbot.waitUntil(lambda: pane.loaded_at is not None and not pane.loading)


def add_trades(db: Database, actor: Actor, statuses: list[TradeStatus]) -> None:
    """Book trades as another workstation would, and announce them on the change feed."""
    now = dt.datetime.now(dt.UTC)
    with db.write() as s:
        base = s.execute(text("SELECT COUNT(*) FROM trades")).scalar_one()
        for n, status in enumerate(statuses, start=base + 1):
            trade = Trade(
                trade_ref=f"T-{n:06d}",
                source="TEST",
                isin="US0378331005",
                account_code="ACC1",
                counterparty_code="CPTY1",
                side=Side.BUY,
                quantity=Decimal(100),
                price=Decimal("187.5"),
                currency="USD",
                gross_amount=Decimal(18750),
                net_amount=Decimal(18750),
                trade_date=dt.date(2025, 3, 3),
                trade_time=now,
                status=status,
            )
            s.add(trade)
            s.flush()
            audit.publish(s, actor, "trades", trade.id, ChangeAction.INSERT)


def test_the_window_has_the_five_panes_and_the_status_bar_says_who_and_where(
    qtbot: QtBot, db: Database, users: dict[str, Actor], open_window: WindowFactory
) -> None:
    window = open_window(users["supervisor"])
    assert [d.windowTitle() for d in window.docks.values()] == PANE_TITLES
    assert all(
        window.dockWidgetArea(d) == window.dockWidgetArea(window.docks["trade_blotter"])
        for d in window.docks.values()
    )
    assert len(window.tabifiedDockWidgets(window.docks["trade_blotter"])) == 4  # tabbed by default
    bar = window.status
    assert bar.user_label.text() == "supervisor"
    assert bar.role_label.text() == "supervisor"
    assert bar.database_label.toolTip() == db.description
    qtbot.waitUntil(lambda: bar.connection_text == CONNECTED_TEXT)
    assert window.windowTitle().startswith("OpsDesk – supervisor")


@sqlite_only
def test_panes_show_counts_by_status_from_the_database(
    qtbot: QtBot, db: Database, users: dict[str, Actor], open_window: WindowFactory
) -> None:
    add_trades(
        db, users["clerk2"], [TradeStatus.REPAIR] * 3 + [TradeStatus.SETTLED] * 2 + [TradeStatus.FAILED]
    )
    window = open_window(users["clerk1"])
    wait_loaded(qtbot, window, "trade_blotter")
    blotter = window.panes["trade_blotter"]
    qtbot.waitUntil(lambda: blotter.model.count_exact)
    statuses = [blotter.model.data(blotter.model.index(r, 0), StatusRole) for r in range(6)]
    assert blotter.model.rowCount() == 6 and blotter.count_label.text() == "6 trades"
    assert statuses.count("REPAIR") == 3 and statuses.count("SETTLED") == 2
    queue = window.panes["settlement_queue"]
    window.go_to("settlement_queue")
    wait_loaded(qtbot, window, "settlement_queue")
    assert queue.model.rowCount() == 0  # trades not yet instructed: nothing to settle
    # Panes behind other tabs load when brought forward.
    window.go_to("approvals_inbox")
    wait_loaded(qtbot, window, "approvals_inbox")
    assert window.panes["approvals_inbox"].model.total == 0


@sqlite_only
def test_panes_behind_their_tabs_are_built_after_the_first_page_and_load_only_when_brought_forward(
    qtbot: QtBot, users: dict[str, Actor], new_window: WindowFactory
) -> None:
    """Start-up pays for the pane in front only: the others are built once its first page is up, and a built pane
    behind its tab still loads nothing until the clerk brings it forward."""
    window = new_window(users["clerk1"])
    assert window.panes.built() == []  # docks and menus exist; no pane yet
    opened(qtbot, window)
    front = window.panes.peek("trade_blotter")
    assert front is not None and front.parent() is not None
    assert [p.pane_id for p in window.panes.built()] == ["trade_blotter"]
    with qtbot.waitSignal(front.refreshed, timeout=10_000):
        pass
    qtbot.waitUntil(lambda: len(window.panes.built()) == 5)
    behind = [p for p in window.panes.built() if p.pane_id != "trade_blotter"]
    assert all(window.docks[p.pane_id].widget() is p for p in behind)
    assert all(p.loaded_at is None and not p.loading for p in behind)
    window.go_to("sla_monitors")
    wait_loaded(qtbot, window, "sla_monitors")
    assert window.panes["settlement_queue"].loaded_at is None


@sqlite_only
def test_a_saved_layout_with_another_pane_in_front_builds_that_pane_first(
    qtbot: QtBot, users: dict[str, Actor], open_window: WindowFactory
) -> None:
    window = open_window(users["clerk1"])
    window.go_to("break_investigation")
    wait_loaded(qtbot, window, "break_investigation")
    close_window(qtbot, window)  # saves the layout with the breaks in front
    again = open_window(users["clerk1"])
    assert again.panes.peek("break_investigation") is not None
    wait_loaded(qtbot, again, "break_investigation")
    assert again.panes["break_investigation"].on_screen


@sqlite_only
def test_ctrl_number_brings_each_pane_forward(
    qtbot: QtBot, db: Database, users: dict[str, Actor], open_window: WindowFactory
) -> None:
    window = open_window(users["clerk1"])
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    for n, pane_id in enumerate(window.panes, start=1):
        assert window.go_actions[pane_id].shortcut().toString() == f"Ctrl+{n}"
    for pane_id in ["break_investigation", "sla_monitors", "trade_blotter", "approvals_inbox"]:
        n = list(window.panes).index(pane_id) + 1
        qtbot.keyClick(window, Qt.Key(Qt.Key.Key_0.value + n), Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda pid=pane_id: window.panes[pid].on_screen)
        others = [p for pid, p in window.panes.items() if pid != pane_id]
        assert not any(p.on_screen for p in others)


@sqlite_only
def test_each_user_gets_their_own_layout_back(
    qtbot: QtBot, db: Database, users: dict[str, Actor], tasks: TaskRunner, open_window: WindowFactory
) -> None:
    clerk, supervisor = users["clerk1"], users["supervisor"]
    window = open_window(clerk)
    window.docks["approvals_inbox"].close()  # the clerk has no use for the inbox
    window.go_to("settlement_queue")
    close_window(qtbot, window)
    assert window.save_error is None
    saved = preferences.get(db, clerk, LAYOUT_KEY)
    assert set(saved) == {"version", "geometry", "state"}

    other = open_window(supervisor)
    assert other.docks["approvals_inbox"].toggleViewAction().isChecked()
    other.go_to("sla_monitors")
    close_window(qtbot, other)

    again = open_window(clerk)
    assert not again.docks["approvals_inbox"].toggleViewAction().isChecked()
    assert again.panes["settlement_queue"].on_screen
    close_window(qtbot, again)

    theirs = open_window(supervisor)
    assert theirs.docks["approvals_inbox"].toggleViewAction().isChecked()
    assert theirs.panes["sla_monitors"].on_screen


@sqlite_only
def test_reset_layout_brings_every_pane_back_tabbed(
    qtbot: QtBot, db: Database, users: dict[str, Actor], open_window: WindowFactory
) -> None:
    window = open_window(users["clerk1"])
    window.docks["sla_monitors"].close()
    window.docks["break_investigation"].setFloating(True)
    window.reset_layout()
    assert all(d.toggleViewAction().isChecked() and not d.isFloating() for d in window.docks.values())
    assert len(window.tabifiedDockWidgets(window.docks["trade_blotter"])) == 4
    qtbot.waitUntil(lambda: window.panes["trade_blotter"].on_screen)


def test_the_change_feed_reports_what_another_workstation_wrote(
    qtbot: QtBot, db: Database, users: dict[str, Actor], tasks: TaskRunner
) -> None:
    feed = ChangeFeed(db, users["clerk1"], tasks, interval_ms=50)
    feed.start()
    qtbot.waitUntil(lambda: feed.last_id is not None)  # starts at the end of the feed, not at its beginning
    with qtbot.waitSignal(feed.changed, timeout=10_000) as signal:
        auth.create_user(db, users["admin"], "newclerk", "clerk", PASSWORD)
    assert signal.args == [["users"]]
    feed.stop()


@sqlite_only
def test_a_visible_pane_refreshes_when_the_feed_reports_its_items(
    qtbot: QtBot, db: Database, users: dict[str, Actor], open_window: WindowFactory
) -> None:
    window = open_window(users["clerk1"])
    wait_loaded(qtbot, window, "trade_blotter")
    # The feed has marked where it starts following others (its first read runs as the window opens; what was
    # written before it counts as already seen).
    qtbot.waitUntil(lambda: window.feed.last_id is not None)
    blotter = window.panes["trade_blotter"]
    assert blotter.model.rowCount() == 0
    add_trades(db, users["clerk2"], [TradeStatus.REPAIR, TradeStatus.REPAIR])
    qtbot.waitUntil(lambda: blotter.model.rowCount() == 2, timeout=10_000)
    # A pane behind another tab runs no query; it is stale, and loads when brought forward.
    sla = window.panes["sla_monitors"]
    assert sla.loaded_at is None and sla.stale
    window.go_to("sla_monitors")
    wait_loaded(qtbot, window, "sla_monitors")
    qtbot.waitUntil(lambda: sla.evaluation is not None, timeout=10_000)  # its background evaluation follows
    assert (
        sla.evaluation is not None and sla.evaluation.items == 0
    )  # no SLA rules defined yet: nothing to rate


@sqlite_only
def test_about_names_the_version_and_the_database(
    qtbot: QtBot, db: Database, users: dict[str, Actor], open_window: WindowFactory
) -> None:
    window = open_window(users["auditor"])
    about = window.about_text()
    assert __version__ in about and db.description in about and "auditor" in about


@sqlite_only
def test_no_database_call_runs_on_the_gui_thread(
    qtbot: QtBot, db: Database, users: dict[str, Actor], tasks: TaskRunner
) -> None:
    """From opening the database (schema upgrade included) through sign-in, panes and layout, to the close."""
    threads: list[bool] = []
    event.listen(
        db.engine,
        "checkout",
        lambda *_: threads.append(threading.current_thread() is threading.main_thread()),
    )
    dialog = LoginDialog(db, tasks, username="clerk1", password=PASSWORD, auto_submit=True)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.accepted, timeout=10_000):
        dialog.show()
    window = MainWindow(db, dialog.actor, tasks, monitor_interval_ms=100, feed_interval_ms=100)
    with qtbot.waitSignal(window.layout_restored, timeout=10_000):
        window.open()
    for pane_id in window.panes:
        window.go_to(pane_id)
        wait_loaded(qtbot, window, pane_id)
    qtbot.waitUntil(lambda: window.monitor.connected is True and window.feed.last_id is not None)
    close_window(qtbot, window)
    window.deleteLater()
    assert len(threads) > 8
    assert not any(threads), "a database connection was used on the GUI thread"


@pytest.fixture
def sound_binding(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_gui's own flow is under test here; the binding check has its own test (test_gui_tasks)."""
    monkeypatch.setattr(gui_module.qt_check, "refcount_defect", lambda: None)


@sqlite_only
def test_run_gui_signs_in_shows_the_window_and_exits_cleanly(
    qtbot: QtBot, db: Database, users: dict[str, Actor], sound_binding: None
) -> None:
    seen: list[str] = []

    def close_when_shown() -> None:
        for w in QApplication.topLevelWidgets():
            if isinstance(w, MainWindow) and w.isVisible():
                seen.append(w.status.user_label.text())
                # While the GUI runs, a calendar missing from the cache is derived by a helper process ...
                seen.append(str(calendar_helper.derives_in_helper_process()))
                w.close()
                return
        QTimer.singleShot(20, close_when_shown)

    QTimer.singleShot(20, close_when_shown)
    assert gui_module.run_gui(db.url, "clerk1", PASSWORD) == gui_module.EXIT_OK
    assert seen == ["clerk1", "True"]
    assert (
        not calendar_helper.derives_in_helper_process()
    )  # ... and the process gets its own setting back after
    assert preferences.get(db, users["clerk1"], LAYOUT_KEY) is not None


def test_run_gui_exits_3_when_the_schema_is_newer(
    qtbot: QtBot, sqlite_db: Database, monkeypatch: pytest.MonkeyPatch, sound_binding: None
) -> None:
    with sqlite_db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))
    shown: list[str] = []
    monkeypatch.setattr(gui_module, "show_fatal", lambda _parent, _title, message: shown.append(message))
    assert gui_module.run_gui(sqlite_db.url) == gui_module.EXIT_SCHEMA_TOO_NEW
    assert len(shown) == 1 and "newer OpsDesk" in shown[0]


def test_run_gui_refuses_to_start_on_a_defective_qt_binding(
    qtbot: QtBot, sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[str] = []
    monkeypatch.delenv(gui_module.ENV_IGNORE_QT_DEFECT, raising=False)
    monkeypatch.setattr(gui_module.qt_check, "refcount_defect", lambda: "Install PySide6-Essentials 6.11.3.")
    monkeypatch.setattr(gui_module, "show_fatal", lambda _parent, _title, message: shown.append(message))
    assert gui_module.run_gui(sqlite_db.url) == gui_module.EXIT_BROKEN_QT
    assert shown == ["Install PySide6-Essentials 6.11.3."]


@sqlite_only
def test_long_totals_wrap_instead_of_widening_the_window(
    qtbot: QtBot, db: Database, users: dict[str, Actor], open_window: WindowFactory
) -> None:
    """Totals in a dozen currencies (penalties too) once made the queue pane 2,300 px wide, and the window with it."""
    window = open_window(users["clerk1"])
    long_totals = " · ".join(
        f"{c} 1,453,946,086.00 (at stake 1,346,112,224.00)" for c in ["CHF", "EUR", "GBP", "JPY"] * 3
    )
    for pane_id in ["trade_blotter", "settlement_queue", "break_investigation"]:
        window.go_to(pane_id)
        wait_loaded(qtbot, window, pane_id)
        pane = window.panes[pane_id]
        pane.totals_label.setText(long_totals)
        qtbot.wait(50)
        assert pane.minimumSizeHint().width() < 1280, pane_id
        assert window.width() <= 1280, pane_id


def test_the_window_shows_only_once_the_feed_knows_where_it_starts(
    qtbot: QtBot, db: Database, users: dict[str, Actor], tasks: TaskRunner
) -> None:
    """No pane reads its rows before the change feed's first read: a change committed between the two would be
    on neither. The window (and so the front pane's first load) waits for both the layout and that read."""
    window = MainWindow(db, users["clerk1"], tasks)
    qtbot.addWidget(window)
    seen: list[int | None] = []
    window.layout_restored.connect(lambda: seen.append(window.feed.last_id))
    with qtbot.waitSignal(window.layout_restored, timeout=10_000):
        window.open()
    assert seen and seen[0] is not None
    close_window(qtbot, window)
