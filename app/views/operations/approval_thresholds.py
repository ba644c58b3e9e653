"""Operations > Approval thresholds…: the amounts above which a correction needs a second approver.

Everyone may look; supervisors set a currency's threshold (``*`` for every currency without its own). The service
(``workflow.corrections.set_threshold``) checks the role, the currency code and the amount, and audits the change;
pending corrections keep the number of approvals they were proposed with, which the dialog says.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QLineEdit

from app.services.permissions import Permission
from app.views.operations.common import OperationDialog, ResultTable, who_may

if TYPE_CHECKING:
    from app.views.tasks import TaskContext


def current(_ctx: TaskContext, db: Any, actor: Any) -> dict[str, Decimal]:
    """Worker: every threshold by currency."""
    from app.services.workflow.corrections import thresholds

    return thresholds(db, actor)


def set_and_list(ctx: TaskContext, db: Any, actor: Any, currency: str, amount: str) -> dict[str, Decimal]:
    """Worker: set one threshold (one audited unit of work), then read them all back."""
    from app.services.workflow.corrections import set_threshold, thresholds

    ctx.progress(0, 0, "Saving the threshold")
    set_threshold(db, actor, currency, amount)
    return thresholds(db, actor)


def rows(values: dict[str, Decimal]) -> list[list[Any]]:
    """Currency, then amount; the catch-all ``*`` last, named in words."""
    ordered = sorted(values.items(), key=lambda kv: (kv[0] == "*", kv[0]))
    return [
        ["Any other currency" if ccy == "*" else ccy, f"{Decimal(amount).normalize():,f}"]
        for ccy, amount in ordered
    ]


class ApprovalThresholdsDialog(OperationDialog):
    title = "Approval thresholds"
    intro = (
        "A correction whose amount is above its currency's threshold needs two approvers besides its maker. Set a "
        "currency's threshold, or * for every currency without its own. Corrections already pending keep the "
        "number of approvals they were proposed with."
    )
    run_label = "Set threshold"
    permission = Permission.APPROVE_CORRECTION
    task_label = "Saving an approval threshold"

    def build_inputs(self) -> None:
        self.currency = QLineEdit()
        self.currency.setPlaceholderText("EUR, USD … or *")
        self.currency.setMaxLength(3)
        self.currency.setAccessibleName("Currency")
        self.amount = QLineEdit()
        self.amount.setPlaceholderText("e.g. 250000")
        self.amount.setAccessibleName("Threshold amount")
        self.form.addRow("Currency", self.currency)
        self.form.addRow("Above", self.amount)
        self.table = ResultTable(["Currency", "Two approvers above"])
        self.add_caption("Current thresholds")
        self.add_result(self.table, 1)
        if not self.ws.actor.can(Permission.APPROVE_CORRECTION):
            self.inputs.setEnabled(False)
            self.inputs.setToolTip(who_may(Permission.APPROVE_CORRECTION, self.ws.actor))
        self.read_first(current, self.show_thresholds, "Reading the approval thresholds")

    def check_inputs(self) -> str | None:
        if not self.currency.text().strip():
            return "Type a currency code (or * for every other currency)."
        if not self.amount.text().strip():
            return "Type the amount above which two approvers are needed."
        return None

    def work(self) -> tuple[Any, tuple[Any, ...]]:
        args = (self.ws.db, self.ws.actor, self.currency.text().strip(), self.amount.text().strip())
        return set_and_list, args

    def clear_results(self) -> None:
        """The table of thresholds stays: it is refilled, not rebuilt, after each change."""

    def show_thresholds(self, values: object) -> None:
        assert isinstance(values, dict)
        self.table.fill(rows(values))
        if not values:
            self.set_summary("No threshold yet: one approver is enough for every correction.")

    def show_result(self, result: Any) -> None:
        self.show_thresholds(result)
        code = self.currency.text().strip().upper()
        saved = result.get(code)
        label = "every other currency" if code == "*" else code
        amount = "" if saved is None else f" above {Decimal(saved).normalize():,f}"
        self.set_summary(f"Saved: {label} needs two approvers{amount}.")
