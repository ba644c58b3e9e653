"""The settlement queue pane: its paged model passes Qt's model tester, filters and groups run in the database, a
drill-down shows a removable chip, claim and bulk actions (with their confirmation) change the database, a live
refresh keeps the selection, and the cut-off strip counts down without the database.

The book is the one of ``test_settlement_queue`` (a few hundred instructions in every status); the model's pages
are small (40 rows) so keyset, from-the-end and offset pages all happen here as at a million rows.
"""

# ruff: noqa: F811 - the ``book`` fixture is imported from the service tests and used as a parameter
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot
from sqlalchemy import select, update

from app.models import Comment, SettlementInstruction
from app.models.enums import ChangeAction, InstructionStatus
from app.services import audit
from app.services.db import Database
from app.services.permissions import Actor
from app.services.settlement.actions import BulkResult
from app.services.settlement.queue import COL, Cutoff, Sort
from app.views.panes.base import Workspace
from app.views.panes.settlement_queue import SettlementQueuePane
from app.views.qt_models.paged_model import LOADING_TEXT
from app.views.settlement.bulk_dialog import BulkActionDialog
from app.views.settlement.cutoff_strip import CutoffStrip
from app.views.tasks import TaskCancelled, TaskRunner

from .gui_helpers import show_pane, wait_idle
from .test_settlement_queue import AS_OF, book, expected  # noqa: F401

S = InstructionStatus
PAGE = 40
PaneFactory = Callable[..., SettlementQueuePane]


@pytest.fixture
def open_pane(qtbot: QtBot, db: Database, tasks: TaskRunner, monkeypatch: pytest.MonkeyPatch) -> PaneFactory:
    monkeypatch.setattr(SettlementQueuePane, "page_size", PAGE)

    def factory(actor: Actor, view: str = "Everything") -> SettlementQueuePane:
        pane = SettlementQueuePane(Workspace(db=db, actor=actor, tasks=tasks))
        pane.filter_bar.set_view(view)
        # The first pane of a process builds four markets' calendars on a worker below the GUI's priority: 6-9 s
        # on a loaded two-core machine (measured), too close to the helper's 10 s default. No timing is asserted.
        show_pane(qtbot, pane, (1400, 800), pane.refreshed, pane.cutoffs_shown, timeout=30_000)
        # The cut-offs build the markets' calendars and the rows are read again with business-day ages.
        wait_idle(qtbot, pane)
        return pane

    return factory


def all_refs(qtbot: QtBot, pane: SettlementQueuePane) -> list[str]:
    model = pane.model
    n = model.rowCount()
    done: list[bool] = []
    model.when_loaded(range(n), lambda: done.append(True))
    qtbot.waitUntil(lambda: bool(done), timeout=10_000)
    return [model.row_values(r)[COL["instruction_ref"]] for r in range(n)]  # type: ignore[index]


def test_the_model_passes_qt_model_tester(qtbot, qtmodeltester, open_pane, users, book) -> None:
    pane = open_pane(users["clerk1"])
    qtmodeltester.check(pane.model, force_py=True)
    assert pane.model.rowCount() == len(book)
    # Rows not read yet answer with a placeholder instead of blocking.
    far = pane.model.rowCount() - 1
    assert pane.model.index(far, COL["instruction_ref"]).data() in (
        LOADING_TEXT,
        None,
    ) or pane.model.is_row_loaded(far)


def test_every_row_pages_in_and_ctrl_end_reaches_the_last(qtbot, open_pane, users, book) -> None:
    pane = open_pane(users["clerk1"])
    assert all_refs(qtbot, pane) == expected(book, lambda r: True)
    pane.table.setFocus()
    qtbot.keyClick(pane.table, Qt.Key.Key_End, Qt.KeyboardModifier.ControlModifier)
    last = pane.model.rowCount() - 1
    qtbot.waitUntil(lambda: pane.model.is_row_loaded(last), timeout=10_000)
    assert pane.table.currentIndex().row() == last
    assert pane.model.row_values(last)[COL["instruction_ref"]] == expected(book, lambda r: True)[-1]  # type: ignore[index]


