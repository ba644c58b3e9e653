"""The audit trail: written with the change, hash-chained, append-only in the database, tamper-evident."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.models import AuditEntry, ChangeFeedEntry, Trade
from app.services import audit, changes, concurrency
from app.services.db import Database

from .factories import make_trade


def _count(db: Database, model) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)))


def test_every_change_has_an_audit_entry_and_a_feed_row(db, users) -> None:
    trade_id = make_trade(db)
    before_audit, before_feed = _count(db, AuditEntry), _count(db, ChangeFeedEntry)
    with db.write() as s:
        concurrency.claim(s, users["clerk1"], Trade, trade_id)
    assert _count(db, AuditEntry) == before_audit + 1
    assert _count(db, ChangeFeedEntry) == before_feed + 1
    with db.read() as s:
        entries = audit.history(s, "trades", trade_id)
    assert [(e.action, e.username, e.user_id) for e in entries] == [
        ("trades.claim", "clerk1", users["clerk1"].user_id)
    ]
    assert entries[0].occurred_at.tzinfo is not None


def test_audit_entry_rolls_back_with_the_change(db, users) -> None:
    trade_id = make_trade(db)
    n = _count(db, AuditEntry)
    with pytest.raises(RuntimeError), db.write() as s:
        concurrency.claim(s, users["clerk1"], Trade, trade_id)
        raise RuntimeError("the rest of the operation failed")
    assert _count(db, AuditEntry) == n
    with db.read() as s:
        assert s.scalar(select(Trade.owner_id).where(Trade.id == trade_id)) is None


def test_database_refuses_update_and_delete_of_audit_entries(db, users) -> None:
    assert _count(db, AuditEntry) > 0  # creating the users was audited
    for stmt in ("UPDATE audit_log SET username = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(stmt))
    with db.read() as s:
        assert "mallory" not in s.scalars(select(AuditEntry.username)).all()


def test_chain_verifies_and_detects_tampering(db, users) -> None:
    with db.read() as s:
        report = audit.verify_chain(s)
    assert report.intact and report.entries == _count(db, AuditEntry)

    # A DBA with the power to drop the trigger alters an entry: the chain shows it.
    with db.read() as s:
        victim = s.scalars(select(AuditEntry).order_by(AuditEntry.id).offset(2).limit(1)).one()
    with db.engine.begin() as conn:
        if db.is_postgres:
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        else:
            conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("UPDATE audit_log SET username = 'mallory' WHERE id = :i"), {"i": victim.id})
    with db.read() as s:
        report = audit.verify_chain(s)
    assert not report.intact and report.first_bad_id == victim.id
    assert "altered" in report.problem


def test_change_feed_lets_another_workstation_catch_up(db, users) -> None:
    last = changes.latest_id(db, users["clerk2"])
    trade_id = make_trade(db)
    with db.write() as s:
        concurrency.claim(s, users["clerk1"], Trade, trade_id)
    new = changes.since(db, users["clerk2"], last)
    assert [(c.entity_type, c.entity_id, c.action) for c in new] == [("trades", str(trade_id), "UPDATE")]
    assert changes.since(db, users["clerk2"], new[-1].id) == []
