"""The confirmation of a bulk action: what will happen to how many instructions, what will be refused and why, the
reason (cancel and escalate need one) and, to assign or escalate, to whom.

The counts come from :func:`app.services.settlement.actions.preview_bulk` (the same checks the action makes, read
only) in a background task; the OK button says how many will change and stays off until the preview is in.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.services.settlement import actions
from app.services.settlement.actions import ACTION_LABELS, BulkPreview
from app.views.panes.base import Workspace
from app.views.tasks import TaskFailure

NEEDS_REASON = frozenset({"cancel", "escalate"})
TAKES_REASON = frozenset({"cancel", "escalate", "reinstruct"})
NEEDS_PERSON = frozenset({"assign", "escalate"})
LEAST_BUSY = "The least busy supervisor"


class BulkActionDialog(QDialog):
    #: The preview arrived and is shown.
    previewed = Signal(object)

    def __init__(
        self,
        workspace: Workspace,
        action: str,
        ids: Sequence[int],
        people: Sequence[tuple[int, str, str]] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("bulkDialog")
        self.ws = workspace
        self.action = action
        self.ids = list(ids)
        self.preview: BulkPreview | None = None
        label = ACTION_LABELS[action]
        n = len(self.ids)
        self.setWindowTitle(f"{label} {n:,} instruction{'s' if n != 1 else ''}")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.setMinimumWidth(460)
        layout = QVBoxLayout(self)
        heading = QLabel(self.windowTitle())
        heading.setObjectName("dialogTitle")
        layout.addWidget(heading)
        self.summary = QLabel("Checking what can be done…")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.summary)
        form = QFormLayout()
        self.reason = QLineEdit()
        self.reason.setPlaceholderText(
            "required" if action in NEEDS_REASON else "optional, goes into the history"
        )
        self.reason.setAccessibleName("Reason")
        self.person = QComboBox()
        self.person.setAccessibleName("Assignee")
        if action == "escalate":
            self.person.addItem(LEAST_BUSY, None)
        for user_id, name, role in people:
            if action == "escalate" and role != "supervisor":
                continue
            self.person.addItem(f"{name} ({role})", user_id)
        if action in TAKES_REASON:
            form.addRow("Reason", self.reason)
        if action in NEEDS_PERSON:
            form.addRow("To" if action == "assign" else "Escalate to", self.person)
        layout.addLayout(form)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok: QPushButton = self.buttons.addButton(label, QDialogButtonBox.ButtonRole.AcceptRole)
        self.ok.setEnabled(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.reason.textChanged.connect(lambda _t: self._update_ok())
        self.person.currentIndexChanged.connect(lambda _i: self._ask_preview())
        self._ask_preview()

    @property
    def reason_text(self) -> str:
        return self.reason.text().strip()

    @property
    def assignee_id(self) -> int | None:
        value = self.person.currentData()
        return int(value) if value is not None else None

    def _ask_preview(self) -> None:
        self.preview = None
        self._update_ok()
        if self.action == "assign" and self.assignee_id is None:
            self.summary.setText("Choose whom to assign them to.")
            return
        self.ws.tasks.call(
            partial(actions.preview_bulk, assignee_id=self.assignee_id),
            self.ws.db,
            self.ws.actor,
            self.action,
            self.ids,
            on_done=self._previewed,
            on_error=self._failed,
            label="Checking the selection",
            quiet=True,
            owner=self,
        )

    def _previewed(self, preview: object) -> None:
        assert isinstance(preview, BulkPreview)
        self.preview = preview
        verb = ACTION_LABELS[self.action].lower()
        lines = [f"<b>{preview.applicable:,}</b> of {preview.total:,} will be {_done_word(verb)}."]
        if preview.refused:
            lines.append(f"<b>{sum(preview.refused.values()):,}</b> will be left as they are:")
            items = "".join(
                f"<li>{n:,}: {why}</li>" for why, n in sorted(preview.refused.items(), key=lambda x: -x[1])
            )
            lines.append(f"<ul style='margin:0'>{items}</ul>")
        self.summary.setText("<br>".join(lines))
        self.ok.setText(f"{ACTION_LABELS[self.action]} {preview.applicable:,}")
        self._update_ok()
        self.previewed.emit(preview)

    def _failed(self, failure: TaskFailure) -> None:
        self.summary.setText(f"Cannot {ACTION_LABELS[self.action].lower()}: {failure.message}")
        self._update_ok()

    def _update_ok(self) -> None:
        ready = self.preview is not None and self.preview.applicable > 0
        if self.action in NEEDS_REASON and not self.reason_text:
            ready = False
        self.ok.setEnabled(ready)


def _done_word(verb: str) -> str:
    return {
        "claim": "claimed by you",
        "release": "released",
        "assign": "assigned",
        "escalate": "escalated",
        "re-instruct": "re-instructed",
        "cancel": "cancelled",
    }.get(verb, verb)
