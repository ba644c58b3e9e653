"""The paged tables' painter draws each cell's text from a cache of laid-out texts: the pixels must be exactly those
Qt's own ``drawText`` gives (elided to the cell, aligned left or right, centred on the row, bold or not), and the
cache must stay bounded. It reads the selection once per paint: the rows it paints as selected must be those
Qt's ``isRowSelected`` names.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from PySide6.QtCore import QItemSelection, QItemSelectionModel, QModelIndex, QRect, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QStandardItemModel
from PySide6.QtWidgets import QTableView
from pytestqt.qtbot import QtBot
from sqlalchemy import insert

from app.models import Trade
from app.services.db import Database
from app.services.permissions import Actor
from app.views.common import windowed_table
from app.views.common.windowed_table import ROW_HEIGHT, draw_text, selected_rows
from app.views.panes.base import Workspace
from app.views.panes.trade_blotter import TradeBlotterPane
from app.views.tasks import TaskRunner

from . import factories
from .gui_helpers import show_pane, wait_idle

LEFT = int((Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter).value)
RIGHT = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)
TEXTS = [
    "Instructed",
    "1,234,567.89",
    "FO-20261120-01000000",
    "Bank of Somewhere Very Long Name plc",
    "<b>x</b>",
    "é",
]


def _image(paint: Any, font: QFont) -> QImage:
    image = QImage(240, ROW_HEIGHT, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setFont(font)
    painter.setPen(QColor("#1f2933"))
    paint(painter)
    painter.end()
    return image


def _qt_draw_text(painter: QPainter, text: str, left: int, right: int, y: int, align: int) -> None:
    """What the painter did before the cache: measure, elide to the width, drawText in the cell's rectangle."""
    fm = painter.fontMetrics()
    space = right - left
    if fm.horizontalAdvance(text) > space:
        text = fm.elidedText(text, Qt.TextElideMode.ElideRight, space)
    painter.drawText(QRect(left, y, space, ROW_HEIGHT), align, text)


@pytest.mark.parametrize("size", [9, 10, 11])  # line heights odd and even: the centring rounds as Qt's
@pytest.mark.parametrize("weight", [QFont.Weight.Normal, QFont.Weight.DemiBold])
@pytest.mark.parametrize("align", [LEFT, RIGHT], ids=["left", "right"])
def test_a_cached_cell_text_paints_the_pixels_drawtext_paints(
    qtbot: QtBot, size: int, weight: QFont.Weight, align: int
) -> None:
    plain = QFont()
    plain.setPointSize(size)
    font = QFont(plain)
    font.setWeight(weight)
    key = plain.key()
    for text in TEXTS:
        for left, right in ((6, 234), (10, 70), (100, 128)):  # wide, narrow (elided), very narrow
            want = _image(lambda p, t=text, a=left, b=right: _qt_draw_text(p, t, a, b, 0, align), font)
            got = _image(
                lambda p, t=text, a=left, b=right: draw_text(
                    p, t, a, b, 0, ROW_HEIGHT, align, font, key, QFontMetrics(font)
                ),
                font,
            )
            assert got == want, (text, left, right)
            # Drawn again from the cache: the same pixels.
            again = _image(
                lambda p, t=text, a=left, b=right: draw_text(
                    p, t, a, b, 0, ROW_HEIGHT, align, font, key, QFontMetrics(font)
                ),
                font,
            )
            assert again == want


