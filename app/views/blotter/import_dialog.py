"""Importing trade files from the blotter (File > Import trades…, or files dropped on the table).

The files go to the capture service's ``import_trades`` one after the other in one background task, with a
progress bar and a Cancel button (an import is one transaction per file: a cancel rolls the current file back and
leaves the files already imported in place). When it ends the dialog turns into the summary: per file the lines
accepted, sent to repair, rejected and duplicate, and every rejected or repaired line as file:line:field:reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.services.errors import OpsDeskError
from app.views.blotter import capture_api
from app.views.blotter.detail_panel import _Table, as_mapping
from app.views.tasks import TaskContext, TaskHandle

if TYPE_CHECKING:
    from app.views.panes.base import Workspace

COUNTS = ("accepted", "repair", "rejected", "duplicates", "skipped")
MAX_ISSUES_SHOWN = 2000


@dataclass
class FileOutcome:
    """What became of one file: the service's report, or the sentence saying why the file was refused."""

    path: str
    report: dict[str, Any] | None = None
    error: str | None = None
    issues: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return Path(self.path).name

    def count(self, key: str) -> int:
        return int((self.report or {}).get(key, 0) or 0)


def _import_all(ctx: TaskContext, db: Any, actor: Any, paths: list[str]) -> list[FileOutcome]:
    """Worker: import each file in turn; a refused file is reported and the others still go in."""
    outcomes: list[FileOutcome] = []
    n = len(paths)
    for i, path in enumerate(paths):
        ctx.check()
        name = Path(path).name

        def progress(done: int, total: int, text: str, i: int = i, name: str = name) -> None:
            share = done / total if total else 0.0
            ctx.progress(int((i + share) * 1000), n * 1000, f"{name}: {text}" if text else name)

        try:
            report = capture_api.call(
                "import_trades", db, actor, path, progress=progress, cancel=lambda: ctx.cancelled
            )
        except OpsDeskError as err:
            if ctx.cancelled:
                raise
            outcomes.append(FileOutcome(path, error=str(err)))
            continue
        data = as_mapping(report)
        issues = [as_mapping(x) for x in (data.get("issues") or [])[:MAX_ISSUES_SHOWN]]
        outcomes.append(FileOutcome(path, report=data, issues=issues))
    ctx.progress(n * 1000, n * 1000, "Done")
    return outcomes


