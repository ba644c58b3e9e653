"""Operations KPIs: SLA tiles, settlement and STP rates, break ageing, throughput, affirmation, workload, health.

Every figure is a GROUP BY in the database or a vectorised pass over a narrow bulk read; nothing loops over rows in
Python. Definitions (the words the report and the pane use):

- **attainment** of an SLA on a day: of the items whose deadline fell on that business day and that have an
  outcome (MET or BREACHED), the share MET; from ``sla_events`` by ``business_date``. Open items not yet due have
  no outcome and do not count.
- **settlement fail rate** by day: of the instructions (not cancelled) due to settle that day, the share not
  settled on or before it. **Settled on time %** is its complement over the window.
- **straight-through rate (STP)** by trade date: of the trades (not cancelled) captured that day, the share that
  never raised a validation exception (no ``trade_exceptions`` row: nobody had to touch them).
- **break ageing**: open breaks by age in London business days since they were opened.
- **throughput per hour**: trades captured (``created_at``), instructions sent (``instructed_at``), breaks resolved
  (``resolved_at``), in hourly buckets.
- **affirmation rate** by trade date: of the trades the ``AFFIRM_SAME_DAY`` rule watches (US markets, not
  cancelled), the share affirmed by 21:00 New York time on trade date, affirmed late, or not affirmed.
- **workload** per clerk (supervisors, admins and auditors see it): the open SLA items each owner holds, by state
  (an item watched by two SLAs counts twice: it has two deadlines); unowned items under "(unassigned)".
- **health checklist** (the source documents' checklist, measured): accuracy = breaks opened per 1,000 trades
  captured over the window, and its trend (last 7 days against the 7 before); timeliness = settled on time %;
  controls = corrections approved by a second person % and the audit chain verified intact; compliance =
  transaction reports on time (the ``REG_REPORT_T1`` SLA's attainment over the window); resilience = the last
  successful backup and the database round trip; integration = the STP rate.

**How the last backup is known**: on PostgreSQL from continuous WAL archiving (``pg_stat_archiver``'s
``last_archived_time``: the last WAL segment safely archived; a server that does not archive says so). On SQLite
from the newest backup file beside the database file (``<name>.backup*``, ``<name>*.bak``, or any file in a
``backups`` folder next to it), by its modification time. No evidence of a backup is reported as a warning, never
as fine.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import and_, case, func, or_, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.models import (
    Break,
    Correction,
    CorrectionApproval,
    SettlementInstruction,
    SlaDefinition,
    SlaEvent,
    Trade,
    TradeException,
    User,
)
from app.models.enums import BreakStatus, CorrectionStatus, Decision, InstructionStatus, SlaState, TradeStatus

from .. import audit
from ..calendars import get_calendar
from ..db import Database
from ..errors import ValidationFailed
from ..permissions import Actor, Permission, require
from .evaluate import (
    AT_RISK,
    BREACHED,
    COLUMNS,
    NULL_I,
    ON_TRACK,
    STATES,
    Evaluation,
    _secs,
    _ts_literal,
    compute_deadlines,
    load_reference,
    local_days,
    read_ints,
)
from .rules import DEFAULT_SLAS, DESK_CALENDAR, DESK_ZONE, ITEM_PANES, SlaRule

WINDOW_DAYS = 30
AGE_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("0 d", 0, 0),
    ("1 d", 1, 1),
    ("2 d", 2, 2),
    ("3–5 d", 3, 5),
    ("6–10 d", 6, 10),
    ("11+ d", 11, 1_000_000),
)
OPEN_BREAKS = (BreakStatus.OPEN, BreakStatus.ASSIGNED, BreakStatus.PROPOSED)
UNASSIGNED = "(unassigned)"


# =====================================================================================================================
# Result types
# =====================================================================================================================


@dataclass
class Tile:
    """One SLA at a glance: open items by state, attainment today and over the window, trend.

    ``ids`` holds the items per state when built from an evaluation (the daily report); the monitor's stored read
    (``monitor.py``) leaves it empty and reads a state's items only when asked (``monitor.tile_items``)."""

    sla_id: int
    code: str
    name: str
    item_type: str
    description: str
    rule_text: str
    warning_minutes: int
    counts: dict[str, int]
    ids: dict[str, list[int]]
    attainment_today: float | None
    attainment_window: float | None
    trend: list[tuple[dt.date, float | None]]
    next_due: dt.datetime | None = None

    @property
    def pane_id(self) -> str:
        return ITEM_PANES[self.item_type]

    @property
    def open(self) -> int:
        return sum(self.counts.values())


