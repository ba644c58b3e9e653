"""Everything the blotter's detail panel shows about one trade, and the fields a clerk may repair.

``trade_detail`` returns plain data (dicts and dataclasses, no ORM objects): the trade's fields, its instrument,
account, counterparty and SSIs, its front-office versions (with the line as the file had it), its exceptions open
and cleared, its audit history (the trade's entries and those of the imports that brought its versions), and the
settlement instructions and reconciliation breaks that refer to it.

Apart from repair.py (which needs pandas for the re-validation): the panel opens often and must not wait for the
import of pandas, numpy and pyarrow (about two seconds, holding Python's lock in stretches while the GUI paints).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from app.models import (
    Account,
    AuditEntry,
    Break,
    Counterparty,
    ImportBatch,
    InstructionTrade,
    Instrument,
    SettlementInstruction,
    StandingSettlementInstruction,
    Trade,
    TradeException,
    TradeVersion,
)
from app.models.enums import TradeStatus
from app.services import audit
from app.services.db import Database
from app.services.errors import NotFound, ValidationFailed
from app.services.permissions import Actor, Permission, require

from .profiles import load_profile

# Fields a clerk may edit in the repair queue (the front office's fields; everything else is derived).
EDITABLE: tuple[str, ...] = (
    "isin",
    "account_code",
    "counterparty_code",
    "side",
    "quantity",
    "price",
    "currency",
    "trade_date",
    "trade_time",
)


@dataclass(frozen=True)
class ExceptionInfo:
    code: str
    field: str
    message: str
    raised_at: dt.datetime | None = None
    cleared_at: dt.datetime | None = None

    @property
    def open(self) -> bool:
        return self.cleared_at is None


@dataclass
class TradeDetail:
    trade: dict[str, Any]
    instrument: dict[str, Any] | None
    account: dict[str, Any] | None
    counterparty: dict[str, Any] | None
    our_ssi: dict[str, Any] | None
    their_ssi: dict[str, Any] | None
    versions: list[dict[str, Any]]
    exceptions: list[ExceptionInfo]
    history: list[dict[str, Any]]
    instructions: list[dict[str, Any]]
    breaks: list[dict[str, Any]]
    editable: bool = False
    editable_fields: tuple[str, ...] = field(default_factory=tuple)

    @property
    def open_exceptions(self) -> list[ExceptionInfo]:
        return [e for e in self.exceptions if e.open]


# --- detail ----------------------------------------------------------------------------------------------------------


def _columns(obj: Any) -> dict[str, Any]:
    """An ORM row's column values as plain Python values (enums as their value)."""
    out: dict[str, Any] = {}
    for col in obj.__table__.columns:
        value = getattr(obj, col.key)
        out[col.key] = getattr(value, "value", value) if not isinstance(value, str | int | Decimal) else value
    return out