def test_filters_from_the_bar_and_my_queue(qtbot, open_pane, users, book) -> None:
    clerk = users["clerk1"]
    pane = open_pane(clerk, view="My queue")
    open_ = {s.value for s in (S.PENDING, S.INSTRUCTED, S.MATCHED, S.PARTIALLY_SETTLED, S.FAILED)}
    mine = expected(book, lambda r: r["status"].value in open_ and r["owner_id"] in (None, clerk.user_id))
    assert all_refs(qtbot, pane) == mine
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        pane.filter_bar.set_view("Everything")
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        pane.filter_bar.counterparty.setText("gamma")
    wait_idle(qtbot, pane)
    assert all_refs(qtbot, pane) == expected(book, lambda r: r["cpty"] == "GAMMA")
    with qtbot.waitSignal(pane.totals_shown, timeout=10_000) as totals:
        pane.filter_bar.status.setCurrentIndex(pane.filter_bar.status.findData("FAILED"))
    wait_idle(qtbot, pane)
    want = expected(book, lambda r: r["cpty"] == "GAMMA" and r["status"] is S.FAILED)
    assert all_refs(qtbot, pane) == want
    assert totals.args[0].count == len(want)


def test_sort_by_header_and_grouped_view(qtbot, open_pane, users, book) -> None:
    pane = open_pane(users["clerk1"])
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        pane.table.horizontalHeader().sectionClicked.emit(COL["settlement_amount"])
    wait_idle(qtbot, pane)
    assert pane.sort == Sort("settlement_amount", True)
    assert all_refs(qtbot, pane) == expected(book, lambda r: True, "settlement_amount", True)
    with qtbot.waitSignal(pane.groups_shown, timeout=10_000) as shown:
        pane.filter_bar.set_group_by("market")
    counts = {g.value: g.count for g in shown.args[0]}
    assert counts == {m: sum(1 for r in book if r["mic"] == m) for m in {r["mic"] for r in book}}
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        pane.show_group("XETR")
    wait_idle(qtbot, pane)
    assert all_refs(qtbot, pane) == expected(book, lambda r: r["mic"] == "XETR", "settlement_amount", True)


def test_drill_down_shows_a_chip_that_removes_the_filter(qtbot, open_pane, users, book) -> None:
    pane = open_pane(users["clerk1"], view="My queue")
    ids = [r["id"] for r in book[10:30:4]]
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        pane.drill_down({"ids": ids, "title": "SLA breached: instruction cut-off"})
    wait_idle(qtbot, pane)
    assert (
        pane.filter_bar.chip.isVisible()
        and pane.filter_bar.chip.text() == "SLA breached: instruction cut-off"
    )
    assert sorted(all_refs(qtbot, pane)) == sorted(r["instruction_ref"] for r in book if r["id"] in ids)
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        pane.filter_bar.chip.click()
    wait_idle(qtbot, pane)
    assert not pane.filter_bar.chip.isVisible()
    assert pane.model.rowCount() == len(book)
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        pane.drill_down({"status": "FAILED", "reason": "LACK", "title": "LACK fails"})
    wait_idle(qtbot, pane)
    assert all_refs(qtbot, pane) == expected(
        book, lambda r: r["status"] is S.FAILED and r["reason_code"] == "LACK"
    )


def test_claim_with_the_keyboard_then_the_other_clerk_is_refused(qtbot, open_pane, db, users, book) -> None:
    pane = open_pane(users["clerk1"])
    row = next(i for i, ref in enumerate(all_refs(qtbot, pane)) if _row(book, ref)["owner_id"] is None)
    pane.select_row(row)
    item = pane.model.item_id(row)
    pane.table.setFocus()
    with qtbot.waitSignal(pane.action_done, timeout=10_000) as done:
        qtbot.keyClick(pane.table, "C", _ctrl_shift())
    assert done.args[0].done == [item]
    with db.read() as s:
        assert s.scalar(select(SettlementInstruction.owner_id).where(SettlementInstruction.id == item)) == (
            users["clerk1"].user_id
        )
    other = open_pane(users["clerk2"])
    other.select_row(other.model.row_of_item(item) or 0)
    assert other.current_instruction_id() == item
    with qtbot.waitSignal(other.action_done, timeout=10_000) as refused:
        other.act("claim")
    assert refused.args[0].refused == {item: "it is claimed by clerk1"}