@dataclass
class HealthItem:
    area: str  # Accuracy, Timeliness, Controls, Compliance, Resilience, Integration
    check: str
    value: str
    status: str  # ok, warn, bad, neutral
    detail: str = ""
    as_of: dt.datetime | None = (
        None  # when it was measured (the monitor caches some); None: with the dashboard
    )


@dataclass
class Dashboard:
    at: dt.datetime
    day: dt.date
    zone: str
    window_days: int
    tiles: list[Tile]
    settlement: pd.DataFrame  # day, due, on_time, failed, fail_rate (%)
    stp: pd.DataFrame  # day, trades, stp, stp_rate (%)
    ageing: list[tuple[str, int, list[int]]]  # bucket label, count, break ids
    throughput: pd.DataFrame  # hour (epoch s, UTC), trades, instructions, breaks
    affirmation: pd.DataFrame  # day, trades, on_time, late, missing, rate (%)
    workload: pd.DataFrame | None  # owner_id, username, open, ON_TRACK, AT_RISK, BREACHED
    health: list[HealthItem] = field(default_factory=list)
    seconds: float = 0.0
    #: When the item states were last recorded (the monitor reads them stored; None: a fresh evaluation).
    states_as_of: dt.datetime | None = None
    #: When the slowly changing KPIs (daily charts, throughput, most of the checklist) were measured (None: now).
    kpis_as_of: dt.datetime | None = None

    def tile(self, code: str) -> Tile:
        for t in self.tiles:
            if t.code == code:
                return t
        raise KeyError(code)

    def health_item(self, check: str) -> HealthItem:
        for h in self.health:
            if h.check == check:
                return h
        raise KeyError(check)

    def headline(self) -> dict[str, Any]:
        """The day's key figures as plain values (report summary, CLI)."""
        settled = self.settlement
        due = int(settled["due"].sum()) if len(settled) else 0
        stp = self.stp
        captured = int(stp["trades"].sum()) if len(stp) else 0
        return {
            "open_items": sum(t.open for t in self.tiles),
            "at_risk": sum(t.counts.get("AT_RISK", 0) for t in self.tiles),
            "breached": sum(t.counts.get("BREACHED", 0) for t in self.tiles),
            "settled_on_time_pct": _pct(int(settled["on_time"].sum()), due) if due else None,
            "stp_pct": _pct(int(stp["stp"].sum()), captured) if captured else None,
            "open_breaks": sum(n for _, n, _ in self.ageing),
        }


def _pct(part: int, whole: int) -> float | None:
    return None if whole <= 0 else round(100.0 * part / whole, 2)


def fmt_pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}%"


# =====================================================================================================================
# The dashboard
# =====================================================================================================================


def frame(zone: str | None, actor: Actor, at: dt.datetime, window_days: int) -> tuple[str, ZoneInfo, dt.date]:
    """The zone the KPIs are shown in (the user's, else the desk's), checked, and the day ``at`` falls on there;
    the window of days is checked too."""
    zone = zone or actor.timezone or DESK_ZONE
    try:
        tz = ZoneInfo(zone)
    except Exception:
        raise ValidationFailed(f"Unknown time zone {zone!r}.") from None
    if window_days < 1 or window_days > 366:
        raise ValidationFailed("The KPI window must be 1 to 366 days.")
    return zone, tz, at.astimezone(tz).date()


