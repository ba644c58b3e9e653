"""Trade blotter: every trade the front office sent, a million of them, filtered and sorted in the database.

The table shows a :class:`~app.views.qt_models.blotter_model.BlotterModel`: a row count and a cache of pages read
in the background, never the trades themselves (see that module). The pane adds what a clerk works with:

- a filter bar (Ctrl+F) with the quick filters *My repairs*, *Today*, *Failing validation*;
- sorting by clicking a header (only columns with an index: a sort must stay an index scan at a million rows);
- columns to choose, move and resize, remembered per user (``blotter.columns``), and named views (filter, sort
  and columns under ``blotter.views.<name>``);
- a detail panel under the rows for the selected trade (Enter): fields, front-office versions with what changed,
  lifecycle, audit entries, settlement instructions and breaks;
- repair of a trade in the repair queue (clerks and supervisors; auditors see no edit action);
- export of the view to CSV/XLSX, Ctrl+C of the selected rows as tab-separated text, import of trade files from
  the File menu or by dropping them on the table;
- live updates: when another workstation imports trades the count and the rows on screen are re-read in the
  background and swapped in at once, keeping the top visible trade and the selection where they were; F5 does the
  same on demand.
"""

from __future__ import annotations

import datetime as dt
import gc
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import (
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSplitter,
    QToolButton,
    QWidget,
)

from app.services import blotter, preferences
from app.services.blotter import COLUMN_KEYS, COLUMNS, SORTABLE, BlotterFilter, Sort, Totals
from app.services.permissions import Permission
from app.views import resources
from app.views.blotter import capture_api
from app.views.blotter.column_chooser import (
    COLUMNS_KEY,
    STATE_VERSION,
    ColumnChooser,
    apply_state,
    default_state,
    header_state,
    visible_keys,
)
from app.views.blotter.detail_panel import DetailPanel
from app.views.blotter.filter_bar import FilterBar
from app.views.blotter.saved_views import SavedView, SavedViewsButton, list_views
from app.views.common.windowed_table import WindowedTable
from app.views.panes.base import Workspace
from app.views.panes.windowed import WindowedTablePane
from app.views.qt_models.blotter_model import PAGE_SIZE, BlotterModel
from app.views.tasks import TaskContext, TaskHandle

if TYPE_CHECKING:
    from app.services.db import Database
    from app.services.permissions import Actor

#: Column layout changes are saved this long after the last one (a drag of a column edge is many resizes).
SAVE_COLUMNS_DELAY_MS = 800
#: The detail panel follows the selection after this pause, so holding the arrow key does not load every trade.
DETAIL_DELAY_MS = 150
#: Rows copied to the clipboard at most; more is an export.
MAX_COPY_ROWS = 10_000
#: Selected trades whose place is kept across a refresh (the current one and a few more).
MAX_TRACKED = 20
#: Totals (a sum over every row the filter selects: most of a second at a million rows on SQLite) start only once
#: the query has stayed put this long; a cancelled task cannot stop a query already running in the database, so
#: a clerk clicking through filters would otherwise keep both cores busy summing views they have left.
TOTALS_DELAY_MS = 400
#: First read of the planner statistics after the blotter opens, then every STATS_INTERVAL_MS.
STATS_FIRST_DELAY_MS = 3000
#: Background refresh of the planner's per-value counts while the blotter is open.
STATS_INTERVAL_MS = 240_000
#: Numbers first biggest (or newest), words first A-Z, when a header is clicked for the first time.
DESCENDING_FIRST = frozenset({"date", "datetime", "decimal", "int"})


def _read_settings(db: Database, actor: Actor) -> tuple[object, dict[int, str], list[str]]:
    """Worker: the user's saved columns, the user names for the Owner column, the names of their saved views."""
    return (
        preferences.get(db, actor, COLUMNS_KEY),
        blotter.owner_names(db, actor),
        list_views(db, actor),
    )


