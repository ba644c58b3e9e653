"""The SLA monitor read from what is stored: no evaluation, no item loaded into Python.

The monitor pane splits the dashboard of :mod:`kpis` by how fast each part changes and what it costs:

- **Read on every refresh** (:func:`read_dashboard`, a handful of set-based queries): the tiles and the workload
  from ``sla_item_states`` as the last recorded evaluation left them (state, deadline, owner per item), the state
  at the moment of reading taken from the deadline (BREACHED past it, AT_RISK within the SLA's warning window,
  else ON_TRACK: what ``evaluate.states_at`` gives), counted with GROUP BY / range counts on
  ``ix_sla_item_states_due``; attainment today, over the window and per day from ``sla_daily_outcomes`` (kept by
  each recording evaluation); the open breaks' ageing; the transaction-report compliance; the database round trip.
- **Measured in the background, less often** (:func:`slow_kpis`, shown with their "as of" time): the per-day
  settlement, STP and affirmation charts, the hourly throughput, and the checklist's break rate, settled on time,
  second-person approvals, audit chain, last backup and STP rate: full reads of the business tables whose figures
  move slowly over a 30-day window.
- **Evaluation** (``evaluate.evaluate_all(record=True)``, its own background timer in the pane): writes the state
  changes and events (the alerts) and keeps ``sla_item_states`` / ``sla_daily_outcomes`` current.

Items that opened or closed since the last recorded evaluation show at the next one: the dashboard carries
``states_as_of`` (the oldest ``last_evaluated_at`` of the active SLAs) so the screen says how current it is. The
drill-downs (:func:`tile_items`, :func:`owner_items`) read the same stored rows at the same moment, so a count and
the items it opens always agree.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, replace

import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.models import SlaDefinition, utcnow

from ..db import Database
from ..errors import ValidationFailed
from ..permissions import Actor, Permission, require
from . import kpis
from .kpis import WINDOW_DAYS, Dashboard, HealthItem, Tile, _pct
from .rules import ITEM_PANES, SlaInfo, _info

# =====================================================================================================================
# The slowly changing KPIs (measured in the background, cached by the caller)
# =====================================================================================================================


@dataclass(frozen=True)
class SlowKpis:
    """The dashboard's parts that read whole business tables, measured at ``as_of`` for ``day`` in ``zone``."""

    as_of: dt.datetime
    day: dt.date
    zone: str
    window_days: int
    settlement: pd.DataFrame
    stp: pd.DataFrame
    throughput: pd.DataFrame
    affirmation: pd.DataFrame
    head: list[HealthItem]  # accuracy, timeliness, controls (the audit chain included when verified)
    backup: HealthItem
    integration: HealthItem
    seconds: float = 0.0

    def fits(self, day: dt.date, zone: str, window_days: int) -> bool:
        return (self.day, self.zone, self.window_days) == (day, zone, window_days)


def slow_kpis(
    db: Database,
    actor: Actor,
    *,
    at: dt.datetime | None = None,
    zone: str | None = None,
    window_days: int = WINDOW_DAYS,
    verify_audit: bool = True,
) -> SlowKpis:
    """Measure the slowly changing KPIs now (exactly as :func:`kpis.dashboard` does)."""
    require(actor, Permission.VIEW)
    started = time.perf_counter()
    at = (at or utcnow()).astimezone(dt.UTC)
    zone, tz, day = kpis.frame(zone, actor, at, window_days)
    lo = day - dt.timedelta(days=window_days - 1)
    end_hour = at.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    with db.read() as s:
        pg = s.get_bind().dialect.name == "postgresql"
        day_over = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz) <= at
        settlement = kpis._settlement(s, lo, day if day_over else day - dt.timedelta(days=1))
        stp = kpis._stp(s, lo, day)
        throughput = kpis._throughput(s, end_hour - dt.timedelta(hours=24), end_hour, pg)
        affirmation = kpis._affirmation(s, lo, day, pg)
        head = [replace(h, as_of=at) for h in kpis.health_head(s, settlement, lo, day, verify_audit)]
        backup = replace(kpis._backup(s, db, pg), as_of=at)
    return SlowKpis(
        as_of=at,
        day=day,
        zone=zone,
        window_days=window_days,
        settlement=settlement,
        stp=stp,
        throughput=throughput,
        affirmation=affirmation,
        head=head,
        backup=backup,
        integration=replace(kpis.health_integration(stp), as_of=at),
        seconds=time.perf_counter() - started,
    )


