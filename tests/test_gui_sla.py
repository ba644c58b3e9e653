"""The SLA monitor pane with pytest-qt: tiles show the counts, every drill-down emits exactly the right ids, charts
are updated in place (same curve objects, new data), the health checklist is filled, the pane refreshes from the
stored states after its background evaluation (timer or change feed), and alerts reach the status bar, also when
the pane's evaluation is what records the change."""

from __future__ import annotations

import datetime as dt

import pytest
from PySide6.QtCore import Qt
from sqlalchemy import update

from app.models import SlaDefinition, utcnow
from app.models.enums import Role, TradeStatus
from app.services import auth
from app.services.permissions import SYSTEM
from app.services.sla import rules
from app.services.sla.evaluate import evaluate_all
from app.views.panes.base import Workspace
from app.views.panes.sla_monitors import SlaMonitorsPane
from app.views.sla.alerts import AlertWatcher
from app.views.status_bar import OpsStatusBar

from .conftest import PASSWORD
from .gui_helpers import show_pane
from .test_sla_support import SlaBook

LOAD_MS = 20_000


@pytest.fixture
def setup(sqlite_db):
    db = sqlite_db
    admin = auth.create_user(db, SYSTEM, "admin", Role.ADMIN, PASSWORD)
    users = {
        name: auth.create_user(db, admin, name, role, PASSWORD)
        for name, role in (("clerk1", Role.CLERK), ("clerk2", Role.CLERK), ("supervisor", Role.SUPERVISOR))
    }
    rules.ensure_default_slas(db, users["supervisor"])
    book = SlaBook(db)
    now = utcnow()
    ids = {
        # Repair due 4 h after capture, warning 60 min: on track, at risk, breached.
        "on_track": book.trade(
            trade_date=now.date(), status=TradeStatus.REPAIR, created_at=now - dt.timedelta(hours=1)
        ),
        "at_risk": book.trade(
            trade_date=now.date(),
            status=TradeStatus.REPAIR,
            created_at=now - dt.timedelta(hours=3, minutes=30),
        ),
        "breached": book.trade(
            trade_date=now.date(),
            status=TradeStatus.REPAIR,
            created_at=now - dt.timedelta(hours=6),
            owner_id=users["clerk1"].user_id,
        ),
        "break": book.brk(opened_at=now - dt.timedelta(minutes=5)),
    }
    return db, users, book, ids


def _settled(pane: SlaMonitorsPane) -> bool:
    """No evaluation or read under way, nothing left to read."""
    return not pane.evaluating and not pane.loading and not pane.stale


def _pane(qtbot, db, actor, tasks) -> SlaMonitorsPane:
    """The pane on screen after its first read, its first background evaluation and the read that follows."""
    pane = SlaMonitorsPane(Workspace(db=db, actor=actor, tasks=tasks))
    show_pane(qtbot, pane, (1200, 1400), pane.refreshed, pane.evaluated, timeout=LOAD_MS)
    qtbot.waitUntil(lambda: _settled(pane), timeout=LOAD_MS)
    return pane


