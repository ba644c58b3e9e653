"""Entry point of the desktop application: ``run_gui(db_url)`` opens the database, signs the user in, shows the window.

Exit codes: 0 normal close or log-in cancelled; 2 the database URL cannot be used; 3 the database schema is newer
than this OpsDesk (SchemaTooNew), the same code the CLI uses for it; 4 the installed Qt binding is defective (see
app/views/qt_check.py; OPSDESK_IGNORE_QT_DEFECT=1 starts anyway, for a short demo).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from types import TracebackType

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox, QWidget

from app import __version__
from app.config import APP_NAME
from app.services.calendar_helper import derive_in_helper_process, derives_in_helper_process
from app.services.db import Database
from app.views import qt_check, resources
from app.views.login import LoginDialog
from app.views.tasks import TaskRunner, share_the_gil

log = logging.getLogger("app.gui")

EXIT_OK = 0
EXIT_BAD_URL = 2
EXIT_SCHEMA_TOO_NEW = 3
EXIT_BROKEN_QT = 4
ENV_IGNORE_QT_DEFECT = "OPSDESK_IGNORE_QT_DEFECT"


def show_fatal(parent: QWidget | None, title: str, message: str) -> None:
    """A blocking error box before exit (module-level so tests can replace it)."""
    QMessageBox.critical(parent, title, message)


def _excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    # A bug in a slot must be logged, not kill the workstation with half an edit on screen.
    log.error("unhandled exception in the GUI", exc_info=(kind, value, tb))


def _application() -> QApplication:
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setStyle("Fusion")  # the same look on every platform; the stylesheet is written against it
    app.setStyleSheet(resources.stylesheet())
    app.setWindowIcon(resources.icon("app"))
    return app


def run_gui(db_url: str | None = None, username: str | None = None, password: str | None = None) -> int:
    """Run the workstation until its window closes; returns the process exit code.

    ``username``/``password`` prefill the log-in dialog (for scripts and demos); with both, it signs in by itself.
    """
    started = time.monotonic()
    if not logging.getLogger().handlers:
        # Warnings from libraries (Alembic's INFO lines on every start are noise); our own INFO lines too.
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("app").setLevel(logging.INFO)
    # The GUI thread shares Python's lock with the workers that run every database call: hand it back sooner.
    share_the_gil()
    app = _application()
    defect = qt_check.refcount_defect()
    if defect:
        log.critical(defect)
        if not os.environ.get(ENV_IGNORE_QT_DEFECT):
            show_fatal(None, "OpsDesk cannot start", defect)
            return EXIT_BROKEN_QT
    previous_hook = sys.excepthook
    sys.excepthook = _excepthook
    # Nor may a worker hold it for a calendar derived from scratch (the first start after an install or upgrade).
    helper_before = derives_in_helper_process()
    derive_in_helper_process()
    quit_on_last = app.quitOnLastWindowClosed()
    # The log-in dialog closing must not end the application before the main window exists.
    app.setQuitOnLastWindowClosed(False)
    try:
        try:
            db = Database(db_url)
        except Exception as err:  # a malformed URL: the driver's error names the problem
            show_fatal(None, "OpsDesk", f"OpsDesk cannot use the database address {db_url or ''!r}: {err}")
            return EXIT_BAD_URL
        tasks = TaskRunner()
        try:
            return _run(app, db, tasks, username, password, started)
        finally:
            tasks.shutdown()
            db.dispose()
    finally:
        app.setQuitOnLastWindowClosed(quit_on_last)
        sys.excepthook = previous_hook
        # Process-wide: a caller that runs the GUI again (tests) gets its own setting back.
        derive_in_helper_process(helper_before)


def _import_main_window() -> None:
    import app.views.main_window  # noqa: F401, PLC0415
    import app.views.panes.trade_blotter  # noqa: F401, PLC0415


def _run(
    app: QApplication,
    db: Database,
    tasks: TaskRunner,
    username: str | None,
    password: str | None,
    started: float,
) -> int:
    dialog = LoginDialog(
        db, tasks, username=username or "", password=password or "", auto_submit=bool(username and password)
    )
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
    # The dialog opens the database and checks the password on a worker; the GUI thread waits meanwhile. It imports
    # the main window and its front pane then, so the window follows the log-in sooner (the password hash, most of
    # the check, runs without Python's lock, and a person typing leaves the thread idle for longer still).
    QTimer.singleShot(0, _import_main_window)
    result = dialog.exec()
    if dialog.fatal_message:
        show_fatal(None, "OpsDesk cannot open this database", dialog.fatal_message)
        return EXIT_SCHEMA_TOO_NEW
    if result != QDialog.DialogCode.Accepted or dialog.actor is None:
        return EXIT_OK
    actor = dialog.actor
    dialog.deleteLater()

    # Full garbage collections walk every long-lived object (Qt wrappers, SQLAlchemy, pandas: ~160,000 of them) and
    # hold the GIL 50-75 ms mid-scroll. Freezing what exists after start-up takes those out of every collection.
    gc.freeze()
    from app.views.main_window import MainWindow  # noqa: PLC0415  # imported during the log-in already

    window = MainWindow(db, actor, tasks)
    window.layout_restored.connect(
        lambda: log.info("main window shown %.2f s after run_gui was called", time.monotonic() - started)
    )
    window.closed.connect(app.quit)
    window.open()
    app.exec()
    return EXIT_OK


__all__ = ["EXIT_BAD_URL", "EXIT_BROKEN_QT", "EXIT_OK", "EXIT_SCHEMA_TOO_NEW", "run_gui"]
