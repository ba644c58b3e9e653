"""SLA rules: their typed parameters, the default rules of the desk, and supervisor editing.

A rule is stored as JSON in ``sla_definitions.rule`` and read through :class:`SlaRule`, which refuses anything it
does not understand with a sentence naming the field. Every rule has a ``kind``, which fixes the items it watches
(see ``evaluate.SOURCES``: which rows are open, how they close, where a drill-down opens them) and the deadline:

* **business-day cut-off** (``hours`` is null): take the anchor's date (a date column, or a timestamp's local date
  in ``zone``), move ``business_days`` along the calendar (0 rolls a weekend or holiday forward to the next
  business day), and the deadline is ``cutoff`` local time in ``zone`` on that day ("24:00" means the end of the
  day). ``calendar`` and ``zone`` left null mean *the item's market* (its exchange calendar with the market's extra
  closures, and its time zone); items without a known market (a trade in repair with an unknown ISIN) use the
  desk's calendar and zone (``DESK_CALENDAR``, ``DESK_ZONE``). ``cutoff`` null means the market's instruction
  cut-off (``markets.instruction_cutoff``).
* **elapsed hours** (``hours`` set): the deadline is the anchor timestamp plus ``hours`` (clock hours; a date
  anchor starts at local midnight in ``zone``).

Breaks choose their business days by **band**: the first band whose ``category`` (null: any) and ``min_amount``
(absolute amount at stake, in the break's currency: bands do not convert currencies) fit the break wins; the rule's
own ``business_days`` is the fallback. Filters narrow the items: ``markets`` (MICs), ``countries`` (market country),
``categories`` (break category), ``min_amount``/``max_amount``.

The default rules (``ensure_default_slas``) and the choice of items behind each:

=====================  ===========  =====================================================================
code                   item         deadline
=====================  ===========  =====================================================================
AFFIRM_SAME_DAY        trade        affirmed by 21:00 America/New_York on trade date (US markets; Rule 15c6-2)
REPAIR_FIX             trade        out of the repair queue within 4 hours of capture
INSTRUCT_BY_CUTOFF     trade        instruction sent by the market's cut-off on S-1 (market zone/calendar)
SETTLE_ON_ISD          instruction  settled by the end of the intended settlement date (market zone)
BREAK_RESOLVE          break        resolved within 5 business days (London); 2 at 100,000+; 1 at 1,000,000+
CORRECTION_APPROVE     correction   approved or rejected within 4 hours of being proposed
REG_REPORT_T1          trade        transaction report filed by the end of T+1 (London working days; MiFIR)
=====================  ===========  =====================================================================

The regulatory report item is a trade that is not cancelled; it is met by the ``reported_at`` of its row in
``regulatory_reports`` (written by whatever files the report; ``record_reports`` here for now).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

from app.models import SlaDefinition, utcnow
from app.models.enums import ChangeAction

from .. import audit
from ..concurrency import versioned_update
from ..db import Database
from ..errors import NotFound, ValidationFailed
from ..permissions import Actor, Permission, require

# The desk's own calendar and zone: for items without a market and for rules about the desk's working day.
DESK_CALENDAR = "XLON"
DESK_ZONE = "Europe/London"

# kind -> item type
KINDS: dict[str, str] = {
    "affirmation": "trade",
    "repair": "trade",
    "instruction_cutoff": "trade",
    "settlement": "instruction",
    "break_resolution": "break",
    "correction_approval": "correction",
    "regulatory_report": "trade",
}
# Which anchors each kind's items carry: date columns and timestamp columns.
DATE_ANCHORS: dict[str, tuple[str, ...]] = {
    "trade": ("trade_date", "settlement_date"),
    "instruction": ("intended_settlement_date", "trade_date"),
    "break": ("as_of_date",),
    "correction": (),
}
TIME_ANCHORS: dict[str, tuple[str, ...]] = {
    "trade": ("created_at", "trade_time"),
    "instruction": ("created_at",),
    "break": ("opened_at",),
    "correction": ("created_at",),
}
# Where a drill-down opens each item type.
ITEM_PANES: dict[str, str] = {
    "trade": "trade_blotter",
    "instruction": "settlement_queue",
    "break": "break_investigation",
    "correction": "approvals_inbox",
}
MAX_WARNING_MINUTES = 7 * 24 * 60
_CUTOFF = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


def _amount(value: Any, where: str) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValidationFailed(
            f"{where} must be an amount such as 100000 or 2500.50 (got {value!r})."
        ) from None
    if not amount.is_finite() or amount < 0:
        raise ValidationFailed(f"{where} must be a positive amount (got {value!r}).")
    return amount


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ValidationFailed(f"{where} must be a whole number (got {value!r}).")
    if not lo <= int(value) <= hi:
        raise ValidationFailed(f"{where} must be between {lo} and {hi} (got {value}).")
    return int(value)


def _codes(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v for v in value.replace(";", ",").split(",")]
    if not isinstance(value, list | tuple):
        raise ValidationFailed(f"{where} must be a list of codes (got {value!r}).")
    return tuple(str(v).strip().upper() for v in value if str(v).strip())


@dataclass(frozen=True)
class Band:
    """Business days allowed for breaks of a category (None: any) at or above an amount."""

    business_days: int
    category: str | None = None
    min_amount: Decimal | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "business_days": self.business_days,
            "category": self.category,
            "min_amount": None if self.min_amount is None else str(self.min_amount),
        }


@dataclass(frozen=True)
class SlaRule:
    """The parameters of one SLA rule (what ``sla_definitions.rule`` holds)."""

    kind: str
    anchor: str
    business_days: int = 0
    cutoff: str | None = None  # "HH:MM" local, "24:00" end of day; None: the market's instruction cut-off
    zone: str | None = None  # IANA zone; None: the item's market
    calendar: str | None = None  # exchange calendar / MIC; None: the item's market
    hours: float | None = None  # elapsed-time rule instead of a business-day cut-off
    bands: tuple[Band, ...] = ()
    markets: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None

    @property
    def item_type(self) -> str:
        return KINDS[self.kind]

    @property
    def elapsed(self) -> bool:
        return self.hours is not None

    @property
    def anchor_is_date(self) -> bool:
        return self.anchor in DATE_ANCHORS[self.item_type]

    def cutoff_minutes(self) -> int | None:
        """Minutes after local midnight of the cut-off; None for the market's instruction cut-off."""
        if self.cutoff is None:
            return None
        hh, mm = self.cutoff.split(":")
        return int(hh) * 60 + int(mm)

    def describe(self) -> str:
        """One line a clerk reads on the tile's tooltip."""
        if self.elapsed:
            return f"within {self.hours:g} hours of {self.anchor.replace('_', ' ')}"
        days = self.business_days
        when = (
            "on"
            if days == 0
            else (f"{days} business day(s) after" if days > 0 else f"{-days} business day(s) before")
        )
        at = "the market's cut-off" if self.cutoff is None else self.cutoff
        zone = self.zone or "market time"
        text = f"by {at} {zone} {when} {self.anchor.replace('_', ' ')}"
        if self.bands:
            text += "; bands: " + ", ".join(
                f"{b.category or 'any'} {'≥ ' + format(b.min_amount, ',') if b.min_amount else ''} {b.business_days}d".strip()
                for b in self.bands
            )
        return text

    # --- JSON ---------------------------------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["bands"] = [b.as_dict() for b in self.bands]
        for key in ("markets", "countries", "categories"):
            out[key] = list(out[key])
        for key in ("min_amount", "max_amount"):
            out[key] = None if out[key] is None else str(out[key])
        return out

    @classmethod
    def from_dict(cls, data: Any) -> SlaRule:
        """Read and check a rule; every problem is refused with the field's name."""
        if not isinstance(data, dict):
            raise ValidationFailed('An SLA rule must be a JSON object such as {"kind": "affirmation", ...}.')
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationFailed(
                f"Unknown SLA rule field(s): {', '.join(unknown)}. Known fields: {', '.join(sorted(known))}."
            )
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValidationFailed(f"rule.kind must be one of {', '.join(KINDS)} (got {kind!r}).")
        item = KINDS[kind]
        anchor = data.get("anchor")
        anchors = DATE_ANCHORS[item] + TIME_ANCHORS[item]
        if anchor not in anchors:
            raise ValidationFailed(
                f"rule.anchor for a {kind} rule must be one of {', '.join(anchors)} (got {anchor!r})."
            )
        hours = data.get("hours")
        if hours is not None:
            if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours <= 24 * 90:
                raise ValidationFailed(
                    f"rule.hours must be a number of hours above 0 and at most 2160 (got {hours!r})."
                )
            hours = float(hours)
        cutoff = data.get("cutoff")
        if cutoff is not None and (not isinstance(cutoff, str) or not _CUTOFF.match(cutoff)):
            raise ValidationFailed(
                f"rule.cutoff must be a local time HH:MM such as 21:00, or 24:00 (got {cutoff!r})."
            )
        if cutoff is None and hours is None and kind != "instruction_cutoff":
            raise ValidationFailed(
                "rule.cutoff is needed (HH:MM): only the instruction cut-off rule may use the market's cut-off."
            )
        zone = data.get("zone")
        if zone is not None:
            try:
                ZoneInfo(str(zone))
            except (ZoneInfoNotFoundError, ValueError):
                raise ValidationFailed(
                    f"rule.zone must be a time zone such as America/New_York (got {zone!r})."
                ) from None
        calendar = data.get("calendar")
        if calendar is not None:
            calendar = str(calendar).strip().upper()
            # Imported here: the calendars bring numpy, which the main window's SLA alert watcher (importing this
            # module for ITEM_PANES) should not make the start-up pay for.
            from ..calendars import known_calendar_codes  # noqa: PLC0415

            if calendar not in known_calendar_codes():
                raise ValidationFailed(
                    f"rule.calendar must be an exchange calendar such as XNYS or XLON (got {calendar!r})."
                )
        bands = []
        for i, b in enumerate(data.get("bands") or []):
            where = f"rule.bands[{i}]"
            if not isinstance(b, dict) or set(b) - {"business_days", "category", "min_amount"}:
                raise ValidationFailed(
                    f"{where} must be an object with business_days, category and min_amount."
                )
            bands.append(
                Band(
                    business_days=_int(b.get("business_days"), f"{where}.business_days", 0, 250),
                    category=(str(b["category"]).strip().upper() or None) if b.get("category") else None,
                    min_amount=_amount(b.get("min_amount"), f"{where}.min_amount"),
                )
            )
        if bands and kind != "break_resolution":
            raise ValidationFailed("rule.bands apply only to the break resolution rule.")
        rule = cls(
            kind=kind,
            anchor=anchor,
            business_days=_int(data.get("business_days", 0), "rule.business_days", -30, 250),
            cutoff=cutoff,
            zone=None if zone is None else str(zone),
            calendar=calendar,
            hours=hours,
            bands=tuple(bands),
            markets=_codes(data.get("markets"), "rule.markets"),
            countries=_codes(data.get("countries"), "rule.countries"),
            categories=_codes(data.get("categories"), "rule.categories"),
            min_amount=_amount(data.get("min_amount"), "rule.min_amount"),
            max_amount=_amount(data.get("max_amount"), "rule.max_amount"),
        )
        if rule.min_amount is not None and rule.max_amount is not None and rule.min_amount > rule.max_amount:
            raise ValidationFailed("rule.min_amount cannot be above rule.max_amount.")
        return rule


