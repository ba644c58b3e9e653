"""The plain (delegate-painted) tables of the in-memory work lists: breaks, approvals.

These lists hold a few thousand rows at most and paint through Qt's own delegate (unlike the windowed tables of
:mod:`app.views.common.windowed_table`); what they share is their set-up and keeping the selection across a reload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from PySide6.QtCore import QAbstractItemModel, QItemSelection, QItemSelectionModel, Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableView

ROW_HEIGHT = 24


def list_table(
    model: QAbstractItemModel,
    object_name: str,
    accessible_name: str,
    widths: Iterable[int],
    *,
    sortable: bool = False,
) -> QTableView:
    """A whole-row, multi-select, read-only table with fixed row heights, the last column stretched."""
    table = QTableView()
    table.setObjectName(object_name)
    table.setAccessibleName(accessible_name)
    table.setModel(model)
    table.setAlternatingRowColors(True)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setShowGrid(False)
    table.setWordWrap(False)
    if sortable:
        table.setCornerButtonEnabled(False)
    table.verticalHeader().hide()
    table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
    header = table.horizontalHeader()
    if sortable:
        header.setSectionsClickable(True)
        header.setSortIndicatorShown(True)
    header.setHighlightSections(False)
    header.setStretchLastSection(True)
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    for i, width in enumerate(widths):
        header.resizeSection(i, width)
    return table


def reselect(
    table: QTableView, row_of: Callable[[int], int | None], current: int | None, selected: list[int]
) -> None:
    """Select the rows of the ``selected`` ids and make ``current``'s row current, quietly (no selection signals:
    the caller says what changed once), after the rows were read again."""
    model = table.model()
    sm = table.selectionModel()
    sel = QItemSelection()
    last = model.columnCount() - 1
    for item in selected:
        row = row_of(item)
        if row is not None:
            sel.select(model.index(row, 0), model.index(row, last))
    sm.blockSignals(True)
    try:
        row = row_of(current) if current is not None else None
        if row is not None:
            sm.setCurrentIndex(model.index(row, 0), QItemSelectionModel.SelectionFlag.NoUpdate)
        sm.select(
            sel, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
    finally:
        sm.blockSignals(False)
    table.viewport().update()


def notice_label() -> QLabel:
    """The pane's notice line (an action's outcome, a load error), hidden until there is something to say."""
    notice = QLabel("")
    notice.setObjectName("paneNotice")
    notice.setWordWrap(True)
    notice.hide()
    return notice