def test_the_cache_keeps_one_entry_per_text_and_width_and_stays_bounded(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(windowed_table, "TEXTS", {})
    monkeypatch.setattr(windowed_table, "MAX_TEXTS", 4)
    font = QFont()
    fm = QFontMetrics(font)

    def draw(text: str, right: int = 200) -> None:
        _image(lambda p: draw_text(p, text, 6, right, 0, ROW_HEIGHT, LEFT, font, font.key(), fm), font)

    draw("Settled")
    draw("Settled")
    assert len(windowed_table.TEXTS) == 1
    draw("Settled", right=40)  # another width: elided anew
    assert len(windowed_table.TEXTS) == 2
    for i in range(10):
        draw(f"row {i}")
        assert len(windowed_table.TEXTS) <= 4


def test_the_rows_painted_as_selected_are_those_qt_says_are_selected(qtbot: QtBot) -> None:
    """One read of the selection per paint gives, for every row on screen, what isRowSelected gives: single rows,
    ranges, Ctrl+clicked rows, a row taken out of a range, a partly selected row (not selected), nothing."""
    model = QStandardItemModel(60, 5)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    sel = view.selectionModel()
    flags = QItemSelectionModel.SelectionFlag
    rows = flags.Rows

    def check() -> None:
        want = {r for r in range(5, 45) if sel.isRowSelected(r, QModelIndex())}
        assert selected_rows(sel, 5, 44, model.columnCount()) == want

    check()  # nothing selected
    sel.select(model.index(7, 0), flags.ClearAndSelect | rows)
    check()
    sel.select(QItemSelection(model.index(10, 0), model.index(30, 4)), flags.Select)
    sel.select(model.index(20, 0), flags.Deselect | rows)
    check()
    sel.select(model.index(40, 0), flags.Select | rows)
    sel.select(model.index(2, 0), flags.Select | rows)  # above the screen
    sel.select(QItemSelection(model.index(33, 0), model.index(33, 2)), flags.Select)  # three of five columns
    sel.select(QItemSelection(model.index(34, 0), model.index(34, 2)), flags.Select)
    sel.select(QItemSelection(model.index(34, 3), model.index(34, 4)), flags.Select)  # the rest of row 34
    check()
    assert selected_rows(sel, 5, 44, model.columnCount()) >= {7, 10, 19, 21, 30, 34, 40}
    sel.clearSelection()
    check()


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_the_blotter_paints_the_same_pixels_as_with_qts_drawtext(
    qtbot: QtBot, db: Database, users: dict[str, Actor], tasks: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole table (statuses in bold with their dots, numbers on the right, a selected row, elided columns)
    paints exactly as it did when every cell went through drawText."""
    rnd = random.Random(3)
    with db.write() as s:
        s.execute(
            insert(Trade), [factories.trade_row(i, rnd, latest=dt.date(2026, 11, 20)) for i in range(120)]
        )
    pane = TradeBlotterPane(Workspace(db=db, actor=users["clerk1"], tasks=tasks))
    show_pane(qtbot, pane, (1200, 600))
    wait_idle(qtbot, pane)
    font = pane.table.font()
    font.setPointSize(10)  # the app's style sheet size, an odd line height (the centring rounds)
    pane.table.setFont(font)
    pane.table.selectRow(2)
    pane.table.horizontalHeader().resizeSection(1, 40)  # a narrow column: its texts are elided
    cached = pane.table.viewport().grab().toImage()

    def reference(
        painter: QPainter, text: str, left: int, right: int, y: int, height: int, align: int, *_: Any
    ) -> None:
        _qt_draw_text(painter, text, left, right, y, align)

    monkeypatch.setattr(windowed_table, "draw_text", reference)
    drawn = pane.table.viewport().grab().toImage()
    assert drawn == cached
    assert not cached.isNull() and cached.width() > 0


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_repaint_from_the_kept_cells_paints_what_working_them_out_afresh_paints(
    qtbot: QtBot, db: Database, users: dict[str, Actor], tasks: TaskRunner
) -> None:
    """Each row's cells are kept between paints (and worked out ahead as its page arrives): after a scroll onto
    a page that arrives, a selection, another sort, a narrower column and a renamed owner, the table must paint
    exactly what a paint working every cell out afresh paints."""
    rnd = random.Random(5)
    owner = users["clerk2"].user_id
    rows = [factories.trade_row(i, rnd, latest=dt.date(2026, 11, 20)) for i in range(450)]
    for row in rows[::3]:
        row["owner_id"] = owner
    with db.write() as s:
        s.execute(insert(Trade), rows)
    pane = TradeBlotterPane(Workspace(db=db, actor=users["clerk1"], tasks=tasks))
    show_pane(qtbot, pane, (1200, 600), pane.columns_restored)
    wait_idle(qtbot, pane)
    table, model = pane.table, pane.model

    def same_as_afresh() -> None:
        qtbot.wait(20)  # the layout settles (the scroll bar comes with the count)
        kept = table.viewport().grab().toImage()
        table.forget_cells()
        afresh = table.viewport().grab().toImage()
        assert kept == afresh
        assert not kept.isNull()

    same_as_afresh()
    table.scrollTo(model.index(330, 0), table.ScrollHint.PositionAtTop)  # a page not read yet
    wait_idle(qtbot, pane)
    same_as_afresh()
    table.selectRow(333)
    same_as_afresh()
    # Rows painted under one sort, then under another at the same row numbers.
    table.scrollTo(model.index(60, 0), table.ScrollHint.PositionAtTop)
    wait_idle(qtbot, pane)
    same_as_afresh()
    with qtbot.waitSignal(model.query_loaded, timeout=10_000):
        table.horizontalHeader().sectionClicked.emit(model.col["gross_amount"])
    wait_idle(qtbot, pane)
    table.scrollTo(model.index(60, 0), table.ScrollHint.PositionAtTop)
    wait_idle(qtbot, pane)
    same_as_afresh()
    table.horizontalHeader().resizeSection(1, 40)
    same_as_afresh()
    owner_col = model.col["owner_id"]
    header = table.horizontalHeader()
    header.showSection(owner_col)
    header.moveSection(header.visualIndex(owner_col), 0)  # where the rename shows
    same_as_afresh()
    before = table.viewport().grab().toImage()
    model.set_usernames({owner: "Someone Else Entirely"})
    qtbot.waitUntil(
        lambda: model.data(model.index(330, owner_col)) == "Someone Else Entirely", timeout=10_000
    )
    after = table.viewport().grab().toImage()
    assert after != before  # the new name is on screen, not the old cells
    same_as_afresh()
