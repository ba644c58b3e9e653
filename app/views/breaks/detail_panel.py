"""One break as a clerk investigates it, under the work list: facts, actions and four tabs.

- **Side by side**: the internal and the external record, field by field, the fields that differ highlighted (and
  listed first); a field only one side has reads muted;
- **Candidates**: the other side's open breaks ranked by how close they are (score and reasons, from the workflow's
  ``candidates``); tick one or several and *Propose manual match* (one-to-one or one-to-many);
- **Comments & files**: the notes on the break, a box to add one, the attached files (attach, save);
- **History**: every change, comment and file, oldest first.

Everything is read in one background task (``break_detail`` + candidates + the matches an unmatch could undo); a
newer selection always wins over a slow answer for the previous break. The panel emits what the user asked for;
the pane runs the actions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.services.permissions import Permission
from app.services.workflow import worklist
from app.services.workflow.worklist import BreakDetail
from app.views import resources
from app.views.breaks import workflow_api
from app.views.breaks.propose_dialog import AMEND, FORCE_CLOSE, UNMATCH, WRITE_OFF
from app.views.qt_models.breaks_model import BREAK_STATUS_TONES, TONE_TEXT, TYPE_LABELS, money
from app.views.qt_models.status_counts import status_label
from app.views.tasks import TaskFailure, TaskHandle

if TYPE_CHECKING:
    from app.views.panes.base import Workspace

DIFFERS_BACKGROUND = QColor("#fde2cf")  # a differing field: the one thing on screen in this warm tone
ONE_SIDE_FOREGROUND = QColor("#9aa5b1")
ROW_HEIGHT = 22
CLOSED = ("RESOLVED", "WRITTEN_OFF")


def as_mapping(obj: Any) -> dict[str, Any]:
    """A dataclass, mapping or plain object as a dict (a service's answer, whatever its shape)."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if hasattr(obj, "_asdict"):
        return dict(obj._asdict())
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_detail(db: Any, actor: Any, break_id: int) -> dict[str, Any]:
    """Worker: the break, its ranked candidates and the matches naming it."""
    out: dict[str, Any] = {"detail": worklist.break_detail(db, actor, break_id)}
    found = workflow_api.call("candidates", "candidates", db, actor, break_id, limit=10)
    out["candidates"] = [as_mapping(c) for c in found]
    out["matches"] = worklist.matches_for(db, actor, break_id)
    return out


class _Table(QTableWidget):
    def __init__(self, headers: list[str], parent: QWidget | None = None) -> None:
        super().__init__(0, len(headers), parent)
        self.setHorizontalHeaderLabels(headers)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.setShowGrid(False)
        self.verticalHeader().hide()
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        self.horizontalHeader().setStretchLastSection(True)
        self.horizontalHeader().setDefaultAlignment(
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        )


class BreakDetailPanel(QFrame):
    """The selected break; :meth:`load` shows one, :meth:`reload` reads the same one again."""

    #: The full detail of a break is on screen (its id).
    loaded = Signal(int)
    #: Actions the user asked for: (name, argument). The pane runs them.
    claim_requested = Signal()
    release_requested = Signal()
    assign_requested = Signal(int)  # user id
    categorise_requested = Signal()
    propose_requested = Signal(str)  # kind
    match_requested = Signal(list)  # the chosen candidates (dicts)
    comment_requested = Signal(str)
    attach_requested = Signal()
    save_attachment_requested = Signal(int, str)  # attachment id, file name

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("breakDetail")
        self.ws = workspace
        actor = workspace.actor
        self.can_work = actor.can(Permission.WORK_ITEMS)
        self.can_propose = actor.can(Permission.PROPOSE_CORRECTION)
        self.can_assign = actor.can(Permission.ASSIGN_WORK)
        try:
            self.zone = ZoneInfo(actor.timezone)
        except Exception:
            self.zone = ZoneInfo("UTC")
        self.break_id: int | None = None
        self.detail: BreakDetail | None = None
        self.candidates: list[dict[str, Any]] | None = None
        self.matches: list[dict[str, Any]] = []
        self._task: TaskHandle | None = None
        self._gen = 0

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 6, 0, 0)
        outer.setSpacing(4)
        top = QHBoxLayout()
        top.setSpacing(6)
        self.title = QLabel("No break selected")
        self.title.setObjectName("detailTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top.addWidget(self.title)
        top.addStretch(1)
        self.claim_button = self._button(
            "Claim", "claim", "Make this break yours (nobody else can work it then)"
        )
        self.claim_button.clicked.connect(self.claim_requested)
        self.release_button = self._button("Release", "release", "Give the break back to the unclaimed pool")
        self.release_button.clicked.connect(self.release_requested)
        self.assign_button = self._button("Assign", "user", "Give the break to a clerk")
        self.assign_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.assign_menu = QMenu(self.assign_button)
        self.assign_button.setMenu(self.assign_menu)
        self.categorise_button = self._button(
            "Categorise…", "category", "File the break under a category and cause"
        )
        self.categorise_button.clicked.connect(self.categorise_requested)
        self.propose_button = self._button(
            "Propose", "propose", "Propose a correction for a supervisor to approve"
        )
        self.propose_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.propose_button)
        self.propose_actions = {
            AMEND: menu.addAction("Amend the trade…", lambda: self.propose_requested.emit(AMEND)),
            WRITE_OFF: menu.addAction(
                "Write off the difference…", lambda: self.propose_requested.emit(WRITE_OFF)
            ),
            FORCE_CLOSE: menu.addAction("Force close…", lambda: self.propose_requested.emit(FORCE_CLOSE)),
            UNMATCH: menu.addAction("Unmatch…", lambda: self.propose_requested.emit(UNMATCH)),
        }
        self.propose_button.setMenu(menu)
        for b in (
            self.claim_button,
            self.release_button,
            self.assign_button,
            self.categorise_button,
            self.propose_button,
        ):
            top.addWidget(b)
        self.assign_button.setVisible(self.can_assign)
        for b in (self.claim_button, self.release_button, self.categorise_button, self.propose_button):
            b.setVisible(self.can_work)  # an auditor sees no action at all
        outer.addLayout(top)

        self.facts = QLabel("")
        self.facts.setObjectName("breakFacts")
        self.facts.setWordWrap(True)
        self.facts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(self.facts)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.sides = _Table(["Field", "Internal", "External"])
        self.sides.setObjectName("sideBySide")
        self.sides.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.sides.setAccessibleName("Internal and external records side by side")
        self.tabs.addTab(self.sides, "Side by side")

        cand = QWidget()
        cl = QVBoxLayout(cand)
        cl.setContentsMargins(0, 4, 0, 0)
        self.candidates_table = _Table(["", "Break", "Score", "Reference", "Amount", "Why"])
        self.candidates_table.setAccessibleName("Candidate matches")
        self.candidates_note = QLabel("")
        self.candidates_note.setObjectName("muted")
        self.candidates_note.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.candidates_note, 1)
        self.match_button = QPushButton("Propose manual match…")
        self.match_button.setToolTip("Match this break with the ticked candidates (one or several)")
        self.match_button.clicked.connect(self._match_clicked)
        self.match_button.setVisible(self.can_propose)
        row.addWidget(self.match_button)
        cl.addWidget(self.candidates_table, 1)
        cl.addLayout(row)
        self.candidates_table.itemChanged.connect(lambda _i: self._update_match_button())
        self.tabs.addTab(cand, "Candidates")

        notes = QWidget()
        nl = QVBoxLayout(notes)
        nl.setContentsMargins(0, 4, 0, 0)
        self.comments_table = _Table(["When", "Who", "Comment"])
        self.comments_table.setAccessibleName("Comments")
        nl.addWidget(self.comments_table, 2)
        add = QHBoxLayout()
        self.comment_box = QPlainTextEdit()
        self.comment_box.setPlaceholderText("Add a comment (what you found, whom you asked) …")
        self.comment_box.setAccessibleName("New comment")
        self.comment_box.setFixedHeight(52)
        self.comment_button = QPushButton("Add comment")
        self.comment_button.clicked.connect(self._comment_clicked)
        add.addWidget(self.comment_box, 1)
        add.addWidget(self.comment_button, 0, Qt.AlignmentFlag.AlignTop)
        nl.addLayout(add)
        self.attachments_table = _Table(["File", "Size", "By", "When"])
        self.attachments_table.setAccessibleName("Attachments")
        self.attachments_table.doubleClicked.connect(lambda _i: self._save_clicked())
        nl.addWidget(self.attachments_table, 1)
        files = QHBoxLayout()
        files.addStretch(1)
        self.attach_button = QPushButton("Attach file…")
        self.attach_button.clicked.connect(self.attach_requested)
        self.save_button = QPushButton("Save file…")
        self.save_button.clicked.connect(self._save_clicked)
        files.addWidget(self.attach_button)
        files.addWidget(self.save_button)
        nl.addLayout(files)
        for w in (self.comment_box, self.comment_button, self.attach_button):
            w.setVisible(self.can_work)
        self.tabs.addTab(notes, "Comments && files")

        self.history = _Table(["When", "Who", "What"])
        self.history.setAccessibleName("History")
        self.tabs.addTab(self.history, "History")
        outer.addWidget(self.tabs, 1)
        self.show_nothing()

    def _button(self, text: str, icon: str, tip: str) -> QToolButton:
        b = QToolButton()
        b.setText(text)
        b.setIcon(resources.icon(icon))
        b.setToolTip(tip)
        b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        return b

    # --- loading ------------------------------------------------------------------------------------------------

    def show_nothing(self) -> None:
        self._gen += 1
        self.break_id = None
        self.detail = None
        self.title.setText("No break selected")
        self.facts.setText("Select a break in the list to investigate it.")
        for t in (
            self.sides,
            self.candidates_table,
            self.comments_table,
            self.attachments_table,
            self.history,
        ):
            t.setRowCount(0)
        self._update_actions()

    def load(self, break_id: int) -> None:
        if self._task is not None:
            self._task.cancel()
        self._gen += 1
        gen = self._gen
        if break_id != self.break_id:
            self.title.setText(f"Break #{break_id}")
            self.facts.setText("Loading…")
        self.break_id = break_id
        self._task = self.ws.tasks.call(
            read_detail,
            self.ws.db,
            self.ws.actor,
            break_id,
            on_done=lambda r: self._shown(gen, r),
            on_error=lambda f: self._failed(gen, f),
            on_cancelled=lambda: None,
            label=f"Reading break #{break_id}",
            quiet=True,
            owner=self,
        )

    def reload(self) -> None:
        if self.break_id is not None:
            self.load(self.break_id)

    def _failed(self, gen: int, failure: TaskFailure) -> None:
        if gen != self._gen:
            return
        self._task = None
        self.facts.setText(f"Could not read the break: {failure.message}")

    def _shown(self, gen: int, result: object) -> None:
        if gen != self._gen:
            return
        self._task = None
        assert isinstance(result, dict)
        d: BreakDetail = result["detail"]
        self.detail = d
        self.candidates = result["candidates"]
        self.matches = result["matches"]
        self._fill(d)
        self.loaded.emit(d.id)

    def when(self, ts: dt.datetime | None) -> str:
        return "" if ts is None else ts.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")

    def _fill(self, d: BreakDetail) -> None:
        tone = BREAK_STATUS_TONES.get(d.status, "neutral")
        colour = TONE_TEXT[tone].name()
        self.title.setText(
            f"<b>Break #{d.id}</b> · {TYPE_LABELS.get(d.break_type, d.break_type)} · "
            f"<span style='color:{colour}; font-weight:600'>{status_label(d.status)}</span>"
        )
        owner = (
            f"owned by <b>{d.owner}</b> since {self.when(d.claimed_at)}" if d.owner else "<b>unassigned</b>"
        )
        category = " / ".join(x for x in (d.category, d.root_cause) if x) or "not categorised"
        pending = d.pending_correction
        facts = [
            f"{d.recon} ({d.left_source} vs {d.right_source})",
            f"<b>{d.currency or ''} {money(abs(d.amount))}</b> at stake",
            f"{d.age} business day{'s' if d.age != 1 else ''} old (as of {d.as_of_date})",
            owner,
            category,
        ]
        if pending is not None:
            facts.append(f"correction #{pending.id} ({status_label(pending.kind)}) awaits approval")
        self.facts.setText(" · ".join(facts))
        self._fill_sides(d)
        self._fill_candidates()
        self.comments_table.setRowCount(0)
        for c in d.comments:
            self._append(self.comments_table, [self.when(c.created_at), c.author, c.body])
        self.attachments_table.setRowCount(0)
        for a in d.attachments:
            self._append(
                self.attachments_table,
                [a.file_name, f"{a.size:,} B", a.uploaded_by, self.when(a.uploaded_at)],
            )
        self.history.setRowCount(0)
        for h in d.history:
            self._append(self.history, [self.when(h.when), h.who, h.text])
        for t in (self.comments_table, self.attachments_table, self.history):
            t.resizeColumnsToContents()
            for col in range(t.columnCount() - 1):
                t.setColumnWidth(col, min(t.columnWidth(col) + 12, 260))
        self.tabs.setTabText(2, f"Comments && files ({len(d.comments) + len(d.attachments)})")
        self.tabs.setTabText(3, f"History ({len(d.history)})")
        self._update_actions()

    def _append(self, table: QTableWidget, texts: list[str]) -> None:
        r = table.rowCount()
        table.insertRow(r)
        for c, text in enumerate(texts):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            table.setItem(r, c, item)

    def _fill_sides(self, d: BreakDetail) -> None:
        left = f"Internal · {d.left_source}" + (f" · {d.internal_ref}" if d.internal_ref else "")
        right = f"External · {d.right_source}" + (f" · {d.external_ref}" if d.external_ref else "")
        if d.internal_record is None:
            left += " (missing)"
        if d.external_record is None:
            right += " (missing)"
        self.sides.setHorizontalHeaderLabels(["Field", left, right])
        self.sides.setRowCount(0)
        bold = QFont()
        bold.setWeight(QFont.Weight.DemiBold)
        for f in d.fields:
            self._append(self.sides, [f.field, cell(f.internal), cell(f.external)])
            r = self.sides.rowCount() - 1
            items = [self.sides.item(r, c) for c in range(3)]
            if f.differs:
                for item in items:
                    item.setBackground(QBrush(DIFFERS_BACKGROUND))
                    item.setFont(bold)
                items[0].setToolTip(f"{f.field} differs: {cell(f.internal)} ≠ {cell(f.external)}")
            elif f.only is not None or d.internal_record is None or d.external_record is None:
                missing = 1 if f.internal is None else 2 if f.external is None else None
                if missing is not None:
                    items[missing].setText("—")
                    items[missing].setForeground(QBrush(ONE_SIDE_FOREGROUND))
        n = len(d.differing)
        label = f"Side by side ({n} differ{'s' if n == 1 else ''})" if n else "Side by side"
        self.tabs.setTabText(0, label)

    def differing_rows(self) -> list[str]:
        """The fields shown highlighted (tests and screen readers)."""
        out = []
        for r in range(self.sides.rowCount()):
            if self.sides.item(r, 0).background().color() == DIFFERS_BACKGROUND:
                out.append(self.sides.item(r, 0).text())
        return out

    def _fill_candidates(self) -> None:
        t = self.candidates_table
        t.blockSignals(True)
        t.setRowCount(0)
        if self.candidates is None:
            self.candidates_note.setText("Looking for candidates…")  # not loaded yet
        elif not self.candidates:
            self.candidates_note.setText("No open break on the other side looks like this one.")
        else:
            self.candidates_note.setText("Ranked by how close they are; tick one or several to match them.")
        for c in self.candidates or []:
            bid = c.get("break_id", c.get("id"))
            ref = c.get("ref") or c.get("external_ref") or c.get("internal_ref") or ""
            amount = c.get("amount")
            amount_text = f"{c.get('currency') or ''} {amount:,.2f}".strip() if amount is not None else ""
            score = c.get("score")
            reasons = c.get("reasons") or []
            why = "; ".join(str(x) for x in reasons) if isinstance(reasons, list | tuple) else str(reasons)
            score_text = f"{score:.0%}" if isinstance(score, float) and score <= 1 else cell(score)
            self._append(t, ["", f"#{bid}", score_text, str(ref), amount_text, why])
            tick = t.item(t.rowCount() - 1, 0)
            tick.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            tick.setCheckState(Qt.CheckState.Unchecked)
            tick.setData(Qt.ItemDataRole.UserRole, {**c, "break_id": bid})
        t.resizeColumnsToContents()
        t.blockSignals(False)
        self.tabs.setTabText(1, f"Candidates ({len(self.candidates or [])})")
        self._update_match_button()

    def tick_candidates(self, rows: list[int]) -> None:
        for r in rows:
            self.candidates_table.item(r, 0).setCheckState(Qt.CheckState.Checked)

    def chosen_candidates(self) -> list[dict[str, Any]]:
        t = self.candidates_table
        out = []
        for r in range(t.rowCount()):
            item = t.item(r, 0)
            if item is not None and item.checkState() == Qt.CheckState.Checked:
                out.append(dict(item.data(Qt.ItemDataRole.UserRole)))
        return out

    # --- actions --------------------------------------------------------------------------------------------------

    def set_users(self, users: list[tuple[int, str, str]]) -> None:
        """Who a supervisor may assign to (clerks and supervisors)."""
        self.assign_menu.clear()
        for uid, name, role in users:
            if role in ("clerk", "supervisor"):
                self.assign_menu.addAction(f"{name} ({role})", lambda u=uid: self.assign_requested.emit(u))

    def _update_actions(self) -> None:
        d = self.detail
        me = self.ws.actor.user_id
        active = d is not None and d.status not in CLOSED
        mine = d is not None and d.owner_id == me
        free = d is not None and d.owner_id is None
        self.claim_button.setEnabled(active and free)
        self.claim_button.setToolTip(
            "Make this break yours"
            if d is None or free
            else f"Claimed by {d.owner}; only a supervisor can reassign it"
            if not mine
            else "It is yours already"
        )
        self.release_button.setEnabled(active and (mine or (self.can_assign and not free)))
        self.assign_button.setEnabled(active)
        self.categorise_button.setEnabled(active and (mine or free or self.can_assign))
        pending = d is not None and d.pending_correction is not None
        self.propose_button.setEnabled(active and not pending and (mine or free or self.can_assign))
        if d is not None:
            self.propose_actions[AMEND].setEnabled(bool(d.internal_ref) and d.internal_record is not None)
            self.propose_actions[WRITE_OFF].setEnabled(bool(d.amount))
            self.propose_actions[UNMATCH].setEnabled(bool(self.matches))
        self.comment_button.setEnabled(d is not None)
        self.attach_button.setEnabled(d is not None)
        self.save_button.setEnabled(d is not None and bool(d.attachments))
        self._update_match_button()

    def _update_match_button(self) -> None:
        d = self.detail
        ok = (
            d is not None
            and d.status not in CLOSED
            and d.pending_correction is None
            and bool(self.chosen_candidates())
        )
        self.match_button.setEnabled(ok)
        n = len(self.chosen_candidates())
        self.match_button.setText(f"Propose manual match ({n})…" if n else "Propose manual match…")

    def _match_clicked(self) -> None:
        chosen = self.chosen_candidates()
        if chosen:
            self.match_requested.emit(chosen)

    def _comment_clicked(self) -> None:
        text = self.comment_box.toPlainText().strip()
        if text:
            self.comment_requested.emit(text)

    def comment_added(self) -> None:
        self.comment_box.clear()

    def _save_clicked(self) -> None:
        d = self.detail
        row = self.attachments_table.currentRow()
        if d is None or not d.attachments:
            return
        a = d.attachments[row if 0 <= row < len(d.attachments) else 0]
        self.save_attachment_requested.emit(a.id, a.file_name)
