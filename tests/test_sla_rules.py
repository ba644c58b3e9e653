"""Each default SLA rule's deadline across a weekend, a market holiday and the daylight-saving changes of New York
and London; the ON_TRACK -> AT_RISK -> BREACHED transitions and MET; rule validation and supervisor editing.

Dates used (2026): DST ends in London on Sun 25 Oct and in New York on Sun 1 Nov (the week between, London is on
GMT while New York is still on EDT); it starts in New York on Sun 8 Mar and in London on Sun 29 Mar. US Thanksgiving
is Thu 26 Nov; London is closed Fri 25 and Mon 28 Dec (Boxing Day observed) and Fri 1 Jan 2027.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from app.models import AuditEntry, Trade
from app.models.enums import SlaState, TradeStatus
from app.services.errors import PermissionDenied, StaleEdit, ValidationFailed
from app.services.sla import rules
from app.services.sla.evaluate import evaluate_all
from app.services.sla.rules import SlaRule

from .test_sla_support import SlaBook, utc

D = dt.date


@pytest.fixture
def book(db, users) -> SlaBook:
    rules.ensure_default_slas(db, users["supervisor"])
    return SlaBook(db, extra_closures={"XNYS": [D(2026, 11, 11)]})


def due(db, actor, code: str, item_id: int, at: dt.datetime | None = None) -> dt.datetime:
    ev = evaluate_all(db, actor, at=at or utc(2026, 1, 1), record=False, codes=[code])
    items = ev.result(code).items
    row = items[items["item_id"] == item_id]
    assert len(row) == 1, f"item {item_id} is not watched by {code}"
    return dt.datetime.fromtimestamp(int(row["due_s"].iloc[0]), dt.UTC)


def watched(db, actor, code: str, item_id: int) -> bool:
    ev = evaluate_all(db, actor, at=utc(2026, 1, 1), record=False, codes=[code])
    return item_id in set(ev.result(code).items["item_id"])


def test_affirmation_by_2100_new_york_on_trade_date(db, users, book) -> None:
    a = users["clerk1"]
    cases = {
        D(2026, 11, 18): utc(2026, 11, 19, 2),  # plain Wednesday, EST: 21:00 ET = 02:00 UTC
        D(2026, 11, 14): utc(2026, 11, 17, 2),  # Saturday: rolls to Monday
        D(2026, 11, 26): utc(2026, 11, 28, 2),  # Thanksgiving: rolls to Friday
        D(2026, 10, 30): utc(2026, 10, 31, 1),  # before New York's DST change: EDT, 01:00 UTC
        D(2026, 11, 2): utc(2026, 11, 3, 2),  # after it: EST, 02:00 UTC
        D(2026, 10, 26): utc(2026, 10, 27, 1),  # London already on GMT, New York still EDT: New York decides
        D(2026, 3, 9): utc(2026, 3, 10, 1),  # New York on EDT from 8 Mar, London still on GMT
    }
    ids = {day: book.trade(trade_date=day) for day in cases}
    for day, expected in cases.items():
        assert due(db, a, "AFFIRM_SAME_DAY", ids[day]) == expected, day
    # Only US markets are watched; a London trade and an affirmed trade are not.
    assert not watched(db, a, "AFFIRM_SAME_DAY", book.trade(instrument="UK", trade_date=D(2026, 11, 18)))
    assert not watched(
        db, a, "AFFIRM_SAME_DAY", book.trade(trade_date=D(2026, 11, 18), affirmed_at=utc(2026, 11, 18, 20))
    )


def test_repair_and_correction_are_clock_hours_over_weekends_holidays_and_dst(db, users, book) -> None:
    a = users["clerk1"]
    created = [
        utc(2026, 11, 13, 22, 0),  # Friday night: the 4 hours run over the weekend
        utc(2026, 11, 26, 15, 0),  # Thanksgiving
        utc(2026, 12, 24, 23, 0),  # into London's Christmas
        utc(2026, 3, 8, 6, 30),  # 01:30 EST: New York springs forward at 02:00, still 4 real hours
        utc(2026, 3, 29, 0, 30),  # London springs forward at 01:00 GMT
        utc(2026, 10, 25, 0, 30),  # London falls back
    ]
    for at in created:
        t = book.trade(trade_date=at.date(), status=TradeStatus.REPAIR, created_at=at)
        c = book.correction(maker_id=users["clerk1"].user_id, created_at=at)
        assert due(db, a, "REPAIR_FIX", t) == at + dt.timedelta(hours=4)
        assert due(db, a, "CORRECTION_APPROVE", c) == at + dt.timedelta(hours=4)


def test_instruction_by_the_markets_cutoff_the_business_day_before_settlement(db, users, book) -> None:
    a = users["clerk1"]
    cases = [
        ("US", D(2026, 11, 16), utc(2026, 11, 13, 21)),  # Monday settlement: Friday 16:00 EST
        ("US", D(2026, 11, 27), utc(2026, 11, 25, 21)),  # skips Thanksgiving
        ("US", D(2026, 11, 12), utc(2026, 11, 10, 21)),  # skips the market's own extra closure (11 Nov)
        ("US", D(2026, 11, 2), utc(2026, 10, 30, 20)),  # Friday 16:00 EDT
        ("US", D(2026, 11, 3), utc(2026, 11, 2, 21)),  # Monday 16:00 EST
        ("UK", D(2026, 10, 26), utc(2026, 10, 23, 15)),  # Friday 16:00 BST
        ("UK", D(2026, 10, 27), utc(2026, 10, 26, 16)),  # Monday 16:00 GMT
        ("UK", D(2026, 12, 29), utc(2026, 12, 24, 16)),  # skips 25 and 28 Dec
        ("UK", D(2026, 11, 16), utc(2026, 11, 13, 16)),  # weekend
    ]
    for instrument, settle, expected in cases:
        t = book.trade(
            instrument=instrument, trade_date=settle - dt.timedelta(days=3), settlement_date=settle
        )
        assert due(db, a, "INSTRUCT_BY_CUTOFF", t) == expected, (instrument, settle)
    # Futures clear at the CCP: no instruction to send.
    fut = book.trade(instrument="FUT", trade_date=D(2026, 11, 13), settlement_date=D(2026, 11, 16))
    assert not watched(db, a, "INSTRUCT_BY_CUTOFF", fut)


def test_settled_by_the_end_of_the_intended_settlement_date_in_market_time(db, users, book) -> None:
    a = users["clerk1"]
    cases = [
        ("US", D(2026, 11, 18), utc(2026, 11, 19, 5)),  # midnight EST
        ("US", D(2026, 11, 14), utc(2026, 11, 17, 5)),  # Saturday: Monday's end
        ("US", D(2026, 11, 26), utc(2026, 11, 28, 5)),  # Thanksgiving: Friday's end
        ("US", D(2026, 10, 30), utc(2026, 10, 31, 4)),  # EDT
        ("US", D(2026, 11, 2), utc(2026, 11, 3, 5)),  # EST
        ("UK", D(2026, 10, 23), utc(2026, 10, 23, 23)),  # BST
        ("UK", D(2026, 10, 26), utc(2026, 10, 27, 0)),  # GMT
        ("UK", D(2026, 12, 25), utc(2026, 12, 30, 0)),  # Christmas and Boxing Day (observed) roll to the 29th
    ]
    for instrument, isd, expected in cases:
        i = book.instruction(instrument=instrument, isd=isd)
        assert due(db, a, "SETTLE_ON_ISD", i) == expected, (instrument, isd)


def test_break_resolution_business_days_by_amount_band_on_londons_calendar(db, users, book) -> None:
    a = users["clerk1"]
    cases = [
        (utc(2026, 11, 13, 10), "100", utc(2026, 11, 20, 18)),  # Friday + 5 business days
        (utc(2026, 11, 13, 10), "250000", utc(2026, 11, 17, 18)),  # 100k band: 2 days
        (
            utc(2026, 11, 13, 10),
            "-1500000",
            utc(2026, 11, 16, 18),
        ),  # 1M band (absolute amount): over the weekend
        (utc(2026, 12, 23, 10), "100", utc(2027, 1, 4, 18)),  # Christmas, Boxing Day, New Year skipped
        (utc(2026, 12, 24, 10), "2000000", utc(2026, 12, 29, 18)),
        (utc(2026, 10, 22, 10), "2000000", utc(2026, 10, 23, 17)),  # due on BST: 18:00 = 17:00 UTC
        (utc(2026, 10, 23, 10), "2000000", utc(2026, 10, 26, 18)),  # due on GMT
        (utc(2026, 10, 22, 23, 30), "2000000", utc(2026, 10, 26, 18)),  # 00:30 BST on Friday: opened Friday
        (utc(2026, 11, 26, 10), "2000000", utc(2026, 11, 27, 18)),  # Thanksgiving is a London business day
    ]
    for opened, amount, expected in cases:
        b = book.brk(opened_at=opened, amount=amount)
        assert due(db, a, "BREAK_RESOLVE", b) == expected, (opened, amount)


def test_regulatory_report_by_the_end_of_t_plus_1_london_working_day(db, users, book) -> None:
    a = users["clerk1"]
    cases = [
        ("US", D(2026, 11, 13), utc(2026, 11, 16, 23, 59)),  # weekend
        ("UK", D(2026, 12, 24), utc(2026, 12, 29, 23, 59)),  # London holidays
        ("US", D(2026, 11, 26), utc(2026, 11, 27, 23, 59)),  # US holiday is a London working day
        ("UK", D(2026, 10, 22), utc(2026, 10, 23, 22, 59)),  # BST
        ("UK", D(2026, 10, 26), utc(2026, 10, 27, 23, 59)),  # GMT
        ("US", D(2026, 10, 30), utc(2026, 11, 2, 23, 59)),  # New York's change does not matter here
    ]
    for instrument, day, expected in cases:
        t = book.trade(instrument=instrument, trade_date=day)
        assert due(db, a, "REG_REPORT_T1", t) == expected, (instrument, day)
    # Reported trades and cancelled trades are not open.
    t = book.trade(trade_date=D(2026, 11, 13))
    rules.record_reports(db, users["clerk1"], [t], reported_at=utc(2026, 11, 13, 20))
    assert not watched(db, a, "REG_REPORT_T1", t)
    assert not watched(
        db, a, "REG_REPORT_T1", book.trade(trade_date=D(2026, 11, 13), status=TradeStatus.CANCELLED)
    )


def test_states_move_on_track_at_risk_breached_and_met(db, users, book) -> None:
    a = users["clerk1"]
    # Affirmation due Thu 19 Nov 02:00 UTC, warning 120 minutes.
    late = book.trade(trade_date=D(2026, 11, 18))
    on_time = book.trade(trade_date=D(2026, 11, 18))

    def state(item: int, at: dt.datetime) -> str:
        r = evaluate_all(db, a, at=at, record=True, codes=["AFFIRM_SAME_DAY"]).result("AFFIRM_SAME_DAY")
        row = r.items[r.items["item_id"] == item]
        return "" if row.empty else ("ON_TRACK", "AT_RISK", "BREACHED")[int(row["state"].iloc[0])]

    assert state(late, utc(2026, 11, 18, 23, 59, 59)) == "ON_TRACK"
    assert state(late, utc(2026, 11, 19, 0, 0)) == "AT_RISK"  # 120 minutes before the deadline
    book.update(Trade, on_time, affirmed_at=utc(2026, 11, 19, 1, 30), status=TradeStatus.AFFIRMED)
    assert state(late, utc(2026, 11, 19, 2, 0)) == "AT_RISK"  # the deadline itself is still in time
    assert state(late, utc(2026, 11, 19, 2, 0, 1)) == "BREACHED"
    from app.models import SlaEvent

    with db.read() as s:
        history = s.execute(
            select(SlaEvent.item_id, SlaEvent.state, SlaEvent.occurred_at).order_by(SlaEvent.id)
        ).all()
    mine = [(st, when) for i, st, when in history if i == late]
    assert mine == [
        (SlaState.ON_TRACK, utc(2026, 11, 18, 23, 59, 59)),
        (SlaState.AT_RISK, utc(2026, 11, 19, 0, 0)),
        (SlaState.BREACHED, utc(2026, 11, 19, 2, 0)),  # dated at the deadline, when it really happened
    ]
    met = [(st, when) for i, st, when in history if i == on_time]
    assert met[-1] == (SlaState.MET, utc(2026, 11, 19, 1, 30))


def test_rule_validation_names_the_field(db, users) -> None:
    base = {"kind": "affirmation", "anchor": "trade_date", "cutoff": "21:00", "zone": "America/New_York"}
    assert SlaRule.from_dict(base).cutoff_minutes() == 21 * 60
    for bad, word in (
        ({**base, "cutoff": "25:00"}, "rule.cutoff"),
        ({**base, "zone": "Mars/Olympus"}, "rule.zone"),
        ({**base, "calendar": "NOPE"}, "rule.calendar"),
        ({**base, "anchor": "opened_at"}, "rule.anchor"),
        ({**base, "colour": "red"}, "colour"),
        ({**base, "kind": "teatime"}, "rule.kind"),
        ({**base, "hours": -1}, "rule.hours"),
        ({**base, "bands": [{"business_days": 1}]}, "bands"),
        ({"kind": "settlement", "anchor": "intended_settlement_date"}, "rule.cutoff"),
    ):
        with pytest.raises(ValidationFailed, match=word):
            SlaRule.from_dict(bad)


def test_supervisor_edits_a_rule_versioned_and_audited(db, users, book) -> None:
    sup = users["supervisor"]
    info = next(s for s in rules.list_slas(db, sup) if s.code == "AFFIRM_SAME_DAY")
    t = book.trade(trade_date=D(2026, 11, 18))
    assert due(db, sup, "AFFIRM_SAME_DAY", t) == utc(2026, 11, 19, 2)
    new_rule = {**info.rule.as_dict(), "cutoff": "19:30"}
    with pytest.raises(PermissionDenied):
        rules.update_sla(db, users["clerk1"], info.id, new_rule, seen_version=info.version)
    edited = rules.update_sla(db, sup, info.id, new_rule, 30, seen_version=info.version)
    assert edited.version == info.version + 1 and edited.warning_minutes == 30
    assert due(db, sup, "AFFIRM_SAME_DAY", t) == utc(2026, 11, 19, 0, 30)
    with pytest.raises(StaleEdit, match="supervisor"):
        rules.update_sla(db, users["supervisor2"], info.id, None, 45, seen_version=info.version)
    with pytest.raises(ValidationFailed, match="watches trades"):
        rules.update_sla(
            db,
            sup,
            info.id,
            {"kind": "settlement", "anchor": "intended_settlement_date", "cutoff": "24:00"},
            seen_version=edited.version,
        )
    with db.read() as s:
        entry = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "sla_definitions.edit").order_by(AuditEntry.id)
        ).all()
    assert (
        len(entry) == 1 and entry[0].after["rule"]["cutoff"] == "19:30" and entry[0].username == "supervisor"
    )
    # The defaults are created once: a second call creates nothing.
    assert rules.ensure_default_slas(db, sup) == []