# =====================================================================================================================
# The stored states at a moment
# =====================================================================================================================


def _active(s: Session) -> list[SlaInfo]:
    q = select(SlaDefinition).where(SlaDefinition.is_active.is_(True)).order_by(SlaDefinition.id)
    return [_info(r) for r in s.scalars(q)]


@dataclass(frozen=True)
class _Limits:
    """Epoch seconds splitting one SLA's deadlines (``due_s``) into states at a moment (``evaluate.states_at``)."""

    breached: int  # due_s < this: BREACHED
    at_risk: int | None  # due_s <= this (and not breached): AT_RISK; None when the SLA has no warning window


def _limits(sla: SlaInfo, at: dt.datetime) -> _Limits:
    # evaluate.states_at compares whole epoch seconds: BREACHED when at_s > due, AT_RISK when at_s >= due - warning.
    at_s = int(at.timestamp())
    warning = sla.warning_minutes * 60
    return _Limits(at_s, at_s + warning if warning > 0 else None)


def _state_case(slas: list[SlaInfo], limits: dict[int, _Limits]) -> str:
    """SQL giving a row's state code at the moment from its ``sla_id`` and ``due_s`` (0 on track, 1 at risk,
    2 breached)."""
    risk = " ".join(
        f"WHEN {i.id} THEN {limits[i.id].at_risk}" for i in slas if limits[i.id].at_risk is not None
    )
    breached = " ".join(f"WHEN {i.id} THEN {limits[i.id].breached}" for i in slas)
    risk_sql = f"WHEN due_s <= (CASE sla_id {risk} END) THEN 1 " if risk else ""
    return f"(CASE WHEN due_s < (CASE sla_id {breached} END) THEN 2 {risk_sql}ELSE 0 END)"


def _by_state(
    s: Session, slas: list[SlaInfo], limits: dict[int, _Limits]
) -> list[tuple[int, int, int, int, int | None]]:
    """(sla_id, owner, state code, items, earliest deadline) at the moment, from ``sla_due_counts``: one GROUP BY
    over a row per SLA, deadline and owner (not one per item)."""
    if not slas:
        return []
    ids = ", ".join(str(i.id) for i in slas)
    st = _state_case(slas, limits)
    return [
        (int(a), int(o), int(c), int(n), None if due is None else int(due))
        for a, o, c, n, due in s.execute(
            text(
                f"SELECT sla_id, owner_key, {st} AS st, SUM(items), MIN(due_s) FROM sla_due_counts "
                f"WHERE sla_id IN ({ids}) GROUP BY sla_id, owner_key, st"
            )
        ).all()
    ]


def _counts(
    rows: list[tuple[int, int, int, int, int | None]], slas: list[SlaInfo]
) -> dict[int, tuple[dict[str, int], dt.datetime | None]]:
    """Per SLA: open items by state, and the next deadline not yet passed (the earliest of the unbreached)."""
    out: dict[int, tuple[dict[str, int], dt.datetime | None]] = {}
    for i in slas:
        out[i.id] = ({"ON_TRACK": 0, "AT_RISK": 0, "BREACHED": 0}, None)
    for sla_id, _owner, st, n, due in rows:
        counts, nxt = out[sla_id]
        counts[("ON_TRACK", "AT_RISK", "BREACHED")[st]] += n
        when = None if due is None else dt.datetime.fromtimestamp(due, dt.UTC)
        if st < 2 and when is not None and (nxt is None or when < nxt):
            out[sla_id] = (counts, when)
    return out


