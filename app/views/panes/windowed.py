"""The plumbing of a pane built on a paged, windowed table (the trade blotter, the settlement queue).

Such a pane has ``self.model`` (a :class:`~app.views.qt_models.paged_model.PagedTableModel`), ``self.table`` (a
:class:`~app.views.common.windowed_table.WindowedTable`), a ``detail`` panel, the header labels of :class:`Pane` and
a ``totals_label`` filled by a debounced totals task. What is the same for every such pane lives here: the load
bookkeeping (count, "Updated", errors), the debounced totals, and the live refresh that keeps the user's place:
the top row, the current row and the selection stay where they were while rows arrive or leave around them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

from PySide6.QtCore import QItemSelection, QItemSelectionModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from app.services.paging import Window
from app.views.panes.base import Pane, Workspace
from app.views.tasks import TaskContext, TaskFailure, TaskHandle, stop_queries

#: Selected items whose place is kept across a refresh (the current one and a few more).
MAX_TRACKED = 20


class WindowedTablePane(Pane):
    """Base of the panes over a paged table. Subclasses build ``model``, ``table``, ``detail``, ``totals_label``,
    ``selection_label`` and ``_totals_timer``, and implement the hooks below."""

    #: Totals for the current filter are on screen.
    totals_shown = Signal(object)
    #: The detail panel shows an item (its id).
    detail_shown = Signal(int)

    #: What one row is, for the count label ("1 trade", "2,000+ trades").
    count_noun: ClassVar[str] = "row"
    #: The list in "Could not load the …".
    list_name: ClassVar[str] = "list"
    #: The service that adds up a filter, run on a worker: ``totals(db, actor, filter, *, cancelled)``, which stops
    #: mid-query once ``cancelled()`` says so (:mod:`app.services.interrupt`). Set with ``staticmethod``.
    totals_service: ClassVar[Callable[..., Any]]
    #: The totals task's words in the status bar.
    totals_task_label: ClassVar[str] = "Adding up"

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(workspace, parent)
        self.layout().setContentsMargins(12, 10, 12, 8)
        self.body.setSpacing(6)
        self._started = False
        self._restoring = False
        self._refresh_context: dict[str, Any] | None = None
        self._totals_task: TaskHandle | None = None
        self._totals_gen = 0

    # --- hooks ----------------------------------------------------------------------------------------------------

    def _tracked_selection(self) -> list[int]:
        """The selected items' ids, in row order (the first MAX_TRACKED keep their place across a refresh)."""
        raise NotImplementedError

    def _selection_changed(self, *_args: object) -> None:
        raise NotImplementedError

    # --- loading ------------------------------------------------------------------------------------------------

    @property
    def loading(self) -> bool:
        return self.model.loading

    def _background(self, fn: Callable[..., Any], *args: Any, **options: Any) -> TaskHandle | None:
        """Start a task from a timer: by the time a timer fires the window may be closing and its task runner
        shut down; then there is nothing left to do."""
        try:
            return self.ws.tasks.call(fn, *args, **options)
        except RuntimeError:
            return None

    def _load_totals(self) -> None:
        """Add up the current filter once the query has stayed put for a moment (the pane's totals delay)."""
        if self._totals_task is not None:
            self._totals_task.cancel()
            self._totals_task = None
        self._totals_gen += 1
        self.totals_label.setText("Totals: computing…")
        self._totals_timer.start()

    def _start_totals(self) -> None:
        gen = self._totals_gen
        try:
            # run (not call): the task's context lets a newer filter stop these totals mid-query (add_up); a totals
            # task left running holds a worker and a core for seconds at a million rows.
            self._totals_task = self.ws.tasks.run(
                add_up,
                self.totals_service,
                self.ws.db,
                self.ws.actor,
                self.model.filter,
                on_done=lambda t: self._totals_done(gen, t),
                on_error=lambda f: self._totals_failed(gen, f),
                label=self.totals_task_label,
                quiet=True,
                priority=-1,
                owner=self,
            )
        except RuntimeError:  # the task runner has shut down: the window is closing
            self._totals_task = None

    def _totals_done(self, gen: int, totals: object) -> None:
        raise NotImplementedError

    def _totals_failed(self, gen: int, failure: TaskFailure) -> None:
        if gen == self._totals_gen:
            self._totals_task = None
            self.totals_label.setText(f"Totals unavailable: {failure.message}")

    def _loaded_bookkeeping(self) -> None:
        self.stale = False
        self.error_label.hide()
        self.loaded_at = dt.datetime.now().astimezone()
        self.updated_label.setText(f"Updated {self.loaded_at:%H:%M:%S}")
        self._update_count_label()
        self.refreshed.emit()
        QTimer.singleShot(0, self, self._maybe_again)

    def _update_count_label(self) -> None:
        n = self.model.rowCount()
        suffix = "" if self.model.count_exact else "+"
        self.count_label.setText(f"{n:,}{suffix} {self.count_noun}{'s' if n != 1 else ''}")

    def _load_failed(self, message: str) -> None:
        self.stale = True
        self.error_label.setText(f"Could not load the {self.list_name}: {message}")
        self.error_label.show()
        self.updated_label.setText("Not up to date" if self.loaded_at else "Not loaded")
        QTimer.singleShot(0, self, self._maybe_again)

    # --- live refresh keeping the user's place ------------------------------------------------------------------

    def _live_refresh(self) -> None:
        first, _last = self.table.visible_rows()
        # At the very top the user sees the newest rows arrive; anywhere else the top row stays put.
        top_id = self.model.item_id(first) if first > 0 else None
        current = self.current_item_id()
        selected = self._tracked_selection()[:MAX_TRACKED]
        track = ([current] if current is not None else []) + [t for t in selected if t != current]
        self._refresh_context = {
            "top_row": first,
            "top_id": top_id,
            "current": current,
            "selected": selected,
            "scroll_at_request": self.table.verticalScrollBar().value(),
        }
        self.model.refresh_window(
            top_row=first, top_id=top_id, visible=self.table.page_rows() + 1, track=track
        )
        self._load_totals()

    def _window_applied(self, window: object) -> None:
        assert isinstance(window, Window)
        context = self._refresh_context or {}
        self._refresh_context = None
        # The user may have scrolled while the refresh ran: keep that move on top of the new position.
        moved = self.table.verticalScrollBar().value() - int(context.get("scroll_at_request", 0))
        top = window.top if context.get("top_id") is not None else int(context.get("top_row", 0))
        self._restore_place(top + moved, window.positions, context)
        if self.detail.isVisible():
            self.detail.reload()  # the item on show may be one of those that changed
        self._loaded_bookkeeping()

    def _restore_place(self, top: int, positions: dict[int, int | None], context: dict[str, Any]) -> None:
        self._restoring = True
        try:
            # The swap reset the model, and the table lays out its rows (and sets its scroll range) later, on the
            # next turn of the event loop: until then the range is the old count's, and a place past its end (rows
            # arrived above a clerk at the bottom of the list) would be cut to the old end. Lay out now.
            self.table.executeDelayedItemsLayout()
            self.table.verticalScrollBar().setValue(max(0, top))
            selection = QItemSelection()
            last_col = self.model.columnCount() - 1
            for item in context.get("selected", []):
                row = positions.get(item)
                if row is not None:
                    selection.select(self.model.index(row, 0), self.model.index(row, last_col))
            sm = self.table.selectionModel()
            current = context.get("current")
            current_row = positions.get(current) if current is not None else None
            if current_row is not None:
                sm.setCurrentIndex(
                    self.model.index(current_row, 0), QItemSelectionModel.SelectionFlag.NoUpdate
                )
            sm.select(
                selection,
                QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
            )
        finally:
            self._restoring = False
        self._viewport_moved()
        # A selected item that moved outside the pages read so far: read its page, so the selection (and the
        # actions and detail that follow it) knows which item it is without the user scrolling to it.
        rows = [r for r in positions.values() if r is not None and not self.model.is_row_loaded(r)]
        if rows:
            self.model.when_loaded(rows, self._selection_changed)
        self._selection_changed()

    def _viewport_moved(self) -> None:
        first, last = self.table.visible_rows()
        self.model.set_viewport(first, last)

    # --- selection ----------------------------------------------------------------------------------------------

    def current_item_id(self) -> int | None:
        """The id of the current row when it is selected (None otherwise, or while its page is not read)."""
        index = self.table.currentIndex()
        if not index.isValid() or not self.table.selectionModel().isRowSelected(index.row(), QModelIndex()):
            return None
        return self.model.item_id(index.row())

    def selected_rows(self) -> list[int]:
        rows: set[int] = set()
        for rng in self.table.selectionModel().selection():
            rows.update(range(rng.top(), rng.bottom() + 1))
        return sorted(rows)

    def open_detail(self) -> None:
        """Show the detail panel (Enter) for the current row."""
        if not self.detail.isVisible():
            self.detail_button.setChecked(True)
        else:
            self._load_detail()

    # --- messages -----------------------------------------------------------------------------------------------

    def _show_message(self, text: str) -> None:
        status = getattr(self.window(), "status", None)
        if status is not None and hasattr(status, "show_message"):
            status.show_message(text)
        else:
            self.updated_label.setToolTip(text)

    def warn(self, title: str, text: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()


def add_up(ctx: TaskContext, totals: Callable[..., Any], db: Any, actor: Any, flt: Any) -> Any:
    """Worker: ``totals`` of ``flt``, stopped mid-query once the task is cancelled (a newer filter, the pane closing)
    and then reported as a cancel, not as a failure the status bar would show (:func:`app.views.tasks.stop_queries`;
    ``cancelled`` also stops a service between its statements)."""
    return stop_queries(partial(totals, cancelled=lambda: ctx.cancelled), (db, actor, flt), ctx)
