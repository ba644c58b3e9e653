"""Operations > Run reconciliation…: run one recon definition as of a date, then show its breaks.

The definitions are read in the background when the dialog opens (``definitions.list_definitions``; the built-in
ones are created first if there are none, as ``opsdesk recon run`` does). ``run.run_recon`` reads both sides, runs
every pass and writes the run, its matches and its breaks. The result: records on each side, matched (and by which
pass), breaks by type, new / still open / reopened / resolved, and the duration. On success the break investigation
pane comes forward showing the definition's open breaks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QPushButton, QWidget

from app.services.permissions import Permission
from app.views.operations.common import OperationDialog, OptionalDate, ResultTable, plural

if TYPE_CHECKING:
    from app.views.panes.base import Workspace
    from app.views.tasks import TaskContext, TaskFailure

BREAK_WORDS = {
    "MISSING_INTERNAL": "missing internal (only outside)",
    "MISSING_EXTERNAL": "missing external (only ours)",
    "FIELD_MISMATCH": "field mismatch",
    "DUPLICATE_KEY": "duplicate key",
}


def read_definitions(db: Any, actor: Any) -> list[Any]:
    """Worker: the definitions, creating the built-in ones first when there are none and the user may run."""
    from app.services.recon import definitions as defs

    found = defs.list_definitions(db, actor)
    if not found and actor.can(Permission.RUN_PROCESSES):
        defs.ensure_default_definitions(db, actor)
        found = defs.list_definitions(db, actor)
    return found


def run(ctx: TaskContext, db: Any, actor: Any, name: str, as_of: Any) -> Any:
    """Worker: one run (reads in a read session, writes in one unit of work)."""
    from app.services.recon.run import run_recon

    ctx.progress(0, 0, f"Reconciling {name}: reading both sides, matching, writing the breaks")
    return run_recon(db, actor, name, as_of=as_of)


class RunReconDialog(OperationDialog):
    title = "Run reconciliation"
    intro = (
        "Read both sides of a recon definition, run its passes (exact reference, composite keys, aggregation) and "
        "write the breaks. A break found before is updated, never created twice; one no longer found closes itself."
    )
    run_label = "Run"
    permission = Permission.RUN_PROCESSES
    task_label = "Running a reconciliation"

    #: The definitions were read and listed.
    definitions_shown = Signal(list)

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(workspace, parent)
        self.definitions: list[Any] = []
        self.run_button.setEnabled(False)
        self.ws.tasks.call(
            read_definitions,
            self.ws.db,
            self.ws.actor,
            on_done=self._definitions_read,
            on_error=self._definitions_failed,
            label="Reading the recon definitions",
            owner=self,
        )

    def build_inputs(self) -> None:
        self.definition = QComboBox()
        self.definition.addItem("Reading the definitions…", None)
        self.definition.setMinimumWidth(420)
        self.form.addRow("Definition", self.definition)
        self.as_of = OptionalDate("As of", checked=False)
        self.as_of.setToolTip("Default: everything known today")
        self.form.addRow("Date", self.as_of)
        self.show_breaks = QPushButton("Show the breaks")
        self.show_breaks.hide()
        self.show_breaks.clicked.connect(self._show_breaks)
        self.extra_buttons.addWidget(self.show_breaks)

    def _definitions_read(self, found: object) -> None:
        assert isinstance(found, list)
        self.definitions = found
        self.definition.clear()
        for d in found:
            text = f"{d.name}  ({d.left_source} vs {d.right_source})" + (
                "" if d.is_active else " — switched off"
            )
            self.definition.addItem(text, d.name)
            self.definition.setItemData(
                self.definition.count() - 1, d.description, Qt.ItemDataRole.ToolTipRole
            )
        if not found:
            self.definition.addItem("No recon definitions yet", None)
        self.run_button.setEnabled(bool(found) and self.ws.actor.can(Permission.RUN_PROCESSES))
        self.definitions_shown.emit(found)

    def _definitions_failed(self, failure: TaskFailure) -> None:
        self.definition.clear()
        self.definition.addItem("The definitions could not be read", None)
        self.show_notice(failure.message, "bad")

    def choose(self, name: str) -> None:
        self.definition.setCurrentIndex(max(self.definition.findData(name), 0))

    def check_inputs(self) -> str | None:
        return None if self.definition.currentData() else "Choose the recon definition to run."

    def work(self) -> tuple[Any, tuple[Any, ...]]:
        return run, (self.ws.db, self.ws.actor, self.definition.currentData(), self.as_of.value())

    def show_result(self, result: Any) -> None:
        total = sum(result.breaks.values())
        kinds = ", ".join(f"{BREAK_WORDS.get(k, k)} {v:,}" for k, v in sorted(result.breaks.items()) if v)
        self.set_summary(
            f"Run {result.run_id} of <b>{result.definition}</b> as of {result.as_of}: "
            f"{result.left_records:,} internal vs {result.right_records:,} external records. "
            f"<b>{result.matched:,}</b> matched; <b style='color:#c62828'>{plural(total, 'break')}</b>"
            + (f" ({kinds})" if kinds else "")
            + f". New {result.new_breaks:,}, still open {result.still_open:,}, reopened {result.reopened:,}, "
            f"resolved {result.resolved:,}. {result.duration:.2f} s."
        )
        rows: list[list[Any]] = [[f"matched by pass {p}", int(n)] for p, n in result.matched_by_pass.items()]
        rows += [[f"breaks: {BREAK_WORDS.get(k, k)}", int(v)] for k, v in sorted(result.breaks.items())]
        rows += [
            ["new breaks", result.new_breaks],
            ["still open", result.still_open],
            ["reopened", result.reopened],
            ["resolved by this run", result.resolved],
            ["left out: matched by a person", result.manual],
            ["left out: outside coverage", result.out_of_coverage],
        ]
        self.counts_table = ResultTable(["", "Count"])
        self.counts_table.fill(rows)
        self.add_result(self.counts_table, 1)
        self.show_breaks.show()
        self._show_breaks()

    def _show_breaks(self) -> None:
        """Bring the break investigation pane forward with this definition's open breaks."""
        result = self.result_value
        if result is None:
            return
        ids = [d.id for d in self.definitions if d.name == result.definition]
        self.open_pane.emit(
            "break_investigation",
            {"definition_ids": ids, "title": f"Open breaks of {result.definition} (run {result.run_id})"},
        )
