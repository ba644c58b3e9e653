"""Operations > Import statements…, and statement files dropped on the break investigation pane.

Cash statements (MT940/942/950, camt.052/053/054), holdings (MT535, semt.002) and counterparty confirmations or
custodian positions as CSV/XLSX with a column-mapping profile go to the statements service one file at a time
(``importer.import_one``: one transaction per file, a refused file changes nothing), with a progress bar over the
files. The result lists every file (imported, already there, refused with file, line, field and reason) and every
finding kept with an imported statement: balance mismatches, sequence gaps and overlaps, broken balance chains.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QComboBox, QWidget

from app.services.permissions import Permission
from app.services.statements.csv_profiles import BUILTIN
from app.views.operations.common import BAD, WARN, FileImportDialog, FileList, ResultTable, plural

if TYPE_CHECKING:
    from app.views.panes.base import Workspace
    from app.views.tasks import TaskContext

FORMATS = (
    ("Detect from the content", None),
    ("MT940 / MT942 / MT950 (cash)", "mt940"),
    ("camt.052 / 053 / 054 (cash)", "camt"),
    ("MT535 (holdings)", "mt535"),
    ("semt.002 (holdings)", "semt002"),
    ("CSV with a profile", "csv"),
    ("XLSX with a profile", "xlsx"),
)
FILE_FILTER = (
    "Statements (*.sta *.mt940 *.940 *.942 *.950 *.535 *.fin *.txt *.xml *.csv *.xlsx);;All files (*)"
)


def import_files(
    ctx: TaskContext, db: Any, actor: Any, sources: list[Any], fmt: str | None, profile: str | None
) -> Any:
    """Worker: import each file in turn (a path, or ``(name, bytes)``) into one StatementImportResult."""
    from app.services.permissions import require
    from app.services.statements import importer

    require(actor, Permission.IMPORT)  # refuse before reading anything, as import_statements does
    if profile is not None:
        from app.services.statements.csv_profiles import load_profile

        load_profile(profile)  # an unknown profile is refused before any file is read
    started = time.perf_counter()
    result = importer.StatementImportResult()
    n = len(sources)
    for i, source in enumerate(sources):
        ctx.check()
        name = source[0] if isinstance(source, tuple) else Path(source).name
        ctx.progress(i, n, f"Importing {name} ({i + 1} of {n})")
        result.files.append(importer.import_one(db, actor, source, fmt=fmt, profile=profile))
    result.seconds = time.perf_counter() - started
    ctx.progress(n, n, "Done")
    return result


def _statement_label(s: Any) -> str:
    return str(s.sequence_number or s.statement_ref or s.statement_date.isoformat())


class StatementImportDialog(FileImportDialog):
    title = "Import statements"
    intro = (
        "Bank, custodian and counterparty statements: MT940/942/950 and camt.052/053/054 (cash), MT535 and "
        "semt.002 (holdings), CSV/XLSX confirmations and positions with a column profile. A file is imported or "
        "refused as a whole; one imported before changes nothing; balances and sequences are checked."
    )
    task_label = "Importing statements"

    def build_inputs(self) -> None:
        self.files = FileList("Statement files", FILE_FILTER)
        self.form.addRow("Files", self.files)
        self.format = QComboBox()
        for text, value in FORMATS:
            self.format.addItem(text, value)
        self.form.addRow("Format", self.format)
        self.profile = QComboBox()
        self.profile.setEditable(False)
        self.profile.addItem("Default for the file (confirmations)", None)
        for name, p in sorted(BUILTIN.items()):
            self.profile.addItem(f"{name}: {p.description}", name)
        self.profile.addItem("A JSON profile file…", "__file__")
        self.profile.setToolTip(
            "How a CSV/XLSX file names its columns (ignored for SWIFT and XML statements)"
        )
        self.profile.activated.connect(self._profile_picked)
        self.form.addRow("CSV/XLSX profile", self.profile)

    def _profile_picked(self, index: int) -> None:
        if self.profile.itemData(index) != "__file__":
            return
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self, "Column profile", "", "JSON profile (*.json)")
        if path:
            self.set_profile(path)
        else:
            self.profile.setCurrentIndex(0)

    def set_profile(self, value: str | None) -> None:
        i = self.profile.findData(value)
        if i < 0 and value:
            self.profile.insertItem(self.profile.count() - 1, Path(value).name, value)
            i = self.profile.findData(value)
        self.profile.setCurrentIndex(max(i, 0))

    def set_format(self, fmt: str | None) -> None:
        self.format.setCurrentIndex(max(self.format.findData(fmt), 0))

    def check_inputs(self) -> str | None:
        return None if self.files.paths() else "Add the statement files to import (or drop them on the list)."

    def work(self) -> tuple[Any, tuple[Any, ...]]:
        profile = self.profile.currentData()
        return import_files, (
            self.ws.db,
            self.ws.actor,
            self.files.paths(),
            self.format.currentData(),
            profile if profile != "__file__" else None,
        )

    def show_result(self, result: Any) -> None:
        c = result.counts()
        text = (
            f"{plural(c['files'], 'file')}: <b>{c['files_imported']:,}</b> imported, "
            f"<b>{c['files_duplicate']:,}</b> already there, "
            f"<b style='color:#c62828'>{c['files_refused']:,}</b> refused. "
            f"{plural(c['statements_imported'], 'statement')} ({plural(c['lines_imported'], 'line')}) imported, "
            f"{c['statements_duplicate']:,} already there; "
            f"<b style='color:#b7791f'>{plural(c['balance_mismatches'], 'balance mismatch', 'balance mismatches')}"
            f"</b>, <b style='color:#b7791f'>{plural(c['sequence_findings'], 'sequence finding')}</b>."
        )
        self.set_summary(text)
        self.add_caption("Per file")
        self.files_table = ResultTable(
            ["File", "Format", "Outcome", "Statements", "New", "Already there", "Lines", "Findings", "Reason"]
        )
        rows, tints = [], []
        for f in result.files:
            new = [s for s in f.statements if s.status == "imported"]
            findings = sum(len(s.warnings) for s in f.statements)
            rows.append(
                [
                    f.file,
                    f.format or "",
                    f.status,
                    len(f.statements),
                    len(new),
                    len(f.statements) - len(new),
                    sum(s.lines for s in new),
                    findings,
                    f.reason or "",
                ]
            )
            tints.append(BAD if f.status == "refused" else (WARN if findings else None))
        self.files_table.fill(rows, tints)
        self.files_table.fit_height(len(rows), 7)
        self.add_result(self.files_table)
        details: list[list[Any]] = []
        for f in result.files:
            if f.status == "refused":
                for p in f.problems[:20]:
                    details.append(
                        [f.file, p.get("line") or "", p.get("field") or "", "REFUSED", p.get("reason")]
                    )
                continue
            for s in f.statements:
                for w in s.warnings:
                    details.append(
                        [f.file, s.account_identifier, _statement_label(s), w.get("code"), w.get("message")]
                    )
        if details:
            self.add_caption("Findings and refusals")
            self.findings_table = ResultTable(["File", "Account / line", "Statement / field", "Code", "What"])
            self.findings_table.fill(details, [BAD if d[3] == "REFUSED" else WARN for d in details])
            self.add_result(self.findings_table, 1)

    def file_outcomes(self) -> dict[str, str]:
        """File name -> imported / duplicate / refused, as the table shows it (tests)."""
        return {row[0]: row[2] for row in self.files_table.texts()}


def open_statement_import(
    workspace: Workspace, parent: QWidget, paths: list[str] | None = None, *, start: bool = False
) -> StatementImportDialog:
    dialog = StatementImportDialog(workspace, paths, parent)
    dialog.open()
    if start and paths:
        dialog.start()
    return dialog
