"""A pane that summarises one kind of work item by status: headline cards over a table of counts.

The four working panes start as this summary (it is what the clerk needs first: how much is where) and grow their
full item tables next to it. Counts come from ``overview.overview`` (GROUP BY in the database).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from PySide6.QtWidgets import QAbstractItemView, QHBoxLayout, QHeaderView, QTableView, QWidget

from app.services import overview
from app.views.panes.base import Card, Pane, ShareBarDelegate, Workspace
from app.views.qt_models.status_counts import CountRow, StatusCountsModel, status_label
from app.views.tasks import TaskContext

ROW_HEIGHT = 28


@dataclass(frozen=True)
class CardSpec:
    """A headline card: the sum of ``statuses`` (all statuses when None).

    ``alert`` is the tone when the figure is not zero ("bad", "warn"); a zero alert figure shows "ok". Plain totals use
    "info" and keep it.
    """

    caption: str
    statuses: tuple[str, ...] | None = None
    alert: str = "info"
    hint: str = ""

    def tone(self, value: int) -> str:
        if self.alert in ("bad", "warn"):
            return self.alert if value else "ok"
        return self.alert


class CountsTable(QTableView):
    """A compact, fixed-row-height table of a StatusCountsModel, as tall as its rows (it never scrolls)."""

    def __init__(self, model: StatusCountsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setModel(model)
        self.setAlternatingRowColors(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.verticalHeader().hide()
        # Fixed row heights, never resize-to-contents (house rule for every table; it matters on big ones).
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        header = self.horizontalHeader()
        header.setSectionResizeMode(StatusCountsModel.COL_LABEL, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(StatusCountsModel.COL_COUNT, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(StatusCountsModel.COL_SHARE, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(StatusCountsModel.COL_COUNT, 110)
        header.resizeSection(StatusCountsModel.COL_SHARE, 170)
        header.setHighlightSections(False)
        self.setItemDelegateForColumn(StatusCountsModel.COL_SHARE, ShareBarDelegate(self))
        model.modelReset.connect(self._fit_height)
        self._fit_height()

    def _fit_height(self) -> None:
        rows = max(self.model().rowCount(), 1)
        self.setFixedHeight(
            self.horizontalHeader().sizeHint().height() + rows * ROW_HEIGHT + 2 * self.frameWidth()
        )


class StatusSummaryPane(Pane):
    """Cards and a table of one Overview field (``counts_field``), statuses in ``statuses`` order."""

    counts_field: ClassVar[str] = ""
    statuses: ClassVar[tuple[str, ...]] = ()
    tones: ClassVar[dict[str, str]] = {}
    cards: ClassVar[tuple[CardSpec, ...]] = ()
    first_header: ClassVar[str] = "Status"

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(workspace, parent)
        self.card_widgets: list[Card] = []
        cards_row = QHBoxLayout()
        cards_row.setSpacing(10)
        for spec in self.cards:
            card = Card(spec.caption, spec.hint)
            self.card_widgets.append(card)
            cards_row.addWidget(card)
        self.body.addLayout(cards_row)
        self.model = StatusCountsModel(self.first_header, self)
        self.table = CountsTable(self.model)
        self.table.setAccessibleName(f"{self.title} counts by {self.first_header.lower()}")
        self.body.addWidget(self.table)
        self.body.addStretch(1)
        self.setFocusProxy(self.table)

    def loader(self) -> Callable[[TaskContext], Any]:
        db, actor = self.ws.db, self.ws.actor
        return lambda _ctx: overview.overview(db, actor)

    def present(self, result: Any) -> None:
        assert isinstance(result, overview.Overview)
        counts: dict[str, int] = dict(getattr(result, self.counts_field))
        self.show_counts(counts, result)

    def show_counts(self, counts: dict[str, int], ov: overview.Overview) -> None:
        # Every known status gets a row, zero or not, so the table keeps its shape from one refresh to the next;
        # a status the GUI does not know yet (newer server code) still shows, at the end.
        keys = list(self.statuses) + sorted(k for k in counts if k not in self.statuses)
        self.model.set_rows(
            [CountRow(k, status_label(k), counts.get(k, 0), self.tones.get(k, "neutral"), k) for k in keys]
        )
        for spec, card in zip(self.cards, self.card_widgets, strict=True):
            keys_ = spec.statuses if spec.statuses is not None else tuple(counts)
            value = sum(counts.get(k, 0) for k in keys_)
            card.set_value(value, spec.tone(value))
