"""Fails: what is failing, for how long, what it is worth and costs; futures give-ups and out-trades.

**The fails list** (``list_fails``): FAILED instructions and those past their intended settlement date (ISD) that
have not settled (PENDING never sent, INSTRUCTED/MATCHED unmatched or pending, PARTIALLY_SETTLED remainders), plus
open give-ups and out-trades. Each with its reason in words, its age in business days of its market's calendar
(from the ISD), the value at stake (the cash still to settle; the reference value for free-of-payment items), the
penalties accrued, its deadline and a priority.

*Deadline*: the end of the CSDR extension period, after which a buy-in would be due - 4 business days after the
ISD for liquid shares, 7 for everything else. *Priority* (1 high, 2 medium, 3 low): high when the deadline is at
most one business day away or the value at stake is at least USD 1,000,000 (converted with ``APPROX_USD``, for
ranking only), medium from USD 100,000 or an age of 2 business days, else low. The list is ordered by priority,
days to deadline and value.

**CSDR-style penalties** (``accrue_penalties``): one ``FailPenalty`` per instruction and business day (market
calendar, ``market_holidays`` included) that ended without settlement, from the ISD up to but not including
``as_of`` (a day is penalised once it is over): rate (bp/day, ``RATES_BP`` by the instrument's liquidity class) x
reference value (unsettled quantity x reference price x contract size; bonds are quoted in % of nominal), rounded
half up to the currency's minor unit. Instructions that settled late are penalised for the days they were late.
PENDING items were never sent to the CSD and are not penalised (they show as missed cut-offs). *Direction*: the
failing party pays - LACK on our delivery or MONY on our receipt is our fail (DEBIT); LACK/MONY of the other side,
and unmatched items we instructed on time, are the counterparty's (CREDIT); unmatched items we instructed after the
ISD are ours. Idempotent: a day already accrued is never accrued again.

**Give-ups and out-trades** are rows of the settlement queue with ``exception_kind`` set and their details in
``clearing_exceptions``; they move through the same lifecycle (audited):

- give-up: raised → INSTRUCTED (state RAISED); take-up acknowledged → SETTLED (state ACKNOWLEDGED), the trade moves
  to the new clearing broker; take-up rejected → FAILED ``REJT`` (state REJECTED), re-sent → INSTRUCTED; cancelled.
- out-trade: raised → FAILED ``OUTT`` (state RAISED); acknowledged (the counterparty is investigating) stays FAILED
  (state ACKNOWLEDGED); resolved RECOGNISED → SETTLED (the trade stands) or NOT_OURS → CANCELLED (the trade is
  cancelled and its movements reversed); state RESOLVED.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.models import (
    Counterparty,
    FailPenalty,
    InstructionTrade,
    Instrument,
    SettlementInstruction,
    Trade,
    utcnow,
)
from app.models.enums import (
    AssetClass,
    ChangeAction,
    ClearingExceptionState,
    InstructionStatus,
    InstructionType,
    Liquidity,
    PenaltyDirection,
    SettlementExceptionKind,
    Side,
    TradeStatus,
)
from app.models.settlement import ClearingException

from .. import audit
from ..calendars import get_calendar
from ..capture import bulk
from ..db import Database
from ..errors import NotFound, ValidationFailed
from ..permissions import Actor, Permission, require
from . import lifecycle, movements

S = InstructionStatus

RATES_BP: dict[Liquidity, Decimal] = {
    Liquidity.LIQUID_SHARE: Decimal("1"),
    Liquidity.ILLIQUID_SHARE: Decimal("0.5"),
    Liquidity.SOVEREIGN_DEBT: Decimal("0.1"),
    Liquidity.OTHER_DEBT: Decimal("0.2"),
    Liquidity.NOT_APPLICABLE: Decimal("0"),
}
# CSDR extension period before a buy-in: 4 business days for liquid shares, 7 for other instruments.
EXTENSION_DAYS: dict[Liquidity, int] = {Liquidity.LIQUID_SHARE: 4}
DEFAULT_EXTENSION_DAYS = 7
# Rough USD value of one unit of a currency, to rank items of different currencies (never to book anything).
APPROX_USD: dict[str, float] = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CHF": 1.13, "JPY": 0.0067}
HIGH_VALUE_USD = 1_000_000
MEDIUM_VALUE_USD = 100_000
WHOLE_UNIT_CURRENCIES = frozenset({"JPY", "KRW", "HUF", "ISK", "CLP"})

# Reasons of the exception kinds (the market codes are in demo_data.REASON_TEXTS / the messages parser's table).
REASON_WORDS: dict[str, str] = {
    "CMIS": "Unmatched: no counterparty instruction received",
    "DDAT": "Unmatched: settlement date differs from the counterparty's",
    "DQUA": "Unmatched: quantity differs from the counterparty's",
    "DMON": "Unmatched: settlement amount differs beyond tolerance",
    "DSEC": "Unmatched: financial instrument differs",
    "DEPT": "Unmatched: place of settlement differs",
    "DELN": "Unmatched: direction (deliver / receive) differs",
    "LACK": "Pending: lack of securities at the delivering party",
    "MONY": "Pending: insufficient cash at the receiving party",
    "OUTT": "Out-trade: the counterparty does not recognise the trade",
    "REJT": "Give-up rejected: the clearing broker refused the take-up",
}
_PENALISED = (S.FAILED, S.INSTRUCTED, S.MATCHED, S.PARTIALLY_SETTLED, S.SETTLED)
_PG_LOCK_KEY = 0x5E77FA  # one penalty run at a time on the shared database


def reason_words(code: str | None, text_: str | None = None) -> str:
    """A reason code in words (the stored text when the code is unknown)."""
    if not code:
        return text_ or ""
    return REASON_WORDS.get(code.upper(), text_ or code)


def _minor(currency: str) -> Decimal:
    return Decimal(1) if currency in WHOLE_UNIT_CURRENCIES else Decimal("0.01")


def _reference_value(qty: Decimal, price: Decimal, contract_size: Decimal, asset_class: str) -> Decimal:
    value = qty * price * contract_size
    if asset_class in (AssetClass.GOVT_BOND.value, AssetClass.CORP_BOND.value):
        value = value / 100  # bonds are quoted in % of nominal
    return value


# =====================================================================================================================
# Penalties
# =====================================================================================================================


@dataclass
class AccrueResult:
    as_of: dt.date
    added: int = 0
    instructions: int = 0
    totals: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # currency -> DEBIT/CREDIT -> amount
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of,
            "penalties_added": self.added,
            "instructions": self.instructions,
            "totals": self.totals,
            "seconds": round(self.seconds, 3),
        }

    def __str__(self) -> str:
        if not self.added:
            return f"No new penalties up to {self.as_of} (every failing day is already accrued)."
        parts = []
        for ccy, d in sorted(self.totals.items()):
            parts.append(
                f"{ccy} we pay {d.get('DEBIT', Decimal(0)):,.2f} / we receive {d.get('CREDIT', Decimal(0)):,.2f}"
            )
        return (
            f"Accrued {self.added:,} daily penalties on {self.instructions:,} instruction(s) up to {self.as_of}: "
            + "; ".join(parts)
            + "."
        )


def accrue_penalties(db: Database, actor: Actor, as_of: dt.date | None = None) -> AccrueResult:
    """Accrue the daily CSDR penalties of every failing day before ``as_of`` (default today) not yet accrued."""
    require(actor, Permission.RUN_PROCESSES)
    with db.write() as s:
        return accrue_in_session(s, actor, as_of or dt.date.today())


def _candidates(session: Session, as_of: dt.date) -> pd.DataFrame:
    statuses = ", ".join(f"'{x.value}'" for x in _PENALISED)
    rows = session.execute(
        text(
            f"""
            SELECT si.id, si.instruction_type, si.status, si.reason_code, si.intended_settlement_date AS isd,
                   si.actual_settlement_date AS asd, si.instructed_at, si.quantity, si.settled_quantity,
                   si.currency, i.reference_price, i.contract_size, i.asset_class, i.liquidity, m.mic
            FROM settlement_instructions si
            JOIN instruments i ON i.id = si.instrument_id
            JOIN markets m ON m.id = i.market_id
            WHERE si.exception_kind IS NULL AND si.status IN ({statuses})
              AND si.intended_settlement_date < :as_of
              AND (si.status <> 'SETTLED' OR si.actual_settlement_date > si.intended_settlement_date)
            """
        ),
        {"as_of": as_of},
    ).all()
    return pd.DataFrame(
        rows,
        columns=[
            "id", "itype", "status", "reason", "isd", "asd", "instructed_at", "qty", "settled_qty",
            "currency", "price", "contract_size", "asset_class", "liquidity", "mic",
        ],
    )  # fmt: skip


def _direction(itype: str, reason: str | None, instructed_late: bool) -> PenaltyDirection:
    delivering = itype in (InstructionType.DVP.value, InstructionType.DFP.value)
    code = reason.upper() if isinstance(reason, str) else ""
    if code == "LACK":
        return PenaltyDirection.DEBIT if delivering else PenaltyDirection.CREDIT
    if code == "MONY":
        return PenaltyDirection.CREDIT if delivering else PenaltyDirection.DEBIT
    return PenaltyDirection.DEBIT if instructed_late else PenaltyDirection.CREDIT


def accrue_in_session(session: Session, actor: Actor, as_of: dt.date) -> AccrueResult:
    """``accrue_penalties`` in the caller's unit of work."""
    require(actor, Permission.RUN_PROCESSES)
    started = time.perf_counter()
    result = AccrueResult(as_of=as_of)
    if bulk.is_postgres(session):
        session.connection().exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
    cand = _candidates(session, as_of)
    if cand.empty:
        result.seconds = time.perf_counter() - started
        return result
    # Business days per instruction: [isd, end) where end = min(asd, as_of) for late settlements, else as_of.
    cand["isd"] = pd.to_datetime(cand["isd"]).values.astype("datetime64[D]")
    asd = pd.to_datetime(cand["asd"]).values.astype("datetime64[D]")
    end = np.full(len(cand), np.datetime64(as_of, "D"))
    late = (cand["status"].astype(str) == S.SETTLED.value).to_numpy() & ~np.isnat(asd)
    end[late] = np.minimum(asd[late], end[late])
    cand["end"] = end
    days_parts: list[pd.DataFrame] = []
    for mic, grp in cand.groupby("mic", sort=True):
        cal = get_calendar(str(mic), session)
        start = grp["isd"].to_numpy().astype("datetime64[D]")
        stop = grp["end"].to_numpy().astype("datetime64[D]")
        counts = cal.business_days_between_array(start, stop)
        counts = np.maximum(counts, 0)
        if counts.sum() == 0:
            continue
        rep = np.repeat(np.arange(len(grp)), counts)
        # k-th business day on or after the ISD: offset k from the first business day on or after it.
        first = cal.add_business_days_array(start, 0)
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        day = cal.add_business_days_array(first[rep], offsets)
        days_parts.append(pd.DataFrame({"id": grp["id"].to_numpy()[rep], "penalty_date": day}))
    if not days_parts:
        result.seconds = time.perf_counter() - started
        return result
    days = pd.concat(days_parts, ignore_index=True)
    existing = pd.DataFrame(
        session.execute(
            select(FailPenalty.instruction_id, FailPenalty.penalty_date).where(
                FailPenalty.instruction_id.in_(
                    select(SettlementInstruction.id).where(
                        SettlementInstruction.intended_settlement_date < as_of,
                        SettlementInstruction.exception_kind.is_(None),
                    )
                )
            )
        ).all(),
        columns=["id", "penalty_date"],
    )
    if not existing.empty:
        existing["penalty_date"] = pd.to_datetime(existing["penalty_date"]).values.astype("datetime64[D]")
        merged = days.merge(existing.assign(_have=True), on=["id", "penalty_date"], how="left")
        days = merged[merged["_have"].isna()].drop(columns="_have")
    if days.empty:
        result.seconds = time.perf_counter() - started
        return result
    info = cand.set_index("id")
    rows: list[tuple[Any, ...]] = []
    now = utcnow()
    per_instruction: dict[int, tuple[Decimal, Decimal, str, str, str | None]] = {}
    for iid, r in info.iterrows():
        liquidity = Liquidity(str(r["liquidity"]))
        rate = RATES_BP[liquidity]
        qty = Decimal(r["qty"])
        if str(r["status"]) == S.PARTIALLY_SETTLED.value:
            qty = qty - Decimal(r["settled_qty"] or 0)
        ref_value = _reference_value(
            qty, Decimal(r["price"]), Decimal(r["contract_size"] or 1), str(r["asset_class"])
        ).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
        instructed = r["instructed_at"]
        late = False
        if instructed is not None and not pd.isna(instructed):
            late = pd.Timestamp(instructed).date() > pd.Timestamp(r["isd"]).date()
        reason = r["reason"] if isinstance(r["reason"], str) else None  # pandas gives NaN for NULL
        direction = _direction(str(r["itype"]), reason, late)
        per_instruction[int(iid)] = (ref_value, rate, str(r["currency"]), direction.value, reason)
    for iid, day in zip(days["id"].tolist(), days["penalty_date"].tolist(), strict=True):
        ref_value, rate, ccy, direction, reason = per_instruction[int(iid)]
        if rate == 0:
            continue
        amount = (ref_value * rate / Decimal(10_000)).quantize(_minor(ccy), rounding=ROUND_HALF_UP)
        rows.append((int(iid), dt.date.fromisoformat(str(np.datetime64(day, "D"))), ref_value, rate, amount, ccy,
                     direction, reason))  # fmt: skip
        totals = result.totals.setdefault(ccy, {})
        totals[direction] = totals.get(direction, Decimal(0)) + amount
    if not rows:
        result.seconds = time.perf_counter() - started
        return result
    cols = list(zip(*rows, strict=True))
    pg = bulk.is_postgres(session)

    def money(values: tuple[Any, ...]) -> list[Any]:
        return [v if pg else float(v) for v in values]

    bulk.insert_rows(
        session,
        "fail_penalties",
        [
            "instruction_id", "penalty_date", "reference_value", "rate_bp", "amount", "currency", "direction",
            "reason_code", "accrued_at",
        ],
        [
            list(cols[0]),
            [d.isoformat() for d in cols[1]],
            money(cols[2]),
            money(cols[3]),
            money(cols[4]),
            list(cols[5]),
            list(cols[6]),
            list(cols[7]),
            [bulk.timestamp(now, session)] * len(rows),
        ],
    )  # fmt: skip
    result.added = len(rows)
    result.instructions = len({r[0] for r in rows})
    result.seconds = time.perf_counter() - started
    audit.record(
        session,
        actor,
        "settlement.penalties",
        "fail_penalties",
        None,
        after=result.as_dict(),
        change=ChangeAction.BULK,
        summary={"action": "settlement.penalties", "added": result.added},
    )
    return result


