"""Every kind of correction, approved and rejected, on SQLite and PostgreSQL: amend a trade, cancel and rebook,
manual match (one-to-many), unmatch, write-off, force-close; withdrawal, stale proposals and approvals, the
approvals inbox and the before/after a supervisor reads.
"""

from __future__ import annotations

import sys
import types
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.models import AuditEntry, Break, ReconMatch, Trade, TradeVersion
from app.models.enums import BreakStatus, BreakType, CorrectionKind, CorrectionStatus, TradeStatus
from app.models.workflow import Comment, Correction
from app.services.capture import import_trades
from app.services.concurrency import versioned_update
from app.services.db import Database
from app.services.errors import InvalidTransition, PermissionDenied, StaleEdit, ValidationFailed
from app.services.workflow import breaks as wb
from app.services.workflow import corrections as wf

from .test_capture_refdata import TODAY, build_reference, line, trade_by_ref, write_csv
from .test_workflow_breaks import get_break, make_break, make_definition

AMEND, REBOOK, MATCH, UNMATCH, WRITE_OFF, CLOSE = (
    CorrectionKind.AMEND_TRADE,
    CorrectionKind.CANCEL_REBOOK,
    CorrectionKind.MANUAL_MATCH,
    CorrectionKind.UNMATCH,
    CorrectionKind.WRITE_OFF,
    CorrectionKind.FORCE_CLOSE,
)


@pytest.fixture
def trade(db: Database, users, tmp_path: Path) -> Trade:
    """A validated AAPL trade T1: 100 @ 189.25 for ACC1 with CP1."""
    build_reference(db)
    import_trades(db, users["clerk1"], write_csv(tmp_path / "t.csv", line("T1")), today=TODAY)
    t = trade_by_ref(db, "T1")
    assert t.status == TradeStatus.VALIDATED
    return t


@pytest.fixture
def definition(db: Database) -> int:
    return make_definition(db)


@pytest.fixture
def settlement_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Stands in for settlement's on_trade_changed hook and records the trades it was told about."""
    calls: list[int] = []
    module = types.ModuleType("app.services.settlement.generate")
    module.on_trade_changed = lambda session, actor, trade_id: calls.append(trade_id)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "app.services.settlement.generate", module)
    return calls


def status_of(db: Database, correction_id: int) -> CorrectionStatus:
    with db.read() as s:
        return s.get(Correction, correction_id).status


def propose_on(
    db: Database,
    trade: Trade,
    actor,
    fields: dict[str, str],
    reason: str = "x",
    *,
    seen_version: int | None = None,
    kind: CorrectionKind = AMEND,
) -> int:
    """Propose a correction of ``trade`` (an amendment unless ``kind`` says otherwise) that changes ``fields``."""
    return wf.propose(
        db, actor, kind, "trades", trade.id, {"fields": fields}, reason, seen_version=seen_version
    )


# --- AMEND_TRADE ------------------------------------------------------------------------------------------------


def test_amend_trade_approved_applies_a_new_version_and_resolves_the_break(
    db: Database, users, trade: Trade, definition: int, settlement_calls: list[int]
) -> None:
    b = make_break(db, definition, internal_ref="T1", external_ref="C1")
    cid = wf.propose(
        db,
        users["clerk1"],
        AMEND,
        "trades",
        trade.id,
        {"fields": {"quantity": "120"}, "break_ids": [b]},
        "Counterparty confirms 120 shares",
        seen_version=trade.version,
    )
    assert get_break(db, b).status == BreakStatus.PROPOSED
    view = wf.describe(db, users["supervisor"], cid)
    assert (view.kind, view.status, view.item_label, view.maker) == (
        "AMEND_TRADE",
        "PENDING",
        "trade T1",
        "clerk1",
    )
    changes = {c.field: (c.before, c.after) for c in view.changes}
    assert changes["quantity"] == ("100", "120")
    assert changes["gross_amount (derived)"] == ("18925", "22710")
    assert view.can_decide and view.required_approvals == 1
    # Nothing has changed yet.
    assert trade_by_ref(db, "T1").quantity == Decimal("100")

    assert wf.approve(db, users["supervisor"], cid, "ok") == CorrectionStatus.APPROVED
    t = trade_by_ref(db, "T1")
    assert (t.quantity, t.gross_amount, t.status, t.version, t.fo_version) == (
        Decimal("120"),
        Decimal("22710"),
        TradeStatus.VALIDATED,
        trade.version + 1,
        2,
    )
    assert t.updated_by_id == users["supervisor"].user_id
    with db.read() as s:
        v = s.scalars(
            select(TradeVersion).where(TradeVersion.trade_id == t.id, TradeVersion.fo_version == 2)
        ).one()
        amend = s.scalars(select(AuditEntry).where(AuditEntry.action == "trades.amend")).one()
    assert (v.action.value, v.source, v.source_ref, v.payload["correction"]) == (
        "AMEND",
        "CORRECTION",
        f"correction:{cid}",
        cid,
    )
    assert amend.before["quantity"] == "100" and amend.after["quantity"] == "120"
    assert settlement_calls == [t.id]
    assert get_break(db, b).status == BreakStatus.RESOLVED
    assert status_of(db, cid) == CorrectionStatus.APPROVED
    text = [line.text for line in wb.history(db, users["clerk1"], "breaks", b)]
    assert f"AMEND_TRADE correction #{cid} proposed: Counterparty confirms 120 shares" in text
    assert f"AMEND_TRADE correction #{cid} approved — “ok”" in text


