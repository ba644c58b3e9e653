"""The set-based writes of a message file give exactly what the row-by-row writes gave, on both backends.

A large file's changed instructions are staged in a temporary table (COPY on PostgreSQL, executemany on SQLite) and
written by one ``UPDATE ... FROM`` per part, and on SQLite its movements and messages by one ``INSERT ... SELECT``
from a staged table; a small one is written row by row (one executemany). The thresholds
are forced both ways on the same scenario (partial settlements across parts, a duplicate, an over-settlement
refused and undone, garbage, an unknown reference, a match by the matching fields, an unmatched reason), and
everything the import wrote must be the same: instructions (status, reason, quantities, version), messages,
movements, positions, cash balances, audit entries and the invariant. The staged write keeps the optimistic lock:
a row changed by someone else fails the file, and nothing of it stays.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.models import SettlementInstruction, SettlementMessage
from app.models.enums import InstructionStatus, MessageStatus
from app.services import errors
from app.services.db import Database
from app.services.permissions import SYSTEM
from app.services.settlement import lifecycle, messages, movements, queue

from .test_settlement_messages import ISD, SWIFT, _instr, _refdata
from .test_swift_import_parts import _scenario, _state

S = InstructionStatus
NEVER, ALWAYS = 10**9, 1


def _force(monkeypatch: pytest.MonkeyPatch, threshold: int) -> None:
    """Every write of the import staged and set-based (``ALWAYS``) or row by row (``NEVER``)."""
    monkeypatch.setattr(lifecycle, "_SQLITE_STAGE_MIN", threshold)
    monkeypatch.setattr(lifecycle, "_PG_COPY_MIN", threshold)
    monkeypatch.setattr(movements, "SQLITE_STAGE_MIN", threshold)  # movements and messages


@pytest.mark.parametrize("part", [10**6, 3], ids=["one-part", "parts-of-3"])
@pytest.mark.parametrize("per_row_audit_max", [1, 1000], ids=["batch-audit", "per-row-audit"])
def test_set_based_writes_give_what_the_row_writes_gave(
    two_dbs: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch, part: int, per_row_audit_max: int
) -> None:
    monkeypatch.setattr(lifecycle, "PER_ROW_AUDIT_MAX", per_row_audit_max)
    monkeypatch.setattr(messages, "PART", part)
    outcomes = []
    for db, threshold in zip(two_dbs, (NEVER, ALWAYS), strict=True):
        data = _scenario(db)
        _force(monkeypatch, threshold)
        r = messages.import_bytes(db, SYSTEM, data, "bulk.fin", as_of=ISD)
        outcomes.append((r.as_dict(), _state(db)))
    (row_result, by_row), (set_result, by_set) = outcomes
    assert set_result == row_result
    for key in by_row:
        assert by_set[key] == by_row[key], key
    # The scenario did what it says, so the comparison is not between two empty imports.
    assert row_result["applied"] == 14 and row_result["duplicates"] == 1
    assert row_result["unmatched"] == 1 and row_result["quarantined"] == 2
    status = {row[0]: row[1] for row in by_row["instructions"]}
    assert status["OPSP0001"] == status["OPSP0002"] == S.SETTLED
    assert status["OPSP0005"] == S.MATCHED and status["OPSMATCH"] == S.INSTRUCTED
    versions = {row[0]: row[7] for row in by_row["instructions"]}
    assert versions["OPSP0002"] == 3  # partial, remainder: two transitions, two bumps (the refused one none)
    assert by_row["invariant"] == []
    assert any(e[1] == "settlement_instructions.transition" for e in by_row["audit"])


def test_a_row_changed_by_someone_else_fails_the_staged_write_and_the_whole_file(
    two_dbs: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = two_dbs[0]
    data = _scenario(db)
    before = _state(db)
    _force(monkeypatch, ALWAYS)
    monkeypatch.setattr(messages, "PART", 3)
    loaded = lifecycle.load_states

    def someone_else_changed_opsp0005(session: Any, **kw: Any) -> list[lifecycle.InstructionState]:
        states = loaded(session, **kw)
        for st in states:
            if (
                st.instruction_ref == "OPSP0005"
            ):  # applied in the third part: earlier parts are written already
                session.execute(
                    SettlementInstruction.__table__.update()
                    .where(SettlementInstruction.id == st.id)
                    .values(version=SettlementInstruction.version + 1)
                )
        return states

    monkeypatch.setattr(lifecycle, "load_states", someone_else_changed_opsp0005)
    with pytest.raises(errors.StaleEdit, match="1 of"):
        messages.import_bytes(db, SYSTEM, data, "stale.fin", as_of=ISD)
    assert _state(db) == before  # not the earlier parts' rows, not the movements, not the messages


def test_the_stored_json_keeps_the_facts_and_a_quarantined_message_everything(db: Database) -> None:
    ref = _refdata(db)
    _instr(db, ref, "OPSTEST0011")
    text_ = "\n$".join(
        [
            (SWIFT / "MT548_unmatched_CMIS.fin").read_text(),
            # A header-only stub: it parses, but carries no settlement data.
            "{1:F01OPSDGB2LAXXX0000000000}{2:O5481200240115CUSTDEFFAXXX00000000002401151200N}{4:\n"
            ":16R:GENL\n:20C::SEME//STUB1\n:23G:INST\n:16S:GENL\n-}",
        ]
    )
    r = messages.import_bytes(db, SYSTEM, text_.encode(), "json.fin", as_of=ISD)
    assert (r.applied, r.quarantined) == (1, 1), r.issues
    with db.read() as s:
        applied, stub = s.scalars(select(SettlementMessage).order_by(SettlementMessage.id)).all()
    assert applied.status == MessageStatus.APPLIED and stub.status == MessageStatus.QUARANTINED
    # Read: the facts, how it was matched, its reason codes; the header blocks are in its raw text only.
    assert applied.parsed["settlement"]["related_reference"] == "OPSTEST0011"
    assert applied.parsed["matched_by"] == "reference" and applied.parsed["reason_codes"] == ["CMIS"]
    assert applied.parsed["sender_bic"] and "block2" not in applied.parsed
    assert applied.raw.startswith("{1:F01") and "{2:O548" in applied.raw
    # Not read: everything the parser saw, for the clerk who works it.
    assert {"block1", "block2", "block4"} <= set(stub.parsed)
    # The queue's detail still shows the reason codes of the messages applied to the instruction.
    iid = applied.instruction_id
    assert iid is not None
    shown = queue.detail(db, SYSTEM, iid).messages
    assert [m["reason_codes"] for m in shown] == [["CMIS"]]
