"""Painting the blotter's rows: the whole visible area in one Python call, not one (or seven) per cell.

Qt's item views paint cell by cell through a delegate that asks the model for seven roles; every one of those is a
call from C++ into Python, and each such call must take Python's GIL. While a worker thread is busy in Python (a
page of rows being converted), each take can wait for the worker's 5 ms switch interval: a screenful of 360 cells
then paints in 100-180 ms instead of 20, and the GUI thread stalls. :func:`paint_rows` is called once from the
table's paintEvent and draws the backgrounds, icons and elided texts itself from each row's precomputed
:class:`~app.views.qt_models.blotter_model.RowLook`, with the colours of resources/style.qss (selection #dbe7f7,
alternate rows #f7f9fb, text #1f2933, focus #1f5fbf). One GIL take per paint, whatever the workers do.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QRect, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QTableView

from app.views.qt_models.blotter_model import ALIGN, COL, LOADING_FOREGROUND, LOADING_TEXT, BlotterModel

SELECTED_BACKGROUND = QColor("#dbe7f7")
ALTERNATE_BACKGROUND = QColor("#f7f9fb")
TEXT = QColor("#1f2933")
FOCUS = QColor("#1f5fbf")
PADDING = 6
ICON = 16
_ELIDE = Qt.TextElideMode.ElideRight
_TRADE_REF = COL["trade_ref"]


def paint_rows(
    view: QTableView, model: BlotterModel, painter: QPainter, clip: QRect, row_height: int
) -> None:
    """Paint the rows of ``view`` that intersect ``clip`` (viewport coordinates)."""
    rows = model.rowCount()
    if rows == 0:
        return
    first = view.rowAt(clip.top())
    if first < 0:
        return
    last = view.rowAt(clip.bottom())
    if last < 0:
        last = rows - 1
    header = view.horizontalHeader()
    columns: list[tuple[int, int, int]] = []  # (logical, x, width) in visual order, only those in the clip
    for visual in range(header.count()):
        logical = header.logicalIndex(visual)
        if header.isSectionHidden(logical):
            continue
        x, width = header.sectionViewportPosition(logical), header.sectionSize(logical)
        if x + width >= clip.left() and x <= clip.right() and width > 0:
            columns.append((logical, x, width))
    selection = view.selectionModel()
    root = QModelIndex()
    current = view.currentIndex().row() if view.hasFocus() else -1
    font = view.font()
    bold = QFont(font)
    bold.setWeight(QFont.Weight.DemiBold)
    painter.setFont(font)
    metrics, bold_metrics = painter.fontMetrics(), None
    in_bold = False
    for row in range(first, last + 1):
        y = view.rowViewportPosition(row)
        look = model.look(row)
        selected = selection is not None and selection.isRowSelected(row, root)
        if selected:
            painter.fillRect(QRect(clip.left(), y, clip.width(), row_height), SELECTED_BACKGROUND)
        elif look is not None and look.background is not None:
            painter.fillRect(QRect(clip.left(), y, clip.width(), row_height), look.background)
        elif row & 1:
            painter.fillRect(QRect(clip.left(), y, clip.width(), row_height), ALTERNATE_BACKGROUND)
        if look is None:
            # Not read yet: a light placeholder (look() has asked for its page).
            for logical, x, width in columns:
                if logical == _TRADE_REF:
                    painter.setPen(LOADING_FOREGROUND)
                    painter.drawText(
                        QRect(x + PADDING, y, width - 2 * PADDING, row_height), ALIGN[logical], LOADING_TEXT
                    )
            continue
        for logical, x, width in columns:
            left, right = x + PADDING, x + width - PADDING
            icon = model.icon(look, logical)
            if icon is not None:
                icon.paint(painter, QRect(left, y + (row_height - ICON) // 2, ICON, ICON))
                left += ICON + 4
            text = look.texts[logical]
            if not text or right <= left:
                continue
            want_bold = look.bold(logical)
            if want_bold != in_bold:
                painter.setFont(bold if want_bold else font)
                in_bold = want_bold
                if want_bold and bold_metrics is None:
                    bold_metrics = painter.fontMetrics()
            fm = bold_metrics if in_bold and bold_metrics is not None else metrics
            colour = look.foreground(logical)
            painter.setPen(TEXT if colour is None else colour)
            space = right - left
            if fm.horizontalAdvance(text) > space:
                text = fm.elidedText(text, _ELIDE, space)
            painter.drawText(QRect(left, y, space, row_height), ALIGN[logical], text)
        if row == current:
            painter.setPen(QPen(FOCUS, 1))
            painter.drawRect(QRect(clip.left(), y, clip.width() - 1, row_height - 1))
