"""Repairing a trade from the repair queue: edit the fields that failed validation, validate again, save.

The dialog shows the trade as the clerk loaded it (its record version is kept) with the failing fields first and
marked, and sends only the fields the clerk changed to the capture service's
``repair_trade(db, actor, trade_id, seen_version, changes)``. The service decides everything: it validates the
trade again, refuses a stale edit with "changed by X at T; reload" and refuses to amend a trade that is already
validated (that is the correction workflow's job); the dialog shows its sentence as it is. When the trade still
fails validation the dialog stays open with the remaining reasons.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.services.capture.detail import EDITABLE  # a light module: no pandas
from app.services.errors import StaleEdit
from app.views.blotter import capture_api
from app.views.blotter.detail_panel import as_mapping, label_of, pick
from app.views.tasks import TaskFailure, TaskHandle

if TYPE_CHECKING:
    from app.views.panes.base import Workspace

PLACEHOLDERS = {"trade_date": "YYYY-MM-DD", "trade_time": "YYYY-MM-DDTHH:MM:SS+00:00"}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return (
            format(value.normalize(), "f") if value == value.to_integral() else format(value, "f").rstrip("0")
        )
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(getattr(value, "value", value))


class RepairDialog(QDialog):
    """Edit the failing fields of one trade and validate it again through the service."""

    #: The repair was saved (the trade id).
    repaired = Signal(int)
    #: The service refused or failed: its sentence (tests read it from here too).
    refused = Signal(str)
    #: The trade was read again (after a stale edit).
    reloaded = Signal()

    def __init__(
        self, workspace: Workspace, trade_id: int, detail: object, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("repairDialog")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.ws = workspace
        self.trade_id = trade_id
        self.edits: dict[str, QLineEdit] = {}
        self._task: TaskHandle | None = None
        self.seen_version = 0
        self.original: dict[str, Any] = {}

        layout = QVBoxLayout(self)
        self.heading = QLabel()
        self.heading.setObjectName("dialogTitle")
        layout.addWidget(self.heading)
        self.reasons = QLabel()
        self.reasons.setObjectName("detailExceptions")
        self.reasons.setWordWrap(True)
        layout.addWidget(self.reasons)
        self.form = QFormLayout()
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        layout.addLayout(self.form)
        self.error = QLabel()
        self.error.setObjectName("paneError")
        self.error.setWordWrap(True)
        self.error.hide()
        layout.addWidget(self.error)
        self.buttons = QDialogButtonBox()
        self.save_button = QPushButton("Validate and save")
        self.save_button.setProperty("primary", True)
        self.save_button.setDefault(True)
        self.reload_button = QPushButton("Reload")
        self.reload_button.setToolTip("Read the trade again (after someone else changed it)")
        self.reload_button.hide()
        self.buttons.addButton(self.save_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.addButton(self.reload_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        self.reload_button.clicked.connect(self.reload)
        layout.addWidget(self.buttons)
        self.show_detail(detail)

    # --- the trade ----------------------------------------------------------------------------------------------

    def show_detail(self, detail: object) -> None:
        d = as_mapping(detail)
        trade = as_mapping(pick(d, "trade", "fields")) or d
        self.original = trade
        self.seen_version = int(trade.get("version") or 0)
        status = str(getattr(trade.get("status"), "value", trade.get("status") or ""))
        self.setWindowTitle(f"Repair {trade.get('trade_ref', self.trade_id)}")
        self.heading.setText(
            f"<b>{trade.get('trade_ref', '')}</b> · {status.replace('_', ' ').capitalize()} · "
            f"record version {self.seen_version}"
        )
        open_exceptions = [
            as_mapping(e) for e in (pick(d, "exceptions") or []) if not as_mapping(e).get("cleared_at")
        ]
        failing = {str(e.get("field") or "") for e in open_exceptions}
        # The service says which fields a repair may change (none for a trade that is not in repair).
        editable = tuple(d.get("editable_fields") or EDITABLE)
        self._show_reasons(open_exceptions)
        while self.form.rowCount():
            self.form.removeRow(0)
        self.edits.clear()
        ordered = [f for f in editable if f in failing] + [f for f in editable if f not in failing]
        for name in ordered:
            edit = QLineEdit(_text(trade.get(name)))
            edit.setObjectName(f"repair_{name}")
            edit.setAccessibleName(label_of(name))
            if name in failing:
                edit.setProperty("failing", True)
                edit.setStyleSheet("QLineEdit { border: 2px solid #c62828; padding: 4px 7px; }")
                edit.setToolTip("This field failed validation")
            if name in PLACEHOLDERS:
                edit.setPlaceholderText(PLACEHOLDERS[name])
            self.edits[name] = edit
            self.form.addRow(label_of(name) + (" ⚠" if name in failing else ""), edit)
        if ordered:
            self.edits[ordered[0]].setFocus()
            self.edits[ordered[0]].selectAll()
        self.error.hide()
        self.reload_button.hide()
        self.save_button.setEnabled(True)

    def _show_reasons(self, exceptions: list[dict[str, Any]]) -> None:
        if exceptions:
            lines = [
                f"<b>{e.get('code', '')}</b> {e.get('field', '')}: {e.get('message', '')}" for e in exceptions
            ]
            self.reasons.setText("Failing validation:<br>" + "<br>".join(lines))
            self.reasons.show()
        else:
            self.reasons.hide()

    def changes(self) -> dict[str, str]:
        """The fields the clerk changed, as typed: the service parses and checks them and says what is wrong."""
        out: dict[str, str] = {}
        for name, edit in self.edits.items():
            text = edit.text().strip()
            if text != _text(self.original.get(name)):
                out[name] = text
        return out

    # --- saving -------------------------------------------------------------------------------------------------

    def save(self) -> None:
        changes = self.changes()
        self.save_button.setEnabled(False)
        self.error.hide()
        self._task = self.ws.tasks.call(
            partial(capture_api.call, "repair_trade"),
            self.ws.db,
            self.ws.actor,
            self.trade_id,
            self.seen_version,
            changes,
            on_done=self._saved,
            on_error=self._failed,
            label="Repairing the trade",
            owner=self,
        )

    def _saved(self, result: object) -> None:
        self._task = None
        outcome = as_mapping(result)
        self.repaired.emit(self.trade_id)
        if str(outcome.get("status")) != "REPAIR":
            self.accept()
            return
        # Saved, but it still fails validation: carry on from the new version with the remaining reasons.
        self.seen_version = int(outcome.get("version") or self.seen_version)
        self.original = {**self.original, **{k: e.text().strip() for k, e in self.edits.items()}}
        self.original["version"] = self.seen_version
        remaining = [as_mapping(e) for e in outcome.get("exceptions") or []]
        self._show_reasons(remaining)
        failing = {str(e.get("field") or "") for e in remaining}
        for name, edit in self.edits.items():
            edit.setStyleSheet(
                "QLineEdit { border: 2px solid #c62828; padding: 4px 7px; }" if name in failing else ""
            )
        self.heading.setText(
            f"<b>{self.original.get('trade_ref', '')}</b> · Repair · record version {self.seen_version}"
        )
        self.save_button.setEnabled(True)
        self._refuse("Saved, but the trade still fails validation; fix the fields marked below.")

    def _failed(self, failure: TaskFailure) -> None:
        self._task = None
        self.save_button.setEnabled(True)
        self._refuse(failure.message)
        if isinstance(failure.error, StaleEdit):
            self.reload_button.show()
            self.save_button.setEnabled(False)

    def _refuse(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()
        self.refused.emit(message)

    def reload(self) -> None:
        self.ws.tasks.call(
            partial(capture_api.call, "trade_detail"),
            self.ws.db,
            self.ws.actor,
            self.trade_id,
            on_done=self._reloaded,
            on_error=lambda f: self._refuse(f.message),
            label="Reloading the trade",
            owner=self,
        )

    def _reloaded(self, detail: object) -> None:
        self.show_detail(detail)
        self.reloaded.emit()

    def reject(self) -> None:
        if self._task is not None:
            self._task.cancel()
        super().reject()


def open_repair(
    parent: QWidget,
    workspace: Workspace,
    trade_id: int,
    *,
    on_repaired: Callable[[int], None],
    on_opened: Callable[[RepairDialog], None] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> TaskHandle | None:
    """Read the trade in the background, then open the repair dialog on it (never a database call here)."""

    def fail(message: str) -> None:
        if on_error is not None:
            on_error(message)
        else:
            message_box(parent, message)

    def opened(detail: object) -> None:
        capture_api.prepare(workspace.tasks, "repair_trade")  # while the clerk edits the fields
        dialog = RepairDialog(workspace, trade_id, detail, parent)
        dialog.repaired.connect(on_repaired)
        dialog.open()
        if on_opened is not None:
            on_opened(dialog)

    return workspace.tasks.call(
        partial(capture_api.call, "trade_detail"),
        workspace.db,
        workspace.actor,
        trade_id,
        on_done=opened,
        on_error=lambda f: fail(f.message),
        label="Opening the trade for repair",
        owner=parent,
    )


def message_box(parent: QWidget, message: str) -> None:
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(QMessageBox.Icon.Warning, "Repair", message, QMessageBox.StandardButton.Ok, parent)
    box.setWindowModality(Qt.WindowModality.WindowModal)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
