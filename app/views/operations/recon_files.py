"""Operations > Reconcile two files…: the analyst's ad hoc comparison of two CSV/XLSX files, no database needed.

Pick LEFT and RIGHT; their headers are read in the background and the columns both files have are listed: tick the
key columns and the compared ones, each with its tolerance (exact, ``abs=X``, ``rel=X`` or ``days=N``). The same
engine as the recon definitions (``recon.files.reconcile_files``) compares them and can write the break report
(.csv or .xlsx). The result counts matched, mismatched, missing_left (keys only in RIGHT), missing_right (keys only
in LEFT) and duplicate_keys, and previews the report's first lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QWidget,
)

from app.views.operations.common import WARN, OperationDialog, ResultTable, plural

if TYPE_CHECKING:
    from app.views.tasks import TaskContext, TaskFailure

PREVIEW_ROWS = 500
TOLERANCES = (("exact", "exact"), ("abs", "abs ="), ("rel", "rel ="), ("days", "days ="))
FILE_FILTER = "Tables (*.csv *.txt *.xlsx *.xlsm);;All files (*)"
COUNTS = (
    ("matched", "matched: keys whose records agree within tolerance"),
    ("mismatched", "mismatched: keys on both sides that differ beyond tolerance"),
    ("missing_left", "missing left: keys only in RIGHT"),
    ("missing_right", "missing right: keys only in LEFT"),
    ("duplicate_keys", "duplicate keys: key values on a side more than once (for a person to sort out)"),
)


def read_headers(left: str, right: str) -> tuple[list[str], list[str]]:
    """Worker: both files' column names (the files' own refusals — no such file, unreadable — come back as is)."""
    from app.services.recon.files import read_table

    return list(read_table(left, "LEFT").columns), list(read_table(right, "RIGHT").columns)


def reconcile(
    ctx: TaskContext, left: str, right: str, keys: list[str], compare: list[str], out: str | None
) -> tuple[dict[str, Any], list[str], list[list[str]]]:
    """Worker: compare, write the report, and hand back the summary with the report's first lines as text."""
    from app.services.recon.files import reconcile_files

    ctx.progress(0, 0, f"Comparing {Path(left).name} with {Path(right).name}")
    result = reconcile_files(left, right, keys, compare, out=out)
    head = result.report.head(PREVIEW_ROWS).astype(str)
    return result.summary, [str(c) for c in head.columns], head.to_numpy().tolist()


