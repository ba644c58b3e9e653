"""Operations > Import settlement messages…, and message files dropped on the settlement queue.

MT544-548 (ISO 15022), sese.024/025 (ISO 20022) and custodian CSV files go to the settlement message service one
file at a time (``messages.import_bytes``: one transaction per file), with a progress bar over the files. The result
says how many messages were applied, unmatched, quarantined and duplicates, per message type, and lists every
message that was not applied with its reason (the quarantined ones are kept for clerks in the queue). A file that
cannot be read, or is refused as a whole (binary, empty), is listed with the reason and the others still go in.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QWidget

from app.services.errors import ValidationFailed
from app.views.operations.common import (
    BAD,
    WARN,
    FileImportDialog,
    FileList,
    OptionalDate,
    ResultTable,
    plural,
)

if TYPE_CHECKING:
    from app.views.panes.base import Workspace
    from app.views.tasks import TaskContext

OUTCOMES = ("applied", "unmatched", "quarantined", "duplicates")
FILE_FILTER = "Settlement messages (*.fin *.txt *.mt *.xml *.csv *.out);;All files (*)"


def _csv_profile(path: str | None) -> Any:
    """Worker: the custodian CSV column mapping from a JSON file (as ``--csv-profile`` reads it), or None."""
    if not path:
        return None
    from app.services.settlement.messages import DEFAULT_CSV_PROFILE, CsvProfile

    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValidationFailed(f"{Path(path).name}: cannot read the CSV profile ({err}).") from None
    if not isinstance(spec, dict):
        raise ValidationFailed(f"{Path(path).name}: a CSV profile is a JSON object.")
    return CsvProfile(
        name=str(spec.get("name", Path(path).stem)),
        delimiter=str(spec.get("delimiter", ",")),
        date_format=str(spec.get("date_format", "%Y-%m-%d")),
        decimal_comma=bool(spec.get("decimal_comma", False)),
        columns={**DEFAULT_CSV_PROFILE.columns, **dict(spec.get("columns", {}))},
    )


def import_files(
    ctx: TaskContext, db: Any, actor: Any, paths: list[str], as_of: dt.date | None, profile_path: str | None
) -> Any:
    """Worker: import each file in turn into one MessageImportResult; an unreadable file is listed, not fatal."""
    from app.services.settlement import messages

    profile = _csv_profile(profile_path)
    result = messages.MessageImportResult()
    n = len(paths)
    for i, path in enumerate(paths):
        ctx.check()
        name = Path(path).name
        ctx.progress(i, n, f"Importing {name} ({i + 1} of {n})")
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            result.files += 1
            result.refused_files.append(name)
            result.issues.append(
                {
                    "file": name,
                    "message": None,
                    "type": None,
                    "outcome": "refused",
                    "reason": f"cannot read the file ({err.strerror or err})",
                }
            )
            continue
        messages.import_bytes(db, actor, data, name, as_of=as_of, csv_profile=profile, result=result)
    ctx.progress(n, n, "Done")
    return result


class MessageImportDialog(FileImportDialog):
    title = "Import settlement messages"
    intro = (
        "Status advices and confirmations from agents and CSDs: MT544–MT548 (ISO 15022), sese.024/025 (ISO 20022) "
        "and custodian CSV. Each message is matched to its instruction and applied, kept as quarantined with the "
        "reason, or recognised as a duplicate. One transaction per file."
    )
    task_label = "Importing settlement messages"

    def build_inputs(self) -> None:
        self.files = FileList("Settlement message files", FILE_FILTER)
        self.form.addRow("Files", self.files)
        self.as_of = OptionalDate("Status advices without a date are from", checked=False)
        self.as_of.setToolTip("Default: today")
        self.form.addRow("As of", self.as_of)
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        self.profile = QLineEdit()
        self.profile.setPlaceholderText("default columns (our_ref, type, match_status, …)")
        self.profile.setClearButtonEnabled(True)
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_profile)
        line.addWidget(self.profile, 1)
        line.addWidget(browse)
        self.form.addRow("Custodian CSV profile", row)

    def _choose_profile(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "CSV column mapping", "", "JSON profile (*.json)")
        if path:
            self.profile.setText(path)

    def check_inputs(self) -> str | None:
        return None if self.files.paths() else "Add the message files to import (or drop them on the list)."

    def work(self) -> tuple[Any, tuple[Any, ...]]:
        return import_files, (
            self.ws.db,
            self.ws.actor,
            self.files.paths(),
            self.as_of.value(),
            self.profile.text().strip() or None,
        )

    def show_result(self, result: Any) -> None:
        parts = [
            f"<b>{result.applied:,}</b> applied",
            f"<b>{result.unmatched:,}</b> unmatched",
            f"<b style='color:#b7791f'>{result.quarantined:,}</b> quarantined",
            f"<b>{result.duplicates:,}</b> duplicates",
        ]
        text = (
            f"{plural(result.messages, 'message')} in {plural(result.files, 'file')}: "
            + ", ".join(parts)
            + f"; {plural(result.instructions_changed, 'instruction')} changed."
        )
        if result.refused_files:
            text += (
                f"<br><b style='color:#c62828'>{plural(len(result.refused_files), 'file')} refused</b>: "
                + (", ".join(result.refused_files))
            )
        if result.unmatched or result.quarantined:
            text += "<br>The messages not applied are kept, with their reasons, for clerks to work."
        self.set_summary(text)
        by_type = sorted(result.by_type.items())
        if by_type:
            self.add_caption("Per message type")
            self.types_table = ResultTable(["Type", "Applied", "Unmatched", "Quarantined", "Duplicates"])
            self.types_table.fill([[t, *(int(c.get(k, 0)) for k in OUTCOMES)] for t, c in by_type])
            self.types_table.fit_height(len(by_type), 6)
            self.add_result(self.types_table)
        if result.issues:
            self.add_caption("Not applied, and why")
            self.issues_table = ResultTable(["File", "Message", "Type", "Outcome", "Reason"])
            rows = [
                [
                    i.get("file"),
                    i.get("message") or "",
                    i.get("type") or "",
                    i.get("outcome"),
                    i.get("reason"),
                ]
                for i in result.issues
            ]
            self.issues_table.fill(
                rows, [BAD if i.get("outcome") == "refused" else WARN for i in result.issues]
            )
            self.add_result(self.issues_table, 1)

    def issue_lines(self) -> list[str]:
        """Each issue as ``file: outcome: reason`` (tests read what the user reads)."""
        table = getattr(self, "issues_table", None)
        if table is None:
            return []
        return [f"{r[0]}: {r[3]}: {r[4]}" for r in table.texts()]


def open_message_import(
    workspace: Workspace, parent: QWidget, paths: list[str] | None = None, *, start: bool = False
) -> MessageImportDialog:
    """Open the dialog (with ``paths`` listed); ``start`` imports them at once (files dropped on a pane)."""
    dialog = MessageImportDialog(workspace, paths, parent)
    dialog.open()
    if start and paths:
        dialog.start()
    return dialog