def test_bulk_cancel_asks_for_confirmation_and_a_reason(qtbot, open_pane, db, users, book) -> None:
    pane = open_pane(users["supervisor"])
    for r in range(0, 14):
        pane.select_row(r, extend=r > 0)
    ids = pane.selected_ids()
    assert len(ids) == 14
    with qtbot.waitSignal(pane.dialog_opened, timeout=10_000) as opened:
        pane.act("cancel")
    dialog: BulkActionDialog = opened.args[0]
    qtbot.waitUntil(lambda: dialog.preview is not None, timeout=10_000)
    by_id = {r["id"]: r for r in book}
    can = [i for i in ids if by_id[i]["status"] not in (S.SETTLED, S.CANCELLED, S.PARTIALLY_SETTLED)]
    assert dialog.preview.applicable == len(can)
    assert not dialog.ok.isEnabled()  # a cancel needs a reason
    dialog.reason.setText("front office cancelled the trades")
    assert dialog.ok.isEnabled() and dialog.ok.text() == f"Cancel {len(can)}"
    with qtbot.waitSignal(pane.action_done, timeout=10_000) as done:
        dialog.ok.click()
    result: BulkResult = done.args[0]
    assert sorted(result.done) == sorted(can)
    with db.read() as s:
        statuses = dict(
            s.execute(
                select(SettlementInstruction.id, SettlementInstruction.status).where(
                    SettlementInstruction.id.in_(ids)
                )
            ).all()
        )
    assert all(statuses[i] is S.CANCELLED for i in can)
    assert all(statuses[i] == by_id[i]["status"] for i in set(ids) - set(can))


def test_escalate_from_the_dialog_writes_the_comment(qtbot, open_pane, db, users, book) -> None:
    pane = open_pane(users["clerk1"], view="My queue")
    pane.select_row(0)
    item = pane.current_instruction_id()
    with qtbot.waitSignal(pane.dialog_opened, timeout=10_000) as opened:
        pane.act("escalate")
    dialog: BulkActionDialog = opened.args[0]
    qtbot.waitUntil(lambda: dialog.preview is not None, timeout=10_000)
    dialog.reason.setText("counterparty does not answer")
    with qtbot.waitSignal(pane.action_done, timeout=10_000):
        dialog.ok.click()
    with db.read() as s:
        body = s.scalar(select(Comment.body).where(Comment.item_id == item))
    assert body == "Escalated: counterparty does not answer"


def test_auditor_sees_no_action(qtbot, open_pane, users, book) -> None:
    pane = open_pane(users["auditor"])
    assert not any(b.isVisible() for b in pane.buttons.values())
    pane.select_row(0)
    pane.act("cancel")
    assert pane.dialog is None


def test_live_refresh_keeps_the_selection(qtbot, open_pane, db, users, book) -> None:
    actor = users["clerk1"]
    pane = open_pane(actor)
    pane.table.verticalScrollBar().setValue(60)
    wait_idle(qtbot, pane)
    row = pane.table.visible_rows()[0] + 2
    qtbot.waitUntil(lambda: pane.model.is_row_loaded(row), timeout=10_000)
    pane.select_row(row)
    picked = pane.current_instruction_id()
    top_id = pane.model.item_id(pane.table.visible_rows()[0])
    # Another workstation moves three instructions that sort above ours to the far future, and says so.
    whole = all_refs(qtbot, pane)
    moved = [_row(book, ref)["id"] for ref in whole[:3]]
    with db.write() as s:
        s.execute(
            update(SettlementInstruction)
            .where(SettlementInstruction.id.in_(moved))
            .values(intended_settlement_date=dt.date(2031, 1, 1))
        )
        audit.publish(s, actor, "settlement_instructions", None, ChangeAction.BULK)
    with qtbot.waitSignal(pane.refreshed, timeout=10_000):
        pane.on_changed(["settlement_instructions"])
    wait_idle(qtbot, pane)
    assert pane.current_instruction_id() == picked
    assert pane.selected_ids() == [picked]
    assert pane.model.item_id(pane.table.visible_rows()[0]) == top_id


