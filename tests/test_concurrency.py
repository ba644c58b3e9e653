"""Claim and versioned edit, raced over two real connections on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from app.models import AuditEntry, Trade
from app.services import concurrency
from app.services.db import Database
from app.services.errors import AlreadyClaimed, PermissionDenied, StaleEdit, ValidationFailed

from .factories import make_trade
from .helpers import WON, race


def _second_workstation(db: Database) -> Database:
    """Another workstation: its own engine and connection pool on the same database."""
    return Database(db.url)


def test_exactly_one_of_two_competing_clerks_wins_the_claim(db, users) -> None:
    trade_id = make_trade(db)
    other = _second_workstation(db)

    def attempt(name: str, database: Database) -> None:
        with database.write() as s:
            concurrency.claim(s, users[name], Trade, trade_id)

    outcomes = race(
        {"clerk1": lambda: attempt("clerk1", db), "clerk2": lambda: attempt("clerk2", other)}, AlreadyClaimed
    )
    other.dispose()

    winners = [n for n, o in outcomes.items() if o == WON]
    losers = [o for o in outcomes.values() if isinstance(o, AlreadyClaimed)]
    assert len(winners) == 1 and len(losers) == 1
    assert f"already claimed by {winners[0]}" in str(losers[0])
    with db.read() as s:
        owner = s.scalar(select(Trade.owner_id).where(Trade.id == trade_id))
        claims = s.scalars(select(AuditEntry).where(AuditEntry.action == "trades.claim")).all()
    assert owner == users[winners[0]].user_id
    assert [c.username for c in claims] == winners  # only the winner's claim is in the audit trail


def test_reclaiming_own_item_is_fine_and_release_frees_it(db, users) -> None:
    trade_id = make_trade(db)
    with db.write() as s:
        concurrency.claim(s, users["clerk1"], Trade, trade_id)
        concurrency.claim(s, users["clerk1"], Trade, trade_id)
    with pytest.raises(AlreadyClaimed), db.write() as s:
        concurrency.release(s, users["clerk2"], Trade, trade_id)
    with db.write() as s:
        concurrency.release(s, users["clerk1"], Trade, trade_id)
    with db.write() as s:
        concurrency.claim(s, users["clerk2"], Trade, trade_id)
    with db.read() as s:
        assert s.scalar(select(Trade.owner_id).where(Trade.id == trade_id)) == users["clerk2"].user_id


def test_auditor_cannot_claim(db, users) -> None:
    trade_id = make_trade(db)
    with pytest.raises(PermissionDenied, match="auditor"), db.write() as s:
        concurrency.claim(s, users["auditor"], Trade, trade_id)


def test_stale_edit_is_refused_with_who_and_when(db, users) -> None:
    trade_id = make_trade(db)
    other = _second_workstation(db)
    with db.read() as s:
        seen = s.scalar(select(Trade.version).where(Trade.id == trade_id))
    # Both clerks loaded the same version; clerk2 saves first from the other workstation.
    with other.write() as s:
        concurrency.versioned_update(s, users["clerk2"], Trade, trade_id, seen, {"price": Decimal("190.00")})
    other.dispose()
    with pytest.raises(StaleEdit) as err, db.write() as s:
        concurrency.versioned_update(s, users["clerk1"], Trade, trade_id, seen, {"price": Decimal("150.00")})
    message = str(err.value)
    assert "changed by clerk2 at " in message and "reload" in message
    with db.read() as s:
        trade = s.get(Trade, trade_id)
        assert trade.price == Decimal("190.00") and trade.version == seen + 1
        assert trade.updated_by_id == users["clerk2"].user_id
        edits = s.scalars(select(AuditEntry).where(AuditEntry.action == "trades.edit")).all()
    assert len(edits) == 1
    assert edits[0].before == {"price": "189.25"} and edits[0].after == {"price": "190"}


def test_versioned_edit_cannot_touch_bookkeeping_columns(db, users) -> None:
    trade_id = make_trade(db)
    with pytest.raises(ValidationFailed, match="version"), db.write() as s:
        concurrency.versioned_update(s, users["clerk1"], Trade, trade_id, 1, {"version": 99})
