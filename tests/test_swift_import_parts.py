"""A large FIN file is imported part by part (its instructions and movements written after each part, so the rows
built never pile up for the whole file): the outcome must be exactly that of the same file imported in one part, on
both backends.

The file mixes what can go wrong across part boundaries: a partial settlement and its remainder in different
parts, a duplicate of a message of an earlier part, a status after a settlement, an over-settlement refused and
undone, garbage, an unknown reference, a match by the matching fields, an unmatched reason; with one audit entry
per transition, and with the batch entry a large file gets.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.models import (
    AuditEntry,
    CashBalance,
    CashMovement,
    Position,
    SecuritiesMovement,
    SettlementInstruction,
    SettlementMessage,
)
from app.models.enums import InstructionStatus, InstructionType
from app.services import errors
from app.services.db import Database
from app.services.permissions import SYSTEM
from app.services.settlement import lifecycle, messages, movements

from .test_settlement_messages import ISD, SWIFT, _instr, _refdata

S = InstructionStatus


def _swift(name: str, ref: str, seme: str) -> str:
    text = (SWIFT / name).read_text()
    for old in ("OPSTEST0001", "OPSTEST0002", "OPSTEST0020", "OPSTEST0011", "OPSTEST0012"):
        text = text.replace(f"RELA//{old}", f"RELA//{ref}")
    return text.replace(":20C::SEME//", f":20C::SEME//{seme}")


def _scenario(db: Database) -> bytes:
    ref = _refdata(db)
    for n in range(1, 9):
        _instr(db, ref, f"OPSP{n:04d}")
    _instr(db, ref, "OPSFREE1", InstructionType.RFP, qty="500")
    _instr(db, ref, "OPSMATCH", qty="777", amount="187645.5")  # found by its matching fields only
    parts = [
        _swift("MT548_matched.fin", "OPSP0001", "A"),
        _swift("MT545_partial_settlement.fin", "OPSP0002", "B"),
        _swift("MT548_unmatched_CMIS.fin", "OPSP0003", "C"),
        "{1:F01GARBAGE}{4:\n:20C:broken\n-}",
        _swift("MT548_matched.fin", "OPSUNKNOWN", "D"),
        _swift("MT544_receive_free.fin", "OPSFREE1", "E"),
        _swift("MT548_pending_LACK.fin", "OPSP0004", "F"),
        _swift("MT548_matched.fin", "OPSP0005", "G"),
        _swift("MT545_partial_settlement.fin", "OPSP0001", "H"),
        _swift("MT545_remainder_settled.fin", "OPSP0002", "I"),  # the remainder, parts later
        _swift("MT545_partial_settlement.fin", "OPSP0002", "J"),  # over-settlement: refused, undone
        _swift("MT548_matched.fin", "OPSP0001", "A"),  # a duplicate of the first message
        _swift("MT548_matched.fin", "OPSP0002", "K"),  # a status after the settlement: no change
        _swift("MT548_no_reference_settran.fin", "NONREF", "L")
        .replace("UNIT/1000,", "UNIT/777,")
        .replace("EUR241500,", "EUR187645,5"),
        _swift("MT548_unmatched_DDAT.fin", "OPSP0006", "M"),
        _swift("MT545_remainder_settled.fin", "OPSP0001", "N"),
        _swift("MT548_matched.fin", "OPSP0007", "O"),
        _swift("MT548_matched.fin", "OPSP0008", "P"),
    ]
    return "\n$".join(parts).encode()


def _state(db: Database) -> dict[str, Any]:
    """Everything the import changed, without ids of its own rows' clocks (timestamps, hashes)."""
    with db.read() as s:
        out: dict[str, Any] = {
            "instructions": [
                (i.instruction_ref, i.status, i.reason_code, i.reason_text, i.settled_quantity, i.settled_amount,
                 i.actual_settlement_date, i.version)
                for i in s.scalars(select(SettlementInstruction).order_by(SettlementInstruction.id))
            ],
            "messages": [
                (m.id, m.message_type, m.sender, m.reference, m.related_reference, m.instruction_id, m.status,
                 m.status_reason, m.content_hash, m.raw, m.parsed, m.file_name)
                for m in s.scalars(select(SettlementMessage).order_by(SettlementMessage.id))
            ],
            "securities": sorted(
                (m.account_id, m.instrument_id, m.kind, m.quantity, m.value_date, m.trade_id, m.instruction_id)
                for m in s.scalars(select(SecuritiesMovement))
            ),
            "cash": sorted(
                (m.account_id, m.currency, m.kind, m.amount, m.value_date, m.trade_id, m.instruction_id)
                for m in s.scalars(select(CashMovement))
            ),
            "positions": sorted(
                (p.account_id, p.instrument_id, p.traded_quantity, p.settled_quantity)
                for p in s.scalars(select(Position))
            ),
            "balances": sorted(
                (b.account_id, b.currency, b.traded_amount, b.settled_amount) for b in s.scalars(select(CashBalance))
            ),
            "audit": [
                (e.id, e.action, e.entity_type, e.entity_id, e.before, e.after)
                for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))
            ],
            "invariant": movements.check_invariant(s),
        }  # fmt: skip
    return out


