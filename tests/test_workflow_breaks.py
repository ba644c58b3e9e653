"""Working breaks by hand: claim (exactly one winner), release, assign, categorise (versioned), the lifecycle's
allowed moves, comments, attachments and the merged history, on SQLite and PostgreSQL.

Breaks are made directly with the models (the recon engine is another area's); the builders here are shared by the
other workflow tests.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text

from app.models import AuditEntry, Break, ChangeFeedEntry, ReconDefinition
from app.models.enums import BreakStatus, BreakType, CorrectionStatus
from app.models.workflow import Correction
from app.services.db import Database
from app.services.errors import (
    AlreadyClaimed,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    StaleEdit,
    ValidationFailed,
)
from app.services.permissions import Actor
from app.services.workflow import breaks as wb
from app.services.workflow import comments as wc

from .helpers import WON, race

# --- builders (used by test_workflow_corrections / test_workflow_four_eyes too) ---------------------------------


def make_definition(db: Database, name: str = "Trades vs confirmations") -> int:
    with db.write() as s:
        d = ReconDefinition(
            name=name, left_source="trades", right_source="confirmations", config={"passes": []}
        )
        s.add(d)
        s.flush()
        return d.id


def make_break(
    db: Database,
    definition_id: int,
    *,
    kind: BreakType = BreakType.FIELD_MISMATCH,
    internal_ref: str | None = "T-1",
    external_ref: str | None = "C-1",
    amount: str = "250.00",
    currency: str = "USD",
    record: dict[str, Any] | None = None,
    external: dict[str, Any] | None = None,
    status: BreakStatus = BreakStatus.OPEN,
) -> int:
    fp = hashlib.sha256(f"{kind}:{internal_ref}:{external_ref}".encode()).hexdigest()
    with db.write() as s:
        b = Break(
            definition_id=definition_id,
            fingerprint=fp,
            break_type=kind,
            status=status,
            internal_ref=internal_ref if kind != BreakType.MISSING_INTERNAL else None,
            external_ref=external_ref if kind != BreakType.MISSING_EXTERNAL else None,
            internal_record=record if kind != BreakType.MISSING_INTERNAL else None,
            external_record=external if kind != BreakType.MISSING_EXTERNAL else None,
            differences=[{"field": "quantity", "internal": "100", "external": "90"}]
            if kind == BreakType.FIELD_MISMATCH
            else [],
            amount=Decimal(amount),
            currency=currency,
            as_of_date=dt.date(2026, 11, 20),
        )
        s.add(b)
        s.flush()
        return b.id


def get_break(db: Database, break_id: int) -> Break:
    with db.read() as s:
        return s.get(Break, break_id)


@pytest.fixture
def definition(db: Database) -> int:
    return make_definition(db)


@pytest.fixture
def brk(db: Database, definition: int) -> int:
    return make_break(db, definition)


# --- claim ------------------------------------------------------------------------------------------------------


def test_claim_makes_the_break_the_clerks_and_assigned(db: Database, users, brk: int) -> None:
    version = wb.claim_break(db, users["clerk1"], brk)
    b = get_break(db, brk)
    assert (b.status, b.owner_id, b.version) == (BreakStatus.ASSIGNED, users["clerk1"].user_id, version)
    assert b.claimed_at is not None
    # Claiming one's own break again is harmless.
    wb.claim_break(db, users["clerk1"], brk)
    assert get_break(db, brk).owner_id == users["clerk1"].user_id


def test_second_clerk_is_told_who_has_the_break(db: Database, users, brk: int) -> None:
    wb.claim_break(db, users["clerk1"], brk)
    with pytest.raises(AlreadyClaimed, match="already claimed by clerk1"):
        wb.claim_break(db, users["clerk2"], brk)
    assert get_break(db, brk).owner_id == users["clerk1"].user_id


def test_two_clerks_claiming_at_once_exactly_one_wins(db: Database, users, brk: int) -> None:
    outcome = race(
        {n: functools.partial(wb.claim_break, db, users[n], brk) for n in ("clerk1", "clerk2")},
        AlreadyClaimed,
    )
    assert sorted(o if o == WON else "lost" for o in outcome.values()) == ["lost", "won"]
    winner = next(n for n, o in outcome.items() if o == WON)
    assert get_break(db, brk).owner_id == users[winner].user_id
    with db.read() as s:
        claims = s.scalars(select(AuditEntry).where(AuditEntry.action == "breaks.claim")).all()
    assert [e.username for e in claims] == [winner]


def test_auditor_cannot_claim_and_a_closed_break_cannot_be_claimed(
    db: Database, users, definition: int
) -> None:
    b = make_break(db, definition, internal_ref="T-9", status=BreakStatus.RESOLVED)
    with pytest.raises(PermissionDenied):
        wb.claim_break(db, users["auditor"], b)
    with pytest.raises(InvalidTransition, match="RESOLVED"):
        wb.claim_break(db, users["clerk1"], b)
    with pytest.raises(NotFound):
        wb.claim_break(db, users["clerk1"], 999_999)


def test_release_returns_an_assigned_break_to_open(db: Database, users, brk: int) -> None:
    wb.claim_break(db, users["clerk1"], brk)
    with pytest.raises(AlreadyClaimed, match="clerk1"):
        wb.release_break(db, users["clerk2"], brk)
    wb.release_break(db, users["clerk1"], brk)
    b = get_break(db, brk)
    assert (b.status, b.owner_id, b.claimed_at) == (BreakStatus.OPEN, None, None)
    # Now clerk2 may have it.
    wb.claim_break(db, users["clerk2"], brk)
    assert get_break(db, brk).owner_id == users["clerk2"].user_id


def test_supervisor_assigns_and_reassigns(db: Database, users, brk: int) -> None:
    with pytest.raises(PermissionDenied):
        wb.assign_break(db, users["clerk1"], brk, users["clerk2"].user_id)
    wb.assign_break(db, users["supervisor"], brk, users["clerk1"].user_id)
    assert (get_break(db, brk).status, get_break(db, brk).owner_id) == (
        BreakStatus.ASSIGNED,
        users["clerk1"].user_id,
    )
    wb.assign_break(db, users["supervisor"], brk, users["clerk2"].user_id)
    assert get_break(db, brk).owner_id == users["clerk2"].user_id
    with pytest.raises(ValidationFailed, match="auditor"):
        wb.assign_break(db, users["supervisor"], brk, users["auditor"].user_id)
    lines = wb.history(db, users["auditor"], "breaks", brk)
    assert [line.text for line in lines if line.action == "breaks.assign"] == [
        "assigned to clerk1 (OPEN → ASSIGNED)",
        "assigned to clerk2 (was clerk1)",
    ]
    # A supervisor may release anybody's break.
    wb.release_break(db, users["supervisor"], brk)
    assert get_break(db, brk).status == BreakStatus.OPEN


# --- categorise -------------------------------------------------------------------------------------------------


def test_set_category_is_a_versioned_edit(db: Database, users, brk: int) -> None:
    v = wb.claim_break(db, users["clerk1"], brk)
    v2 = wb.set_category(db, users["clerk1"], brk, "timing", "ddat", seen_version=v)
    b = get_break(db, brk)
    assert (b.category, b.root_cause, b.version, b.updated_by_id) == (
        "Timing",
        "DDAT",
        v2,
        users["clerk1"].user_id,
    )
    # The same clerk in a second window, still holding the old version, is refused with who and when.
    with pytest.raises(StaleEdit, match=r"changed by clerk1 at .*reload"):
        wb.set_category(db, users["clerk1"], brk, "Price", "DMON", seen_version=v)
    assert get_break(db, brk).category == "Timing"


def test_set_category_refuses_unknown_words_and_other_clerks(db: Database, users, brk: int) -> None:
    v = wb.claim_break(db, users["clerk1"], brk)
    with pytest.raises(ValidationFailed, match="not a break category"):
        wb.set_category(db, users["clerk1"], brk, "Bad luck", None, seen_version=v)
    with pytest.raises(ValidationFailed, match="not a root-cause code"):
        wb.set_category(db, users["clerk1"], brk, "Timing", "ZZZZ", seen_version=v)
    with pytest.raises(AlreadyClaimed, match="claimed by clerk1"):
        wb.set_category(db, users["clerk2"], brk, "Timing", "DDAT", seen_version=v)
    with pytest.raises(PermissionDenied):
        wb.set_category(db, users["auditor"], brk, "Timing", "DDAT", seen_version=v)
    assert get_break(db, brk).category is None


# --- lifecycle --------------------------------------------------------------------------------------------------


def test_lifecycle_table_allows_only_the_documented_moves() -> None:
    t = wb.BREAK_TRANSITIONS
    assert set(t) == set(BreakStatus)
    assert BreakStatus.WRITTEN_OFF not in t[BreakStatus.OPEN] | t[BreakStatus.ASSIGNED]
    assert t[BreakStatus.RESOLVED] == {BreakStatus.OPEN} and t[BreakStatus.WRITTEN_OFF] == {BreakStatus.OPEN}
    assert {BreakStatus.RESOLVED, BreakStatus.WRITTEN_OFF} <= t[BreakStatus.PROPOSED]


def test_move_break_refuses_a_move_the_lifecycle_does_not_allow(db: Database, users, brk: int) -> None:
    with db.write() as s, pytest.raises(InvalidTransition, match="OPEN; it cannot become WRITTEN_OFF"):
        wb.move_break(s, users["clerk1"], brk, BreakStatus.WRITTEN_OFF, action="breaks.test")
    # The engine closing a break by itself and reopening it when the difference comes back.
    with db.write() as s:
        wb.move_break(s, users["admin"], brk, BreakStatus.RESOLVED, action="breaks.auto_close")
    b = get_break(db, brk)
    assert b.status == BreakStatus.RESOLVED and b.resolved_at is not None
    with db.write() as s:
        wb.move_break(s, users["admin"], brk, BreakStatus.OPEN, action="breaks.reopen")
    b = get_break(db, brk)
    assert b.status == BreakStatus.OPEN and b.resolved_at is None
    actions = [line.action for line in wb.history(db, users["clerk1"], "break", brk)]
    assert actions == ["breaks.auto_close", "breaks.reopen"]


def test_resolve_and_write_off_go_through_a_correction(db: Database, users, definition: int) -> None:
    b1 = make_break(db, definition, internal_ref="T-1")
    b2 = make_break(db, definition, internal_ref="T-2", amount="12.50")
    c1 = wb.resolve_break(db, users["clerk1"], b1, "Timing difference; clears tomorrow")
    c2 = wb.write_off(db, users["clerk1"], b2, "Fee rounding", amount="12.50")
    assert get_break(db, b1).status == get_break(db, b2).status == BreakStatus.PROPOSED
    with db.read() as s:
        kinds = {c.id: (c.kind.value, c.status) for c in s.scalars(select(Correction))}
    assert kinds == {
        c1: ("FORCE_CLOSE", CorrectionStatus.PENDING),
        c2: ("WRITE_OFF", CorrectionStatus.PENDING),
    }


# --- comments, attachments, history -----------------------------------------------------------------------------


def test_comments_are_kept_in_order_and_announced(db: Database, users, brk: int) -> None:
    wc.add_comment(db, users["clerk1"], "break", brk, "Custodian says quantity is 90.")
    wc.add_comment(db, users["supervisor"], "breaks", brk, "Check the partial fill.")
    got = wc.comments(db, users["auditor"], "breaks", brk)
    assert [(c.author, c.body) for c in got] == [
        ("clerk1", "Custodian says quantity is 90."),
        ("supervisor", "Check the partial fill."),
    ]
    with pytest.raises(ValidationFailed, match="needs some text"):
        wc.add_comment(db, users["clerk1"], "breaks", brk, "   ")
    with pytest.raises(PermissionDenied):
        wc.add_comment(db, users["auditor"], "breaks", brk, "I see")
    with pytest.raises(NotFound):
        wc.add_comment(db, users["clerk1"], "breaks", 999_999, "nobody")
    with pytest.raises(ValidationFailed, match="not a kind of work item"):
        wc.add_comment(db, users["clerk1"], "spaceships", brk, "?")
    with db.read() as s:
        feed = s.scalars(select(ChangeFeedEntry).where(ChangeFeedEntry.entity_type == "breaks")).all()
    assert [f.entity_id for f in feed] == [str(brk), str(brk)]


def test_attachment_round_trip_size_limit_and_tamper_check(db: Database, users, brk: int) -> None:
    content = b"%PDF-1.4 custodian confirmation\n" * 10
    aid = wc.add_attachment(db, users["clerk1"], "breaks", brk, r"C:\Users\me\conf.pdf", content)
    got = wc.attachment(db, users["auditor"], aid)
    assert (got.content, got.info.file_name, got.info.media_type, got.info.size) == (
        content,
        "conf.pdf",
        "application/pdf",
        len(content),
    )
    assert got.info.sha256 == hashlib.sha256(content).hexdigest()
    listed = wc.attachments(db, users["clerk2"], "breaks", brk)
    assert [(a.id, a.file_name, a.size, a.uploaded_by) for a in listed] == [
        (aid, "conf.pdf", len(content), "clerk1")
    ]
    with pytest.raises(ValidationFailed, match="limited to"):
        wc.add_attachment(db, users["clerk1"], "breaks", brk, "big.bin", b"x" * (wc.MAX_ATTACHMENT_BYTES + 1))
    with pytest.raises(ValidationFailed, match="empty"):
        wc.add_attachment(db, users["clerk1"], "breaks", brk, "empty.txt", b"")
    # Somebody alters the stored bytes behind the application's back: reading it is refused.
    with db.write() as s:
        s.execute(text("UPDATE attachments SET content = :c WHERE id = :i"), {"c": b"forged", "i": aid})
    with pytest.raises(ValidationFailed, match="checksum"):
        wc.attachment(db, users["clerk1"], aid)


def test_history_merges_audit_comments_and_attachments_in_the_readers_zone(
    db: Database, users, brk: int
) -> None:
    v = wb.claim_break(db, users["clerk1"], brk)
    wc.add_comment(db, users["clerk1"], "breaks", brk, "Looking at it")
    wb.set_category(db, users["clerk1"], brk, "Quantity", "DQUA", seen_version=v)
    wc.add_attachment(db, users["clerk1"], "breaks", brk, "mt548.txt", b":25D::MTCH//NMAT")
    tokyo = Actor(users["auditor"].user_id, "auditor", users["auditor"].role, "Asia/Tokyo")
    lines = wb.history(db, tokyo, "breaks", brk)
    assert [(line.kind, line.who) for line in lines] == [
        ("audit", "clerk1"),
        ("comment", "clerk1"),
        ("audit", "clerk1"),
        ("attachment", "clerk1"),
    ]
    assert lines[0].text == "claimed by clerk1 (OPEN → ASSIGNED)"
    assert lines[1].text == "Looking at it"
    assert lines[2].text == "category — → Quantity, root cause — → DQUA"
    assert lines[3].text == "attached mt548.txt"
    assert all(line.at.utcoffset() == dt.timedelta(hours=9) and line.when.endswith("JST") for line in lines)
    assert [line.at for line in lines] == sorted(line.at for line in lines)


# --- candidates -------------------------------------------------------------------------------------------------


def test_candidates_rank_the_other_sides_open_breaks_by_closeness(
    db: Database, users, definition: int
) -> None:
    from app.services.workflow.candidates import candidates

    ext = {
        "isin": "US0378331005",
        "quantity": "1000",
        "amount": "189250",
        "trade_date": "2026-11-19",
        "counterparty": "CP1",
    }
    target = make_break(
        db, definition, kind=BreakType.MISSING_INTERNAL, external_ref="C-1", amount="189250", external=ext
    )

    def internal(
        ref: str, currency: str = "USD", definition_id: int = definition, status=BreakStatus.OPEN, **over: str
    ) -> int:
        rec = {**ext, "trade_ref": ref, **over}
        return make_break(
            db,
            definition_id,
            kind=BreakType.MISSING_EXTERNAL,
            internal_ref=ref,
            amount=rec["amount"],
            currency=currency,
            record=rec,
            status=status,
        )

    exact = internal("T-EXACT")
    partial = internal("T-PART", quantity="600", amount="113550")
    wrong_isin = internal("T-ISIN", isin="US5949181045", amount="50000", trade_date="2026-11-16")
    internal("T-EUR", currency="EUR")
    internal("T-OTHERDEF", definition_id=make_definition(db, "Other"))
    internal("T-CLOSED", status=BreakStatus.RESOLVED)
    got = candidates(db, users["clerk1"], target)
    assert [c.break_id for c in got] == [exact, partial, wrong_isin]
    assert got[0].score == 100 and got[0].ref == "T-EXACT"
    assert got[0].reasons == [
        "same ISIN US0378331005",
        "same amount",
        "same quantity 1000",
        "same trade date",
        "same counterparty CP1",
    ]
    assert "quantity 600 of 1000 (part of it)" in got[1].reasons
    assert "different ISIN (US5949181045)" in got[2].reasons and "trade date 3 days apart" in got[2].reasons
    assert got[0].score > got[1].score > got[2].score
    # From the other side, the missing external record is the candidate; a mismatch has none.
    back = candidates(db, users["clerk1"], exact, limit=1)
    assert [c.break_id for c in back] == [target]
    assert candidates(db, users["clerk1"], make_break(db, definition, internal_ref="T-MM")) == []
