"""The monitor's stored read against a fresh evaluation, on both backends: the same counts per SLA and state, the
same items behind each count (in the same order), the same attainment and workload, at the moment of the recorded
evaluation and later (states by the clock, nothing re-evaluated); owners and deadlines that change without a state
change are kept in step; the per-day outcomes equal the GROUP BY over the events."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text, update

from app.models import Break, SettlementInstruction, SlaDefinition, Trade
from app.models.enums import BreakStatus, InstructionStatus, TradeStatus
from app.models.sla import SlaItemState
from app.services.sla import kpis, monitor, rules
from app.services.sla.evaluate import Evaluation, evaluate_all

from .test_sla_support import SlaBook, utc

D = dt.date
AT = utc(2026, 11, 18, 20, 30)  # Wednesday: 21:00 New York is 02:00 UTC on the 19th
STATES = ("ON_TRACK", "AT_RISK", "BREACHED")


@pytest.fixture
def book(db, users) -> SlaBook:
    rules.ensure_default_slas(db, users["supervisor"])
    return SlaBook(db)


def _fill(book: SlaBook, users) -> dict[str, int]:
    """Items of every kind, some owned, with deadlines behind, near and ahead of AT; some closed."""
    c1, c2 = users["clerk1"].user_id, users["clerk2"].user_id
    ids = {}
    for n, td in enumerate((D(2026, 11, 16), D(2026, 11, 17), D(2026, 11, 18), D(2026, 11, 19))):
        ids[f"t{n}"] = book.trade(
            trade_date=td, settlement_date=td + dt.timedelta(days=1), owner_id=(c1, c2, None, c1)[n]
        )
    ids["repair"] = book.trade(
        trade_date=D(2026, 11, 18),
        status=TradeStatus.REPAIR,
        created_at=AT - dt.timedelta(hours=3, minutes=30),
    )
    ids["affirmed"] = book.trade(
        trade_date=D(2026, 11, 17), status=TradeStatus.AFFIRMED, affirmed_at=utc(2026, 11, 17, 20)
    )
    for n, isd in enumerate((D(2026, 11, 17), D(2026, 11, 18), D(2026, 11, 20))):
        ids[f"i{n}"] = book.instruction(isd=isd, owner_id=c2 if n else None)
    ids["failed"] = book.instruction(isd=D(2026, 11, 16), status=InstructionStatus.FAILED, owner_id=c1)
    for n, opened in enumerate((utc(2026, 11, 10, 9), utc(2026, 11, 17, 9), utc(2026, 11, 18, 19))):
        ids[f"b{n}"] = book.brk(
            opened_at=opened, owner_id=(c1, None, c2)[n], category=("CASH", None, None)[n]
        )
    ids["c0"] = book.correction(maker_id=c1, created_at=AT - dt.timedelta(hours=7))
    return ids


def _assert_due_counts_kept(db) -> None:
    """sla_due_counts is exactly the stored states counted per SLA, deadline and owner."""
    with db.read() as s:
        kept = s.execute(
            text("SELECT sla_id, due_s, owner_key, items FROM sla_due_counts ORDER BY 1, 2, 3")
        ).all()
        counted = s.execute(
            text(
                "SELECT sla_id, due_s, COALESCE(owner_id, -1) AS o, COUNT(*) FROM sla_item_states "
                "GROUP BY sla_id, due_s, COALESCE(owner_id, -1) ORDER BY 1, 2, 3"
            )
        ).all()
        deadlines = s.execute(select(SlaItemState.due_at, SlaItemState.due_s)).all()
    assert [tuple(r) for r in kept] == [tuple(r) for r in counted]
    assert kept
    assert all(int(at.timestamp()) == secs for at, secs in deadlines)  # the integer deadline is the timestamp


def _assert_same(db, actor, ev: Evaluation, at: dt.datetime) -> kpis.Dashboard:
    """The stored read at ``at`` shows exactly what the fresh evaluation ``ev`` (at ``at``) finds."""
    _assert_due_counts_kept(db)
    d, _slow = monitor.read_dashboard(db, actor, at=at, zone="Europe/London", verify_audit=False)
    fresh = kpis.dashboard(db, actor, ev, zone="Europe/London", verify_audit=False)
    assert [t.code for t in d.tiles] == [r.sla.code for r in ev.results]
    for tile, r, want in zip(d.tiles, ev.results, fresh.tiles, strict=True):
        assert tile.counts == r.counts(), tile.code
        assert tile.next_due == want.next_due, tile.code
        assert (tile.attainment_today, tile.attainment_window, tile.trend) == (
            want.attainment_today,
            want.attainment_window,
            want.trend,
        ), tile.code
        for state in STATES:
            found = monitor.tile_items(db, actor, tile.sla_id, state, at)
            assert found.ids == r.ids(state), (tile.code, state)
            assert found.pane_id == tile.pane_id
        every = monitor.tile_items(db, actor, tile.sla_id, "", at).ids
        assert every == [i for st in ("BREACHED", "AT_RISK", "ON_TRACK") for i in r.ids(st)], tile.code
    assert d.headline()["open_items"] == ev.items
    assert d.workload is not None and fresh.workload is not None
    mine = d.workload.sort_values("owner_id").reset_index(drop=True)
    theirs = fresh.workload.sort_values("owner_id").reset_index(drop=True)
    assert mine.to_dict("records") == theirs.to_dict("records")
    for owner in theirs["owner_id"]:
        want = kpis.workload_items(ev, int(owner))
        got = monitor.owner_items(db, actor, int(owner), at)
        assert (got.pane_id, got.ids) == want if want else got is None
    assert [(h.check, h.value) for h in d.health if h.check == "Transaction reports on time"] == [
        (h.check, h.value) for h in fresh.health if h.check == "Transaction reports on time"
    ]
    return d


def test_stored_read_equals_a_fresh_evaluation(db, users, book) -> None:
    sup = users["supervisor"]
    _fill(book, users)
    recorded = evaluate_all(db, sup, at=AT, record=True)
    assert recorded.items > 10
    d = _assert_same(db, sup, recorded, AT)
    assert {st for t in d.tiles for st, n in t.counts.items() if n} == set(STATES)  # every state is exercised
    assert d.states_as_of == AT

    # Later, nothing re-recorded: the stored deadlines give the states of the moment (the repair went past its
    # deadline, the instructions due 18 Nov went at risk and then breached).
    for later in (AT + dt.timedelta(minutes=40), AT + dt.timedelta(hours=9)):
        fresh = evaluate_all(db, sup, at=later, record=False)
        d = _assert_same(db, sup, fresh, later)
        assert d.states_as_of == AT  # the screen says when the items were last recorded


def test_owner_and_deadline_changes_are_stored_without_events(db, users, book) -> None:
    sup, c1 = users["supervisor"], users["clerk1"]
    ids = _fill(book, users)
    evaluate_all(db, sup, at=AT, record=True)
    # The unowned break is claimed, an instruction moves a day, and the affirmation rule's cut-off is edited:
    # none of them changes a state at AT, all of them change what the monitor must show.
    book.update(Break, ids["b1"], owner_id=c1.user_id, status=BreakStatus.ASSIGNED)
    book.update(SettlementInstruction, ids["i2"], intended_settlement_date=D(2026, 11, 23))
    with db.write() as s:
        rule = s.query(SlaDefinition).filter_by(code="AFFIRM_SAME_DAY").one().rule
        s.execute(
            update(SlaDefinition)
            .where(SlaDefinition.code == "AFFIRM_SAME_DAY")
            .values(rule={**rule, "cutoff": "22:00"})
        )
    again = evaluate_all(db, sup, at=AT + dt.timedelta(minutes=1), record=True)
    _assert_same(db, sup, again, AT + dt.timedelta(minutes=1))
    assert monitor.owner_items(db, sup, c1.user_id, AT + dt.timedelta(days=30)) is not None


def test_daily_outcomes_equal_the_events(db, users, book) -> None:
    sup = users["supervisor"]
    ids = _fill(book, users)
    evaluate_all(db, sup, at=AT, record=True)
    # Items close (one on time, one late) and more deadlines pass over two more recorded evaluations.
    book.update(Trade, ids["t2"], affirmed_at=utc(2026, 11, 19, 1), status=TradeStatus.AFFIRMED)
    book.update(Trade, ids["t1"], affirmed_at=utc(2026, 11, 19, 1), status=TradeStatus.AFFIRMED)
    book.update(Break, ids["b2"], status=BreakStatus.RESOLVED, resolved_at=utc(2026, 11, 19, 1, 30))
    evaluate_all(db, sup, at=utc(2026, 11, 19, 2, 30), record=True)
    evaluate_all(db, sup, at=utc(2026, 11, 21, 9), record=True)
    lo, hi = D(2026, 9, 1), D(2026, 12, 31)
    with db.read() as s:
        stored = monitor.stored_outcomes(s, lo, hi)
        counted = kpis.outcomes(s, lo, hi)
    assert stored == counted
    _assert_due_counts_kept(db)
    assert sum(m for days in stored.values() for m, _ in days.values()) >= 2  # MET outcomes were recorded
    assert sum(b for days in stored.values() for _, b in days.values()) >= 3  # and BREACHED ones


def test_slow_kpis_are_the_dashboards_and_say_when(db, users, book) -> None:
    sup = users["supervisor"]
    _fill(book, users)
    ev = evaluate_all(db, sup, at=AT, record=True)
    slow = monitor.slow_kpis(db, sup, at=AT, zone="Europe/London", verify_audit=True)
    d, used = monitor.read_dashboard(
        db, sup, at=AT + dt.timedelta(minutes=2), zone="Europe/London", slow=slow
    )
    assert used is slow and d.kpis_as_of == AT  # cached parts reused, with the time they were measured
    fresh = kpis.dashboard(db, sup, ev, zone="Europe/London", verify_audit=True)
    for part in ("settlement", "stp", "affirmation", "throughput"):
        assert getattr(d, part).equals(getattr(fresh, part)), part
    assert [(h.area, h.check) for h in d.health] == [(h.area, h.check) for h in fresh.health]
    cached = {h.check: h for h in d.health}
    assert cached["Audit chain intact"].as_of == AT and cached["Audit chain intact"].value == "intact"
    assert cached["Database connection"].as_of == d.at  # measured live
    # Another day: the cached parts no longer fit and are measured again.
    d2, again = monitor.read_dashboard(db, sup, at=AT + dt.timedelta(days=1), zone="Europe/London", slow=slow)
    assert again is not slow and d2.kpis_as_of == AT + dt.timedelta(days=1)