class ImportDialog(QDialog):
    """Progress while the files are imported, then the summary of what became of every line."""

    #: Every file was handled (the list of FileOutcome).
    finished_all = Signal(list)
    #: The user cancelled; the current file was rolled back.
    cancelled = Signal()

    def __init__(self, workspace: Workspace, paths: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("importDialog")
        self.setWindowTitle("Import trades")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.resize(860, 520)
        self.ws = workspace
        self.paths = paths
        self.outcomes: list[FileOutcome] = []
        self._task: TaskHandle | None = None

        layout = QVBoxLayout(self)
        names = ", ".join(Path(p).name for p in paths[:3]) + (
            f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        )
        self.heading = QLabel(f"Importing {names}")
        self.heading.setObjectName("dialogTitle")
        self.heading.setWordWrap(True)
        layout.addWidget(self.heading)
        self.step = QLabel("Starting…")
        self.step.setObjectName("muted")
        layout.addWidget(self.step)
        self.progress = QProgressBar()
        self.progress.setObjectName("importProgress")
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(True)
        layout.addWidget(self.progress)

        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.hide()
        layout.addWidget(self.summary)
        self.files_table = _Table(
            ["File", "Lines", "Accepted", "Repair", "Rejected", "Duplicates", "Skipped"]
        )
        self.files_table.hide()
        layout.addWidget(self.files_table)
        self.issues_table = _Table(["File", "Line", "Field", "Outcome", "Code", "Reason"])
        self.issues_table.hide()
        layout.addWidget(self.issues_table, 1)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.close_box = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.close_box.rejected.connect(self.close)
        self.close_box.hide()
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.close_box)
        layout.addLayout(buttons)

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Show the dialog and start importing (in the background)."""
        self.open()
        self._task = self.ws.tasks.run(
            _import_all,
            self.ws.db,
            self.ws.actor,
            list(self.paths),
            on_done=self._done,
            on_error=lambda f: self._failed_all(f.message),
            on_progress=self._progress,
            on_cancelled=self._cancelled,
            label="Importing trades",
            owner=self,
        )

    def cancel(self) -> None:
        if self._task is not None:
            self.step.setText("Cancelling… (the file being imported is rolled back)")
            self.cancel_button.setEnabled(False)
            self._task.cancel()
        else:
            self.close()

    def reject(self) -> None:
        # Escape or the window's close button while importing means Cancel, not "leave it running unseen".
        if self._task is not None:
            self.cancel()
            return
        super().reject()

    def _progress(self, done: int, total: int, text: str) -> None:
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        self.step.setText(text)

    def _cancelled(self) -> None:
        self._task = None
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.step.setText(
            "Import cancelled: the file being imported was rolled back; nothing of it was kept."
        )
        self._finish_buttons()
        self.cancelled.emit()

    def _failed_all(self, message: str) -> None:
        self._task = None
        self.progress.hide()
        self.step.setText("")
        self.summary.setText(f"<b>The import failed.</b> {message}")
        self.summary.show()
        self._finish_buttons()
        self.finished_all.emit([FileOutcome(p, error=message) for p in self.paths])

    def _done(self, outcomes: object) -> None:
        self._task = None
        assert isinstance(outcomes, list)
        self.outcomes = outcomes
        self.progress.hide()
        self.step.setText("")
        self.heading.setText("Import finished" if len(outcomes) == 1 else f"Imported {len(outcomes)} files")
        self.summary.setText(self.summary_text())
        self.summary.show()
        self._fill_tables()
        self._finish_buttons()
        self.finished_all.emit(outcomes)

    def totals(self) -> dict[str, int]:
        return {key: sum(o.count(key) for o in self.outcomes) for key in COUNTS}

    def summary_text(self) -> str:
        t = self.totals()
        parts = [
            f"<b>{t['accepted']:,}</b> accepted",
            f"<b style='color:#c62828'>{t['repair']:,}</b> sent to repair",
            f"<b>{t['rejected']:,}</b> rejected",
            f"<b>{t['duplicates']:,}</b> duplicates",
        ]
        if t["skipped"]:
            parts.append(f"{t['skipped']:,} skipped")
        text = ", ".join(parts) + "."
        refused = [o for o in self.outcomes if o.error]
        if refused:
            text += "<br>" + "<br>".join(f"<b>{o.name}</b> was not imported: {o.error}" for o in refused)
        duplicates = [o for o in self.outcomes if (o.report or {}).get("duplicate_file")]
        if duplicates:
            text += "<br>" + "<br>".join(
                f"<b>{o.name}</b> had already been imported: nothing changed." for o in duplicates
            )
        return text

    def _fill_tables(self) -> None:
        rows = []
        for o in self.outcomes:
            if o.error:
                rows.append([o.name, "–", "–", "–", "–", "–", "–"])
            else:
                rows.append([o.name, f"{o.count('lines'):,}"] + [f"{o.count(k):,}" for k in COUNTS])
        self.files_table.fill(rows)
        self.files_table.setMaximumHeight(30 + 24 * max(1, len(rows)))
        self.files_table.show()
        issues = []
        for o in self.outcomes:
            for i in o.issues:
                issues.append(
                    [
                        str(i.get("file") or o.name),
                        str(i.get("line", "")),
                        str(i.get("field", "")),
                        str(i.get("status", "")),
                        str(i.get("code", "")),
                        str(i.get("reason", "")),
                    ]
                )
        if issues:
            self.issues_table.fill(issues)
            self.issues_table.show()

    def issue_lines(self) -> list[str]:
        """Every issue as ``file:line:field:reason`` (what the summary lists; tests read it)."""
        out = []
        for r in range(self.issues_table.rowCount() if self.issues_table.isVisible() else 0):
            cells = [self.issues_table.item(r, c).text() for c in (0, 1, 2, 5)]
            out.append(":".join(cells))
        return out

    def _finish_buttons(self) -> None:
        self.cancel_button.hide()
        self.close_box.show()
        self.close_box.button(QDialogButtonBox.StandardButton.Close).setFocus()
