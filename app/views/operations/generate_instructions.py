"""Operations > Generate settlement instructions…: instruct every eligible validated trade, netted or gross.

``generate.generate_instructions`` creates DVP/RVP and DFP/RFP instructions for the validated, confirmed or affirmed
trades no live instruction settles yet (all of them, or those settling on one date), netted as configured per
counterparty, for every counterparty, or for none. Running it again creates nothing. The result gives the counts,
gross and netted, per instruction type; the new instructions are PENDING in the settlement queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QComboBox, QPushButton

from app.services.permissions import Permission
from app.views.operations.common import OperationDialog, OptionalDate, ResultTable, plural

if TYPE_CHECKING:
    from app.views.tasks import TaskContext

MODES = (
    ("As configured per counterparty", None),
    ("Net every counterparty", True),
    ("Gross: net no counterparty", False),
)


def generate(ctx: TaskContext, db: Any, actor: Any, settle_date: Any, net: bool | None) -> Any:
    """Worker: one unit of work, set-based in the database."""
    from app.services.settlement.generate import generate_instructions

    ctx.progress(0, 0, "Generating the instructions")
    return generate_instructions(db, actor, settle_date=settle_date, net=net)


class GenerateInstructionsDialog(OperationDialog):
    title = "Generate settlement instructions"
    intro = (
        "Create the settlement instructions of every validated, confirmed or affirmed trade that has none yet: "
        "DVP/RVP against payment, DFP/RFP free of payment, netted per counterparty × ISIN × settlement date × "
        "account where chosen. Running it again creates nothing new."
    )
    run_label = "Generate"
    permission = Permission.RUN_PROCESSES
    task_label = "Generating settlement instructions"

    def build_inputs(self) -> None:
        self.date = OptionalDate("Only trades settling on", checked=False)
        self.form.addRow("Settlement date", self.date)
        self.mode = QComboBox()
        for text, value in MODES:
            self.mode.addItem(text, value)
        self.form.addRow("Netting", self.mode)
        self.show_queue = QPushButton("Show in the settlement queue")
        self.show_queue.hide()
        self.show_queue.clicked.connect(
            lambda: self.open_pane.emit(
                "settlement_queue", {"status": "PENDING", "title": "Pending instructions (just generated)"}
            )
        )
        self.extra_buttons.addWidget(self.show_queue)

    def set_mode(self, net: bool | None) -> None:
        self.mode.setCurrentIndex(next(i for i, (_t, v) in enumerate(MODES) if v is net))

    def work(self) -> tuple[Any, tuple[Any, ...]]:
        return generate, (self.ws.db, self.ws.actor, self.date.value(), self.mode.currentData())

    def show_result(self, result: Any) -> None:
        text = str(result)
        if result.instructions:
            text = (
                f"Generated <b>{plural(result.instructions, 'instruction')}</b> for "
                f"{plural(result.trades, 'trade')}: <b>{result.gross:,}</b> gross, <b>{result.netted:,}</b> netted "
                f"from {plural(result.netted_trades, 'trade')} ({self.mode.currentText().lower()}); "
                f"{result.seconds:.2f} s. They wait as PENDING in the settlement queue."
            )
            if result.skipped_no_ssi:
                text += f"<br>{plural(result.skipped_no_ssi, 'trade')} skipped for lack of an SSI."
        self.set_summary(text)
        if result.by_type:
            self.add_caption("Per instruction type")
            self.types_table = ResultTable(["Type", "Instructions"])
            self.types_table.fill([[k, int(v)] for k, v in sorted(result.by_type.items())])
            self.types_table.fit_height(len(result.by_type), 6)
            self.add_result(self.types_table)
            self.show_queue.show()
