"""The windowed table every paged list uses: fixed row height, whole-row selection, keyboard first, rows painted in
one call per paint.

Why one call: Qt's item views paint cell by cell through a delegate that asks the model for seven roles; every one
of those is a call from C++ into Python, and each such call must take Python's GIL. While a worker thread is busy in
Python (a page of rows being converted), each take can wait for the worker's 5 ms switch interval: a screenful of
360 cells then paints in 100-180 ms instead of 20, and the GUI thread stalls. :func:`paint_rows` is called once from
the table's paintEvent and draws the backgrounds, icons and elided texts itself from each row's precomputed look
(:meth:`~app.views.qt_models.paged_model.PagedTableModel.look`), with the colours of resources/style.qss (selection
#dbe7f7, alternate rows #f7f9fb, text #1f2933, focus #1f5fbf). One GIL take per paint, whatever the workers do.

Each cell's text is drawn from a laid-out :class:`QStaticText` kept in :data:`TEXTS` (by text, width and weight):
laying out and measuring a text each paint was most of a paint's cost (a screenful took 12-14 ms of the GUI
thread, 4 ms from the cache; the pixels are the same), and on a busy machine every millisecond the GUI thread
needs a core is a millisecond it may wait for one. Each row's cells (icon, laid-out text, position, colour, weight)
are kept between paints too, for its look and the columns' geometry (:func:`row_cells`), and worked out before
rows arriving are shown (:meth:`WindowedTable.prepare_looks`, called by the model a few rows at a time): a paint of
rows already worked out is a fill and one draw per cell, 2-4 ms for a screenful instead of 4-7 (warm) or 12-20
(rows just arrived).
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from PySide6.QtCore import QItemSelectionModel, QPointF, QRect, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QIcon,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPaintEvent,
    QPen,
    QStaticText,
    QTransform,
)
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from app.views.qt_models.paged_model import LOADING_FOREGROUND, LOADING_TEXT, Look, PagedTableModel

ROW_HEIGHT = 24
SELECTED_BACKGROUND = QColor("#dbe7f7")
ALTERNATE_BACKGROUND = QColor("#f7f9fb")
TEXT = QColor("#1f2933")
FOCUS = QColor("#1f5fbf")
PADDING = 6
ICON = 16
_ELIDE = Qt.TextElideMode.ElideRight
_RIGHT = int(Qt.AlignmentFlag.AlignRight.value)
#: Laid-out cell texts: (text, width, bold, font) -> (the text elided to the width and laid out, its width, the
#: font's line height). The older half is dropped when full: a screenful is ~700 cells, and most texts (statuses,
#: dates, codes) repeat from row to row.
TEXTS: dict[tuple[str, int, bool, str], tuple[QStaticText, float, int]] = {}
MAX_TEXTS = 10_000
#: Rows' cells kept by a table between paints (see :func:`paint_rows`): beyond this many rows it starts afresh.
MAX_CACHED_ROWS = 1_000


def selected_rows(selection: QItemSelectionModel | None, first: int, last: int, columns: int) -> set[int]:
    """The rows of ``first``..``last`` that are selected whole (what ``isRowSelected`` says of each), read from the
    selection once per paint: ``isRowSelected`` per row calls back into the model's Python several times, each
    call a take of the GIL that a busy worker can make wait."""
    if selection is None or columns <= 0 or not selection.hasSelection():
        return set()
    spans: dict[int, list[tuple[int, int]]] = {}
    for rng in selection.selection():
        for row in range(max(rng.top(), first), min(rng.bottom(), last) + 1):
            spans.setdefault(row, []).append((rng.left(), rng.right()))
    whole: set[int] = set()
    for row, parts in spans.items():
        covered = 0  # every column before this one is selected
        for left, right in sorted(parts):
            if left > covered:
                break
            covered = max(covered, right + 1)
        if covered >= columns:
            whole.add(row)
    return whole


def draw_text(
    painter: QPainter,
    text: str,
    left: int,
    right: int,
    y: int,
    height: int,
    align: int,
    font: QFont,
    font_key: str,
    fm: QFontMetrics,
) -> None:
    """Draw ``text`` in the cell from ``left`` to ``right`` as ``painter.drawText(rect, align, text)`` would after
    eliding it to the width (``align``: left or right, centred vertically), from the laid-out cache.

    ``font`` is the painter's current font (``fm`` its metrics); ``font_key`` the plain font's ``key()``, read
    once per paint."""
    static, width, line = _laid_out(text, right - left, font.bold(), font, font_key, fm)
    # Against the aligned edge, centred on the row and rounded as Qt rounds it.
    x = right - width if align & _RIGHT else left
    painter.drawStaticText(QPointF(x, y + (height - line + 1) // 2), static)


#: The module's own draw_text (see paint_rows).
DRAW_TEXT = draw_text


def _laid_out(
    text: str, space: int, bold: bool, font: QFont, font_key: str, fm: QFontMetrics
) -> tuple[QStaticText, float, int]:
    key = (text, space, bold, font_key)
    hit = TEXTS.get(key)
    if hit is None:
        if fm.horizontalAdvance(text) > space:
            text = fm.elidedText(text, _ELIDE, space)
        static = QStaticText(text)
        static.setTextFormat(Qt.TextFormat.PlainText)  # never rich text, whatever a reference contains
        static.prepare(QTransform(), font)
        hit = (static, static.size().width(), fm.height())
        if len(TEXTS) >= MAX_TEXTS:
            # Drop the older half (a dict keeps insertion order): the texts just laid out for rows about to be
            # shown (WindowedTable.prepare_looks) stay, and the paint that shows them stays short.
            for old in list(islice(TEXTS, max(MAX_TEXTS // 2, 1))):
                del TEXTS[old]
        TEXTS[key] = hit
    return hit


class _Frame:
    """What a paint needs from the view besides the rows: the columns in the clip (logical, x, width) in visual
    order, the plain and bold fonts with their metrics, and the font's cache key. Worked out once per paint, and
    by :meth:`WindowedTable.prepare_looks` to work out the cells of rows about to be shown exactly as the paint
    will."""

    __slots__ = ("bold", "bold_metrics", "columns", "font", "font_key", "metrics")

    def __init__(self, view: QTableView, clip: QRect) -> None:
        header = view.horizontalHeader()
        self.columns: list[tuple[int, int, int]] = []
        for visual in range(header.count()):
            logical = header.logicalIndex(visual)
            if header.isSectionHidden(logical):
                continue
            x, width = header.sectionViewportPosition(logical), header.sectionSize(logical)
            if x + width >= clip.left() and x <= clip.right() and width > 0:
                self.columns.append((logical, x, width))
        self.font = view.font()
        self.bold = QFont(self.font)
        self.bold.setWeight(QFont.Weight.DemiBold)
        self.metrics = QFontMetrics(self.font, view.viewport())
        self.bold_metrics = QFontMetrics(self.bold, view.viewport())
        self.font_key = self.font.key()  # the cache's part of the key: another size or family lays out anew

    def keep(self, cells: dict[Any, Any], row_height: int) -> None:
        """Start ``cells`` (rows' cells kept between paints) afresh if they were worked out for another frame."""
        signature = (self.font_key, tuple(self.columns), row_height)
        if cells.get("signature") != signature or len(cells) > MAX_CACHED_ROWS:
            cells.clear()
            cells["signature"] = signature


#: A cell as the paint draws it: its icon (or None) and the icon's x, its laid-out text (or None), the text's x and
#: offset from the row's top, its colour, whether it is bold, and the text with its left and right edges and
#: alignment (for :func:`draw_text` when a test swaps in another).
Cell = tuple[QIcon | None, int, QStaticText | None, float, int, QColor, bool, str, int, int, int]


def row_cells(frame: _Frame, model: PagedTableModel, look: Look, row_height: int) -> tuple[Cell, ...]:
    """What the paint draws of a row with this look in this frame: worked out once, drawn every paint after."""
    cells: list[Cell] = []
    align = model.align
    for logical, x, width in frame.columns:
        left, right = x + PADDING, x + width - PADDING
        icon = model.icon(look, logical)
        icon_x = left
        if icon is not None:
            left += ICON + 4
        text = look.texts[logical]
        static: QStaticText | None = None
        text_x, dy = 0.0, 0
        want_bold = look.bold(logical)
        if text and right > left:
            font, fm = (frame.bold, frame.bold_metrics) if want_bold else (frame.font, frame.metrics)
            static, text_width, line = _laid_out(text, right - left, want_bold, font, frame.font_key, fm)
            # Against the aligned edge, centred on the row and rounded as Qt rounds it (as draw_text does).
            text_x = right - text_width if align[logical] & _RIGHT else left
            dy = (row_height - line + 1) // 2
        if icon is None and static is None:
            continue
        colour = look.foreground(logical)
        cells.append(
            (
                icon,
                icon_x,
                static,
                text_x,
                dy,
                TEXT if colour is None else colour,
                want_bold,
                text,
                left,
                right,
                align[logical],
            )
        )
    return tuple(cells)


def paint_rows(
    view: QTableView,
    model: PagedTableModel,
    painter: QPainter,
    clip: QRect,
    row_height: int = ROW_HEIGHT,
    cells: dict[Any, Any] | None = None,
) -> None:
    """Paint the rows of ``view`` that intersect ``clip`` (viewport coordinates).

    ``cells`` (a dict the caller keeps between paints) remembers each row's cells (:func:`row_cells`) for its look
    and the frame's columns, fonts and widths: a repaint of rows already painted then costs one draw per cell and
    no Python work per cell beyond it (a scroll, a selection, a page arriving beside them)."""
    rows = model.rowCount()
    first = view.rowAt(clip.top())
    if rows == 0 or first < 0:
        return
    last = view.rowAt(clip.bottom())
    if last < 0:
        last = rows - 1
    # The columns of the whole viewport, whatever the clip: the painter clips what falls outside, and the rows'
    # cells stay the same from one paint to the next.
    frame = _Frame(view, view.viewport().rect())
    columns = frame.columns
    if cells is None:
        cells = {}
    frame.keep(cells, row_height)
    selected = selected_rows(view.selectionModel(), first, last, model.columnCount())
    current = view.currentIndex().row() if view.hasFocus() else -1
    font, bold = frame.font, frame.bold
    painter.setFont(font)
    in_bold = False
    pen: QColor | None = None
    align = model.align
    icon_dy = (row_height - ICON) // 2
    # Each cell is drawn from its laid-out text, exactly as draw_text would draw it; a test that swaps draw_text
    # for Qt's own drawText gets every cell drawn through it instead.
    direct = draw_text is DRAW_TEXT
    for row in range(first, last + 1):
        y = view.rowViewportPosition(row)
        band = QRect(clip.left(), y, clip.width(), row_height)
        look = model.look(row)
        if row in selected:
            painter.fillRect(band, SELECTED_BACKGROUND)
        elif look is not None and look.background is not None:
            painter.fillRect(band, look.background)
        elif row & 1:
            painter.fillRect(band, ALTERNATE_BACKGROUND)
        if look is None:
            # Not read yet: a light placeholder (look() has asked for its page).
            for logical, x, width in columns:
                if logical == model.placeholder_column:
                    painter.setPen(LOADING_FOREGROUND)
                    pen = None
                    rect = QRect(x + PADDING, y, width - 2 * PADDING, row_height)
                    painter.drawText(rect, align[logical], LOADING_TEXT)
            continue
        known = cells.get(row)
        if known is not None and known[0] is look:
            row_plan = known[1]
        else:
            row_plan = row_cells(frame, model, look, row_height)
            cells[row] = (look, row_plan)
        for icon, icon_x, static, text_x, dy, colour, want_bold, text, left, right, cell_align in row_plan:
            if icon is not None:
                icon.paint(painter, QRect(icon_x, y + icon_dy, ICON, ICON))
            if static is None:
                continue
            if want_bold != in_bold:
                painter.setFont(bold if want_bold else font)
                in_bold = want_bold
            if colour is not pen:
                painter.setPen(colour)
                pen = colour
            if direct:
                painter.drawStaticText(QPointF(text_x, y + dy), static)
            else:
                fm = frame.bold_metrics if want_bold else frame.metrics
                draw_text(
                    painter,
                    text,
                    left,
                    right,
                    y,
                    row_height,
                    cell_align,
                    bold if want_bold else font,
                    frame.font_key,
                    fm,
                )
        if row == current:
            painter.setPen(QPen(FOCUS, 1))
            pen = None
            painter.drawRect(QRect(clip.left(), y, clip.width() - 1, row_height - 1))


class WindowedTable(QTableView):
    """A table over a :class:`PagedTableModel`: Enter (or a double click) opens the detail, F5 refreshes when the
    pane is not in a main window (the window's Refresh action has F5 otherwise)."""

    #: Enter on a row (or a double click): open its detail.
    open_requested = Signal()
    #: F5 when the pane is not in a main window.
    refresh_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAlternatingRowColors(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setCornerButtonEnabled(False)
        # A row is a unit: scrolling moves whole rows, and the scroll bar's value is the top row's number.
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerItem)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        vertical = self.verticalHeader()
        vertical.hide()
        # Fixed heights, never resize-to-contents: with a million rows Qt must never measure a row.
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(ROW_HEIGHT)
        vertical.setMinimumSectionSize(ROW_HEIGHT)
        header = self.horizontalHeader()
        header.setSectionsMovable(True)
        header.setSectionsClickable(True)
        header.setSortIndicatorShown(True)
        header.setHighlightSections(False)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.doubleClicked.connect(lambda _i: self.open_requested.emit())
        self._paged: PagedTableModel | None = None
        #: Each painted row's cells, kept between paints (see paint_rows).
        self._cells: dict[Any, Any] = {}

    def set_paged_model(self, model: PagedTableModel) -> None:
        self.setModel(model)
        self._paged = model
        model.prepare_looks = self.prepare_looks
        model.screen_rows = lambda: self.page_rows() + 1 if self.isVisible() else 0

    def forget_cells(self) -> None:
        """Work every row's cells out afresh on the next paint (they are kept between paints: see paint_rows)."""
        self._cells.clear()

    def prepare_looks(self, rows: list[tuple[int, Look]]) -> None:
        """Work out the cells of rows about to be shown (the model calls it a few rows at a time as their page
        arrives; ``rows`` are (row number, look)), so that the paint that shows them only draws."""
        model = self._paged
        if rows and model is not None:
            frame = _Frame(self, self.viewport().rect())
            frame.keep(self._cells, ROW_HEIGHT)
            for row, look in rows:
                self._cells[row] = (look, row_cells(frame, model, look, ROW_HEIGHT))

    def paintEvent(self, event: QPaintEvent) -> None:
        if self._paged is None:
            super().paintEvent(event)
            return
        painter = QPainter(self.viewport())
        try:
            paint_rows(self, self._paged, painter, event.rect(), ROW_HEIGHT, self._cells)
        finally:
            painter.end()

    def visible_rows(self) -> tuple[int, int]:
        """First and last row on screen (an empty table gives (0, -1))."""
        rows = self.model().rowCount() if self.model() is not None else 0
        if rows == 0:
            return 0, -1
        first = max(self.rowAt(0), 0)
        last = self.rowAt(self.viewport().height() - 1)
        return first, rows - 1 if last < 0 else last

    def page_rows(self) -> int:
        return max(1, self.viewport().height() // ROW_HEIGHT)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not event.modifiers():
            self.open_requested.emit()
            return
        if event.matches(QKeySequence.StandardKey.Refresh):
            self.refresh_requested.emit()
            return
        super().keyPressEvent(event)
