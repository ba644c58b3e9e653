"""A layout that wraps: items go left to right and continue on a new line where the width runs out.

The filter bars hold a dozen fields in two rows. In plain box layouts those rows set the pane's minimum width (the
blotter's was 1,178 px), so a pane beside another, or a laptop screen split in two, could not show it. Here each row
wraps instead, and a pane only needs the width of its widest field. The lines keep what a box layout gives: spare
width goes to the items given a stretch (in proportion, up to each one's maximum width), a stretch item pushes what
follows it to the right, and items are centred on their line. A label and its field (or a date range) go in one
:func:`group`, so they wrap together. The layout follows Qt's Flow Layout example (height for width).
"""

from __future__ import annotations

from PySide6.QtCore import QMargins, QPoint, QRect, QSize, Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLayout,
    QLayoutItem,
    QSizePolicy,
    QSpacerItem,
    QWidget,
)


class FlowLayout(QLayout):
    """Items in lines as wide as the layout; see the module's docstring."""

    def __init__(self, parent: QWidget | None = None, *, spacing: int = 6, line_spacing: int = 4) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._stretch: list[int] = []
        self._heights: dict[int, int] = {}  # height for width, until the layout is invalidated
        self._line_spacing = line_spacing
        self.setSpacing(spacing)
        self.setContentsMargins(0, 0, 0, 0)

    # --- building ---------------------------------------------------------------------------------------------------

    def addWidget(self, widget: QWidget, stretch: int = 0) -> None:  # noqa: N802 (Qt's name)
        # Qt's own addWidget makes the item (one that caches its widget's size hints: a combo box measures every
        # entry's text for its hint, and the lines are measured at each height-for-width question) and hands it to
        # addItem below.
        super().addWidget(widget)
        self._stretch[-1] = max(0, stretch)

    def addStretch(self, stretch: int = 1) -> None:  # noqa: N802
        """Empty space taking its share of a line's spare width: what follows sits at the right of the line."""
        self._add(QSpacerItem(0, 0, QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum), stretch)

    def addSpacing(self, size: int) -> None:  # noqa: N802
        """A fixed gap (dropped when it would start a line)."""
        self._add(QSpacerItem(size, 0, QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Minimum), 0)

    def _add(self, item: QLayoutItem, stretch: int) -> None:
        self._items.append(item)
        self._stretch.append(max(0, stretch))
        self.invalidate()

    def invalidate(self) -> None:
        self._heights.clear()
        super().invalidate()

    # --- QLayout ----------------------------------------------------------------------------------------------------

    def addItem(self, item: QLayoutItem) -> None:  # noqa: N802 (called by Qt for items added its way)
        self._add(item, 0)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:  # noqa: N802
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:  # noqa: N802
        if not 0 <= index < len(self._items):
            return None
        self._stretch.pop(index)
        item = self._items.pop(index)
        self.invalidate()
        return item

    def expandingDirections(self) -> Qt.Orientation:  # noqa: N802
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        # Asked several times a layout pass, for the same few widths.
        height = self._heights.get(width)
        if height is None:
            height = self._heights[width] = self._arrange(QRect(0, 0, width, 0), place=False)
        return height

    def setGeometry(self, rect: QRect) -> None:  # noqa: N802
        super().setGeometry(rect)
        self._arrange(rect, place=True)

    def sizeHint(self) -> QSize:  # noqa: N802
        return self.minimumSize()

    def minimumSize(self) -> QSize:  # noqa: N802
        """The widest item (every line can be that narrow), as tall as one line; height for width does the rest."""
        size = QSize()
        for item in self._visible():
            size = size.expandedTo(item.minimumSize())
        m = self.contentsMargins()
        return size + QSize(m.left() + m.right(), m.top() + m.bottom())

    # --- arranging --------------------------------------------------------------------------------------------------

    def _visible(self) -> list[QLayoutItem]:
        return [item for item in self._items if not item.isEmpty() or item.spacerItem() is not None]

    def _lines(self, width: int) -> list[list[tuple[QLayoutItem, int]]]:
        """The items (with their stretch) cut into lines no wider than ``width``; a spacer never starts a line."""
        lines: list[list[tuple[QLayoutItem, int]]] = [[]]
        used = 0
        gap = self.spacing()
        for item, stretch in zip(self._items, self._stretch, strict=True):
            if item.isEmpty() and item.spacerItem() is None:
                continue  # a hidden widget
            is_spacer = item.spacerItem() is not None
            w = item.sizeHint().width()
            line = lines[-1]
            if line and used + gap + w > width and not is_spacer:
                lines.append([])
                line, used = lines[-1], 0
            if is_spacer and not line:
                continue
            used += (gap if line else 0) + w
            line.append((item, stretch))
        # A spacer left at the end of a line has nothing to push.
        return [
            [(i, s) for n, (i, s) in enumerate(ln) if i.spacerItem() is None or n < len(ln) - 1]
            for ln in lines
        ]

    def _arrange(self, rect: QRect, *, place: bool) -> int:
        """Lay the items out in ``rect`` (or only measure); returns the height the lines need."""
        m: QMargins = self.contentsMargins()
        area = rect.adjusted(m.left(), m.top(), -m.right(), -m.bottom())
        gap = self.spacing()
        y = area.y()
        lines = [ln for ln in self._lines(area.width()) if ln]
        for n, line in enumerate(lines):
            widths = self._widths(line, area.width(), gap)
            height = max(item.sizeHint().height() for item, _ in line)
            x = area.x()
            if place:
                for (item, _), w in zip(line, widths, strict=True):
                    h = min(height, item.maximumSize().height()) if item.spacerItem() is None else 0
                    item.setGeometry(QRect(QPoint(x, y + (height - h) // 2), QSize(w, h)))
                    x += w + gap
            y += height + (self._line_spacing if n < len(lines) - 1 else 0)
        return y - area.y() + m.top() + m.bottom()

    @staticmethod
    def _widths(line: list[tuple[QLayoutItem, int]], width: int, gap: int) -> list[int]:
        """Each item's width on its line: its size hint, plus its share of the spare width by stretch, capped at
        its maximum width (what a capped item cannot take goes to the others)."""
        widths = [item.sizeHint().width() for item, _ in line]
        spare = width - sum(widths) - gap * (len(line) - 1)
        open_ = {i for i, (_, s) in enumerate(line) if s > 0}
        while spare > 0 and open_:
            total = sum(line[i][1] for i in open_)
            given = 0
            for i in sorted(open_):
                room = line[i][0].maximumSize().width() - widths[i]
                share = min(room, spare * line[i][1] // total)
                widths[i] += share
                given += share
                if widths[i] >= line[i][0].maximumSize().width():
                    open_.discard(i)
            if given == 0:
                break
            spare -= given
        return widths


def group(*widgets: QWidget, spacing: int = 4) -> QWidget:
    """Widgets that belong together (a caption and its field, a date range) in one item that wraps as a whole."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.setSpacing(spacing)
    for w in widgets:
        row.addWidget(w)
    return box
