"""The queue's table: the shared windowed table (fixed row height, whole-row selection, keyboard first, rows painted
in one call per paint; see :mod:`app.views.common.windowed_table`), its columns sized from the queue's columns."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from app.views.common.windowed_table import ROW_HEIGHT, WindowedTable, paint_rows
from app.views.qt_models.paged_model import PagedTableModel


class QueueTable(WindowedTable):
    """Enter opens the detail; F5 refreshes when the pane is not in a main window."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("queueTable")

    def set_paged_model(self, model: PagedTableModel) -> None:
        super().set_paged_model(model)
        header = self.horizontalHeader()
        for i, column in enumerate(model.columns):
            header.resizeSection(i, column.width)
            header.setSectionHidden(i, not column.default_visible)


__all__ = ["ROW_HEIGHT", "QueueTable", "paint_rows"]