def test_tiles_show_counts_and_drill_down_to_exact_ids(qtbot, setup, tasks) -> None:
    db, users, _book, ids = setup
    pane = _pane(qtbot, db, users["supervisor"], tasks)
    assert pane.error_label.isHidden()
    tile = pane.tiles["REPAIR_FIX"]
    assert tile.count_text("ON_TRACK") == "1 on track"
    assert tile.count_text("AT_RISK") == "1 at risk"
    assert tile.count_text("BREACHED") == "1 breached"
    assert tile.open_button.text() == "3 open"
    assert pane.tiles["BREAK_RESOLVE"].count_text("ON_TRACK") == "1 on track"
    assert set(pane.tiles) == {d.code for d in rules.DEFAULT_SLAS}

    with qtbot.waitSignal(pane.open_items, timeout=2000) as sig:
        qtbot.mouseClick(tile.count_buttons["AT_RISK"], Qt.MouseButton.LeftButton)
    assert sig.args[0] == "trade_blotter"
    assert sig.args[1]["ids"] == [ids["at_risk"]] and "at risk" in sig.args[1]["title"]

    with qtbot.waitSignal(pane.open_items, timeout=2000) as sig:
        qtbot.mouseClick(tile.open_button, Qt.MouseButton.LeftButton)
    assert sorted(sig.args[1]["ids"]) == sorted([ids["on_track"], ids["at_risk"], ids["breached"]])
    assert sig.args[1]["ids"][0] == ids["breached"]  # the worst first

    # A chart bar: breaks aged 0 business days.
    with qtbot.waitSignal(pane.open_items, timeout=2000) as sig:
        pane.charts._ageing_click(0.1, 0.5)
    assert sig.args == ["break_investigation", {"ids": [ids["break"]], "title": "Open breaks aged 0 d"}]

    # A chart point resolved by the service off the GUI thread: trades captured in an hour.
    hour = int(pane.dashboard.throughput["hour"].iloc[-1])
    with qtbot.waitSignal(pane.open_items, timeout=LOAD_MS) as sig:
        pane._chart_clicked("throughput", ("trades", hour))
    assert sig.args[0] == "trade_blotter"
    assert set(sig.args[1]["ids"]) <= {ids["on_track"], ids["at_risk"], ids["breached"]}

    # The supervisor's workload view: clerk1 holds the breached repair.
    with qtbot.waitSignal(pane.open_items, timeout=2000) as sig:
        pane.charts.point_clicked.emit("workload", users["clerk1"].user_id)
    assert sig.args[0] == "trade_blotter" and ids["breached"] in sig.args[1]["ids"]
    assert pane.health_model.rowCount() >= 8


def test_charts_update_in_place(qtbot, setup, tasks) -> None:
    db, users, book, _ids = setup
    pane = _pane(qtbot, db, users["supervisor"], tasks)
    charts = pane.charts
    curves = (
        charts.fail_curve,
        charts.stp_curve,
        charts.affirm_curve,
        charts.ageing_bars,
        pane.tiles["REPAIR_FIX"].curve,
    )
    items_before = len(charts.ageing.getPlotItem().items)
    assert sum(charts.ageing_bars.opts["height"]) == 1
    book.brk(opened_at=utcnow() - dt.timedelta(minutes=1))
    with qtbot.waitSignal(pane.refreshed, timeout=LOAD_MS):
        pane.refresh()
    assert (
        charts.fail_curve,
        charts.stp_curve,
        charts.affirm_curve,
        charts.ageing_bars,
        pane.tiles["REPAIR_FIX"].curve,
    ) == curves
    assert sum(charts.ageing_bars.opts["height"]) == 2  # new data in the same bar item
    assert len(charts.ageing.getPlotItem().items) == items_before  # nothing added to the plot
    assert pane.charts is charts


def test_clerks_do_not_see_the_workload_chart(qtbot, setup, tasks) -> None:
    db, users, _book, _ids = setup
    pane = _pane(qtbot, db, users["clerk1"], tasks)
    assert pane.charts.workload_box.isHidden()
    assert not pane.charts.settlement.isHidden()


def test_alerts_reach_the_status_bar(qtbot, setup, tasks) -> None:
    db, users, book, _ids = setup
    clerk = users["clerk1"]
    bar = OpsStatusBar()
    qtbot.addWidget(bar)
    watcher = AlertWatcher(
        db, clerk, tasks, interval_ms=100, tray=False, evaluate_max_age=dt.timedelta(hours=1)
    )
    watcher.message.connect(bar.show_message)
    watcher.start()
    qtbot.waitUntil(lambda: watcher.last_event_id is not None, timeout=LOAD_MS)
    # Something of clerk1's breaches and gets recorded (by any workstation).
    late = book.trade(
        trade_date=utcnow().date(),
        status=TradeStatus.REPAIR,
        created_at=utcnow() - dt.timedelta(hours=5),
        owner_id=clerk.user_id,
    )
    with qtbot.waitSignal(watcher.alerted, timeout=LOAD_MS) as sig:
        evaluate_all(db, users["supervisor"], record=True)
    assert any(a.item_id == late and a.state.value == "BREACHED" for a in sig.args[0])
    assert "breached" in bar.currentMessage() or "SLA alerts" in bar.currentMessage()
    # Other clerks' items never alert clerk1.
    assert all(a.owner_id in (None, clerk.user_id) for a in sig.args[0])
    watcher.stop()