@dataclass(frozen=True)
class DefaultSla:
    code: str
    name: str
    description: str
    warning_minutes: int
    rule: dict[str, Any]

    @property
    def item_type(self) -> str:
        return KINDS[self.rule["kind"]]


DEFAULT_SLAS: tuple[DefaultSla, ...] = (
    DefaultSla(
        "AFFIRM_SAME_DAY",
        "Trade affirmed by 21:00 ET",
        "Same-day affirmation under T+1 (US Rule 15c6-2): DTC's cut-off is 21:00 New York time on trade date.",
        120,
        {
            "kind": "affirmation",
            "anchor": "trade_date",
            "business_days": 0,
            "cutoff": "21:00",
            "zone": "America/New_York",
            "calendar": "XNYS",
            "countries": ["US"],
        },
    ),
    DefaultSla(
        "REPAIR_FIX",
        "Repair fixed within 4 h",
        "A trade that failed validation leaves the repair queue within 4 hours of capture.",
        60,
        {"kind": "repair", "anchor": "created_at", "hours": 4},
    ),
    DefaultSla(
        "INSTRUCT_BY_CUTOFF",
        "Instructed by market cut-off",
        "The settlement instruction is sent before the market's instruction cut-off on the business day before "
        "the intended settlement date (market time and calendar). Futures clear at the CCP and are not watched.",
        120,
        {"kind": "instruction_cutoff", "anchor": "settlement_date", "business_days": -1, "cutoff": None},
    ),
    DefaultSla(
        "SETTLE_ON_ISD",
        "Settled on intended date",
        "The instruction settles by the end of its intended settlement date, in the market's time zone.",
        360,
        {"kind": "settlement", "anchor": "intended_settlement_date", "business_days": 0, "cutoff": "24:00"},
    ),
    DefaultSla(
        "BREAK_RESOLVE",
        "Break resolved in 5 business days",
        "A reconciliation break is resolved within 5 London business days of being opened; within 2 at "
        "100,000 or more at stake and within 1 at 1,000,000 or more, by the end of the day (18:00).",
        240,
        {
            "kind": "break_resolution",
            "anchor": "opened_at",
            "business_days": 5,
            "cutoff": "18:00",
            "zone": DESK_ZONE,
            "calendar": DESK_CALENDAR,
            "bands": [
                {"business_days": 1, "category": None, "min_amount": "1000000"},
                {"business_days": 2, "category": None, "min_amount": "100000"},
            ],
        },
    ),
    DefaultSla(
        "CORRECTION_APPROVE",
        "Correction decided within 4 h",
        "A proposed correction is approved or rejected by a supervisor within 4 hours.",
        60,
        {"kind": "correction_approval", "anchor": "created_at", "hours": 4},
    ),
    DefaultSla(
        "REG_REPORT_T1",
        "Transaction report by T+1",
        "Every trade that is not cancelled has its transaction report (MiFIR RTS 22) filed by the end of the "
        "following London working day.",
        240,
        {
            "kind": "regulatory_report",
            "anchor": "trade_date",
            "business_days": 1,
            "cutoff": "23:59",
            "zone": DESK_ZONE,
            "calendar": DESK_CALENDAR,
        },
    ),
)


