"""The main window: the five panes as dockable tabs, menus, shortcuts, status bar, and a layout that follows the user.

The layout (window geometry and dock arrangement, base64 of Qt's own saveGeometry/saveState) is stored per user in
the shared database under the preference key ``layout.main``, so it follows a clerk to any workstation. It is read
before the window is first shown (no jump) and written when the window closes; the close waits for that write at
most ``SAVE_TIMEOUT_MS``, so a dead connection never keeps the window open.
"""

from __future__ import annotations

import logging
import platform
from typing import TYPE_CHECKING, Any

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QByteArray, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMessageBox, QTabWidget, QWidget

from app import __version__
from app.services import preferences
from app.services.permissions import Permission
from app.views import resources
from app.views.monitor import ChangeFeed, ConnectionMonitor
from app.views.panes import PANE_BY_ID, PANES, Pane, Workspace
from app.views.panes.lazy import LazyPanes
from app.views.status_bar import OpsStatusBar
from app.views.tasks import TaskFailure, TaskRunner

if TYPE_CHECKING:
    from app.services.db import Database
    from app.services.permissions import Actor

log = logging.getLogger(__name__)

LAYOUT_KEY = "layout.main"
# Bump when the set or names of docks change incompatibly: Qt then ignores an old saved state instead of mangling it.
LAYOUT_VERSION = 1
SAVE_TIMEOUT_MS = 3000
# The panes behind their tabs are built this long after the window shows, or as soon as the first page is up.
PREBUILD_AFTER_MS = 2000
# ... and one after another with this gap, so the GUI thread answers the user in between.
PREBUILD_GAP_MS = 250
DEFAULT_SIZE = QSize(1280, 800)


def _b64(data: QByteArray) -> str:
    return bytes(data.toBase64().data()).decode("ascii")


def _unb64(text: str) -> QByteArray:
    return QByteArray.fromBase64(QByteArray(text.encode("ascii")))


