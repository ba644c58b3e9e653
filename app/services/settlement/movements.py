"""Settling moves securities and cash: the postings of a (partial) settlement and the invariant they keep.

Positions and cash balances change only through movements. The rule (the same as the demo book's, see
``services.demo``): a position's ``traded_quantity`` is the sum of its movements of every kind except SETTLED, its
``settled_quantity`` the sum of every kind except TRADED; cash balances follow the same rule for ``traded_amount``
and ``settled_amount``. A trade books a TRADED movement on trade date; its settlement books a SETTLED one.

Signs: securities + received, − delivered; cash the opposite (+ credit, − debit): a receipt against payment (RVP)
pays the settlement amount, a delivery against payment (DVP) is paid it. Free-of-payment instructions (DFP/RFP)
move no cash. A netted obligation whose cash flows against the securities (we receive securities *and* cash) carries
a negative settlement amount, and the same rule then credits the cash.

Many at once (:class:`SettlementBatch`, :func:`apply_settlements`): the same refusals per settlement, the movements
inserted in bulk and positions and balances moved by one aggregated update per (account, ISIN) and (account,
currency).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from app.models import (
    CashBalance,
    CashMovement,
    InstructionTrade,
    Position,
    SecuritiesMovement,
    SettlementInstruction,
    utcnow,
)
from app.models.enums import InstructionStatus, InstructionType, MovementKind

from ..errors import NotFound, ValidationFailed
from ..permissions import Actor
from . import lifecycle

RECEIVING = frozenset({InstructionType.RVP, InstructionType.RFP})
AGAINST_PAYMENT = frozenset({InstructionType.DVP, InstructionType.RVP})

# T2S settlement amount tolerance: 25 above 100,000 and 2 at or below (in the instruction's currency; the market
# rule is in EUR, applied here to every currency as the book has no FX rates).
TOLERANCE_THRESHOLD = Decimal(100_000)
TOLERANCE_HIGH = Decimal(25)
TOLERANCE_LOW = Decimal(2)


class OverSettlement(ValidationFailed):
    """More would settle than the instruction is for."""


def amount_tolerance(amount: Decimal) -> Decimal:
    """How far a counterparty's or the CSD's settlement amount may differ from ours and still match."""
    return TOLERANCE_HIGH if abs(Decimal(amount)) > TOLERANCE_THRESHOLD else TOLERANCE_LOW


def securities_sign(instruction_type: InstructionType | str) -> int:
    return 1 if lifecycle.as_type(instruction_type) in RECEIVING else -1


def cash_sign(instruction_type: InstructionType | str) -> int:
    """Sign of the cash movement for a positive settlement amount (0 for free of payment)."""
    itype = lifecycle.as_type(instruction_type)
    if itype not in AGAINST_PAYMENT:
        return 0
    return -1 if itype is InstructionType.RVP else 1


def apply_settlement(
    session: Session,
    actor: Actor,
    instruction: SettlementInstruction,
    quantity: Decimal,
    amount: Decimal,
    settled_on: dt.date,
) -> None:
    """Settle ``quantity`` securities against ``amount`` cash of ``instruction`` on ``settled_on``.

    Posts one SETTLED securities movement and (against payment) one SETTLED cash movement, adds them to the
    position and cash balance, adds them to the instruction's settled quantity and amount and moves it to SETTLED
    (everything settled) or PARTIALLY_SETTLED through ``lifecycle``. Refuses a status that cannot settle, a
    non-positive quantity, cash on a free-of-payment instruction, and more than the instruction is for
    (``OverSettlement``); on refusal nothing is posted.
    """
    lifecycle.require_lifecycle_actor(actor)
    qty = Decimal(quantity)
    amt = Decimal(amount)
    itype = InstructionType(instruction.instruction_type)
    new, done_qty, done_amt = check_settlement(instruction, qty, amt)

    trade_ids = list(
        session.scalars(
            select(InstructionTrade.trade_id)
            .where(InstructionTrade.instruction_id == instruction.id)
            .limit(2)
        )
    )
    # A gross instruction's movements name its trade; a netted obligation's name only the instruction.
    trade_id = trade_ids[0] if len(trade_ids) == 1 else None
    sec_qty = securities_sign(itype) * qty
    cash_amt = cash_sign(itype) * amt
    now = utcnow()
    session.add(
        SecuritiesMovement(
            account_id=instruction.account_id,
            instrument_id=instruction.instrument_id,
            kind=MovementKind.SETTLED,
            quantity=sec_qty,
            value_date=settled_on,
            trade_id=trade_id,
            instruction_id=instruction.id,
            created_at=now,
        )
    )
    _add_position(session, instruction.account_id, instruction.instrument_id, sec_qty)
    if cash_amt != 0:
        session.add(
            CashMovement(
                account_id=instruction.account_id,
                currency=instruction.currency,
                kind=MovementKind.SETTLED,
                amount=cash_amt,
                value_date=settled_on,
                trade_id=trade_id,
                instruction_id=instruction.id,
                created_at=now,
            )
        )
        _add_cash(session, instruction.account_id, instruction.currency, cash_amt)
    lifecycle._transition(
        session,
        actor,
        instruction,
        new,
        note=f"settled {qty:f} against {amt:f} {instruction.currency} on {settled_on.isoformat()}",
        changes={
            "settled_quantity": done_qty,
            "settled_amount": done_amt,
            "actual_settlement_date": settled_on,
        },
        details={"settlement": {"quantity": qty, "amount": amt, "settled_on": settled_on}},
    )


@dataclass(frozen=True, slots=True)
class SettlementItem:
    """One settlement for :func:`apply_settlements`: the arguments of :func:`apply_settlement`, by instruction id."""

    instruction_id: int
    quantity: Decimal
    amount: Decimal
    settled_on: dt.date


def check_settlement(
    state: lifecycle.InstructionState | SettlementInstruction, quantity: Decimal, amount: Decimal
) -> tuple[InstructionStatus, Decimal, Decimal]:
    """The refusals of :func:`apply_settlement` for ``state`` as it stands; returns (new status, settled quantity
    after, settled amount after). Raises ``ValidationFailed`` / ``OverSettlement`` / ``InvalidTransition``."""
    ref = state.instruction_ref
    qty = Decimal(quantity)
    amt = Decimal(amount)
    itype = lifecycle.as_type(state.instruction_type)
    if qty <= 0:
        raise ValidationFailed(f"Instruction {ref}: a settlement moves a positive quantity (got {qty}).")
    done_qty = Decimal(state.settled_quantity or 0) + qty
    total_qty = Decimal(state.quantity)
    if done_qty > total_qty:
        raise OverSettlement(
            f"Instruction {ref} is for {total_qty:,f} and {Decimal(state.settled_quantity or 0):,f} have "
            f"settled already: settling {qty:,f} more would over-settle it by {done_qty - total_qty:,f}."
        )
    if itype not in AGAINST_PAYMENT and amt != 0:
        raise ValidationFailed(
            f"Instruction {ref} is free of payment ({itype.value}); a settlement of it moves no cash "
            f"(got {amt:,f} {state.currency})."
        )
    done_amt = Decimal(state.settled_amount or 0) + amt
    total_amt = Decimal(state.settlement_amount)
    if itype in AGAINST_PAYMENT:
        tol = amount_tolerance(total_amt)
        over = abs(done_amt) - abs(total_amt)
        if over > tol or (total_amt != 0 and done_amt * total_amt < 0):
            raise OverSettlement(
                f"Instruction {ref} is for {total_amt:,f} {state.currency} and {Decimal(state.settled_amount or 0):,f} "
                f"have settled already: {amt:,f} more would over-settle the cash beyond the tolerance of {tol}."
            )
    new = InstructionStatus.SETTLED if done_qty == total_qty else InstructionStatus.PARTIALLY_SETTLED
    old = lifecycle.as_status(state.status)
    if not lifecycle.allowed(old, new):
        raise lifecycle.InvalidTransition(ref, old, new, lifecycle.why_not(old, new))
    return new, done_qty, done_amt


class SettlementBatch:
    """Settlements (and other transitions, through ``.lifecycle``) applied in memory and written together.

    :meth:`settle` applies :func:`apply_settlement`'s rules to a state and queues its movements; :meth:`flush`
    inserts every movement in bulk (COPY on PostgreSQL), adds them to positions and cash balances with one
    aggregated update per (account, ISIN) and (account, currency), then writes the instructions
    (``lifecycle.Batch.flush``). Positions and balances still change only through these movements, so the
    invariant holds.
    """

    def __init__(self, session: Session, actor: Actor) -> None:
        self.session = session
        self.lifecycle = lifecycle.Batch(session, actor)
        # (instruction id, account, instrument, signed quantity, value date) / (..., currency, signed amount, ...)
        self._securities: list[tuple[int, int, int, Decimal, dt.date]] = []
        self._cash: list[tuple[int, int, str, Decimal, dt.date]] = []

    def checkpoint(self, state: lifecycle.InstructionState) -> tuple[Any, int, int]:
        return self.lifecycle.checkpoint(state), len(self._securities), len(self._cash)

    def restore(self, state: lifecycle.InstructionState, token: tuple[Any, int, int]) -> None:
        inner, n_sec, n_cash = token
        self.lifecycle.restore(state, inner)
        del self._securities[n_sec:]
        del self._cash[n_cash:]

    def settle(
        self,
        state: lifecycle.InstructionState,
        quantity: Decimal,
        amount: Decimal,
        settled_on: dt.date,
    ) -> None:
        """``apply_settlement`` for a state: the same refusals (nothing queued when refused), movements queued."""
        qty, amt = Decimal(quantity), Decimal(amount)
        new, done_qty, done_amt = check_settlement(state, qty, amt)
        itype = lifecycle.as_type(state.instruction_type)
        self._securities.append(
            (state.id, state.account_id, state.instrument_id, securities_sign(itype) * qty, settled_on)
        )
        cash_amt = cash_sign(itype) * amt
        if cash_amt != 0:
            self._cash.append((state.id, state.account_id, state.currency, cash_amt, settled_on))
        self.lifecycle.transition(
            state,
            new,
            note=f"settled {qty:f} against {amt:f} {state.currency} on {settled_on.isoformat()}",
            changes={
                "settled_quantity": done_qty,
                "settled_amount": done_amt,
                "actual_settlement_date": settled_on,
            },
            # Already as the audit trail writes them (a file settles 100,000: the generic conversion costs).
            details={
                "settlement": {
                    "quantity": lifecycle.canonical_decimal(qty),
                    "amount": lifecycle.canonical_decimal(amt),
                    "settled_on": settled_on.isoformat(),
                }
            },
        )

    def flush(self) -> int:
        """Write the movements, positions, balances and instructions; returns the instructions written."""
        self.post_movements()
        return self.lifecycle.flush()

    def post_movements(self) -> None:
        """Post the movements queued so far (movements, positions, balances)."""
        sec, cash = self._securities, self._cash
        self._securities, self._cash = [], []
        self._post(sec, cash)

    def _post(
        self,
        sec: list[tuple[int, int, int, Decimal, dt.date]],
        cash: list[tuple[int, int, str, Decimal, dt.date]],
    ) -> None:
        from ..capture import bulk  # shared bulk-write helpers (COPY / executemany)

        if not sec and not cash:
            return
        session = self.session
        pg = bulk.is_postgres(session)
        single = _single_trades(session, sorted({r[0] for r in sec} | {r[0] for r in cash}))
        now = bulk.timestamp(utcnow(), session)

        def num(v: Decimal) -> Any:
            return v if pg else float(v)

        if sec:
            insert_rows(
                session,
                "securities_movements",
                ("account_id", "instrument_id", "kind", "quantity", "value_date", "trade_id", "instruction_id",
                 "created_at"),
                [
                    (a, i, MovementKind.SETTLED.value, num(q), d.isoformat(), single.get(iid), iid, now)
                    for iid, a, i, q, d in sec
                ],
            )  # fmt: skip
            per_position: dict[tuple[int, int], Decimal] = {}
            for _, a, i, q, _ in sec:
                per_position[(a, i)] = per_position.get((a, i), Decimal(0)) + q
            _add_aggregated(session, Position, ("account_id", "instrument_id"), "traded_quantity",
                            "settled_quantity", per_position)  # fmt: skip
        if cash:
            insert_rows(
                session,
                "cash_movements",
                ("account_id", "currency", "kind", "amount", "value_date", "trade_id", "instruction_id",
                 "created_at"),
                [
                    (a, c, MovementKind.SETTLED.value, num(q), d.isoformat(), single.get(iid), iid, now)
                    for iid, a, c, q, d in cash
                ],
            )  # fmt: skip
            per_balance: dict[tuple[int, str], Decimal] = {}
            for _, a, c, q, _ in cash:
                per_balance[(a, c)] = per_balance.get((a, c), Decimal(0)) + q
            _add_aggregated(session, CashBalance, ("account_id", "currency"), "traded_amount", "settled_amount",
                            per_balance)  # fmt: skip


# SQLite: from this many rows on, an insert is staged in a temporary table and written by one INSERT ... SELECT.
SQLITE_STAGE_MIN = 64


def insert_rows(session: Session, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> int:
    """``capture.bulk.insert_rows`` for ``rows`` (COPY on PostgreSQL), set-based on SQLite too: a
    large set is staged in a temporary table (one executemany into a table without indexes or keys) and written by
    one ``INSERT ... SELECT``, where a direct executemany runs one statement per row, and with foreign keys on opens
    a statement journal for each."""
    from ..capture import bulk

    n = len(rows)
    if bulk.is_postgres(session) or n < SQLITE_STAGE_MIN:
        return bulk.insert_rows(session, table, columns, list(zip(*rows, strict=True)))
    conn = session.connection()
    cols = ", ".join(columns)
    stage = f"temp.stage_{table}"
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {stage}")
    # No declared types: the values keep the form bound here, and the target's columns apply their affinity on
    # the INSERT ... SELECT exactly as when the same values are bound to an INSERT directly.
    conn.exec_driver_sql(f"CREATE TEMP TABLE stage_{table} ({cols})")
    conn.exec_driver_sql(f"INSERT INTO {stage} VALUES ({', '.join('?' * len(columns))})", rows)
    conn.exec_driver_sql(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} ORDER BY rowid")
    conn.exec_driver_sql(f"DROP TABLE {stage}")
    return n


def _single_trades(session: Session, instruction_ids: list[int]) -> dict[int, int]:
    """Instruction id -> its trade, for the instructions that settle exactly one trade (a gross instruction's
    movements name its trade; a netted obligation's only the instruction)."""
    out: dict[int, int] = {}
    conn = session.connection()
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter: an IN list of thousands of binds costs the server more to plan than to run.
        sql = _SINGLE_TRADES.format(ids="= ANY(%(ids)s)")
        return {int(iid): int(tid) for iid, tid in conn.exec_driver_sql(sql, {"ids": instruction_ids})}
    for i in range(0, len(instruction_ids), 900):
        part = instruction_ids[i : i + 900]
        # Driver-level (a large file makes over a hundred of these; the ORM's compiling cost more than the query).
        sql = _SINGLE_TRADES.format(ids=f"IN ({', '.join('?' * len(part))})")
        for iid, tid in conn.exec_driver_sql(sql, tuple(part)):
            out[int(iid)] = int(tid)
    return out


_SINGLE_TRADES = (
    "SELECT instruction_id, min(trade_id) FROM instruction_trades WHERE instruction_id {ids} "
    "GROUP BY instruction_id HAVING count(*) = 1"
)


def _add_aggregated(
    session: Session,
    model: type,
    keys: tuple[str, str],
    traded: str,
    settled: str,
    sums: dict[tuple[Any, Any], Decimal],
) -> None:
    """settled += sum for each key, one UPDATE per key row (the aggregated sums: a handful of rows per file), and
    a new row for a key that has none yet."""
    table = model.__table__  # type: ignore[attr-defined]
    now = utcnow()
    k1, k2 = (getattr(model, k) for k in keys)
    existing: set[tuple[Any, Any]] = set()
    firsts = sorted({k[0] for k in sums})
    for i in range(0, len(firsts), 900):
        existing.update((a, b) for a, b in session.execute(select(k1, k2).where(k1.in_(firsts[i : i + 900]))))
    items = [(k, v) for k, v in sums.items() if v != 0 or k not in existing]
    upd = (
        update(table)
        .where(table.c[keys[0]] == bindparam("k1"), table.c[keys[1]] == bindparam("k2"))
        .values(
            {settled: table.c[settled] + bindparam("delta", type_=table.c[settled].type), "updated_at": now}
        )
    )
    rows = [{"k1": k[0], "k2": k[1], "delta": v} for k, v in items if k in existing]
    if rows:
        session.connection().execute(upd, rows)
    new_rows = [
        {keys[0]: k[0], keys[1]: k[1], traded: Decimal(0), settled: v, "created_at": now, "updated_at": now}
        for k, v in items
        if k not in existing
    ]
    if new_rows:
        session.execute(insert(model), new_rows)
    for obj in list(session.identity_map.values()):
        if isinstance(obj, model):
            session.expire(obj)


def apply_settlements(session: Session, actor: Actor, items: list[SettlementItem]) -> None:
    """Many settlements at once, in order (several of one instruction apply one after the other), with exactly
    :func:`apply_settlement`'s refusals; all or nothing (the first refusal raises before anything is written)."""
    batch = SettlementBatch(session, actor)
    batch.lifecycle.load(ids=[it.instruction_id for it in items])
    for it in items:
        state = batch.lifecycle.states.get(it.instruction_id)
        if state is None:
            raise NotFound(f"Settlement instruction #{it.instruction_id} does not exist.")
        batch.settle(state, it.quantity, it.amount, it.settled_on)
    batch.flush()


def _add_position(session: Session, account_id: int, instrument_id: int, qty: Decimal) -> None:
    """settled_quantity += qty, atomically in the database (two settlements of one position never lose one)."""
    done = session.execute(
        update(Position)
        .where(Position.account_id == account_id, Position.instrument_id == instrument_id)
        .values(settled_quantity=Position.settled_quantity + qty, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not done:
        session.add(
            Position(
                account_id=account_id,
                instrument_id=instrument_id,
                traded_quantity=Decimal(0),
                settled_quantity=qty,
            )
        )
    session.flush()
    _expire(session, Position, account_id=account_id, instrument_id=instrument_id)


def _add_cash(session: Session, account_id: int, currency: str, amount: Decimal) -> None:
    done = session.execute(
        update(CashBalance)
        .where(CashBalance.account_id == account_id, CashBalance.currency == currency)
        .values(settled_amount=CashBalance.settled_amount + amount, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not done:
        session.add(
            CashBalance(
                account_id=account_id, currency=currency, traded_amount=Decimal(0), settled_amount=amount
            )
        )
    session.flush()
    _expire(session, CashBalance, account_id=account_id, currency=currency)


def _expire(session: Session, model: type, **keys: object) -> None:
    for obj in list(session.identity_map.values()):
        if isinstance(obj, model) and all(getattr(obj, k) == v for k, v in keys.items()):
            session.expire(obj)


# --- the invariant ------------------------------------------------------------------------------------------------

# Half a unit of the last decimal: SQLite stores Numeric as REAL, so sums may carry float noise below that.
_QTY_EPS = "0.0000005"
_AMT_EPS = "0.00005"

_SEC_SUMS = """
    SELECT account_id, instrument_id,
           sum(CASE WHEN kind <> 'SETTLED' THEN quantity ELSE 0 END) AS traded,
           sum(CASE WHEN kind <> 'TRADED' THEN quantity ELSE 0 END) AS settled
    FROM securities_movements GROUP BY account_id, instrument_id
"""
_CASH_SUMS = """
    SELECT account_id, currency,
           sum(CASE WHEN kind <> 'SETTLED' THEN amount ELSE 0 END) AS traded,
           sum(CASE WHEN kind <> 'TRADED' THEN amount ELSE 0 END) AS settled
    FROM cash_movements GROUP BY account_id, currency
"""


def check_invariant(session: Session) -> list[str]:
    """Every position and cash balance that differs from the sum of its movements, in words (empty: consistent).

    Also reports movements with no position or balance row to hold them, and instructions whose settled quantity
    differs from the sum of their SETTLED securities movements.
    """
    problems: list[str] = []
    rows = session.execute(
        text(
            f"""
            SELECT p.account_id, p.instrument_id, p.traded_quantity, p.settled_quantity,
                   coalesce(m.traded, 0), coalesce(m.settled, 0)
            FROM positions p LEFT JOIN ({_SEC_SUMS}) m
              ON m.account_id = p.account_id AND m.instrument_id = p.instrument_id
            WHERE abs(p.traded_quantity - coalesce(m.traded, 0)) > {_QTY_EPS}
               OR abs(p.settled_quantity - coalesce(m.settled, 0)) > {_QTY_EPS}
            UNION ALL
            SELECT m.account_id, m.instrument_id, NULL, NULL, m.traded, m.settled
            FROM ({_SEC_SUMS}) m
            WHERE NOT EXISTS (SELECT 1 FROM positions p
                              WHERE p.account_id = m.account_id AND p.instrument_id = m.instrument_id)
              AND (abs(m.traded) > {_QTY_EPS} OR abs(m.settled) > {_QTY_EPS})
            """
        )
    ).all()
    for acct, inst, traded, settled, m_traded, m_settled in rows:
        if traded is None:
            problems.append(
                f"account #{acct} instrument #{inst}: movements add up to traded {m_traded} / settled "
                f"{m_settled} but there is no position row"
            )
        else:
            problems.append(
                f"position account #{acct} instrument #{inst}: traded {traded} / settled {settled}, movements add "
                f"up to traded {m_traded} / settled {m_settled}"
            )
    rows = session.execute(
        text(
            f"""
            SELECT b.account_id, b.currency, b.traded_amount, b.settled_amount,
                   coalesce(m.traded, 0), coalesce(m.settled, 0)
            FROM cash_balances b LEFT JOIN ({_CASH_SUMS}) m
              ON m.account_id = b.account_id AND m.currency = b.currency
            WHERE abs(b.traded_amount - coalesce(m.traded, 0)) > {_AMT_EPS}
               OR abs(b.settled_amount - coalesce(m.settled, 0)) > {_AMT_EPS}
            UNION ALL
            SELECT m.account_id, m.currency, NULL, NULL, m.traded, m.settled
            FROM ({_CASH_SUMS}) m
            WHERE NOT EXISTS (SELECT 1 FROM cash_balances b
                              WHERE b.account_id = m.account_id AND b.currency = m.currency)
              AND (abs(m.traded) > {_AMT_EPS} OR abs(m.settled) > {_AMT_EPS})
            """
        )
    ).all()
    for acct, ccy, traded, settled, m_traded, m_settled in rows:
        if traded is None:
            problems.append(
                f"account #{acct} {ccy}: cash movements add up to traded {m_traded} / settled {m_settled} but "
                "there is no balance row"
            )
        else:
            problems.append(
                f"cash balance account #{acct} {ccy}: traded {traded} / settled {settled}, movements add up to "
                f"traded {m_traded} / settled {m_settled}"
            )
    rows = session.execute(
        text(
            f"""
            SELECT i.instruction_ref, i.settled_quantity, coalesce(m.q, 0)
            FROM settlement_instructions i LEFT JOIN (
                SELECT instruction_id, sum(abs(quantity)) AS q FROM securities_movements
                WHERE kind = 'SETTLED' AND instruction_id IS NOT NULL GROUP BY instruction_id
            ) m ON m.instruction_id = i.id
            WHERE abs(i.settled_quantity - coalesce(m.q, 0)) > {_QTY_EPS}
            """
        )
    ).all()
    for ref, settled, moved in rows:
        problems.append(f"instruction {ref}: settled quantity {settled} but its movements moved {moved}")
    return problems


def reverse_trade_movements(session: Session, trade_id: int, value_date: dt.date) -> int:
    """Post the opposite of every movement a trade booked (a trade taken off the book, e.g. an out-trade resolved
    as not ours), and move the positions and balances with them. Returns the number of movements posted."""
    now = utcnow()
    # Securities and cash are reversed alike: (movement, its value column, the other key, the balance it feeds and
    # that balance's traded and settled columns).
    sides = (
        (SecuritiesMovement, "quantity", "instrument_id", Position, "traded_quantity", "settled_quantity"),
        (CashMovement, "amount", "currency", CashBalance, "traded_amount", "settled_amount"),
    )
    posted = 0
    for movement, value, key, balance, traded, settled in sides:
        rows = session.execute(
            select(
                movement.account_id, getattr(movement, key), movement.kind, func.sum(getattr(movement, value))
            )
            .where(movement.trade_id == trade_id)
            .group_by(movement.account_id, getattr(movement, key), movement.kind)
        ).all()
        for acct, other, kind, total in rows:
            total = Decimal(total or 0)
            if total == 0:
                continue
            session.add(
                movement(
                    account_id=acct,
                    kind=kind,
                    value_date=value_date,
                    trade_id=trade_id,
                    created_at=now,
                    **{key: other, value: -total},
                )
            )
            # A TRADED movement fed the traded column, a SETTLED one the settled column; any other kind both.
            if kind is MovementKind.TRADED:
                columns = (traded,)
            elif kind is MovementKind.SETTLED:
                columns = (settled,)
            else:
                columns = (traded, settled)
            session.execute(
                update(balance)
                .where(balance.account_id == acct, getattr(balance, key) == other)
                .values({c: getattr(balance, c) - total for c in columns} | {"updated_at": now})
                .execution_options(synchronize_session=False)
            )
            posted += 1
    session.flush()
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Position | CashBalance):
            session.expire(obj)
    return posted