def dashboard(
    db: Database,
    actor: Actor,
    evaluation: Evaluation,
    *,
    day: dt.date | None = None,
    window_days: int = WINDOW_DAYS,
    zone: str | None = None,
    throughput_hours: tuple[dt.datetime, dt.datetime] | None = None,
    verify_audit: bool = True,
    ids_per_state: int | None = None,
) -> Dashboard:
    """Every KPI for the day ``day`` (default: the evaluation's date in ``zone``) over ``window_days`` days.

    ``throughput_hours`` is the [start, end) of the throughput chart (default: the 24 hours ending at the
    evaluation time); ``verify_audit`` recomputes the audit hash chain (it reads the whole log: the pane asks for
    it every few minutes, the daily report always). ``ids_per_state`` caps the ids kept per tile state.
    """
    require(actor, Permission.VIEW)
    started = time.perf_counter()
    at = evaluation.at
    zone, tz, today = frame(zone, actor, at, window_days)
    day = day or today
    lo = day - dt.timedelta(days=window_days - 1)
    if throughput_hours is None:
        end_hour = at.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
        throughput_hours = (end_hour - dt.timedelta(hours=24), end_hour)
    with db.read() as s:
        pg = s.get_bind().dialect.name == "postgresql"
        tiles = _tiles(s, evaluation, lo, day, ids_per_state)
        # A settlement day counts once it is over: today's instructions have until the end of the day.
        day_over = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz) <= at
        settlement = _settlement(s, lo, day if day_over else day - dt.timedelta(days=1))
        stp = _stp(s, lo, day)
        ageing = _ageing(s, day)
        throughput = _throughput(s, *throughput_hours, pg)
        affirmation = _affirmation(s, lo, day, pg)
        workload = _workload(s, evaluation) if _sees_workload(actor) else None
        health = _health(s, db, tiles, settlement, stp, lo, day, verify_audit, pg)
    return Dashboard(
        at=at,
        day=day,
        zone=zone,
        window_days=window_days,
        tiles=tiles,
        settlement=settlement,
        stp=stp,
        ageing=ageing,
        throughput=throughput,
        affirmation=affirmation,
        workload=workload,
        health=health,
        seconds=time.perf_counter() - started,
    )


def _sees_workload(actor: Actor) -> bool:
    return actor.can(Permission.ASSIGN_WORK) or actor.role.value in ("admin", "auditor")


# --- SLA tiles --------------------------------------------------------------------------------------------------------


def outcomes(s: Session, lo: dt.date, hi: dt.date) -> dict[int, dict[dt.date, tuple[int, int]]]:
    """(MET, BREACHED) distinct items per SLA and business date, from the event history (a GROUP BY; a few
    hundred rows at most, so plain dicts rather than a pandas pivot)."""
    rows = s.execute(
        select(
            SlaEvent.sla_id,
            SlaEvent.business_date,
            SlaEvent.state,
            func.count(func.distinct(SlaEvent.item_id)),
        )
        .where(
            SlaEvent.state.in_([SlaState.MET, SlaState.BREACHED]),
            SlaEvent.business_date >= lo,
            SlaEvent.business_date <= hi,
        )
        .group_by(SlaEvent.sla_id, SlaEvent.business_date, SlaEvent.state)
    ).all()
    out: dict[int, dict[dt.date, tuple[int, int]]] = {}
    for sla_id, day, state, n in rows:
        met, br = out.setdefault(int(sla_id), {}).get(day, (0, 0))
        if getattr(state, "value", state) == "MET":
            met += int(n)
        else:
            br += int(n)
        out[int(sla_id)][day] = (met, br)
    return out


def _tiles(s: Session, ev: Evaluation, lo: dt.date, day: dt.date, cap: int | None) -> list[Tile]:
    out = outcomes(s, lo, day)
    days = [lo + dt.timedelta(days=i) for i in range((day - lo).days + 1)]
    tiles = []
    for r in ev.results:
        by_day = out.get(r.sla.id, {})
        trend = []
        for d in days:
            met, br = by_day.get(d, (0, 0))
            trend.append((d, _pct(met, met + br)))
        met_all = sum(m for m, _ in by_day.values())
        br_all = sum(b for _, b in by_day.values())
        today = by_day.get(day, (0, 0))
        ids = {st.value: (r.ids(st)[:cap] if cap else r.ids(st)) for st in STATES[:3]}
        nxt = None
        open_ = r.items[r.items["state"] != BREACHED]
        if len(open_):
            nxt = dt.datetime.fromtimestamp(int(open_["due_s"].min()), dt.UTC)
        tiles.append(
            Tile(
                sla_id=r.sla.id,
                code=r.sla.code,
                name=r.sla.name,
                item_type=r.sla.item_type,
                description=r.sla.description,
                rule_text=r.sla.rule.describe(),
                warning_minutes=r.sla.warning_minutes,
                counts=r.counts(),
                ids=ids,
                attainment_today=_pct(today[0], sum(today)),
                attainment_window=_pct(met_all, met_all + br_all),
                trend=trend,
                next_due=nxt,
            )
        )
    return tiles


