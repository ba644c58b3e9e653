"""Corrections under maker-checker (four-eyes) control: propose, approve, reject, withdraw, the approvals inbox.

A clerk (the maker) proposes a change with a reason; a supervisor who is neither the maker nor the last editor of
the item (the checker) approves or rejects it. Kinds:

* ``AMEND_TRADE`` (item: a trade) — ``payload = {"fields": {name: new value}, "break_ids": [...]}``: front-office
  fields of a validated trade (the repair queue's editable fields); the amended trade must pass validation again.
  On approval the trade is re-validated and re-enriched, updated as a versioned edit against the version the maker
  saw, a ``TradeVersion`` (AMEND, source CORRECTION) is written, and settlement is told
  (``settlement.generate.on_trade_changed`` when it exists, so netted instructions un-net).
* ``CANCEL_REBOOK`` (item: a trade) — ``{"fields": {...}, "new_trade_ref": optional}``: the trade is cancelled and a
  corrected copy booked under a new reference (``<ref>-R<n>``).
* ``MANUAL_MATCH`` (item: a break) — ``{"break_ids": [...]}``: the breaks (of one recon definition) whose internal
  and external records belong together, one-to-one, one-to-many or many-to-many; approval records a manual
  ``ReconMatch`` and resolves them.
* ``UNMATCH`` (item: a recon match) — the match is undone and its records become breaks again (resolved breaks of
  those references reopen; references with no break get a new one).
* ``WRITE_OFF`` (item: a break) — ``{"amount": optional}``: the difference is written off (WRITTEN_OFF).
* ``FORCE_CLOSE`` (item: a break) — closed as RESOLVED without a system match (e.g. explained timing difference).

Every break a proposal names goes PROPOSED (claimed by the maker when unowned); a rejection or withdrawal returns
it to ASSIGNED (or OPEN when nobody owns it) with the supervisor's comment in its history. Amounts above the
threshold of their currency (``approval_thresholds``; supervisors edit them) need two distinct approvers. A proposal
made on a stale view of the item (``seen_version``) is refused with "changed by X at T; reload", and so is an
approval when the trade changed since the proposal. The rule is enforced here and by the database (migration
0008), which refuses approval rows by the maker or last editor and an APPROVED status without enough approvals.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import ModuleType
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import Break, ReconMatch, Trade, TradeVersion, utcnow
from app.models.enums import (
    BreakStatus,
    BreakType,
    ChangeAction,
    CorrectionKind,
    CorrectionStatus,
    Decision,
    TradeAction,
    TradeStatus,
)
from app.models.workflow import ApprovalThreshold, Correction, CorrectionApproval, CorrectionItem
from app.services import audit
from app.services.concurrency import username_of, versioned_update
from app.services.db import Database
from app.services.errors import (
    InvalidTransition,
    NotFound,
    OpsDeskError,
    PermissionDenied,
    StaleEdit,
    ValidationFailed,
)
from app.services.jsonable import to_jsonable
from app.services.permissions import Actor, Permission, require

from .breaks import ASSIGNED, CLOSED, OPEN, PROPOSED, claim_in, local_text, move_break, owner_check
from .comments import ITEM_LABELS, add_comment_in, item_table, usernames

BREAKS, TRADES, MATCHES = "breaks", "trades", "recon_matches"

# The item kind each correction kind applies to.
ITEM_OF_KIND: dict[CorrectionKind, str] = {
    CorrectionKind.AMEND_TRADE: TRADES,
    CorrectionKind.CANCEL_REBOOK: TRADES,
    CorrectionKind.MANUAL_MATCH: BREAKS,
    CorrectionKind.UNMATCH: MATCHES,
    CorrectionKind.WRITE_OFF: BREAKS,
    CorrectionKind.FORCE_CLOSE: BREAKS,
}
# Trades past these statuses are not amended or cancelled here (settled trades are reversed, not rewritten).
_UNAMENDABLE = (TradeStatus.REPAIR, TradeStatus.CANCELLED, TradeStatus.SETTLED, TradeStatus.PARTIALLY_SETTLED)
MAX_REASON_CHARS = 2000


# --- views ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any
    current: Any = None  # the value now, when it is not ``before`` any more (the item changed since)

    @property
    def changed_since(self) -> bool:
        return self.current is not None and self.current != self.before


@dataclass
class CorrectionView:
    id: int
    kind: str
    status: str
    item_type: str
    item_id: int
    item_label: str  # "trade T-1", "break #12" ...
    reason: str
    amount: Decimal
    currency: str | None
    maker: str
    maker_id: int
    created_at: dt.datetime
    created_text: str  # in the reader's zone
    required_approvals: int
    approvers: list[str]
    changes: list[FieldChange]
    items: list[tuple[str, int]]  # every item the correction touches
    version: int
    can_decide: bool  # the reader may approve / reject it now
    why_not: str | None  # why not, in words
    bulk_allowed: bool  # may be approved in a bulk decision
    decided_at: dt.datetime | None = None
    decision_comment: str | None = None
    rejected_by: str | None = None
    obsolete: str | None = None  # why a pending correction can no longer be applied (reject or withdraw it)

    @property
    def needs_second_approver(self) -> bool:
        return self.required_approvals > 1


@dataclass
class BulkResult:
    decided: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)

    @property
    def all_done(self) -> bool:
        return not self.refused


# --- thresholds -------------------------------------------------------------------------------------------------


def _repair() -> ModuleType:
    """The trade repair rules (``capture.repair``: editable fields, parsing, re-validation), imported on first use.

    They bring in the capture pipeline and pandas, and this module is imported at the application's start through
    the approvals inbox: imported eagerly, they were most of a second of a 3.3 s start."""
    from app.services.capture import repair  # noqa: PLC0415

    return repair


def threshold_for(session: Session, currency: str | None) -> Decimal | None:
    """The amount above which a correction in ``currency`` needs two approvers (None: no threshold at all)."""
    rows = dict(
        session.execute(
            select(ApprovalThreshold.currency, ApprovalThreshold.amount).where(
                ApprovalThreshold.currency.in_([currency or "*", "*"])
            )
        ).all()
    )
    return rows.get(currency or "*", rows.get("*"))


def required_approvals(session: Session, amount: Decimal, currency: str | None) -> int:
    limit = threshold_for(session, currency)
    return 2 if limit is not None and abs(amount) > limit else 1


def thresholds(db: Database, actor: Actor) -> dict[str, Decimal]:
    """Every threshold by currency (``*``: any currency without its own)."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        return dict(s.execute(select(ApprovalThreshold.currency, ApprovalThreshold.amount)).all())


def set_threshold(db: Database, actor: Actor, currency: str, amount: Any) -> None:
    """Set the second-approver threshold of a currency (``*`` for the default). Supervisors only; audited.
    Pending corrections keep the number of approvals they were proposed with."""
    require(actor, Permission.APPROVE_CORRECTION)
    code = (currency or "").strip().upper()
    if code != "*" and not (len(code) == 3 and code.isalpha() and code.isascii()):
        raise ValidationFailed(
            f"'{currency}' is not a 3-letter currency code (or * for every other currency)."
        )
    value = _decimal(amount, "threshold")
    if value < 0:
        raise ValidationFailed("A threshold cannot be negative.")
    with db.write() as s:
        row = s.scalar(select(ApprovalThreshold).where(ApprovalThreshold.currency == code))
        before = None if row is None else {"currency": code, "amount": row.amount}
        if row is None:
            s.add(ApprovalThreshold(currency=code, amount=value, updated_by_id=actor.user_id))
        else:
            row.amount = value
            row.version += 1
            row.updated_by_id = actor.user_id
        s.flush()
        audit.record(
            s,
            actor,
            "approval_thresholds.set",
            "approval_thresholds",
            code,
            before=before,
            after={"currency": code, "amount": value},
        )