def test_the_pane_reads_stored_states_and_refreshes_after_its_evaluation(qtbot, setup, tasks) -> None:
    db, users, book, ids = setup
    pane = _pane(qtbot, db, users["supervisor"], tasks)
    tile = pane.tiles["REPAIR_FIX"]
    assert tile.count_text("BREACHED") == "1 breached"
    assert pane.dashboard.states_as_of is not None and pane.evaluation is not None
    late = book.trade(
        trade_date=utcnow().date(), status=TradeStatus.REPAIR, created_at=utcnow() - dt.timedelta(hours=7)
    )
    # A refresh reads what is stored: the new trade is not evaluated yet, so it is not counted yet ...
    with qtbot.waitSignal(pane.refreshed, timeout=LOAD_MS):
        pane.refresh()
    assert tile.count_text("BREACHED") == "1 breached"
    # ... until the background evaluation records it; the pane then refreshes by itself.
    with qtbot.waitSignal(pane.evaluated, timeout=LOAD_MS):
        pane.evaluate_now()
    qtbot.waitUntil(lambda: tile.count_text("BREACHED") == "2 breached", timeout=LOAD_MS)
    with qtbot.waitSignal(pane.open_items, timeout=LOAD_MS) as sig:
        qtbot.mouseClick(tile.count_buttons["BREACHED"], Qt.MouseButton.LeftButton)
    assert sig.args[1]["ids"] == [late, ids["breached"]]  # the most overdue first

    # A change-feed event about trades schedules the evaluation itself (after a short pause for the burst).
    pane.eval_soon.setInterval(20)
    book.trade(
        trade_date=utcnow().date(), status=TradeStatus.REPAIR, created_at=utcnow() - dt.timedelta(hours=8)
    )
    with qtbot.waitSignal(pane.evaluated, timeout=LOAD_MS):
        pane.on_changed(["trades"])
    qtbot.waitUntil(lambda: tile.count_text("BREACHED") == "3 breached", timeout=LOAD_MS)
    # Every part says when it was measured.
    assert "evaluated" in pane.asof_label.text() and "measured at" in pane.charts_asof.text()
    assert all(pane.health_model.measured(r) for r in range(pane.health_model.rowCount()))


def test_the_panes_background_evaluation_raises_the_alerts(qtbot, setup, tasks) -> None:
    db, users, book, _ids = setup
    clerk = users["clerk1"]
    pane = _pane(qtbot, db, users["supervisor"], tasks)
    # The watcher only reads alerts here (its own evaluation is never stale enough to run).
    watcher = AlertWatcher(
        db, clerk, tasks, interval_ms=100, tray=False, evaluate_max_age=dt.timedelta(days=1)
    )
    watcher.start()
    qtbot.waitUntil(lambda: watcher.last_event_id is not None, timeout=LOAD_MS)
    late = book.trade(
        trade_date=utcnow().date(),
        status=TradeStatus.REPAIR,
        created_at=utcnow() - dt.timedelta(hours=5),
        owner_id=clerk.user_id,
    )
    with qtbot.waitSignal(watcher.alerted, timeout=LOAD_MS) as sig:
        pane.evaluate_now()
    assert any(a.item_id == late and a.state.value == "BREACHED" for a in sig.args[0])
    watcher.stop()


def test_the_timer_records_only_when_no_workstation_did_recently(qtbot, setup, tasks) -> None:
    db, users, _book, _ids = setup
    pane = _pane(qtbot, db, users["supervisor"], tasks)
    first = pane.evaluation
    # Just recorded (by this pane): the timer's tick only reads.
    with qtbot.waitSignal(pane.evaluated, timeout=LOAD_MS):
        pane._eval_tick()
    assert pane.evaluation is first
    # Nobody recorded for an hour (say every other workstation is closed): the tick records.
    with db.write() as s:
        s.execute(update(SlaDefinition).values(last_evaluated_at=utcnow() - dt.timedelta(hours=1)))
    with qtbot.waitSignal(pane.evaluated, timeout=LOAD_MS):
        pane._eval_tick()
    assert pane.evaluation is not first and pane.evaluation.recorded
    qtbot.waitUntil(lambda: _settled(pane), timeout=LOAD_MS)
    assert pane.dashboard.states_as_of == pane.evaluation.at
