"""Repairing a trade in the repair queue (everything the blotter's detail panel shows about one trade is in detail.py).

``repair_trade`` lets a clerk edit the front-office fields that failed validation (ISIN, account, counterparty,
side, quantity, price, currency, trade date and time), then re-validates and re-enriches the trade with exactly the
rules of the import (validation.py, enrichment.py): clean, it becomes VALIDATED and its open exceptions are cleared
(``cleared_at``); otherwise it stays in REPAIR with the new reasons. The edit is a versioned update
(services.concurrency.versioned_update): a clerk who edits a trade someone else changed since they loaded it is
refused with "changed by X at T; reload", and the edit is audited (before/after) with a change-feed row.
Calling it with no changes re-validates the trade as it is (after reference data was fixed, say).

Only trades in REPAIR are edited here. A trade that passed validation (VALIDATED and later) is amended through the
correction workflow (maker-checker), never directly: ``repair_trade`` refuses it with InvalidTransition.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import (
    Trade,
    TradeException,
    TradeVersion,
    utcnow,
)
from app.models.enums import Side, TradeStatus
from app.services.concurrency import versioned_update
from app.services.db import Database
from app.services.errors import InvalidTransition, NotFound, ValidationFailed
from app.services.jsonable import to_jsonable
from app.services.permissions import Actor, Permission, require

from . import fix, refdata
from .detail import EDITABLE, ExceptionInfo, TradeDetail, trade_detail  # noqa: F401 (named here too)
from .enrichment import enrich
from .units import MONEY_SCALE, PRICE_SCALE, QTY_SCALE, frame_of, from_decimal, to_decimal
from .validation import exception_codes, validate


@dataclass
class RepairResult:
    trade_id: int
    trade_ref: str
    version: int  # the trade's new row version (to edit it again)
    status: str  # VALIDATED or REPAIR
    exceptions: list[ExceptionInfo]  # the open exceptions after the repair (empty when VALIDATED)
    changed: list[str]  # the fields whose stored value changed (edited and derived)

    @property
    def validated(self) -> bool:
        return self.status == TradeStatus.VALIDATED.value


# --- repair ----------------------------------------------------------------------------------------------------------


def _parse_value(name: str, value: Any) -> Any:
    """One edited value in the trade's type; ValueError with the words to show when it is not valid."""
    if name in ("isin", "account_code", "counterparty_code", "currency"):
        text = "" if value is None else str(value).strip().upper()
        limit = {"isin": 12, "account_code": 32, "counterparty_code": 32, "currency": 3}[name]
        if len(text) > limit:
            raise ValueError(f"'{text}' is longer than {limit} characters")
        if name == "currency" and text and not (text.isascii() and text.isalpha() and len(text) == 3):
            raise ValueError(f"'{text}' is not a 3-letter currency code")
        return text
    if name == "side":
        text = str(getattr(value, "value", value)).strip().upper()
        text = {"B": "BUY", "S": "SELL", "1": "BUY", "2": "SELL"}.get(text, text)
        if text not in ("BUY", "SELL"):
            raise ValueError(f"'{value}' is not a side; use BUY or SELL")
        return text
    if name in ("quantity", "price"):
        scale = QTY_SCALE if name == "quantity" else PRICE_SCALE
        try:
            number = value if isinstance(value, Decimal) else Decimal(str(value).strip().replace(",", ""))
        except InvalidOperation:
            raise ValueError(f"'{value}' is not a number") from None
        if not number.is_finite():
            raise ValueError(f"'{value}' is not a number")
        try:
            return from_decimal(number, scale)
        except ValueError:
            raise ValueError(f"{value} has more than {scale} decimals") from None
    if name == "trade_date":
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        try:
            return dt.date.fromisoformat(str(value).strip())
        except ValueError:
            raise ValueError(f"'{value}' is not a date (YYYY-MM-DD)") from None
    # trade_time
    if isinstance(value, dt.datetime):
        ts = value
    else:
        try:
            ts = dt.datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ValueError(f"'{value}' is not a timestamp (ISO 8601)") from None
    if ts.tzinfo is None:
        raise ValueError("a trade time needs a time zone (for example 2026-11-19T14:30:00+00:00)")
    return ts.astimezone(dt.UTC)


