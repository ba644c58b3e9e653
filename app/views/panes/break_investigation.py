"""Break investigation: the clerk's work list of reconciliation breaks, and one break worked in full beneath it.

The list (a :class:`~app.views.qt_models.breaks_model.BreaksModel`) is filtered and sorted in the database by the
worklist service: recon, type, status, category, cause, age bucket, owner, amount, with the quick filters *My
breaks*, *Unassigned* and *Older than N days*; oldest first by default; more rows are read as the clerk scrolls.
The footer counts what the filter selects and adds the amounts at stake by currency.

Under it, the selected break (:class:`~app.views.breaks.detail_panel.BreakDetailPanel`): the internal and
external records side by side with the differing fields highlighted, ranked candidate matches, comments and
files, the history, and the actions: claim (exactly one of two racing clerks wins; the loser is told who has it),
release, assign (supervisors), categorise, and corrections proposed with a reason (amend the trade, write off,
force close, unmatch, manual match of one or several candidates) for a supervisor to approve.

Every read and every action runs on the TaskRunner; the change feed refreshes the list in place, keeping the
selection and the scroll position. ``drill_down`` shows exactly the breaks another pane names, under a chip that
gives the clerk their own filter back when removed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.services.workflow import worklist
from app.services.workflow.worklist import BreakFilter, BreakPage, BreakSort, BreakTotals, Choices
from app.views import resources
from app.views.breaks import workflow_api
from app.views.breaks.chip import DrillChip
from app.views.breaks.detail_panel import BreakDetailPanel
from app.views.breaks.filter_bar import BreakFilterBar
from app.views.breaks.propose_dialog import AMEND, MANUAL_MATCH, Proposal, ProposeDialog
from app.views.common.list_table import list_table, notice_label, reselect
from app.views.panes.base import Pane, Workspace
from app.views.qt_models.breaks_model import COLUMNS, PAGE_SIZE, WIDTHS, BreaksModel, money
from app.views.tasks import TaskContext, TaskFailure

if TYPE_CHECKING:
    from app.services.db import Database
    from app.services.permissions import Actor

DETAIL_DELAY_MS = 120
#: Rows re-read by a live refresh at most (the loaded stretch of the list, so the clerk's place stays put).
MAX_REFRESH_ROWS = 2000


def _propose(db: Database, actor: Actor, p: Proposal, seen_version: int | None) -> int:
    """Worker: run a proposal (an amendment finds its trade by reference first). Returns the correction id."""
    item_id = p.item_id
    if p.kind == AMEND:
        item_id = worklist.trade_id_for_ref(db, actor, p.trade_ref or "")
        seen_version = None  # the trade's version is the service's business; the break's is not the trade's
    return int(
        workflow_api.call(
            "corrections",
            "propose",
            db,
            actor,
            p.kind,
            p.item_type,
            item_id,
            p.payload,
            p.reason,
            seen_version=seen_version,
        )
    )


def _attach(db: Database, actor: Actor, break_id: int, path: str) -> int:
    data = Path(path).read_bytes()
    return int(
        workflow_api.call(
            "comments", "add_attachment", db, actor, "breaks", break_id, Path(path).name, data, None
        )
    )


def _save(db: Database, actor: Actor, attachment_id: int, path: str) -> str:
    _name, _type, content = worklist.attachment_content(db, actor, attachment_id)
    Path(path).write_bytes(content)
    return path


class CategoriseDialog(QDialog):
    def __init__(
        self,
        categories: list[str],
        causes: list[str],
        current: tuple[str | None, str | None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Categorise the break")
        form = QFormLayout()
        self.category = QComboBox()
        self.category.addItem("— none —", None)
        for c in categories:
            self.category.addItem(c, c)
        self.cause = QComboBox()
        self.cause.addItem("— none —", None)
        for c in causes:
            self.cause.addItem(c, c)
        for combo, value in ((self.category, current[0]), (self.cause, current[1])):
            i = combo.findData(value)
            combo.setCurrentIndex(max(i, 0))
        form.addRow("Category", self.category)
        form.addRow("Root cause", self.cause)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def values(self) -> tuple[str | None, str | None]:
        return self.category.currentData(), self.cause.currentData()


class BreakInvestigationPane(Pane):
    pane_id = "break_investigation"
    title = "Break investigation"
    subtitle = "Reconciliation breaks to work: oldest first, both sides side by side"
    icon_name = "break_investigation"
    entity_types = frozenset(
        {"breaks", "recon_runs", "recon_matches", "comments", "attachments", "corrections"}
    )
    coming_next = ""
    page_size: ClassVar[int] = PAGE_SIZE

    #: The detail panel shows a break (its id).
    detail_shown = Signal(int)
    #: An action succeeded (the sentence shown) / was refused (the service's sentence).
    action_done = Signal(str)
    action_refused = Signal(str)
    #: A dialog opened (propose, categorise): tests fill it in.
    dialog_opened = Signal(object)

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(workspace, parent)
        self.layout().setContentsMargins(12, 10, 12, 8)
        self.body.setSpacing(6)
        actor = workspace.actor
        self.sort = BreakSort()
        self._drill: BreakFilter | None = None
        self._query: tuple[BreakFilter, BreakSort] | None = None  # what the rows on screen were read with
        self._reset_rows = True
        self._choices: Choices | None = None
        self.dialog: QDialog | None = None

        self.model = BreaksModel(workspace.db, actor, workspace.tasks, self, page_size=self.page_size)
        self.filter_bar = BreakFilterBar(actor.user_id)
        self.body.addWidget(self.filter_bar)
        chips = QHBoxLayout()
        self.chip = DrillChip()
        chips.addWidget(self.chip)
        chips.addStretch(1)
        self.body.addLayout(chips)
        self.notice = notice_label()
        self.body.addWidget(self.notice)

        self.table = list_table(
            self.model, "breaksTable", "Breaks", (WIDTHS[key] for key, *_rest in COLUMNS), sortable=True
        )
        header = self.table.horizontalHeader()
        self._show_sort_indicator()

        self.detail = BreakDetailPanel(workspace)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 5)
        self.splitter.setStretchFactor(1, 4)
        self.splitter.setSizes([500, 400])
        self.body.addWidget(self.splitter, 1)

        footer = QHBoxLayout()
        self.count_label = QLabel("–")
        self.count_label.setObjectName("blotterCount")
        self.totals_label = QLabel("")
        self.totals_label.setObjectName("muted")
        self.totals_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # Totals in many currencies run long: wrapped, they take a second line rather than widening the window
        # past the screen (the queue's, unwrapped, made it 2,300 px wide).
        self.totals_label.setWordWrap(True)
        footer.addWidget(self.count_label)
        footer.addWidget(self.totals_label, 1)
        self.body.addLayout(footer)

        find = QShortcut(QKeySequence(QKeySequence.StandardKey.Find), self)
        find.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        find.activated.connect(self.filter_bar.focus_search)
        self.setFocusProxy(self.table)

        self.filter_bar.changed.connect(self._filter_changed)
        self.chip.cleared.connect(self.clear_drill_down)
        header.sectionClicked.connect(self._header_clicked)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._detail_timer.start())
        self.model.load_failed.connect(
            lambda text: self.show_notice(f"Could not read more breaks: {text}", "bad")
        )
        self.model.page_loaded.connect(lambda _n: self._update_count())
        self._detail_timer = QTimer(self)
        self._detail_timer.setSingleShot(True)
        self._detail_timer.setInterval(DETAIL_DELAY_MS)
        self._detail_timer.timeout.connect(self._load_detail)
        self.detail.loaded.connect(self.detail_shown)
        self.detail.claim_requested.connect(self.claim)
        self.detail.release_requested.connect(self.release)
        self.detail.assign_requested.connect(self.assign)
        self.detail.categorise_requested.connect(self.ask_categorise)
        self.detail.propose_requested.connect(self.ask_propose)
        self.detail.match_requested.connect(self.ask_match)
        self.detail.comment_requested.connect(self.add_comment)
        self.detail.attach_requested.connect(self.ask_attach)
        self.detail.save_attachment_requested.connect(self.ask_save)
        self.message.connect(self._show_message)
        # Operations: statement files dropped on the work list are imported.
        from app.views.operations.pane_hooks import attach_to_breaks

        attach_to_breaks(self)

    # --- the query ------------------------------------------------------------------------------------------------

    def current_filter(self) -> BreakFilter:
        return self._drill if self._drill is not None else self.filter_bar.current()

    def loader(self) -> Callable[[TaskContext], Any]:
        db, actor = self.ws.db, self.ws.actor
        flt, sort = self.current_filter(), self.sort
        fresh = self._reset_rows or self._query != (flt, sort)
        limit = self.page_size if fresh else min(MAX_REFRESH_ROWS, max(self.page_size, self.model.rowCount()))
        want_choices = self._choices is None

        def load(_ctx: TaskContext) -> tuple[Any, ...]:
            page = worklist.work_list(db, actor, flt, sort, limit=limit)
            totals = worklist.totals(db, actor, flt)
            choices = worklist.choices(db, actor) if want_choices else None
            return flt, sort, fresh, page, totals, choices

        self._reset_rows = False
        return load

    def present(self, result: Any) -> None:
        flt, sort, fresh, page, totals, choices = result
        assert isinstance(page, BreakPage) and isinstance(totals, BreakTotals)
        if choices is not None:
            self._choices = choices
            self.filter_bar.set_choices(choices)
            self.detail.set_users(choices.users)
        current = self.current_break_id()
        selected = self.selected_break_ids()
        scroll = 0 if fresh else self.table.verticalScrollBar().value()
        self.model.replace(page, flt, sort)
        self._query = (flt, sort)
        reselect(self.table, self.model.row_of, current, selected)
        self.table.verticalScrollBar().setValue(scroll)
        self._totals = totals
        self._update_count()
        if current is not None and self.model.row_of(current) is not None:
            self.detail.reload()  # the break on show may be one that changed
        elif current is None or self.model.row_of(current) is None:
            if self.model.rowCount() and not self.table.selectionModel().hasSelection():
                self.select_row(0)
            elif not self.model.rowCount():
                self.detail.show_nothing()

    def _update_count(self) -> None:
        totals: BreakTotals | None = getattr(self, "_totals", None)
        n = totals.count if totals is not None else self.model.rowCount()
        shown = self.model.rowCount()
        text = f"{n:,} break{'s' if n != 1 else ''}"
        if shown < n:
            text += f" ({shown:,} read; scroll for more)"
        self.count_label.setText(text)
        if totals is not None and totals.by_currency:
            parts = [f"{c} {money(v)}" for c, v in totals.by_currency.items()]
            self.totals_label.setText("At stake: " + " · ".join(parts))
        else:
            self.totals_label.setText("")

    def _filter_changed(self, _flt: BreakFilter) -> None:
        if self._drill is not None:
            # Touching the filter bar means the clerk wants their own list back.
            self._drill = None
            self.chip.hide()
        self._reset_rows = True
        self.refresh()

    def set_filter(self, flt: BreakFilter) -> None:
        self.filter_bar.set_filter(flt)

    def _header_clicked(self, section: int) -> None:
        key, label, sort_key, numeric = COLUMNS[section]
        if sort_key is None:
            self._show_sort_indicator()
            self.message.emit(f"The work list cannot sort by {label}.")
            return
        if sort_key == self.sort.key:
            sort = BreakSort(sort_key, not self.sort.descending)
        elif key == "age":
            sort = BreakSort("opened_at", False)  # oldest first
        else:
            sort = BreakSort(sort_key, numeric)
        self.set_sort(sort)

    def set_sort(self, sort: BreakSort) -> None:
        self.sort = sort
        self._show_sort_indicator()
        self._reset_rows = True
        self.refresh()

    def _show_sort_indicator(self) -> None:
        header = self.table.horizontalHeader()
        for i, (key, _label, sort_key, _n) in enumerate(COLUMNS):
            if sort_key == self.sort.key:
                # Age runs the other way from the opening time: oldest first is age descending.
                desc = self.sort.descending != (key == "age")
                order = Qt.SortOrder.DescendingOrder if desc else Qt.SortOrder.AscendingOrder
                header.blockSignals(True)
                header.setSortIndicator(i, order)
                header.blockSignals(False)
                return

    # --- drill-down -----------------------------------------------------------------------------------------------

    def drill_down(self, criteria: dict[str, Any]) -> None:
        """Show exactly the breaks ``criteria`` names (``ids``, or status/age/… filter fields) under a chip."""
        fields = {k: v for k, v in criteria.items() if k != "title"}
        if "status" in fields and "statuses" not in fields:
            fields["statuses"] = fields.pop("status")
        if "age" in fields and "age_bucket" not in fields:
            fields["age_bucket"] = fields.pop("age")
        flt = BreakFilter.from_dict(fields)
        if not flt.ids and not flt.statuses and "statuses" not in fields:
            flt = BreakFilter.from_dict({**flt.as_dict(), "statuses": list(worklist.OPEN_STATUSES)})
        self._drill = flt
        title = str(
            criteria.get("title") or (f"{len(flt.ids)} breaks" if flt.ids else "breaks from elsewhere")
        )
        self.chip.show_for(title)
        self._reset_rows = True
        self.refresh()

    def clear_drill_down(self) -> None:
        if self._drill is None:
            return
        self._drill = None
        self.chip.hide()
        self._reset_rows = True
        self.refresh()

    # --- selection and detail -------------------------------------------------------------------------------------

    def current_break_id(self) -> int | None:
        index = self.table.currentIndex()
        return self.model.break_id(index.row()) if index.isValid() else None

    def selected_break_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [b for b in (self.model.break_id(r) for r in rows) if b is not None]

    def select_row(self, row: int) -> None:
        index = self.model.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )

    def select_break(self, break_id: int) -> bool:
        row = self.model.row_of(break_id)
        if row is None:
            return False
        self.select_row(row)
        return True

    def _load_detail(self) -> None:
        break_id = self.current_break_id()
        if break_id is None:
            self.detail.show_nothing()
            return
        with contextlib.suppress(RuntimeError):  # a timer fired while the window closes: no task runner left
            self.detail.load(break_id)

    # --- actions --------------------------------------------------------------------------------------------------

    def _act(self, fn: Callable[..., Any], *args: Any, done: str, label: str, **kwargs: Any) -> None:
        """Run an action in the background; say what happened; reload the list and the break either way (a refused
        claim shows who has the break now)."""

        def ok(_result: object) -> None:
            self.show_notice(done, "ok")
            self.action_done.emit(done)
            self._after_action()

        def refused(failure: TaskFailure) -> None:
            self.show_notice(failure.message, "bad")
            self.action_refused.emit(failure.message)
            self._after_action()

        self.ws.tasks.call(lambda: fn(*args, **kwargs), on_done=ok, on_error=refused, label=label, owner=self)

    def _after_action(self) -> None:
        self.refresh()
        self.detail.reload()

    def _break(self) -> int | None:
        d = self.detail.detail
        return d.id if d is not None else self.current_break_id()

    def claim(self) -> None:
        bid = self._break()
        if bid is not None:
            self._act(
                workflow_api.action("breaks", "claim_break"),
                self.ws.db,
                self.ws.actor,
                bid,
                done=f"Break #{bid} is yours now.",
                label=f"Claiming break #{bid}",
            )

    def release(self) -> None:
        bid = self._break()
        if bid is not None:
            self._act(
                workflow_api.action("breaks", "release_break"),
                self.ws.db,
                self.ws.actor,
                bid,
                done=f"Break #{bid} is back in the unclaimed pool.",
                label=f"Releasing break #{bid}",
            )

    def assign(self, user_id: int) -> None:
        bid = self._break()
        if bid is None:
            return
        names = {u: n for u, n, _r in (self._choices.users if self._choices else [])}
        self._act(
            workflow_api.action("breaks", "assign_break"),
            self.ws.db,
            self.ws.actor,
            bid,
            user_id,
            done=f"Break #{bid} assigned to {names.get(user_id, f'user #{user_id}')}.",
            label=f"Assigning break #{bid}",
        )

    def ask_categorise(self) -> None:
        d = self.detail.detail
        if d is None:
            return
        c = self._choices
        dialog = CategoriseDialog(
            c.categories if c else [], c.root_causes if c else [], (d.category, d.root_cause), self
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.categorise(d.id, *dialog.values(), seen_version=d.version))
        self._open(dialog)

    def categorise(
        self, break_id: int, category: str | None, root_cause: str | None, *, seen_version: int
    ) -> None:
        self._act(
            workflow_api.action("breaks", "set_category"),
            self.ws.db,
            self.ws.actor,
            break_id,
            category,
            root_cause,
            seen_version=seen_version,
            done=f"Break #{break_id} categorised.",
            label=f"Categorising break #{break_id}",
        )

    def ask_propose(self, kind: str) -> None:
        d = self.detail.detail
        if d is None:
            return
        dialog = ProposeDialog(kind, d, self, matches=self.detail.matches)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.propose(dialog.proposal(), d.version))
        self._open(dialog)

    def ask_match(self, chosen: list[dict[str, Any]]) -> None:
        d = self.detail.detail
        if d is None or not chosen:
            return
        dialog = ProposeDialog(MANUAL_MATCH, d, self, candidates=chosen)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.propose(dialog.proposal(), d.version))
        self._open(dialog)

    def propose(self, proposal: Proposal, seen_version: int | None) -> None:
        self._act(
            _propose,
            self.ws.db,
            self.ws.actor,
            proposal,
            seen_version,
            done=f"Proposed: {proposal.kind.replace('_', ' ').lower()}; it waits for a supervisor's approval.",
            label="Proposing a correction",
        )

    def add_comment(self, text: str) -> None:
        bid = self._break()
        if bid is None:
            return
        self.detail.comment_added()
        self._act(
            workflow_api.action("comments", "add_comment"),
            self.ws.db,
            self.ws.actor,
            "breaks",
            bid,
            text,
            done=f"Comment added to break #{bid}.",
            label="Adding a comment",
        )

    def ask_attach(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Attach a file to the break", str(Path.home()))
        if path:
            self.attach(path)

    def attach(self, path: str) -> None:
        bid = self._break()
        if bid is not None:
            self._act(
                _attach,
                self.ws.db,
                self.ws.actor,
                bid,
                path,
                done=f"{Path(path).name} attached to break #{bid}.",
                label="Attaching a file",
            )

    def ask_save(self, attachment_id: int, file_name: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the attachment", str(Path.home() / file_name))
        if path:
            self.ws.tasks.call(
                _save,
                self.ws.db,
                self.ws.actor,
                attachment_id,
                path,
                on_done=lambda p: self.show_notice(f"Saved {p}.", "ok"),
                on_error=lambda f: self.show_notice(f.message, "bad"),
                label="Saving an attachment",
                owner=self,
            )

    def _open(self, dialog: QDialog) -> None:
        self.dialog = dialog
        dialog.open()
        self.dialog_opened.emit(dialog)

    # --- messages -------------------------------------------------------------------------------------------------

    def show_notice(self, text: str, tone: str) -> None:
        self.notice.setText(text)
        resources.set_style_property(self.notice, "tone", tone)
        self.notice.show()
        self.message.emit(text)

    def _show_message(self, text: str) -> None:
        status = getattr(self.window(), "status", None)
        if status is not None and hasattr(status, "show_message"):
            status.show_message(text)


__all__ = ["BreakInvestigationPane"]
