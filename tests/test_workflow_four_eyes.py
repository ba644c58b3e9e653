"""The four-eyes rule attacked directly: through the services and with raw SQL behind their back, on SQLite and
PostgreSQL. The checker may be neither the maker nor the item's last editor; amounts above the threshold need two
distinct approvers; only supervisors decide; bulk decisions respect all of it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import exc, select, text

from app.models.enums import BreakStatus, CorrectionKind, CorrectionStatus, Decision
from app.models.workflow import Correction, CorrectionApproval
from app.services.db import Database
from app.services.errors import InvalidTransition, PermissionDenied, ValidationFailed
from app.services.workflow import breaks as wb
from app.services.workflow import corrections as wf

from .helpers import WON, race
from .test_workflow_breaks import get_break, make_break, make_definition

CLOSE, WRITE_OFF = CorrectionKind.FORCE_CLOSE, CorrectionKind.WRITE_OFF


@pytest.fixture
def definition(db: Database) -> int:
    return make_definition(db)


def close(
    db: Database, users, definition: int, maker: str = "clerk1", ref: str = "T-1", amount: str = "250"
) -> int:
    b = make_break(db, definition, internal_ref=ref, amount=amount)
    return wf.propose(db, users[maker], CLOSE, "breaks", b, {}, "explained", seen_version=None)


def raw(db: Database, sql: str, **params: Any) -> None:
    with db.write() as s:
        s.execute(text(sql), params)


def correction(db: Database, cid: int) -> Correction:
    with db.read() as s:
        return s.get(Correction, cid)


# --- through the services ---------------------------------------------------------------------------------------


def test_a_supervisor_cannot_approve_or_reject_their_own_correction(
    db: Database, users, definition: int
) -> None:
    cid = close(db, users, definition, maker="supervisor")
    with pytest.raises(PermissionDenied, match="You proposed"):
        wf.approve(db, users["supervisor"], cid)
    with pytest.raises(PermissionDenied, match="You proposed"):
        wf.reject(db, users["supervisor"], cid, "mine")
    assert correction(db, cid).status == CorrectionStatus.PENDING
    wf.approve(db, users["supervisor2"], cid)
    assert correction(db, cid).status == CorrectionStatus.APPROVED


def test_the_last_editor_of_the_item_cannot_approve(db: Database, users, definition: int) -> None:
    b = make_break(db, definition)
    # The supervisor files the break (becoming its last editor), then a clerk proposes to close it.
    wb.set_category(db, users["supervisor"], b, "Timing", "TIME", seen_version=get_break(db, b).version)
    cid = wf.propose(db, users["clerk1"], CLOSE, "breaks", b, {}, "timing", seen_version=None)
    assert correction(db, cid).item_last_editor_id == users["supervisor"].user_id
    view = wf.describe(db, users["supervisor"], cid)
    assert not view.can_decide and "last to edit" in view.why_not
    with pytest.raises(PermissionDenied, match="last to edit"):
        wf.approve(db, users["supervisor"], cid)
    wf.approve(db, users["supervisor2"], cid)
    assert get_break(db, b).status == BreakStatus.RESOLVED


def test_clerks_and_auditors_cannot_decide(db: Database, users, definition: int) -> None:
    cid = close(db, users, definition)
    for who in ("clerk2", "auditor", "admin"):
        with pytest.raises(PermissionDenied):
            wf.approve(db, users[who], cid)
        with pytest.raises(PermissionDenied):
            wf.reject(db, users[who], cid, "no")
    with pytest.raises(PermissionDenied):
        wf.propose(
            db,
            users["auditor"],
            CLOSE,
            "breaks",
            make_break(db, definition, internal_ref="T-2"),
            {},
            "x",
            seen_version=None,
        )
    assert correction(db, cid).status == CorrectionStatus.PENDING
    with db.read() as s:
        assert s.scalars(select(CorrectionApproval)).all() == []


def test_above_the_threshold_two_different_approvers_are_needed(db: Database, users, definition: int) -> None:
    assert wf.thresholds(db, users["auditor"])["USD"] == Decimal("1000000")
    small = close(db, users, definition, ref="T-1", amount="1000000")  # at the threshold: one approver
    big = close(db, users, definition, ref="T-2", amount="1000000.01")
    assert (correction(db, small).required_approvals, correction(db, big).required_approvals) == (1, 2)
    assert wf.approve(db, users["supervisor"], big, "first look") == CorrectionStatus.PENDING
    brk = wf.describe(db, users["supervisor"], big)
    assert brk.approvers == ["supervisor"] and not brk.can_decide and "second approver" in brk.why_not
    assert get_break(db, correction(db, big).item_id).status == BreakStatus.PROPOSED
    with pytest.raises(PermissionDenied, match="already approved"):
        wf.approve(db, users["supervisor"], big)
    assert wf.approve(db, users["supervisor2"], big) == CorrectionStatus.APPROVED
    assert get_break(db, correction(db, big).item_id).status == BreakStatus.RESOLVED
    assert wf.approve(db, users["supervisor"], small) == CorrectionStatus.APPROVED


def test_thresholds_are_per_currency_and_set_by_supervisors(db: Database, users, definition: int) -> None:
    with pytest.raises(PermissionDenied):
        wf.set_threshold(db, users["clerk1"], "USD", "100")
    with pytest.raises(ValidationFailed):
        wf.set_threshold(db, users["supervisor"], "US", "100")
    wf.set_threshold(db, users["supervisor"], "usd", "100")
    wf.set_threshold(db, users["supervisor"], "*", "50")
    usd = close(db, users, definition, ref="T-1", amount="150")
    b = make_break(db, definition, internal_ref="T-2", amount="60")
    with db.write() as s:
        s.execute(text("UPDATE breaks SET currency = 'NOK' WHERE id = :i"), {"i": b})
    nok = wf.propose(db, users["clerk1"], CLOSE, "breaks", b, {}, "x", seen_version=None)
    assert (correction(db, usd).required_approvals, correction(db, nok).required_approvals) == (2, 2)
    assert wf.thresholds(db, users["clerk1"])["USD"] == Decimal("100")


# --- behind the services' back: the database refuses ------------------------------------------------------------


def test_raw_insert_of_the_makers_approval_is_refused(db: Database, users, definition: int) -> None:
    cid = close(db, users, definition, maker="supervisor")
    maker = users["supervisor"].user_id
    other = users["clerk2"].user_id
    # Honest denormalised columns: the CHECK refuses. Forged ones (pretending another maker): the trigger refuses.
    for maker_col in (maker, other):
        with pytest.raises(exc.DBAPIError, match="approver_not_maker|four-eyes"):
            raw(
                db,
                "INSERT INTO correction_approvals (correction_id, approver_id, maker_id, item_last_editor_id, "
                "decision, comment, decided_at) VALUES (:c, :a, :m, NULL, 'APPROVE', '', CURRENT_TIMESTAMP)",
                c=cid,
                a=maker,
                m=maker_col,
            )
    with db.read() as s:
        assert s.scalars(select(CorrectionApproval)).all() == []


def test_raw_insert_of_the_last_editors_approval_is_refused(db: Database, users, definition: int) -> None:
    b = make_break(db, definition)
    wb.set_category(db, users["supervisor"], b, "Timing", "TIME", seen_version=get_break(db, b).version)
    cid = wf.propose(db, users["clerk1"], CLOSE, "breaks", b, {}, "timing", seen_version=None)
    # The approval row claims there was no last editor: the trigger reads the correction row and still refuses.
    with pytest.raises(exc.DBAPIError, match="last editor"):
        raw(
            db,
            "INSERT INTO correction_approvals (correction_id, approver_id, maker_id, item_last_editor_id, decision, "
            "comment, decided_at) VALUES (:c, :a, :m, NULL, 'APPROVE', '', CURRENT_TIMESTAMP)",
            c=cid,
            a=users["supervisor"].user_id,
            m=users["clerk1"].user_id,
        )


def test_raw_status_update_without_enough_approvals_is_refused(db: Database, users, definition: int) -> None:
    cid = close(db, users, definition)
    with pytest.raises(exc.DBAPIError, match="not enough distinct approvals"):
        raw(db, "UPDATE corrections SET status = 'APPROVED' WHERE id = :c", c=cid)
    big = close(db, users, definition, ref="T-2", amount="5000000")
    wf.approve(db, users["supervisor"], big)  # one of two
    with pytest.raises(exc.DBAPIError, match="not enough distinct approvals"):
        raw(db, "UPDATE corrections SET status = 'APPROVED' WHERE id = :c", c=big)
    # Nor may the requirement be lowered, nor the maker or last editor rewritten.
    with pytest.raises(exc.DBAPIError, match="four-eyes"):
        raw(db, "UPDATE corrections SET required_approvals = 1 WHERE id = :c", c=big)
    with pytest.raises(exc.DBAPIError, match="cannot be changed"):
        raw(db, "UPDATE corrections SET maker_id = :u WHERE id = :c", u=users["clerk2"].user_id, c=cid)
    assert correction(db, cid).status == correction(db, big).status == CorrectionStatus.PENDING


def test_raw_insert_of_a_decided_or_underapproved_correction_is_refused(
    db: Database, users, definition: int
) -> None:
    b = make_break(db, definition)
    sql = (
        "INSERT INTO corrections (kind, item_type, item_id, payload, reason, amount, currency, status, maker_id, "
        "required_approvals, version, created_at, updated_at) VALUES ('FORCE_CLOSE', 'breaks', :b, '{}', 'x', "
        ":amount, 'USD', :status, :m, 1, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    m = users["clerk1"].user_id
    with pytest.raises(exc.DBAPIError, match="stored PENDING"):
        raw(db, sql, b=b, amount=10, status="APPROVED", m=m)
    with pytest.raises(exc.DBAPIError, match="threshold"):
        raw(db, sql, b=b, amount=2000000, status="PENDING", m=m)
    raw(db, sql, b=b, amount=10, status="PENDING", m=m)  # a lawful one goes in


def test_raw_update_of_an_approval_and_of_a_decided_status_is_refused(
    db: Database, users, definition: int
) -> None:
    cid = close(db, users, definition)
    wf.approve(db, users["supervisor"], cid)
    with pytest.raises(exc.DBAPIError, match="never changed"):
        raw(db, "UPDATE correction_approvals SET approver_id = :u", u=users["clerk1"].user_id)
    with pytest.raises(exc.DBAPIError, match="decided correction"):
        raw(db, "UPDATE corrections SET status = 'PENDING' WHERE id = :c", c=cid)
    with pytest.raises(exc.DBAPIError, match="no longer pending"):
        raw(
            db,
            "INSERT INTO correction_approvals (correction_id, approver_id, maker_id, item_last_editor_id, decision, "
            "comment, decided_at) VALUES (:c, :a, :m, :e, 'REJECT', '', CURRENT_TIMESTAMP)",
            c=cid,
            a=users["supervisor2"].user_id,
            m=users["clerk1"].user_id,
            e=correction(db, cid).item_last_editor_id,
        )


# --- bulk -------------------------------------------------------------------------------------------------------


def test_bulk_approve_skips_what_needs_two_approvers_and_what_the_supervisor_made(
    db: Database, users, definition: int
) -> None:
    a = close(db, users, definition, ref="T-1")
    b = close(db, users, definition, ref="T-2")
    big = close(db, users, definition, ref="T-3", amount="9000000")
    own = close(db, users, definition, ref="T-4", maker="supervisor")
    result = wf.bulk_decide(db, users["supervisor"], [a, b, big, own], Decision.APPROVE, "checked")
    assert result.decided == [a, b]
    assert set(result.refused) == {big, own}
    assert "two approvers" in result.refused[big] and "You proposed" in result.refused[own]
    assert [correction(db, i).status for i in (a, b, big, own)] == [
        CorrectionStatus.APPROVED,
        CorrectionStatus.APPROVED,
        CorrectionStatus.PENDING,
        CorrectionStatus.PENDING,
    ]
    with pytest.raises(PermissionDenied):
        wf.bulk_decide(db, users["clerk2"], [big], Decision.APPROVE, "")


def test_bulk_reject_needs_a_comment_and_returns_every_break(db: Database, users, definition: int) -> None:
    ids = [close(db, users, definition, ref=f"T-{i}") for i in range(3)]
    refused = wf.bulk_decide(db, users["supervisor"], ids, "reject", "")
    assert refused.decided == [] and all("Say why" in m for m in refused.refused.values())
    done = wf.bulk_decide(db, users["supervisor"], ids, "REJECT", "Wrong category of fix")
    assert done.decided == ids and done.all_done
    assert {get_break(db, correction(db, i).item_id).status for i in ids} == {BreakStatus.ASSIGNED}
    with pytest.raises(InvalidTransition, match="already rejected"):
        wf.approve(db, users["supervisor2"], ids[0])


def test_two_supervisors_deciding_at_once_apply_it_once(db: Database, users, definition: int) -> None:
    cid = close(db, users, definition)
    outcome = race(
        {
            "supervisor": lambda: wf.approve(db, users["supervisor"], cid),
            "supervisor2": lambda: wf.reject(db, users["supervisor2"], cid, "no"),
        },
        InvalidTransition,
    )
    results = [str(o) for o in outcome.values()]
    assert len(results) == 2 and results.count(WON) == 1
    assert any(r.startswith(f"Correction #{cid} is already") for r in results)
    with db.read() as s:
        decisions = s.scalars(select(CorrectionApproval)).all()
    assert len(decisions) == 1
    status = correction(db, cid).status
    brk = get_break(db, correction(db, cid).item_id)
    assert (status, brk.status) in {
        (CorrectionStatus.APPROVED, BreakStatus.RESOLVED),
        (CorrectionStatus.REJECTED, BreakStatus.ASSIGNED),
    }