def test_amend_trade_rejected_changes_nothing_and_returns_the_break(
    db: Database, users, trade: Trade, definition: int
) -> None:
    b = make_break(db, definition, internal_ref="T1", external_ref="C1")
    wb.claim_break(db, users["clerk1"], b)
    cid = wf.propose(
        db,
        users["clerk1"],
        AMEND,
        "trade",
        trade.id,
        {"fields": {"price": "189.30"}, "break_ids": [b]},
        "price per confirmation",
        seen_version=None,
    )
    wf.reject(db, users["supervisor"], cid, "The confirmation shows 189.25; check the custodian file.")
    t = trade_by_ref(db, "T1")
    assert (t.price, t.version, t.fo_version) == (Decimal("189.25"), trade.version, 1)
    brk = get_break(db, b)
    assert (brk.status, brk.owner_id) == (BreakStatus.ASSIGNED, users["clerk1"].user_id)
    assert status_of(db, cid) == CorrectionStatus.REJECTED
    view = wf.describe(db, users["clerk1"], cid)
    assert view.rejected_by == "supervisor" and "189.25" in view.decision_comment
    # The supervisor's words are on the trade and in the break's history.
    with db.read() as s:
        note = s.scalars(select(Comment).where(Comment.item_type == "trades", Comment.item_id == t.id)).one()
    assert "check the custodian file" in note.body
    texts = [line.text for line in wb.history(db, users["clerk1"], "breaks", b)]
    assert any("rejected" in x and "check the custodian file" in x for x in texts)


def test_amend_that_would_fail_validation_or_a_trade_in_repair_is_refused(
    db: Database, users, trade: Trade
) -> None:
    with pytest.raises(ValidationFailed, match="would fail validation"):
        propose_on(db, trade, users["clerk1"], {"price": "1892.50"}, "typo")
    with pytest.raises(ValidationFailed, match="cannot be corrected: status"):
        propose_on(db, trade, users["clerk1"], {"status": "SETTLED"})
    with pytest.raises(ValidationFailed, match="changes nothing"):
        propose_on(db, trade, users["clerk1"], {"quantity": "100"})
    with pytest.raises(ValidationFailed, match="needs a reason"):
        propose_on(db, trade, users["clerk1"], {"quantity": "1"}, " ")
    with db.write() as s:
        s.execute(Trade.__table__.update().where(Trade.id == trade.id).values(status=TradeStatus.REPAIR))
    with pytest.raises(InvalidTransition, match="repair queue"):
        propose_on(db, trade, users["clerk1"], {"quantity": "1"})
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Correction)) == 0


def test_a_stale_proposal_is_refused_with_who_and_when(db: Database, users, trade: Trade) -> None:
    with db.write() as s:
        versioned_update(s, users["clerk2"], Trade, trade.id, trade.version, {"order_ref": "ORD-9"})
    with pytest.raises(StaleEdit, match=r"changed by clerk2 at .*reload"):
        propose_on(db, trade, users["clerk1"], {"quantity": "120"}, seen_version=trade.version)


def test_an_approval_after_the_trade_changed_is_refused(db: Database, users, trade: Trade) -> None:
    cid = propose_on(db, trade, users["clerk1"], {"quantity": "120"})
    with db.write() as s:
        versioned_update(s, users["clerk2"], Trade, trade.id, trade.version, {"order_ref": "ORD-9"})
    with pytest.raises(StaleEdit, match="changed by clerk2"):
        wf.approve(db, users["supervisor"], cid)
    assert status_of(db, cid) == CorrectionStatus.PENDING and trade_by_ref(db, "T1").quantity == Decimal(
        "100"
    )