def _parse_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """Clerk input (text from an edit box, or typed values) in the trade's types; refused with a clear message."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ValidationFailed(
            f"These fields cannot be edited in the repair queue: {', '.join(unknown)}. "
            f"Editable: {', '.join(EDITABLE)}."
        )
    out: dict[str, Any] = {}
    problems: list[tuple[str, str, str]] = []
    for name, value in changes.items():
        try:
            out[name] = _parse_value(name, value)
        except ValueError as err:
            problems.append(("", name, str(err)))
    if problems:
        raise ValidationFailed(
            "The repair was not saved: "
            + "; ".join(f"{f.replace('_', ' ')} {w}" for _, f, w in problems)
            + ".",
            problems,
        )
    return out


def _row_frame(trade: Trade, edits: dict[str, Any]) -> pd.DataFrame:
    """The trade (with the clerk's edits) as a one-row INCOMING_COLUMNS frame for validation and enrichment."""

    def pick(name: str, current: Any) -> Any:
        return edits.get(name, current)

    trade_time = pick("trade_time", trade.trade_time).astimezone(dt.UTC).replace(tzinfo=None)
    return frame_of(
        {
            "line": [0],
            "trade_ref": [trade.trade_ref],
            "action": ["NEW"],
            "order_ref": [trade.order_ref or ""],
            "source_ref": [trade.source_ref or ""],
            "isin": [pick("isin", trade.isin)],
            "account_code": [pick("account_code", trade.account_code)],
            "counterparty_code": [pick("counterparty_code", trade.counterparty_code)],
            "cpty_lei": [""],
            "cpty_bic": [""],
            "side": [pick("side", trade.side.value)],
            "qty_u": np.array([pick("quantity", from_decimal(trade.quantity, QTY_SCALE))], dtype=np.int64),
            "px_u": np.array([pick("price", from_decimal(trade.price, PRICE_SCALE))], dtype=np.int64),
            "currency": [pick("currency", trade.currency)],
            "trade_date": np.array([pick("trade_date", trade.trade_date)], dtype="datetime64[D]"),
            "trade_time": np.array([trade_time], dtype="datetime64[us]"),
            "settle_given": np.array([np.datetime64("NaT")], dtype="datetime64[D]"),
        }
    )


def _fix_notional(s: Session, trade: Trade) -> int | None:
    """The exact notional of a FIX trade's active fills (its versions replayed), or None for other sources."""
    if not trade.source.startswith("FIX"):
        return None
    payloads = s.scalars(
        select(TradeVersion.payload)
        .where(TradeVersion.trade_id == trade.id)
        .order_by(TradeVersion.fo_version)
    ).all()
    state = fix.OrderState(trade_ref=trade.trade_ref)
    for p in payloads:
        state.replay(p or {})
    if not state.fills:
        return None
    qty, _avg, notional = state.totals()
    return notional if from_decimal(qty, QTY_SCALE) == from_decimal(trade.quantity, QTY_SCALE) else None


def revalidated_values(
    s: Session, trade: Trade, edits: dict[str, Any], *, today: dt.date | None = None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The trade's stored values with ``edits`` applied and every derived field (reference ids, amounts,
    settlement date, SSIs, exception codes) recomputed by the import's own rules, and the exceptions validation
    raised (columns code, field, message; empty when the edited trade is clean).

    One piece for the repair queue and the correction workflow's amend / cancel-rebook, so both judge an edited
    trade exactly as an import would."""
    frame = _row_frame(trade, edits)
    ref = refdata.load(s)
    res, issues = validate(frame, ref, today=today)
    # A FIX trade's notional comes from its fills unless the clerk changed quantity or price.
    keep_notional = "quantity" not in edits and "price" not in edits
    notional = _fix_notional(s, trade) if keep_notional else None
    enr = enrich(
        frame, res, ref, issues, np.array([notional], dtype=object) if notional is not None else None
    )
    exc = issues.frame()

    def ref_id(table: pd.DataFrame, pos: int) -> int | None:
        return int(table["id"].iloc[pos]) if pos >= 0 else None

    settle = enr.settlement_date[0]
    new: dict[str, Any] = {
        "isin": frame["isin"].iat[0],
        "account_code": frame["account_code"].iat[0],
        "counterparty_code": str(res.counterparty_code[0]),
        "instrument_id": ref_id(ref.instruments, int(res.inst[0])),
        "account_id": ref_id(ref.accounts, int(res.acct[0])),
        "counterparty_id": ref_id(ref.counterparties, int(res.cpty[0])),
        "side": Side(frame["side"].iat[0]),
        "quantity": to_decimal(int(frame["qty_u"].iat[0]), QTY_SCALE),
        "price": to_decimal(int(frame["px_u"].iat[0]), PRICE_SCALE),
        "currency": str(res.currency[0]),
        "gross_amount": to_decimal(int(enr.gross_u[0]), MONEY_SCALE),
        "commission": to_decimal(int(enr.commission_u[0]), MONEY_SCALE),
        "fees": to_decimal(int(enr.fees_u[0]), MONEY_SCALE),
        "net_amount": to_decimal(int(enr.net_u[0]), MONEY_SCALE),
        "trade_date": edits.get("trade_date", trade.trade_date),
        "trade_time": edits.get("trade_time", trade.trade_time),
        "settlement_date": None if np.isnat(settle) else dt.date.fromisoformat(str(settle)),
        "our_ssi_id": None if enr.our_ssi_id[0] < 0 else int(enr.our_ssi_id[0]),
        "their_ssi_id": None if enr.their_ssi_id[0] < 0 else int(enr.their_ssi_id[0]),
        "exception_codes": exception_codes(exc["code"].tolist()),
    }
    return new, exc


def repair_trade(
    db: Database,
    actor: Actor,
    trade_id: int,
    seen_version: int,
    changes: dict[str, Any],
    *,
    today: dt.date | None = None,
) -> RepairResult:
    """Edit a trade in the repair queue and re-validate it (see the module docstring)."""
    require(actor, Permission.REPAIR_TRADE)
    edits = _parse_changes(changes)
    with db.write() as s:
        trade = s.get(Trade, trade_id)
        if trade is None:
            raise NotFound(f"Trade #{trade_id} does not exist (it may have been deleted).")
        if trade.status != TradeStatus.REPAIR:
            raise InvalidTransition(
                f"Trade {trade.trade_ref} is {trade.status.value}, not in the repair queue: a trade that passed "
                "validation is amended through the correction workflow (propose a correction for a supervisor to "
                "approve), not edited directly."
            )
        new, exc = revalidated_values(s, trade, edits, today=today)
        status = TradeStatus.REPAIR if len(exc) else TradeStatus.VALIDATED
        # The status sits before the codes, as the audit entry has always listed them.
        codes = new.pop("exception_codes")
        new["status"] = status
        new["exception_codes"] = codes
        changed = {k: v for k, v in new.items() if _differs(getattr(trade, k), v)}
        # Status and codes are always written, so the audit entry says what the re-validation concluded.
        changed["status"] = status
        changed["exception_codes"] = new["exception_codes"]
        s.expunge(trade)
        version = versioned_update(s, actor, Trade, trade_id, seen_version, changed, action="trades.repair")
        now = utcnow()
        s.execute(
            update(TradeException)
            .where(TradeException.trade_id == trade_id, TradeException.cleared_at.is_(None))
            .values(cleared_at=now)
            .execution_options(synchronize_session=False)
        )
        infos = [
            ExceptionInfo(str(c), str(f), str(m)[:500], now)
            for c, f, m in zip(exc["code"], exc["field"], exc["message"], strict=True)
        ]
        s.add_all(
            TradeException(trade_id=trade_id, code=i.code, field=i.field, message=i.message, raised_at=now)
            for i in infos
        )
        s.flush()
        return RepairResult(
            trade_id=trade_id,
            trade_ref=trade.trade_ref,
            version=version,
            status=status.value,
            exceptions=infos,
            changed=sorted(k for k in changed if k in new and _differs(getattr(trade, k), new[k])),
        )


def _differs(old: Any, new: Any) -> bool:
    if isinstance(old, Decimal) and isinstance(new, Decimal):
        return old.compare(new) != 0
    return to_jsonable(old) != to_jsonable(new)
