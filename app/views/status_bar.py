"""The main window's status bar: who is signed in, as what, to which database, whether it answers, and what runs.

Left to right on the permanent side: running task (label, progress, cancel) | user and role | database | connection.
The left side keeps QStatusBar's transient messages ("Connection restored", errors of background operations).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QStatusBar, QToolButton, QWidget

from app.views import resources
from app.views.tasks import TaskRunner

if TYPE_CHECKING:
    from app.services.permissions import Actor

# Tasks quicker than this never show the progress bar: a 30 ms refresh must not make the status bar blink.
BUSY_SHOW_DELAY_MS = 300

CONNECTED_TEXT = "Connected"
DISCONNECTED_TEXT = "Disconnected – retrying"
CHECKING_TEXT = "Connecting…"


def _separator() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.VLine)
    line.setStyleSheet("color: #d3d8de;")
    return line


def _icon_label(name: str) -> QLabel:
    label = QLabel()
    label.setPixmap(resources.pixmap(name, 16))
    return label


class OpsStatusBar(QStatusBar):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizeGripEnabled(True)
        self._tasks: TaskRunner | None = None

        # Running task
        self.task_box = QWidget()
        box = QHBoxLayout(self.task_box)
        box.setContentsMargins(0, 0, 4, 0)
        box.setSpacing(6)
        self.task_label = QLabel()
        self.task_label.setObjectName("taskLabel")
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setAccessibleName("Background operation progress")
        self.cancel_button = QToolButton()
        self.cancel_button.setIcon(resources.icon("cancel"))
        self.cancel_button.setToolTip("Cancel the running operation")
        self.cancel_button.setAutoRaise(True)
        box.addWidget(self.task_label)
        box.addWidget(self.progress)
        box.addWidget(self.cancel_button)
        self.task_box.hide()
        self.addPermanentWidget(self.task_box)
        self._show_timer = QTimer(self)
        self._show_timer.setSingleShot(True)
        self._show_timer.timeout.connect(self._show_busy)

        # User and role
        self.addPermanentWidget(_separator())
        self.addPermanentWidget(_icon_label("user"))
        self.user_label = QLabel()
        self.user_label.setObjectName("userLabel")
        self.addPermanentWidget(self.user_label)
        self.role_label = QLabel()
        self.role_label.setObjectName("roleChip")
        self.addPermanentWidget(self.role_label)

        # Database
        self.addPermanentWidget(_separator())
        self.addPermanentWidget(_icon_label("database"))
        self.database_label = QLabel()
        self.database_label.setObjectName("databaseLabel")
        self.addPermanentWidget(self.database_label)

        # Connection
        self.addPermanentWidget(_separator())
        self.connection_dot = QLabel()
        self.connection_dot.setObjectName("connectionDot")
        self.connection_label = QLabel(CHECKING_TEXT)
        self.connection_label.setObjectName("connectionText")
        self.connection_label.setMinimumWidth(
            self.connection_label.fontMetrics().horizontalAdvance(DISCONNECTED_TEXT)
        )
        self.addPermanentWidget(self.connection_dot)
        self.addPermanentWidget(self.connection_label)

    # --- identity -----------------------------------------------------------------------------------------------

    def set_user(self, actor: Actor) -> None:
        self.user_label.setText(actor.username)
        self.role_label.setText(actor.role.value)
        self.role_label.setToolTip(f"Signed in as {actor.username}, role {actor.role.value}")

    def set_database(self, description: str) -> None:
        # Long file paths are shortened in the middle; the tooltip keeps the whole name.
        metrics = self.database_label.fontMetrics()
        self.database_label.setText(metrics.elidedText(description, Qt.TextElideMode.ElideMiddle, 380))
        self.database_label.setToolTip(description)

    # --- connection ---------------------------------------------------------------------------------------------

    def set_connection(self, connected: bool | None, detail: str = "") -> None:
        state = "unknown" if connected is None else ("connected" if connected else "disconnected")
        text = {"unknown": CHECKING_TEXT, "connected": CONNECTED_TEXT, "disconnected": DISCONNECTED_TEXT}[
            state
        ]
        self.connection_label.setText(text)
        tip = detail or text
        self.connection_label.setToolTip(tip)
        self.connection_dot.setToolTip(tip)
        resources.set_style_property(self.connection_dot, "state", state)
        resources.set_style_property(self.connection_label, "state", state)

    @property
    def connection_text(self) -> str:
        return self.connection_label.text()

    # --- background tasks ---------------------------------------------------------------------------------------

    def bind_tasks(self, tasks: TaskRunner) -> None:
        self._tasks = tasks
        tasks.activity_changed.connect(self._on_activity)
        self.cancel_button.clicked.connect(tasks.cancel_latest)

    def _on_activity(self) -> None:
        activity = self._tasks.activity() if self._tasks else None
        if activity is None:
            self._show_timer.stop()
            self.task_box.hide()
            return
        label = activity.label or "Working"
        if activity.running > 1:
            label += f" (+{activity.running - 1} more)"
        if activity.text:
            label += f" – {activity.text}"
        self.task_label.setText(label)
        if activity.total > 0:
            self.progress.setRange(0, activity.total)
            self.progress.setValue(min(activity.done, activity.total))
            self.progress.setToolTip(f"{activity.done:,} of {activity.total:,}")
        else:
            self.progress.setRange(0, 0)  # indeterminate: Qt animates a busy indicator
            self.progress.setToolTip("")
        self.cancel_button.setEnabled(activity.cancellable)
        if not self.task_box.isVisible() and not self._show_timer.isActive():
            self._show_timer.start(BUSY_SHOW_DELAY_MS)

    def _show_busy(self) -> None:
        if self._tasks is not None and self._tasks.activity() is not None:
            self.task_box.show()

    def show_message(self, text: str, timeout_ms: int = 8000) -> None:
        self.showMessage(text, timeout_ms)


__all__ = ["CONNECTED_TEXT", "DISCONNECTED_TEXT", "OpsStatusBar"]