def test_only_one_pending_correction_per_trade(db: Database, users, trade: Trade) -> None:
    cid = propose_on(db, trade, users["clerk1"], {"quantity": "120"})
    with pytest.raises(InvalidTransition, match=f"correction #{cid}"):
        propose_on(db, trade, users["clerk2"], {"quantity": "130"}, "y")


# --- CANCEL_REBOOK ----------------------------------------------------------------------------------------------


def test_cancel_rebook_approved_cancels_and_books_a_corrected_copy(
    db: Database, users, trade: Trade, settlement_calls: list[int]
) -> None:
    cid = propose_on(
        db,
        trade,
        users["clerk1"],
        {"counterparty_code": "CP2"},
        "Booked against the wrong broker",
        seen_version=trade.version,
        kind=REBOOK,
    )
    view = wf.describe(db, users["supervisor"], cid)
    assert view.changes[0].after == "cancelled; rebooked as T1-R1"
    assert ("counterparty_code", "CP1", "CP2") in [(c.field, c.before, c.after) for c in view.changes]
    wf.approve(db, users["supervisor"], cid)
    old, new = trade_by_ref(db, "T1"), trade_by_ref(db, "T1-R1")
    assert old.status == TradeStatus.CANCELLED and old.counterparty_code == "CP1"
    assert (new.status, new.counterparty_code, new.quantity, new.source, new.fo_version) == (
        TradeStatus.VALIDATED,
        "CP2",
        Decimal("100"),
        "CORRECTION",
        1,
    )
    assert new.counterparty_id is not None and new.counterparty_id != old.counterparty_id
    with db.read() as s:
        actions = [
            (v.trade_id, v.action.value)
            for v in s.scalars(
                select(TradeVersion).where(TradeVersion.source == "CORRECTION").order_by(TradeVersion.id)
            )
        ]
    assert actions == [(old.id, "CANCEL"), (new.id, "NEW")]
    assert settlement_calls == [old.id, new.id]


def test_cancel_rebook_rejected_leaves_the_trade_alone(db: Database, users, trade: Trade) -> None:
    cid = propose_on(db, trade, users["clerk1"], {"counterparty_code": "CP2"}, kind=REBOOK)
    wf.reject(db, users["supervisor"], cid, "CP1 is right")
    with db.read() as s:
        assert [t.trade_ref for t in s.scalars(select(Trade))] == ["T1"]
    assert trade_by_ref(db, "T1").status == TradeStatus.VALIDATED


# --- MANUAL_MATCH -----------------------------------------------------------------------------------------------


def _one_to_many(db: Database, definition: int) -> tuple[int, int, int]:
    ext = make_break(db, definition, kind=BreakType.MISSING_INTERNAL, external_ref="BLOCK-1", amount="1000")
    a = make_break(db, definition, kind=BreakType.MISSING_EXTERNAL, internal_ref="T-1", amount="600")
    b = make_break(db, definition, kind=BreakType.MISSING_EXTERNAL, internal_ref="T-2", amount="400")
    return ext, a, b


def test_manual_match_one_to_many_approved(db: Database, users, definition: int) -> None:
    ext, a, b = _one_to_many(db, definition)
    cid = wf.propose(
        db,
        users["clerk1"],
        MATCH,
        "breaks",
        ext,
        {"break_ids": [a, b]},
        "Two partial fills of one block",
        seen_version=get_break(db, ext).version,
    )
    assert {get_break(db, i).status for i in (ext, a, b)} == {BreakStatus.PROPOSED}
    assert {get_break(db, i).owner_id for i in (ext, a, b)} == {users["clerk1"].user_id}
    view = wf.describe(db, users["supervisor"], cid)
    got = {c.field: c.after for c in view.changes}
    assert got["internal records"] == "T-1, T-2" and got["external records"] == "BLOCK-1"
    assert got["internal total"] == got["external total"] == "1000"
    assert sorted(view.items) == sorted([("breaks", ext), ("breaks", a), ("breaks", b)])
    wf.approve(db, users["supervisor"], cid)
    with db.read() as s:
        m = s.scalars(select(ReconMatch)).one()
    assert (m.pass_name, sorted(m.left_refs), m.right_refs, m.matched_by_id, m.run_id) == (
        "manual",
        ["T-1", "T-2"],
        ["BLOCK-1"],
        users["clerk1"].user_id,
        None,
    )
    assert {get_break(db, i).status for i in (ext, a, b)} == {BreakStatus.RESOLVED}


