"""Recon definitions: the four that come out of the box, and listing, reading and supervisor editing.

A definition's config is validated (:func:`.config.parse_config` plus the column types of its sources) before it is
stored; an edit is versioned (a stale edit is refused) and audited with the config before and after.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ReconDefinition
from app.models.enums import ChangeAction

from .. import audit, concurrency
from ..db import Database
from ..errors import NotFound, PermissionDenied
from ..permissions import Actor, Permission, require
from .config import ReconConfig, parse_config
from .sources import check_types, source_columns

TRADE_CONFIRMATIONS = "trades-vs-confirmations"
HOLDINGS = "positions-vs-custodian"
CASH = "cash-vs-bank"
SETTLEMENT = "instructions-vs-settlement-confirmations"

_CONFIRMATION_FIELDS: dict[str, Any] = {
    "ref": {"left": "trade_ref", "right": "related_reference", "category": "REFERENCE"},
    "isin": {"code": "DSEC", "category": "SECURITY"},
    "side": {"code": "DELN", "category": "DIRECTION"},
    "quantity": {"type": "quantity", "code": "DQUA", "category": "QUANTITY"},
    "price": {"type": "price", "code": "DDEA", "category": "PRICE"},
    "amount": {
        "left": "net_amount",
        "right": "amount",
        "type": "money",
        "tolerance": "abs=0.01",
        "code": "DMON",
        "category": "AMOUNT",
    },
    "settlement_date": {
        "left": "settlement_date",
        "right": "value_date",
        "type": "date",
        "code": "DDAT",
        "category": "SETTLEMENT_DATE",
    },
    "trade_date": {"type": "date", "code": "DTRD", "category": "TRADE_DATE"},
    "currency": {"category": "CURRENCY"},
    "account": {"left": "account", "right": "account_identifier", "category": "ACCOUNT"},
    "counterparty": {"category": "COUNTERPARTY"},
}

DEFAULTS: dict[str, dict[str, Any]] = {
    TRADE_CONFIRMATIONS: {
        "description": "Our trades against the counterparties' trade confirmations: reference first, then the "
        "trade's details, partial fills against a block confirmation, then the same trade with differing details.",
        "left": {
            "source": "trades",
            "label": "Our trades",
            # Cancelled trades are not confirmed; a trade whose counterparty is unknown is in repair
            # (CPTY_UNKNOWN) and no counterparty can confirm it yet.
            "where": {"status": {"ne": "CANCELLED"}, "counterparty_id": {"not_null": True}},
        },
        "right": {"source": "statement_lines:TRADE_CONFIRMATIONS", "label": "Counterparty confirmations"},
        "fields": _CONFIRMATION_FIELDS,
        "key": ["ref"],
        "compare": [
            "isin",
            "side",
            "quantity",
            "price",
            "amount",
            "settlement_date",
            "trade_date",
            "currency",
            "account",
            "counterparty",
        ],
        "passes": [
            {"name": "exact_ref", "kind": "pair", "keys": ["ref"], "duplicates": "report"},
            {
                "name": "composite",
                "kind": "pair",
                "keys": ["isin", "account", "counterparty", "side", "trade_date", "quantity"],
                "require": ["amount", "settlement_date"],
            },
            {
                "name": "partial_fills",
                "kind": "aggregate",
                "many": "left",
                "keys": ["isin", "account", "counterparty", "side", "trade_date", "settlement_date"],
                "sum": ["quantity", "amount"],
            },
            # The same trade with a differing detail: one trade and one confirmation that share everything else.
            {
                "name": "same_trade",
                "kind": "pair",
                "keys": ["isin", "account", "counterparty", "side", "trade_date"],
            },
            {
                "name": "same_trade_other_isin",
                "kind": "pair",
                "keys": ["account", "counterparty", "side", "trade_date", "quantity"],
            },
        ],
        "stake": {"amount": "amount", "quantity": "quantity", "price": "price"},
        "currency": "currency",
        "missing_codes": {"MISSING_EXTERNAL": "CMIS"},
    },
    HOLDINGS: {
        "description": "Our settled positions against the custodians' holdings statements (the latest statement "
        "of each safekeeping account), per account and ISIN.",
        "left": {
            "source": "positions",
            "label": "Our settled positions",
            # Futures are held at the clearing house, not the custodian; a flat position has no line.
            "where": {"asset_class": {"ne": "FUTURE"}, "settled_quantity": {"ne": 0}},
        },
        "right": {
            "source": "statement_lines:HOLDINGS",
            "label": "Custodian holdings",
            "identity": ["account", "isin"],
        },
        "fields": {
            "account": {"category": "ACCOUNT"},
            "isin": {"code": "DSEC", "category": "SECURITY"},
            "quantity": {
                "left": "settled_quantity",
                "right": "quantity",
                "type": "quantity",
                "code": "DQUA",
                "category": "QUANTITY",
            },
            # Value of one unit (bonds: price / 100), for the amount at stake; not compared.
            "price": {"left": "unit_price", "right": "price", "type": "price", "category": "PRICE"},
            "currency": {"category": "CURRENCY"},
        },
        "key": ["account", "isin"],
        "compare": ["quantity"],
        "passes": [
            {"name": "account_isin", "kind": "pair", "keys": ["account", "isin"], "duplicates": "report"}
        ],
        "stake": {"quantity": "quantity", "price": "price"},
        "currency": "currency",
    },
    CASH: {
        "description": "Our settled cash movements against the banks' cash statements: the reference the bank "
        "quotes, then account, currency, value date and amount; several bank lines against one settlement.",
        "left": {
            "source": "cash_movements",
            "label": "Our settled cash",
            "where": {"kind": {"eq": "SETTLED"}},
        },
        "right": {"source": "statement_lines:CASH", "label": "Bank statements"},
        "fields": {
            "ref": {"left": "ref", "right": "related_reference", "category": "REFERENCE"},
            "account": {"category": "ACCOUNT"},
            "currency": {"category": "CURRENCY"},
            "amount": {"type": "money", "code": "DMON", "category": "AMOUNT"},
            "value_date": {"type": "date", "code": "DDAT", "category": "VALUE_DATE"},
        },
        "key": ["ref"],
        "compare": ["amount", "value_date", "currency", "account"],
        "passes": [
            {"name": "exact_ref", "kind": "pair", "keys": ["ref"], "duplicates": "report"},
            {"name": "composite", "kind": "pair", "keys": ["account", "currency", "value_date", "amount"]},
            {
                "name": "split_lines",
                "kind": "aggregate",
                "many": "right",
                "keys": ["ref", "account", "currency"],
                "sum": ["amount"],
            },
        ],
        "stake": {"amount": "amount"},
        "currency": "currency",
    },
    SETTLEMENT: {
        "description": "Our settled instructions against the custodians' settlement confirmations (MT544-547, "
        "sese.025) for the accounts the custodian reports on; partial settlements add up to the instruction.",
        "left": {
            "source": "settlement_instructions",
            "label": "Our settled instructions",
            "where": {"status": {"in": ["SETTLED", "PARTIALLY_SETTLED"]}},
        },
        "right": {"source": "statement_lines:SETTLEMENT_CONFIRMATIONS", "label": "Settlement confirmations"},
        "fields": {
            "ref": {"left": "instruction_ref", "right": "related_reference", "category": "REFERENCE"},
            "isin": {"code": "DSEC", "category": "SECURITY"},
            "account": {"category": "ACCOUNT"},
            "quantity": {
                "left": "settled_quantity",
                "right": "quantity",
                "type": "quantity",
                "code": "DQUA",
                "category": "QUANTITY",
            },
            "amount": {
                "left": "settled_amount",
                "right": "amount",
                "type": "money",
                "tolerance": "abs=0.01",
                "code": "DMON",
                "category": "AMOUNT",
            },
            "settlement_date": {
                "left": "actual_settlement_date",
                "right": "value_date",
                "type": "date",
                "code": "DDAT",
                "category": "SETTLEMENT_DATE",
            },
            "currency": {"category": "CURRENCY"},
        },
        "key": ["ref"],
        "compare": ["isin", "quantity", "amount", "settlement_date", "currency", "account"],
        "passes": [
            {"name": "exact_ref", "kind": "pair", "keys": ["ref"], "duplicates": "report"},
            {
                "name": "partial_settlements",
                "kind": "aggregate",
                "many": "right",
                "keys": ["ref", "isin"],
                "sum": ["quantity", "amount"],
            },
            {
                "name": "composite",
                "kind": "pair",
                "keys": ["account", "isin", "settlement_date", "quantity"],
                "require": ["amount"],
            },
        ],
        "stake": {"amount": "amount", "quantity": "quantity"},
        "currency": "currency",
        # A custodian that sent nothing for an account is a missing statement, not one break per instruction.
        "coverage": ["account"],
    },
}


@dataclass(frozen=True)
class DefinitionView:
    id: int
    name: str
    description: str
    left_source: str
    right_source: str
    config: dict[str, Any]
    is_active: bool
    version: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def validate(raw: Any) -> ReconConfig:
    """The typed config, or ConfigError naming the field at fault (columns and types checked against sources)."""
    cfg = parse_config(raw, source_columns())
    check_types(cfg)
    return cfg


def _view(d: ReconDefinition) -> DefinitionView:
    return DefinitionView(
        d.id,
        d.name,
        d.description,
        d.left_source,
        d.right_source,
        copy.deepcopy(d.config),
        d.is_active,
        d.version,
    )


def _ensure(s: Session, actor: Actor) -> list[str]:
    existing = set(s.scalars(select(ReconDefinition.name)))
    created = []
    for name, raw in DEFAULTS.items():
        if name in existing:
            continue
        validate(raw)
        d = ReconDefinition(
            name=name,
            description=raw["description"],
            left_source=raw["left"]["source"],
            right_source=raw["right"]["source"],
            config=copy.deepcopy(raw),
            is_active=True,
            updated_by_id=actor.user_id,
        )
        s.add(d)
        s.flush()
        audit.record(
            s,
            actor,
            "recon_definitions.create",
            "recon_definitions",
            d.id,
            after={"name": name, "config": raw},
            change=ChangeAction.INSERT,
        )
        created.append(name)
    return created


def ensure_default_definitions(db: Database, actor: Actor) -> list[str]:
    """Create the out-of-the-box definitions that do not exist yet; returns the names created.

    Anyone who may run reconciliations or edit rules may do this: it only adds the built-in definitions.
    """
    if not (actor.can(Permission.RUN_PROCESSES) or actor.can(Permission.EDIT_RULES)):
        require(actor, Permission.EDIT_RULES)
    with db.write() as s:
        return _ensure(s, actor)


def list_definitions(db: Database, actor: Actor) -> list[DefinitionView]:
    require(actor, Permission.VIEW)
    with db.read() as s:
        return [_view(d) for d in s.scalars(select(ReconDefinition).order_by(ReconDefinition.name))]


def find(s: Session, name_or_id: str | int) -> ReconDefinition:
    if isinstance(name_or_id, int) or (isinstance(name_or_id, str) and name_or_id.isdigit()):
        d = s.get(ReconDefinition, int(name_or_id))
    else:
        d = s.scalar(select(ReconDefinition).where(ReconDefinition.name == name_or_id))
    if d is None:
        names = (
            ", ".join(s.scalars(select(ReconDefinition.name).order_by(ReconDefinition.name))) or "none yet"
        )
        raise NotFound(f"There is no recon definition {name_or_id!r} (definitions: {names}).")
    return d


def get_definition(db: Database, actor: Actor, name_or_id: str | int) -> DefinitionView:
    require(actor, Permission.VIEW)
    with db.read() as s:
        return _view(find(s, name_or_id))


def update_definition(
    db: Database, actor: Actor, definition_id: int, config: dict[str, Any], *, seen_version: int
) -> DefinitionView:
    """Replace a definition's config (supervisors and admins): validated, versioned against ``seen_version``,
    audited with the config before and after."""
    require(actor, Permission.EDIT_RULES)
    validate(config)
    with db.write() as s:
        d = s.get(ReconDefinition, definition_id)
        if d is None:
            raise NotFound(f"There is no recon definition #{definition_id}.")
        changes = {
            "config": copy.deepcopy(config),
            "left_source": config["left"]["source"],
            "right_source": config["right"]["source"],
        }
        if isinstance(config.get("description"), str) and config["description"]:
            changes["description"] = config["description"]
        concurrency.versioned_update(
            s, actor, ReconDefinition, definition_id, seen_version, changes, action="recon_definitions.edit"
        )
        s.expire_all()
        return _view(find(s, definition_id))


def set_active(db: Database, actor: Actor, definition_id: int, active: bool, *, seen_version: int) -> None:
    require(actor, Permission.EDIT_RULES)
    with db.write() as s:
        concurrency.versioned_update(
            s,
            actor,
            ReconDefinition,
            definition_id,
            seen_version,
            {"is_active": active},
            action="recon_definitions.activate" if active else "recon_definitions.deactivate",
        )


__all__ = [
    "CASH",
    "DEFAULTS",
    "HOLDINGS",
    "SETTLEMENT",
    "TRADE_CONFIRMATIONS",
    "DefinitionView",
    "PermissionDenied",
    "ensure_default_definitions",
    "find",
    "get_definition",
    "list_definitions",
    "update_definition",
    "validate",
]
