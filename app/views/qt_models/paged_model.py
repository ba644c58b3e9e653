"""A table model over a million database rows: a row count and a small cache of pages, never the rows themselves.

Follows Anki's browser table model (``qt/aqt/browser/table/model.py``): the database filters and sorts, the model
knows how many rows there are and keeps the rows it has been shown in a lazy cache of pages of ``page_size`` rows
keyed by page number. The trade blotter (``blotter_model.py``) and the settlement queue (``settlement_model.py``)
are subclasses: each names its service module (``fetch_page``, ``count``, ``window`` with the signatures of
``app/services/paging.py``), its columns, its sortable keys and how a loaded row looks (:meth:`build`).

``data()`` never blocks and never touches the database: a row that is not cached yet answers with a light
"loading…" placeholder and its page is requested through the TaskRunner:

- by keyset from the previous cached page when the user scrolls on (``after``), or from the next cached page when
  they scroll up after a jump (``before``): an index range scan, as cheap at row 900,000 as at row 200;
- from the end for the last page (``from_end``), so Ctrl+End is one short query;
- by OFFSET (from whichever end is nearer) only for a jump into the middle.

Every query (a filter or sort change, a refresh) gets a new *generation*; results of an older generation are
dropped when they arrive, and their tasks are cancelled, so a slow page of the previous sort can never land in the
new one. Cancelled page, first-page and count tasks also stop their statement where it runs (``stoppable``: the
database's cancel, see :class:`app.services.paging.QueryStop`), as do pages a fast scroll has left behind: a page
300,000 rows in holds a server core for a quarter of a second that the GUI thread may need. The row count comes
from a separate background ``count`` (until it arrives a full first page counts as its own length and the rest is appended when the count lands: inserting rows at the end moves nothing on screen).

A live refresh (another workstation changed rows) reads a :class:`~app.services.paging.Window` in one task (count,
the pages around the top visible row, where the selected rows are now) and swaps it in at once, so the view never
shows a half-refreshed state; the pane then puts the top row and the selection back where they were.

No event of the GUI thread may run long (the blotter's figure: never blocked more than 50 ms). Rows that arrive for
the screen (a first page, a page, a refresh window, looks to redo after a rename) are therefore not swapped in by
the slot that receives them: the looks of the rows on screen are worked out first, and the table works out how it
will draw them (``prepare_looks``), :data:`PREPARE_SLICE_S` at a time, one turn of the event loop each; then
everything is swapped in at once and the paint only draws. While the GUI thread is idle the loaded rows a screenful
either side of the screen are worked out the same way, so a scroll only draws too.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

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

from app.services.paging import Column, Page, page_of
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
#: Rows that arrive for the screen have their looks worked out (and their texts laid out by the table) a few at a
#: time, at most this long per turn of the event loop, before they are swapped in: the paint that shows them then
#: finds everything ready, and no single event of the GUI thread runs long (see :meth:`PagedTableModel._arrive`).
PREPARE_SLICE_S = 0.003
#: Rows worked out between two looks at the clock.
PREPARE_BATCH = 2
LOADING_TEXT = "loading…"
LOADING_FOREGROUND = QColor("#9aa5b1")

#: Custom roles: the row's item id (None while loading), a cell's raw value, the row's status code, whether the
#: row is loaded.
IdRole = Qt.ItemDataRole.UserRole + 10
RawRole = Qt.ItemDataRole.UserRole + 11
StatusRole = Qt.ItemDataRole.UserRole + 12
LoadedRole = Qt.ItemDataRole.UserRole + 13

# Roles as plain ints: data() is called thousands of times per paint, and comparing with Qt's enum members costs.
DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
DECORATION = int(Qt.ItemDataRole.DecorationRole.value)
TOOLTIP = int(Qt.ItemDataRole.ToolTipRole.value)
FONT = int(Qt.ItemDataRole.FontRole.value)
ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole.value)
BACKGROUND = int(Qt.ItemDataRole.BackgroundRole.value)
FOREGROUND = int(Qt.ItemDataRole.ForegroundRole.value)
ACCESSIBLE = int(Qt.ItemDataRole.AccessibleTextRole.value)
ROLE_ID, ROLE_RAW, ROLE_STATUS, ROLE_LOADED = (int(r) for r in (IdRole, RawRole, StatusRole, LoadedRole))
NUMERIC_KINDS = frozenset({"decimal", "int"})


def alignments(columns: tuple[Column, ...]) -> tuple[int, ...]:
    """Text alignment per column: numbers right, words left."""
    return tuple(
        int(
            (Qt.AlignmentFlag.AlignRight if c.kind in NUMERIC_KINDS else Qt.AlignmentFlag.AlignLeft).value
            | Qt.AlignmentFlag.AlignVCenter.value
        )
        for c in columns
    )


class Look(Protocol):
    """What the model and the row painters read of a loaded row's look (:class:`RowLook`, or a list's own)."""

    @property
    def texts(self) -> tuple[str, ...]: ...
    @property
    def status(self) -> str: ...
    @property
    def background(self) -> QColor | None: ...
    def foreground(self, col: int) -> QColor | None: ...
    def bold(self, col: int) -> bool: ...


@dataclass(slots=True)
class RowLook:
    """How a loaded row reads and looks, worked out once per row and kept while its page is cached."""

    texts: tuple[str, ...]
    status: str
    background: QColor | None
    foregrounds: dict[int, QColor]  # per column; ``default`` for the others
    default: QColor | None
    bold_columns: frozenset[int]
    icons: dict[int, QIcon]

    def foreground(self, col: int) -> QColor | None:
        return self.foregrounds.get(col, self.default)

    def bold(self, col: int) -> bool:
        return col in self.bold_columns


@dataclass(eq=False)
class _Arrival:
    """Rows that arrived (a first page, a page, a refresh window) and wait for the looks of the rows on screen to be
    worked out before ``apply`` swaps them in."""

    gen: int
    #: (row number, values) still to work out, last first; None: the rows on screen when its turn comes.
    todo: list[tuple[int, tuple[Any, ...]]] | None
    apply: Callable[[dict[int, Look]], None]
    looks: dict[int, Look] = field(default_factory=dict)
    #: Looks worked out ahead (rows near the screen): given up as soon as rows arrive.
    ahead: bool = False
    #: The arriving rows now on screen (row number, values): asked again once ``todo`` is done, since the screen
    #: may have moved onto them meanwhile (a scroll while a page waits for its turn).
    on_screen: Callable[[], list[tuple[int, tuple[Any, ...]]]] | None = None


class PagedTableModel(QAbstractTableModel):
    """Rows of one filter and sort, paged in the background. Subclasses set the class attributes and :meth:`build`.

    All of ``columns`` are the model's columns: which show, in what order and how wide is the view's business (its
    header), not the model's.
    """

    #: The service module: ``fetch_page(db, actor, flt, sort, **page)``, ``count(db, actor, flt)``, ``window(...)``.
    service: ClassVar[ModuleType]
    columns: ClassVar[tuple[Column, ...]] = ()
    sortable: ClassVar[frozenset[str]] = frozenset()
    id_key: ClassVar[str] = "id"
    placeholder_key: ClassVar[str] = ""
    #: The list in task labels ("Loading the trade blotter") and its rows ("Counting trades"; default: the list).
    what: ClassVar[str] = "rows"
    items: ClassVar[str | None] = None

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
        flt: Any,
        sort: Any,
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
        self.filter = flt
        self.sort_order = sort
        self.keys = tuple(c.key for c in self.columns)
        self.col = {k: i for i, k in enumerate(self.keys)}
        self.align = alignments(self.columns)
        self.placeholder_column = self.col.get(self.placeholder_key, 0)
        self._id = self.col[self.id_key]
        self._gen = 0
        self._count = 0
        self._count_exact = False
        self._loaded_once = False
        self._pages: OrderedDict[int, Page] = OrderedDict()
        # Row number -> its texts and looks, for the rows of the cached pages.
        self._looks: dict[int, Look] = {}
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
        #: Works out how rows about to be shown will be drawn, given (row number, look) pairs (the table sets it:
        #: WindowedTable.prepare_looks).
        self.prepare_looks: Callable[[list[tuple[int, Look]]], None] | None = None
        #: How many rows the screen shows (the table sets it): the rows of a new query worth preparing.
        self.screen_rows: Callable[[], int] | None = None
        self._arrivals: deque[_Arrival] = deque()
        self._prepare_timer = QTimer(self)
        self._prepare_timer.setSingleShot(True)
        self._prepare_timer.setInterval(0)
        self._prepare_timer.timeout.connect(self._prepare_some)
        self.bold_font = QFont()
        self.bold_font.setWeight(QFont.Weight.DemiBold)

    # --- what subclasses provide ----------------------------------------------------------------------------------

    def build(self, row: tuple[Any, ...]) -> Look:
        """The texts and looks of a loaded row (values in ``columns`` order)."""
        raise NotImplementedError

    def tooltip(self, row: tuple[Any, ...], key: str, look: Any) -> str | None:
        return None

    def icon(self, look: Any, col: int) -> QIcon | None:
        """The icon of a cell (the row painters ask for it too)."""
        return look.icons.get(col)

    def make_sort(self, key: str, descending: bool) -> Any:
        return type(self.sort_order)(key, descending)

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
        """The raw values of a row (``columns`` order), or None while it is not loaded."""
        return self._row(row)

    def item_id(self, row: int) -> int | None:
        r = self._row(row)
        return None if r is None else int(r[self._id])

    def row_of_item(self, item_id: int) -> int | None:
        """The row of an item among the cached pages (None when it is not cached)."""
        for number, page in self._pages.items():
            for i, r in enumerate(page.rows):
                if r[self._id] == item_id:
                    return number * self.page_size + i
        return None

    def forget_looks(self, column: int | None = None) -> None:
        """Work every row's look out anew (after the names or words it uses changed in ``column``, or anywhere).

        The rows on screen are worked out a few at a time as rows arriving are (:meth:`_arrive`), then every look
        is replaced at once; the others are worked out when next painted. Looks worked out for rows arriving
        meanwhile are replaced too: this comes after them."""
        self._arrive(self._gen, None, partial(self._swap_looks, column))

    def _swap_looks(self, column: int | None, looks: dict[int, Look]) -> None:
        self._looks = looks
        if self._count:
            first, last = (0, len(self.columns) - 1) if column is None else (column, column)
            self.dataChanged.emit(self.index(0, first), self.index(self._count - 1, last))

    def set_viewport(self, first: int, last: int) -> None:
        """The rows on screen (the pane tells us on every scroll): pages far from them are not worth loading.

        With a table to draw them (``prepare_looks``), the loaded rows a screenful above and below get their looks
        worked out while the GUI thread is idle, a few at a time: the next scroll then only draws."""
        self._viewport = (first, last)
        if self._arrivals and self._arrivals[-1].ahead:
            self._keep_looks(
                self._arrivals.pop().looks
            )  # worked out for where the screen was: keep what is done
        if last < first or self.prepare_looks is None or self._arrivals:
            return
        span = last - first + 1
        near = [
            *range(last + 1, min(last + span, self._count - 1) + 1),
            *range(first - 1, max(first - span, 0) - 1, -1),
        ]
        todo = [(r, values) for r in near if r not in self._looks and (values := self._row(r)) is not None]
        if todo:
            todo.reverse()
            self._arrivals.append(_Arrival(self._gen, todo, self._keep_looks, ahead=True))
            if not self._prepare_timer.isActive():
                self._prepare_timer.start()

    def _keep_looks(self, looks: dict[int, Look]) -> None:
        """Keep looks worked out ahead for rows whose page is still cached (and that have none yet)."""
        for row, look in looks.items():
            if row not in self._looks and self._row(row) is not None:
                self._looks[row] = look

    # --- queries --------------------------------------------------------------------------------------------------

    def set_query(self, flt: Any = None, sort: Any = None) -> None:
        """Show another filter and/or sort: the first page and the count are read in the background.

        The rows on screen stay until the first page of the new query arrives, then everything is swapped at once.
        """
        if flt is not None:
            self.filter = flt
        if sort is not None:
            if sort.key not in self.sortable:
                raise ValueError(f"cannot sort the {self.what} by {sort.key}")
            self.sort_order = sort
        self._new_generation()
        gen = self._gen
        self._busy_query = True
        self._query_tasks.append(
            self._tasks.call(
                partial(self.service.fetch_page, limit=self.page_size),
                self._db,
                self._actor,
                self.filter,
                self.sort_order,
                on_done=lambda page: self._first_page(gen, page),
                on_error=lambda f: self._query_failed(gen, f),
                label=f"Loading the {self.what}",
                priority=5,
                owner=self,
                stoppable=True,  # a newer query stops this one where it runs
            )
        )
        self._query_tasks.append(
            self._tasks.call(
                self.service.count,
                self._db,
                self._actor,
                self.filter,
                on_done=lambda n: self._count_done(gen, n),
                on_error=lambda f: self._query_failed(gen, f),
                label=f"Counting {self.items or 'the ' + self.what}",
                quiet=True,
                priority=4,
                owner=self,
                stoppable=True,
            )
        )

    def reload(self) -> None:
        """Read the current query again from its first page (the rows stay until it arrives)."""
        self.set_query()

    def refresh_window(self, *, top_row: int, top_id: int | None, visible: int, track: Iterable[int]) -> None:
        """Re-read the count and the rows around the top row in one task, then swap them in (live refresh)."""
        self._new_generation()
        gen = self._gen
        self._busy_query = True
        self._query_tasks.append(
            self._tasks.call(
                partial(
                    self.service.window,
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
                label=f"Refreshing the {self.what}",
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
        self._arrivals.clear()
        self._pending_count = None

    def _first_page(self, gen: int, page: Page) -> None:
        if gen != self._gen:
            return
        # The view goes back to the top with a new query: the rows to prepare are the first screenful.
        shown = page.rows[: self._screenful()]
        self._arrive(gen, list(enumerate(shown)), lambda looks: self._swap_first_page(gen, page, looks))

    def _swap_first_page(self, gen: int, page: Page, looks: dict[int, Look]) -> None:
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
        self._looks.update(looks)
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

    def _window_done(self, gen: int, window: Any) -> None:
        if gen != self._gen:
            return
        # The pane puts the top row back at ``window.top``: prepare the screenful from there.
        start = max(window.top - window.start, 0)
        shown = window.rows[start : start + self._screenful()]
        todo = [(window.start + start + i, r) for i, r in enumerate(shown)]
        self._arrive(gen, todo, lambda looks: self._swap_window(window, looks))

    def _swap_window(self, window: Any, looks: dict[int, Look]) -> None:
        self.beginResetModel()
        self._pages.clear()
        self._looks.clear()
        self._looks.update(looks)
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
        return page_of(rows, self.col[self.sort_order.key], self._id)

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
        return first // self.page_size - 1 <= number <= last // self.page_size + 1

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
                partial(self.service.fetch_page, **self._page_request(number)),
                self._db,
                self._actor,
                self.filter,
                self.sort_order,
                on_done=lambda page: self._page_done(gen, number, page),
                on_error=lambda f: self._page_failed(gen, number, f),
                on_cancelled=lambda: self._page_cancelled(gen, number),
                label=f"Loading {self.items or self.what}",
                quiet=True,  # scrolling must not make the status bar blink
                priority=6,
                owner=self,
                stoppable=True,  # a page scrolled past stops on the server too (see _dispatch)
            )
        except RuntimeError:
            return  # the task runner has shut down: the window is closing
        self._in_flight[number] = handle

    def _page_done(self, gen: int, number: int, page: Page) -> None:
        if gen != self._gen:
            return
        # Until it is swapped in the page stays "in flight", so the paint does not ask for it again.
        start = number * self.page_size

        def on_screen() -> list[tuple[int, tuple[Any, ...]]]:
            first, last = self._viewport
            return [
                (start + i, r)
                for i, r in enumerate(page.rows)
                if last >= first and first <= start + i <= last and start + i not in self._looks
            ]

        self._arrive(gen, on_screen(), lambda looks: self._swap_page(number, page, looks), on_screen)

    def _swap_page(self, number: int, page: Page, looks: dict[int, Look]) -> None:
        self._in_flight.pop(number, None)
        # A page that came back short (rows deleted meanwhile) is still stored: asking again would loop.
        self._pages[number] = page
        self._pages.move_to_end(number)
        self._looks.update(looks)
        self._evict(keep=number)
        first = number * self.page_size
        last = min(first + self.page_size, self._count) - 1
        if last >= first:
            self.dataChanged.emit(self.index(first, 0), self.index(last, self.columnCount() - 1))
        self.page_loaded.emit(number)
        self._check_waiters()
        if self._wanted:
            self._dispatch()

    def _screenful(self) -> int:
        """Rows on one screen: the table's word for it, else the rows of the last viewport (none before one)."""
        if self.screen_rows is not None:
            try:
                return max(self.screen_rows(), 0)
            except RuntimeError:  # the table is being deleted (its window is closing)
                self.screen_rows = self.prepare_looks = None
        first, last = self._viewport
        return max(last - first + 1, 0)

    def _rows_on_screen(self) -> list[tuple[int, tuple[Any, ...]]]:
        """(row number, values) of the loaded rows on screen."""
        first, last = self._viewport
        rows = ((r, self._row(r)) for r in range(max(first, 0), min(last, self._count - 1) + 1))
        return [(r, values) for r, values in rows if values is not None]

    # --- rows arriving --------------------------------------------------------------------------------------------

    def _arrive(
        self,
        gen: int,
        todo: list[tuple[int, tuple[Any, ...]]] | None,
        apply: Callable[[dict[int, Look]], None],
        on_screen: Callable[[], list[tuple[int, tuple[Any, ...]]]] | None = None,
    ) -> None:
        """Swap in rows that arrived once the looks of those on screen (``todo``) are worked out.

        Working out a screenful of looks and laying out their texts takes the GUI thread 10-20 ms (most of a
        paint of new rows); done in the paint, or in the slot that receives the rows, that is one long event. Here
        it is done :data:`PREPARE_SLICE_S` at a time, one turn of the event loop each, and the paint after the
        swap finds every look and text ready. Rows with nothing to prepare (none on screen) swap in at once.
        """
        if self._arrivals and self._arrivals[-1].ahead:
            # Rows arriving come first; looks worked out ahead are only a nicety (those done are kept).
            self._keep_looks(self._arrivals.pop().looks)
        if todo is None and not self._arrivals:
            todo = self._rows_on_screen()
        if not todo and not self._arrivals:
            apply({})
            return
        if todo is not None:
            todo.reverse()
        self._arrivals.append(_Arrival(gen, todo, apply, on_screen=on_screen))
        if not self._prepare_timer.isActive():
            self._prepare_timer.start()

    def _prepare_some(self) -> None:
        deadline = time.perf_counter() + PREPARE_SLICE_S
        while self._arrivals:
            arrival = self._arrivals[0]
            if arrival.gen != self._gen:
                self._arrivals.popleft()
                continue
            if arrival.todo is None:
                arrival.todo = self._rows_on_screen()
                arrival.todo.reverse()
            while arrival.todo:
                batch = [arrival.todo.pop() for _ in range(min(PREPARE_BATCH, len(arrival.todo)))]
                looks = [(row, self.build(values)) for row, values in batch]
                arrival.looks.update(looks)
                if self.prepare_looks is not None:
                    try:
                        self.prepare_looks(looks)
                    except RuntimeError:  # the table is being deleted (its window is closing)
                        self.screen_rows = self.prepare_looks = None
                if time.perf_counter() > deadline:
                    self._prepare_timer.start()
                    return
            if arrival.on_screen is not None:
                # The screen may have moved onto more of these rows while they waited: those too, first (a page is
                # at most a few hundred rows, so this ends).
                more = [rv for rv in arrival.on_screen() if rv[0] not in arrival.looks]
                if more:
                    more.reverse()
                    arrival.todo = more
                    continue
            self._arrivals.popleft()
            arrival.apply(arrival.looks)
            if self._arrivals:
                self._prepare_timer.start()  # the swap's own paint comes first
            return

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
                start = number * self.page_size
                for r in range(start, start + self.page_size):
                    self._looks.pop(r, None)

    # --- QAbstractTableModel --------------------------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's own default argument idiom
        return 0 if parent.isValid() else self._count

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    _FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def flags(self, index: _Index) -> Qt.ItemFlag:
        return self._FLAGS if index.isValid() else Qt.ItemFlag.NoItemFlags

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        column = self.columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.label
        if role == Qt.ItemDataRole.ToolTipRole:
            how = "click to sort" if column.key in self.sortable else "not sortable (no index on this column)"
            return f"{column.label} – {how}"
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return self.align[section]
        if role == RawRole:
            return column.key
        return None

    def look(self, row_no: int) -> Look | None:
        """The row's texts and looks (cached with its page), or None while it is loading (its page is asked for)."""
        look = self._looks.get(row_no)
        if look is not None:
            return look
        row = self._row(row_no)
        if row is None:
            if 0 <= row_no < self._count:
                self._want(row_no // self.page_size)
            return None
        look = self.build(row)
        self._looks[row_no] = look
        return look

    def data(self, index: _Index, role: int = DISPLAY) -> object:
        if not index.isValid():
            return None
        row_no, col = index.row(), index.column()
        if not 0 <= row_no < self._count or not 0 <= col < len(self.columns):
            return None
        look = self.look(row_no)
        if look is None:
            if role == DISPLAY:
                return LOADING_TEXT if col == self.placeholder_column else ""
            if role == FOREGROUND:
                return QBrush(LOADING_FOREGROUND)
            if role == ROLE_LOADED:
                return False
            return None
        if role in (DISPLAY, ACCESSIBLE):
            return look.texts[col]
        if role == ALIGNMENT:
            return self.align[col]
        if role == FOREGROUND:
            colour = look.foreground(col)
            return None if colour is None else QBrush(colour)
        if role == BACKGROUND:
            return None if look.background is None else QBrush(look.background)
        if role == FONT:
            return self.bold_font if look.bold(col) else None
        if role == DECORATION:
            return self.icon(look, col)
        row = self._row(row_no)
        assert row is not None
        if role == TOOLTIP:
            return self.tooltip(row, self.keys[col], look)
        if role == ROLE_ID:
            return int(row[self._id])
        if role == ROLE_RAW:
            return getattr(row[col], "value", row[col])
        if role == ROLE_STATUS:
            return look.status
        if role == ROLE_LOADED:
            return True
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """QAbstractItemModel.sort: sorts in the database; columns without an index are refused (ignored)."""
        if not 0 <= column < len(self.columns) or self.columns[column].key not in self.sortable:
            return
        self.set_query(sort=self.make_sort(self.columns[column].key, order == Qt.SortOrder.DescendingOrder))