def test_manual_match_rejected_returns_every_break(db: Database, users, definition: int) -> None:
    ext, a, b = _one_to_many(db, definition)
    wb.claim_break(db, users["clerk1"], ext)
    cid = wf.propose(db, users["clerk1"], MATCH, "breaks", ext, {"break_ids": [a, b]}, "x", seen_version=None)
    wf.reject(db, users["supervisor"], cid, "T-2 belongs to another block")
    assert {get_break(db, i).status for i in (ext, a, b)} == {BreakStatus.ASSIGNED}
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(ReconMatch)) == 0


def test_manual_match_needs_both_sides_one_definition_and_free_breaks(
    db: Database, users, definition: int
) -> None:
    ext, a, b = _one_to_many(db, definition)
    with pytest.raises(ValidationFailed, match="both sides"):
        wf.propose(db, users["clerk1"], MATCH, "breaks", a, {"break_ids": [b]}, "x", seen_version=None)
    other = make_break(db, make_definition(db, "Cash"), kind=BreakType.MISSING_EXTERNAL, internal_ref="T-3")
    with pytest.raises(ValidationFailed, match="one reconciliation"):
        wf.propose(db, users["clerk1"], MATCH, "breaks", ext, {"break_ids": [other]}, "x", seen_version=None)
    yen = make_break(
        db, definition, kind=BreakType.MISSING_EXTERNAL, internal_ref="T-JPY", amount="1000", currency="JPY"
    )
    with pytest.raises(
        ValidationFailed, match=r"one currency; these are in JPY and USD \(#\d+ USD, #\d+ JPY\)"
    ):
        wf.propose(db, users["clerk1"], MATCH, "breaks", ext, {"break_ids": [yen]}, "x", seen_version=None)
    assert get_break(db, yen).status == BreakStatus.OPEN and get_break(db, ext).status == BreakStatus.OPEN
    wb.claim_break(db, users["clerk2"], b)
    with pytest.raises(Exception, match="claimed by clerk2"):
        wf.propose(db, users["clerk1"], MATCH, "breaks", ext, {"break_ids": [a, b]}, "x", seen_version=None)
    wf.propose(db, users["clerk1"], MATCH, "breaks", ext, {"break_ids": [a]}, "x", seen_version=None)
    with pytest.raises(InvalidTransition, match="awaiting approval"):
        wf.propose(db, users["clerk2"], MATCH, "breaks", b, {"break_ids": [a]}, "x", seen_version=None)


# --- UNMATCH ----------------------------------------------------------------------------------------------------


def test_unmatch_of_an_engine_match_turns_its_records_into_breaks(
    db: Database, users, definition: int
) -> None:
    with db.write() as s:
        m = ReconMatch(
            definition_id=definition, pass_name="composite", left_refs=["T-5"], right_refs=["C-5", "C-6"]
        )
        s.add(m)
        s.flush()
        mid = m.id
    cid = wf.propose(
        db, users["clerk1"], UNMATCH, "recon_matches", mid, {}, "C-6 is another trade", seen_version=None
    )
    wf.approve(db, users["supervisor"], cid)
    with db.read() as s:
        m = s.get(ReconMatch, mid)
        made = s.scalars(select(Break).order_by(Break.id)).all()
    assert m.unmatched_at is not None
    assert [(b.break_type, b.internal_ref, b.external_ref, b.status) for b in made] == [
        (BreakType.MISSING_EXTERNAL, "T-5", None, BreakStatus.OPEN),
        (BreakType.MISSING_INTERNAL, None, "C-5", BreakStatus.OPEN),
        (BreakType.MISSING_INTERNAL, None, "C-6", BreakStatus.OPEN),
    ]
    with pytest.raises(InvalidTransition, match="already undone"):
        wf.propose(db, users["clerk1"], UNMATCH, "recon_matches", mid, {}, "again", seen_version=None)