# --- settlement, STP ------------------------------------------------------------------------------------------------


def _settlement(s: Session, lo: dt.date, hi: dt.date) -> pd.DataFrame:
    si = SettlementInstruction
    on_time = case(
        (
            and_(
                si.actual_settlement_date.is_not(None),
                si.actual_settlement_date <= si.intended_settlement_date,
            ),
            1,
        ),
        else_=0,
    )
    rows = s.execute(
        select(si.intended_settlement_date, func.count(), func.sum(on_time))
        .where(
            si.status != InstructionStatus.CANCELLED,
            si.intended_settlement_date >= lo,
            si.intended_settlement_date <= hi,
        )
        .group_by(si.intended_settlement_date)
        .order_by(si.intended_settlement_date)
    ).all()
    frame = pd.DataFrame([(r[0], int(r[1]), int(r[2] or 0)) for r in rows], columns=["day", "due", "on_time"])
    frame["failed"] = frame["due"] - frame["on_time"]
    frame["fail_rate"] = np.where(
        frame["due"] > 0, 100.0 * frame["failed"] / frame["due"].clip(lower=1), np.nan
    )
    return frame


def _stp(s: Session, lo: dt.date, hi: dt.date) -> pd.DataFrame:
    touched = select(TradeException.id).where(TradeException.trade_id == Trade.id).exists()
    rows = s.execute(
        select(Trade.trade_date, func.count(), func.sum(case((touched, 0), else_=1)))
        .where(Trade.status != TradeStatus.CANCELLED, Trade.trade_date >= lo, Trade.trade_date <= hi)
        .group_by(Trade.trade_date)
        .order_by(Trade.trade_date)
    ).all()
    frame = pd.DataFrame([(r[0], int(r[1]), int(r[2] or 0)) for r in rows], columns=["day", "trades", "stp"])
    frame["stp_rate"] = np.where(
        frame["trades"] > 0, 100.0 * frame["stp"] / frame["trades"].clip(lower=1), np.nan
    )
    return frame


# --- break ageing ---------------------------------------------------------------------------------------------------


def _ageing(s: Session, day: dt.date) -> list[tuple[str, int, list[int]]]:
    pg = s.get_bind().dialect.name == "postgresql"
    statuses = ", ".join(f"'{st.value}'" for st in OPEN_BREAKS)
    data = read_ints(s, f"SELECT id, {_secs('opened_at', pg)} FROM breaks WHERE status IN ({statuses})", 2)
    ids, opened = data[:, 0], data[:, 1]
    keep = opened != NULL_I
    ids, opened = ids[keep], opened[keep]
    if len(ids):
        cal = get_calendar(DESK_CALENDAR, s)
        start = local_days(opened, DESK_ZONE)
        end = np.full(len(start), np.datetime64(day, "D"))
        age = np.maximum(cal.business_days_between_array(start, np.maximum(start, end)), 0)
    else:
        age = np.zeros(0, dtype=np.int64)
    out = []
    for label, a, b in AGE_BUCKETS:
        sel = (age >= a) & (age <= b)
        out.append((label, int(sel.sum()), ids[sel].astype(int).tolist()))
    return out


# --- throughput -----------------------------------------------------------------------------------------------------


