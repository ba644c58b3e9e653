"""The wrapping layout of the filter bars: a narrow pane gets more lines, never clipped or overlapping fields, and a
wide one keeps each row on one line with its spare width where a box layout would put it."""

from __future__ import annotations

import itertools

import pytest
from PySide6.QtCore import QRect
from PySide6.QtWidgets import QPushButton, QVBoxLayout, QWidget
from pytestqt.qtbot import QtBot

from app.views.blotter.filter_bar import FilterBar
from app.views.breaks.filter_bar import BreakFilterBar
from app.views.common.flow_layout import FlowLayout
from app.views.settlement.filter_bar import QueueFilterBar


def _buttons(n: int, width: int = 100) -> list[QPushButton]:
    out = []
    for i in range(n):
        b = QPushButton(f"b{i}")
        b.setFixedSize(width, 24)
        out.append(b)
    return out


def _host(qtbot: QtBot, layout: FlowLayout, width: int) -> QWidget:
    host = QWidget()
    host.setLayout(layout)
    qtbot.addWidget(host)
    host.resize(width, layout.heightForWidth(width))
    host.show()
    qtbot.waitExposed(host)
    return host


def _no_overlap(rects: list[QRect]) -> None:
    for a, b in itertools.combinations(rects, 2):
        assert not a.intersects(b), (a, b)


def test_items_wrap_onto_new_lines_where_the_width_runs_out(qtbot: QtBot) -> None:
    flow = FlowLayout(spacing=6, line_spacing=4)
    buttons = _buttons(5)
    for b in buttons:
        flow.addWidget(b)
    host = _host(qtbot, flow, 600)  # 5 x 100 + 4 x 6 = 524: one line
    assert {b.y() for b in buttons} == {0}
    assert [b.x() for b in buttons] == [0, 106, 212, 318, 424]
    assert flow.heightForWidth(600) == 24

    host.resize(330, flow.heightForWidth(330))  # three a line
    qtbot.waitUntil(lambda: buttons[3].y() > 0)
    assert [(b.x(), b.y()) for b in buttons] == [(0, 0), (106, 0), (212, 0), (0, 28), (106, 28)]
    assert flow.heightForWidth(330) == 52
    _no_overlap([b.geometry() for b in buttons])
    # As narrow as one item: one a line, and never narrower than the widest item.
    assert flow.heightForWidth(100) == 5 * 24 + 4 * 4
    assert flow.minimumSize().width() == 100


def test_spare_width_goes_to_stretch_items_up_to_their_maximum_and_a_stretch_pushes_right(
    qtbot: QtBot,
) -> None:
    flow = FlowLayout(spacing=10)
    fixed, grow, capped, last = _buttons(4)
    grow.setMinimumWidth(100)
    grow.setMaximumWidth(10_000)
    capped.setMinimumWidth(100)
    capped.setMaximumWidth(150)
    flow.addWidget(fixed)
    flow.addWidget(grow, 1)
    flow.addWidget(capped, 1)
    flow.addStretch(1)
    flow.addWidget(last)
    host = _host(qtbot, flow, 800)
    assert fixed.width() == 100 and capped.width() == 150  # capped at its maximum
    assert last.geometry().right() == 799  # pushed to the right edge by the stretch
    assert grow.width() > 150  # the other stretch items share what the capped one could not take
    _no_overlap([w.geometry() for w in (fixed, grow, capped, last)])
    assert host.width() == 800


def test_a_hidden_widget_takes_no_room(qtbot: QtBot) -> None:
    flow = FlowLayout(spacing=6)
    a, b, c = _buttons(3)
    for w in (a, b, c):
        flow.addWidget(w)
    host = _host(qtbot, flow, 500)
    b.hide()
    qtbot.waitUntil(lambda: c.x() == 106)
    b.show()
    qtbot.waitUntil(lambda: c.x() == 212)
    assert host.isVisible()


@pytest.mark.parametrize(
    "make",
    [lambda: FilterBar(1), lambda: QueueFilterBar(), lambda: BreakFilterBar(1)],
    ids=["blotter", "queue", "breaks"],
)
def test_a_filter_bar_fits_a_narrow_pane_without_clipping_or_overlapping_fields(qtbot: QtBot, make) -> None:
    pane = QWidget()
    column = QVBoxLayout(pane)
    column.setContentsMargins(0, 0, 0, 0)
    bar = make()
    column.addWidget(bar)
    column.addStretch(1)
    qtbot.addWidget(pane)
    # The bar asks for the width of its widest field, not of a whole row (the blotter's rows once made the
    # pane 1,178 px wide at least).
    assert bar.minimumSizeHint().width() <= 450
    pane.resize(1700, 400)
    pane.show()
    qtbot.waitExposed(pane)
    rows = [bar.layout().itemAt(i).layout() for i in range(bar.layout().count())]
    assert all(isinstance(r, FlowLayout) for r in rows)
    wide_height = bar.height()

    def items(row: FlowLayout) -> list[QWidget]:
        return [row.itemAt(i).widget() for i in range(row.count()) if row.itemAt(i).widget() is not None]

    # Wide: each row on one line (every field's span crosses every other's).
    for row in rows:
        shown = [w for w in items(row) if w.isVisible()]
        assert max(w.geometry().top() for w in shown) < min(w.geometry().bottom() for w in shown)

    pane.resize(480, 400)
    qtbot.waitUntil(lambda: bar.height() > wide_height)
    shown = [w for row in rows for w in items(row) if w.isVisible()]
    assert shown
    bounds = QRect(0, 0, bar.width(), bar.height())
    for w in shown:
        assert bounds.contains(w.geometry()), (w, w.geometry(), bounds)
        assert w.width() >= w.minimumSizeHint().width() or w.width() >= w.minimumWidth()
    _no_overlap([w.geometry() for w in shown])