def test_unmatch_of_a_manual_match_reopens_its_breaks_and_rejection_keeps_it(
    db: Database, users, definition: int
) -> None:
    ext, a, b = _one_to_many(db, definition)
    wf.approve(
        db,
        users["supervisor"],
        wf.propose(db, users["clerk1"], MATCH, "breaks", ext, {"break_ids": [a, b]}, "x", seen_version=None),
    )
    with db.read() as s:
        mid = s.scalars(select(ReconMatch.id)).one()
    rejected = wf.propose(db, users["clerk2"], UNMATCH, "recon_matches", mid, {}, "wrong", seen_version=None)
    wf.reject(db, users["supervisor"], rejected, "The match is right")
    with db.read() as s:
        assert s.get(ReconMatch, mid).unmatched_at is None
    cid = wf.propose(
        db, users["clerk2"], UNMATCH, "recon_matches", mid, {}, "T-2 was someone else's", seen_version=None
    )
    view = wf.describe(db, users["supervisor"], cid)
    assert view.amount == Decimal("1000") and view.currency == "USD"
    # The clerk who made the match is its last editor; the supervisor decides.
    wf.approve(db, users["supervisor"], cid)
    assert {get_break(db, i).status for i in (ext, a, b)} == {BreakStatus.OPEN}
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Break)) == 3  # reopened, none created twice


# --- WRITE_OFF and FORCE_CLOSE ----------------------------------------------------------------------------------


def test_write_off_approved_and_rejected(db: Database, users, definition: int) -> None:
    b1 = make_break(db, definition, internal_ref="T-1", amount="12.50")
    b2 = make_break(db, definition, internal_ref="T-2", amount="8.00")
    with pytest.raises(ValidationFailed, match="more than the 12.50"):
        wf.propose(db, users["clerk1"], WRITE_OFF, "breaks", b1, {"amount": "13"}, "x", seen_version=None)
    c1 = wf.propose(db, users["clerk1"], WRITE_OFF, "breaks", b1, {}, "fee rounding", seen_version=None)
    c2 = wf.propose(
        db, users["clerk1"], WRITE_OFF, "breaks", b2, {"amount": "8"}, "fee rounding", seen_version=None
    )
    assert wf.describe(db, users["supervisor"], c1).changes[-1].after == "12.5 USD"
    wf.approve(db, users["supervisor"], c1)
    wf.reject(db, users["supervisor"], c2, "Not a rounding difference; chase the custodian")
    assert get_break(db, b1).status == BreakStatus.WRITTEN_OFF and get_break(db, b1).resolved_at is not None
    assert get_break(db, b2).status == BreakStatus.ASSIGNED


def test_force_close_approved_and_rejected(db: Database, users, definition: int) -> None:
    b1 = make_break(db, definition, internal_ref="T-1")
    b2 = make_break(db, definition, internal_ref="T-2")
    c1 = wf.propose(
        db, users["clerk1"], CLOSE, "breaks", b1, {}, "Timing", seen_version=get_break(db, b1).version
    )
    c2 = wf.propose(db, users["clerk1"], CLOSE, "breaks", b2, {}, "Timing", seen_version=None)
    wf.approve(db, users["supervisor"], c1, "fine")
    wf.reject(db, users["supervisor"], c2, "Not timing")
    assert (get_break(db, b1).status, get_break(db, b2).status) == (
        BreakStatus.RESOLVED,
        BreakStatus.ASSIGNED,
    )
    # A closed break takes no further correction.
    with pytest.raises(InvalidTransition, match="closed"):
        wf.propose(db, users["clerk1"], CLOSE, "breaks", b1, {}, "again", seen_version=None)


def test_stale_break_proposal_is_refused(db: Database, users, definition: int) -> None:
    b = make_break(db, definition)
    seen = get_break(db, b).version
    wb.claim_break(db, users["clerk2"], b)
    wb.release_break(db, users["clerk2"], b)
    with pytest.raises(StaleEdit, match=r"changed by clerk2 at .*reload"):
        wf.propose(db, users["clerk1"], CLOSE, "breaks", b, {}, "x", seen_version=seen)


def test_kind_and_item_must_agree(db: Database, users, definition: int) -> None:
    b = make_break(db, definition)
    with pytest.raises(ValidationFailed, match="applies to a trade"):
        wf.propose(db, users["clerk1"], AMEND, "breaks", b, {}, "x", seen_version=None)
    with pytest.raises(ValidationFailed, match="not a kind of correction"):
        wf.propose(db, users["clerk1"], "FIX_EVERYTHING", "breaks", b, {}, "x", seen_version=None)


# --- withdraw, inbox --------------------------------------------------------------------------------------------


