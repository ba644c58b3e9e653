"""The break work list's table model: the rows read so far, more fetched as the clerk scrolls, never a query on
the GUI thread.

Breaks number in the tens of thousands, not millions, so the model keeps the rows it has read (plain
:class:`~app.services.workflow.worklist.BreakRow` values) and follows Qt's incremental protocol: ``canFetchMore`` /
``fetchMore`` ask the worklist service for the next page by keyset (after the last row's sort key and id) through the
TaskRunner, and append it when it arrives. The pane replaces the rows wholesale after a (re)load
(:meth:`BreaksModel.replace`), and every replacement starts a new *generation*: a page of the previous query that
arrives late is dropped, never appended to the new one.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QFont

from app.services.workflow.worklist import BreakFilter, BreakPage, BreakRow, BreakSort
from app.views.qt_models.status_counts import status_label, tone_dot
from app.views.tasks import TaskFailure, TaskHandle, TaskRunner

if TYPE_CHECKING:
    from app.services.db import Database
    from app.services.permissions import Actor

_Index = QModelIndex | QPersistentModelIndex

PAGE_SIZE = 200
#: Custom roles: the break id of a row, and the raw value of a cell (sorting helpers, tests).
BreakIdRole = Qt.ItemDataRole.UserRole + 20
RawRole = Qt.ItemDataRole.UserRole + 21

# (key, header, sort key or None, numeric)
COLUMNS: tuple[tuple[str, str, str | None, bool], ...] = (
    ("id", "Break", "id", True),
    ("status", "Status", "status", False),
    ("break_type", "Type", "break_type", False),
    ("recon", "Recon", None, False),
    ("age", "Age", "opened_at", True),
    ("amount", "Amount", "amount", True),
    ("currency", "Ccy", "currency", False),
    ("fields", "Differs in", None, False),
    ("internal_ref", "Internal ref", None, False),
    ("external_ref", "External ref", None, False),
    ("category", "Category", None, False),
    ("root_cause", "Cause", None, False),
    ("owner", "Owner", None, False),
    ("as_of_date", "As of", "as_of_date", False),
)
COLUMN_KEYS = tuple(c[0] for c in COLUMNS)
COL = {k: i for i, k in enumerate(COLUMN_KEYS)}
WIDTHS = {
    "id": 60,
    "status": 100,
    "break_type": 120,
    "recon": 170,
    "age": 64,
    "amount": 110,
    "currency": 45,
    "fields": 130,
    "internal_ref": 110,
    "external_ref": 110,
    "category": 100,
    "root_cause": 62,
    "owner": 80,
    "as_of_date": 85,
}

BREAK_STATUS_TONES = {
    "OPEN": "bad",
    "ASSIGNED": "warn",
    "PROPOSED": "info",
    "RESOLVED": "ok",
    "WRITTEN_OFF": "neutral",
}
TYPE_LABELS = {
    "MISSING_INTERNAL": "Missing internal",
    "MISSING_EXTERNAL": "Missing external",
    "FIELD_MISMATCH": "Field mismatch",
    "DUPLICATE_KEY": "Duplicate key",
}
TONE_TEXT = {
    "ok": QColor("#2e7d32"),
    "warn": QColor("#b26a00"),
    "bad": QColor("#c62828"),
    "info": QColor("#1f4f8f"),
    "neutral": QColor("#7b8794"),
}
#: An old break (over ten business days) is tinted: the eye finds what is overdue.
OLD_BACKGROUND = QColor("#fff6e5")
OLD_AGE = 10


def age_text(days: int) -> str:
    return f"{days} d"


def money(value: Decimal) -> str:
    return f"{value:,.2f}"


class BreaksModel(QAbstractTableModel):
    """Rows of the work list for one filter and sort, fetched a page at a time."""

    #: A further page was appended (its row count).
    page_loaded = Signal(int)
    #: Reading a further page failed (the sentence).
    load_failed = Signal(str)

    def __init__(
        self,
        db: Database,
        actor: Actor,
        tasks: TaskRunner,
        parent: QObject | None = None,
        *,
        page_size: int = PAGE_SIZE,
    ) -> None:
        super().__init__(parent)
        self._db = db
        self._actor = actor
        self._tasks = tasks
        self.page_size = page_size
        self.filter = BreakFilter()
        self.sort = BreakSort()
        self._rows: list[BreakRow] = []
        self._more = False
        self._last_key: tuple[Any, int] | None = None
        self._gen = 0
        self._fetching: TaskHandle | None = None
        self._fetch_queued = False
        try:
            self.zone = ZoneInfo(actor.timezone)
        except Exception:
            self.zone = ZoneInfo("UTC")
        self._bold = QFont()
        self._bold.setWeight(QFont.Weight.DemiBold)

    # --- state ----------------------------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._gen

    @property
    def more(self) -> bool:
        return self._more

    @property
    def fetching(self) -> bool:
        return self._fetching is not None

    def rows(self) -> list[BreakRow]:
        return list(self._rows)

    def row(self, r: int) -> BreakRow | None:
        return self._rows[r] if 0 <= r < len(self._rows) else None

    def break_id(self, r: int) -> int | None:
        row = self.row(r)
        return None if row is None else row.id

    def row_of(self, break_id: int) -> int | None:
        for i, row in enumerate(self._rows):
            if row.id == break_id:
                return i
        return None

    def replace(self, page: BreakPage, flt: BreakFilter, sort: BreakSort) -> None:
        """Show a freshly read first stretch of rows (a load or a live refresh): one reset, a new generation."""
        self._gen += 1
        if self._fetching is not None:
            self._fetching.cancel()
            self._fetching = None
        self.beginResetModel()
        self.filter, self.sort = flt, sort
        self._rows = list(page.rows)
        self._more = page.more
        self._last_key = page.last_key
        self.endResetModel()

    # --- Qt's incremental fetching --------------------------------------------------------------------------------

    def canFetchMore(self, parent: _Index = QModelIndex()) -> bool:  # noqa: B008 - Qt's signature
        return not parent.isValid() and self._more and self._fetching is None and not self._fetch_queued

    def fetchMore(self, parent: _Index = QModelIndex()) -> None:  # noqa: B008
        if not self.canFetchMore(parent) or self._fetch_queued:
            return
        # The view calls this from inside C++ (a scroll, the model tester): starting a worker thread there crashes
        # PySide, so the request starts on the next turn of the event loop.
        self._fetch_queued = True
        QTimer.singleShot(0, self, self._start_fetch)

    def _start_fetch(self) -> None:
        self._fetch_queued = False
        if not self._more or self._fetching is not None:
            return
        from app.services.workflow import worklist

        gen = self._gen
        db, actor, flt, sort, limit, after = (
            self._db,
            self._actor,
            self.filter,
            self.sort,
            self.page_size,
            self._last_key,
        )
        self._fetching = self._tasks.call(
            lambda: worklist.work_list(db, actor, flt, sort, limit=limit, after=after),
            on_done=lambda page: self._append(gen, page),
            on_error=lambda f: self._fetch_failed(gen, f),
            on_cancelled=lambda: None,
            label="Reading more breaks",
            quiet=True,
            owner=self,
        )

    def _append(self, gen: int, page: object) -> None:
        if gen != self._gen:
            return
        self._fetching = None
        assert isinstance(page, BreakPage)
        known = {r.id for r in self._rows}
        fresh = [r for r in page.rows if r.id not in known]  # a row that moved up since is not shown twice
        if fresh:
            self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(fresh) - 1)
            self._rows.extend(fresh)
            self.endInsertRows()
        self._more = page.more
        self._last_key = page.last_key
        self.page_loaded.emit(len(fresh))

    def _fetch_failed(self, gen: int, failure: TaskFailure) -> None:
        if gen == self._gen:
            self._fetching = None
            self.load_failed.emit(failure.message)

    # --- the table ------------------------------------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        key, label, sort_key, numeric = COLUMNS[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return label
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = {
                "age": "Business days since the break was opened",
                "amount": "Amount at stake",
                "fields": "The fields that differ between the two sides",
            }.get(key, label)
            return tip + ("" if sort_key else " (not sortable)")
        if role == Qt.ItemDataRole.TextAlignmentRole:
            h = Qt.AlignmentFlag.AlignRight if numeric else Qt.AlignmentFlag.AlignLeft
            return int((h | Qt.AlignmentFlag.AlignVCenter).value)
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def text(self, row: BreakRow, key: str) -> str:
        if key == "status":
            return status_label(row.status)
        if key == "break_type":
            return TYPE_LABELS.get(row.break_type, status_label(row.break_type))
        if key == "age":
            return age_text(row.age)
        if key == "amount":
            return money(row.amount)
        if key == "fields":
            return ", ".join(row.fields)
        if key == "owner":
            return row.owner or "—"
        if key == "as_of_date":
            return row.as_of_date.isoformat()
        value = getattr(row, key)
        return "" if value is None else str(value)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.row(index.row())
        col = index.column()
        if row is None or not 0 <= col < len(COLUMNS):
            return None
        key, _label, _sort, numeric = COLUMNS[col]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(row, key)
        if role == Qt.ItemDataRole.ToolTipRole:
            if key == "owner" and row.claimed_at is not None:
                since = row.claimed_at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")
                return f"Claimed by {row.owner} since {since}"
            if key == "age":
                opened = row.opened_at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")
                return f"{row.age} business days old (opened {opened})"
            return self.text(row, key) or None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            h = Qt.AlignmentFlag.AlignRight if numeric else Qt.AlignmentFlag.AlignLeft
            return int((h | Qt.AlignmentFlag.AlignVCenter).value)
        if role == Qt.ItemDataRole.ForegroundRole:
            if key == "status":
                return TONE_TEXT[BREAK_STATUS_TONES.get(row.status, "neutral")]
            if key == "owner" and row.owner is None:
                return TONE_TEXT["neutral"]
            if key == "amount" and row.amount < 0:
                return TONE_TEXT["bad"]
            if key == "age" and row.age > OLD_AGE:
                return TONE_TEXT["warn"]
            return None
        if role == Qt.ItemDataRole.FontRole:
            return self._bold if key in ("status", "id") else None
        if role == Qt.ItemDataRole.DecorationRole and key == "status":
            return tone_dot(BREAK_STATUS_TONES.get(row.status, "neutral"))
        if role == Qt.ItemDataRole.BackgroundRole:
            return OLD_BACKGROUND if row.age > OLD_AGE and row.status in ("OPEN", "ASSIGNED") else None
        if role == BreakIdRole:
            return row.id
        if role == RawRole:
            value = getattr(row, key)
            if isinstance(value, tuple):
                return list(value)
            if isinstance(value, Decimal | dt.date):
                return str(value)
            return value
        return None


__all__ = [
    "BREAK_STATUS_TONES",
    "COLUMNS",
    "COLUMN_KEYS",
    "PAGE_SIZE",
    "TYPE_LABELS",
    "WIDTHS",
    "BreakIdRole",
    "BreaksModel",
    "money",
]