@dataclass(frozen=True)
class SlaInfo:
    """An SLA definition as the services hand it out (plain values, parsed rule)."""

    id: int
    code: str
    name: str
    item_type: str
    description: str
    rule: SlaRule
    warning_minutes: int
    is_active: bool
    version: int
    last_evaluated_at: dt.datetime | None

    @property
    def pane_id(self) -> str:
        return ITEM_PANES[self.item_type]


def _info(row: SlaDefinition) -> SlaInfo:
    return SlaInfo(
        id=row.id,
        code=row.code,
        name=row.name,
        item_type=row.item_type,
        description=row.description,
        rule=SlaRule.from_dict(row.rule),
        warning_minutes=row.warning_minutes,
        is_active=row.is_active,
        version=row.version,
        last_evaluated_at=row.last_evaluated_at,
    )


def ensure_default_slas(db: Database, actor: Actor) -> list[str]:
    """Create the default SLAs that do not exist yet (by code); returns the codes created. Audited."""
    require(actor, Permission.EDIT_RULES)
    created: list[str] = []
    with db.write() as s:
        existing = set(s.scalars(select(SlaDefinition.code)))
        for d in DEFAULT_SLAS:
            if d.code in existing:
                continue
            rule = SlaRule.from_dict(d.rule)  # the defaults pass the same checks as an edit
            row = SlaDefinition(
                code=d.code,
                name=d.name,
                item_type=d.item_type,
                description=d.description,
                rule=rule.as_dict(),
                warning_minutes=d.warning_minutes,
                is_active=True,
                updated_by_id=actor.user_id,
            )
            s.add(row)
            s.flush()
            audit.record(
                s,
                actor,
                "sla_definitions.create",
                "sla_definitions",
                row.id,
                after={"code": d.code, "rule": row.rule, "warning_minutes": d.warning_minutes},
                change=ChangeAction.INSERT,
            )
            created.append(d.code)
    return created