def stored_outcomes(s: Session, lo: dt.date, hi: dt.date) -> dict[int, dict[dt.date, tuple[int, int]]]:
    """(MET, BREACHED) distinct items per SLA and business date from ``sla_daily_outcomes`` (what
    :func:`kpis.outcomes` counts over the events)."""
    rows = s.execute(
        text(
            "SELECT sla_id, business_date, met, breached FROM sla_daily_outcomes "
            "WHERE business_date >= :lo AND business_date <= :hi"
        ),
        {"lo": lo, "hi": hi},
    ).all()
    out: dict[int, dict[dt.date, tuple[int, int]]] = {}
    for sla_id, day, met, breached in rows:
        if isinstance(day, str):
            day = dt.date.fromisoformat(day)
        out.setdefault(int(sla_id), {})[day] = (int(met), int(breached))
    return out


def _tiles(
    s: Session,
    slas: list[SlaInfo],
    rows: list[tuple[int, int, int, int, int | None]],
    lo: dt.date,
    day: dt.date,
) -> list[Tile]:
    counts = _counts(rows, slas)
    out = stored_outcomes(s, lo, day)
    days = [lo + dt.timedelta(days=n) for n in range((day - lo).days + 1)]
    tiles = []
    for i in slas:
        by_state, nxt = counts[i.id]
        by_day = out.get(i.id, {})
        met_all = sum(m for m, _ in by_day.values())
        br_all = sum(b for _, b in by_day.values())
        today = by_day.get(day, (0, 0))
        trend = []
        for d in days:
            met, br = by_day.get(d, (0, 0))
            trend.append((d, _pct(met, met + br)))
        tiles.append(
            Tile(
                sla_id=i.id,
                code=i.code,
                name=i.name,
                item_type=i.item_type,
                description=i.description,
                rule_text=i.rule.describe(),
                warning_minutes=i.warning_minutes,
                counts=by_state,
                ids={},  # read on demand: tile_items
                attainment_today=_pct(today[0], sum(today)),
                attainment_window=_pct(met_all, met_all + br_all),
                trend=trend,
                next_due=nxt,
            )
        )
    return tiles


def _workload(s: Session, rows: list[tuple[int, int, int, int, int | None]]) -> pd.DataFrame:
    """Open SLA items per owner by state at the moment (from the same rows as the tiles)."""
    cols = ["owner_id", "username", "open", "ON_TRACK", "AT_RISK", "BREACHED"]
    if not any(n for *_, n, _due in rows):
        return pd.DataFrame(columns=cols)
    # A few rows per owner: plain dicts, not a pandas pivot (which costs more than the query here).
    per: dict[int, list[int]] = {}
    for _sla, o, st, n, _due in rows:
        if n:
            per.setdefault(o, [0, 0, 0])[st] += n
    owners_ = sorted(per)
    counts = pd.DataFrame(
        [per[o] for o in owners_],
        index=pd.Index(owners_, name="owner_id"),
        columns=["ON_TRACK", "AT_RISK", "BREACHED"],
    )
    return kpis.workload_table(s, counts)


# =====================================================================================================================
# The dashboard, read
# =====================================================================================================================


def read_dashboard(
    db: Database,
    actor: Actor,
    *,
    at: dt.datetime | None = None,
    zone: str | None = None,
    window_days: int = WINDOW_DAYS,
    slow: SlowKpis | None = None,
    verify_audit: bool = True,
) -> tuple[Dashboard, SlowKpis]:
    """The monitor's dashboard at ``at`` (default now) from the stored states and aggregates.

    ``slow``: the slowly changing KPIs measured earlier (shown with their ``as_of``); measured now when missing or
    for another day, zone or window. Returns the dashboard and the slow KPIs it used (for the caller to keep).
    """
    require(actor, Permission.VIEW)
    started = time.perf_counter()
    at = (at or utcnow()).astimezone(dt.UTC)
    zone, _tz, day = kpis.frame(zone, actor, at, window_days)
    if slow is None or not slow.fits(day, zone, window_days):
        slow = slow_kpis(db, actor, at=at, zone=zone, window_days=window_days, verify_audit=verify_audit)
    lo = day - dt.timedelta(days=window_days - 1)
    with db.read() as s:
        slas = _active(s)
        rows = _by_state(s, slas, {i.id: _limits(i, at) for i in slas})
        tiles = _tiles(s, slas, rows, lo, day)
        ageing = kpis._ageing(s, day)
        workload = _workload(s, rows) if kpis._sees_workload(actor) else None
    health = [
        *slow.head,
        replace(kpis.health_compliance(tiles), as_of=at),
        slow.backup,
        replace(kpis._round_trip(db), as_of=at),
        slow.integration,
    ]
    evaluated = [i.last_evaluated_at for i in slas]
    states_as_of = None if not evaluated or None in evaluated else min(e for e in evaluated if e is not None)
    return (
        Dashboard(
            at=at,
            day=day,
            zone=zone,
            window_days=window_days,
            tiles=tiles,
            settlement=slow.settlement,
            stp=slow.stp,
            ageing=ageing,
            throughput=slow.throughput,
            affirmation=slow.affirmation,
            workload=workload,
            health=health,
            seconds=time.perf_counter() - started,
            states_as_of=states_as_of,
            kpis_as_of=slow.as_of,
        ),
        slow,
    )