class MainWindow(QMainWindow):
    #: The window has saved its layout and really closed.
    closed = Signal()
    #: The saved layout was read (or there was none) and applied.
    layout_restored = Signal()

    def __init__(
        self,
        db: Database,
        actor: Actor,
        tasks: TaskRunner,
        *,
        monitor_interval_ms: int = 5000,
        monitor_retry_ms: int = 2000,
        feed_interval_ms: int = 3000,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.db = db
        self.actor = actor
        self.tasks = tasks
        self.workspace = Workspace(db=db, actor=actor, tasks=tasks)
        self._close_state = "open"  # open -> saving -> done
        self._save_error: str | None = None
        self._was_disconnected = False

        self.setObjectName("mainWindow")
        self.setWindowTitle(f"OpsDesk – {actor.username} ({actor.role.value}) – {db.description}")
        self.setWindowIcon(resources.icon("app"))
        self.resize(DEFAULT_SIZE)
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks
            | QMainWindow.DockOption.AllowTabbedDocks
            | QMainWindow.DockOption.AllowNestedDocks
        )
        self.setTabPosition(Qt.DockWidgetArea.AllDockWidgetAreas, QTabWidget.TabPosition.North)
        self.setDocumentMode(True)
        # Qt needs a central widget; the panes are all docks, so it stays empty and takes no room.
        central = QWidget()
        central.setMaximumSize(0, 0)
        self.setCentralWidget(central)

        # Every pane has its dock from the start (the layout, the menus and the shortcuts need them all), but a pane
        # is imported and built only when its dock first comes on screen or somebody asks for it; the ones behind
        # their tabs are built one at a time once the first page is up (see _prebuild_next).
        self.panes = LazyPanes([e.pane_id for e in PANES], self._build_pane, self._attach_pane)
        self.docks: dict[str, QDockWidget] = {}
        self._dock_visible: dict[str, bool] = {}
        for entry in PANES:
            dock = QDockWidget(entry.title, self)
            dock.setObjectName(f"dock.{entry.pane_id}")
            dock.setFeatures(
                QDockWidget.DockWidgetFeature.DockWidgetClosable
                | QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            )
            dock.setWindowIcon(resources.icon(entry.icon_name))
            dock.visibilityChanged.connect(lambda visible, pid=entry.pane_id: self._dock_shown(pid, visible))
            self.docks[entry.pane_id] = dock
        self._prebuild = QTimer(self)
        self._prebuild.setSingleShot(True)
        self._prebuild.timeout.connect(self._prebuild_next)
        self._arrange_default()
        self._default_state = self.saveState(LAYOUT_VERSION)

        self.status = OpsStatusBar(self)
        self.setStatusBar(self.status)
        self.status.set_user(actor)
        self.status.set_database(db.description)
        self.status.bind_tasks(tasks)

        self.monitor = ConnectionMonitor(
            db, tasks, interval_ms=monitor_interval_ms, retry_ms=monitor_retry_ms, parent=self
        )
        self.monitor.state_changed.connect(self._on_connection)
        self._opening: set[str] = set()  # what open() still waits for before the window shows
        self._layout_failure: str | None = None
        self.feed = ChangeFeed(
            db, actor, tasks, interval_ms=feed_interval_ms, monitor=self.monitor, parent=self
        )
        tasks.unhandled_error.connect(self._on_unhandled_error)

        # --- SLA alerts (issue 6): polls the user's new AT_RISK/BREACHED items from the first show on ---------------
        from app.views.sla.alerts import AlertWatcher

        self.alert_watcher = AlertWatcher(db, actor, tasks, parent=self)
        self.alert_watcher.message.connect(self.status.show_message)
        # --- end SLA alerts --------------------------------------------------------------------------------------------

        self._build_menus()

    # --- panes, built when first needed ---------------------------------------------------------------------------

    def _build_pane(self, pane_id: str) -> Pane:
        return PANE_BY_ID[pane_id].load()(self.workspace)

    def _attach_pane(self, pane_id: str, pane: Pane) -> None:
        dock = self.docks[pane_id]
        # Off screen until the dock says otherwise (see Pane.on_screen); put in the dock before listening to it, so
        # the first load starts once, below, and not again from the pane's own show event.
        pane.set_on_screen(False)
        dock.setWidget(pane)
        dock.visibilityChanged.connect(pane.set_on_screen)
        self.feed.changed.connect(pane.on_changed)
        pane.open_items.connect(self.open_items)
        pane.refreshed.connect(self._first_page_up)
        # A dock behind another tab still says isVisible(): what counts is what its visibilityChanged said last.
        if self._dock_visible.get(pane_id):
            pane.set_on_screen(True)

    def _dock_shown(self, pane_id: str, visible: bool) -> None:
        self._dock_visible[pane_id] = visible
        if visible and not self.panes.is_built(pane_id):
            self.panes[pane_id]  # noqa: B018  # builds and attaches it, which starts its first load

    def _first_page_up(self) -> None:
        # A pane's load can end before its rows are painted (the blotter's first page follows its count): give the
        # paint a moment before the next pane's import and build take the GUI thread.
        if len(self.panes.built()) < len(self.panes) and (
            not self._prebuild.isActive() or self._prebuild.remainingTime() > PREBUILD_GAP_MS
        ):
            self._prebuild.start(PREBUILD_GAP_MS)

    def _prebuild_next(self) -> None:
        """Build one pane that is still behind its tab, then yield to the event loop before the next one (each takes
        up to a tenth of a second), so a tab switch later finds its pane ready."""
        waiting = [pid for pid in self.panes if not self.panes.is_built(pid)]
        if waiting:
            self.panes[waiting[0]]  # noqa: B018
            if len(waiting) > 1:
                self._prebuild.start(PREBUILD_GAP_MS)

    # --- layout -------------------------------------------------------------------------------------------------

    def _arrange_default(self) -> None:
        docks = [self.docks[e.pane_id] for e in PANES]
        for dock in docks:
            dock.setFloating(False)
            self.addDockWidget(Qt.DockWidgetArea.TopDockWidgetArea, dock)
            dock.show()
        for first, second in zip(docks, docks[1:], strict=False):
            self.tabifyDockWidget(first, second)
        docks[0].raise_()

    def reset_layout(self) -> None:
        """Every pane back, tabbed, trade blotter in front (View > Reset layout)."""
        if not self.restoreState(self._default_state, LAYOUT_VERSION):
            self._arrange_default()
        for dock in self.docks.values():
            dock.show()
        self.docks[PANES[0].pane_id].raise_()
        self.status.show_message("Layout reset.")

    def layout_state(self) -> dict[str, Any]:
        """The layout as JSON-able data (what ``layout.main`` stores)."""
        return {
            "version": LAYOUT_VERSION,
            "geometry": _b64(self.saveGeometry()),
            "state": _b64(self.saveState(LAYOUT_VERSION)),
        }

    def restore_layout(self, layout: object) -> bool:
        """Apply a saved layout; anything unreadable leaves the default arrangement. True if it was applied."""
        if not isinstance(layout, dict) or layout.get("version") != LAYOUT_VERSION:
            return False
        try:
            geometry = _unb64(str(layout.get("geometry", "")))
            state = _unb64(str(layout.get("state", "")))
        except (UnicodeEncodeError, ValueError):
            return False
        applied = True
        if geometry.size():
            applied = self.restoreGeometry(geometry) and applied
        if state.size():
            applied = self.restoreState(state, LAYOUT_VERSION) and applied
        return applied

    def open(self) -> None:
        """Start the change feed and read the user's saved layout at once; once both are done, apply the layout,
        show the window and start the monitor."""
        # The feed's first read marks where this workstation starts following others' changes, and it must end
        # before any pane reads its first rows: a change committed between a pane's read and a later first feed
        # read would be on neither (the pane read before it, the feed started after it). Both reads run side by
        # side (one round trip each over a slow link); the window shows when both are in.
        self._opening = {"layout", "feed"}
        self._layout_failure = None
        self.feed.first_read.connect(lambda: self._opened("feed"), Qt.ConnectionType.SingleShotConnection)
        self.feed.start()
        self.tasks.call(
            preferences.get,
            self.db,
            self.actor,
            LAYOUT_KEY,
            on_done=self._apply_saved_layout,
            on_error=self._layout_unreadable,
            label="Reading your window layout",
            owner=self,
        )

    def _apply_saved_layout(self, layout: object) -> None:
        self.restore_layout(layout)
        self._opened("layout")

    def _layout_unreadable(self, failure: TaskFailure) -> None:
        self._layout_failure = failure.message
        self._opened("layout")

    def _opened(self, part: str) -> None:
        self._opening.discard(part)
        if self._opening:
            return
        self._show_and_start()
        if self._layout_failure is not None:
            self.status.show_message(f"Your saved layout could not be read: {self._layout_failure}")

    def _show_and_start(self) -> None:
        self.show()
        # Whatever the first page does, the panes behind their tabs are built a little later.
        self._prebuild.start(PREBUILD_AFTER_MS)
        self.monitor.start()
        self.layout_restored.emit()

    def current_pane(self) -> Pane | None:
        """The pane in front (the visible one whose dock was raised last)."""
        focus = self.focusWidget()
        for pane_id, dock in self.docks.items():
            if focus is not None and dock.isAncestorOf(focus):
                return self.panes[pane_id]
        on_screen = [p for p in self.panes.built() if p.on_screen]
        return on_screen[0] if on_screen else None

    def go_to(self, pane_id: str) -> None:
        """Bring a pane forward (showing it if it was closed) and put the keyboard in it."""
        dock = self.docks[pane_id]
        dock.show()
        dock.raise_()
        self.panes[pane_id].setFocus(Qt.FocusReason.ShortcutFocusReason)

    def open_items(self, pane_id: str, criteria: dict) -> None:
        """Drill down: bring ``pane_id`` forward filtered to ``criteria`` (see Pane.drill_down)."""
        if pane_id not in self.panes:
            return
        self.go_to(pane_id)
        self.panes[pane_id].drill_down(criteria)

    # --- menus --------------------------------------------------------------------------------------------------

    def _build_menus(self) -> None:
        bar = self.menuBar()

        file_menu = bar.addMenu("&File")
        refresh = QAction(resources.icon("refresh"), "&Refresh", self)
        refresh.setShortcut(QKeySequence(QKeySequence.StandardKey.Refresh))
        refresh.setStatusTip("Reload the panes on screen")
        refresh.triggered.connect(self.refresh_visible)
        file_menu.addAction(refresh)
        file_menu.addSeparator()
        # Trade files in and the blotter's view out; both act on the blotter pane and bring it forward.
        self.import_action = QAction(resources.icon("import"), "&Import trades…", self)
        self.import_action.setShortcut(QKeySequence("Ctrl+I"))
        self.import_action.setStatusTip(
            "Import front-office trade files (CSV, XLSX, FIX log) into the blotter"
        )
        self.import_action.setVisible(self.actor.can(Permission.IMPORT))
        file_menu.addAction(self.import_action)
        export_menu = file_menu.addMenu(resources.icon("export"), "&Export blotter")
        self.export_actions: dict[str, QAction] = {}
        for fmt, text in (("csv", "As &CSV…"), ("xlsx", "As Excel &workbook (XLSX)…")):
            action = export_menu.addAction(text)
            self.export_actions[fmt] = action
        self.import_action.triggered.connect(lambda: self._blotter().ask_import())
        for fmt, action in self.export_actions.items():
            action.triggered.connect(lambda _c=False, f=fmt: self._blotter().ask_export(f))
        file_menu.addSeparator()
        quit_action = QAction(resources.icon("quit"), "&Quit", self)
        quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        view_menu = bar.addMenu("&View")
        self.go_actions: dict[str, QAction] = {}
        for n, entry in enumerate(PANES, start=1):
            action = QAction(resources.icon(entry.icon_name), f"Go to {entry.title}", self)
            action.setShortcut(QKeySequence(f"Ctrl+{n}"))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(lambda _checked=False, pid=entry.pane_id: self.go_to(pid))
            view_menu.addAction(action)
            self.go_actions[entry.pane_id] = action
        view_menu.addSeparator()
        panes_menu = view_menu.addMenu("Show &panes")
        for entry in PANES:
            panes_menu.addAction(self.docks[entry.pane_id].toggleViewAction())
        reset = QAction(resources.icon("reset_layout"), "&Reset layout", self)
        reset.triggered.connect(self.reset_layout)
        view_menu.addAction(reset)

        # --- Operations (settlement and reconciliation processes without a pane of their own) ------------------------
        from app.views.operations.menu import build_operations_menu

        self.operations_menu, self.operations_actions = build_operations_menu(self)
        # --- end Operations ---------------------------------------------------------------------------------------------

        help_menu = bar.addMenu("&Help")
        about = QAction(resources.icon("about"), "&About OpsDesk", self)
        about.setMenuRole(QAction.MenuRole.AboutRole)
        about.triggered.connect(self.show_about)
        help_menu.addAction(about)

    def _blotter(self) -> Any:
        """The trade blotter, brought forward (the File menu's import and export act on it)."""
        self.go_to("trade_blotter")
        return self.panes["trade_blotter"]

    def refresh_visible(self) -> None:
        for pane in self.panes.built():
            pane.mark_stale()

    def about_text(self) -> str:
        return (
            f"<h3>OpsDesk {__version__}</h3>"
            "<p>Back-office operations workstation: trades, settlement, reconciliation breaks, "
            "corrections and SLAs.</p>"
            f"<p><b>Database:</b> {self.db.description}<br>"
            f"<b>Signed in as:</b> {self.actor.username} ({self.actor.role.value})<br>"
            f"<b>Qt:</b> PySide6 {pyside_version}, <b>Python:</b> {platform.python_version()}</p>"
        )

    def show_about(self) -> None:
        QMessageBox.about(self, "About OpsDesk", self.about_text())

    # --- connection and errors ----------------------------------------------------------------------------------

    def _on_connection(self, connected: bool) -> None:
        self.status.set_connection(connected, self.monitor.detail)
        if not connected:
            self._was_disconnected = True
            # The full reason is on the connection indicator's tooltip; the message says what it means for work.
            self.status.show_message(
                "The database cannot be reached: nothing can be loaded or saved until it is back.", 0
            )
            return
        if self._was_disconnected:
            # Back after a drop: say so, and reload whatever failed while the link was down.
            self._was_disconnected = False
            self.status.show_message("Connection to the database restored.")
            for pane in self.panes.built():
                if pane.error_label.isVisible() or (pane.stale and not pane.loading):
                    pane.mark_stale()

    def _on_unhandled_error(self, label: str, message: str) -> None:
        self.status.show_message(message, 15000)
        box = QMessageBox(QMessageBox.Icon.Warning, "OpsDesk", message, QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()  # not exec(): a background error must not start a nested event loop

    # --- closing ------------------------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._close_state == "done":
            self.monitor.stop()
            self.feed.stop()
            self.alert_watcher.stop()
            event.accept()
            self.closed.emit()
            return
        event.ignore()
        if self._close_state == "saving":
            return
        self._close_state = "saving"
        self.monitor.stop()
        self.feed.stop()
        self.alert_watcher.stop()
        self.status.show_message("Saving your layout…", 0)
        self.tasks.call(
            preferences.put,
            self.db,
            self.actor,
            LAYOUT_KEY,
            self.layout_state(),
            on_done=lambda _r: self._finish_close(),
            on_error=self._save_failed,
            on_cancelled=self._finish_close,
            label="Saving your window layout",
            priority=20,
            owner=self,
        )
        QTimer.singleShot(SAVE_TIMEOUT_MS, self, self._finish_close)

    def _save_failed(self, failure: TaskFailure) -> None:
        # Not worth keeping a clerk from closing: the layout is a convenience. Logged for support.
        log.warning("window layout not saved for %s: %s", self.actor.username, failure.message)
        self._save_error = failure.message
        self._finish_close()

    def _finish_close(self) -> None:
        if self._close_state == "done":
            return
        self._close_state = "done"
        self.close()

    @property
    def save_error(self) -> str | None:
        """Why the layout could not be saved at the last close, if it could not."""
        return self._save_error