class ReconcileFilesDialog(OperationDialog):
    title = "Reconcile two files"
    intro = (
        "Compare two CSV or XLSX files on key columns, as an analyst does ad hoc: the same engine as the "
        "reconciliations, no database involved. Numbers are compared exactly (no float rounding) within the "
        "tolerance you give; a key that occurs twice on a side is reported, never paired by row order."
    )
    run_label = "Compare"
    permission = None  # reads two files and writes one: nothing in the database, anyone may
    task_label = "Reconciling two files"

    def __init__(self, workspace: Any, parent: QWidget | None = None) -> None:
        super().__init__(workspace, parent)
        self.resize(940, 800)

    #: The columns of both files were read and listed.
    columns_shown = Signal(list)

    def build_inputs(self) -> None:
        self.left = self._file_row("LEFT", "left")
        self.right = self._file_row("RIGHT", "right")
        self.columns_note = QLabel("Choose both files: their columns are listed here.")
        self.columns_note.setObjectName("muted")
        self.columns_note.setWordWrap(True)
        self.form.addRow("", self.columns_note)
        self.columns = QTableWidget(0, 5)
        self.columns.setObjectName("reconColumns")
        self.columns.setHorizontalHeaderLabels(["Column", "Key", "Compare", "Tolerance", "Value"])
        self.columns.verticalHeader().hide()
        self.columns.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.columns.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.columns.setFixedHeight(60)
        self.form.addRow("Columns", self.columns)
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        self.out = QLineEdit()
        self.out.setPlaceholderText("optional: where to write the break report (.csv or .xlsx)")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_out)
        line.addWidget(self.out, 1)
        line.addWidget(browse)
        self.form.addRow("Break report", row)
        self._rows: dict[str, tuple[QCheckBox, QCheckBox, QComboBox, QLineEdit]] = {}

    def _file_row(self, label: str, which: str) -> QLineEdit:
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        edit = QLineEdit()
        edit.setPlaceholderText(f"the {label} file (.csv or .xlsx)")
        edit.editingFinished.connect(self.read_columns)
        browse = QPushButton("Choose…")
        browse.clicked.connect(lambda: self._choose(edit, label))
        line.addWidget(edit, 1)
        line.addWidget(browse)
        self.form.addRow(label, row)
        return edit

    def _choose(self, edit: QLineEdit, label: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"The {label} file", edit.text(), FILE_FILTER)
        if path:
            edit.setText(path)
            self.read_columns()

    def _choose_out(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Write the break report to", self.out.text(), "CSV (*.csv);;Excel workbook (*.xlsx)"
        )
        if path:
            self.out.setText(path)

    def set_files(self, left: str, right: str) -> None:
        self.left.setText(left)
        self.right.setText(right)
        self.read_columns()

    # --- columns --------------------------------------------------------------------------------------------------

    def read_columns(self) -> None:
        left, right = self.left.text().strip(), self.right.text().strip()
        if not left or not right:
            return
        self.columns_note.setText("Reading the columns…")
        self.ws.tasks.call(
            read_headers,
            left,
            right,
            on_done=self._columns_read,
            on_error=self._columns_failed,
            label="Reading the files' columns",
            owner=self,
        )

    def _columns_failed(self, failure: TaskFailure) -> None:
        self.columns.setRowCount(0)
        self._rows.clear()
        self.columns_note.setText("")
        self.show_notice(failure.message, "bad")

    def _columns_read(self, headers: object) -> None:
        assert isinstance(headers, tuple)
        left_cols, right_cols = headers
        common = [c for c in left_cols if c in set(right_cols)]
        only = sorted(set(left_cols) ^ set(right_cols))
        self.notice.hide()
        self.columns_note.setText(
            f"{plural(len(common), 'column')} in both files"
            + (f"; only on one side (not comparable): {', '.join(only)}" if only else "")
            + ". Tick the key columns, and the columns to compare with their tolerance."
        )
        self.columns.setRowCount(len(common))
        self._rows.clear()
        for r, col in enumerate(common):
            name = QLabel(col)
            key = QCheckBox()
            compare = QCheckBox()
            tol = QComboBox()
            for value, text in TOLERANCES:
                tol.addItem(text, value)
            amount = QLineEdit()
            amount.setPlaceholderText("0.01, 0.001 or 1")
            amount.setEnabled(False)
            tol.currentIndexChanged.connect(
                lambda _i, t=tol, a=amount: a.setEnabled(t.currentData() != "exact")
            )
            key.toggled.connect(lambda on, c=compare: c.setChecked(False) if on else None)
            compare.toggled.connect(lambda on, k=key: k.setChecked(False) if on else None)
            self.columns.setCellWidget(r, 0, name)
            for c, w in ((1, key), (2, compare), (3, tol), (4, amount)):
                self.columns.setCellWidget(r, c, w)
            self._rows[col] = (key, compare, tol, amount)
        self.columns.resizeColumnsToContents()
        self.columns.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        # As tall as its rows (up to eight): the room below is the result's.
        rows_height = sum(self.columns.rowHeight(r) for r in range(min(len(common), 8)))
        self.columns.setFixedHeight(self.columns.horizontalHeader().height() + rows_height + 4)
        self.columns_shown.emit(common)

    def set_key(self, *cols: str) -> None:
        for col in cols:
            self._rows[col][0].setChecked(True)

    def set_compare(self, col: str, kind: str = "exact", value: str = "") -> None:
        _key, compare, tol, amount = self._rows[col]
        compare.setChecked(True)
        tol.setCurrentIndex(max(tol.findData(kind), 0))
        amount.setText(value)

    def keys(self) -> list[str]:
        return [c for c, (k, _c, _t, _a) in self._rows.items() if k.isChecked()]

    def compare_specs(self) -> list[str]:
        specs = []
        for col, (_k, compare, tol, amount) in self._rows.items():
            if not compare.isChecked():
                continue
            kind = tol.currentData()
            specs.append(col if kind == "exact" else f"{col}:{kind}={amount.text().strip()}")
        return specs

    # --- running --------------------------------------------------------------------------------------------------

    def check_inputs(self) -> str | None:
        if not self.left.text().strip() or not self.right.text().strip():
            return "Choose the LEFT and the RIGHT file."
        if not self._rows:
            return "The files' columns have not been read yet."
        if not self.keys():
            return "Tick at least one key column: records are paired on it."
        for col, (_k, compare, tol, amount) in self._rows.items():
            if compare.isChecked() and tol.currentData() != "exact" and not amount.text().strip():
                return f"Give the {tol.currentData()} tolerance of {col} (e.g. 0.01), or compare it exactly."
        out = self.out.text().strip()
        if out and Path(out).suffix.lower() not in (".csv", ".xlsx"):
            return "The break report is written as .csv or .xlsx."
        return None

    def work(self) -> tuple[Any, tuple[Any, ...]]:
        return reconcile, (
            self.left.text().strip(),
            self.right.text().strip(),
            self.keys(),
            self.compare_specs(),
            self.out.text().strip() or None,
        )

    def show_result(self, result: Any) -> None:
        summary, columns, rows = result
        compared = ", ".join(f"{c} ({t})" for c, t in summary.get("compare", {}).items()) or "none"
        text = (
            f"{summary['left_rows']:,} rows LEFT, {summary['right_rows']:,} rows RIGHT, on "
            f"{', '.join(summary['keys'])}; compared: {compared}.<br>"
            + " · ".join(f"<b>{summary[k]:,}</b> {k}" for k, _ in COUNTS)
            + f" ({summary.get('seconds', 0):.2f} s)."
        )
        if summary.get("out"):
            text += f"<br>Break report written to {summary['out']}."
        self.set_summary(text)
        self.summary.setToolTip("\n".join(words for _k, words in COUNTS))
        self.counts = {k: int(summary[k]) for k, _ in COUNTS}
        if rows:
            shown = f" (first {len(rows):,})" if len(rows) == PREVIEW_ROWS else ""
            self.add_caption(f"Breaks{shown}")
            self.report_table = ResultTable(columns)
            self.report_table.fill(rows, [WARN] * len(rows))
            self.add_result(self.report_table, 1)


__all__ = ["ReconcileFilesDialog"]
