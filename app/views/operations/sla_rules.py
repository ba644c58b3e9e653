"""Operations > SLA rules…: each SLA's rule, warning window, name and activity; supervisors edit them.

Everyone may look; saving needs the role that edits rules (``rules.update_sla`` checks it, validates the rule —
a bad one names its field — and refuses an edit made on a stale copy: "changed by X at T; reload"). The rule is
shown as the JSON the service stores, with its one-line reading beside it, so a supervisor sees what a change
means before saving. The next evaluation (the monitor pane's timer, or ``opsdesk sla evaluate``) applies it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QFont
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QLineEdit, QPlainTextEdit, QSpinBox

from app.services.permissions import Permission
from app.views.operations.common import OperationDialog

if TYPE_CHECKING:
    from app.services.sla.rules import SlaInfo
    from app.views.tasks import TaskContext


def load(_ctx: TaskContext, db: Any, actor: Any) -> list[SlaInfo]:
    """Worker: every SLA, active or not."""
    from app.services.sla.rules import list_slas

    return list_slas(db, actor)


def save(ctx: TaskContext, db: Any, actor: Any, sla_id: int, version: int, edits: dict[str, Any]) -> Any:
    """Worker: one versioned, audited edit; then every SLA again (the list shows the new version)."""
    from app.services.sla.rules import list_slas, update_sla

    ctx.progress(0, 0, "Saving the SLA")
    saved = update_sla(db, actor, sla_id, seen_version=version, **edits)
    return saved, list_slas(db, actor)


class SlaRulesDialog(OperationDialog):
    title = "SLA rules"
    intro = (
        "Each SLA's deadline rule, warning window and activity. Supervisors edit them; every change is versioned "
        "and audited, and the next evaluation applies it."
    )
    run_label = "Save"
    permission = Permission.EDIT_RULES
    task_label = "Saving an SLA rule"

    def build_inputs(self) -> None:
        self.slas: list[SlaInfo] = []
        self.sla = QComboBox()
        self.sla.setAccessibleName("SLA")
        self.name = QLineEdit()
        self.name.setAccessibleName("Name")
        self.warning = QSpinBox()
        self.warning.setRange(0, 10_080)
        self.warning.setSuffix(" min before the deadline")
        self.warning.setAccessibleName("Warning window")
        self.active = QCheckBox("Evaluated (active)")
        self.reading = QLabel("")
        self.reading.setObjectName("muted")
        self.reading.setWordWrap(True)
        self.rule = QPlainTextEdit()
        self.rule.setAccessibleName("Rule (JSON)")
        self.rule.setFont(QFont("monospace"))
        self.rule.setMinimumHeight(220)
        self.form.addRow("SLA", self.sla)
        self.form.addRow("Name", self.name)
        self.form.addRow("At risk from", self.warning)
        self.form.addRow("", self.active)
        self.form.addRow("Reads", self.reading)
        self.form.addRow("Rule", self.rule)
        self.sla.currentIndexChanged.connect(lambda _i: self._fill())
        self.read_first(load, self.show_slas, "Reading the SLA rules")

    def current(self) -> SlaInfo | None:
        i = self.sla.currentIndex()
        return self.slas[i] if 0 <= i < len(self.slas) else None

    def show_slas(self, slas: object, keep: str | None = None) -> None:
        assert isinstance(slas, list)
        code = keep or (self.current().code if self.current() else None)
        self.slas = slas
        self.sla.blockSignals(True)
        self.sla.clear()
        for info in slas:
            self.sla.addItem(f"{info.name} ({info.code}) · v{info.version}", info.code)
        index = next((i for i, info in enumerate(slas) if info.code == code), 0)
        self.sla.setCurrentIndex(index)
        self.sla.blockSignals(False)
        self._fill()

    def _fill(self) -> None:
        info = self.current()
        if info is None:
            return
        self.name.setText(info.name)
        self.warning.setValue(info.warning_minutes)
        self.active.setChecked(info.is_active)
        self.rule.setPlainText(json.dumps(info.rule.as_dict(), indent=2, ensure_ascii=False))
        self.reading.setText(f"Due {info.rule.describe()} · watches {info.item_type}s")

    def edits(self) -> dict[str, Any]:
        """What differs from the SLA as loaded (only that is sent: an unchanged rule is not re-validated)."""
        info = self.current()
        assert info is not None
        out: dict[str, Any] = {}
        rule = json.loads(self.rule.toPlainText())
        if rule != info.rule.as_dict():
            out["rule"] = rule
        if self.warning.value() != info.warning_minutes:
            out["warning_minutes"] = self.warning.value()
        if self.active.isChecked() != info.is_active:
            out["is_active"] = self.active.isChecked()
        if self.name.text().strip() != info.name:
            out["name"] = self.name.text()
        return out

    def check_inputs(self) -> str | None:
        if self.current() is None:
            return "The SLAs are still loading."
        try:
            rule = json.loads(self.rule.toPlainText())
        except json.JSONDecodeError as err:
            return f"The rule is not valid JSON: line {err.lineno}, column {err.colno}: {err.msg}."
        if not isinstance(rule, dict):
            return "The rule must be a JSON object."
        if not self.edits():
            return "Nothing changed."
        return None

    def work(self) -> tuple[Any, tuple[Any, ...]]:
        info = self.current()
        assert info is not None
        return save, (self.ws.db, self.ws.actor, info.id, info.version, self.edits())

    def clear_results(self) -> None:
        """Nothing below the form to clear: the form itself shows the saved SLA."""

    def show_result(self, result: Any) -> None:
        saved, slas = result
        self.show_slas(slas, keep=saved.code)
        self.set_summary(
            f"Saved <b>{saved.name}</b> as version {saved.version}; the next evaluation applies it."
        )