# =====================================================================================================================
# The fails list
# =====================================================================================================================


@dataclass
class FailItem:
    id: int
    instruction_ref: str
    status: str
    exception_kind: str | None
    reason_code: str | None
    reason: str
    counterparty: str
    isin: str
    account: str
    market: str
    instruction_type: str
    intended_settlement_date: dt.date
    age_days: int
    value_at_stake: Decimal
    currency: str
    penalty_debit: Decimal
    penalty_credit: Decimal
    deadline: dt.date
    days_to_deadline: int
    priority: int
    owner_id: int | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def list_fails(
    db: Database, actor: Actor, *, as_of: dt.date | None = None, limit: int | None = None
) -> list[FailItem]:
    """The failing items as of ``as_of`` (default today), most urgent first."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        return fails_in_session(s, as_of or dt.date.today(), limit=limit)


def fails_in_session(session: Session, as_of: dt.date, *, limit: int | None = None) -> list[FailItem]:
    rows = session.execute(
        text(
            """
            SELECT si.id, si.instruction_ref, si.status, si.exception_kind, si.reason_code, si.reason_text,
                   c.code, i.isin, a.code, m.mic, si.instruction_type, si.intended_settlement_date,
                   si.quantity, si.settled_quantity, si.settlement_amount, si.settled_amount, si.currency,
                   i.reference_price, i.contract_size, i.asset_class, i.liquidity, si.owner_id,
                   coalesce(p.debit, 0), coalesce(p.credit, 0)
            FROM settlement_instructions si
            JOIN instruments i ON i.id = si.instrument_id
            JOIN markets m ON m.id = i.market_id
            JOIN counterparties c ON c.id = si.counterparty_id
            JOIN accounts a ON a.id = si.account_id
            LEFT JOIN (
                SELECT instruction_id,
                       sum(CASE WHEN direction = 'DEBIT' THEN amount ELSE 0 END) AS debit,
                       sum(CASE WHEN direction = 'CREDIT' THEN amount ELSE 0 END) AS credit
                FROM fail_penalties GROUP BY instruction_id
            ) p ON p.instruction_id = si.id
            WHERE si.status NOT IN ('SETTLED', 'CANCELLED')
              AND (si.status = 'FAILED' OR si.exception_kind IS NOT NULL OR si.intended_settlement_date < :as_of)
            """
        ),
        {"as_of": as_of},
    ).all()
    items: list[FailItem] = []
    for r in rows:
        (iid, ref, status, kind, code, rtext, cpty, isin, acct, mic, itype, isd, qty, sqty, amt, samt, ccy,
         price, csize, aclass, liq, owner, debit, credit) = r  # fmt: skip
        cal = get_calendar(mic, session)
        isd = isd if isinstance(isd, dt.date) else dt.date.fromisoformat(str(isd))
        age = max(cal.business_days_between(isd, as_of), 0)
        liquidity = Liquidity(str(liq))
        deadline = cal.add_business_days(isd, EXTENSION_DAYS.get(liquidity, DEFAULT_EXTENSION_DAYS))
        to_deadline = cal.business_days_between(as_of, deadline)
        remaining_qty = Decimal(qty) - Decimal(sqty or 0)
        if str(itype) in (InstructionType.DVP.value, InstructionType.RVP.value):
            value = abs(Decimal(amt) - Decimal(samt or 0))
        else:
            value = _reference_value(remaining_qty, Decimal(price), Decimal(csize or 1), str(aclass))
        value = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        usd = float(value) * APPROX_USD.get(str(ccy), 1.0)
        if to_deadline <= 1 or usd >= HIGH_VALUE_USD:
            priority = 1
        elif usd >= MEDIUM_VALUE_USD or age >= 2:
            priority = 2
        else:
            priority = 3
        items.append(
            FailItem(
                id=int(iid),
                instruction_ref=ref,
                status=str(status),
                exception_kind=None if kind is None else str(kind),
                reason_code=code,
                reason=reason_words(code, rtext)
                or ("Not instructed: the cut-off was missed" if str(status) == S.PENDING.value else ""),
                counterparty=cpty,
                isin=isin,
                account=acct,
                market=mic,
                instruction_type=str(itype),
                intended_settlement_date=isd,
                age_days=int(age),
                value_at_stake=value,
                currency=str(ccy),
                penalty_debit=Decimal(debit).quantize(Decimal("0.01")),
                penalty_credit=Decimal(credit).quantize(Decimal("0.01")),
                deadline=deadline,
                days_to_deadline=int(to_deadline),
                priority=priority,
                owner_id=owner,
            )
        )
    items.sort(
        key=lambda x: (
            x.priority,
            x.days_to_deadline,
            -float(x.value_at_stake) * APPROX_USD.get(x.currency, 1.0),
            x.id,
        )
    )
    return items[:limit] if limit is not None else items


# =====================================================================================================================
# Give-ups and out-trades
# =====================================================================================================================


def _exception_for(session: Session, exception_id: int, kind: SettlementExceptionKind) -> ClearingException:
    exc = session.get(ClearingException, exception_id, with_for_update=True)
    if exc is None or exc.kind != kind:
        words = "give-up" if kind is SettlementExceptionKind.GIVE_UP else "out-trade"
        raise NotFound(f"There is no {words} #{exception_id}.")
    return exc


def _check_state(exc: ClearingException, allowed: tuple[ClearingExceptionState, ...], doing: str) -> None:
    if exc.state not in allowed:
        words = "give-up" if exc.kind == SettlementExceptionKind.GIVE_UP else "out-trade"
        raise ValidationFailed(
            f"The {words} #{exc.id} is {ClearingExceptionState(exc.state).value}; it cannot be {doing} "
            f"(only when {' or '.join(a.value for a in allowed)})."
        )


def _exception_row(
    session: Session,
    actor: Actor,
    trade: Trade,
    kind: SettlementExceptionKind,
    status: InstructionStatus,
    *,
    counterparty_id: int,
    reason_code: str | None,
    reason_text: str | None,
) -> SettlementInstruction:
    prefix = "GIVE" if kind is SettlementExceptionKind.GIVE_UP else "OUTT"
    now = utcnow()
    inst = SettlementInstruction(
        instruction_ref=f"TMP{prefix}{trade.id}-{now.timestamp():.6f}"[:35],
        instruction_type=InstructionType.RVP if trade.side == Side.BUY else InstructionType.DVP,
        is_netted=False,
        account_id=trade.account_id,
        counterparty_id=counterparty_id,
        instrument_id=trade.instrument_id,
        quantity=Decimal(trade.quantity),
        settlement_amount=Decimal(trade.net_amount),
        currency=trade.currency,
        trade_date=trade.trade_date,
        intended_settlement_date=trade.settlement_date or trade.trade_date,
        settled_quantity=Decimal(0),
        settled_amount=Decimal(0),
        status=status,
        reason_code=reason_code,
        reason_text=reason_text,
        our_ssi_id=trade.our_ssi_id,
        their_ssi_id=trade.their_ssi_id,
        instructed_at=now if status is not S.PENDING else None,
        exception_kind=kind,
        version=1,
        created_at=now,
        updated_at=now,
        updated_by_id=actor.user_id,
    )
    session.add(inst)
    session.flush()
    inst.instruction_ref = f"{prefix}{inst.id:012d}"
    session.add(InstructionTrade(instruction_id=inst.id, trade_id=trade.id))
    session.flush()
    return inst


def _futures_trade(session: Session, trade_id: int, doing: str) -> Trade:
    trade = session.get(Trade, trade_id)
    if trade is None:
        raise NotFound(f"Trade #{trade_id} does not exist.")
    if trade.status in (TradeStatus.CANCELLED, TradeStatus.REPAIR) or trade.instrument_id is None:
        raise ValidationFailed(f"Trade {trade.trade_ref} is {trade.status}; it cannot be {doing}.")
    if trade.account_id is None or trade.counterparty_id is None:
        raise ValidationFailed(f"Trade {trade.trade_ref} has no account or counterparty; repair it first.")
    return trade


def _open_exception(
    session: Session, trade_id: int, kind: SettlementExceptionKind
) -> ClearingException | None:
    return session.scalar(
        select(ClearingException).where(
            ClearingException.trade_id == trade_id,
            ClearingException.kind == kind,
            ClearingException.state.in_(
                [
                    ClearingExceptionState.RAISED,
                    ClearingExceptionState.ACKNOWLEDGED,
                    ClearingExceptionState.REJECTED,
                ]
            )
            if kind is SettlementExceptionKind.OUT_TRADE
            else ClearingException.state.in_(
                [ClearingExceptionState.RAISED, ClearingExceptionState.REJECTED]
            ),
        )
    )


def _audit_exception(
    session: Session, actor: Actor, action: str, exc: ClearingException, **after: Any
) -> None:
    audit.record(
        session,
        actor,
        f"clearing_exceptions.{action}",
        "settlement_instructions",
        exc.instruction_id,
        after={
            "exception_id": exc.id,
            "kind": exc.kind,
            "state": exc.state,
            "trade_id": exc.trade_id,
            **after,
        },
        change=ChangeAction.UPDATE,
    )


def raise_give_up(
    session: Session, actor: Actor, trade_id: int, to_counterparty_id: int, reason: str = ""
) -> ClearingException:
    """Give a futures trade up to another clearing broker: a GIVE_UP row (INSTRUCTED) awaiting the take-up."""
    lifecycle.require_lifecycle_actor(actor)
    trade = _futures_trade(session, trade_id, "given up")
    asset = session.scalar(select(Instrument.asset_class).where(Instrument.id == trade.instrument_id))
    if AssetClass(asset) is not AssetClass.FUTURE:
        raise ValidationFailed(
            f"Trade {trade.trade_ref} is not a futures trade; only futures are given up to a clearing broker."
        )
    target = session.get(Counterparty, to_counterparty_id)
    if target is None or not target.is_active:
        raise NotFound(f"There is no active counterparty #{to_counterparty_id} to give the trade up to.")
    if to_counterparty_id == trade.counterparty_id:
        raise ValidationFailed(f"Trade {trade.trade_ref} already clears with {target.code}.")
    if _open_exception(session, trade_id, SettlementExceptionKind.GIVE_UP) is not None:
        raise ValidationFailed(f"Trade {trade.trade_ref} already has a give-up in progress.")
    inst = _exception_row(
        session,
        actor,
        trade,
        SettlementExceptionKind.GIVE_UP,
        S.INSTRUCTED,
        counterparty_id=to_counterparty_id,
        reason_code=None,
        reason_text=f"Give-up to {target.code}, awaiting take-up",
    )
    exc = ClearingException(
        instruction_id=inst.id,
        kind=SettlementExceptionKind.GIVE_UP,
        trade_id=trade.id,
        state=ClearingExceptionState.RAISED,
        from_counterparty_id=trade.counterparty_id,
        to_counterparty_id=to_counterparty_id,
        reason=reason,
        raised_at=utcnow(),
        raised_by_id=actor.user_id,
    )
    session.add(exc)
    session.flush()
    audit.record(
        session,
        actor,
        "clearing_exceptions.raise",
        "settlement_instructions",
        inst.id,
        after={
            "exception_id": exc.id,
            "kind": exc.kind,
            "instruction_ref": inst.instruction_ref,
            "trade": trade.trade_ref,
            "from": trade.counterparty_code,
            "to": target.code,
            "reason": reason,
        },
        change=ChangeAction.INSERT,
    )
    return exc


def acknowledge_give_up(session: Session, actor: Actor, exception_id: int, take_up_ref: str) -> None:
    """The clearing broker took the trade up: the trade now clears with it (audited), the give-up is done."""
    lifecycle.require_lifecycle_actor(actor)
    if not (take_up_ref or "").strip():
        raise ValidationFailed("Give the clearing broker's take-up reference.")
    exc = _exception_for(session, exception_id, SettlementExceptionKind.GIVE_UP)
    _check_state(exc, (ClearingExceptionState.RAISED,), "acknowledged")
    inst = session.get(SettlementInstruction, exc.instruction_id)
    trade = session.get(Trade, exc.trade_id)
    target = session.get(Counterparty, exc.to_counterparty_id)
    assert inst is not None and trade is not None and target is not None
    before = {"counterparty_id": trade.counterparty_id, "counterparty_code": trade.counterparty_code}
    trade.counterparty_id = target.id
    trade.counterparty_code = target.code
    trade.version = (trade.version or 1) + 1
    trade.updated_by_id = actor.user_id
    trade.updated_at = utcnow()
    audit.record(
        session,
        actor,
        "trades.give_up",
        "trades",
        trade.id,
        before=before,
        after={"counterparty_id": target.id, "counterparty_code": target.code, "take_up_ref": take_up_ref},
    )
    now = utcnow()
    exc.state = ClearingExceptionState.ACKNOWLEDGED
    exc.ack_ref = take_up_ref.strip()
    exc.acknowledged_at = now
    exc.resolved_at = now
    exc.resolved_by_id = actor.user_id
    exc.resolution = "TAKEN_UP"
    inst.counterparty_ref = take_up_ref.strip()[:35]
    lifecycle.transition(
        session, actor, inst, S.SETTLED, note=f"take-up acknowledged by {target.code}, ref {take_up_ref}"
    )
    _audit_exception(session, actor, "acknowledge", exc, take_up_ref=take_up_ref)


def reject_give_up(session: Session, actor: Actor, exception_id: int, reason: str) -> None:
    """The clearing broker refused the take-up: the item fails (REJT) until re-sent or cancelled."""
    lifecycle.require_lifecycle_actor(actor)
    exc = _exception_for(session, exception_id, SettlementExceptionKind.GIVE_UP)
    _check_state(exc, (ClearingExceptionState.RAISED,), "rejected")
    inst = session.get(SettlementInstruction, exc.instruction_id)
    assert inst is not None
    exc.state = ClearingExceptionState.REJECTED
    exc.reason = reason
    lifecycle.transition(session, actor, inst, S.FAILED, reason_code="REJT", reason_text=reason or None)
    _audit_exception(session, actor, "reject", exc, reason=reason)


def resend_give_up(session: Session, actor: Actor, exception_id: int, note: str = "") -> None:
    lifecycle.require_lifecycle_actor(actor)
    exc = _exception_for(session, exception_id, SettlementExceptionKind.GIVE_UP)
    _check_state(exc, (ClearingExceptionState.REJECTED,), "re-sent")
    inst = session.get(SettlementInstruction, exc.instruction_id)
    assert inst is not None
    exc.state = ClearingExceptionState.RAISED
    lifecycle.transition(session, actor, inst, S.INSTRUCTED, note=note or "give-up re-sent")
    _audit_exception(session, actor, "resend", exc, note=note)


def cancel_exception(session: Session, actor: Actor, exception_id: int, reason: str) -> None:
    """Withdraw a give-up or out-trade that is still open."""
    lifecycle.require_lifecycle_actor(actor)
    exc = session.get(ClearingException, exception_id, with_for_update=True)
    if exc is None:
        raise NotFound(f"There is no give-up or out-trade #{exception_id}.")
    _check_state(
        exc,
        (ClearingExceptionState.RAISED, ClearingExceptionState.ACKNOWLEDGED, ClearingExceptionState.REJECTED)
        if exc.kind == SettlementExceptionKind.OUT_TRADE
        else (ClearingExceptionState.RAISED, ClearingExceptionState.REJECTED),
        "cancelled",
    )
    inst = session.get(SettlementInstruction, exc.instruction_id)
    assert inst is not None
    exc.state = ClearingExceptionState.CANCELLED
    exc.resolved_at = utcnow()
    exc.resolved_by_id = actor.user_id
    exc.resolution = "WITHDRAWN"
    lifecycle.transition(session, actor, inst, S.CANCELLED, note=f"withdrawn: {reason}")
    _audit_exception(session, actor, "cancel", exc, reason=reason)


def raise_out_trade(session: Session, actor: Actor, trade_id: int, reason: str = "") -> ClearingException:
    """The counterparty does not recognise the trade: an OUT_TRADE row, FAILED with reason OUTT."""
    lifecycle.require_lifecycle_actor(actor)
    trade = _futures_trade(session, trade_id, "raised as an out-trade")
    if _open_exception(session, trade_id, SettlementExceptionKind.OUT_TRADE) is not None:
        raise ValidationFailed(f"Trade {trade.trade_ref} is already an open out-trade.")
    assert trade.counterparty_id is not None
    inst = _exception_row(
        session,
        actor,
        trade,
        SettlementExceptionKind.OUT_TRADE,
        S.FAILED,
        counterparty_id=trade.counterparty_id,
        reason_code="OUTT",
        reason_text=reason or REASON_WORDS["OUTT"],
    )
    exc = ClearingException(
        instruction_id=inst.id,
        kind=SettlementExceptionKind.OUT_TRADE,
        trade_id=trade.id,
        state=ClearingExceptionState.RAISED,
        from_counterparty_id=trade.counterparty_id,
        reason=reason,
        raised_at=utcnow(),
        raised_by_id=actor.user_id,
    )
    session.add(exc)
    session.flush()
    audit.record(
        session,
        actor,
        "clearing_exceptions.raise",
        "settlement_instructions",
        inst.id,
        after={
            "exception_id": exc.id,
            "kind": exc.kind,
            "instruction_ref": inst.instruction_ref,
            "trade": trade.trade_ref,
            "reason": reason,
        },
        change=ChangeAction.INSERT,
    )
    return exc


def acknowledge_out_trade(
    session: Session, actor: Actor, exception_id: int, counterparty_ref: str = ""
) -> None:
    """The counterparty acknowledged our query and is investigating; the item stays failed."""
    lifecycle.require_lifecycle_actor(actor)
    exc = _exception_for(session, exception_id, SettlementExceptionKind.OUT_TRADE)
    _check_state(exc, (ClearingExceptionState.RAISED,), "acknowledged")
    inst = session.get(SettlementInstruction, exc.instruction_id)
    assert inst is not None
    exc.state = ClearingExceptionState.ACKNOWLEDGED
    exc.acknowledged_at = utcnow()
    exc.ack_ref = counterparty_ref.strip()[:35] or None
    if exc.ack_ref:
        inst.counterparty_ref = exc.ack_ref
    lifecycle.transition(
        session,
        actor,
        inst,
        S.FAILED,
        reason_code="OUTT",
        reason_text=f"{REASON_WORDS['OUTT']}; acknowledged by the counterparty"
        + (f" (ref {exc.ack_ref})" if exc.ack_ref else ""),
        note="out-trade acknowledged",
    )
    _audit_exception(session, actor, "acknowledge", exc, counterparty_ref=counterparty_ref)


OUT_TRADE_OUTCOMES = ("RECOGNISED", "NOT_OURS")


def resolve_out_trade(
    session: Session,
    actor: Actor,
    exception_id: int,
    outcome: str,
    note: str = "",
    *,
    on: dt.date | None = None,
) -> None:
    """Close an out-trade: RECOGNISED (the counterparty agreed; the trade stands) or NOT_OURS (the trade is
    cancelled from our book and its movements reversed on ``on``, default today)."""
    lifecycle.require_lifecycle_actor(actor)
    outcome = (outcome or "").strip().upper()
    if outcome not in OUT_TRADE_OUTCOMES:
        raise ValidationFailed(
            f"An out-trade is resolved as {' or '.join(OUT_TRADE_OUTCOMES)} (got '{outcome}')."
        )
    exc = _exception_for(session, exception_id, SettlementExceptionKind.OUT_TRADE)
    _check_state(exc, (ClearingExceptionState.RAISED, ClearingExceptionState.ACKNOWLEDGED), "resolved")
    inst = session.get(SettlementInstruction, exc.instruction_id)
    trade = session.get(Trade, exc.trade_id)
    assert inst is not None and trade is not None
    now = utcnow()
    exc.state = ClearingExceptionState.RESOLVED
    exc.resolution = outcome
    exc.resolved_at = now
    exc.resolved_by_id = actor.user_id
    if outcome == "RECOGNISED":
        lifecycle.transition(
            session, actor, inst, S.SETTLED, note=f"out-trade recognised by the counterparty {note}"
        )
    else:
        lifecycle.transition(
            session, actor, inst, S.CANCELLED, note=f"out-trade not ours: trade cancelled {note}"
        )
        before = {"status": trade.status}
        reversed_ = movements.reverse_trade_movements(session, trade.id, on or dt.date.today())
        trade.status = TradeStatus.CANCELLED
        trade.version = (trade.version or 1) + 1
        trade.updated_by_id = actor.user_id
        trade.updated_at = now
        audit.record(
            session,
            actor,
            "trades.cancel",
            "trades",
            trade.id,
            before=before,
            after={
                "status": TradeStatus.CANCELLED,
                "why": "out-trade not ours",
                "movements_reversed": reversed_,
            },
        )
    _audit_exception(session, actor, "resolve", exc, outcome=outcome, note=note)


def exceptions_of(session: Session, instruction_id: int) -> ClearingException | None:
    return session.scalar(select(ClearingException).where(ClearingException.instruction_id == instruction_id))


# =====================================================================================================================
# Demo content
# =====================================================================================================================


def seed_demo(
    db: Database, actor: Actor, *, today: dt.date | None = None, give_ups: int = 4, out_trades: int = 3
) -> dict[str, Any]:
    """Make the demo book's fails worth looking at: accrue the penalties up to ``today`` and raise a few futures
    give-ups and out-trades (one of each already acknowledged, so their history shows). Idempotent: a second call
    adds no exceptions and no penalty twice. Returns counts."""
    require(actor, Permission.RUN_PROCESSES)
    today = today or dt.date.today()
    with db.write() as s:
        penalties = accrue_in_session(s, actor, today)
        raised = {"give_ups": 0, "out_trades": 0}
        if s.scalar(select(ClearingException.id).limit(1)) is None:
            futures = list(
                s.scalars(
                    select(Trade)
                    .join(Instrument, Instrument.id == Trade.instrument_id)
                    .where(
                        Instrument.asset_class == AssetClass.FUTURE,
                        Trade.status.in_([TradeStatus.SETTLED, TradeStatus.CONFIRMED, TradeStatus.VALIDATED]),
                        Trade.account_id.is_not(None),
                        Trade.counterparty_id.is_not(None),
                    )
                    .order_by(Trade.trade_date.desc(), Trade.id)
                    .limit(give_ups + out_trades)
                )
            )
            brokers = list(
                s.scalars(select(Counterparty.id).where(Counterparty.is_active).order_by(Counterparty.id))
            )
            for n, trade in enumerate(futures[:give_ups]):
                others = [b for b in brokers if b != trade.counterparty_id]
                if not others:
                    break
                exc = raise_give_up(s, actor, trade.id, others[n % len(others)], "client clears elsewhere")
                raised["give_ups"] += 1
                if n == 0:
                    acknowledge_give_up(s, actor, exc.id, f"TU{trade.id:08d}")
            for n, trade in enumerate(futures[give_ups:]):
                exc = raise_out_trade(s, actor, trade.id, "Counterparty has no record of the trade")
                raised["out_trades"] += 1
                if n == 0:
                    acknowledge_out_trade(s, actor, exc.id, f"Q{trade.id:08d}")
    return {"penalties_added": penalties.added, **raised}
