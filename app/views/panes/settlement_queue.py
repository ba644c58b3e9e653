"""Settlement queue: the instructions on their way to settling, and the ones a clerk must work.

The table shows a :class:`~app.views.qt_models.settlement_model.SettlementModel` (a row count and a cache of pages
read in the background, like the trade blotter). Around it:

- a strip of countdowns to each market's instruction cut-off, ticking every second from moments read once;
- a filter bar (Ctrl+F) with the views *My queue*, *Failing*, *All open*, *Everything*, every field of the queue's
  filter, and a group-by choice: the groups (status, reason, counterparty, market, settlement date) with their counts
  on the left, a click shows one group;
- actions on the selection: claim (Ctrl+Shift+C) and release (Ctrl+Shift+L) at once; assign (Ctrl+Shift+A,
  supervisors), escalate (Ctrl+Shift+E), re-instruct (Ctrl+Shift+R) and cancel (Ctrl+Shift+X) after a confirmation
  that says how many will change and which will be refused and why;
- the detail of the current instruction under the rows (Enter): instruction, messages, trades, movements,
  penalties, history;
- totals by currency (settlement amount, value at stake, penalties) for the filter;
- drill-down from other panes (``drill_down``: ids, title, status, reason) shown as a removable chip;
- live refresh from the change feed, keeping the top row and the selection where they were.
"""

from __future__ import annotations

import gc
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QToolButton,
    QWidget,
)

from app.services.permissions import Permission
from app.services.settlement import actions, queue
from app.services.settlement.actions import ACTION_LABELS, BulkResult
from app.services.settlement.queue import COLUMNS, SORTABLE, QueueFilter, Sort, Totals
from app.views import resources
from app.views.panes.base import Workspace
from app.views.panes.windowed import WindowedTablePane
from app.views.qt_models.paged_model import PAGE_SIZE
from app.views.qt_models.settlement_model import SettlementModel
from app.views.settlement.bulk_dialog import BulkActionDialog
from app.views.settlement.cutoff_strip import CutoffStrip
from app.views.settlement.detail_panel import InstructionDetailPanel
from app.views.settlement.filter_bar import QueueFilterBar
from app.views.settlement.table import QueueTable

DETAIL_DELAY_MS = 150
TOTALS_DELAY_MS = 400
CUTOFFS_DELAY_MS = 1200
CUTOFFS_INTERVAL_MS = 300_000
MAX_TRACKED = 20
MAX_ACTION_ROWS = actions.MAX_BULK
DESCENDING_FIRST = frozenset({"decimal", "int", "datetime"})
SHORTCUTS = {
    "claim": "Ctrl+Shift+C",
    "release": "Ctrl+Shift+L",
    "assign": "Ctrl+Shift+A",
    "escalate": "Ctrl+Shift+E",
    "reinstruct": "Ctrl+Shift+R",
    "cancel": "Ctrl+Shift+X",
}
ICONS = {
    "claim": "user",
    "release": "user",
    "assign": "user",
    "escalate": "exception",
    "reinstruct": "refresh",
}
DIALOG_ACTIONS = frozenset({"assign", "escalate", "reinstruct", "cancel"})


def _money(v: Decimal) -> str:
    return f"{v:,.2f}"


