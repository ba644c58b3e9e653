"""What the GUI tests share: showing a pane the way a user opens it, and waiting for its background reads."""

from __future__ import annotations

from typing import Any, TypeVar

from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

WAIT_MS = 10_000

P = TypeVar("P", bound=QWidget)


def show_pane(qtbot: QtBot, pane: P, size: tuple[int, int], *signals: Any, timeout: int = WAIT_MS) -> P:
    """Register ``pane`` for clean-up, size it and show it; with ``signals``, return once every one was emitted
    (the pane's first read is in)."""
    qtbot.addWidget(pane)
    pane.resize(*size)
    if signals:
        with qtbot.waitSignals(list(signals), timeout=timeout):
            pane.show()
    else:
        pane.show()
    return pane


def wait_idle(qtbot: QtBot, pane: Any) -> None:
    """A paged pane's query and its exact count are in, the table has laid the rows out (its scroll range covers
    them: Qt does that a turn of the event loop after the count lands, and a scroll before it is cut short), and the
    rows on screen are loaded."""
    model = pane.model
    bar = pane.table.verticalScrollBar()

    def ready() -> bool:
        if not model.loaded or model.loading or not model.count_exact:
            return False
        if bar.maximum() + bar.pageStep() < model.rowCount():
            return False
        first, last = pane.table.visible_rows()
        return all(model.is_row_loaded(r) for r in range(first, last + 1))

    qtbot.waitUntil(ready, timeout=WAIT_MS)
