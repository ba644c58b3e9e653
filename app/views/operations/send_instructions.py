"""Operations > Send instructions…: write MT540–MT543 or sese.023 for instructed items into a folder.

``messages.write_outgoing`` renders every INSTRUCTED instruction (or the ones selected in the settlement queue),
checks each message against the structure of its format before anything is written, writes one file per message or
one batch file, and records them as sent (a message sent before is written again but not recorded twice). The result
lists the files written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.services.permissions import Permission
from app.views.operations.common import OperationDialog, ResultTable, choose_folder, plural

if TYPE_CHECKING:
    from app.views.panes.base import Workspace
    from app.views.tasks import TaskContext

FORMATS = (
    (
        "mt",
        "ISO 15022: MT540–MT543 (.fin), the type from each instruction (receive/deliver, free/against payment)",
    ),
    ("sese023", "ISO 20022: sese.023 securities settlement transaction instruction (.xml)"),
)


def write(
    ctx: TaskContext, db: Any, actor: Any, fmt: str, out_dir: str, batch: bool, ids: list[int] | None
) -> Any:
    """Worker: one call, one transaction (the service checks every message before writing the first file)."""
    from app.services.settlement.messages import write_outgoing

    ctx.progress(0, 0, "Rendering and checking the messages")
    return write_outgoing(db, actor, fmt=fmt, out_dir=out_dir, batch=batch, ids=ids)  # type: ignore[arg-type]


def _radios(
    parent: QWidget, options: tuple[tuple[str, str], ...]
) -> tuple[QWidget, QButtonGroup, dict[str, QRadioButton]]:
    box = QWidget(parent)
    column = QVBoxLayout(box)
    column.setContentsMargins(0, 0, 0, 0)
    group = QButtonGroup(box)
    buttons: dict[str, QRadioButton] = {}
    for i, (key, text) in enumerate(options):
        b = QRadioButton(text)
        b.setChecked(i == 0)
        group.addButton(b)
        column.addWidget(b)
        buttons[key] = b
    return box, group, buttons


class SendInstructionsDialog(OperationDialog):
    title = "Send settlement instructions"
    intro = (
        "Write the outgoing instructions of instructed items for the agents, checked against the structure of their "
        "format, and record them as sent."
    )
    run_label = "Write messages"
    permission = Permission.RUN_PROCESSES
    task_label = "Writing settlement instructions"

    def __init__(
        self, workspace: Workspace, selected: list[int] | None = None, parent: QWidget | None = None
    ) -> None:
        self._selected = list(selected or [])
        super().__init__(workspace, parent)

    def build_inputs(self) -> None:
        box, _g, self.format_buttons = _radios(self, FORMATS)
        self.form.addRow("Format", box)
        box, _g, self.layout_buttons = _radios(
            self, (("files", "One file per message"), ("batch", "One batch file holding every message"))
        )
        self.form.addRow("Files", box)
        scope = (("all", "Every instructed instruction"),)
        if self._selected:
            scope = (
                (
                    "selected",
                    f"The {plural(len(self._selected), 'instruction')} selected in the settlement queue",
                ),
                *scope,
            )
        box, _g, self.scope_buttons = _radios(self, scope)
        self.form.addRow("Which", box)
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("the folder the agents' gateway picks the files up from")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose)
        line.addWidget(self.folder, 1)
        line.addWidget(browse)
        self.form.addRow("Output folder", row)

    def _choose(self) -> None:
        folder = choose_folder(self, "Write the messages into", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def set_format(self, fmt: str, *, batch: bool = False) -> None:
        self.format_buttons[fmt].setChecked(True)
        self.layout_buttons["batch" if batch else "files"].setChecked(True)

    def fmt(self) -> str:
        return next(k for k, b in self.format_buttons.items() if b.isChecked())

    def check_inputs(self) -> str | None:
        folder = self.folder.text().strip()
        if not folder:
            return "Choose the folder to write the messages into."
        if Path(folder).exists() and not Path(folder).is_dir():
            return f"{folder} is a file, not a folder."
        return None

    def work(self) -> tuple[Any, tuple[Any, ...]]:
        ids = (
            self._selected
            if self.scope_buttons.get("selected") and self.scope_buttons["selected"].isChecked()
            else None
        )
        batch = self.layout_buttons["batch"].isChecked()
        return write, (self.ws.db, self.ws.actor, self.fmt(), self.folder.text().strip(), batch, ids)

    def show_result(self, result: Any) -> None:
        fmt = "MT540–MT543" if self.fmt() == "mt" else "sese.023"
        if not result.files:
            self.set_summary("No instructed instruction to send: nothing was written.")
            return
        text = (
            f"Wrote <b>{plural(result.written + result.already_sent, 'message')}</b> ({fmt}) into "
            f"{plural(len(result.files), 'file')} in {self.folder.text().strip()}; "
            f"<b>{result.written:,}</b> recorded as sent."
        )
        if result.already_sent:
            text += f" {plural(result.already_sent, 'message')} had been sent before: written again, not recorded twice."
        self.set_summary(text)
        self.add_caption("Files written")
        self.files_table = ResultTable(["File", "Folder"])
        self.files_table.fill([[Path(f).name, str(Path(f).parent)] for f in result.files])
        self.add_result(self.files_table, 1)