# =====================================================================================================================
# Drill-down: the stored items behind a count, at the moment the count was read
# =====================================================================================================================


@dataclass(frozen=True)
class Items:
    pane_id: str
    ids: list[int]


def tile_items(db: Database, actor: Actor, sla_id: int, state: str, at: dt.datetime) -> Items:
    """The open items of one SLA in ``state`` (ON_TRACK, AT_RISK, BREACHED; "" every one) at ``at``, most urgent
    first (by deadline, then id: the order ``SlaResult.ids`` gives)."""
    require(actor, Permission.VIEW)
    if state not in ("", "ON_TRACK", "AT_RISK", "BREACHED"):
        raise ValidationFailed(f"Unknown SLA state {state!r}.")
    with db.read() as s:
        row = s.get(SlaDefinition, int(sla_id))
        if row is None:
            raise ValidationFailed(f"There is no SLA #{sla_id}.")
        lim = _limits(_info(row), at.astimezone(dt.UTC))
        risky = lim.at_risk is not None
        cond = {
            "": "",
            "BREACHED": f" AND due_s < {lim.breached}",
            "AT_RISK": f" AND due_s >= {lim.breached} AND due_s <= {lim.at_risk}" if risky else " AND 1 = 0",
            "ON_TRACK": f" AND due_s > {lim.at_risk}" if risky else f" AND due_s >= {lim.breached}",
        }[state]
        ids = s.scalars(
            text(
                f"SELECT item_id FROM sla_item_states WHERE sla_id = {int(row.id)}{cond} ORDER BY due_s, item_id"
            )
        ).all()
        return Items(ITEM_PANES[row.item_type], [int(i) for i in ids])


def owner_items(db: Database, actor: Actor, owner_id: int, at: dt.datetime) -> Items | None:
    """The at-risk or breached items of one owner (-1: unassigned) at ``at``, for the workload drill-down.

    Items of different kinds open different panes: the kind with the most such items wins (as
    ``kpis.workload_items`` does over an evaluation)."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        slas = _active(s)
        if not slas:
            return None
        limits = {i.id: _limits(i, at.astimezone(dt.UTC)) for i in slas}
        who = "owner_id IS NULL" if owner_id < 0 else f"owner_id = {int(owner_id)}"
        ids = ", ".join(str(i.id) for i in slas)
        rows = s.execute(
            text(
                f"SELECT sla_id, item_id FROM sla_item_states WHERE sla_id IN ({ids}) AND {who} "
                f"AND {_state_case(slas, limits)} > 0 ORDER BY sla_id, due_s, item_id"
            )
        ).all()
    kinds = {i.id: ITEM_PANES[i.item_type] for i in slas}
    by_pane: dict[str, list[int]] = {}
    for sla_id, item_id in rows:
        by_pane.setdefault(kinds[int(sla_id)], []).append(int(item_id))
    best: Items | None = None
    for pane, found in by_pane.items():
        found = list(dict.fromkeys(found))
        if best is None or len(found) > len(best.ids):
            best = Items(pane, found)
    return best