def test_withdraw_by_the_maker_only(db: Database, users, definition: int) -> None:
    b = make_break(db, definition)
    cid = wf.propose(db, users["clerk1"], CLOSE, "breaks", b, {}, "x", seen_version=None)
    with pytest.raises(PermissionDenied, match="Only clerk1"):
        wf.withdraw(db, users["clerk2"], cid)
    wf.withdraw(db, users["clerk1"], cid, "found the real cause")
    assert status_of(db, cid) == CorrectionStatus.WITHDRAWN
    assert get_break(db, b).status == BreakStatus.ASSIGNED
    with pytest.raises(InvalidTransition, match="already withdrawn"):
        wf.approve(db, users["supervisor"], cid)


def test_pending_inbox_and_mine(db: Database, users, definition: int) -> None:
    b1 = make_break(db, definition, internal_ref="T-1")
    b2 = make_break(db, definition, internal_ref="T-2")
    b3 = make_break(db, definition, internal_ref="T-3")
    c1 = wf.propose(db, users["clerk1"], CLOSE, "breaks", b1, {}, "x", seen_version=None)
    c2 = wf.propose(db, users["clerk2"], CLOSE, "breaks", b2, {}, "y", seen_version=None)
    c3 = wf.propose(db, users["supervisor"], CLOSE, "breaks", b3, {}, "z", seen_version=None)
    wf.approve(db, users["supervisor2"], c3)
    inbox = wf.pending(db, users["supervisor"])
    assert [v.id for v in inbox] == [c1, c2]
    assert all(v.can_decide for v in inbox)
    assert [v.id for v in wf.pending(db, users["clerk2"], mine=True)] == [c2]
    mine = wf.pending(db, users["clerk1"])
    assert not mine[0].can_decide and "may not approve" in mine[0].why_not
    assert [v.id for v in wf.corrections(db, users["auditor"], status="APPROVED")] == [c3]
    assert [v.id for v in wf.corrections(db, users["auditor"], item=("break", b2))] == [c2]


# --- demo -------------------------------------------------------------------------------------------------------


def test_seed_demo_fills_the_approvals_inbox(db: Database) -> None:
    from app.services import auth, demo
    from app.services.permissions import SYSTEM

    from .conftest import PASSWORD

    demo.build_demo(db, SYSTEM, trades=300, seed=3, password=PASSWORD)
    d = make_definition(db, "Demo trades vs confirmations")
    make_break(db, d, kind=BreakType.MISSING_INTERNAL, external_ref="C-1", amount="5000")
    make_break(db, d, kind=BreakType.MISSING_EXTERNAL, internal_ref="T-1", amount="5000")
    make_break(db, d, internal_ref="T-2", amount="2500000")
    make_break(db, d, internal_ref="T-3", amount="3.20")
    actors = {n: auth.login(db, n, PASSWORD) for n in ("clerk1", "clerk2", "supervisor")}
    made = wf.seed_demo(db, actors)
    inbox = wf.pending(db, actors["supervisor"])
    assert sorted(v.id for v in inbox) == sorted(made)
    assert {v.kind for v in inbox} == {"MANUAL_MATCH", "FORCE_CLOSE", "WRITE_OFF", "AMEND_TRADE"}
    assert all(v.maker == "clerk1" and v.can_decide for v in inbox)
    assert any(v.needs_second_approver for v in inbox)


def test_a_break_closed_by_a_run_while_proposed_makes_the_correction_obsolete(
    db: Database, users, definition: int
) -> None:
    b = make_break(db, definition)
    cid = wf.propose(db, users["clerk1"], CLOSE, "breaks", b, {}, "timing", seen_version=None)
    # A recon run matches the records and closes the break by itself, then a later run reopens it.
    with db.write() as s:
        s.execute(Break.__table__.update().where(Break.id == b).values(status=BreakStatus.RESOLVED))
    view = wf.describe(db, users["supervisor"], cid)
    assert view.obsolete and f"Break #{b}" in view.obsolete
    with pytest.raises(InvalidTransition, match="reject the correction"):
        wf.approve(db, users["supervisor"], cid)
    with db.write() as s:
        s.execute(Break.__table__.update().where(Break.id == b).values(status=BreakStatus.OPEN))
    with pytest.raises(InvalidTransition, match=f"correction #{cid} pending"):
        wf.propose(db, users["clerk1"], CLOSE, "breaks", b, {}, "again", seen_version=None)
    wf.reject(db, users["supervisor"], cid, "overtaken by the run")
    assert get_break(db, b).status == BreakStatus.OPEN  # left as the run put it
    wf.propose(db, users["clerk1"], CLOSE, "breaks", b, {}, "again", seen_version=None)
    assert get_break(db, b).status == BreakStatus.PROPOSED