def _throughput(s: Session, start: dt.datetime, end: dt.datetime, pg: bool) -> pd.DataFrame:
    start_s = int(start.timestamp()) // 3600 * 3600
    end_s = int(end.timestamp())
    hours = max(1, -(-(end_s - start_s) // 3600))
    lo, hi = _ts_literal(dt.datetime.fromtimestamp(start_s, dt.UTC), pg), _ts_literal(end, pg)
    series = {}
    for name, table, col, extra in (
        ("trades", "trades", "created_at", ""),
        ("instructions", "settlement_instructions", "instructed_at", ""),
        ("breaks", "breaks", "resolved_at", " AND status IN ('RESOLVED', 'WRITTEN_OFF')"),
    ):
        sec = read_ints(
            s, f"SELECT {_secs(col, pg)} FROM {table} WHERE {col} >= {lo} AND {col} < {hi}{extra}", 1
        )
        bucket = (sec[:, 0] - start_s) // 3600
        series[name] = np.bincount(bucket[(bucket >= 0) & (bucket < hours)], minlength=hours)[:hours]
    return pd.DataFrame({"hour": start_s + 3600 * np.arange(hours, dtype=np.int64), **series})


# --- affirmation ----------------------------------------------------------------------------------------------------


def _affirmation_rule(s: Session) -> SlaRule:
    stored = s.scalar(select(SlaDefinition.rule).where(SlaDefinition.code == "AFFIRM_SAME_DAY"))
    if stored is not None:
        return SlaRule.from_dict(stored)
    return SlaRule.from_dict(next(d.rule for d in DEFAULT_SLAS if d.code == "AFFIRM_SAME_DAY"))


def affirmation_items(s: Session, lo: dt.date, hi: dt.date, pg: bool) -> pd.DataFrame:
    """Trades the affirmation rule watches with trade dates in [lo, hi]: id, day, due_s, affirmed_s (NULL_I)."""
    rule = _affirmation_rule(s)
    from .evaluate import _days

    sql = (
        f"SELECT t.id, {_days('t.trade_date', pg)}, COALESCE(t.instrument_id, -1), -1, -1, 0, "
        f"{_secs('t.affirmed_at', pg)}, {NULL_I} FROM trades t WHERE t.status <> 'CANCELLED' "
        f"AND t.trade_date >= '{lo.isoformat()}' AND t.trade_date <= '{hi.isoformat()}'"
    )
    data = read_ints(s, sql, len(COLUMNS) + 2)
    items = compute_deadlines(s, rule, data, load_reference(s), [])
    assert items.closed is not None
    return pd.DataFrame({"id": items.ids, "day": items.day, "due_s": items.due, "affirmed_s": items.closed})


def _affirmation(s: Session, lo: dt.date, hi: dt.date, pg: bool) -> pd.DataFrame:
    f = affirmation_items(s, lo, hi, pg)
    cols = ["day", "trades", "on_time", "late", "missing", "rate"]
    if f.empty:
        return pd.DataFrame(columns=cols)
    done = f["affirmed_s"] != NULL_I
    f["on_time"] = done & (f["affirmed_s"] <= f["due_s"])
    f["late"] = done & (f["affirmed_s"] > f["due_s"])
    f["missing"] = ~done
    g = f.groupby("day").agg(
        trades=("id", "size"), on_time=("on_time", "sum"), late=("late", "sum"), missing=("missing", "sum")
    )
    g = g.reset_index()
    g["day"] = pd.to_datetime(g["day"]).dt.date
    g["rate"] = 100.0 * g["on_time"] / g["trades"]
    return g[cols]


# --- workload -------------------------------------------------------------------------------------------------------


def _workload(s: Session, ev: Evaluation) -> pd.DataFrame:
    frames = [r.items[["owner_id", "state"]] for r in ev.results if len(r.items)]
    cols = ["owner_id", "username", "open", "ON_TRACK", "AT_RISK", "BREACHED"]
    if not frames:
        return pd.DataFrame(columns=cols)
    items = pd.concat(frames, ignore_index=True)
    counts = pd.crosstab(items["owner_id"], items["state"])
    for code in (ON_TRACK, AT_RISK, BREACHED):
        if code not in counts.columns:
            counts[code] = 0
    counts = counts[[ON_TRACK, AT_RISK, BREACHED]]
    counts.columns = ["ON_TRACK", "AT_RISK", "BREACHED"]
    return workload_table(s, counts)


def workload_table(s: Session, counts: pd.DataFrame) -> pd.DataFrame:
    """The per-clerk workload from counts indexed by ``owner_id`` (-1: unassigned) with ON_TRACK / AT_RISK /
    BREACHED columns: totals, user names, the most breached first (the evaluation's and the stored read's)."""
    counts = counts.copy()
    counts["open"] = counts.sum(axis=1)
    counts = counts.reset_index()
    owners = [int(o) for o in counts["owner_id"] if o >= 0]
    names = dict(s.execute(select(User.id, User.username).where(User.id.in_(owners))).all()) if owners else {}
    counts["username"] = [
        names.get(int(o), f"user #{int(o)}") if o >= 0 else UNASSIGNED for o in counts["owner_id"]
    ]
    counts = counts.sort_values(["BREACHED", "AT_RISK", "open"], ascending=False, kind="stable")
    return counts[["owner_id", "username", "open", "ON_TRACK", "AT_RISK", "BREACHED"]].reset_index(drop=True)


def workload_items(ev: Evaluation, owner_id: int) -> tuple[str, list[int]] | None:
    """The pane and the at-risk or breached items of one owner (-1: unassigned), for the workload drill-down.

    Items of different kinds open different panes: the kind with the most such items wins."""
    best: tuple[str, list[int]] | None = None
    by_pane: dict[str, list[int]] = {}
    for r in ev.results:
        f = r.items[(r.items["owner_id"] == owner_id) & (r.items["state"] != ON_TRACK)]
        if len(f):
            by_pane.setdefault(r.pane_id, []).extend(f.sort_values("due_s")["item_id"].astype(int).tolist())
    for pane, ids in by_pane.items():
        ids = list(dict.fromkeys(ids))
        if best is None or len(ids) > len(best[1]):
            best = (pane, ids)
    return best


# --- health checklist -----------------------------------------------------------------------------------------------


def _tone(value: float | None, ok: float, warn: float) -> str:
    if value is None:
        return "neutral"
    return "ok" if value >= ok else ("warn" if value >= warn else "bad")


def _health(
    s: Session,
    db: Database,
    tiles: list[Tile],
    settlement: pd.DataFrame,
    stp: pd.DataFrame,
    lo: dt.date,
    day: dt.date,
    verify_audit: bool,
    pg: bool,
) -> list[HealthItem]:
    items = health_head(s, settlement, lo, day, verify_audit)
    items.append(health_compliance(tiles))
    # Resilience: backup and connection.
    items.append(_backup(s, db, pg))
    items.append(_round_trip(db))
    items.append(health_integration(stp))
    return items


def health_head(
    s: Session, settlement: pd.DataFrame, lo: dt.date, day: dt.date, verify_audit: bool
) -> list[HealthItem]:
    """Accuracy, timeliness and controls: the checklist's first rows (measured over the window)."""
    items: list[HealthItem] = []
    # Accuracy: break rate and its trend.
    start = dt.datetime.combine(lo, dt.time(), dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
    wk = dt.timedelta(days=7)

    def rate(a: dt.datetime, b: dt.datetime) -> tuple[int, int]:
        breaks = int(
            s.scalar(select(func.count()).select_from(Break).where(Break.opened_at >= a, Break.opened_at < b))
            or 0
        )
        trades = int(
            s.scalar(
                select(func.count()).select_from(Trade).where(Trade.created_at >= a, Trade.created_at < b)
            )
            or 0
        )
        return breaks, trades

    b, t = rate(start, end)
    b_last, t_last = rate(end - wk, end)
    b_prev, t_prev = rate(end - 2 * wk, end - wk)
    per_k = None if t == 0 else 1000.0 * b / t
    last = None if t_last == 0 else 1000.0 * b_last / t_last
    prev = None if t_prev == 0 else 1000.0 * b_prev / t_prev
    if last is None or prev is None:
        trend = "no trend yet"
        rising = False
    else:
        rising = last > prev
        trend = f"last 7 days {last:.1f} vs {prev:.1f} before ({'rising' if rising else 'declining or flat'})"
    status = (
        "neutral" if per_k is None else ("bad" if per_k > 50 else ("warn" if per_k > 10 or rising else "ok"))
    )
    items.append(
        HealthItem(
            "Accuracy",
            "Break rate",
            "–" if per_k is None else f"{per_k:.1f} per 1,000 trades",
            status,
            f"{b:,} breaks opened for {t:,} trades captured; {trend}.",
        )
    )
    # Timeliness: settled on time.
    due = int(settlement["due"].sum()) if len(settlement) else 0
    on_time = int(settlement["on_time"].sum()) if len(settlement) else 0
    pct = _pct(on_time, due)
    items.append(
        HealthItem(
            "Timeliness",
            "Settled on time",
            fmt_pct(pct),
            _tone(pct, 95, 90),
            f"{on_time:,} of {due:,} instructions due settled on or before their intended date.",
        )
    )
    # Controls: second-person approval and the audit chain.
    approved = select(Correction.id, Correction.maker_id).where(
        Correction.status == CorrectionStatus.APPROVED,
        Correction.decided_at >= start,
        Correction.decided_at < end,
    )
    n_approved = int(s.scalar(select(func.count()).select_from(approved.subquery())) or 0)
    second = (
        select(CorrectionApproval.id)
        .where(
            CorrectionApproval.correction_id == Correction.id,
            CorrectionApproval.decision == Decision.APPROVE,
            CorrectionApproval.approver_id != Correction.maker_id,
        )
        .exists()
    )
    n_second = int(
        s.scalar(
            select(func.count())
            .select_from(Correction)
            .where(
                Correction.status == CorrectionStatus.APPROVED,
                Correction.decided_at >= start,
                Correction.decided_at < end,
                second,
            )
        )
        or 0
    )
    pct = _pct(n_second, n_approved)
    items.append(
        HealthItem(
            "Controls",
            "Corrections approved by a second person",
            fmt_pct(pct) if n_approved else "none approved",
            _tone(pct, 100, 100) if n_approved else "neutral",
            f"{n_second:,} of {n_approved:,} corrections approved in the window carry an approval by someone "
            "other than their maker.",
        )
    )
    if verify_audit:
        chain = audit.verify_chain(s)
        items.append(
            HealthItem(
                "Controls",
                "Audit chain intact",
                "intact" if chain.intact else "BROKEN",
                "ok" if chain.intact else "bad",
                f"{chain.entries:,} entries verified"
                + ("." if chain.intact else f"; entry #{chain.first_bad_id} {chain.problem}."),
            )
        )
    return items


def health_compliance(tiles: list[Tile]) -> HealthItem:
    """Transaction reports on time: the REG_REPORT_T1 tile's attainment over the window."""
    reg = next((t for t in tiles if t.code == "REG_REPORT_T1"), None)
    pct = reg.attainment_window if reg else None
    return HealthItem(
        "Compliance",
        "Transaction reports on time",
        fmt_pct(pct),
        _tone(pct, 99, 95),
        "Share of trades with their transaction report filed by T+1 (REG_REPORT_T1 attainment)"
        + ("" if reg else "; the SLA is not active")
        + (f"; {reg.counts.get('BREACHED', 0):,} still unreported past T+1." if reg else "."),
    )


def health_integration(stp: pd.DataFrame) -> HealthItem:
    """Straight-through processing over the window."""
    trades = int(stp["trades"].sum()) if len(stp) else 0
    n_stp = int(stp["stp"].sum()) if len(stp) else 0
    pct = _pct(n_stp, trades)
    return HealthItem(
        "Integration",
        "Straight-through processing",
        fmt_pct(pct),
        _tone(pct, 90, 75),
        f"{n_stp:,} of {trades:,} trades captured flowed through without a repair.",
    )


def _backup(s: Session, db: Database, pg: bool) -> HealthItem:
    when: dt.datetime | None = None
    how = ""
    if pg:
        try:
            row = s.execute(text("SELECT last_archived_time, archived_count FROM pg_stat_archiver")).first()
            mode = s.execute(text("SHOW archive_mode")).scalar()
        except Exception:  # a restricted role may not read the view; say so rather than fail the dashboard
            row, mode = None, None
        if row is not None and row[0] is not None:
            when = row[0] if row[0].tzinfo else row[0].replace(tzinfo=dt.UTC)
            how = f"last WAL segment archived ({int(row[1]):,} archived in all)"
        else:
            how = f"WAL archiving {'is not configured' if mode in (None, 'off') else 'has not archived yet'}"
    else:
        path = Path(make_url(db.url).database or "")
        candidates: list[Path] = []
        if path.name:
            folder = path.parent
            candidates += list(folder.glob(path.name + ".backup*")) + list(folder.glob(path.stem + "*.bak"))
            if (folder / "backups").is_dir():
                candidates += [p for p in (folder / "backups").iterdir() if p.is_file()]
        if candidates:
            newest = max(candidates, key=lambda p: p.stat().st_mtime)
            when = dt.datetime.fromtimestamp(newest.stat().st_mtime, dt.UTC)
            how = f"newest backup file {newest.name}"
        else:
            how = "no backup file found beside the database file"
    if when is None:
        return HealthItem("Resilience", "Last successful backup", "unknown", "warn", how + ".")
    age_h = (dt.datetime.now(dt.UTC) - when).total_seconds() / 3600
    return HealthItem(
        "Resilience",
        "Last successful backup",
        f"{when:%Y-%m-%d %H:%M} UTC",
        "ok" if age_h <= 26 else "warn",
        f"{how}, {age_h:.0f} h ago.",
    )


def _round_trip(db: Database) -> HealthItem:
    best = None
    try:
        for _ in range(3):
            t0 = time.perf_counter()
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            ms = (time.perf_counter() - t0) * 1000
            best = ms if best is None else min(best, ms)
    except Exception as err:  # the dashboard reports the outage instead of failing
        return HealthItem("Resilience", "Database connection", "down", "bad", str(err).splitlines()[0])
    assert best is not None
    return HealthItem(
        "Resilience",
        "Database connection",
        f"{best:.1f} ms round trip",
        "ok" if best < 50 else ("warn" if best < 500 else "bad"),
        f"{db.description}; best of three SELECT 1 round trips.",
    )


# =====================================================================================================================
# Drill-down from chart points
# =====================================================================================================================


@dataclass(frozen=True)
class DrillDown:
    pane_id: str
    ids: list[int]
    title: str


def point_items(db: Database, actor: Actor, chart: str, key: Any) -> DrillDown:
    """The exact items behind one point of a chart.

    ``chart``: ``sla_trend`` (key ``(sla_id, date)``: items BREACHED with a deadline that day), ``settlement``
    (key date: instructions due that day not settled on time), ``stp`` (key date: trades that needed repair),
    ``affirmation`` (key date: trades not affirmed by the cut-off), ``throughput`` (key ``(series, hour_s)``:
    the trades captured, instructions sent or breaks resolved in that hour).
    """
    require(actor, Permission.VIEW)
    with db.read() as s:
        pg = s.get_bind().dialect.name == "postgresql"
        if chart == "sla_trend":
            sla_id, day = key
            sla = s.get(SlaDefinition, int(sla_id))
            if sla is None:
                raise ValidationFailed(f"There is no SLA #{sla_id}.")
            ids = s.scalars(
                select(SlaEvent.item_id)
                .where(
                    SlaEvent.sla_id == sla.id,
                    SlaEvent.business_date == day,
                    SlaEvent.state == SlaState.BREACHED,
                )
                .distinct()
                .order_by(SlaEvent.item_id)
            ).all()
            return DrillDown(ITEM_PANES[sla.item_type], list(ids), f"SLA breached on {day}: {sla.name}")
        if chart == "settlement":
            si = SettlementInstruction
            ids = s.scalars(
                select(si.id)
                .where(
                    si.status != InstructionStatus.CANCELLED,
                    si.intended_settlement_date == key,
                    or_(
                        si.actual_settlement_date.is_(None),
                        si.actual_settlement_date > si.intended_settlement_date,
                    ),
                )
                .order_by(si.id)
            ).all()
            return DrillDown("settlement_queue", list(ids), f"Not settled on {key}")
        if chart == "stp":
            touched = select(TradeException.id).where(TradeException.trade_id == Trade.id).exists()
            ids = s.scalars(
                select(Trade.id)
                .where(Trade.trade_date == key, Trade.status != TradeStatus.CANCELLED, touched)
                .order_by(Trade.id)
            ).all()
            return DrillDown("trade_blotter", list(ids), f"Trades of {key} that needed repair")
        if chart == "affirmation":
            f = affirmation_items(s, key, key, pg)
            late = f[(f["affirmed_s"] == NULL_I) | (f["affirmed_s"] > f["due_s"])]
            return DrillDown(
                "trade_blotter", late["id"].astype(int).tolist(), f"Trades of {key} not affirmed by 21:00 ET"
            )
        if chart == "throughput":
            series, hour_s = key
            a = dt.datetime.fromtimestamp(int(hour_s), dt.UTC)
            b = a + dt.timedelta(hours=1)
            spec = {
                "trades": (Trade, Trade.created_at, "trade_blotter", "Trades captured"),
                "instructions": (
                    SettlementInstruction,
                    SettlementInstruction.instructed_at,
                    "settlement_queue",
                    "Instructions sent",
                ),
                "breaks": (Break, Break.resolved_at, "break_investigation", "Breaks resolved"),
            }
            if series not in spec:
                raise ValidationFailed(f"Unknown throughput series {series!r}.")
            model, col, pane, words = spec[series]
            ids = s.scalars(select(model.id).where(col >= a, col < b).order_by(model.id)).all()
            return DrillDown(pane, list(ids), f"{words} {a:%Y-%m-%d %H:00} UTC")
    raise ValidationFailed(f"Unknown chart {chart!r}.")
