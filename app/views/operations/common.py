"""What every Operations dialog shares: inputs, a Run button, progress, the result, and the refusal when there is one.

:class:`OperationDialog` is the frame: a title and a line saying what the process does, the dialog's own inputs (a
form), then a progress bar while the service runs on the TaskRunner (with Cancel where the work stops between
files: the imports), and at the end a summary (rich text) with result tables under it. A service that refuses (no permission, a bad file, a stale edit) shows its
own sentence in a red notice and leaves the inputs as they were, so the user can correct and run again.

Actions the signed-in user's role may not do are disabled with a tooltip saying who may (:func:`who_may`), both in
the menu and on the dialog's Run button: the service would refuse them anyway, but a clerk should not have to try.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QDate, QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QColor, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDateEdit,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.services.permissions import GRANTS, Permission
from app.views.tasks import TaskFailure, TaskHandle

if TYPE_CHECKING:
    import datetime as dt

    from app.services.permissions import Actor
    from app.views.panes.base import Workspace

ROW_HEIGHT = 22
BAD = QColor("#fde8e8")
WARN = QColor("#fff4de")
MAX_ROWS = 2000  # a result table shows at most this many lines (the rest is counted, and in the CLI's --json)


def who_may(permission: Permission, actor: Actor | None = None) -> str:
    """The tooltip of an action the user may not do: which roles may."""
    roles = " or ".join(sorted(r.value for r in GRANTS[permission]))
    you = f" (you are {actor.role.value})" if actor is not None else ""
    what = permission.value[:1].upper() + permission.value[1:]
    return f"{what} needs the role {roles}{you}."


def guard(action: QAction | QPushButton, actor: Actor, permission: Permission, tip: str) -> bool:
    """Enable ``action`` with ``tip`` when ``actor`` may, else disable it with who may. True when allowed."""
    allowed = actor.can(permission)
    action.setEnabled(allowed)
    action.setToolTip(tip if allowed else who_may(permission, actor))
    return allowed


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


class ResultTable(QTableWidget):
    """A compact read-only table for a result (a few hundred rows at most: no model of its own needed)."""

    def __init__(self, headers: list[str], parent: QWidget | None = None) -> None:
        super().__init__(0, len(headers), parent)
        self.setHorizontalHeaderLabels(headers)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.setShowGrid(False)
        self.verticalHeader().hide()
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        header = self.horizontalHeader()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)

    def fill(self, rows: list[list[Any]], tints: list[QColor | None] | None = None) -> None:
        rows = rows[:MAX_ROWS]
        self.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                text = "" if value is None else str(value)
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if tints and r < len(tints) and tints[r] is not None:
                    item.setBackground(tints[r])
                self.setItem(r, c, item)
        self.resizeColumnsToContents()
        for c in range(self.columnCount() - 1):
            self.setColumnWidth(c, min(self.columnWidth(c) + 12, 360))

    def texts(self) -> list[list[str]]:
        """Every cell's text, row by row (tests and copy)."""
        return [
            [self.item(r, c).text() if self.item(r, c) else "" for c in range(self.columnCount())]
            for r in range(self.rowCount())
        ]

    def fit_height(self, rows: int, most: int = 8) -> None:
        """As tall as ``rows`` rows (at most ``most``; a scroll bar beyond)."""
        header = max(self.horizontalHeader().sizeHint().height(), ROW_HEIGHT + 6)
        height = header + 8 + ROW_HEIGHT * max(1, min(rows, most))
        self.setMinimumHeight(height)
        self.setMaximumHeight(height)


class OptionalDate(QWidget):
    """A date with a checkbox in front: unticked means "not given" (the service then takes its default)."""

    def __init__(self, label: str, *, checked: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.check = QCheckBox(label)
        self.check.setChecked(checked)
        self.edit = QDateEdit(QDate.currentDate())
        self.edit.setCalendarPopup(True)
        self.edit.setDisplayFormat("yyyy-MM-dd")
        self.edit.setEnabled(checked)
        self.check.toggled.connect(self.edit.setEnabled)
        row.addWidget(self.check)
        row.addWidget(self.edit)
        row.addStretch(1)

    def value(self) -> dt.date | None:
        return self.edit.date().toPython() if self.check.isChecked() else None  # type: ignore[no-any-return]

    def set_value(self, day: dt.date | None) -> None:
        self.check.setChecked(day is not None)
        if day is not None:
            self.edit.setDate(QDate(day.year, day.month, day.day))


def dropped_files(event: QDragEnterEvent | QDropEvent) -> list[str]:
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile() and Path(u.toLocalFile()).is_file()]


