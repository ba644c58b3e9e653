"""The dashboard's KPIs on a small book whose answers are counted by hand, and the alerts each user gets."""

from __future__ import annotations

import datetime as dt

import pytest

from app.models import SettlementInstruction, TradeException
from app.models.enums import BreakStatus, CorrectionStatus, InstructionStatus, TradeStatus
from app.services.sla import alerts, kpis, rules
from app.services.sla.evaluate import evaluate_all

from .test_sla_support import SlaBook, utc

D = dt.date
AT = utc(2026, 11, 20, 15)  # Friday afternoon in London


@pytest.fixture
def book(db, users) -> SlaBook:
    rules.ensure_default_slas(db, users["supervisor"])
    return SlaBook(db)


def test_settlement_stp_ageing_throughput_affirmation(db, users, book) -> None:
    # Settlement: 18 Nov: 3 due, 2 on time, 1 late; 19 Nov: 1 due, failed.
    for asd in (D(2026, 11, 18), D(2026, 11, 18), D(2026, 11, 19)):
        i = book.instruction(isd=D(2026, 11, 18), status=InstructionStatus.SETTLED)
        book.update(
            SettlementInstruction, i, actual_settlement_date=asd, instructed_at=utc(2026, 11, 20, 9, 10)
        )
    book.instruction(isd=D(2026, 11, 19), status=InstructionStatus.FAILED)
    book.instruction(isd=D(2026, 11, 19), status=InstructionStatus.CANCELLED)
    # STP: 19 Nov: 4 trades, one needed repair; affirmation: 2 affirmed in time, 1 late, 1 not at all.
    t1 = book.trade(
        trade_date=D(2026, 11, 19),
        affirmed_at=utc(2026, 11, 19, 22),
        status=TradeStatus.AFFIRMED,
        created_at=utc(2026, 11, 20, 9, 5),
    )
    book.trade(
        trade_date=D(2026, 11, 19),
        affirmed_at=utc(2026, 11, 20, 1, 59),
        status=TradeStatus.AFFIRMED,
        created_at=utc(2026, 11, 20, 9, 30),
    )
    late = book.trade(
        trade_date=D(2026, 11, 19), affirmed_at=utc(2026, 11, 20, 3), status=TradeStatus.AFFIRMED
    )
    missing = book.trade(trade_date=D(2026, 11, 19), status=TradeStatus.CONFIRMED)
    with db.write() as s:
        s.add(TradeException(trade_id=missing, code="PRICE_TOLERANCE", field="price", message="x"))
    # Breaks opened 0, 1 and 7 London business days ago; one resolved in the 14:00 hour.
    b0 = book.brk(opened_at=utc(2026, 11, 20, 9))
    b1 = book.brk(opened_at=utc(2026, 11, 19, 9))
    b7 = book.brk(opened_at=utc(2026, 11, 11, 9))
    book.brk(opened_at=utc(2026, 11, 18, 9), status=BreakStatus.RESOLVED)
    from app.models import Break

    resolved = book.brk(opened_at=utc(2026, 11, 18, 9))
    book.update(Break, resolved, status=BreakStatus.RESOLVED, resolved_at=utc(2026, 11, 20, 14, 20))

    ev = evaluate_all(db, users["supervisor"], at=AT)
    d = kpis.dashboard(db, users["supervisor"], ev, zone="Europe/London")
    settle = d.settlement.set_index("day")
    assert settle.loc[D(2026, 11, 18), "due"] == 3 and settle.loc[D(2026, 11, 18), "failed"] == 1
    assert settle.loc[D(2026, 11, 19), "fail_rate"] == pytest.approx(100.0)
    assert D(2026, 11, 20) not in settle.index  # today is not over
    stp = d.stp.set_index("day")
    assert stp.loc[D(2026, 11, 19), "trades"] == 4 and stp.loc[D(2026, 11, 19), "stp"] == 3
    ages = {label: (n, ids) for label, n, ids in d.ageing}
    assert ages["0 d"] == (1, [b0]) and ages["1 d"] == (1, [b1]) and ages["6–10 d"] == (1, [b7])
    tp = d.throughput.set_index("hour")
    nine = int(utc(2026, 11, 20, 9).timestamp())
    assert tp.loc[nine, "trades"] == 2 and tp.loc[nine, "instructions"] == 3
    assert tp.loc[int(utc(2026, 11, 20, 14).timestamp()), "breaks"] == 1
    af = d.affirmation.set_index("day")
    row = af.loc[D(2026, 11, 19)]
    assert (row["trades"], row["on_time"], row["late"], row["missing"]) == (4, 2, 1, 1)
    assert row["rate"] == pytest.approx(50.0)
    # Chart points drill to the exact items.
    assert kpis.point_items(db, users["clerk1"], "affirmation", D(2026, 11, 19)).ids == sorted(
        [late, missing]
    )
    assert kpis.point_items(db, users["clerk1"], "stp", D(2026, 11, 19)).ids == [missing]
    fails = kpis.point_items(db, users["clerk1"], "settlement", D(2026, 11, 18))
    assert fails.pane_id == "settlement_queue" and len(fails.ids) == 1
    hour = kpis.point_items(db, users["clerk1"], "throughput", ("trades", nine))
    assert hour.pane_id == "trade_blotter" and t1 in hour.ids and len(hour.ids) == 2
    h = d.headline()
    assert h["open_breaks"] == 3 and h["settled_on_time_pct"] == pytest.approx(50.0)