# --- helpers ----------------------------------------------------------------------------------------------------


def _decimal(value: Any, what: str) -> Decimal:
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        raise ValidationFailed(f"The {what} '{value}' is not a number.") from None
    if not number.is_finite():
        raise ValidationFailed(f"The {what} '{value}' is not a number.")
    return number


def _stale(
    session: Session, actor: Actor, label: str, version: int, seen: int, by: int | None, at: Any
) -> StaleEdit:
    return StaleEdit(
        f"The {label} was changed by {username_of(session, by)} at {local_text(at, actor)} (now version {version}, you "
        f"had version {seen}); reload it and propose again."
    )


def _pending_on(session: Session, table: str, item_id: int) -> int | None:
    """The id of a pending correction that names the item, if any."""
    return session.scalar(
        select(Correction.id)
        .join(CorrectionItem, CorrectionItem.correction_id == Correction.id)
        .where(
            CorrectionItem.item_type == table,
            CorrectionItem.item_id == item_id,
            Correction.status == CorrectionStatus.PENDING,
        )
        .limit(1)
    )


def _notify_settlement(session: Session, actor: Actor, trade_id: int) -> None:
    """Tell settlement a trade changed (its instructions are regenerated / un-netted), when that area exists."""
    try:
        module = importlib.import_module("app.services.settlement.generate")
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("app.services.settlement"):
            return
        raise
    hook = getattr(module, "on_trade_changed", None)
    if hook is not None:
        hook(session, actor, trade_id)


# --- the amended trade, validated and enriched by the import's own rules ----------------------------------------