def test_detail_shows_the_instruction_and_its_history(qtbot, open_pane, users, book) -> None:
    pane = open_pane(users["clerk1"])
    pane.select_row(3)
    item = pane.current_instruction_id()
    with qtbot.waitSignal(pane.detail_shown, timeout=10_000) as shown:
        qtbot.keyClick(pane.table, "\r")
    assert shown.args[0] == item
    ref = pane.model.row_values(3)[COL["instruction_ref"]]  # type: ignore[index]
    assert pane.detail.values["instruction_ref"].text().startswith(ref)
    # A long reason wraps and shows in full even in a short panel (the fields scroll rather than squeeze).
    reason = pane.detail.values["reason"]
    reason.setText("LACK — Lack of securities: the delivering party does not hold enough securities; " * 3)
    pane.resize(1400, 520)
    qtbot.waitUntil(lambda: reason.width() > 0 and reason.height() >= reason.heightForWidth(reason.width()))
    assert (
        reason.heightForWidth(reason.width()) > 2 * reason.fontMetrics().height()
    )  # several lines, all shown
    with qtbot.waitSignal(pane.action_done, timeout=10_000):
        pane.act("claim")
    qtbot.waitUntil(lambda: any("claim" in r[2] for r in pane.detail.tab_rows("history")), timeout=10_000)


def test_cutoff_strip_counts_down_from_the_clock_alone(qtbot) -> None:
    now = [dt.datetime(2026, 11, 20, 14, 30, tzinfo=dt.UTC)]
    strip = CutoffStrip(clock=lambda: now[0])
    qtbot.addWidget(strip)
    at = dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC)
    strip.set_cutoffs([Cutoff("XETR", "Xetra", "Europe/Berlin", dt.time(16), AS_OF, at, 12, 3)])
    assert strip.text_of("XETR") == "XETR 00:30:00 · 12 due"
    assert strip.labels["XETR"].property("tone") == "warn"
    now[0] += dt.timedelta(minutes=5, seconds=1)
    strip.tick()
    assert strip.text_of("XETR") == "XETR 00:24:59 · 12 due"
    assert strip.labels["XETR"].property("tone") == "bad"
    now[0] = at + dt.timedelta(seconds=1)
    with qtbot.waitSignal(strip.expired, timeout=2000):
        strip.tick()
    assert strip.text_of("XETR") == "XETR passed · 12 due"


def _row(book: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    return next(r for r in book if r["instruction_ref"] == ref)


def _ctrl_shift() -> Any:
    return Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier


class _Ctx:
    """A task's context as a worker sees it (TaskContext's contract): cancelled or not."""

    def __init__(self, cancelled: bool) -> None:
        self.cancelled = cancelled

    def check(self) -> None:
        if self.cancelled:
            raise TaskCancelled()

    def on_cancel(self, callback: Any) -> None:
        if self.cancelled:  # as TaskContext: at once when the task is cancelled already
            callback()


def test_totals_task_stops_once_cancelled(db, users, book) -> None:
    from app.services.settlement import queue
    from app.services.settlement.queue import QueueFilter
    from app.views.panes.settlement_queue import SettlementQueuePane
    from app.views.panes.windowed import add_up

    actor = users["clerk1"]
    want = queue.totals(db, actor, QueueFilter())
    assert add_up(_Ctx(False), SettlementQueuePane.totals_service, db, actor, QueueFilter()) == want
    # Reported as a cancel (not a failure the status bar would show).
    with pytest.raises(TaskCancelled):
        add_up(_Ctx(True), SettlementQueuePane.totals_service, db, actor, QueueFilter())
