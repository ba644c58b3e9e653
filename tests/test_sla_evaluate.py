"""Recorded evaluations on both backends: events only where a state changed, the current states kept in step,
closed items given their final event, items that left the scope forgotten, the change feed told once."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from app.models import ChangeFeedEntry, SettlementInstruction, SlaEvent, Trade
from app.models.enums import InstructionStatus, SlaState, TradeStatus
from app.models.sla import SlaItemState
from app.services.sla import rules
from app.services.sla.evaluate import evaluate_all, evaluate_if_stale

from .test_sla_support import SlaBook, utc

D = dt.date


@pytest.fixture
def book(db, users) -> SlaBook:
    rules.ensure_default_slas(db, users["supervisor"])
    return SlaBook(db)


def events(db, item_id: int | None = None) -> list[tuple[int, str, dt.datetime]]:
    with db.read() as s:
        q = select(SlaEvent.item_id, SlaEvent.state, SlaEvent.occurred_at).order_by(SlaEvent.id)
        if item_id is not None:
            q = q.where(SlaEvent.item_id == item_id)
        return [(i, SlaState(st).value, t) for i, st, t in s.execute(q)]


def states(db) -> dict[int, str]:
    with db.read() as s:
        return {
            i: SlaState(st).value for i, st in s.execute(select(SlaItemState.item_id, SlaItemState.state))
        }


def test_events_only_where_the_state_changed(db, users, book) -> None:
    a = users["clerk1"]
    code = ["SETTLE_ON_ISD"]
    # Due at the end of 18 Nov New York time = 19 Nov 05:00 UTC; warning 360 minutes.
    ids = [book.instruction(isd=D(2026, 11, 18)) for _ in range(3)]
    later = book.instruction(isd=D(2026, 11, 20))

    first = evaluate_all(db, a, at=utc(2026, 11, 18, 12), codes=code)
    assert first.recorded and first.events_written == 4
    assert states(db) == {i: "ON_TRACK" for i in [*ids, later]}

    again = evaluate_all(db, a, at=utc(2026, 11, 18, 12, 5), codes=code)
    assert again.events_written == 0  # nothing changed: nothing written
    assert len(events(db)) == 4

    at_risk = evaluate_all(db, a, at=utc(2026, 11, 18, 23, 30), codes=code)
    assert (
        at_risk.events_written == 3
    )  # the three due today entered their warning window; the later one did not
    assert events(db, ids[0])[-1] == (ids[0], "AT_RISK", utc(2026, 11, 18, 23))  # dated at the window's start
    assert at_risk.result("SETTLE_ON_ISD").counts() == {"ON_TRACK": 1, "AT_RISK": 3, "BREACHED": 0}

    # One settles on time, one is cancelled; the third breaches.
    book.update(
        SettlementInstruction,
        ids[0],
        status=InstructionStatus.SETTLED,
        actual_settlement_date=D(2026, 11, 18),
        updated_at=utc(2026, 11, 19, 1),
    )
    book.update(
        SettlementInstruction, ids[1], status=InstructionStatus.CANCELLED, updated_at=utc(2026, 11, 19, 1)
    )
    after = evaluate_all(db, a, at=utc(2026, 11, 19, 6), codes=code)
    assert after.events_written == 2
    assert events(db, ids[0])[-1] == (ids[0], "MET", utc(2026, 11, 19, 1))
    assert events(db, ids[1])[-1][1] == "AT_RISK"  # a cancelled item just leaves, without an event
    assert events(db, ids[2])[-1] == (ids[2], "BREACHED", utc(2026, 11, 19, 5))
    assert states(db) == {ids[2]: "BREACHED", later: "ON_TRACK"}
    r = after.result("SETTLE_ON_ISD")
    assert (r.closed_met, r.closed_breached) == (1, 0)

    # Settling late after the breach: no new event (it was already BREACHED), and it leaves the open states.
    book.update(
        SettlementInstruction,
        ids[2],
        status=InstructionStatus.SETTLED,
        actual_settlement_date=D(2026, 11, 19),
        updated_at=utc(2026, 11, 19, 7),
    )
    last = evaluate_all(db, a, at=utc(2026, 11, 19, 8), codes=code)
    assert last.events_written == 0 and last.result("SETTLE_ON_ISD").closed_breached == 1
    assert states(db) == {later: "ON_TRACK"}


def test_without_record_nothing_is_written(db, users, book) -> None:
    book.instruction(isd=D(2026, 11, 18))
    ev = evaluate_all(db, users["auditor"], at=utc(2026, 11, 19, 12), record=False)
    assert not ev.recorded and ev.events_written == 0
    assert ev.result("SETTLE_ON_ISD").counts()["BREACHED"] == 1
    assert events(db) == [] and states(db) == {}


def test_first_evaluation_backfills_items_closed_in_the_last_30_days(db, users, book) -> None:
    a = users["clerk1"]
    on_time = book.trade(
        trade_date=D(2026, 11, 16), affirmed_at=utc(2026, 11, 16, 20), status=TradeStatus.AFFIRMED
    )
    late = book.trade(
        trade_date=D(2026, 11, 16), affirmed_at=utc(2026, 11, 17, 9), status=TradeStatus.AFFIRMED
    )
    old = book.trade(trade_date=D(2026, 9, 1), affirmed_at=utc(2026, 9, 1, 20), status=TradeStatus.AFFIRMED)
    evaluate_all(db, a, at=utc(2026, 11, 18, 12), codes=["AFFIRM_SAME_DAY"])
    assert events(db, on_time) == [(on_time, "MET", utc(2026, 11, 16, 20))]
    assert events(db, late) == [(late, "BREACHED", utc(2026, 11, 17, 9))]
    assert events(db, old) == []  # beyond the look-back


def test_evaluations_tell_the_change_feed_once_and_owner_is_kept(db, users, book) -> None:
    clerk = users["clerk1"]
    mine = book.trade(trade_date=D(2026, 11, 18), owner_id=clerk.user_id)
    with db.read() as s:
        before = s.scalar(
            select(func.count())
            .select_from(ChangeFeedEntry)
            .where(ChangeFeedEntry.entity_type == "sla_events")
        )
    ev = evaluate_all(db, clerk, at=utc(2026, 11, 19, 3))
    assert ev.events_written > 0
    with db.read() as s:
        after = s.scalar(
            select(func.count())
            .select_from(ChangeFeedEntry)
            .where(ChangeFeedEntry.entity_type == "sla_events")
        )
        owners = set(
            s.scalars(
                select(SlaEvent.owner_id).where(SlaEvent.item_id == mine, SlaEvent.item_type == "trade")
            )
        )
    assert after == before + 1
    assert owners == {clerk.user_id}


def test_evaluate_if_stale_records_at_most_once_per_interval(db, users, book) -> None:
    book.trade(trade_date=D(2026, 11, 18))
    first = evaluate_if_stale(db, users["clerk1"], max_age=dt.timedelta(minutes=5))
    assert first is not None and first.recorded
    assert evaluate_if_stale(db, users["clerk2"], max_age=dt.timedelta(minutes=5)) is None


def test_rule_edit_changes_states_on_the_next_evaluation(db, users, book) -> None:
    a = users["supervisor"]
    t = book.trade(trade_date=D(2026, 11, 18))
    evaluate_all(db, a, at=utc(2026, 11, 18, 23), codes=["AFFIRM_SAME_DAY"])
    assert states(db) == {t: "ON_TRACK"}
    info = next(s for s in rules.list_slas(db, a) if s.code == "AFFIRM_SAME_DAY")
    rules.update_sla(db, a, info.id, {**info.rule.as_dict(), "cutoff": "17:00"}, seen_version=info.version)
    evaluate_all(db, a, at=utc(2026, 11, 18, 23, 1), codes=["AFFIRM_SAME_DAY"])
    assert states(db) == {t: "BREACHED"}
    assert events(db, t)[-1] == (t, "BREACHED", utc(2026, 11, 18, 23))  # never before the last evaluation


def test_trade_leaving_repair_is_met_at_its_exceptions_clearing_time(db, users, book) -> None:
    from app.models import TradeException

    a = users["clerk1"]
    t = book.trade(trade_date=D(2026, 11, 18), status=TradeStatus.REPAIR, created_at=utc(2026, 11, 18, 9))
    with db.write() as s:
        s.add(
            TradeException(
                trade_id=t, code="ISIN_CHECK", field="isin", message="bad", raised_at=utc(2026, 11, 18, 9)
            )
        )
    evaluate_all(db, a, at=utc(2026, 11, 18, 10), codes=["REPAIR_FIX"])
    book.update(Trade, t, status=TradeStatus.VALIDATED)
    with db.write() as s:
        s.execute(TradeException.__table__.update().values(cleared_at=utc(2026, 11, 18, 11, 15)))
    evaluate_all(db, a, at=utc(2026, 11, 18, 12), codes=["REPAIR_FIX"])
    assert events(db, t) == [(t, "ON_TRACK", utc(2026, 11, 18, 10)), (t, "MET", utc(2026, 11, 18, 11, 15))]
