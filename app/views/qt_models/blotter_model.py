"""The trade blotter's table model: a row count and a small cache of pages, never the million trades themselves.

Follows Anki's browser table model (``qt/aqt/browser/table/model.py``): the database filters and sorts, the model
knows how many rows there are and keeps the rows it has been shown in a lazy cache. Here the cache holds pages of
``PAGE_SIZE`` rows keyed by page number. ``data()`` never blocks and never touches the database: a row that is not
cached yet answers with a light "loading…" placeholder and its page is requested through the TaskRunner:

- by keyset from the previous cached page when the user scrolls on (``after``), or from the next cached page when
  they scroll up after a jump (``before``): an index range scan, as cheap at row 900,000 as at row 200;
- from the end for the last page (``from_end``), so Ctrl+End is one short query;
- by OFFSET (from whichever end is nearer) only for a jump into the middle.

Every query (a filter or sort change, a refresh) gets a new *generation*; results of an older generation are
dropped when they arrive, and their tasks are cancelled, so a slow page of the previous sort can never land in the
new one. The row count comes from a separate background ``count`` (until it arrives a full first page counts as
its own length and the rest is appended when the count lands: inserting rows at the end moves nothing on screen).

A live refresh (another workstation imported trades) reads a :class:`~app.services.blotter.Window` in one task
(count, the pages around the top visible trade, where the selected trades are now) and swaps it in at once, so the
view never shows a half-refreshed state; the pane then puts the top trade and the selection back where they were.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
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
from PySide6.QtGui import QBrush, QColor, QFont, QIcon

from app.services import blotter
from app.services.blotter import COLUMN_KEYS, COLUMNS, SORTABLE, BlotterFilter, Page, Sort, Window
from app.views import resources
from app.views.qt_models.status_counts import status_label, tone_dot
from app.views.tasks import TaskFailure, TaskHandle, TaskRunner

if TYPE_CHECKING:
    from app.services.db import Database
    from app.services.permissions import Actor

_Index = QModelIndex | QPersistentModelIndex

PAGE_SIZE = 200
#: Pages kept in memory (12,000 rows): enough to scroll back and forth without re-reading, small at any table size.
MAX_CACHED_PAGES = 60
#: Page queries running at once: the pool keeps threads free for the count, the totals and the connection ping.
MAX_IN_FLIGHT = 2
#: Pages requested by the view are gathered this long, so a fast scroll asks once for where it stopped.
DISPATCH_DELAY_MS = 10

LOADING_TEXT = "loading…"

#: Custom roles: the trade id of a row (None while loading), the raw value of a cell, the row's status code,
#: and whether the row is loaded.
TradeIdRole = Qt.ItemDataRole.UserRole + 10
RawRole = Qt.ItemDataRole.UserRole + 11
StatusRole = Qt.ItemDataRole.UserRole + 12
LoadedRole = Qt.ItemDataRole.UserRole + 13

# The status palette of the panes (see trade_blotter.py and resources/style.qss).
STATUS_TONES: dict[str, str] = {
    "REPAIR": "bad",
    "VALIDATED": "info",
    "CONFIRMED": "info",
    "AFFIRMED": "info",
    "INSTRUCTED": "info",
    "SETTLED": "ok",
    "PARTIALLY_SETTLED": "warn",
    "FAILED": "bad",
    "CANCELLED": "neutral",
}
TONE_TEXT = {
    "ok": QColor("#2e7d32"),
    "warn": QColor("#b26a00"),
    "bad": QColor("#c62828"),
    "info": QColor("#1f4f8f"),
    "neutral": QColor("#7b8794"),
}
# Row tints: a trade in repair is the clerk's work, it must stand out; a failed one is nearly as loud.
REPAIR_BACKGROUND = QColor("#fdecec")
FAILED_BACKGROUND = QColor("#fff6e5")
LOADING_FOREGROUND = QColor("#9aa5b1")
MUTED_FOREGROUND = QColor("#7b8794")

# Roles as plain ints: data() is called thousands of times per paint, and comparing with Qt's enum members costs.
DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
DECORATION = int(Qt.ItemDataRole.DecorationRole.value)
TOOLTIP = int(Qt.ItemDataRole.ToolTipRole.value)
FONT = int(Qt.ItemDataRole.FontRole.value)
ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole.value)
BACKGROUND = int(Qt.ItemDataRole.BackgroundRole.value)
FOREGROUND = int(Qt.ItemDataRole.ForegroundRole.value)
ACCESSIBLE = int(Qt.ItemDataRole.AccessibleTextRole.value)
ROLE_TRADE_ID, ROLE_RAW, ROLE_STATUS, ROLE_LOADED = (
    int(r) for r in (TradeIdRole, RawRole, StatusRole, LoadedRole)
)

COL = {key: i for i, key in enumerate(COLUMN_KEYS)}
_ID = COL["id"]
_STATUS = COL["status"]
_EXCEPTIONS = COL["exception_codes"]
_CURRENCY = COL["currency"]
_NUMERIC_KINDS = frozenset({"decimal", "int"})


#: Text alignment per column: numbers right, words left (computed once, not per call).
ALIGN = tuple(
    int(
        (Qt.AlignmentFlag.AlignRight if c.kind in _NUMERIC_KINDS else Qt.AlignmentFlag.AlignLeft).value
        | Qt.AlignmentFlag.AlignVCenter.value
    )
    for c in COLUMNS
)


@dataclass(slots=True)
class RowLook:
    """How a loaded row reads and looks, worked out once per row and kept while its page is cached."""

    texts: tuple[str, ...]
    status: str
    background: QColor | None
    muted: bool
    has_exceptions: bool

    def foreground(self, col: int) -> QColor | None:
        if col == _STATUS:
            return TONE_TEXT[STATUS_TONES.get(self.status, "neutral")]
        if col == _EXCEPTIONS and self.has_exceptions:
            return TONE_TEXT["bad"]
        return MUTED_FOREGROUND if self.muted else None

    def bold(self, col: int) -> bool:
        return col == _STATUS or (col == _EXCEPTIONS and self.has_exceptions)


def _plain(value: Any) -> Any:
    """Enums as their stored code (StrEnum compares equal to it; str() gives the code too)."""
    return getattr(value, "value", value)


def format_decimal(value: Decimal, kind: str, places: int) -> str:
    """Thousands separators; at least ``places`` decimals, more only when the value has them (a price 0.98765)."""
    exponent = value.normalize().as_tuple().exponent
    shown = max(places, -exponent if isinstance(exponent, int) and exponent < 0 else 0)
    return f"{value:,.{shown}f}"


class CellFormat:
    """How a value reads in the blotter (and in the clipboard): the same text for the view, copy and tests."""

    PLACES = {
        "quantity": 0,
        "price": 2,
        "gross_amount": 2,
        "net_amount": 2,
        "commission": 2,
        "fees": 2,
    }

    def __init__(self, timezone: str = "UTC", usernames: dict[int, str] | None = None) -> None:
        try:
            self.zone = ZoneInfo(timezone)
        except Exception:  # an unknown zone in a user record must not break the blotter
            self.zone = ZoneInfo("UTC")
        self.usernames = usernames or {}

    def text(self, key: str, value: Any) -> str:
        if value is None:
            return ""
        if key == "owner_id":
            return self.usernames.get(int(value), f"#{value}")
        if key == "status":
            return status_label(str(_plain(value)))
        if key == "exception_codes":
            return str(value).replace(",", ", ")
        if isinstance(value, Decimal):
            return format_decimal(value, key, self.PLACES.get(key, 2))
        if isinstance(value, dt.datetime):
            return value.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(value, dt.date):
            return value.isoformat()
        return str(_plain(value))


class BlotterModel(QAbstractTableModel):
    """Rows of the blotter for one filter and sort; all of :data:`~app.services.blotter.COLUMNS` as columns.

    Which columns show, in what order and how wide is the view's business (its header), not the model's.
    """

    #: A new query's first page is in and the rows were swapped (filter, sort or full reload).
    query_loaded = Signal()
    #: The exact row count for the current query is known (the argument).
    count_known = Signal(int)
    #: A page arrived (its number).
    page_loaded = Signal(int)
    #: A live refresh's window was swapped in; the pane restores the scroll position and selection from it.
    window_applied = Signal(object)
    #: Loading failed: the sentence to show.
    load_failed = Signal(str)

    def __init__(
        self,
        db: Database,
        actor: Actor,
        tasks: TaskRunner,
        parent: QObject | None = None,
        *,
        page_size: int = PAGE_SIZE,
        max_pages: int = MAX_CACHED_PAGES,
    ) -> None:
        super().__init__(parent)
        self._db = db
        self._actor = actor
        self._tasks = tasks
        self.page_size = page_size
        self.max_pages = max_pages
        self.fmt = CellFormat(actor.timezone)
        self.filter = BlotterFilter()
        self.sort_order = Sort()
        self._gen = 0
        self._count = 0
        self._count_exact = False
        self._loaded_once = False
        self._pages: OrderedDict[int, Page] = OrderedDict()
        # Row number -> its texts and looks, for the rows of the cached pages.
        self._looks: dict[int, RowLook] = {}
        self._wanted: dict[int, None] = {}  # pages the view asked for, oldest request first
        self._in_flight: dict[int, TaskHandle] = {}
        self._query_tasks: list[TaskHandle] = []
        self._pending_count: int | None = None  # a count that arrived before its first page
        self._busy_query = False  # a new query is on its way: keep showing the old rows, ask for no pages
        self._viewport = (0, -1)
        self._waiters: list[tuple[set[int], Callable[[], None]]] = []
        self._dispatch_timer = QTimer(self)
        self._dispatch_timer.setSingleShot(True)
        self._dispatch_timer.setInterval(DISPATCH_DELAY_MS)
        self._dispatch_timer.timeout.connect(self._dispatch)
        self._repair_icon = resources.icon("repair")
        self._exception_icon = resources.icon("exception")
        self._bold = QFont()
        self._bold.setWeight(QFont.Weight.DemiBold)

    # --- state seen by the pane and tests -------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._gen

    @property
    def count_exact(self) -> bool:
        return self._count_exact

    @property
    def loaded(self) -> bool:
        """The first query has been shown."""
        return self._loaded_once

    @property
    def loading(self) -> bool:
        """A new query or a refresh is on its way."""
        return self._busy_query

    def cached_pages(self) -> list[int]:
        return sorted(self._pages)

    def pending_pages(self) -> list[int]:
        return sorted(self._in_flight)

    def is_row_loaded(self, row: int) -> bool:
        return self._row(row) is not None

    def row_values(self, row: int) -> tuple[Any, ...] | None:
        """The raw values of a row (COLUMN_KEYS order), or None while it is not loaded."""
        return self._row(row)

    def trade_id(self, row: int) -> int | None:
        r = self._row(row)
        return None if r is None else int(r[_ID])

    def row_of_trade(self, trade_id: int) -> int | None:
        """The row of a trade among the cached pages (None when it is not cached)."""
        for number, page in self._pages.items():
            for i, r in enumerate(page.rows):
                if r[_ID] == trade_id:
                    return number * self.page_size + i
        return None

    def set_usernames(self, names: dict[int, str]) -> None:
        self.fmt.usernames = dict(names)
        self._looks.clear()
        if self._count:
            col = COL["owner_id"]
            self.dataChanged.emit(self.index(0, col), self.index(self._count - 1, col))

    def set_viewport(self, first: int, last: int) -> None:
        """The rows on screen (the pane tells us on every scroll): pages far from them are not worth loading."""
        self._viewport = (first, last)

    # --- queries --------------------------------------------------------------------------------------------------

    def set_query(self, flt: BlotterFilter | None = None, sort: Sort | None = None) -> None:
        """Show another filter and/or sort: the first page and the count are read in the background.

        The rows on screen stay until the first page of the new query arrives, then everything is swapped at once.
        """
        if flt is not None:
            self.filter = flt
        if sort is not None:
            if sort.key not in SORTABLE:
                raise ValueError(f"the blotter cannot sort by {sort.key}")
            self.sort_order = sort
        self._new_generation()
        gen = self._gen
        flt_, sort_ = self.filter, self.sort_order
        db, actor, size = self._db, self._actor, self.page_size
        self._busy_query = True
        self._query_tasks.append(
            self._tasks.call(
                partial(blotter.fetch_page, limit=size),
                db,
                actor,
                flt_,
                sort_,
                on_done=lambda page: self._first_page(gen, page),
                on_error=lambda f: self._query_failed(gen, f),
                label="Loading the trade blotter",
                priority=5,
                owner=self,
            )
        )
        self._start_count(gen)

    def reload(self) -> None:
        """Read the current query again from its first page (the rows stay until it arrives)."""
        self.set_query()

    def refresh_window(self, *, top_row: int, top_id: int | None, visible: int, track: Iterable[int]) -> None:
        """Re-read the count and the rows around the top trade in one task, then swap them in (live refresh)."""
        self._new_generation()
        gen = self._gen
        self._busy_query = True
        self._query_tasks.append(
            self._tasks.call(
                partial(
                    blotter.window,
                    top_row=top_row,
                    top_id=top_id,
                    visible=visible,
                    track=tuple(track),
                    page_size=self.page_size,
                ),
                self._db,
                self._actor,
                self.filter,
                self.sort_order,
                on_done=lambda w: self._window_done(gen, w),
                on_error=lambda f: self._query_failed(gen, f),
                label="Refreshing the trade blotter",
                quiet=True,  # a background refresh must not blink the busy indicator every few seconds
                priority=3,
                owner=self,
            )
        )

    def _new_generation(self) -> None:
        self._gen += 1
        for handle in self._query_tasks:
            handle.cancel()
        self._query_tasks = []
        for handle in self._in_flight.values():
            handle.cancel()
        self._in_flight.clear()
        self._wanted.clear()
        self._pending_count = None

    def _start_count(self, gen: int) -> None:
        self._query_tasks.append(
            self._tasks.call(
                blotter.count,
                self._db,
                self._actor,
                self.filter,
                on_done=lambda n: self._count_done(gen, n),
                on_error=lambda f: self._query_failed(gen, f),
                label="Counting trades",
                quiet=True,
                priority=4,
                owner=self,
            )
        )

    def _first_page(self, gen: int, page: Page) -> None:
        if gen != self._gen:
            return
        rows = len(page.rows)
        if rows < self.page_size:
            count, exact = rows, True  # the whole result fits in one page: that is the count
        elif self._pending_count is not None:
            count, exact = self._pending_count, True
        else:
            count, exact = rows, False
        self.beginResetModel()
        self._pages.clear()
        self._looks.clear()
        self._pages[0] = page
        self._count, self._count_exact = count, exact
        self._busy_query = False
        self._loaded_once = True
        self.endResetModel()
        self.query_loaded.emit()
        if exact:
            self.count_known.emit(count)
        self._check_waiters()

    def _count_done(self, gen: int, n: object) -> None:
        if gen != self._gen:
            return
        count = int(n)  # type: ignore[call-overload]
        if self._busy_query:
            self._pending_count = count  # the first page is not in yet; it will use this
            return
        self._set_count(count)

    def _set_count(self, count: int) -> None:
        if count > self._count:
            self.beginInsertRows(QModelIndex(), self._count, count - 1)
            self._count = count
            self._count_exact = True
            self.endInsertRows()
        elif count < self._count:
            # Rows went away between the first page and the count: drop the surplus at the end.
            self.beginRemoveRows(QModelIndex(), count, self._count - 1)
            self._count = count
            self._count_exact = True
            for number in [p for p in self._pages if p * self.page_size >= count]:
                del self._pages[number]
            self._looks = {r: look for r, look in self._looks.items() if r < count}
            self.endRemoveRows()
        else:
            self._count_exact = True
        self.count_known.emit(count)

    def _window_done(self, gen: int, window: object) -> None:
        if gen != self._gen:
            return
        assert isinstance(window, Window)
        self.beginResetModel()
        self._pages.clear()
        self._looks.clear()
        size = self.page_size
        first = window.start // size
        for i in range(0, len(window.rows), size):
            self._pages[first + i // size] = self._page_of(window.rows[i : i + size])
        self._count, self._count_exact = window.count, True
        self._busy_query = False
        self._loaded_once = True
        self.endResetModel()
        self.window_applied.emit(window)
        self.count_known.emit(window.count)
        self._check_waiters()

    def _query_failed(self, gen: int, failure: TaskFailure) -> None:
        if gen != self._gen:
            return
        self._busy_query = False
        self.load_failed.emit(failure.message)

    def _page_of(self, rows: list[tuple[Any, ...]]) -> Page:
        i = COL[self.sort_order.key]
        if not rows:
            return Page([])
        return Page(rows, (rows[0][i], rows[0][_ID]), (rows[-1][i], rows[-1][_ID]))

    # --- pages ----------------------------------------------------------------------------------------------------

    def _row(self, row: int) -> tuple[Any, ...] | None:
        page = self._pages.get(row // self.page_size)
        if page is None:
            return None
        i = row % self.page_size
        return page.rows[i] if i < len(page.rows) else None

    def _want(self, number: int) -> None:
        if self._busy_query or number in self._in_flight or number in self._pages:
            return
        self._wanted[number] = None
        if not self._dispatch_timer.isActive():
            self._dispatch_timer.start()

    def request_rows(self, first: int, last: int) -> None:
        """Ask for the pages covering rows first..last (a jump, a copy of a selection)."""
        last = min(last, self._count - 1)
        for number in range(max(first, 0) // self.page_size, last // self.page_size + 1):
            self._want(number)

    def when_loaded(self, rows: Iterable[int], callback: Callable[[], None]) -> None:
        """Call ``callback`` once every one of ``rows`` is cached (at once if they are), asking for their pages."""
        pages = {r // self.page_size for r in rows if 0 <= r < self._count}
        missing = {p for p in pages if p not in self._pages}
        if not missing:
            callback()
            return
        self._waiters.append((missing, callback))
        for p in missing:
            self._want(p)

    def _check_waiters(self) -> None:
        still: list[tuple[set[int], Callable[[], None]]] = []
        ready: list[Callable[[], None]] = []
        for missing, callback in self._waiters:
            missing = {p for p in missing if p not in self._pages}
            if missing and not self._busy_query:
                still.append((missing, callback))
                for p in missing:
                    self._want(p)
            elif not missing:
                ready.append(callback)
        self._waiters = still
        for callback in ready:
            callback()

    def _near_viewport(self, number: int) -> bool:
        first, last = self._viewport
        if last < first:
            return True
        lo, hi = first // self.page_size - 1, last // self.page_size + 1
        return lo <= number <= hi

    def _dispatch(self) -> None:
        """Start the wanted page queries, nearest the screen first, at most MAX_IN_FLIGHT at a time."""
        if self._busy_query:
            return
        waited = {p for missing, _ in self._waiters for p in missing}
        # Pages the user has scrolled far away from are not worth a query any more (unless a copy waits on them).
        for number in [p for p in self._in_flight if not self._near_viewport(p) and p not in waited]:
            self._in_flight.pop(number).cancel()
        for number in [p for p in self._wanted if not self._near_viewport(p) and p not in waited]:
            del self._wanted[number]
        while self._wanted and len(self._in_flight) < MAX_IN_FLIGHT:
            number = self._pick()
            del self._wanted[number]
            self._start_page(number)

    def _pick(self) -> int:
        first, last = self._viewport
        if last < first:
            return next(iter(self._wanted))
        middle = (first + last) // 2 // self.page_size
        return min(self._wanted, key=lambda p: abs(p - middle))

    def _page_request(self, number: int) -> dict[str, Any]:
        """How to read page ``number``: keyset from a neighbour if one is cached, else from the nearer end."""
        size = self.page_size
        prev_page = self._pages.get(number - 1)
        if prev_page is not None and len(prev_page.rows) == size and prev_page.last_key is not None:
            return {"limit": size, "after": prev_page.last_key}
        next_page = self._pages.get(number + 1)
        if next_page is not None and next_page.first_key is not None:
            return {"limit": size, "before": next_page.first_key}
        last_page = (self._count - 1) // size
        if self._count_exact and number == last_page:
            return {"limit": self._count - number * size, "from_end": True}
        start = number * size
        if self._count_exact and start > self._count // 2:
            return {"limit": size, "from_end": True, "offset": self._count - start - size}
        return {"limit": size, "offset": start}

    def _start_page(self, number: int) -> None:
        gen = self._gen
        try:
            handle = self._tasks.call(
                partial(blotter.fetch_page, **self._page_request(number)),
                self._db,
                self._actor,
                self.filter,
                self.sort_order,
                on_done=lambda page: self._page_done(gen, number, page),
                on_error=lambda f: self._page_failed(gen, number, f),
                on_cancelled=lambda: self._page_cancelled(gen, number),
                label="Loading trades",
                quiet=True,  # scrolling must not make the status bar blink
                priority=6,
                owner=self,
            )
        except RuntimeError:
            return  # the task runner has shut down: the window is closing
        self._in_flight[number] = handle

    def _page_done(self, gen: int, number: int, page: Page) -> None:
        if gen != self._gen:
            return
        self._in_flight.pop(number, None)
        # A page that came back short (rows deleted meanwhile) is still stored: asking again would loop.
        self._pages[number] = page
        self._pages.move_to_end(number)
        self._evict(keep=number)
        first = number * self.page_size
        last = min(first + self.page_size, self._count) - 1
        if last >= first:
            self.dataChanged.emit(self.index(first, 0), self.index(last, self.columnCount() - 1))
        self.page_loaded.emit(number)
        self._check_waiters()
        if self._wanted:
            self._dispatch()

    def _page_failed(self, gen: int, number: int, failure: TaskFailure) -> None:
        if gen != self._gen:
            return
        self._in_flight.pop(number, None)
        self.load_failed.emit(failure.message)

    def _page_cancelled(self, gen: int, number: int) -> None:
        if gen == self._gen and number in self._in_flight and self._in_flight[number].cancelled:
            self._in_flight.pop(number, None)

    def _evict(self, keep: int) -> None:
        """Drop the pages furthest from the screen once the cache is full (never the one just loaded)."""
        if len(self._pages) <= self.max_pages:
            return
        first, last = self._viewport
        centre = (first + max(first, last)) // 2 // self.page_size if last >= first else keep
        waited = {p for missing, _ in self._waiters for p in missing}
        for number in sorted(self._pages, key=lambda p: -abs(p - centre)):
            if len(self._pages) <= self.max_pages:
                break
            if number != keep and number not in waited:
                del self._pages[number]
                first = number * self.page_size
                for r in range(first, first + self.page_size):
                    self._looks.pop(r, None)

    # --- QAbstractTableModel --------------------------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's own default argument idiom
        return 0 if parent.isValid() else self._count

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    _FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def flags(self, index: _Index) -> Qt.ItemFlag:
        return self._FLAGS if index.isValid() else Qt.ItemFlag.NoItemFlags

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        column = COLUMNS[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.label
        if role == Qt.ItemDataRole.ToolTipRole:
            how = "click to sort" if column.key in SORTABLE else "not sortable (no index on this column)"
            return f"{column.label} – {how}"
        if role == Qt.ItemDataRole.TextAlignmentRole:
            horizontal = (
                Qt.AlignmentFlag.AlignRight if column.kind in _NUMERIC_KINDS else Qt.AlignmentFlag.AlignLeft
            )
            return int(horizontal | Qt.AlignmentFlag.AlignVCenter)
        if role == RawRole:
            return column.key
        return None

    def look(self, row_no: int) -> RowLook | None:
        """The row's texts and looks (cached with its page), or None while it is loading (its page is asked for)."""
        look = self._looks.get(row_no)
        if look is not None:
            return look
        row = self._row(row_no)
        if row is None:
            if 0 <= row_no < self._count:
                self._want(row_no // self.page_size)
            return None
        status = str(_plain(row[_STATUS]))
        text = self.fmt.text
        look = RowLook(
            texts=tuple(text(key, value) for key, value in zip(COLUMN_KEYS, row, strict=True)),
            status=status,
            background=REPAIR_BACKGROUND
            if status == "REPAIR"
            else FAILED_BACKGROUND
            if status == "FAILED"
            else None,
            muted=status == "CANCELLED",
            has_exceptions=bool(row[_EXCEPTIONS]),
        )
        self._looks[row_no] = look
        return look

    def icon(self, look: RowLook, col: int) -> QIcon | None:
        if col == _STATUS:
            return self._status_icon(look.status)
        if col == _EXCEPTIONS and look.has_exceptions:
            return self._exception_icon
        return None

    def data(self, index: _Index, role: int = DISPLAY) -> object:
        if not index.isValid():
            return None
        row_no, col = index.row(), index.column()
        if not 0 <= row_no < self._count or not 0 <= col < len(COLUMNS):
            return None
        look = self.look(row_no)
        if look is None:
            return self._placeholder(col, role)
        if role in (DISPLAY, ACCESSIBLE):
            return look.texts[col]
        if role == ALIGNMENT:
            return ALIGN[col]
        if role == FOREGROUND:
            colour = look.foreground(col)
            return None if colour is None else QBrush(colour)
        if role == BACKGROUND:
            return None if look.background is None else QBrush(look.background)
        if role == FONT:
            return self._bold if look.bold(col) else None
        if role == DECORATION:
            return self.icon(look, col)
        row = self._row(row_no)
        assert row is not None
        if role == TOOLTIP:
            return self._tooltip(row, COLUMN_KEYS[col], look.status)
        if role == ROLE_TRADE_ID:
            return int(row[_ID])
        if role == ROLE_RAW:
            return _plain(row[col])
        if role == ROLE_STATUS:
            return look.status
        if role == ROLE_LOADED:
            return True
        return None

    def _placeholder(self, col: int, role: int) -> object:
        if role == DISPLAY:
            return LOADING_TEXT if col == COL["trade_ref"] else ""
        if role == FOREGROUND:
            return QBrush(LOADING_FOREGROUND)
        if role == ROLE_LOADED:
            return False
        return None

    def _status_icon(self, status: str) -> QIcon:
        if status == "REPAIR":
            return self._repair_icon
        return tone_dot(STATUS_TONES.get(status, "neutral"))

    def _tooltip(self, row: tuple[Any, ...], key: str, status: str) -> str | None:
        if key == "status" and status == "REPAIR":
            codes = self.fmt.text("exception_codes", row[_EXCEPTIONS])
            return f"In repair: failed validation ({codes}). Select it and press Enter for the details."
        if key == "exception_codes" and row[_EXCEPTIONS]:
            return self._explain_codes(str(row[_EXCEPTIONS]))
        if key == "owner_id" and row[COL["owner_id"]] is None:
            return "Unassigned"
        return None

    def _explain_codes(self, codes: str) -> str:
        return "\n".join(f"{c}: {self.reasons.get(c, 'validation failed')}" for c in codes.split(",") if c)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """QAbstractItemModel.sort: sorts in the database; columns without an index are refused (ignored)."""
        if not 0 <= column < len(COLUMNS) or COLUMNS[column].key not in SORTABLE:
            return
        self.set_query(sort=Sort(COLUMNS[column].key, order == Qt.SortOrder.DescendingOrder))
