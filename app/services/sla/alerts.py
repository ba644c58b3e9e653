"""SLA alerts: which SLAs alert which user, and the alerts a user has not seen yet.

An alert is an ``sla_events`` row where an item turned AT_RISK or BREACHED, for an item the user owns or that nobody
owns (then everyone on the desk is told), under an SLA the user chose. The choice is a per-user preference
(``sla.alerts``: the SLA codes; absent means every SLA), so it follows the user to any workstation. The owner is the
one the evaluation saw when the state changed (``sla_events.owner_id``).

The GUI's watcher starts from :func:`latest_event_id` (nothing old floods a user who signs in) and then asks
:func:`new_alerts` for what came after the last event it saw.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, or_, select

from app.models import SlaDefinition, SlaEvent
from app.models.enums import SlaState

from .. import preferences
from ..db import Database
from ..errors import ValidationFailed
from ..permissions import Actor, Permission, require
from .rules import ITEM_PANES

PREF_KEY = "sla.alerts"
ALERT_STATES = (SlaState.AT_RISK, SlaState.BREACHED)
MAX_ALERTS = 500  # one poll never returns more; the watcher summarises


@dataclass(frozen=True)
class Alert:
    event_id: int
    sla_code: str
    sla_name: str
    item_type: str
    item_id: int
    state: SlaState
    due_at: dt.datetime
    occurred_at: dt.datetime
    owner_id: int | None

    @property
    def pane_id(self) -> str:
        return ITEM_PANES[self.item_type]

    def text(self, zone: str = "UTC") -> str:
        from zoneinfo import ZoneInfo

        try:
            tz = ZoneInfo(zone)
        except Exception:
            tz = ZoneInfo("UTC")
        due = self.due_at.astimezone(tz).strftime("%d %b %H:%M %Z")
        verb = "is at risk" if self.state == SlaState.AT_RISK else "breached"
        return f"{self.sla_name}: {self.item_type} #{self.item_id} {verb} (due {due})."


def alert_codes(db: Database, actor: Actor) -> list[str] | None:
    """The SLA codes this user is alerted for; None means every SLA (the default)."""
    value = preferences.get(db, actor, PREF_KEY, None)
    if value is None:
        return None
    return [str(c) for c in value]


def set_alert_codes(db: Database, actor: Actor, codes: list[str] | None) -> None:
    """Choose the SLAs that alert this user (None: every SLA, including ones added later)."""
    require(actor, Permission.SAVE_PREFERENCES)
    if codes is None:
        preferences.remove(db, actor, PREF_KEY)
        return
    with db.read() as s:
        known = set(s.scalars(select(SlaDefinition.code)))
    unknown = sorted(set(codes) - known)
    if unknown:
        raise ValidationFailed(f"Unknown SLA code(s): {', '.join(unknown)}.")
    preferences.put(db, actor, PREF_KEY, sorted(set(codes)))


def latest_event_id(db: Database, actor: Actor) -> int:
    require(actor, Permission.VIEW)
    with db.read() as s:
        return int(s.scalar(select(func.max(SlaEvent.id))) or 0)


def new_alerts(db: Database, actor: Actor, since_event_id: int, *, limit: int = MAX_ALERTS) -> list[Alert]:
    """AT_RISK and BREACHED events after ``since_event_id`` for this user's items (or unowned ones), under the
    SLAs the user chose, oldest first."""
    require(actor, Permission.VIEW)
    codes = alert_codes(db, actor)
    with db.read() as s:
        q = (
            select(SlaEvent, SlaDefinition.code, SlaDefinition.name)
            .join(SlaDefinition, SlaDefinition.id == SlaEvent.sla_id)
            .where(SlaEvent.id > since_event_id, SlaEvent.state.in_(ALERT_STATES))
            .order_by(SlaEvent.id)
            .limit(limit)
        )
        if actor.user_id is not None:
            q = q.where(or_(SlaEvent.owner_id == actor.user_id, SlaEvent.owner_id.is_(None)))
        if codes is not None:
            if not codes:
                return []
            q = q.where(SlaDefinition.code.in_(codes))
        return [
            Alert(
                event_id=e.id,
                sla_code=code,
                sla_name=name,
                item_type=e.item_type,
                item_id=e.item_id,
                state=SlaState(e.state),
                due_at=e.due_at,
                occurred_at=e.occurred_at,
                owner_id=e.owner_id,
            )
            for e, code, name in s.execute(q)
        ]