class SettlementQueuePane(WindowedTablePane):
    pane_id = "settlement_queue"
    title = "Settlement queue"
    subtitle = "Instructions to settle, and the fails to work"
    icon_name = "settlement_queue"
    entity_types = frozenset({"settlement_instructions", "settlement_messages", "fail_penalties"})
    coming_next = ""
    count_noun = "instruction"
    list_name = "settlement queue"
    totals_service = staticmethod(queue.totals)
    totals_task_label = "Adding up the queue"
    page_size: ClassVar[int] = PAGE_SIZE

    #: The groups of the grouped view are on screen (the list of Group).
    groups_shown = Signal(list)
    #: An action finished (a BulkResult).
    action_done = Signal(object)
    #: A bulk action's confirmation opened (the dialog).
    dialog_opened = Signal(object)
    #: The market cut-offs were read and shown.
    cutoffs_shown = Signal(list)

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(workspace, parent)
        actor = workspace.actor
        self.can_work = actor.can(Permission.WORK_ITEMS)
        self.can_assign = actor.can(Permission.ASSIGN_WORK)
        self.sort = Sort()
        self._groups_gen = 0
        self._group: tuple[str, Any] | None = None  # (by, value) of the group shown
        self._people: list[tuple[int, str, str]] = []
        self.dialog: BulkActionDialog | None = None
        self._calendars_ready = False

        self.model = SettlementModel(workspace.db, actor, workspace.tasks, self, page_size=self.page_size)
        self.cutoff_strip = CutoffStrip()
        self.body.addWidget(self.cutoff_strip)
        self.filter_bar = QueueFilterBar()
        self.body.addWidget(self.filter_bar)

        # Actions.
        tools = QHBoxLayout()
        tools.setSpacing(6)
        self.buttons: dict[str, QToolButton] = {}
        for action in actions.ACTIONS:
            button = QToolButton()
            button.setText(ACTION_LABELS[action] + ("…" if action in DIALOG_ACTIONS else ""))
            button.setIcon(resources.icon(ICONS.get(action, "cancel")))
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setToolTip(f"{ACTION_LABELS[action]} the selected instructions ({SHORTCUTS[action]})")
            button.clicked.connect(lambda _c=False, a=action: self.act(a))
            visible = self.can_assign if action == "assign" else self.can_work
            button.setVisible(visible)  # auditors see no edit action at all
            button.setEnabled(False)
            self.buttons[action] = button
            tools.addWidget(button)
            shortcut = QShortcut(QKeySequence(SHORTCUTS[action]), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(lambda a=action: self.act(a))
        tools.addStretch(1)
        self.detail_button = QToolButton()
        self.detail_button.setText("Details")
        self.detail_button.setIcon(resources.icon("detail"))
        self.detail_button.setCheckable(True)
        self.detail_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.detail_button.setToolTip("Show the selected instruction's details under the rows (Enter)")
        self.detail_button.toggled.connect(self._detail_toggled)
        tools.addWidget(self.detail_button)
        self.body.addLayout(tools)

        # Groups | (table / detail).
        self.table = QueueTable()
        self.table.set_paged_model(self.model)
        self.table.setAccessibleName("Settlement instructions")
        self._show_sort_indicator()
        self.groups_list = QListWidget()
        self.groups_list.setObjectName("queueGroups")
        self.groups_list.setAccessibleName("Groups")
        self.groups_list.setMinimumWidth(170)
        self.groups_list.hide()
        self.detail = InstructionDetailPanel(workspace)
        self.detail.hide()
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.outer_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.outer_splitter.addWidget(self.groups_list)
        self.outer_splitter.addWidget(self.splitter)
        self.outer_splitter.setStretchFactor(1, 1)
        self.body.addWidget(self.outer_splitter, 1)

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

        find = QShortcut(QKeySequence(QKeySequence.StandardKey.Find), self)
        find.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        find.activated.connect(self.filter_bar.focus_search)
        self.setFocusProxy(self.table)

        self.filter_bar.changed.connect(self._filter_changed)
        self.filter_bar.group_by_changed.connect(self._group_by_changed)
        self.groups_list.currentItemChanged.connect(lambda *_: self._group_picked())
        self.table.horizontalHeader().sectionClicked.connect(self._header_clicked)
        self.model.query_loaded.connect(self._query_loaded)
        self.model.window_applied.connect(self._window_applied)
        self.model.count_known.connect(lambda _n: self._update_count_label())
        self.model.load_failed.connect(self._load_failed)
        self.table.verticalScrollBar().valueChanged.connect(lambda _v: self._viewport_moved())
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._selection_changed())
        self.table.open_requested.connect(self.open_detail)
        self.table.refresh_requested.connect(self.refresh)
        self.detail.shown.connect(self.detail_shown)
        self.cutoff_strip.expired.connect(self._load_cutoffs)
        self.cutoff_strip.market_clicked.connect(self._market_clicked)
        self.message.connect(self._show_message)
        self._detail_timer = QTimer(self)
        self._detail_timer.setSingleShot(True)
        self._detail_timer.setInterval(DETAIL_DELAY_MS)
        self._detail_timer.timeout.connect(self._load_detail)
        self._totals_timer = QTimer(self)
        self._totals_timer.setSingleShot(True)
        self._totals_timer.setInterval(TOTALS_DELAY_MS)
        self._totals_timer.timeout.connect(self._start_totals)
        self._cutoff_timer = QTimer(self)
        self._cutoff_timer.setInterval(CUTOFFS_INTERVAL_MS)
        self._cutoff_timer.timeout.connect(self._load_cutoffs)
        # Operations: message files dropped on the table are imported; a context menu on the rows (give-ups ...).
        from app.views.operations.pane_hooks import attach_to_queue

        attach_to_queue(self)

    # --- loading ------------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """First load, or a live refresh that keeps the clerk's place (F5, the change feed, after an action)."""
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
        self._load_groups()

    def _start(self) -> None:
        self._started = True
        # As the blotter does (see TradeBlotterPane._start): move what exists now out of the garbage collector's
        # way. A full collection walks every object not frozen and holds the GIL throughout; measured as the queue
        # opens, one took 85-180 ms on whichever thread triggered it (the GUI thread's own, or blocked waiting).
        gc.freeze()
        self._load_query()
        self._background(
            _read_people,
            self.ws.db,
            self.ws.actor,
            on_done=self._people_read,
            on_error=lambda _f: None,
            label="Reading the users",
            quiet=True,
            owner=self,
        )
        QTimer.singleShot(CUTOFFS_DELAY_MS, self, self._load_cutoffs)
        self._cutoff_timer.start()

    def _people_read(self, result: object) -> None:
        assert isinstance(result, tuple)
        names, people = result
        self.model.set_usernames(names)
        self._people = list(people)

    def _load_cutoffs(self) -> None:
        self._background(
            queue.cutoffs,
            self.ws.db,
            self.ws.actor,
            on_done=self._cutoffs_read,
            on_error=lambda _f: None,
            label="Reading the market cut-offs",
            quiet=True,
            priority=-5,
            owner=self,
        )

    def _cutoffs_read(self, cutoffs: object) -> None:
        assert isinstance(cutoffs, list)
        self.cutoff_strip.set_cutoffs(cutoffs)
        if not self._calendars_ready:
            # The first read built the markets' calendars: the ages on screen were weekday counts until now.
            self._calendars_ready = True
            # The calendars (every holiday of every market, tens of thousands of objects) live as long as the
            # process: freeze them too, or every later full collection walks them while holding the GIL.
            gc.freeze()
            if self.model.loaded and not self.model.loading:
                self._live_refresh()
        self.cutoffs_shown.emit(cutoffs)

    def query_filter(self) -> QueueFilter:
        flt = self.filter_bar.current()
        if self._group is not None:
            flt = queue.group_filter(flt, *self._group)
        return flt

    def _load_query(self) -> None:
        self.model.set_query(self.query_filter(), self.sort)
        self._load_totals()

    def _totals_done(self, gen: int, totals: object) -> None:
        if gen != self._totals_gen:
            return
        self._totals_task = None
        assert isinstance(totals, Totals)
        parts = []
        for ccy, t in sorted(totals.by_currency.items()):
            text = f"{ccy} {_money(t.amount)}"
            if t.at_stake:
                text += f" (at stake {_money(t.at_stake)})"
            parts.append(text)
        penalties = " · ".join(f"{c} {_money(v)}" for c, v in sorted(totals.penalties.items()) if v)
        self.totals_label.setText(" · ".join(parts) + (f"   Penalties: {penalties}" if penalties else ""))
        self.totals_label.setToolTip(
            f"{totals.count:,} instructions: settlement amount by currency, and the value still to settle"
        )
        self.totals_shown.emit(totals)

    def _query_loaded(self) -> None:
        self._loaded_bookkeeping()
        self.table.scrollToTop()
        self._viewport_moved()
        self._selection_changed()

    # --- live refresh keeping the clerk's place -----------------------------------------------------------------

    # --- filter, groups, sort, drill-down -----------------------------------------------------------------------

    def _filter_changed(self, _flt: QueueFilter) -> None:
        self._group = None
        if self._started:
            self._load_query()
            self._load_groups()

    def set_filter(self, flt: QueueFilter) -> None:
        """Show exactly this filter (tests): it bypasses the bar's fields."""
        self._group = None
        self.model.set_query(flt, self.sort)
        self._load_totals()

    def drill_down(self, criteria: dict[str, Any]) -> None:
        """Show the instructions another pane names: ``ids``, ``title``, ``status``, ``reason`` (a removable chip)."""
        self._group = None
        self.filter_bar.set_drill_down(criteria)  # emits changed: the query runs once the pane has started
        if not self._started and self.on_screen:
            self.refresh()

    def _group_by_changed(self, by: str) -> None:
        self._group = None
        self.groups_list.setVisible(bool(by))
        if self._started:
            self._load_query()
        self._load_groups()

    def _load_groups(self) -> None:
        by = self.filter_bar.current_group_by()
        if not by or not self._started:
            return
        self._groups_gen += 1
        gen = self._groups_gen
        self._background(
            queue.groups,
            self.ws.db,
            self.ws.actor,
            self.filter_bar.current(),
            by,
            on_done=lambda g: self._groups_done(gen, by, g),
            on_error=lambda f: self.message.emit(f"Groups unavailable: {f.message}"),
            label="Counting the groups",
            quiet=True,
            owner=self,
        )

    def _groups_done(self, gen: int, by: str, groups: object) -> None:
        if gen != self._groups_gen:
            return
        assert isinstance(groups, list)
        self._restoring = True
        try:
            self.groups_list.clear()
            total = sum(g.count for g in groups)
            everything = QListWidgetItem(f"All  ({total:,})")
            everything.setData(Qt.ItemDataRole.UserRole, None)
            self.groups_list.addItem(everything)
            current = everything
            for g in groups:
                label = g.label if by != "status" else g.label.replace("_", " ").capitalize()
                text = f"{label}  ({g.count:,}" + (f", {g.failing:,} failing)" if g.failing else ")")
                item = QListWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, (by, g.value))
                if g.failing:
                    item.setForeground(Qt.GlobalColor.darkRed)
                self.groups_list.addItem(item)
                if self._group == (by, g.value):
                    current = item
            self.groups_list.setCurrentItem(current)
        finally:
            self._restoring = False
        self.groups_shown.emit(list(groups))

    def _group_picked(self) -> None:
        if self._restoring:
            return
        item = self.groups_list.currentItem()
        self._group = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        self._load_query()

    def show_group(self, value: Any) -> None:
        """Select a group of the grouped view by its value (tests, keyboard helpers)."""
        for i in range(self.groups_list.count()):
            data = self.groups_list.item(i).data(Qt.ItemDataRole.UserRole)
            if data is not None and data[1] == value:
                self.groups_list.setCurrentRow(i)
                return

    def _market_clicked(self, mic: str) -> None:
        self.filter_bar.market.setText(mic)

    def _header_clicked(self, logical: int) -> None:
        key = COLUMNS[logical].key
        if key not in SORTABLE:
            self._show_sort_indicator()
            self.message.emit(f"The queue cannot sort by {COLUMNS[logical].label}: that column has no index.")
            return
        sort = (
            Sort(key, not self.sort.descending)
            if key == self.sort.key
            else Sort(key, COLUMNS[logical].kind in DESCENDING_FIRST)
        )
        self.set_sort(sort)

    def set_sort(self, sort: Sort) -> None:
        if sort.key not in SORTABLE:
            raise ValueError(f"the queue cannot sort by {sort.key}")
        self.sort = sort
        self._show_sort_indicator()
        if self._started:
            self.model.set_query(sort=sort)

    def _show_sort_indicator(self) -> None:
        order = Qt.SortOrder.DescendingOrder if self.sort.descending else Qt.SortOrder.AscendingOrder
        header = self.table.horizontalHeader()
        header.blockSignals(True)
        header.setSortIndicator(queue.COLUMN_KEYS.index(self.sort.key), order)
        header.blockSignals(False)

    # --- selection and detail -----------------------------------------------------------------------------------

    def current_instruction_id(self) -> int | None:
        return self.current_item_id()

    def _tracked_selection(self) -> list[int]:
        return self.selected_ids()

    def selected_ids(self) -> list[int]:
        out = []
        for row in self.selected_rows()[:MAX_ACTION_ROWS]:
            item = self.model.item_id(row)
            if item is not None:
                out.append(item)
        return out

    def select_row(self, row: int, *, extend: bool = False) -> None:
        flags = QItemSelectionModel.SelectionFlag.Rows | (
            QItemSelectionModel.SelectionFlag.Select
            if extend
            else QItemSelectionModel.SelectionFlag.ClearAndSelect
        )
        self.table.selectionModel().setCurrentIndex(self.model.index(row, 0), flags)

    def _selection_changed(self, *_args: object) -> None:
        if self._restoring:
            return
        n = len(self.selected_rows())
        self.selection_label.setText(f"{n:,} selected" if n > 1 else "")
        for button in self.buttons.values():
            button.setEnabled(n > 0)
        if self.detail.isVisible():
            self._detail_timer.start()

    def _detail_toggled(self, on: bool) -> None:
        self.detail.setVisible(on)
        if on:
            total = max(self.splitter.height(), 400)
            self.splitter.setSizes([int(total * 0.5), int(total * 0.5)])
            self._load_detail()

    def _load_detail(self) -> None:
        item = self.current_instruction_id()
        if item is None:
            self.detail.show_nothing()
        else:
            self.detail.load(item)

    # --- actions ------------------------------------------------------------------------------------------------

    def act(self, action: str) -> None:
        """Run ``action`` on the selection: claim and release at once, the others after a confirmation."""
        allowed = self.can_assign if action == "assign" else self.can_work
        if not allowed:
            self.message.emit(
                f"{self.ws.actor.username} may not {ACTION_LABELS[action].lower()} instructions."
            )
            return
        ids = self.selected_ids()
        if not ids:
            self.message.emit("Select one or more instructions first.")
            return
        if len(self.selected_rows()) > MAX_ACTION_ROWS:
            self.message.emit(f"At most {MAX_ACTION_ROWS:,} instructions at once; narrow the filter.")
            return
        if action not in DIALOG_ACTIONS:
            self._run(action, ids)
            return
        dialog = BulkActionDialog(self.ws, action, ids, self._people, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(
            lambda: self._run(action, ids, assignee_id=dialog.assignee_id, reason=dialog.reason_text)
        )
        self.dialog = dialog
        dialog.open()
        self.dialog_opened.emit(dialog)

    def _run(self, action: str, ids: list[int], *, assignee_id: int | None = None, reason: str = "") -> None:
        self.ws.tasks.call(
            partial(actions.bulk, assignee_id=assignee_id, reason=reason),
            self.ws.db,
            self.ws.actor,
            action,
            ids,
            on_done=self._acted,
            on_error=lambda f: self.warn(ACTION_LABELS[action], f.message),
            label=f"{ACTION_LABELS[action]}: {len(ids):,} instruction(s)",
            owner=self,
        )

    def _acted(self, result: object) -> None:
        assert isinstance(result, BulkResult)
        text = result.summary[0].upper() + result.summary[1:]
        if len(result.refused) == 1 and not result.done:
            text = f"{ACTION_LABELS[result.action]} refused: {next(iter(result.refused.values()))}"
        elif result.refused:
            reasons = sorted({why for why in result.refused.values()})
            text += " (" + "; ".join(reasons[:3]) + ("…" if len(reasons) > 3 else "") + ")"
        self.message.emit(text + ".")
        self.action_done.emit(result)
        self.refresh()
        if self.detail.isVisible():
            self.detail.reload()


def _read_people(db: Any, actor: Any) -> tuple[dict[int, str], list[tuple[int, str, str]]]:
    """Worker: usernames for the Owner column, and whom work can be assigned or escalated to."""
    return queue.usernames(db, actor), queue.assignable(db, actor)


__all__ = ["SettlementQueuePane"]