def list_slas(db: Database, actor: Actor, *, active_only: bool = False) -> list[SlaInfo]:
    require(actor, Permission.VIEW)
    with db.read() as s:
        q = select(SlaDefinition).order_by(SlaDefinition.id)
        if active_only:
            q = q.where(SlaDefinition.is_active.is_(True))
        return [_info(r) for r in s.scalars(q)]


def get_sla(db: Database, actor: Actor, sla_id: int) -> SlaInfo:
    require(actor, Permission.VIEW)
    with db.read() as s:
        row = s.get(SlaDefinition, sla_id)
        if row is None:
            raise NotFound(f"There is no SLA #{sla_id}.")
        return _info(row)


def update_sla(
    db: Database,
    actor: Actor,
    sla_id: int,
    rule: dict[str, Any] | None = None,
    warning_minutes: int | None = None,
    *,
    seen_version: int,
    is_active: bool | None = None,
    name: str | None = None,
) -> SlaInfo:
    """A supervisor edits an SLA's rule, warning window, name or activity. Versioned: an edit made on a stale
    copy is refused ("changed by X at T; reload"); audited before/after in the same transaction."""
    require(actor, Permission.EDIT_RULES)
    changes: dict[str, Any] = {}
    with db.write() as s:
        row = s.get(SlaDefinition, sla_id)
        if row is None:
            raise NotFound(f"There is no SLA #{sla_id}.")
        if rule is not None:
            parsed = SlaRule.from_dict(rule)
            if parsed.item_type != row.item_type:
                raise ValidationFailed(
                    f"The SLA {row.code} watches {row.item_type}s; a {parsed.kind} rule watches {parsed.item_type}s. "
                    "Create a new SLA instead of changing what this one watches."
                )
            changes["rule"] = parsed.as_dict()
        if warning_minutes is not None:
            changes["warning_minutes"] = _int(warning_minutes, "warning_minutes", 0, MAX_WARNING_MINUTES)
        if is_active is not None:
            changes["is_active"] = bool(is_active)
        if name is not None:
            if not name.strip():
                raise ValidationFailed("An SLA needs a name.")
            changes["name"] = name.strip()[:200]
        if not changes:
            raise ValidationFailed(
                "Nothing to change: give a rule, a warning window, a name or the activity."
            )
        versioned_update(
            s, actor, SlaDefinition, sla_id, seen_version, changes, action="sla_definitions.edit"
        )
        s.expire(row)
        return _info(s.get(SlaDefinition, sla_id))  # type: ignore[arg-type]


