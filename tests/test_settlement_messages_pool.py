"""A large FIN file's parts after the first are parsed and prepared in a helper process: the outcome must be exactly
that of the same file parsed in this process, on both backends and with either way of starting the helper (fork
from the CLI, spawn from the GUI's worker thread).

The scenario (``test_swift_import_parts``) mixes what the helper must hand back unchanged: garbage quarantined with
its reason, an unknown reference, a match by the matching fields, reason codes, partial settlements across parts,
a duplicate of an earlier part's message, an over-settlement refused and undone.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import pytest

from app.services import errors
from app.services.db import Database
from app.services.permissions import SYSTEM
from app.services.settlement import lifecycle, messages
from app.services.swift import incoming

from .test_settlement_messages import ISD
from .test_swift_import_parts import _scenario, _state


def _import(db: Database, monkeypatch: pytest.MonkeyPatch, *, pooled: bool, method: str) -> tuple[Any, Any]:
    data = _scenario(db)
    monkeypatch.setattr(messages, "PART", 3)  # 18 messages: 6 parts
    monkeypatch.setattr(messages, "POOL_MIN_PARTS", 2 if pooled else 10**6)
    monkeypatch.setattr(messages, "_start_method", lambda: method)
    used: list[int] = []
    unpack = messages._unpack

    def counting(t: tuple[Any, ...]) -> messages._Unit:
        used.append(t[0])
        return unpack(t)

    monkeypatch.setattr(messages, "_unpack", counting)
    r = messages.import_bytes(db, SYSTEM, data, "pool.fin", as_of=ISD)
    # The helper parsed every part but the first (3 messages), in order, or none of them.
    assert used == (list(range(4, r.messages + 1)) if pooled else [])
    return r.as_dict(), _state(db)


@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("per_row_audit_max", [1, 1000], ids=["batch-audit", "per-row-audit"])
def test_the_helper_process_gives_the_same_outcome(
    two_dbs: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch, method: str, per_row_audit_max: int
) -> None:
    monkeypatch.setattr(lifecycle, "PER_ROW_AUDIT_MAX", per_row_audit_max)
    here = _import(two_dbs[0], monkeypatch, pooled=False, method=method)
    there = _import(two_dbs[1], monkeypatch, pooled=True, method=method)
    assert there[0] == here[0]
    for key in here[1]:
        assert there[1][key] == here[1][key], key
    result, state = here
    assert result["applied"] == 14 and result["duplicates"] == 1
    assert result["unmatched"] == 1 and result["quarantined"] == 2
    # The quarantined garbage keeps the reason naming file and message, and its parsed structure.
    reasons = [m[7] for m in state["messages"] if m[6] == "QUARANTINED"]
    assert any(r and r.startswith("pool.fin") for r in reasons), reasons
    assert {m[10].get("matched_by") for m in state["messages"]} >= {"reference", "fields", None}
    assert any(m[10].get("reason_codes") for m in state["messages"])
    assert state["invariant"] == []


def test_a_failed_import_stops_the_helper_and_keeps_nothing(
    two_dbs: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = two_dbs[0]
    data = _scenario(db)
    before = _state(db)
    monkeypatch.setattr(messages, "PART", 3)
    monkeypatch.setattr(messages, "POOL_MIN_PARTS", 2)
    written = lifecycle.Batch.write_changed

    def fails_on_second_part(self: lifecycle.Batch) -> None:
        written(self)
        self.parts = getattr(self, "parts", 0) + 1
        if self.parts == 2:
            raise errors.StaleEdit("changed by someone else while this batch was applied")

    monkeypatch.setattr(lifecycle.Batch, "write_changed", fails_on_second_part)
    with pytest.raises(errors.StaleEdit):
        messages.import_bytes(db, SYSTEM, data, "pool.fin", as_of=ISD)
    assert _state(db) == before
    assert mp.active_children() == []  # the helper was stopped, not left behind


def test_incoming_settlement_packs_and_unpacks_to_itself() -> None:
    units = messages.parse_file(_scenario_text(), "pool.fin")
    read = [u.incoming for u in units if u.incoming is not None]
    assert len(read) > 10 and any(inc.statuses for inc in read) and any(inc.settled_quantity for inc in read)
    for inc in read:
        assert incoming.unpack(incoming.pack(inc)) == inc


def _scenario_text() -> bytes:
    from .test_swift_import_parts import _swift

    return "\n$".join(
        [
            _swift("MT548_matched.fin", "OPSP0001", "A"),
            _swift("MT545_partial_settlement.fin", "OPSP0002", "B"),
            _swift("MT548_unmatched_CMIS.fin", "OPSP0003", "C"),
            _swift("MT548_pending_LACK.fin", "OPSP0004", "F"),
            _swift("MT544_receive_free.fin", "OPSFREE1", "E"),
            _swift("MT545_remainder_settled.fin", "OPSP0002", "I"),
            _swift("MT548_unmatched_DDAT.fin", "OPSP0006", "M"),
            _swift("MT548_no_reference_settran.fin", "NONREF", "L"),
        ]
        * 2
    ).encode()
