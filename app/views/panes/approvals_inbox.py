"""Approvals inbox: corrections waiting for a supervisor's decision (maker–checker), oldest first.

Each row is a pending correction with its before/after, maker, amount, how long it has waited, approvals so far and
required, and whether the signed-in user may decide it. Under the list, the selected correction in full
(:class:`~app.views.approvals.decision_panel.DecisionPanel`) with Approve and Reject (a rejection needs a comment,
which goes back to the maker). Several rows may be approved or rejected at once where the rule allows: a
correction above the threshold (two approvers) is decided on its own, and rows the user may not decide are left
out with the reason said. The four-eyes rule is the service's and the database's; the pane only explains it (a
maker sees their own corrections here, muted, with "you proposed this correction" beside the disabled buttons).

Reads and decisions run on the TaskRunner; the change feed refreshes the list keeping the selection;
``drill_down`` shows exactly the corrections another pane names under a removable chip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QWidget,
)

from app.models.enums import CorrectionStatus
from app.services.permissions import Permission
from app.services.workflow import worklist
from app.services.workflow.worklist import InboxFilter, InboxItem
from app.views import resources
from app.views.approvals.decision_panel import DecisionPanel
from app.views.breaks import workflow_api
from app.views.breaks.chip import DrillChip
from app.views.common.filter_widgets import quick_toggle
from app.views.common.list_table import list_table, notice_label, reselect
from app.views.panes.base import Pane, Workspace
from app.views.qt_models.approvals_model import COLUMNS, KIND_LABELS, WIDTHS, ApprovalsModel
from app.views.tasks import TaskContext, TaskFailure

STATUS_CHOICES = (
    ("Pending", (CorrectionStatus.PENDING.value,)),
    ("Approved", (CorrectionStatus.APPROVED.value,)),
    ("Rejected", (CorrectionStatus.REJECTED.value,)),
    ("Any status", ()),
)


class ApprovalsInboxPane(Pane):
    pane_id = "approvals_inbox"
    title = "Approvals inbox"
    subtitle = "Corrections waiting for a checker: never your own"
    icon_name = "approvals_inbox"
    entity_types = frozenset({"corrections", "correction_approvals", "breaks", "trades"})
    coming_next = ""

    #: A decision went through (the sentence shown) / was refused (the service's sentence).
    decided = Signal(str)
    refused = Signal(str)

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(workspace, parent)
        self.layout().setContentsMargins(12, 10, 12, 8)
        self.body.setSpacing(6)
        actor = workspace.actor
        self.can_approve = actor.can(Permission.APPROVE_CORRECTION)
        self._drill: InboxFilter | None = None

        bar = QHBoxLayout()
        bar.setSpacing(6)
        self.kind = QComboBox()
        self.kind.addItem("Any kind", None)
        for code, label in KIND_LABELS.items():
            self.kind.addItem(label, code)
        self.kind.setAccessibleName("Kind of correction")
        self.status = QComboBox()
        for label, statuses in STATUS_CHOICES:
            self.status.addItem(label, statuses)
        self.status.setAccessibleName("Status of the corrections")
        self.mine_to_decide = quick_toggle(
            "Only what I may decide", "Hide corrections you proposed, last edited or already approved"
        )
        self.mine_to_decide.setVisible(self.can_approve)
        self.chip = DrillChip()
        bar.addWidget(self.kind)
        bar.addWidget(self.status)
        bar.addWidget(self.mine_to_decide)
        bar.addWidget(self.chip)
        bar.addStretch(1)
        self.bulk_approve = QPushButton(resources.icon("approve"), "Approve selected")
        self.bulk_reject = QPushButton(resources.icon("reject"), "Reject selected")
        self.bulk_approve.setToolTip("Approve every selected correction you may decide (one comment for all)")
        self.bulk_reject.setToolTip(
            "Reject every selected correction you may decide (the comment goes to each maker)"
        )
        for b in (self.bulk_approve, self.bulk_reject):
            b.setVisible(self.can_approve)
            b.setEnabled(False)
            bar.addWidget(b)
        self.body.addLayout(bar)
        self.notice = notice_label()
        self.body.addWidget(self.notice)

        self.model = ApprovalsModel(self)
        self.table = list_table(
            self.model, "approvalsTable", "Corrections", (WIDTHS[key] for key, _label, _n in COLUMNS)
        )

        self.panel = DecisionPanel(actor.timezone)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.panel)
        self.splitter.setSizes([450, 350])
        self.body.addWidget(self.splitter, 1)
        self.count_label = QLabel("–")
        self.count_label.setObjectName("blotterCount")
        self.body.addWidget(self.count_label)
        self.setFocusProxy(self.table)

        self.kind.currentIndexChanged.connect(lambda _i: self._own_filter_changed())
        self.status.currentIndexChanged.connect(lambda _i: self._own_filter_changed())
        self.mine_to_decide.toggled.connect(lambda _on: self._own_filter_changed())
        self.chip.cleared.connect(self.clear_drill_down)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._selection_changed())
        self.panel.approve_requested.connect(lambda cid, c: self.decide([cid], "APPROVE", c))
        self.panel.reject_requested.connect(lambda cid, c: self.decide([cid], "REJECT", c))
        self.bulk_approve.clicked.connect(
            lambda: self.decide(self.selected_ids(), "APPROVE", self.panel.comment.text())
        )
        self.bulk_reject.clicked.connect(self._bulk_reject)

    # --- loading --------------------------------------------------------------------------------------------------

    def current_filter(self) -> InboxFilter:
        if self._drill is not None:
            return self._drill
        kind = self.kind.currentData()
        return InboxFilter(
            statuses=tuple(self.status.currentData() or ()),
            kinds=(kind,) if kind else (),
            decidable_only=self.mine_to_decide.isChecked(),
        )

    def loader(self) -> Callable[[TaskContext], Any]:
        db, actor, flt = self.ws.db, self.ws.actor, self.current_filter()
        return lambda _ctx: worklist.approvals_inbox(db, actor, flt)

    def present(self, result: Any) -> None:
        assert isinstance(result, list)
        current = self.current_id()
        selected = self.selected_ids()
        self.model.set_items(result)
        reselect(self.table, self.model.row_of, current, selected)
        if self.current_id() is None and result:
            self.select_row(0)
        n = len(result)
        mine = sum(1 for i in result if i.may_decide)
        self.count_label.setText(
            f"{n:,} correction{'s' if n != 1 else ''}"
            + (f" · {mine:,} you may decide" if self.can_approve else "")
        )
        self._selection_changed()

    def _own_filter_changed(self) -> None:
        if self._drill is not None:
            self._drill = None
            self.chip.hide()
        self.refresh()

    def drill_down(self, criteria: dict[str, Any]) -> None:
        """Show exactly the corrections ``criteria`` names (``ids``, ``statuses``/``status``, ``kinds``)."""
        fields = {k: v for k, v in criteria.items() if k != "title"}
        if "status" in fields and "statuses" not in fields:
            fields["statuses"] = fields.pop("status")
        if fields.get("ids") and "statuses" not in fields:
            fields["statuses"] = ()  # the named corrections, whatever their status
        self._drill = InboxFilter.from_dict(fields)
        if "statuses" in fields and not fields["statuses"]:
            self._drill = InboxFilter(**{**self._drill.__dict__, "statuses": ()})
        ids = self._drill.ids
        self.chip.show_for(
            str(criteria.get("title") or (f"{len(ids)} corrections" if ids else "corrections"))
        )
        self.refresh()

    def clear_drill_down(self) -> None:
        if self._drill is not None:
            self._drill = None
            self.chip.hide()
            self.refresh()

    # --- selection ------------------------------------------------------------------------------------------------

    def current_id(self) -> int | None:
        index = self.table.currentIndex()
        item = self.model.item(index.row()) if index.isValid() else None
        return item.id if item is not None else None

    def selected_items(self) -> list[InboxItem]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [it for it in (self.model.item(r) for r in rows) if it is not None]

    def selected_ids(self) -> list[int]:
        return [i.id for i in self.selected_items()]

    def select_row(self, row: int, *, extend: bool = False) -> None:
        flags = QItemSelectionModel.SelectionFlag.Rows | (
            QItemSelectionModel.SelectionFlag.Select
            if extend
            else QItemSelectionModel.SelectionFlag.ClearAndSelect
        )
        self.table.selectionModel().setCurrentIndex(self.model.index(row, 0), flags)

    def select_ids(self, ids: list[int]) -> None:
        reselect(self.table, self.model.row_of, ids[0] if ids else None, ids)
        self._selection_changed()

    def _selection_changed(self) -> None:
        current = self.current_id()
        row = self.model.row_of(current) if current is not None else None
        self.panel.show_item(self.model.item(row) if row is not None else None)
        items = self.selected_items()
        ok = [i for i in items if i.may_decide and i.bulk_allowed]
        self.bulk_approve.setEnabled(len(items) > 1 and bool(ok))
        self.bulk_reject.setEnabled(len(items) > 1 and any(i.may_decide for i in items))
        self.bulk_approve.setText(f"Approve selected ({len(ok)})" if len(items) > 1 else "Approve selected")
        self.bulk_reject.setText(
            f"Reject selected ({sum(1 for i in items if i.may_decide)})"
            if len(items) > 1
            else "Reject selected"
        )

    # --- decisions ------------------------------------------------------------------------------------------------

    def _bulk_reject(self) -> None:
        comment = self.panel.comment.text().strip()
        if not comment:
            self.show_notice(
                "Write a comment first: each maker reads why their correction was rejected.", "bad"
            )
            self.panel.comment.setFocus()
            return
        self.decide(self.selected_ids(), "REJECT", comment)

    def decide(self, ids: list[int], decision: str, comment: str) -> None:
        """Approve or reject ``ids`` in the background; rows the rule forbids are left out with the reason."""
        by_id = {i.id: i for i in self.model.items()}
        skipped: dict[int, str] = {}
        go: list[int] = []
        for cid in ids:
            item = by_id.get(cid)
            if item is not None and not item.may_decide:
                skipped[cid] = item.refusal or "You may not decide it."
            elif item is not None and decision == "APPROVE" and len(ids) > 1 and not item.bulk_allowed:
                skipped[cid] = f"Correction #{cid} needs two approvers; approve it on its own."
            else:
                go.append(cid)
        if not go:
            text = " ".join(skipped.values()) or "Select a correction first."
            self.show_notice(text, "bad")
            self.refused.emit(text)
            return
        verb = "approved" if decision == "APPROVE" else "rejected"
        db, actor = self.ws.db, self.ws.actor

        def work() -> dict[int, str]:
            if len(go) == 1:
                if decision == "APPROVE":
                    workflow_api.call("corrections", "approve", db, actor, go[0], comment)
                else:
                    workflow_api.call("corrections", "reject", db, actor, go[0], comment)
                return {}
            result = workflow_api.call("corrections", "bulk_decide", db, actor, go, decision, comment)
            return dict(getattr(result, "refused", {}) or {})

        def done(refusals: object) -> None:
            assert isinstance(refusals, dict)
            refused = {**skipped, **refusals}
            n = len(go) - len(refusals)
            text = f"{n} correction{'s' if n != 1 else ''} {verb}."
            if refused:
                text += " Not decided: " + " ".join(f"#{k}: {v}" for k, v in refused.items())
            self.show_notice(text, "ok" if not refused else "warn")
            self.decided.emit(text)
            if refused:
                self.refused.emit(" ".join(refused.values()))
            self.refresh()

        def failed(failure: TaskFailure) -> None:
            self.show_notice(failure.message, "bad")
            self.refused.emit(failure.message)
            self.refresh()

        self.ws.tasks.call(
            work, on_done=done, on_error=failed, label=f"Deciding {len(go)} correction(s)", owner=self
        )

    def show_notice(self, text: str, tone: str) -> None:
        self.notice.setText(text)
        resources.set_style_property(self.notice, "tone", tone)
        self.notice.show()
        status = getattr(self.window(), "status", None)
        if status is not None and hasattr(status, "show_message"):
            status.show_message(text)


__all__ = ["ApprovalsInboxPane"]