@pytest.mark.parametrize("per_row_audit_max", [1, 1000], ids=["batch-audit", "per-row-audit"])
def test_parts_give_the_same_outcome_as_one_part(
    two_dbs: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch, per_row_audit_max: int
) -> None:
    monkeypatch.setattr(lifecycle, "PER_ROW_AUDIT_MAX", per_row_audit_max)
    outcomes = []
    for db, part in zip(two_dbs, (10**6, 3), strict=True):
        data = _scenario(db)
        monkeypatch.setattr(messages, "PART", part)
        r = messages.import_bytes(db, SYSTEM, data, "parts.fin", as_of=ISD)
        outcomes.append((r.as_dict(), _state(db)))
    (one_result, one), (parts_result, parts) = outcomes
    assert parts_result == one_result
    for key in one:
        assert parts[key] == one[key], key
    # The scenario did what it says (so the comparison is not between two empty imports).
    assert one_result["applied"] == 14 and one_result["duplicates"] == 1
    assert one_result["unmatched"] == 1 and one_result["quarantined"] == 2
    status = {row[0]: row[1] for row in one["instructions"]}
    assert status["OPSP0001"] == status["OPSP0002"] == S.SETTLED
    assert status["OPSFREE1"] == S.SETTLED and status["OPSP0006"] == S.INSTRUCTED
    assert status["OPSMATCH"] == S.INSTRUCTED  # unmatched CMIS, found by its fields
    assert any(m[10].get("matched_by") == "fields" for m in one["messages"])
    assert one["invariant"] == []
    named = {m[10].get("transition_audit_entry") for m in one["messages"] if m[6] == "APPLIED"}
    assert (named != {None}) == (per_row_audit_max == 1)


def test_a_failed_write_of_a_later_part_rolls_back_the_whole_file(
    two_dbs: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = two_dbs[0]
    data = _scenario(db)
    before = _state(db)
    monkeypatch.setattr(messages, "PART", 3)
    written = lifecycle.Batch.write_changed

    def fails_on_second_part(self: lifecycle.Batch) -> None:
        written(self)  # the part's rows are in the transaction ...
        self.parts = getattr(self, "parts", 0) + 1
        if self.parts == 2:  # ... when the second part's write finds a stale row
            raise errors.StaleEdit("changed by someone else while this batch was applied")

    monkeypatch.setattr(lifecycle.Batch, "write_changed", fails_on_second_part)
    with pytest.raises(errors.StaleEdit):
        messages.import_bytes(db, SYSTEM, data, "parts.fin", as_of=ISD)
    assert _state(db) == before  # nothing of the file stayed: not the first part's rows, not the movements
