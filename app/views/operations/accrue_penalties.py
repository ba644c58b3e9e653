"""Operations > Accrue penalties…: the daily CSDR-style penalties of failing items up to a date.

``fails.accrue_penalties`` accrues every failing business day before the as-of date that is not accrued yet (rates
by asset class, on the reference value of what is still to settle); running it twice adds nothing. The result gives
the penalties added, the instructions they fall on, and the totals per currency we pay and receive.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from app.services.permissions import Permission
from app.views.operations.common import OperationDialog, OptionalDate, ResultTable, plural

if TYPE_CHECKING:
    from app.views.tasks import TaskContext


def accrue(ctx: TaskContext, db: Any, actor: Any, as_of: Any) -> Any:
    """Worker: one unit of work."""
    from app.services.settlement.fails import accrue_penalties

    ctx.progress(0, 0, "Accruing the penalties")
    return accrue_penalties(db, actor, as_of)


class AccruePenaltiesDialog(OperationDialog):
    title = "Accrue fail penalties"
    intro = (
        "Accrue the daily cash penalties of failing settlement instructions for every failing business day before "
        "the date that is not accrued yet. Running it again adds nothing."
    )
    run_label = "Accrue"
    permission = Permission.RUN_PROCESSES
    task_label = "Accruing fail penalties"

    def build_inputs(self) -> None:
        self.as_of = OptionalDate("Up to (not including)", checked=True)
        self.form.addRow("As of", self.as_of)

    def work(self) -> tuple[Any, tuple[Any, ...]]:
        return accrue, (self.ws.db, self.ws.actor, self.as_of.value())

    def show_result(self, result: Any) -> None:
        if not result.added:
            self.set_summary(f"No new penalties up to {result.as_of}: every failing day is already accrued.")
            return
        self.set_summary(
            f"Accrued <b>{plural(result.added, 'daily penalty', 'daily penalties')}</b> on "
            f"{plural(result.instructions, 'instruction')} up to {result.as_of} ({result.seconds:.2f} s)."
        )
        self.add_caption("Totals per currency")
        self.totals_table = ResultTable(["Currency", "We pay", "We receive"])
        rows = []
        for ccy, d in sorted(result.totals.items()):
            rows.append([ccy, f"{Decimal(d.get('DEBIT', 0)):,.2f}", f"{Decimal(d.get('CREDIT', 0)):,.2f}"])
        self.totals_table.fill(rows)
        self.totals_table.fit_height(len(rows), 8)
        self.add_result(self.totals_table)