def test_attainment_workload_and_health(db, users, book) -> None:
    clerk, sup = users["clerk1"], users["supervisor"]
    # Two trades due 19 Nov (affirmation): one met, one breached; a breached one owned by the clerk.
    book.trade(trade_date=D(2026, 11, 19), affirmed_at=utc(2026, 11, 19, 20), status=TradeStatus.AFFIRMED)
    mine = book.trade(trade_date=D(2026, 11, 19), owner_id=clerk.user_id)
    ev = evaluate_all(db, sup, at=AT)
    d = kpis.dashboard(db, sup, ev, zone="Europe/London", day=D(2026, 11, 19))
    tile = d.tile("AFFIRM_SAME_DAY")
    assert tile.attainment_today == pytest.approx(50.0) and tile.attainment_window == pytest.approx(50.0)
    assert tile.counts == {"ON_TRACK": 0, "AT_RISK": 0, "BREACHED": 1} and tile.ids["BREACHED"] == [mine]
    assert tile.pane_id == "trade_blotter"
    assert kpis.point_items(db, clerk, "sla_trend", (tile.sla_id, D(2026, 11, 19))).ids == [mine]
    work = d.workload.set_index("username")
    assert work.loc["clerk1", "BREACHED"] >= 1
    assert kpis.workload_items(ev, clerk.user_id)[1][0] == mine
    # Clerks do not get the per-owner view.
    assert kpis.dashboard(db, clerk, ev).workload is None
    assert d.health_item("Audit chain intact").status == "ok"
    assert d.health_item("Corrections approved by a second person").value == "none approved"
    assert {h.area for h in d.health} == {
        "Accuracy",
        "Timeliness",
        "Controls",
        "Compliance",
        "Resilience",
        "Integration",
    }
    assert d.health_item("Database connection").status in ("ok", "warn")


def test_second_person_approval_share(db, users, book) -> None:
    from app.models import CorrectionApproval
    from app.models.enums import Decision

    maker, checker = users["clerk1"], users["supervisor"]
    c1 = book.correction(maker_id=maker.user_id, created_at=utc(2026, 11, 20, 9))
    book.correction(maker_id=maker.user_id, created_at=utc(2026, 11, 20, 9))
    from app.models import Correction

    with db.write() as s:
        s.add(
            CorrectionApproval(
                correction_id=c1,
                approver_id=checker.user_id,
                maker_id=maker.user_id,
                decision=Decision.APPROVE,
            )
        )
    # The approval first: the database's four-eyes trigger refuses APPROVED without one.
    book.update(Correction, c1, status=CorrectionStatus.APPROVED, decided_at=utc(2026, 11, 20, 10))
    ev = evaluate_all(db, checker, at=AT, record=False)
    d = kpis.dashboard(db, checker, ev, zone="Europe/London", verify_audit=False)
    assert d.health_item("Corrections approved by a second person").value == "100.0%"
    assert d.tile("CORRECTION_APPROVE").counts["BREACHED"] == 1  # the other one is 6 hours old


def test_alerts_go_to_the_owner_or_everyone_and_follow_the_choice(db, users, book) -> None:
    c1, c2 = users["clerk1"], users["clerk2"]
    start1 = alerts.latest_event_id(db, c1)
    mine = book.trade(trade_date=D(2026, 11, 18), owner_id=c1.user_id)
    theirs = book.trade(trade_date=D(2026, 11, 18), owner_id=c2.user_id)
    nobody = book.trade(trade_date=D(2026, 11, 18))
    evaluate_all(db, c1, at=AT)
    got1 = {(a.item_id, a.sla_code) for a in alerts.new_alerts(db, c1, start1)}
    assert (mine, "AFFIRM_SAME_DAY") in got1 and (nobody, "AFFIRM_SAME_DAY") in got1
    assert all(i != theirs for i, _ in got1)
    got2 = {a.item_id for a in alerts.new_alerts(db, c2, start1)}
    assert theirs in got2 and nobody in got2 and mine not in got2
    # Clerk 2 wants only the regulatory report SLA.
    alerts.set_alert_codes(db, c2, ["REG_REPORT_T1"])
    assert {a.sla_code for a in alerts.new_alerts(db, c2, start1)} == {"REG_REPORT_T1"}
    with pytest.raises(Exception, match="Unknown SLA"):
        alerts.set_alert_codes(db, c2, ["NOPE"])
    alerts.set_alert_codes(db, c2, None)
    assert alerts.alert_codes(db, c2) is None
    # Nothing new since the newest event.
    assert alerts.new_alerts(db, c1, alerts.latest_event_id(db, c1)) == []
    text = alerts.new_alerts(db, c1, start1)[0].text("Europe/London")
    assert "trade #" in text and ("breached" in text or "at risk" in text)
