"""The approvals inbox pane: pending corrections with before/after, approve and reject (with the maker's comment),
bulk decisions where allowed, the four-eyes refusal said in words with the buttons disabled, and drill-down.

Corrections are proposed through the corrections service on breaks written straight into the tables; decisions
are checked in the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from app.models import Break
from app.models.enums import BreakStatus, CorrectionStatus
from app.models.workflow import Correction
from app.services.db import Database
from app.services.permissions import Actor
from app.services.workflow import corrections, worklist
from app.views.panes.approvals_inbox import ApprovalsInboxPane
from app.views.panes.base import Workspace
from app.views.qt_models.approvals_model import ApprovalsModel
from app.views.tasks import TaskRunner

from .gui_helpers import show_pane
from .test_worklist import seed_breaks

sqlite_only = pytest.mark.parametrize("db", ["sqlite"], indirect=True)
PaneFactory = Callable[[Actor], ApprovalsInboxPane]


@pytest.fixture
def proposed(db: Database, users: dict[str, Actor]) -> list[int]:
    """Three force-closes and a write-off by clerk1 on their own breaks; one force-close by the supervisor."""
    book = seed_breaks(db, users, 40, today=dt.date.today())
    clerk = users["clerk1"]
    mine = [r for r in book if r["owner_id"] == clerk.user_id and r["status"] is BreakStatus.ASSIGNED]
    ids = [
        corrections.propose(
            db, clerk, "FORCE_CLOSE", "breaks", r["id"], {}, f"Timing difference {i}", seen_version=None
        )
        for i, r in enumerate(mine[:3])
    ]
    ids.append(
        corrections.propose(
            db, clerk, "WRITE_OFF", "breaks", mine[3]["id"], {}, "Rounding", seen_version=None
        )
    )
    free = next(r for r in book if r["owner_id"] is None and r["status"] is BreakStatus.OPEN)
    ids.append(
        corrections.propose(
            db, users["supervisor"], "FORCE_CLOSE", "breaks", free["id"], {}, "Mine", seen_version=None
        )
    )
    return ids


@pytest.fixture
def open_pane(qtbot: QtBot, db: Database, tasks: TaskRunner) -> PaneFactory:
    def factory(actor: Actor) -> ApprovalsInboxPane:
        pane = ApprovalsInboxPane(Workspace(db=db, actor=actor, tasks=tasks))
        return show_pane(qtbot, pane, (1300, 800), pane.refreshed)

    return factory


def status_of(db: Database, correction_id: int) -> CorrectionStatus:
    with db.read() as s:
        return s.get(Correction, correction_id).status


@sqlite_only
def test_the_model_passes_the_qt_model_tester(
    qtmodeltester: Any, db: Database, users: dict[str, Actor], proposed: list[int]
) -> None:
    model = ApprovalsModel()
    model.set_items(worklist.approvals_inbox(db, users["supervisor"]))
    qtmodeltester.check(model)
    assert model.rowCount() == len(proposed)
    model.set_items(worklist.approvals_inbox(db, users["supervisor2"]))
    qtmodeltester.check(model)


@sqlite_only
def test_approve_and_reject_from_the_inbox(
    qtbot: QtBot, db: Database, users: dict[str, Actor], proposed: list[int], open_pane: PaneFactory
) -> None:
    pane = open_pane(users["supervisor"])
    assert [i.id for i in pane.model.items()] == proposed  # oldest first
    first, second = proposed[0], proposed[1]
    pane.select_ids([first])
    panel = pane.panel
    assert panel.item is not None and panel.item.id == first
    assert panel.approve_button.isEnabled() and not panel.refusal.isVisible()
    assert panel.changes.rowCount() >= 1 and panel.changes.item(0, 1).text() == "ASSIGNED"
    assert panel.changes.item(0, 2).text() == "RESOLVED"
    with qtbot.waitSignal(pane.decided, timeout=30_000):
        panel.approve_button.click()
    assert status_of(db, first) is CorrectionStatus.APPROVED
    qtbot.waitUntil(lambda: pane.model.row_of(first) is None, timeout=10_000)  # gone from the pending list

    pane.select_ids([second])
    assert not panel.reject_button.isEnabled()  # a rejection needs a comment for the maker
    panel.comment.setText("Not timing: the custodian booked the wrong ISIN")
    assert panel.reject_button.isEnabled()
    with qtbot.waitSignal(pane.decided, timeout=30_000):
        panel.reject_button.click()
    with db.read() as s:
        c = s.get(Correction, second)
        assert c.status is CorrectionStatus.REJECTED
        assert c.decision_comment == "Not timing: the custodian booked the wrong ISIN"
        assert s.get(Break, c.item_id).status is BreakStatus.ASSIGNED  # back to the maker


@sqlite_only
def test_the_maker_sees_why_they_may_not_decide_their_own(
    qtbot: QtBot, db: Database, users: dict[str, Actor], proposed: list[int], open_pane: PaneFactory
) -> None:
    own = proposed[-1]
    pane = open_pane(users["supervisor"])
    pane.select_ids([own])
    panel = pane.panel
    assert panel.refusal.isVisible() and "You proposed" in panel.refusal.text()
    assert not panel.approve_button.isEnabled() and not panel.reject_button.isEnabled()
    with qtbot.waitSignal(pane.refused, timeout=5000) as refused:
        pane.decide([own], "APPROVE", "")  # even asked directly, the pane refuses with the rule's words
    assert "You proposed" in refused.args[0]
    assert status_of(db, own) is CorrectionStatus.PENDING
    # "Only what I may decide" hides it; another supervisor may decide it.
    with qtbot.waitSignal(pane.refreshed, timeout=10_000):
        pane.mine_to_decide.click()
    assert own not in [i.id for i in pane.model.items()]
    other = open_pane(users["supervisor2"])
    other.select_ids([own])
    assert other.panel.approve_button.isEnabled()
    clerk = open_pane(users["clerk1"])
    clerk.select_ids([proposed[0]])
    assert not clerk.panel.approve_button.isEnabled() and "supervisor" in clerk.panel.refusal.text()
    assert not clerk.bulk_approve.isVisible()


@sqlite_only
def test_bulk_approval_decides_what_the_rule_allows_and_says_what_it_left(
    qtbot: QtBot, db: Database, users: dict[str, Actor], proposed: list[int], open_pane: PaneFactory
) -> None:
    pane = open_pane(users["supervisor"])
    pane.select_ids(proposed)  # four by clerk1 and the supervisor's own
    assert pane.bulk_approve.isEnabled() and pane.bulk_approve.text() == "Approve selected (4)"
    with qtbot.waitSignal(pane.decided, timeout=60_000) as decided:
        pane.bulk_approve.click()
    assert decided.args[0].startswith("4 corrections approved.") and "You proposed" in decided.args[0]
    assert [status_of(db, c) for c in proposed] == [CorrectionStatus.APPROVED] * 4 + [
        CorrectionStatus.PENDING
    ]
    with db.read() as s:
        statuses = {s.get(Break, s.get(Correction, c).item_id).status for c in proposed[:4]}
    assert statuses == {BreakStatus.RESOLVED, BreakStatus.WRITTEN_OFF}


@sqlite_only
def test_drill_down_shows_the_named_corrections_under_a_chip(
    qtbot: QtBot, users: dict[str, Actor], proposed: list[int], open_pane: PaneFactory
) -> None:
    pane = open_pane(users["supervisor2"])
    with qtbot.waitSignal(pane.refreshed, timeout=10_000):
        pane.drill_down({"ids": proposed[1:3], "title": "SLA at risk: approvals"})
    assert pane.chip.isVisible() and [i.id for i in pane.model.items()] == proposed[1:3]
    with qtbot.waitSignal(pane.refreshed, timeout=10_000):
        pane.chip.close_button.click()
    assert [i.id for i in pane.model.items()] == proposed