class BlotterTable(WindowedTable):
    """The table: the shared windowed table, plus Ctrl+C and trade files dropped on it."""

    #: Ctrl+C.
    copy_requested = Signal()
    #: Files dropped on the table (local paths).
    files_dropped = Signal(list)
    #: Files are being dragged over the table (a drop, and so an import, may follow).
    files_coming = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("blotterTable")
        self.horizontalHeader().setMinimumSectionSize(30)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)

    def set_blotter_model(self, model: BlotterModel) -> None:
        self.set_paged_model(model)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_requested.emit()
            return
        super().keyPressEvent(event)

    # --- trade files dropped on the blotter ---------------------------------------------------------------------

    def _files(self, event: QDragEnterEvent | QDragMoveEvent | QDropEvent) -> list[str]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._files(event):
            event.acceptProposedAction()
            self.files_coming.emit()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self._files(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        files = self._files(event)
        if files:
            event.acceptProposedAction()
            self.files_dropped.emit(files)
        else:
            event.ignore()


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


class TradeBlotterPane(WindowedTablePane):
    pane_id = "trade_blotter"
    title = "Trade blotter"
    subtitle = "Every trade, filtered and sorted in the database"
    icon_name = "trade_blotter"
    entity_types = frozenset({"trades", "trade_versions", "trade_exceptions", "import_batches"})
    coming_next = ""
    count_noun = "trade"
    list_name = "blotter"
    totals_service = staticmethod(blotter.totals)
    totals_task_label = "Adding up the blotter"
    #: Rows per page of the model (tests use small pages to exercise paging with a few hundred trades).
    page_size: ClassVar[int] = PAGE_SIZE

    #: The user's column layout was written (tests wait for it).
    columns_saved = Signal()
    #: The saved column layout was read and applied (or there was none).
    columns_restored = Signal()
    #: An export finished: the file written.
    exported = Signal(str)
    #: Rows were copied to the clipboard (how many).
    copied = Signal(int)
    #: The repair dialog opened (the dialog).
    repair_opened = Signal(object)
    #: The import dialog opened (the dialog).
    import_opened = Signal(object)

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(workspace, parent)
        actor = workspace.actor
        self.can_repair = actor.can(Permission.REPAIR_TRADE)
        self.can_import = actor.can(Permission.IMPORT)
        self.sort = Sort()
        self._columns_ready = False
        self._detail_id: int | None = None
        self._pending_select: int | None = None
        self._applying_columns = False
        self.repair_dialog: QDialog | None = None
        self.import_dialog: QDialog | None = None

        self.model = BlotterModel(workspace.db, actor, workspace.tasks, self, page_size=self.page_size)
        self.filter_bar = FilterBar(actor.user_id)
        self.body.addWidget(self.filter_bar)

        self.table = BlotterTable()
        self.table.set_blotter_model(self.model)
        self.table.setAccessibleName("Trades")
        header = self.table.horizontalHeader()
        apply_state(header, default_state())
        self._show_sort_indicator()

        # Toolbar: views, columns, export, import, repair, detail.
        tools = QHBoxLayout()
        tools.setSpacing(6)
        self.views_button = SavedViewsButton(
            workspace.db, actor, workspace.tasks, self.current_view, self.apply_view
        )
        self.columns_button = ColumnChooser(header)
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setIcon(resources.icon("export"))
        self.export_button.setToolTip("Export the trades of this view (filter, sort, columns) to a file")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        export_menu = QMenu(self.export_button)
        export_menu.addAction("CSV…", lambda: self.ask_export("csv"))
        export_menu.addAction("Excel workbook (XLSX)…", lambda: self.ask_export("xlsx"))
        self.export_button.setMenu(export_menu)
        self.import_button = QToolButton()
        self.import_button.setText("Import…")
        self.import_button.setIcon(resources.icon("import"))
        self.import_button.setToolTip(
            "Import trade files (CSV, XLSX, FIX log); you can also drop them on the table"
        )
        self.import_button.clicked.connect(self.ask_import)
        self.import_button.setVisible(self.can_import)
        self.repair_button = QToolButton()
        self.repair_button.setText("Repair…")
        self.repair_button.setIcon(resources.icon("repair"))
        self.repair_button.setToolTip("Fix the selected trade's failing fields and validate it again")
        self.repair_button.clicked.connect(self.ask_repair)
        self.repair_button.setVisible(self.can_repair)  # auditors see no edit action at all
        self.repair_button.setEnabled(False)
        self.detail_button = QToolButton()
        self.detail_button.setText("Details")
        self.detail_button.setIcon(resources.icon("detail"))
        self.detail_button.setCheckable(True)
        self.detail_button.setToolTip("Show the selected trade's details under the rows (Enter)")
        self.detail_button.toggled.connect(self._detail_toggled)
        for button in (self.export_button, self.import_button, self.repair_button, self.detail_button):
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for w in (self.views_button, self.columns_button, self.export_button):
            tools.addWidget(w)
        tools.addStretch(1)
        for w in (self.import_button, self.repair_button, self.detail_button):
            tools.addWidget(w)
        self.body.addLayout(tools)

        # The detail panel (about a hundred widgets, a third of the pane's construction) is built the first time it
        # is asked for: most of a clerk's blotter openings never show it.
        self._detail: DetailPanel | None = None
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(True)
        self.splitter.addWidget(self.table)
        self.body.addWidget(self.splitter, 1)

        footer = QHBoxLayout()
        footer.setSpacing(12)
        self.count_label = QLabel("–")
        self.count_label.setObjectName("blotterCount")
        self.totals_label = QLabel("")
        self.totals_label.setObjectName("muted")
        self.totals_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # Totals in many currencies run long: wrapped, they take a second line rather than widening the window
        # past the screen (the queue's, unwrapped, made it 2,300 px wide).
        self.totals_label.setWordWrap(True)
        self.selection_label = QLabel("")
        self.selection_label.setObjectName("muted")
        footer.addWidget(self.count_label)
        footer.addWidget(self.totals_label, 1)
        footer.addWidget(self.selection_label)
        self.body.addLayout(footer)

        # Keyboard: Ctrl+F to the filter, Enter to the detail, F5 to refresh (the window's action, or the table's).
        find = QShortcut(QKeySequence(QKeySequence.StandardKey.Find), self)
        find.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        find.activated.connect(self.filter_bar.focus_search)
        self.setFocusProxy(self.table)

        # Wiring.
        self.filter_bar.changed.connect(self._filter_changed)
        header.sectionClicked.connect(self._header_clicked)
        header.sectionMoved.connect(lambda *_: self._columns_edited())
        header.sectionResized.connect(lambda *_: self._columns_edited())
        self.columns_button.columns_changed.connect(self._columns_edited)
        self.model.query_loaded.connect(self._query_loaded)
        self.model.window_applied.connect(self._window_applied)
        self.model.count_known.connect(self._count_known)
        self.model.load_failed.connect(self._load_failed)
        self.table.verticalScrollBar().valueChanged.connect(lambda _v: self._viewport_moved())
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._current_changed())
        self.table.open_requested.connect(self.open_detail)
        self.table.copy_requested.connect(self.copy_selection)
        self.table.refresh_requested.connect(self.refresh)
        self.table.files_dropped.connect(self.import_files)
        # Files dragged over the table: the import's code is loaded while the clerk aims, not after the drop.
        self.table.files_coming.connect(self._files_coming)
        self.views_button.failed.connect(self.message)
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_COLUMNS_DELAY_MS)
        self._save_timer.timeout.connect(self.save_columns)
        self._detail_timer = QTimer(self)
        self._detail_timer.setSingleShot(True)
        self._detail_timer.setInterval(DETAIL_DELAY_MS)
        self._detail_timer.timeout.connect(self._load_detail)
        self._totals_timer = QTimer(self)
        self._totals_timer.setSingleShot(True)
        self._totals_timer.setInterval(TOTALS_DELAY_MS)
        self._totals_timer.timeout.connect(self._start_totals)
        self._stats_timer = QTimer(self)
        self._stats_timer.setInterval(STATS_INTERVAL_MS)
        self._stats_timer.timeout.connect(self._warm_statistics)
        self.message.connect(self._show_message)

    # --- loading ------------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """First load, or a live refresh that keeps the user's place (F5, the change feed, a reconnection)."""
        if not self._started:
            self._start()
            return
        if self.model.loading:
            self._again = True
            return
        if not self.model.loaded:
            self._load_query()
            return
        self._live_refresh()

    def _start(self) -> None:
        self._started = True
        # Python's full garbage collections walk every container object, and the app holds ~160,000 that live as
        # long as it does (Qt wrappers, SQLAlchemy, pandas); a full collection, triggered by whichever thread
        # allocates, holds the GIL 50-75 ms and stalls the GUI thread mid-scroll. Freezing them moves them out
        # of the collector's way (it still collects everything created from now on). Process-wide, so harmless if
        # run_gui has done it already.
        gc.freeze()
        self._load_query()
        # The user's settings in one task beside the first page (never before it: each read would cost a remote
        # user a round trip before the first row; and every task started costs the GUI thread a GIL hand-over).
        self.ws.tasks.call(
            _read_settings,
            self.ws.db,
            self.ws.actor,
            on_done=self._settings_read,
            on_error=lambda _f: self._columns_loaded(),
            label="Reading your blotter settings",
            quiet=True,
            owner=self,
        )
        # The validation reason codes come from a light module (no pandas), here and now; once the first rows are
        # up, PostgreSQL's planner statistics, which steer filtered pages.
        self._reasons_read(capture_api.reasons())
        QTimer.singleShot(STATS_FIRST_DELAY_MS, self, self._warm_statistics)
        self._stats_timer.start()

    def _reasons_read(self, reasons: object) -> None:
        assert isinstance(reasons, dict)
        self.model.reasons = reasons
        self.filter_bar.set_reasons(reasons)

    def _settings_read(self, settings: object) -> None:
        assert isinstance(settings, tuple)
        columns, names, views = settings
        self.model.set_usernames(names)
        self.views_button.set_names(views)
        self._apply_saved_columns(columns)

    def _warm_statistics(self) -> None:
        # The per-value counts steer the plan of filtered pages; reading them now keeps them off the first filter.
        self._background(
            blotter.refresh_statistics,
            self.ws.db,
            self.ws.actor,
            on_error=lambda _f: None,
            label="Reading blotter statistics",
            quiet=True,
            priority=-5,
            owner=self,
        )

    def _load_query(self) -> None:
        self._remember_selection()
        self.model.set_query(self.filter_bar.current(), self.sort)
        self._load_totals()

    def _totals_done(self, gen: int, totals: object) -> None:
        if gen != self._totals_gen:
            return
        self._totals_task = None
        assert isinstance(totals, Totals)
        if totals.gross_by_currency:
            parts = [f"{ccy} {_money(v)}" for ccy, v in sorted(totals.gross_by_currency.items())]
            self.totals_label.setText("Gross: " + " · ".join(parts))
        else:
            self.totals_label.setText("")
        self.totals_label.setToolTip(f"{totals.count:,} trades; gross amount by currency")
        self.totals_shown.emit(totals)

    def _query_loaded(self) -> None:
        self._loaded_bookkeeping()
        self.table.scrollToTop()
        self._viewport_moved()
        self._reselect_after_query()

    def _count_known(self, count: int) -> None:
        self._update_count_label()

    # --- live refresh keeping the user's place ------------------------------------------------------------------

    def _remember_selection(self) -> None:
        self._pending_select = self.current_trade_id()

    def _reselect_after_query(self) -> None:
        """After a filter or sort change, select the trade that was selected, if the new view still has it."""
        trade_id = self._pending_select
        self._pending_select = None
        if trade_id is None:
            self._selection_changed()
            return
        row = self.model.row_of_trade(trade_id)
        if row is not None:
            self._restore_place(0, {trade_id: row}, {"selected": [trade_id], "current": trade_id})
            return
        gen = self.model.generation
        self.ws.tasks.call(
            blotter.position_of,
            self.ws.db,
            self.ws.actor,
            self.model.filter,
            self.model.sort_order,
            trade_id,
            on_done=lambda pos: self._reselect_at(gen, trade_id, pos),
            on_error=lambda _f: None,
            label="Finding the selected trade",
            quiet=True,
            owner=self,
        )

    def _reselect_at(self, gen: int, trade_id: int, pos: object) -> None:
        if (
            gen != self.model.generation
            or not isinstance(pos, int)
            or self.table.selectionModel().hasSelection()
        ):
            return
        top = self.table.verticalScrollBar().value()
        self._restore_place(top, {trade_id: pos}, {"selected": [trade_id], "current": trade_id})

    # --- filter, sort, columns ----------------------------------------------------------------------------------

    def _filter_changed(self, _flt: BlotterFilter) -> None:
        self.views_button.forget_active()
        if self._started:
            self._load_query()

    def set_filter(self, flt: BlotterFilter) -> None:
        """Show this filter (tests, saved views): the filter bar shows it and the query runs."""
        self.filter_bar.set_filter(flt)

    def drill_down(self, criteria: dict[str, Any]) -> None:
        """Show exactly the trades another pane names (``ids``, with a ``title`` chip), or its filter fields."""
        flt = BlotterFilter.from_dict(
            {k: v for k, v in criteria.items() if k in BlotterFilter.__dataclass_fields__}
        )
        if "ids" in criteria:
            flt = replace(flt, ids=tuple(int(i) for i in criteria["ids"]), ids_title=criteria.get("title"))
        self.set_filter(flt)

    def _header_clicked(self, logical: int) -> None:
        key = COLUMN_KEYS[logical]
        if key not in SORTABLE:
            self._show_sort_indicator()  # the header flipped its arrow; put back the real sort
            self.message.emit(
                f"The blotter cannot sort by {COLUMNS[logical].label}: that column has no index."
            )
            return
        if key == self.sort.key:
            sort = Sort(key, not self.sort.descending)
        else:
            sort = Sort(key, COLUMNS[logical].kind in DESCENDING_FIRST)
        self.set_sort(sort)

    def set_sort(self, sort: Sort) -> None:
        if sort.key not in SORTABLE:
            raise ValueError(f"the blotter cannot sort by {sort.key}")
        self.sort = sort
        self._show_sort_indicator()
        self.views_button.forget_active()
        if self._started:
            self._load_query()

    def _show_sort_indicator(self) -> None:
        order = Qt.SortOrder.DescendingOrder if self.sort.descending else Qt.SortOrder.AscendingOrder
        header = self.table.horizontalHeader()
        header.blockSignals(True)
        header.setSortIndicator(COLUMN_KEYS.index(self.sort.key), order)
        header.blockSignals(False)

    def _apply_saved_columns(self, saved: object) -> None:
        if isinstance(saved, dict) and saved.get("version") == STATE_VERSION:
            self._applying_columns = True
            apply_state(self.table.horizontalHeader(), saved.get("columns"))
            self._applying_columns = False
        self._columns_loaded()

    def _columns_loaded(self) -> None:
        self._columns_ready = True
        self.columns_restored.emit()

    def _columns_edited(self) -> None:
        if self._columns_ready and not self._applying_columns:
            self._save_timer.start()

    def columns_state(self) -> list[dict[str, Any]]:
        return header_state(self.table.horizontalHeader())

    def visible_columns(self) -> list[str]:
        return visible_keys(self.table.horizontalHeader())

    def save_columns(self) -> None:
        self._save_timer.stop()
        self._background(
            preferences.put,
            self.ws.db,
            self.ws.actor,
            COLUMNS_KEY,
            {"version": STATE_VERSION, "columns": self.columns_state()},
            on_done=lambda _r: self.columns_saved.emit(),
            on_error=lambda f: self.message.emit(f"Your column layout was not saved: {f.message}"),
            label="Saving your blotter columns",
            quiet=True,
            owner=self,
        )

    def current_view(self) -> SavedView:
        return SavedView("", self.filter_bar.current(), self.sort, self.columns_state())

    def apply_view(self, view: SavedView) -> None:
        """Show a saved view: its columns, sort and filter, with one query."""
        if view.columns:
            self._applying_columns = True
            apply_state(self.table.horizontalHeader(), view.columns)
            self._applying_columns = False
            if self._columns_ready:
                self._save_timer.start()
        self.sort = view.sort
        self._show_sort_indicator()
        self.filter_bar.set_filter(view.filter, emit=False)
        if self._started:
            self._load_query()

    # --- selection and detail -----------------------------------------------------------------------------------

    @property
    def detail(self) -> DetailPanel:
        """The detail panel under the rows, built (hidden) on first use."""
        if self._detail is None:
            self._detail = DetailPanel(self.ws, self.can_repair, fmt=self.model.fmt)
            self._detail.repair_requested.connect(self.ask_repair)
            self._detail.hide()
            self.splitter.addWidget(self._detail)
            self.splitter.setStretchFactor(0, 3)
            self.splitter.setStretchFactor(1, 2)
        return self._detail

    def _detail_visible(self) -> bool:
        return self._detail is not None and self._detail.isVisible()

    def current_trade_id(self) -> int | None:
        return self.current_item_id()

    def _tracked_selection(self) -> list[int]:
        return self.selected_trade_ids()

    def selected_trade_ids(self) -> list[int]:
        ids = []
        for row in self.selected_rows()[: MAX_TRACKED * 5]:
            trade_id = self.model.trade_id(row)
            if trade_id is not None:
                ids.append(trade_id)
        return ids

    def select_row(self, row: int) -> None:
        """Select one row and make it current (tests and keyboard helpers)."""
        index = self.model.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
        )

    def _selection_changed(self, *_args: object) -> None:
        if self._restoring:
            return
        n = len(self.table.selectionModel().selectedRows())
        self.selection_label.setText(f"{n:,} selected" if n > 1 else "")
        self._update_actions()
        if self._detail_visible():
            self._detail_timer.start()

    def _current_changed(self) -> None:
        if not self._restoring:
            self._update_actions()
            if self._detail_visible():
                self._detail_timer.start()

    def _update_actions(self) -> None:
        self.repair_button.setEnabled(self.can_repair and self.current_trade_id() is not None)

    def _detail_toggled(self, on: bool) -> None:
        self.detail.setVisible(on)
        if on:
            total = max(self.splitter.height(), 400)
            self.splitter.setSizes([int(total * 0.45), int(total * 0.55)])
            self._load_detail()

    def _load_detail(self) -> None:
        trade_id = self.current_trade_id()
        if trade_id is None:
            self.detail.show_nothing()
            return
        row = self.model.row_of_trade(trade_id)
        values = self.model.row_values(row) if row is not None else None
        self.detail.load(trade_id, values, on_shown=lambda: self.detail_shown.emit(trade_id))

    # --- repair -------------------------------------------------------------------------------------------------

    def ask_repair(self) -> None:
        if not self.can_repair:
            return
        trade_id = self.current_trade_id()
        if trade_id is None:
            self.message.emit("Select a trade to repair first.")
            return
        from app.views.blotter.repair_dialog import open_repair

        open_repair(
            self,
            self.ws,
            trade_id,
            on_repaired=self._repaired,
            on_opened=self._repair_opened,
            on_error=lambda text: self.warn("Repair", text),
        )

    def _repair_opened(self, dialog: QDialog) -> None:
        self.repair_dialog = dialog
        self.repair_opened.emit(dialog)

    def _repaired(self, trade_id: int) -> None:
        self.message.emit("Trade repaired and validated again.")
        self.refresh()
        if self._detail_visible():
            self.detail.reload()

    # --- export, copy, import -----------------------------------------------------------------------------------

    def ask_export(self, fmt: str) -> None:
        suffix = "CSV files (*.csv)" if fmt == "csv" else "Excel workbooks (*.xlsx)"
        default = str(Path.home() / f"blotter-{dt.date.today():%Y%m%d}.{fmt}")
        capture_api.prepare(self.ws.tasks, "export_blotter")  # while the clerk picks the file
        path, _ = QFileDialog.getSaveFileName(self, "Export the blotter", default, suffix)
        if path:
            if not path.lower().endswith("." + fmt):
                path += "." + fmt
            self.export_to(path)

    def export_to(self, path: str) -> TaskHandle | None:
        """Write the view (filter, sort, visible columns in their order) to ``path`` (.csv or .xlsx) with the
        service ``opsdesk export blotter`` uses; the status bar shows its progress and can cancel it."""
        db, actor = self.ws.db, self.ws.actor
        flt, sort, columns = self.model.filter, self.model.sort_order, tuple(self.visible_columns())

        def work(ctx: TaskContext) -> object:
            return capture_api.call(
                "export_blotter",
                db,
                actor,
                path,
                flt,
                sort,
                columns=columns,
                progress=ctx.progress,
                cancel=lambda: ctx.cancelled,
            )

        return self.ws.tasks.run(
            work,
            on_done=lambda _r: self._exported(path),
            on_error=lambda f: self.warn("Export", f"The export failed: {f.message}"),
            on_cancelled=lambda: self.message.emit("Export cancelled; no file was written."),
            label=f"Exporting the blotter to {Path(path).name}",
            owner=self,
        )

    def _exported(self, path: str) -> None:
        self.message.emit(f"Exported the blotter to {path}.")
        self.exported.emit(path)

    def copy_selection(self) -> None:
        """Ctrl+C: the selected rows, visible columns in their order, as tab-separated text with a header line."""
        rows = self.selected_rows()
        if not rows:
            return
        if len(rows) > MAX_COPY_ROWS:
            self.message.emit(
                f"{len(rows):,} rows are too many for the clipboard (at most {MAX_COPY_ROWS:,}); use Export."
            )
            return
        gen = self.model.generation
        self.model.when_loaded(rows, lambda: self._copy_rows(gen, rows))

    def selection_text(self, rows: list[int]) -> str:
        keys = self.visible_columns()
        labels = {c.key: c.label for c in COLUMNS}
        lines = ["\t".join(labels[k] for k in keys)]
        idx = [COLUMN_KEYS.index(k) for k in keys]
        for row in rows:
            values = self.model.row_values(row)
            if values is None:
                continue
            cells = (self.model.fmt.text(COLUMN_KEYS[i], values[i]) for i in idx)
            lines.append("\t".join(c.replace("\t", " ").replace("\n", " ") for c in cells))
        return "\n".join(lines) + "\n"

    def _copy_rows(self, gen: int, rows: list[int]) -> None:
        if gen != self.model.generation:
            return  # the view changed while the rows were read: what was selected is gone
        QGuiApplication.clipboard().setText(self.selection_text(rows))
        self.message.emit(f"Copied {len(rows):,} row{'s' if len(rows) != 1 else ''}.")
        self.copied.emit(len(rows))

    def ask_import(self) -> None:
        if not self.can_import:
            return
        capture_api.prepare(self.ws.tasks, "import_trades")  # while the clerk picks the files
        paths, _ = QFileDialog.getOpenFileNames(
            self,
            "Import trades",
            str(Path.home()),
            "Trade files (*.csv *.txt *.xlsx *.fix *.log);;All files (*)",
        )
        if paths:
            self.import_files(paths)

    def _files_coming(self) -> None:
        if self.can_import:
            capture_api.prepare(self.ws.tasks, "import_trades")

    def import_files(self, paths: list[str]) -> None:
        if not self.can_import:
            self.message.emit(f"{self.ws.actor.username} may not import trades.")
            return
        from app.views.blotter.import_dialog import ImportDialog

        dialog = ImportDialog(self.ws, [str(p) for p in paths], self)
        dialog.finished_all.connect(lambda _reports: self.refresh())
        self.import_dialog = dialog
        dialog.start()
        self.import_opened.emit(dialog)


__all__ = ["PAGE_SIZE", "BlotterTable", "TradeBlotterPane"]
