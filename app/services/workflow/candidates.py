"""Suggested matches for a missing record: the open breaks of the other side ranked by how close they are.

For a MISSING_INTERNAL break (the outside world has a record we lack) the candidates are the open
MISSING_EXTERNAL breaks of the same recon definition (our records the outside world lacks), and the other way
round. Each candidate gets a score from 0 to 100 and the reasons a clerk reads before proposing a manual match:

* same ISIN (35; a different ISIN scores nothing for it),
* amount at stake: equal (25), or within 5% (scaled down with the distance),
* quantity: equal (20), or a part of it (8: partial fills against a block),
* date (trade, settlement or value date, whichever both records carry): same day 10, within 2 days 6, 5 days 3,
* same counterparty (10),
* one side's reference appearing in the other's record (10).

Records are the field dicts the recon engine stored on the break (``internal_record`` / ``external_record``, keys
named after the definition's fields); amounts fall back to the break's own amount. Candidates in another currency
are not offered. A FIELD_MISMATCH or DUPLICATE_KEY break has no candidates (both sides are already known).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select

from app.models import Break
from app.models.enums import BreakStatus, BreakType
from app.services.db import Database
from app.services.errors import NotFound
from app.services.permissions import Actor, Permission, require

MAX_SCANNED = 50_000  # open breaks of one side read per request (a definition's backlog, not its history)
_DATE_KEYS = ("trade_date", "settlement_date", "value_date", "booking_date", "date", "as_of_date")
_CPTY_KEYS = ("counterparty", "counterparty_code", "cpty", "counterparty_bic", "bic")
_QTY_KEYS = ("quantity", "settled_quantity", "qty", "nominal")
_AMOUNT_KEYS = ("amount", "settlement_amount", "net_amount", "gross_amount", "value")


@dataclass(frozen=True)
class Candidate:
    break_id: int
    break_type: str
    ref: str | None  # the candidate's record reference
    score: int  # 0-100, higher is closer
    reasons: list[str] = field(default_factory=list)
    amount: Decimal = Decimal(0)
    currency: str | None = None
    status: str = ""
    owner_id: int | None = None
    record: dict[str, Any] | None = None


def _num(value: Any) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        out = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return out if out.is_finite() else None


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value if not isinstance(value, dt.datetime) else value.date()
    if isinstance(value, str) and len(value) >= 10:
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _first(record: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, Any] | None:
    for k in keys:
        if record.get(k) not in (None, ""):
            return k, record[k]
    return None


def _text(value: Any) -> str:
    return str(value).strip().upper()


def _score(
    mine: dict[str, Any],
    my_ref: str | None,
    my_amount: Decimal,
    theirs: dict[str, Any],
    ref: str | None,
    amount: Decimal,
) -> tuple[int, list[str]]:
    points = 0
    reasons: list[str] = []
    a, b = mine.get("isin"), theirs.get("isin")
    if a and b:
        if _text(a) == _text(b):
            points += 35
            reasons.append(f"same ISIN {_text(a)}")
        else:
            reasons.append(f"different ISIN ({_text(b)})")
    x = _num(_first(mine, _AMOUNT_KEYS)[1]) if _first(mine, _AMOUNT_KEYS) else my_amount
    y = _num(_first(theirs, _AMOUNT_KEYS)[1]) if _first(theirs, _AMOUNT_KEYS) else amount
    if x is not None and y is not None and (x or y):
        base = max(abs(x), abs(y))
        rel = abs(abs(x) - abs(y)) / base if base else Decimal(0)
        if rel == 0:
            points += 25
            reasons.append("same amount")
        elif rel <= Decimal("0.05"):
            points += int(25 * (1 - float(rel) / 0.05))
            reasons.append(f"amount within {float(rel) * 100:.2f}% ({abs(abs(x) - abs(y))} apart)")
    qa, qb = _first(mine, _QTY_KEYS), _first(theirs, _QTY_KEYS)
    if qa and qb:
        q1, q2 = _num(qa[1]), _num(qb[1])
        if q1 is not None and q2 is not None:
            if q1 == q2:
                points += 20
                reasons.append(f"same quantity {q1.normalize():f}")
            elif q1 and q2 and abs(q2) < abs(q1):
                points += 8
                reasons.append(f"quantity {q2.normalize():f} of {q1.normalize():f} (part of it)")
    for key in _DATE_KEYS:
        d1, d2 = _date(mine.get(key)), _date(theirs.get(key))
        if d1 and d2:
            days = abs((d1 - d2).days)
            label = key.replace("_", " ")
            if days == 0:
                points += 10
                reasons.append(f"same {label}")
            elif days <= 2:
                points += 6
                reasons.append(f"{label} {days} day{'s' if days > 1 else ''} apart")
            elif days <= 5:
                points += 3
                reasons.append(f"{label} {days} days apart")
            break
    ca, cb = _first(mine, _CPTY_KEYS), _first(theirs, _CPTY_KEYS)
    if ca and cb and _text(ca[1]) == _text(cb[1]):
        points += 10
        reasons.append(f"same counterparty {ca[1]}")
    values_mine = {_text(v) for v in mine.values() if isinstance(v, str | int)}
    values_theirs = {_text(v) for v in theirs.values() if isinstance(v, str | int)}
    if (ref and _text(ref) in values_mine) or (my_ref and _text(my_ref) in values_theirs):
        points += 10
        reasons.append("the reference appears in the other record")
    return min(points, 100), reasons


def candidates(db: Database, actor: Actor, break_id: int, limit: int = 10) -> list[Candidate]:
    """The ``limit`` open breaks of the other side closest to this missing record, best first."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        brk = s.get(Break, break_id)
        if brk is None:
            raise NotFound(f"Break #{break_id} does not exist (it may have been deleted).")
        if brk.break_type == BreakType.MISSING_INTERNAL:
            other, mine, my_ref = BreakType.MISSING_EXTERNAL, brk.external_record, brk.external_ref
        elif brk.break_type == BreakType.MISSING_EXTERNAL:
            other, mine, my_ref = BreakType.MISSING_INTERNAL, brk.internal_record, brk.internal_ref
        else:
            return []
        q = select(
            Break.id,
            Break.break_type,
            Break.internal_ref,
            Break.external_ref,
            Break.internal_record,
            Break.external_record,
            Break.amount,
            Break.currency,
            Break.status,
            Break.owner_id,
        ).where(
            Break.definition_id == brk.definition_id,
            Break.break_type == other,
            Break.status.in_((BreakStatus.OPEN, BreakStatus.ASSIGNED)),
            Break.id != brk.id,
        )
        if brk.currency:
            q = q.where((Break.currency == brk.currency) | Break.currency.is_(None))
        rows = s.execute(q.order_by(Break.id).limit(MAX_SCANNED)).all()
    my_record = dict(mine or {})
    scored: list[Candidate] = []
    for r in rows:
        ref = r.internal_ref if other == BreakType.MISSING_EXTERNAL else r.external_ref
        record = dict((r.internal_record if other == BreakType.MISSING_EXTERNAL else r.external_record) or {})
        score, reasons = _score(my_record, my_ref, brk.amount, record, ref, r.amount)
        if score <= 0:
            continue
        scored.append(
            Candidate(
                break_id=r.id,
                break_type=r.break_type.value,
                ref=ref,
                score=score,
                reasons=reasons,
                amount=r.amount,
                currency=r.currency,
                status=r.status.value,
                owner_id=r.owner_id,
                record=record or None,
            )
        )
    scored.sort(key=lambda c: (-c.score, c.break_id))
    return scored[: max(0, limit)]