class FileDropFilter(QObject):
    """Event filter: local files dragged onto the watched widget are accepted and handed to ``on_files``."""

    def __init__(self, on_files: Callable[[list[str]], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._on_files = on_files

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            assert isinstance(event, QDragEnterEvent | QDropEvent)
            if dropped_files(event):
                event.acceptProposedAction()
                return True
        elif kind == QEvent.Type.Drop:
            assert isinstance(event, QDropEvent)
            files = dropped_files(event)
            if files:
                event.acceptProposedAction()
                self._on_files(files)
                return True
        return False


class FileList(QWidget):
    """The files an import will read: Add… / Remove, and files dropped on the list."""

    changed = Signal()

    def __init__(self, caption: str, name_filter: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._caption = caption
        self._filter = name_filter
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.list = QListWidget()
        self.list.setObjectName("operationFiles")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        # A fixed height: an empty list would otherwise take the room the dialog keeps for the result below, and
        # sit small in the middle of a tall empty row (it did).
        self.list.setFixedHeight(110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.list.setToolTip("The files to import; you can also drop files here")
        self._drop = FileDropFilter(self.add, self)
        self.list.viewport().setAcceptDrops(True)
        self.list.viewport().installEventFilter(self._drop)
        row.addWidget(self.list, 1)
        side = QVBoxLayout()
        self.add_button = QPushButton("Add files…")
        self.add_button.clicked.connect(self.browse)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        side.addWidget(self.add_button)
        side.addWidget(self.remove_button)
        side.addStretch(1)
        row.addLayout(side)

    def browse(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, self._caption, "", self._filter)
        self.add(paths)

    def add(self, paths: list[str]) -> None:
        known = set(self.paths())
        for p in paths:
            if p and p not in known:
                self.list.addItem(p)
                known.add(p)
        self.changed.emit()

    def remove_selected(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))
        self.changed.emit()

    def paths(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]


class OperationDialog(QDialog):
    """Inputs, Run, progress with Cancel, then the result or the refusal. Subclasses fill in the hooks."""

    #: The service finished; the result is on screen (its return value).
    completed = Signal(object)
    #: The service refused, or failed (the sentence shown).
    refused = Signal(str)
    #: Bring a pane forward showing these items (the main window's ``open_items``): (pane id, criteria).
    open_pane = Signal(str, dict)

    title = ""
    intro = ""
    run_label = "Run"
    permission: Permission | None = None
    task_label = ""
    #: Work done file by file stops between files on Cancel; a single service call cannot be interrupted, so its
    #: dialog offers no Cancel (it would only hide a result that was committed anyway).
    cancellable = False
    cancelled_text = "Cancelled."

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.setObjectName("operationDialog")
        self.setWindowTitle(self.title)
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.resize(900, 660)
        self._task: TaskHandle | None = None
        self.result_value: Any = None

        layout = QVBoxLayout(self)
        heading = QLabel(self.title)
        heading.setObjectName("dialogTitle")
        layout.addWidget(heading)
        if self.intro:
            intro = QLabel(self.intro)
            intro.setObjectName("muted")
            intro.setWordWrap(True)
            layout.addWidget(intro)
        self.inputs = QWidget()
        self.form = QFormLayout(self.inputs)
        self.form.setContentsMargins(0, 6, 0, 6)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        layout.addWidget(self.inputs)

        self.step = QLabel("")
        self.step.setObjectName("muted")
        self.step.hide()
        layout.addWidget(self.step)
        self.progress = QProgressBar()
        self.progress.setObjectName("operationProgress")
        self.progress.setTextVisible(True)
        self.progress.hide()
        layout.addWidget(self.progress)

        self.notice = QLabel("")
        self.notice.setObjectName("paneNotice")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.hide()
        layout.addWidget(self.notice)
        self.summary = QLabel("")
        self.summary.setObjectName("operationSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.hide()
        layout.addWidget(self.summary)
        # The result's tables go in an area that takes the dialog's spare height even while it is empty, so the
        # inputs above keep their natural size rather than stretching apart.
        results_area = QWidget()
        results_area.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        self.results = QVBoxLayout(results_area)
        self.results.setContentsMargins(0, 0, 0, 0)
        self.results.setSpacing(6)
        layout.addWidget(results_area, 1)

        buttons = QHBoxLayout()
        self.extra_buttons = QHBoxLayout()
        buttons.addLayout(self.extra_buttons)
        buttons.addStretch(1)
        self.run_button = QPushButton(self.run_label)
        self.run_button.setObjectName("primary")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)

        self.build_inputs()
        if self.permission is not None and not guard(
            self.run_button, workspace.actor, self.permission, self.run_label
        ):
            self.show_notice(who_may(self.permission, workspace.actor), "warn")

    # --- hooks ----------------------------------------------------------------------------------------------------

    def build_inputs(self) -> None:
        """Add the dialog's inputs to ``self.form``."""

    def check_inputs(self) -> str | None:
        """The sentence saying what is missing or wrong, or None when the inputs can run."""
        return None

    def work(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """``(fn, args)``: the worker ``fn(ctx, *args)`` to run on the TaskRunner."""
        raise NotImplementedError

    def show_result(self, result: Any) -> None:
        """Put the result on screen (summary text and tables)."""

    def read_first(self, fn: Callable[..., Any], on_done: Callable[[Any], None], label: str) -> None:
        """Read what the dialog edits, in the background as it opens: ``fn(ctx, db, actor)``; a failure is shown
        in the notice (the dialogs that edit settings: SLA rules, approval thresholds)."""
        self.ws.tasks.run(
            fn,
            self.ws.db,
            self.ws.actor,
            on_done=on_done,
            on_error=lambda failure: self.show_notice(failure.message, "bad"),
            label=label,
            owner=self,
        )

    # --- running --------------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Check the inputs and run the service in the background."""
        if self.running:
            return
        if self.permission is not None and not self.ws.actor.can(self.permission):
            self.show_notice(who_may(self.permission, self.ws.actor), "bad")
            return
        problem = self.check_inputs()
        if problem:
            self.show_notice(problem, "bad")
            return
        fn, args = self.work()
        self.notice.hide()
        self.summary.hide()
        self.clear_results()
        self.inputs.setEnabled(False)
        self.run_button.hide()
        self.cancel_button.setVisible(self.cancellable)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.step.setText("Starting…")
        self.step.show()
        self._task = self.ws.tasks.run(
            fn,
            *args,
            on_done=self._done,
            on_error=self._failed,
            on_progress=self._progress,
            on_cancelled=self._cancelled,
            label=self.task_label or self.title,
            owner=self,
        )

    def cancel(self) -> None:
        if self._task is not None and self.cancellable:
            self.step.setText("Cancelling after the file in progress…")
            self.cancel_button.setEnabled(False)
            self._task.cancel()

    def reject(self) -> None:
        # Escape while running means Cancel (where the work can stop), never "leave it running unseen".
        if self._task is not None:
            self.cancel()
            return
        super().reject()

    def closeEvent(self, event: Any) -> None:
        if self._task is not None:
            self.cancel()
            event.ignore()
            return
        super().closeEvent(event)

    def _progress(self, done: int, total: int, text: str) -> None:
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        if text:
            self.step.setText(text)

    def _idle(self) -> None:
        self._task = None
        self.progress.hide()
        self.step.hide()
        self.cancel_button.hide()
        self.run_button.show()
        self.inputs.setEnabled(True)

    def _done(self, result: object) -> None:
        self._idle()
        self.result_value = result
        self.show_result(result)
        self.summary.show()
        self.close_button.setFocus()
        self.completed.emit(result)

    def _failed(self, failure: TaskFailure) -> None:
        self._idle()
        self.show_notice(failure.message, "bad")
        self.refused.emit(failure.message)

    def _cancelled(self) -> None:
        self._idle()
        self.show_notice(self.cancelled_text, "warn")

    # --- showing --------------------------------------------------------------------------------------------------

    def show_notice(self, text: str, tone: str) -> None:
        self.notice.setText(text)
        self.notice.setProperty("tone", tone)
        self.notice.style().unpolish(self.notice)
        self.notice.style().polish(self.notice)
        self.notice.show()

    def notice_text(self) -> str:
        return self.notice.text() if self.notice.isVisibleTo(self) else ""

    def set_summary(self, html: str) -> None:
        self.summary.setText(html)
        self.summary.show()

    def add_result(self, widget: QWidget, stretch: int = 0) -> QWidget:
        if stretch and isinstance(widget, ResultTable):
            widget.setMinimumHeight(4 * ROW_HEIGHT + 30)  # a list the user can scroll, never squeezed away
        self.results.addWidget(widget, stretch)
        return widget

    def add_caption(self, text: str) -> QLabel:
        label = QLabel(text)
        label.setObjectName("operationCaption")
        self.results.addWidget(label)
        return label

    def clear_results(self) -> None:
        while self.results.count():
            item = self.results.takeAt(0)
            widget = item.widget()
            if widget is not None:
                widget.deleteLater()


def choose_folder(parent: QWidget, caption: str, start: str = "") -> str:
    return QFileDialog.getExistingDirectory(parent, caption, start)


class FileImportDialog(OperationDialog):
    """An import of files chosen in (or dropped on) the dialog, one transaction per file, stoppable between files.
    Subclasses build ``self.files`` (a :class:`FileList`) in ``build_inputs``; ``paths`` are added to it."""

    run_label = "Import"
    cancellable = True
    cancelled_text = (
        "Cancelled: every file already started was imported in full (one transaction each) and stays; the files "
        "after it were not imported."
    )
    permission = Permission.IMPORT

    def __init__(
        self, workspace: Workspace, paths: list[str] | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(workspace, parent)
        if paths:
            self.files.add(paths)


__all__ = [
    "FileImportDialog",
    "FileDropFilter",
    "FileList",
    "OperationDialog",
    "OptionalDate",
    "ResultTable",
    "choose_folder",
    "guard",
    "plural",
    "who_may",
]