def _revalidated(session: Session, trade: Trade, edits: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The trade's stored values with ``edits`` applied and every derived field recomputed, and the problems
    validation finds (empty when the amended trade is clean)."""
    new, exc = _repair().revalidated_values(session, trade, edits)
    problems = [
        f"{f.replace('_', ' ')}: {m} ({c})"
        for c, f, m in zip(exc["code"], exc["field"], exc["message"], strict=True)
    ]
    return new, problems


def _edits_from_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The typed edits of an AMEND_TRADE / CANCEL_REBOOK payload (input or stored {field: {before, after}})."""
    fields = payload.get("fields") or {}
    if not isinstance(fields, dict):
        raise ValidationFailed("The correction's fields must be given as {field: new value}.")
    raw = {k: (v["after"] if isinstance(v, dict) and "after" in v else v) for k, v in fields.items()}
    return _repair()._parse_changes(raw)


# --- planning a proposal ----------------------------------------------------------------------------------------


@dataclass
class _Plan:
    item_version: int | None
    payload: dict[str, Any]
    amount: Decimal
    currency: str | None
    editors: list[int | None]  # last editors of every item touched (primary first)
    breaks: list[int] = field(default_factory=list)  # breaks to move to PROPOSED
    others: list[tuple[str, int]] = field(default_factory=list)  # further items named (not breaks)


def _check_seen(session: Session, actor: Actor, label: str, row: Any, seen: int | None) -> None:
    if seen is not None and row.version != seen:
        raise _stale(session, actor, label, row.version, seen, row.updated_by_id, row.updated_at)


def _load_trade(session: Session, trade_id: int) -> Trade:
    trade = session.get(Trade, trade_id)
    if trade is None:
        raise NotFound(f"Trade #{trade_id} does not exist (it may have been deleted).")
    return trade


def _linked_breaks(session: Session, actor: Actor, ids: Iterable[Any]) -> list[Break]:
    out: list[Break] = []
    for raw in dict.fromkeys(ids):
        try:
            bid = int(raw)
        except (TypeError, ValueError):
            raise ValidationFailed(f"'{raw}' is not a break id.") from None
        brk = session.get(Break, bid)
        if brk is None:
            raise NotFound(f"Break #{bid} does not exist (it may have been deleted).")
        if brk.status not in (OPEN, ASSIGNED):
            raise InvalidTransition(
                f"Break #{bid} is {brk.status.value}; "
                + (
                    "it already has a correction awaiting approval."
                    if brk.status == PROPOSED
                    else "it is closed, so no correction can be proposed on it."
                )
            )
        owner_check(session, actor, brk)
        stale = _pending_on(session, BREAKS, bid)
        if stale is not None:
            # The break was closed by a recon run (and maybe reopened) while a correction was pending on it.
            raise InvalidTransition(
                f"Break #{bid} still has correction #{stale} pending from before a recon run changed it; it must "
                "be rejected or withdrawn first."
            )
        out.append(brk)
    return out


def _trade_changes(
    session: Session, trade: Trade, payload: dict[str, Any], what: str
) -> tuple[dict, dict, dict]:
    """(edits, amended values, field before/after) for an amendment or rebooking; refused when it changes nothing
    or the amended trade would fail validation."""
    unknown = sorted(set(payload.get("fields") or {}) - set(_repair().EDITABLE))
    if unknown:
        raise ValidationFailed(
            f"These fields cannot be corrected: {', '.join(unknown)}. Correctable: {', '.join(_repair().EDITABLE)}."
        )
    edits = _edits_from_payload(payload)
    new, problems = _revalidated(session, trade, edits)
    if problems:
        raise ValidationFailed(
            f"The {what} of trade {trade.trade_ref} would fail validation: " + "; ".join(problems) + ".",
            [("", p.split(":", 1)[0], p) for p in problems],
        )
    stored = {k: getattr(trade, k) for k in new}
    fields = {
        k: {"before": to_jsonable(stored[k]), "after": to_jsonable(new[k])}
        for k in edits
        if _repair()._differs(stored[k], new[k])
    }
    derived = {
        k: {"before": to_jsonable(stored[k]), "after": to_jsonable(new[k])}
        for k in new
        if k not in edits and k != "exception_codes" and _repair()._differs(stored[k], new[k])
    }
    return edits, new, {"fields": fields, "derived": derived}


def _plan_amend(
    session: Session, actor: Actor, trade_id: int, payload: dict[str, Any], seen: int | None
) -> _Plan:
    trade = _load_trade(session, trade_id)
    _check_seen(session, actor, f"trade {trade.trade_ref}", trade, seen)
    if trade.status in _UNAMENDABLE:
        hint = " (fix it in the repair queue)" if trade.status == TradeStatus.REPAIR else ""
        raise InvalidTransition(
            f"Trade {trade.trade_ref} is {trade.status.value}; it cannot be amended{hint}."
        )
    _edits, new, changes = _trade_changes(session, trade, payload, "amendment")
    if not changes["fields"]:
        raise ValidationFailed(f"The amendment changes nothing on trade {trade.trade_ref}.")
    breaks = _linked_breaks(session, actor, payload.get("break_ids") or [])
    return _Plan(
        item_version=trade.version,
        payload={**changes, "trade_ref": trade.trade_ref, "break_ids": [b.id for b in breaks]},
        amount=max(abs(trade.gross_amount), abs(new["gross_amount"])),
        currency=new["currency"],
        editors=[trade.updated_by_id, *(b.updated_by_id for b in breaks)],
        breaks=[b.id for b in breaks],
    )


def _rebook_ref(session: Session, trade_ref: str) -> str:
    n = 1 + int(session.scalar(select(func.count()).where(Trade.trade_ref.like(f"{trade_ref}-R%"))) or 0)
    while session.scalar(select(func.count()).where(Trade.trade_ref == f"{trade_ref}-R{n}")):
        n += 1
    return f"{trade_ref}-R{n}"


def _plan_cancel_rebook(
    session: Session, actor: Actor, trade_id: int, payload: dict[str, Any], seen: int | None
) -> _Plan:
    trade = _load_trade(session, trade_id)
    _check_seen(session, actor, f"trade {trade.trade_ref}", trade, seen)
    if trade.status in _UNAMENDABLE:
        raise InvalidTransition(
            f"Trade {trade.trade_ref} is {trade.status.value}; it cannot be cancelled and rebooked."
        )
    _edits, new, changes = _trade_changes(session, trade, payload, "rebooked copy")
    if not changes["fields"]:
        raise ValidationFailed(
            f"The rebooked copy of trade {trade.trade_ref} would be identical; name the fields to correct."
        )
    new_ref = str(payload.get("new_trade_ref") or "").strip() or _rebook_ref(session, trade.trade_ref)
    if len(new_ref) > 64:
        raise ValidationFailed(f"The new trade reference '{new_ref}' is longer than 64 characters.")
    if session.scalar(select(func.count()).where(Trade.trade_ref == new_ref)):
        raise ValidationFailed(
            f"A trade {new_ref} already exists; choose another reference for the rebooked copy."
        )
    breaks = _linked_breaks(session, actor, payload.get("break_ids") or [])
    return _Plan(
        item_version=trade.version,
        payload={
            **changes,
            "trade_ref": trade.trade_ref,
            "new_trade_ref": new_ref,
            "break_ids": [b.id for b in breaks],
        },
        amount=max(abs(trade.gross_amount), abs(new["gross_amount"])),
        currency=new["currency"],
        editors=[trade.updated_by_id, *(b.updated_by_id for b in breaks)],
        breaks=[b.id for b in breaks],
    )


def _sides(brk: Break) -> tuple[bool, bool]:
    """(has an internal record, has an external record) for a break."""
    if brk.break_type == BreakType.MISSING_EXTERNAL:
        return True, False
    if brk.break_type == BreakType.MISSING_INTERNAL:
        return False, True
    return True, True


def _plan_manual_match(
    session: Session, actor: Actor, break_id: int, payload: dict[str, Any], seen: int | None
) -> _Plan:
    primary = session.get(Break, break_id)
    if primary is None:
        raise NotFound(f"Break #{break_id} does not exist (it may have been deleted).")
    _check_seen(session, actor, f"break #{break_id}", primary, seen)
    ids = [break_id, *(payload.get("break_ids") or [])]
    breaks = _linked_breaks(session, actor, ids)
    if len({b.definition_id for b in breaks}) > 1:
        raise ValidationFailed("A manual match pairs breaks of one reconciliation; these come from several.")
    dups = [b.id for b in breaks if b.break_type == BreakType.DUPLICATE_KEY]
    if dups:
        raise ValidationFailed(
            f"Break(s) {', '.join(f'#{d}' for d in dups)} are duplicate keys; sort the duplicates out first."
        )
    # Records booked in different currencies are not one trade or one position: their totals cannot be compared,
    # and the match's amount (what the four-eyes threshold is read against) would mix units.
    currencies = sorted({b.currency for b in breaks if b.currency})
    if len(currencies) > 1:
        listed = ", ".join(f"#{b.id} {b.currency}" for b in breaks if b.currency)
        raise ValidationFailed(
            f"A manual match pairs records of one currency; these are in {' and '.join(currencies)} ({listed})."
        )
    internal = [b for b in breaks if _sides(b)[0] and not _sides(b)[1]]
    external = [b for b in breaks if _sides(b)[1] and not _sides(b)[0]]
    both = [b for b in breaks if all(_sides(b))]
    if (internal or external) and not (internal and external):
        missing = "external" if internal else "internal"
        raise ValidationFailed(
            f"A manual match needs records of both sides: add at least one break with the {missing} record."
        )
    left = [b.internal_ref for b in internal + both if b.internal_ref]
    right = [b.external_ref for b in external + both if b.external_ref]
    in_total = sum((abs(b.amount) for b in internal), Decimal(0))
    ex_total = sum((abs(b.amount) for b in external), Decimal(0))
    amount = max(in_total, ex_total, *(abs(b.amount) for b in both), Decimal(0))
    return _Plan(
        item_version=primary.version,
        payload={
            "break_ids": [b.id for b in breaks],
            "definition_id": primary.definition_id,
            "left_refs": left,
            "right_refs": right,
            "internal_total": to_jsonable(in_total),
            "external_total": to_jsonable(ex_total),
            "shape": f"{len(internal) + len(both)}:{len(external) + len(both)}",
        },
        amount=amount,
        currency=primary.currency,
        editors=[b.updated_by_id for b in breaks],
        breaks=[b.id for b in breaks],
    )


def _plan_unmatch(
    session: Session, actor: Actor, match_id: int, payload: dict[str, Any], seen: int | None
) -> _Plan:
    match = session.get(ReconMatch, match_id)
    if match is None:
        raise NotFound(f"Match #{match_id} does not exist.")
    if match.unmatched_at is not None:
        raise InvalidTransition(
            f"Match #{match_id} was already undone on {local_text(match.unmatched_at, actor)}."
        )
    pending = _pending_on(session, MATCHES, match_id)
    if pending is not None:
        raise InvalidTransition(f"Match #{match_id} already has correction #{pending} awaiting approval.")
    related = _match_breaks(session, match)
    amount = (
        _decimal(payload["amount"], "amount")
        if payload.get("amount") is not None
        else max((abs(b.amount) for b in related), default=Decimal(0))
    )
    return _Plan(
        item_version=None,
        payload={
            "definition_id": match.definition_id,
            "left_refs": list(match.left_refs or []),
            "right_refs": list(match.right_refs or []),
            "pass_name": match.pass_name,
        },
        amount=amount,
        currency=next((b.currency for b in related if b.currency), payload.get("currency")),
        editors=[match.matched_by_id],
    )


def _plan_close(
    kind: CorrectionKind,
    session: Session,
    actor: Actor,
    break_id: int,
    payload: dict[str, Any],
    seen: int | None,
) -> _Plan:
    brk = session.get(Break, break_id)
    if brk is None:
        raise NotFound(f"Break #{break_id} does not exist (it may have been deleted).")
    _check_seen(session, actor, f"break #{break_id}", brk, seen)
    _linked_breaks(session, actor, [break_id])
    at_stake = abs(brk.amount)
    out: dict[str, Any] = {"break_ids": [break_id], "status_before": brk.status.value}
    amount = at_stake
    if kind == CorrectionKind.WRITE_OFF:
        amount = (
            _decimal(payload["amount"], "amount") if payload.get("amount") not in (None, "") else at_stake
        )
        if amount <= 0:
            raise ValidationFailed("A write-off needs a positive amount.")
        if at_stake and amount > at_stake:
            raise ValidationFailed(
                f"The write-off of {amount} is more than the {at_stake} {brk.currency or ''} at stake on break "
                f"#{break_id}."
            )
        out["amount"] = to_jsonable(amount)
        out["status_after"] = BreakStatus.WRITTEN_OFF.value
    else:
        out["status_after"] = BreakStatus.RESOLVED.value
    return _Plan(
        item_version=brk.version,
        payload=out,
        amount=amount,
        currency=brk.currency,
        editors=[brk.updated_by_id],
        breaks=[break_id],
    )


_PLANNERS: dict[CorrectionKind, Callable[..., _Plan]] = {
    CorrectionKind.AMEND_TRADE: _plan_amend,
    CorrectionKind.CANCEL_REBOOK: _plan_cancel_rebook,
    CorrectionKind.MANUAL_MATCH: _plan_manual_match,
    CorrectionKind.UNMATCH: _plan_unmatch,
    CorrectionKind.WRITE_OFF: lambda *a: _plan_close(CorrectionKind.WRITE_OFF, *a),
    CorrectionKind.FORCE_CLOSE: lambda *a: _plan_close(CorrectionKind.FORCE_CLOSE, *a),
}


def propose(
    db: Database,
    actor: Actor,
    kind: CorrectionKind | str,
    item_type: str,
    item_id: int,
    payload: dict[str, Any] | None,
    reason: str,
    *,
    seen_version: int | None,
) -> int:
    """Propose a correction for a supervisor to approve (see the module docstring). Returns its id."""
    require(actor, Permission.PROPOSE_CORRECTION)
    try:
        kind = CorrectionKind(str(getattr(kind, "value", kind)).upper())
    except ValueError:
        raise ValidationFailed(
            f"'{kind}' is not a kind of correction; use one of {', '.join(k.value for k in CorrectionKind)}."
        ) from None
    table = item_table(item_type)
    if table != ITEM_OF_KIND[kind]:
        raise ValidationFailed(
            f"A {kind.value} correction applies to a {ITEM_LABELS[ITEM_OF_KIND[kind]]}, not to a {ITEM_LABELS[table]}."
        )
    text = (reason or "").strip()
    if not text:
        raise ValidationFailed("A correction needs a reason (the checker reads it before deciding).")
    if len(text) > MAX_REASON_CHARS:
        raise ValidationFailed(f"A reason is at most {MAX_REASON_CHARS} characters.")
    with db.write() as s:
        pending = _pending_on(s, table, item_id) if table == TRADES else None
        if pending is not None:
            raise InvalidTransition(
                f"Trade #{item_id} already has correction #{pending} awaiting approval; withdraw it or wait for "
                "the decision."
            )
        plan = _PLANNERS[kind](s, actor, item_id, dict(payload or {}), seen_version)
        # The checker may be neither the maker nor anyone who last edited an item the correction touches; the
        # database holds one last editor per correction: the first who is not the maker (the primary item's).
        editors = [e for e in plan.editors if e is not None]
        recorded = next((e for e in editors if e != actor.user_id), editors[0] if editors else None)
        # Breaks go PROPOSED (claimed by the maker when nobody owns them); their status before is kept.
        prior: dict[int, str] = {}
        for bid in plan.breaks:
            brk = s.get(Break, bid)
            s.refresh(brk)
            if brk.owner_id is None:
                claim_in(s, actor, bid)
                s.refresh(brk)
            prior[bid] = brk.status.value
        required = required_approvals(s, plan.amount, plan.currency)
        corr = Correction(
            kind=kind,
            item_type=table,
            item_id=item_id,
            item_version=plan.item_version,
            payload=to_jsonable({**plan.payload, "editors": sorted(set(editors))}),
            reason=text,
            amount=plan.amount,
            currency=plan.currency,
            status=CorrectionStatus.PENDING,
            maker_id=actor.user_id,
            item_last_editor_id=recorded,
            required_approvals=required,
            updated_by_id=actor.user_id,
        )
        s.add(corr)
        s.flush()
        items = [(table, item_id, "primary")]
        items += [(BREAKS, b, "linked") for b in plan.breaks if not (table == BREAKS and b == item_id)]
        items += [(t, i, "linked") for t, i in plan.others]
        s.add_all(
            CorrectionItem(
                correction_id=corr.id,
                item_type=t,
                item_id=i,
                role=role,
                prior_status=prior.get(i) if t == BREAKS else None,
            )
            for t, i, role in items
        )
        for bid in plan.breaks:
            move_break(
                s,
                actor,
                bid,
                PROPOSED,
                action="breaks.correction_proposed",
                from_statuses=(OPEN, ASSIGNED),
                note={"correction_id": corr.id, "kind": kind.value},
            )
        if table == BREAKS and kind != CorrectionKind.UNMATCH:
            corr.item_version = s.scalar(select(Break.version).where(Break.id == item_id))
        audit.record(
            s,
            actor,
            "corrections.propose",
            "corrections",
            corr.id,
            after={
                "correction_id": corr.id,
                "kind": kind.value,
                "item_type": table,
                "item_id": item_id,
                "reason": text,
                "amount": plan.amount,
                "currency": plan.currency,
                "required_approvals": required,
                "payload": plan.payload,
            },
            change=ChangeAction.INSERT,
        )
        if table != BREAKS:
            audit.publish(s, actor, table, item_id, ChangeAction.UPDATE, {"action": "correction proposed"})
        return int(corr.id)


# --- deciding ---------------------------------------------------------------------------------------------------


def _lock(session: Session, correction_id: int) -> Correction:
    corr = session.execute(
        select(Correction).where(Correction.id == correction_id).with_for_update()
    ).scalar_one_or_none()
    if corr is None:
        raise NotFound(f"Correction #{correction_id} does not exist.")
    return corr


def _decided_text(session: Session, actor: Actor, corr: Correction) -> str:
    return (
        f"Correction #{corr.id} is already {corr.status.value.lower()}"
        + (f" (on {local_text(corr.decided_at, actor)})" if corr.decided_at else "")
        + "."
    )


def _four_eyes_refusal(session: Session, actor: Actor, corr: Correction) -> str | None:
    """Why ``actor`` may not decide ``corr`` (None when they may). The database checks the same again."""
    if not actor.can(Permission.APPROVE_CORRECTION):
        return f"{actor.username} ({actor.role.value}) may not approve or reject corrections."
    if corr.maker_id == actor.user_id:
        return (
            f"You proposed correction #{corr.id}; another supervisor must decide it (withdraw it to cancel)."
        )
    editors = set((corr.payload or {}).get("editors") or []) | {corr.item_last_editor_id}
    if actor.user_id in editors:
        return (
            f"You were the last to edit the item of correction #{corr.id}; a supervisor who did not touch it must "
            "decide it."
        )
    if corr.item_type == TRADES:
        last = session.scalar(select(Trade.updated_by_id).where(Trade.id == corr.item_id))
        if last == actor.user_id:
            return f"You were the last to edit trade #{corr.item_id}; another supervisor must decide correction #{corr.id}."
    return None


def _check_decider(session: Session, actor: Actor, corr: Correction) -> None:
    if corr.status != CorrectionStatus.PENDING:
        raise InvalidTransition(_decided_text(session, actor, corr))
    why = _four_eyes_refusal(session, actor, corr)
    if why is not None:
        raise PermissionDenied(why)
    if session.scalar(
        select(func.count()).where(
            CorrectionApproval.correction_id == corr.id, CorrectionApproval.approver_id == actor.user_id
        )
    ):
        raise PermissionDenied(
            f"You already approved correction #{corr.id}; it needs a second approver who is someone else."
        )


def _approval(corr: Correction, actor: Actor, decision: Decision, comment: str) -> CorrectionApproval:
    return CorrectionApproval(
        correction_id=corr.id,
        approver_id=actor.user_id,
        maker_id=corr.maker_id,
        item_last_editor_id=corr.item_last_editor_id,
        decision=decision,
        comment=comment,
        decided_at=utcnow(),
    )


def approve(db: Database, actor: Actor, correction_id: int, comment: str = "") -> CorrectionStatus:
    """Approve a correction. With enough distinct approvals the change is applied, atomically with its audit
    entries, and APPROVED is returned; a correction needing a second approver stays PENDING after the first."""
    require(actor, Permission.APPROVE_CORRECTION)
    note = (comment or "").strip()
    with db.write() as s:
        corr = _lock(s, correction_id)
        _check_decider(s, actor, corr)
        s.add(_approval(corr, actor, Decision.APPROVE, note))
        s.flush()
        count = int(
            s.scalar(
                select(func.count(func.distinct(CorrectionApproval.approver_id))).where(
                    CorrectionApproval.correction_id == corr.id,
                    CorrectionApproval.decision == Decision.APPROVE,
                )
            )
            or 0
        )
        summary = {"correction_id": corr.id, "kind": corr.kind.value, "comment": note}
        if count < corr.required_approvals:
            audit.record(
                s,
                actor,
                "corrections.first_approval",
                "corrections",
                corr.id,
                after={**summary, "approvals": count, "required": corr.required_approvals},
            )
            return CorrectionStatus.PENDING
        result = _APPLY[corr.kind](s, actor, corr)
        corr.status = CorrectionStatus.APPROVED
        corr.decided_at = utcnow()
        corr.decision_comment = note or None
        corr.version += 1
        corr.updated_by_id = actor.user_id
        corr.payload = to_jsonable({**(corr.payload or {}), "result": result})
        s.flush()  # the database's own four-eyes check runs here
        audit.record(
            s,
            actor,
            "corrections.approve",
            "corrections",
            corr.id,
            before={"status": CorrectionStatus.PENDING.value},
            after={**summary, "status": CorrectionStatus.APPROVED.value, "result": result},
        )
        return CorrectionStatus.APPROVED


def _give_back(session: Session, actor: Actor, corr: Correction, action: str, comment: str) -> None:
    """Return the breaks a pending correction held (PROPOSED) to ASSIGNED, or OPEN when nobody owns them."""
    ids = session.scalars(
        select(CorrectionItem.item_id).where(
            CorrectionItem.correction_id == corr.id, CorrectionItem.item_type == BREAKS
        )
    ).all()
    for bid in ids:
        row = session.execute(select(Break.status, Break.owner_id).where(Break.id == bid)).first()
        if row is None or row.status != PROPOSED:
            continue  # closed by a run meanwhile: nothing to give back
        move_break(
            session,
            actor,
            bid,
            ASSIGNED if row.owner_id is not None else OPEN,
            action=action,
            from_statuses=(PROPOSED,),
            note={"correction_id": corr.id, "comment": comment},
        )


def reject(db: Database, actor: Actor, correction_id: int, comment: str) -> None:
    """Reject a correction with a comment for the maker: nothing is changed, the item goes back to where it was
    and the comment is added to its history."""
    require(actor, Permission.APPROVE_CORRECTION)
    note = (comment or "").strip()
    if not note:
        raise ValidationFailed("Say why the correction is rejected; the maker reads it on the item.")
    with db.write() as s:
        corr = _lock(s, correction_id)
        _check_decider(s, actor, corr)
        s.add(_approval(corr, actor, Decision.REJECT, note))
        s.flush()  # the rejection row first: the database accepts decisions only on a pending correction
        corr.status = CorrectionStatus.REJECTED
        corr.decided_at = utcnow()
        corr.decision_comment = note
        corr.version += 1
        corr.updated_by_id = actor.user_id
        s.flush()
        _give_back(s, actor, corr, "breaks.correction_rejected", note)
        add_comment_in(
            s,
            actor,
            corr.item_type,
            corr.item_id,
            f"Correction #{corr.id} ({corr.kind.value}) rejected: {note}",
        )
        audit.record(
            s,
            actor,
            "corrections.reject",
            "corrections",
            corr.id,
            before={"status": CorrectionStatus.PENDING.value},
            after={"correction_id": corr.id, "kind": corr.kind.value, "status": "REJECTED", "comment": note},
        )


def withdraw(db: Database, actor: Actor, correction_id: int, comment: str = "") -> None:
    """The maker takes back a pending correction; the item goes back to where it was."""
    require(actor, Permission.PROPOSE_CORRECTION)
    note = (comment or "").strip()
    with db.write() as s:
        corr = _lock(s, correction_id)
        if corr.status != CorrectionStatus.PENDING:
            raise InvalidTransition(_decided_text(s, actor, corr))
        if corr.maker_id != actor.user_id:
            raise PermissionDenied(
                f"Only {username_of(s, corr.maker_id)}, who proposed correction #{corr.id}, may withdraw it; a "
                "supervisor rejects it instead."
            )
        corr.status = CorrectionStatus.WITHDRAWN
        corr.decided_at = utcnow()
        corr.decision_comment = note or None
        corr.version += 1
        corr.updated_by_id = actor.user_id
        s.flush()
        _give_back(s, actor, corr, "breaks.correction_withdrawn", note)
        audit.record(
            s,
            actor,
            "corrections.withdraw",
            "corrections",
            corr.id,
            before={"status": CorrectionStatus.PENDING.value},
            after={"correction_id": corr.id, "kind": corr.kind.value, "status": "WITHDRAWN", "comment": note},
        )


def bulk_decide(
    db: Database, actor: Actor, ids: Iterable[int], decision: Decision | str, comment: str
) -> BulkResult:
    """Approve or reject several corrections, each in its own unit of work, so one refusal does not hold back the
    others. Corrections that need a second approver are never approved in bulk: each is decided on its own."""
    require(actor, Permission.APPROVE_CORRECTION)
    decision = Decision(str(getattr(decision, "value", decision)).upper())
    result = BulkResult()
    for cid in dict.fromkeys(int(i) for i in ids):
        try:
            if decision == Decision.APPROVE:
                with db.read() as s:
                    corr = s.get(Correction, cid)
                    needs = None if corr is None else corr.required_approvals
                if needs is not None and needs > 1:
                    result.refused[cid] = (
                        f"Correction #{cid} is above the approval threshold and needs two approvers; decide it on "
                        "its own."
                    )
                    continue
                approve(db, actor, cid, comment)
            else:
                reject(db, actor, cid, comment)
            result.decided.append(cid)
        except OpsDeskError as err:
            result.refused[cid] = str(err)
    return result


# --- applying an approved correction ----------------------------------------------------------------------------


def _resolve_breaks(
    session: Session, actor: Actor, corr: Correction, target: BreakStatus, note: dict
) -> list[int]:
    ids = session.scalars(
        select(CorrectionItem.item_id).where(
            CorrectionItem.correction_id == corr.id, CorrectionItem.item_type == BREAKS
        )
    ).all()
    for bid in ids:
        move_break(
            session,
            actor,
            bid,
            target,
            action="breaks.correction_approved",
            from_statuses=(PROPOSED,),
            note={"correction_id": corr.id, "kind": corr.kind.value, **note},
        )
    return list(ids)


def _check_breaks_still_held(session: Session, corr: Correction) -> None:
    ids = session.scalars(
        select(CorrectionItem.item_id).where(
            CorrectionItem.correction_id == corr.id, CorrectionItem.item_type == BREAKS
        )
    ).all()
    for bid in ids:
        status = session.scalar(select(Break.status).where(Break.id == bid))
        if status != PROPOSED:
            raise InvalidTransition(
                f"Break #{bid} of correction #{corr.id} is {getattr(status, 'value', 'gone')} now (a recon run "
                "changed it since the proposal); reject the correction."
            )


def _current_trade(session: Session, actor: Actor, corr: Correction) -> Trade:
    trade = _load_trade(session, corr.item_id)
    if corr.item_version is not None and trade.version != corr.item_version:
        raise StaleEdit(
            f"Trade {trade.trade_ref} was changed by {username_of(session, trade.updated_by_id)} at "
            f"{local_text(trade.updated_at, actor)} after correction #{corr.id} was proposed; reject it so the "
            "maker can propose again on the current trade."
        )
    if trade.status in _UNAMENDABLE:
        raise InvalidTransition(
            f"Trade {trade.trade_ref} is {trade.status.value} now; the correction cannot apply."
        )
    return trade


def _add_version(session: Session, trade_id: int, action: TradeAction, corr: Correction, extra: dict) -> int:
    fo_version = int(session.scalar(select(Trade.fo_version).where(Trade.id == trade_id)) or 0) + 1
    top = (
        session.scalar(select(func.max(TradeVersion.fo_version)).where(TradeVersion.trade_id == trade_id))
        or 0
    )
    fo_version = max(fo_version, int(top) + 1)
    session.execute(
        update(Trade)
        .where(Trade.id == trade_id)
        .values(fo_version=fo_version)
        .execution_options(synchronize_session=False)
    )
    session.add(
        TradeVersion(
            trade_id=trade_id,
            fo_version=fo_version,
            action=action,
            source="CORRECTION",
            source_ref=f"correction:{corr.id}",
            payload=to_jsonable(
                {"correction": corr.id, "kind": corr.kind.value, "reason": corr.reason, **extra}
            ),
        )
    )
    session.flush()
    return fo_version


def _apply_amend(session: Session, actor: Actor, corr: Correction) -> dict[str, Any]:
    _check_breaks_still_held(session, corr)
    trade = _current_trade(session, actor, corr)
    edits = _edits_from_payload(corr.payload)
    new, problems = _revalidated(session, trade, edits)
    if problems:
        raise ValidationFailed(
            f"Trade {trade.trade_ref} would no longer pass validation with this amendment: {'; '.join(problems)}. "
            "Reject the correction."
        )
    changed = {k: v for k, v in new.items() if _repair()._differs(getattr(trade, k), v)}
    changed["status"] = trade.status  # kept; written so the audit entry states it
    session.expunge(trade)
    version = versioned_update(
        session, actor, Trade, trade.id, corr.item_version or trade.version, changed, action="trades.amend"
    )
    fo = _add_version(session, trade.id, TradeAction.AMEND, corr, {"fields": corr.payload.get("fields")})
    _notify_settlement(session, actor, trade.id)
    breaks = _resolve_breaks(session, actor, corr, BreakStatus.RESOLVED, {"trade_id": trade.id})
    return {"trade_id": trade.id, "trade_version": version, "fo_version": fo, "resolved_breaks": breaks}


_COPY_EXCLUDE = {
    "id",
    "trade_ref",
    "version",
    "created_at",
    "updated_at",
    "updated_by_id",
    "owner_id",
    "claimed_at",
}


def _apply_cancel_rebook(session: Session, actor: Actor, corr: Correction) -> dict[str, Any]:
    _check_breaks_still_held(session, corr)
    trade = _current_trade(session, actor, corr)
    new_ref = str(corr.payload.get("new_trade_ref"))
    if session.scalar(select(func.count()).where(Trade.trade_ref == new_ref)):
        raise ValidationFailed(f"A trade {new_ref} was booked since the proposal; reject the correction.")
    edits = _edits_from_payload(corr.payload)
    new, problems = _revalidated(session, trade, edits)
    if problems:
        raise ValidationFailed(
            f"The rebooked copy would fail validation: {'; '.join(problems)}. Reject the correction."
        )
    copy = {c.key: getattr(trade, c.key) for c in Trade.__table__.columns if c.key not in _COPY_EXCLUDE}
    copy.update(new)
    copy.update(
        trade_ref=new_ref,
        fo_version=1,
        source="CORRECTION",
        source_ref=f"correction:{corr.id}",
        status=TradeStatus.VALIDATED,
        exception_codes="",
        confirmed_at=None,
        affirmed_at=None,
        updated_by_id=actor.user_id,
    )
    original_id, original_ref = trade.id, trade.trade_ref
    session.expunge(trade)
    version = versioned_update(
        session,
        actor,
        Trade,
        original_id,
        corr.item_version or trade.version,
        {"status": TradeStatus.CANCELLED},
        action="trades.cancel",
    )
    _add_version(session, original_id, TradeAction.CANCEL, corr, {"rebooked_as": new_ref})
    rebooked = Trade(**copy)
    session.add(rebooked)
    session.flush()
    session.add(
        TradeVersion(
            trade_id=rebooked.id,
            fo_version=1,
            action=TradeAction.NEW,
            source="CORRECTION",
            source_ref=f"correction:{corr.id}",
            payload=to_jsonable(
                {
                    "correction": corr.id,
                    "kind": corr.kind.value,
                    "rebooks": original_ref,
                    "fields": corr.payload.get("fields"),
                }
            ),
        )
    )
    session.flush()
    audit.record(
        session,
        actor,
        "trades.rebook",
        "trades",
        rebooked.id,
        after={"trade_ref": new_ref, "rebooks": original_ref, "correction_id": corr.id, **to_jsonable(new)},
        change=ChangeAction.INSERT,
    )
    _notify_settlement(session, actor, original_id)
    _notify_settlement(session, actor, rebooked.id)
    breaks = _resolve_breaks(session, actor, corr, BreakStatus.RESOLVED, {"rebooked_as": new_ref})
    return {
        "cancelled_trade_id": original_id,
        "cancelled_version": version,
        "rebooked_trade_id": rebooked.id,
        "rebooked_trade_ref": new_ref,
        "resolved_breaks": breaks,
    }


def _apply_manual_match(session: Session, actor: Actor, corr: Correction) -> dict[str, Any]:
    _check_breaks_still_held(session, corr)
    p = corr.payload
    match = ReconMatch(
        run_id=None,
        definition_id=int(p["definition_id"]),
        pass_name="manual",
        left_refs=list(p.get("left_refs") or []),
        right_refs=list(p.get("right_refs") or []),
        matched_by_id=corr.maker_id,
    )
    session.add(match)
    session.flush()
    audit.record(
        session,
        actor,
        "recon_matches.manual",
        "recon_matches",
        match.id,
        after={"correction_id": corr.id, "left_refs": match.left_refs, "right_refs": match.right_refs},
        change=ChangeAction.INSERT,
    )
    breaks = _resolve_breaks(session, actor, corr, BreakStatus.RESOLVED, {"match_id": match.id})
    return {"match_id": match.id, "resolved_breaks": breaks}


def _match_breaks(session: Session, match: ReconMatch) -> list[Break]:
    left = [str(r) for r in match.left_refs or []]
    right = [str(r) for r in match.right_refs or []]
    found: dict[int, Break] = {}
    for col, refs in ((Break.internal_ref, left), (Break.external_ref, right)):
        if refs:
            for b in session.scalars(
                select(Break).where(Break.definition_id == match.definition_id, col.in_(refs))
            ):
                found[b.id] = b
    return list(found.values())


def _apply_unmatch(session: Session, actor: Actor, corr: Correction) -> dict[str, Any]:
    match = session.get(ReconMatch, corr.item_id)
    if match is None:
        raise NotFound(f"Match #{corr.item_id} does not exist any more.")
    now = utcnow()
    done = session.execute(
        update(ReconMatch)
        .where(ReconMatch.id == match.id, ReconMatch.unmatched_at.is_(None))
        .values(unmatched_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if done != 1:
        raise InvalidTransition(f"Match #{match.id} was undone meanwhile; reject the correction.")
    audit.record(
        session,
        actor,
        "recon_matches.unmatch",
        "recon_matches",
        match.id,
        before={"unmatched_at": None},
        after={"unmatched_at": now, "correction_id": corr.id},
    )
    existing = _match_breaks(session, match)
    reopened: list[int] = []
    for b in existing:
        if b.status in CLOSED:
            move_break(
                session,
                actor,
                b.id,
                OPEN,
                action="breaks.reopen",
                values={"owner_id": None, "claimed_at": None},
                note={"correction_id": corr.id, "unmatched": match.id},
            )
            reopened.append(b.id)
    covered_left = {b.internal_ref for b in existing}
    covered_right = {b.external_ref for b in existing}
    created: list[int] = []
    today = now.date()
    for refs, covered, btype, side in (
        (match.left_refs or [], covered_left, BreakType.MISSING_EXTERNAL, "L"),
        (match.right_refs or [], covered_right, BreakType.MISSING_INTERNAL, "R"),
    ):
        for ref in refs:
            if str(ref) in covered:
                continue
            brk = Break(
                definition_id=match.definition_id,
                fingerprint=hashlib.sha256(f"unmatch:{match.id}:{side}:{ref}".encode()).hexdigest(),
                break_type=btype,
                status=BreakStatus.OPEN,
                internal_ref=str(ref) if side == "L" else None,
                external_ref=str(ref) if side == "R" else None,
                differences=[],
                amount=Decimal(0),
                currency=corr.currency,
                as_of_date=today,
                updated_by_id=actor.user_id,
            )
            session.add(brk)
            session.flush()
            audit.record(
                session,
                actor,
                "breaks.create",
                "breaks",
                brk.id,
                after={
                    "break_type": btype.value,
                    "status": "OPEN",
                    "ref": str(ref),
                    "correction_id": corr.id,
                },
                change=ChangeAction.INSERT,
            )
            created.append(brk.id)
    return {"match_id": match.id, "reopened_breaks": reopened, "created_breaks": created}


def _apply_write_off(session: Session, actor: Actor, corr: Correction) -> dict[str, Any]:
    _check_breaks_still_held(session, corr)
    breaks = _resolve_breaks(
        session,
        actor,
        corr,
        BreakStatus.WRITTEN_OFF,
        {"amount": to_jsonable(corr.amount), "currency": corr.currency},
    )
    return {"written_off_breaks": breaks, "amount": to_jsonable(corr.amount), "currency": corr.currency}


def _apply_force_close(session: Session, actor: Actor, corr: Correction) -> dict[str, Any]:
    _check_breaks_still_held(session, corr)
    return {
        "resolved_breaks": _resolve_breaks(
            session, actor, corr, BreakStatus.RESOLVED, {"reason": corr.reason}
        )
    }


_APPLY: dict[CorrectionKind, Callable[[Session, Actor, Correction], dict[str, Any]]] = {
    CorrectionKind.AMEND_TRADE: _apply_amend,
    CorrectionKind.CANCEL_REBOOK: _apply_cancel_rebook,
    CorrectionKind.MANUAL_MATCH: _apply_manual_match,
    CorrectionKind.UNMATCH: _apply_unmatch,
    CorrectionKind.WRITE_OFF: _apply_write_off,
    CorrectionKind.FORCE_CLOSE: _apply_force_close,
}


# --- reading: the approvals inbox and one correction ------------------------------------------------------------


def field_changes(session: Session, corr: Correction) -> list[FieldChange]:
    p = corr.payload or {}
    if corr.kind in (CorrectionKind.AMEND_TRADE, CorrectionKind.CANCEL_REBOOK):
        current: dict[str, Any] = {}
        if corr.status == CorrectionStatus.PENDING:
            trade = session.get(Trade, corr.item_id)
            if trade is not None:
                current = {
                    k: to_jsonable(getattr(trade, k)) for k in (p.get("fields") or {}) if hasattr(trade, k)
                }
        out = [
            FieldChange(
                k,
                v.get("before"),
                v.get("after"),
                current.get(k) if current.get(k) != v.get("before") else None,
            )
            for k, v in (p.get("fields") or {}).items()
        ]
        out += [
            FieldChange(f"{k} (derived)", v.get("before"), v.get("after"))
            for k, v in (p.get("derived") or {}).items()
        ]
        if corr.kind == CorrectionKind.CANCEL_REBOOK:
            out.insert(
                0,
                FieldChange("trade", p.get("trade_ref"), f"cancelled; rebooked as {p.get('new_trade_ref')}"),
            )
        return out
    if corr.kind == CorrectionKind.MANUAL_MATCH:
        return [
            FieldChange("internal records", None, ", ".join(p.get("left_refs") or [])),
            FieldChange("external records", None, ", ".join(p.get("right_refs") or [])),
            FieldChange("internal total", None, p.get("internal_total")),
            FieldChange("external total", None, p.get("external_total")),
            FieldChange("breaks", ", ".join(f"#{b}" for b in p.get("break_ids") or []), "RESOLVED"),
        ]
    if corr.kind == CorrectionKind.UNMATCH:
        return [
            FieldChange("match", f"#{corr.item_id} ({p.get('pass_name')})", "undone"),
            FieldChange("internal records", ", ".join(p.get("left_refs") or []), "breaks again"),
            FieldChange("external records", ", ".join(p.get("right_refs") or []), "breaks again"),
        ]
    out = [FieldChange("status", p.get("status_before"), p.get("status_after"))]
    if corr.kind == CorrectionKind.WRITE_OFF:
        out.append(FieldChange("written off", None, f"{p.get('amount')} {corr.currency or ''}".strip()))
    return out


def _item_label(session: Session, corr: Correction) -> str:
    if corr.item_type == TRADES:
        ref = session.scalar(select(Trade.trade_ref).where(Trade.id == corr.item_id))
        return f"trade {ref}" if ref else f"trade #{corr.item_id}"
    return f"{ITEM_LABELS.get(corr.item_type, corr.item_type)} #{corr.item_id}"


def _views(session: Session, actor: Actor, rows: list[Correction]) -> list[CorrectionView]:
    if not rows:
        return []
    ids = [c.id for c in rows]
    approvals = session.execute(
        select(CorrectionApproval.correction_id, CorrectionApproval.approver_id, CorrectionApproval.decision)
        .where(CorrectionApproval.correction_id.in_(ids))
        .order_by(CorrectionApproval.id)
    ).all()
    items = session.execute(
        select(CorrectionItem.correction_id, CorrectionItem.item_type, CorrectionItem.item_id)
        .where(CorrectionItem.correction_id.in_(ids))
        .order_by(CorrectionItem.id)
    ).all()
    names = usernames(session, {c.maker_id for c in rows} | {a.approver_id for a in approvals})
    out: list[CorrectionView] = []
    for c in rows:
        mine = [a for a in approvals if a.correction_id == c.id]
        approvers = [names.get(a.approver_id, "?") for a in mine if a.decision == Decision.APPROVE]
        rejected_by = next((names.get(a.approver_id) for a in mine if a.decision == Decision.REJECT), None)
        why: str | None
        if c.status != CorrectionStatus.PENDING:
            why = f"It is {c.status.value.lower()}."
        else:
            why = _four_eyes_refusal(session, actor, c)
            if why is None and any(a.approver_id == actor.user_id for a in mine):
                why = "You already approved it; it waits for a second approver."
        obsolete = None
        if c.status == CorrectionStatus.PENDING:
            held = [i.item_id for i in items if i.correction_id == c.id and i.item_type == BREAKS]
            gone = [
                bid for bid in held if session.scalar(select(Break.status).where(Break.id == bid)) != PROPOSED
            ]
            if gone:
                obsolete = (
                    f"Break #{gone[0]} was changed by a recon run since the proposal; this correction can only be "
                    "rejected or withdrawn."
                )
        out.append(
            CorrectionView(
                obsolete=obsolete,
                id=c.id,
                kind=c.kind.value,
                status=c.status.value,
                item_type=c.item_type,
                item_id=c.item_id,
                item_label=_item_label(session, c),
                reason=c.reason,
                amount=c.amount,
                currency=c.currency,
                maker=names.get(c.maker_id, f"user #{c.maker_id}"),
                maker_id=c.maker_id,
                created_at=c.created_at,
                created_text=local_text(c.created_at, actor),
                required_approvals=c.required_approvals,
                approvers=approvers,
                changes=field_changes(session, c),
                items=[(i.item_type, i.item_id) for i in items if i.correction_id == c.id],
                version=c.version,
                can_decide=why is None,
                why_not=why,
                bulk_allowed=c.required_approvals == 1,
                decided_at=c.decided_at,
                decision_comment=c.decision_comment,
                rejected_by=rejected_by,
            )
        )
    return out


def pending(db: Database, actor: Actor, *, mine: bool = False) -> list[CorrectionView]:
    """The approvals inbox: pending corrections, oldest first (``mine``: only those the actor proposed)."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        q = select(Correction).where(Correction.status == CorrectionStatus.PENDING)
        if mine:
            q = q.where(Correction.maker_id == actor.user_id)
        rows = list(s.scalars(q.order_by(Correction.created_at, Correction.id)))
        return _views(s, actor, rows)


def corrections(
    db: Database,
    actor: Actor,
    *,
    status: CorrectionStatus | str | None = None,
    item: tuple[str, int] | None = None,
    limit: int = 200,
) -> list[CorrectionView]:
    """Corrections newest first, optionally of one status or naming one item."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        q = select(Correction)
        if status is not None:
            q = q.where(Correction.status == CorrectionStatus(str(getattr(status, "value", status)).upper()))
        if item is not None:
            table = item_table(item[0])
            q = q.where(
                Correction.id.in_(
                    select(CorrectionItem.correction_id).where(
                        CorrectionItem.item_type == table, CorrectionItem.item_id == int(item[1])
                    )
                )
            )
        rows = list(s.scalars(q.order_by(Correction.id.desc()).limit(max(1, min(limit, 5000)))))
        return _views(s, actor, rows)


def describe(db: Database, actor: Actor, correction_id: int) -> CorrectionView:
    """One correction with its before/after per field, who made and approved it, and whether the reader may
    decide it."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        corr = s.get(Correction, correction_id)
        if corr is None:
            raise NotFound(f"Correction #{correction_id} does not exist.")
        return _views(s, actor, [corr])[0]


# --- demo -------------------------------------------------------------------------------------------------------


def seed_demo(db: Database, actor_by_name: dict[str, Actor]) -> list[int]:
    """A few pending corrections so the approvals inbox is not empty in the demo: from open demo breaks (a
    force-close, a write-off, a manual match of a missing-internal/missing-external pair when the recon produced
    one) and an amendment of a validated trade. Proposed by the first clerk. Returns the correction ids."""
    maker = actor_by_name.get("clerk1") or next(
        (a for a in actor_by_name.values() if a.can(Permission.PROPOSE_CORRECTION)), None
    )
    if maker is None:
        return []
    made: list[int] = []

    def attempt(fn: Callable[[], int]) -> None:
        # A demo row that does not fit (say, a trade that would fail validation) is skipped.
        with contextlib.suppress(OpsDeskError):
            made.append(fn())

    with db.read() as s:
        open_breaks = list(
            s.execute(
                select(Break.id, Break.break_type, Break.definition_id, Break.amount, Break.currency)
                .where(Break.status == OPEN, Break.owner_id.is_(None))
                .order_by(Break.amount.desc(), Break.id)
                .limit(400)
            ).all()
        )
        trade = s.execute(
            select(Trade.id, Trade.quantity, Trade.trade_ref)
            .where(Trade.status == TradeStatus.VALIDATED)
            .order_by(Trade.id)
            .limit(1)
        ).first()
    used: set[int] = set()
    # The manual match a clerk would propose: the record missing on one side and the one missing on the other that
    # look most alike - same reconciliation, same currency, the nearest amounts.
    ins = [b for b in open_breaks if b.break_type == BreakType.MISSING_INTERNAL]
    outs = [b for b in open_breaks if b.break_type == BreakType.MISSING_EXTERNAL]
    pairs = [
        (abs(abs(b.amount) - abs(o.amount)) / max(abs(b.amount), abs(o.amount), Decimal(1)), b.id, o.id)
        for b in ins
        for o in outs
        if o.definition_id == b.definition_id and o.currency == b.currency
    ]
    if pairs:
        _gap, one, other = min(pairs)
        used |= {one, other}
        attempt(
            lambda: propose(
                db,
                maker,
                CorrectionKind.MANUAL_MATCH,
                BREAKS,
                one,
                {"break_ids": [other]},
                "Same trade: the custodian booked it under its own reference.",
                seen_version=None,
            )
        )
    rest = [b for b in open_breaks if b.id not in used]
    if rest:
        big = rest[0]
        attempt(
            lambda: propose(
                db,
                maker,
                CorrectionKind.FORCE_CLOSE,
                BREAKS,
                big.id,
                {},
                "Timing: the custodian confirmed it settles in tomorrow's statement.",
                seen_version=None,
            )
        )
    if len(rest) > 1:
        small = rest[-1]
        attempt(
            lambda: propose(
                db,
                maker,
                CorrectionKind.WRITE_OFF,
                BREAKS,
                small.id,
                {},
                "Rounding difference on the custodian's fee; below the write-off tolerance.",
                seen_version=None,
            )
        )
    if trade is not None:
        qty = (trade.quantity + Decimal(100)).normalize()
        attempt(
            lambda: propose(
                db,
                maker,
                CorrectionKind.AMEND_TRADE,
                TRADES,
                trade.id,
                {"fields": {"quantity": format(qty, "f")}},
                f"The front office confirmed {format(qty, 'f')} shares on {trade.trade_ref} (partial fill missed).",
                seen_version=None,
            )
        )
    return made