def _fields_of(payload: dict[str, Any], batches: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    """The values of a file line by column header: parsed from the raw line with the header and profile the
    batch recorded, or as stored."""
    if "fields" in payload and isinstance(payload["fields"], dict):
        return dict(payload["fields"])
    raw = payload.get("raw")
    summary = batches.get(int(payload.get("batch") or 0)) or {}
    header = summary.get("header")
    if not isinstance(raw, str) or not header or summary.get("format") != "csv":
        return None
    try:
        delimiter = load_profile(summary.get("profile")).delimiter
    except ValidationFailed:
        delimiter = ","
    values = next(csv.reader(io.StringIO(raw), delimiter=delimiter), [])
    return dict(zip(header, values, strict=False))


def trade_detail(db: Database, actor: Actor, trade_id: int) -> TradeDetail:
    """Everything the detail panel shows about one trade (see the module docstring)."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        trade = s.get(Trade, trade_id)
        if trade is None:
            raise NotFound(f"Trade #{trade_id} does not exist (it may have been deleted).")
        fields = _columns(trade)
        instrument = None
        if trade.instrument_id is not None:
            inst = s.get(Instrument, trade.instrument_id)
            if inst is not None:
                instrument = {
                    "id": inst.id,
                    "isin": inst.isin,
                    "name": inst.name,
                    "ticker": inst.ticker,
                    "asset_class": inst.asset_class.value,
                    "currency": inst.currency,
                    "market": inst.market.mic,
                    "market_name": inst.market.name,
                    "settlement_cycle": inst.settlement_cycle,
                    "reference_price": inst.reference_price,
                    "contract_size": inst.contract_size,
                }
        account = None
        if trade.account_id is not None and (a := s.get(Account, trade.account_id)) is not None:
            account = {
                "id": a.id,
                "code": a.code,
                "name": a.name,
                "type": a.account_type.value,
                "kyc_status": a.kyc_status.value,
                "segregation": a.segregation.value,
            }
        counterparty = None
        if (
            trade.counterparty_id is not None
            and (c := s.get(Counterparty, trade.counterparty_id)) is not None
        ):
            counterparty = {"id": c.id, "code": c.code, "name": c.name, "lei": c.lei, "bic": c.bic}

        def ssi(ssi_id: int | None) -> dict[str, Any] | None:
            if ssi_id is None:
                return None
            row = s.get(StandingSettlementInstruction, ssi_id)
            if row is None:
                return None
            return {
                "id": row.id,
                "place_of_settlement_bic": row.place_of_settlement_bic,
                "agent_bic": row.agent_bic,
                "safekeeping_account": row.safekeeping_account,
                "cash_account": row.cash_account,
                "currency": row.currency,
                "asset_class": None if row.asset_class is None else row.asset_class.value,
            }

        version_rows = s.scalars(
            select(TradeVersion).where(TradeVersion.trade_id == trade_id).order_by(TradeVersion.fo_version)
        ).all()
        batch_ids = sorted(
            {int(v.payload.get("batch")) for v in version_rows if (v.payload or {}).get("batch")}
        )
        batches = {
            b.id: dict(b.summary or {})
            for b in s.scalars(select(ImportBatch).where(ImportBatch.id.in_(batch_ids)))
        }
        versions = [
            {
                "fo_version": v.fo_version,
                "action": v.action.value,
                "source": v.source,
                "source_ref": v.source_ref,
                "received_at": v.received_at,
                "payload": dict(v.payload or {}),
                "fields": _fields_of(dict(v.payload or {}), batches),
            }
            for v in version_rows
        ]
        exceptions = [
            ExceptionInfo(e.code, e.field, e.message, e.raised_at, e.cleared_at)
            for e in s.scalars(
                select(TradeException).where(TradeException.trade_id == trade_id).order_by(TradeException.id)
            )
        ]
        entries: list[AuditEntry] = list(audit.history(s, "trades", trade_id))
        for bid in batch_ids:
            entries.extend(audit.history(s, "import_batches", bid))
        entries.sort(key=lambda e: e.id)
        history = [
            {
                "id": e.id,
                "occurred_at": e.occurred_at,
                "username": e.username,
                "action": e.action,
                "before": e.before,
                "after": e.after,
            }
            for e in entries
        ]
        instructions = [
            {
                "id": i.id,
                "instruction_ref": i.instruction_ref,
                "type": i.instruction_type.value,
                "status": i.status.value,
                "is_netted": i.is_netted,
                "quantity": i.quantity,
                "settlement_amount": i.settlement_amount,
                "currency": i.currency,
                "intended_settlement_date": i.intended_settlement_date,
                "actual_settlement_date": i.actual_settlement_date,
                "reason_code": i.reason_code,
                "reason_text": i.reason_text,
            }
            for i in s.scalars(
                select(SettlementInstruction)
                .join(InstructionTrade, InstructionTrade.instruction_id == SettlementInstruction.id)
                .where(InstructionTrade.trade_id == trade_id)
                .order_by(SettlementInstruction.id)
            )
        ]
        breaks = [
            {
                "id": b.id,
                "type": b.break_type.value,
                "status": b.status.value,
                "category": b.category,
                "root_cause": b.root_cause,
                "differences": b.differences,
                "amount": b.amount,
                "currency": b.currency,
                "as_of_date": b.as_of_date,
                "opened_at": b.opened_at,
                "owner_id": b.owner_id,
            }
            for b in s.scalars(select(Break).where(Break.internal_ref == trade.trade_ref).order_by(Break.id))
        ]
        editable = trade.status == TradeStatus.REPAIR
        return TradeDetail(
            trade=fields,
            instrument=instrument,
            account=account,
            counterparty=counterparty,
            our_ssi=ssi(trade.our_ssi_id),
            their_ssi=ssi(trade.their_ssi_id),
            versions=versions,
            exceptions=exceptions,
            history=history,
            instructions=instructions,
            breaks=breaks,
            editable=editable,
            editable_fields=EDITABLE if editable else (),
        )
