"""Per-user alert settings: which SLAs notify me when my items (or unowned ones) turn at risk or breached.

The choice is stored with the user's preferences in the shared database (``sla.alerts``), so it follows them to
any workstation. "Every SLA" also covers SLAs a supervisor adds later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from app.services.sla import alerts as alert_service
from app.services.sla import rules
from app.views.tasks import TaskFailure, TaskRunner

if TYPE_CHECKING:
    from app.services.db import Database
    from app.services.permissions import Actor


class AlertSettingsDialog(QDialog):
    def __init__(self, db: Database, actor: Actor, tasks: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.db, self.actor, self.tasks = db, actor, tasks
        self.setWindowTitle("SLA alerts")
        self.setMinimumWidth(380)
        layout = QVBoxLayout(self)
        intro = QLabel(
            "Tell me when an item I own, or one nobody owns, turns <b>at risk</b> or <b>breached</b> under:"
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.every = QCheckBox("Every SLA (including SLAs added later)")
        self.every.toggled.connect(self._every_toggled)
        layout.addWidget(self.every)
        self.box = QVBoxLayout()
        self.box.setContentsMargins(18, 0, 0, 0)
        layout.addLayout(self.box)
        self.checks: dict[str, QCheckBox] = {}
        self.status = QLabel("Loading…")
        self.status.setObjectName("muted")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(False)
        layout.addWidget(self.buttons)
        db_, actor_ = db, actor
        self.tasks.call(
            lambda: (rules.list_slas(db_, actor_), alert_service.alert_codes(db_, actor_)),
            on_done=self._loaded,
            on_error=self._failed,
            label="Reading your SLA alert settings",
            owner=self,
        )

    def _loaded(self, result: tuple[list[rules.SlaInfo], list[str] | None]) -> None:
        slas, codes = result
        for info in slas:
            check = QCheckBox(f"{info.name}  ({info.code})")
            check.setToolTip(info.description)
            check.setChecked(codes is None or info.code in codes)
            self.box.addWidget(check)
            self.checks[info.code] = check
        self.every.setChecked(codes is None)
        self._every_toggled(codes is None)
        self.status.setText("" if slas else "No SLAs are defined yet.")
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(True)

    def _every_toggled(self, on: bool) -> None:
        for check in self.checks.values():
            check.setEnabled(not on)
            if on:
                check.setChecked(True)

    def chosen(self) -> list[str] | None:
        if self.every.isChecked():
            return None
        return [code for code, check in self.checks.items() if check.isChecked()]

    def save(self) -> None:
        codes = self.chosen()
        self.buttons.setEnabled(False)
        self.tasks.call(
            alert_service.set_alert_codes,
            self.db,
            self.actor,
            codes,
            on_done=lambda _r: self.accept(),
            on_error=self._failed,
            label="Saving your SLA alert settings",
            owner=self,
        )

    def _failed(self, failure: TaskFailure) -> None:
        self.buttons.setEnabled(True)
        self.status.setText(f"Could not do that: {failure.message}")