def record_reports(
    db: Database,
    actor: Actor,
    trade_ids: list[int],
    *,
    reported_at: dt.datetime | None = None,
    regime: str = "MIFIR",
    report_ref: str | None = None,
) -> int:
    """Record that these trades' transaction reports were filed (idempotent: an existing report is kept).

    Stand-in for the regulatory reporting area, which will write these rows when it files reports.
    """
    from app.models.sla import RegulatoryReport

    require(actor, Permission.RUN_PROCESSES)
    when = reported_at or utcnow()
    if when.tzinfo is None:
        raise ValidationFailed("reported_at needs a time zone.")
    with db.write() as s:
        have = set(
            s.scalars(
                select(RegulatoryReport.trade_id).where(
                    RegulatoryReport.trade_id.in_(trade_ids), RegulatoryReport.regime == regime
                )
            )
        )
        new = [t for t in dict.fromkeys(trade_ids) if t not in have]
        s.add_all(
            RegulatoryReport(
                trade_id=t,
                regime=regime,
                report_ref=report_ref,
                reported_at=when,
                recorded_by_id=actor.user_id,
            )
            for t in new
        )
        if new:
            s.flush()
            audit.record(
                s,
                actor,
                "regulatory_reports.record",
                "regulatory_reports",
                None,
                after={"trades": len(new), "regime": regime, "reported_at": when},
                change=ChangeAction.BULK,
            )
    return len(new)


def seed_reports(db: Database, actor: Actor, *, at: dt.datetime | None = None) -> int:
    """Demo only: file the transaction reports of the demo trades as a desk would have, in one INSERT ... SELECT.

    Trades before today were reported six hours after execution, except one in fifty reported three days late
    and one in a hundred never reported (they show as BREACHED); today's trades are still to report.
    """
    from sqlalchemy import text

    require(actor, Permission.RUN_PROCESSES)
    at = (at or utcnow()).astimezone(dt.UTC)
    with db.write() as s:
        pg = s.get_bind().dialect.name == "postgresql"
        if pg:
            when = "t.trade_time + CASE WHEN t.id % 50 = 3 THEN INTERVAL '3 days' ELSE INTERVAL '6 hours' END"
            limit = "CAST(:at AS TIMESTAMPTZ)"
            ref = "'DEMO-' || t.id::text"
        else:
            when = (
                "strftime('%Y-%m-%d %H:%M:%S', t.trade_time, CASE WHEN t.id % 50 = 3 THEN '+3 days' "
                "ELSE '+6 hours' END) || '.000000'"
            )
            limit = ":at"
            ref = "'DEMO-' || t.id"
        at_param: Any = at if pg else at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        result = s.execute(
            text(
                "INSERT INTO regulatory_reports (trade_id, regime, report_ref, reported_at) "
                f"SELECT t.id, 'MIFIR', {ref}, {when} FROM trades t "
                "WHERE t.status <> 'CANCELLED' AND t.id % 100 <> 7 AND t.trade_date < :today "
                f"AND {when} <= {limit} "
                "AND NOT EXISTS (SELECT 1 FROM regulatory_reports r WHERE r.trade_id = t.id AND r.regime = 'MIFIR')"
            ),
            {"at": at_param, "today": at.date()},
        )
        n = int(result.rowcount or 0)  # type: ignore[attr-defined]
        if n:
            audit.record(
                s,
                actor,
                "regulatory_reports.seed_demo",
                "regulatory_reports",
                None,
                after={"reports": n, "at": at},
                change=ChangeAction.BULK,
            )
    return n
