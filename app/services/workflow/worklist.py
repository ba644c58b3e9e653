"""The read side of exception work: the break work list, one break in full, and the approvals inbox.

No Qt here: the break investigation pane, the approvals inbox, the CLI and tests read through these functions; the
actions (claim, categorise, propose, approve ...) live beside them in ``breaks.py``, ``comments.py`` and
``corrections.py``.

- :func:`work_list` pages the breaks a filter selects (recon, type, status, category, root cause, age bucket,
  owner incl. "my breaks" and "unassigned", amount range, "older than N days", reference text, exact ids) in a
  chosen order, by keyset (``WHERE (key, id) > (:last_key, :last_id)``) or by offset. Breaks number in the tens of
  thousands: filters and sorts run in the database; each row carries its age in business days.
- :func:`totals` counts what the filter selects and adds the amounts at stake by currency.
- :func:`break_detail` gives one break as a clerk investigates it: the internal and external records side by side
  with the differing fields marked, the facts, comments, attachments (without their content), corrections and
  the history.
- :func:`approvals_inbox` lists corrections with their before/after, maker, age, approvals so far and required,
  and whether the signed-in user may decide each one (and if not, why not, in words).

Age is counted in business days of the desk's calendar (:data:`DESK_CALENDAR`) from the day the break was opened
(in the user's time zone) to today: a break opened on Monday is 2 days old on Wednesday. An age filter becomes a
condition on ``opened_at`` (the first business day of the bucket, as a UTC instant), so it runs in the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, tuple_
from sqlalchemy.orm import Session, aliased

from app.models import AuditEntry, Break, ReconDefinition, User
from app.models.enums import BreakStatus, BreakType, CorrectionKind, CorrectionStatus, Decision
from app.models.workflow import Attachment, Comment, Correction, CorrectionApproval, CorrectionItem

from ..calendars import DESK_CALENDAR
from ..db import Database
from ..errors import NotFound, ValidationFailed
from ..permissions import Actor, Permission, require
from .breaks import CATEGORIES, ROOT_CAUSES, describe_entry
from .corrections import field_changes

#: Work items are addressed as (item_type, id) in comments, attachments and corrections; item_type is the item's
#: table name (comments.py), and older rows may carry the singular word.
ITEM_TYPE = "breaks"
_BREAK_WORDS = ("breaks", "break")
#: The operations desk's business-day calendar (London): break ages and age buckets count its business days.
#: Statuses a clerk still works; the work list's default.
OPEN_STATUSES: tuple[str, ...] = (BreakStatus.OPEN, BreakStatus.ASSIGNED, BreakStatus.PROPOSED)
#: Age buckets in business days (inclusive bounds; None: no upper bound), in the order the filter offers them.
AGE_BUCKETS: dict[str, tuple[int, int | None]] = {
    "0-1": (0, 1),
    "2-5": (2, 5),
    "6-10": (6, 10),
    ">10": (11, None),
}
AGE_BUCKET_LABELS = {"0-1": "0–1 days", "2-5": "2–5 days", "6-10": "6–10 days", ">10": "Over 10 days"}
MAX_PAGE = 5000


# --- the work list ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BreakFilter:
    """What the work list's filter bar asks for. Empty fields do not filter."""

    ids: tuple[int, ...] = ()  # a drill-down: exactly these breaks
    definition_ids: tuple[int, ...] = ()
    break_types: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    category: str | None = None
    root_cause: str | None = None
    age_bucket: str | None = None  # a key of AGE_BUCKETS
    older_than_days: int | None = None  # age above N business days
    owner_id: int | None = None
    mine: bool = False  # "my breaks": owned by the signed-in user
    unassigned: bool = False  # nobody owns it
    amount_min: Decimal | None = None  # on the absolute amount at stake
    amount_max: Decimal | None = None
    currency: str | None = None
    text: str | None = None  # part of the internal or external reference

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is False or v in (None, (), ""):
                continue
            out[f.name] = list(v) if isinstance(v, tuple) else (str(v) if isinstance(v, Decimal) else v)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BreakFilter:
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d or d[f.name] in (None, ""):
                continue
            v = d[f.name]
            if f.name in ("ids", "definition_ids"):
                v = tuple(int(x) for x in v)
            elif f.name in ("break_types", "statuses"):
                v = (v,) if isinstance(v, str) else tuple(str(x) for x in v)
            elif f.name in ("amount_min", "amount_max"):
                v = Decimal(str(v))
            elif f.name == "older_than_days":
                v = int(v)
            kw[f.name] = v
        return cls(**kw)


@dataclass(frozen=True)
class BreakSort:
    """Order of the work list. ``opened_at`` ascending is oldest first (the default: oldest is most urgent)."""

    key: str = "opened_at"
    descending: bool = False


_SORT_COLUMNS: dict[str, Any] = {
    "opened_at": Break.opened_at,
    "amount": Break.amount,
    "status": Break.status,
    "break_type": Break.break_type,
    "as_of_date": Break.as_of_date,
    "currency": Break.currency,
    "id": Break.id,
}
SORTABLE = frozenset(_SORT_COLUMNS)


@dataclass(frozen=True)
class BreakRow:
    """One line of the work list (plain values; no ORM object leaves the service)."""

    id: int
    version: int
    definition_id: int
    recon: str
    break_type: str
    status: str
    category: str | None
    root_cause: str | None
    internal_ref: str | None
    external_ref: str | None
    amount: Decimal
    currency: str | None
    as_of_date: dt.date
    opened_at: dt.datetime
    age: int  # business days
    owner_id: int | None
    owner: str | None
    claimed_at: dt.datetime | None
    fields: tuple[str, ...]  # the fields that differ

    @property
    def sort_value(self) -> Any:
        return self.opened_at

    def key(self, sort: BreakSort) -> tuple[Any, int]:
        """The keyset position of this row under ``sort``."""
        return (getattr(self, sort.key), self.id)


@dataclass
class BreakPage:
    rows: list[BreakRow]
    last_key: tuple[Any, int] | None = None  # pass as ``after`` for the next page
    more: bool = False  # another page follows


@dataclass
class BreakTotals:
    count: int = 0
    by_currency: dict[str, Decimal] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)


def _zone(actor: Actor) -> ZoneInfo:
    try:
        return ZoneInfo(actor.timezone)
    except Exception:  # an unknown zone in a user record must not break the work list
        return ZoneInfo("UTC")


def today_for(actor: Actor, now: dt.datetime | None = None) -> dt.date:
    """Today's date where the user sits."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(_zone(actor)).date()


def _clamp(d: dt.date) -> dt.date:
    # The calendars cover a bounded range; ages of items outside it are counted at its edge.
    from ..calendars import CALENDAR_END, CALENDAR_START

    return min(max(d, CALENDAR_START), CALENDAR_END)


def _calendar() -> Any:
    # Imported when first needed (numpy and the exchange calendars): the GUI imports this module's dataclasses
    # on its own thread at start-up, and must not pay for them there.
    from ..calendars import get_calendar

    return get_calendar(DESK_CALENDAR)


def _aged_cut(actor: Actor, today: dt.date, n: int) -> dt.datetime:
    """Breaks opened before this instant are at least ``n`` business days old on ``today``.

    The n-th business day before today, c, is the latest opening day with age >= n; its next midnight (user's
    zone) is the cut. (Proof in one line: [c, today) holds n business days, [c+1, today) n-1.)
    """
    c = _calendar().add_business_days(_clamp(today), -n)
    return dt.datetime.combine(c + dt.timedelta(days=1), dt.time(), tzinfo=_zone(actor)).astimezone(dt.UTC)


def ages(actor: Actor, opened: Sequence[dt.datetime], today: dt.date) -> list[int]:
    """Business days since each opening instant (the user's dates), vectorised over a page."""
    if not opened:
        return []
    import numpy as np

    zone = _zone(actor)
    days = np.array([_clamp(o.astimezone(zone).date()) for o in opened], dtype="datetime64[D]")
    end = np.full(days.shape, np.datetime64(_clamp(today), "D"))
    counts = _calendar().business_days_between_array(days, end)
    return [max(0, int(x)) for x in counts]


def _conditions(actor: Actor, flt: BreakFilter, today: dt.date) -> list[ColumnElement[bool]]:
    c: list[ColumnElement[bool]] = []
    if flt.ids:
        c.append(Break.id.in_(list(flt.ids)))
    if flt.definition_ids:
        c.append(Break.definition_id.in_(list(flt.definition_ids)))
    if flt.break_types:
        c.append(Break.break_type.in_([BreakType(t) for t in flt.break_types]))
    if flt.statuses:
        c.append(Break.status.in_([BreakStatus(s) for s in flt.statuses]))
    if flt.category:
        c.append(Break.category == flt.category)
    if flt.root_cause:
        c.append(Break.root_cause == flt.root_cause.strip().upper())
    if flt.age_bucket:
        if flt.age_bucket not in AGE_BUCKETS:
            raise ValidationFailed(
                f"There is no age bucket '{flt.age_bucket}'; use one of {', '.join(AGE_BUCKETS)}."
            )
        lo, hi = AGE_BUCKETS[flt.age_bucket]
        if lo > 0:
            c.append(Break.opened_at < _aged_cut(actor, today, lo))
        if hi is not None:
            c.append(Break.opened_at >= _aged_cut(actor, today, hi + 1))
    if flt.older_than_days is not None:
        if flt.older_than_days < 0:
            raise ValidationFailed("'Older than' takes a number of days of 0 or more.")
        c.append(Break.opened_at < _aged_cut(actor, today, flt.older_than_days + 1))
    if flt.owner_id is not None:
        c.append(Break.owner_id == flt.owner_id)
    if flt.mine:
        c.append(Break.owner_id == actor.user_id)
    if flt.unassigned:
        c.append(Break.owner_id.is_(None))
    if flt.amount_min is not None:
        c.append(func.abs(Break.amount) >= flt.amount_min)
    if flt.amount_max is not None:
        c.append(func.abs(Break.amount) <= flt.amount_max)
    if flt.currency:
        c.append(Break.currency == flt.currency.strip().upper())
    if flt.text:
        t = f"%{flt.text.strip()}%"
        c.append(or_(Break.internal_ref.like(t), Break.external_ref.like(t)))
    return c


_ROW_COLUMNS = (
    Break.id,
    Break.version,
    Break.definition_id,
    ReconDefinition.name,
    Break.break_type,
    Break.status,
    Break.category,
    Break.root_cause,
    Break.internal_ref,
    Break.external_ref,
    Break.amount,
    Break.currency,
    Break.as_of_date,
    Break.opened_at,
    Break.owner_id,
    User.username,
    Break.claimed_at,
    Break.differences,
)


def _select(actor: Actor, flt: BreakFilter, today: dt.date) -> Select[Any]:
    return (
        select(*_ROW_COLUMNS)
        .join(ReconDefinition, ReconDefinition.id == Break.definition_id)
        .outerjoin(User, User.id == Break.owner_id)
        .where(and_(True, *_conditions(actor, flt, today)))
    )


def _difference_fields(differences: Any) -> tuple[str, ...]:
    out: list[str] = []
    for d in differences or ():
        name = d.get("field") if isinstance(d, Mapping) else None
        if name and name not in out:
            out.append(str(name))
    return tuple(out)


def _rows(actor: Actor, raw: Sequence[Any], today: dt.date) -> list[BreakRow]:
    age = ages(actor, [r.opened_at for r in raw], today)
    return [
        BreakRow(
            id=int(r.id),
            version=int(r.version),
            definition_id=int(r.definition_id),
            recon=str(r.name),
            break_type=str(getattr(r.break_type, "value", r.break_type)),
            status=str(getattr(r.status, "value", r.status)),
            category=r.category,
            root_cause=r.root_cause,
            internal_ref=r.internal_ref,
            external_ref=r.external_ref,
            amount=Decimal(r.amount or 0),
            currency=r.currency,
            as_of_date=r.as_of_date,
            opened_at=r.opened_at,
            age=a,
            owner_id=r.owner_id,
            owner=r.username,
            claimed_at=r.claimed_at,
            fields=_difference_fields(r.differences),
        )
        for r, a in zip(raw, age, strict=True)
    ]


def _sort_column(sort: BreakSort) -> Any:
    if sort.key not in _SORT_COLUMNS:
        raise ValidationFailed(
            f"The work list cannot be sorted by '{sort.key}'; use one of {', '.join(sorted(SORTABLE))}."
        )
    return _SORT_COLUMNS[sort.key]


def work_list(
    db: Database,
    actor: Actor,
    flt: BreakFilter | None = None,
    sort: BreakSort | None = None,
    *,
    limit: int = 200,
    after: tuple[Any, int] | None = None,
    offset: int | None = None,
    today: dt.date | None = None,
) -> BreakPage:
    """One page of breaks in display order: the first, the one ``after`` a keyset position, or at ``offset``."""
    require(actor, Permission.VIEW)
    flt = flt or BreakFilter()
    sort = sort or BreakSort()
    if not 0 < limit <= MAX_PAGE:
        raise ValidationFailed(f"A work-list page holds 1 to {MAX_PAGE:,} breaks (asked for {limit:,}).")
    today = today or today_for(actor)
    key = _sort_column(sort)
    q = _select(actor, flt, today)
    if after is not None:
        position = tuple_(key, Break.id)
        q = q.where(position < tuple_(*after) if sort.descending else position > tuple_(*after))
    order = (key.desc(), Break.id.desc()) if sort.descending else (key.asc(), Break.id.asc())
    q = q.order_by(*order).limit(limit + 1)
    if offset:
        q = q.offset(offset)
    with db.read() as s:
        raw = s.execute(q).all()
    more = len(raw) > limit
    rows = _rows(actor, raw[:limit], today)
    return BreakPage(rows, rows[-1].key(sort) if rows else None, more)


def totals(
    db: Database, actor: Actor, flt: BreakFilter | None = None, *, today: dt.date | None = None
) -> BreakTotals:
    """How many breaks the filter selects, their amount at stake by currency, and how many in each status."""
    require(actor, Permission.VIEW)
    flt = flt or BreakFilter()
    today = today or today_for(actor)
    where = and_(True, *_conditions(actor, flt, today))
    with db.read() as s:
        rows = s.execute(
            select(Break.currency, Break.status, func.count(), func.sum(func.abs(Break.amount)))
            .where(where)
            .group_by(Break.currency, Break.status)
        ).all()
    out = BreakTotals()
    for ccy, status, n, amount in rows:
        out.count += int(n)
        key = str(getattr(status, "value", status))
        out.by_status[key] = out.by_status.get(key, 0) + int(n)
        if amount is not None:
            c = ccy or "—"
            out.by_currency[c] = out.by_currency.get(c, Decimal(0)) + Decimal(str(amount))
    out.by_currency = {k: v.quantize(Decimal("0.01")) for k, v in sorted(out.by_currency.items())}
    return out


def position_of(
    db: Database,
    actor: Actor,
    flt: BreakFilter,
    sort: BreakSort,
    break_id: int,
    *,
    today: dt.date | None = None,
) -> int | None:
    """Row number of a break under the filter and sort (None when the filter does not select it)."""
    require(actor, Permission.VIEW)
    today = today or today_for(actor)
    key = _sort_column(sort)
    with db.read() as s:
        row = s.execute(select(key).where(Break.id == break_id, *_conditions(actor, flt, today))).first()
        if row is None:
            return None
        position = tuple_(key, Break.id)
        at = tuple_(row[0], break_id)
        before = position > at if sort.descending else position < at
        n = s.scalar(select(func.count()).select_from(Break).where(before, *_conditions(actor, flt, today)))
    return int(n or 0)


@dataclass(frozen=True)
class Choices:
    """What the filter bar offers: recon definitions, categories and root causes in use, users to assign to."""

    recons: list[tuple[int, str]]
    categories: list[str]
    root_causes: list[str]
    users: list[tuple[int, str, str]]  # id, username, role


def choices(db: Database, actor: Actor) -> Choices:
    require(actor, Permission.VIEW)
    with db.read() as s:
        recons = [(int(i), str(n)) for i, n in s.execute(select(ReconDefinition.id, ReconDefinition.name))]
        categories = sorted(
            str(c) for c in s.scalars(select(Break.category).where(Break.category.is_not(None)).distinct())
        )
        causes = sorted(
            str(c)
            for c in s.scalars(select(Break.root_cause).where(Break.root_cause.is_not(None)).distinct())
        )
        users = [
            (int(i), str(n), str(getattr(r, "value", r)))
            for i, n, r in s.execute(
                select(User.id, User.username, User.role)
                .where(User.is_active.is_(True))
                .order_by(User.username)
            )
        ]
    # The workflow's own lists first, then any other word already in use.
    categories = list(dict.fromkeys([*CATEGORIES, *categories]))
    causes = list(dict.fromkeys([*ROOT_CAUSES, *causes]))
    return Choices(sorted(recons, key=lambda r: r[1]), categories, causes, users)


# --- one break in full ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRow:
    """One line of the side-by-side view: a field, both values, and whether they differ."""

    field: str
    internal: Any
    external: Any
    differs: bool
    only: str | None = None  # "internal" / "external": the field exists on one side only


@dataclass(frozen=True)
class CommentRow:
    id: int
    author: str
    created_at: dt.datetime
    body: str


@dataclass(frozen=True)
class AttachmentRow:
    id: int
    file_name: str
    media_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: dt.datetime


@dataclass(frozen=True)
class HistoryRow:
    when: dt.datetime
    who: str
    action: str
    text: str  # one sentence a person reads
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


@dataclass(frozen=True)
class CorrectionRow:
    id: int
    kind: str
    status: str
    maker: str
    created_at: dt.datetime
    reason: str
    decision_comment: str | None


@dataclass
class BreakDetail:
    id: int
    version: int
    definition_id: int
    recon: str
    left_source: str
    right_source: str
    break_type: str
    status: str
    category: str | None
    root_cause: str | None
    internal_ref: str | None
    external_ref: str | None
    amount: Decimal
    currency: str | None
    as_of_date: dt.date
    opened_at: dt.datetime
    resolved_at: dt.datetime | None
    age: int
    owner_id: int | None
    owner: str | None
    claimed_at: dt.datetime | None
    updated_by: str | None
    updated_at: dt.datetime | None
    internal_record: dict[str, Any] | None
    external_record: dict[str, Any] | None
    differences: list[dict[str, Any]]
    fields: list[FieldRow]
    comments: list[CommentRow]
    attachments: list[AttachmentRow]
    corrections: list[CorrectionRow]
    history: list[HistoryRow]

    @property
    def differing(self) -> list[str]:
        return [f.field for f in self.fields if f.differs]

    @property
    def pending_correction(self) -> CorrectionRow | None:
        return next((c for c in self.corrections if c.status == CorrectionStatus.PENDING.value), None)


def _same(a: Any, b: Any) -> bool:
    """Values from two JSON records compared as a clerk would: 100 equals 100.00, '2026-01-02' equals itself."""
    if a == b:
        return True
    try:
        return Decimal(str(a)) == Decimal(str(b))
    except Exception:
        return str(a).strip() == str(b).strip()


def side_by_side(
    internal: Mapping[str, Any] | None, external: Mapping[str, Any] | None, differences: Iterable[Any]
) -> list[FieldRow]:
    """The union of both records' fields, differing ones first; a field differs when the engine said so (within
    tolerance is not a difference), or, without the engine's word, when both sides have it with other values."""
    marked = {str(d.get("field")): d for d in differences or () if isinstance(d, Mapping) and d.get("field")}
    internal, external = internal or {}, external or {}
    # The differing fields first (what the clerk came for), then the rest in the records' own order (PostgreSQL's
    # JSONB keeps keys in its own order, so no order beyond that is promised).
    names = list(dict.fromkeys([*marked, *internal, *external]))
    rows = []
    for name in names:
        in_i, in_e = name in internal, name in external
        iv = internal.get(name, marked.get(name, {}).get("internal"))
        ev = external.get(name, marked.get(name, {}).get("external"))
        if name in marked:
            differs = True
        elif internal and external and in_i and in_e:
            differs = not _same(iv, ev) and not marked  # the engine's list, when given, is the whole truth
        else:
            differs = False
        only = None
        if internal and external:
            only = "internal" if in_i and not in_e else "external" if in_e and not in_i else None
        rows.append(FieldRow(name, iv, ev, differs, only))
    return rows


def _usernames(s: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {int(i): str(n) for i, n in s.execute(select(User.id, User.username).where(User.id.in_(wanted)))}


def break_detail(db: Database, actor: Actor, break_id: int, *, today: dt.date | None = None) -> BreakDetail:
    """Everything about one break for its investigation, read in one unit of work."""
    require(actor, Permission.VIEW)
    today = today or today_for(actor)
    with db.read() as s:
        b = s.get(Break, break_id)
        if b is None:
            raise NotFound(f"The break #{break_id} does not exist (it may have been deleted).")
        d = s.get(ReconDefinition, b.definition_id)
        comments = s.execute(
            select(Comment.id, Comment.author_id, Comment.created_at, Comment.body)
            .where(Comment.item_type.in_(_BREAK_WORDS), Comment.item_id == break_id)
            .order_by(Comment.created_at, Comment.id)
        ).all()
        attachments = s.execute(
            select(
                Attachment.id,
                Attachment.file_name,
                Attachment.media_type,
                func.length(Attachment.content),
                Attachment.sha256,
                Attachment.uploaded_by_id,
                Attachment.uploaded_at,
            )
            .where(Attachment.item_type.in_(_BREAK_WORDS), Attachment.item_id == break_id)
            .order_by(Attachment.uploaded_at, Attachment.id)
        ).all()
        corrections = s.execute(
            select(
                Correction.id,
                Correction.kind,
                Correction.status,
                Correction.maker_id,
                Correction.created_at,
                Correction.reason,
                Correction.decision_comment,
            )
            .where(
                or_(
                    and_(Correction.item_type.in_(_BREAK_WORDS), Correction.item_id == break_id),
                    # A manual match names several breaks: each finds the correction through its items.
                    Correction.id.in_(
                        select(CorrectionItem.correction_id).where(
                            CorrectionItem.item_type.in_(_BREAK_WORDS), CorrectionItem.item_id == break_id
                        )
                    ),
                )
            )
            .order_by(Correction.created_at, Correction.id)
        ).all()
        entries = _history(s, actor, break_id, [c.id for c in corrections])
        names = _usernames(
            s,
            [b.owner_id, b.updated_by_id]
            + [c.author_id for c in comments]
            + [a.uploaded_by_id for a in attachments]
            + [c.maker_id for c in corrections],
        )
    differences = [dict(x) for x in (b.differences or []) if isinstance(x, Mapping)]
    return BreakDetail(
        id=b.id,
        version=b.version,
        definition_id=b.definition_id,
        recon=d.name if d else f"#{b.definition_id}",
        left_source=d.left_source if d else "internal",
        right_source=d.right_source if d else "external",
        break_type=b.break_type.value,
        status=b.status.value,
        category=b.category,
        root_cause=b.root_cause,
        internal_ref=b.internal_ref,
        external_ref=b.external_ref,
        amount=Decimal(b.amount or 0),
        currency=b.currency,
        as_of_date=b.as_of_date,
        opened_at=b.opened_at,
        resolved_at=b.resolved_at,
        age=ages(actor, [b.opened_at], today)[0],
        owner_id=b.owner_id,
        owner=names.get(b.owner_id) if b.owner_id is not None else None,
        claimed_at=b.claimed_at,
        updated_by=names.get(b.updated_by_id) if b.updated_by_id is not None else None,
        updated_at=b.updated_at,
        internal_record=dict(b.internal_record) if b.internal_record is not None else None,
        external_record=dict(b.external_record) if b.external_record is not None else None,
        differences=differences,
        fields=side_by_side(b.internal_record, b.external_record, differences),
        comments=[
            CommentRow(c.id, names.get(c.author_id, f"#{c.author_id}"), c.created_at, c.body)
            for c in comments
        ],
        attachments=[
            AttachmentRow(
                a.id,
                a.file_name,
                a.media_type,
                int(a[3] or 0),
                a.sha256,
                names.get(a.uploaded_by_id, f"#{a.uploaded_by_id}"),
                a.uploaded_at,
            )
            for a in attachments
        ],
        corrections=[
            CorrectionRow(
                c.id,
                c.kind.value,
                c.status.value,
                names.get(c.maker_id, f"#{c.maker_id}"),
                c.created_at,
                c.reason,
                c.decision_comment,
            )
            for c in corrections
        ],
        history=entries,
    )


def _history(s: Session, actor: Actor, break_id: int, correction_ids: list[int]) -> list[HistoryRow]:
    """The break's story, oldest first: its audit entries and those of its corrections, comments and files.

    Each line is worded as the workflow's own ``breaks.history`` words it; this reads the same entries in the
    detail's unit of work.
    """
    describe = describe_entry
    entities = [("breaks", str(break_id))] + [("corrections", str(c)) for c in correction_ids]
    entries = s.execute(
        select(
            AuditEntry.occurred_at,
            AuditEntry.username,
            AuditEntry.action,
            AuditEntry.before,
            AuditEntry.after,
        )
        .where(or_(*(and_(AuditEntry.entity_type == t, AuditEntry.entity_id == i) for t, i in entities)))
        .order_by(AuditEntry.id)
    ).all()
    lines = [
        (
            e.occurred_at,
            0,
            HistoryRow(
                e.occurred_at, e.username, e.action, describe(e.action, e.before, e.after), e.before, e.after
            ),
        )
        for e in entries
        if e.action != "comments.add"
    ]
    notes = s.execute(
        select(Comment.created_at, Comment.author_id, Comment.body).where(
            Comment.item_type.in_(_BREAK_WORDS), Comment.item_id == break_id
        )
    ).all()
    files = s.execute(
        select(Attachment.uploaded_at, Attachment.uploaded_by_id, Attachment.file_name).where(
            Attachment.item_type.in_(_BREAK_WORDS), Attachment.item_id == break_id
        )
    ).all()
    names = _usernames(s, [n.author_id for n in notes] + [f.uploaded_by_id for f in files])
    for n in notes:
        who = names.get(n.author_id, f"#{n.author_id}")
        lines.append((n.created_at, 1, HistoryRow(n.created_at, who, "comment", f"commented: {n.body}")))
    for f in files:
        who = names.get(f.uploaded_by_id, f"#{f.uploaded_by_id}")
        lines.append(
            (f.uploaded_at, 2, HistoryRow(f.uploaded_at, who, "attachment", f"attached {f.file_name}"))
        )
    lines.sort(key=lambda t: (t[0], t[1]))
    return [line for _, _, line in lines]


def matches_for(db: Database, actor: Actor, break_id: int, *, limit: int = 20) -> list[dict[str, Any]]:
    """Live matches of the break's reconciliation that name one of its references (what an unmatch would undo)."""
    from sqlalchemy import String, cast

    from app.models import ReconMatch

    require(actor, Permission.VIEW)
    with db.read() as s:
        b = s.get(Break, break_id)
        if b is None:
            raise NotFound(f"The break #{break_id} does not exist (it may have been deleted).")
        refs = [r for r in (b.internal_ref, b.external_ref) if r]
        if not refs:
            return []
        # JSON arrays as text on both backends: '["T1", "T2"]'; the quoted reference is matched whole.
        named = [
            cast(col, String).like(f'%"{r}"%')
            for r in refs
            for col in (ReconMatch.left_refs, ReconMatch.right_refs)
        ]
        rows = s.execute(
            select(ReconMatch)
            .where(
                ReconMatch.definition_id == b.definition_id, ReconMatch.unmatched_at.is_(None), or_(*named)
            )
            .order_by(ReconMatch.id.desc())
            .limit(limit)
        ).scalars()
        return [
            {
                "id": m.id,
                "pass_name": m.pass_name,
                "left_refs": list(m.left_refs or []),
                "right_refs": list(m.right_refs or []),
                "matched_at": m.matched_at,
            }
            for m in rows
        ]


def trade_id_for_ref(db: Database, actor: Actor, trade_ref: str) -> int:
    """The id of the trade behind a break's internal reference (an amendment is proposed on the trade)."""
    from app.models import Trade

    require(actor, Permission.VIEW)
    with db.read() as s:
        found = s.scalar(select(Trade.id).where(Trade.trade_ref == trade_ref))
    if found is None:
        raise NotFound(
            f"There is no trade {trade_ref} to amend; the internal record is not a trade of the blotter."
        )
    return int(found)


def attachment_content(db: Database, actor: Actor, attachment_id: int) -> tuple[str, str, bytes]:
    """(file name, media type, content) of an attachment, to open or save it."""
    require(actor, Permission.VIEW)
    with db.read() as s:
        row = s.execute(
            select(Attachment.file_name, Attachment.media_type, Attachment.content).where(
                Attachment.id == attachment_id
            )
        ).first()
    if row is None:
        raise NotFound(f"The attachment #{attachment_id} does not exist.")
    return str(row.file_name), str(row.media_type), bytes(row.content)


# --- the approvals inbox --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxFilter:
    """Which corrections the inbox shows. Empty fields do not filter; ``statuses`` defaults to pending ones."""

    ids: tuple[int, ...] = ()
    statuses: tuple[str, ...] = (CorrectionStatus.PENDING.value,)
    kinds: tuple[str, ...] = ()
    item_type: str | None = None
    maker_id: int | None = None
    decidable_only: bool = False  # only what the signed-in user may decide
    older_than_hours: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InboxFilter:
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d or d[f.name] in (None, ""):
                continue
            v = d[f.name]
            if f.name == "ids":
                v = tuple(int(x) for x in v)
            elif f.name in ("statuses", "kinds"):
                v = (v,) if isinstance(v, str) else tuple(str(x) for x in v)
            kw[f.name] = v
        return cls(**kw)


@dataclass(frozen=True)
class ChangeRow:
    """One line of a correction's before/after."""

    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class InboxItem:
    id: int
    version: int
    kind: str
    status: str
    item_type: str
    item_id: int
    item_label: str
    changes: tuple[ChangeRow, ...]
    payload: dict[str, Any]
    reason: str
    amount: Decimal
    currency: str | None
    maker_id: int
    maker: str
    created_at: dt.datetime
    age_hours: float
    approvals: int
    required: int
    approvers: tuple[str, ...]
    may_decide: bool
    refusal: str | None  # why the signed-in user may not decide it, in words
    decision_comment: str | None
    bulk_allowed: bool = True  # above the threshold (two approvers) a correction is decided on its own


def change_rows(payload: Any) -> tuple[ChangeRow, ...]:
    """A correction's payload as before/after lines, whatever its kind.

    ``{field: {before, after}}`` (amendments) gives one line per field; a ``changes`` or ``fields`` mapping of that
    shape likewise; anything else (match refs, a write-off amount) is listed as proposed values.
    """
    if not isinstance(payload, Mapping):
        return (ChangeRow("value", None, payload),) if payload not in (None, "") else ()
    for nested in ("changes", "fields"):
        inner = payload.get(nested)
        if isinstance(inner, Mapping) and inner:
            rest = {k: v for k, v in payload.items() if k != nested}
            return change_rows(inner) + change_rows(rest)
    out: list[ChangeRow] = []
    for k, v in payload.items():
        if isinstance(v, Mapping) and ("before" in v or "after" in v):
            out.append(ChangeRow(str(k), v.get("before"), v.get("after")))
        elif isinstance(v, list | tuple):
            out.append(ChangeRow(str(k), None, ", ".join(str(x) for x in v)))
        elif isinstance(v, Mapping):
            out.append(ChangeRow(str(k), None, ", ".join(f"{a}={b}" for a, b in v.items())))
        else:
            out.append(ChangeRow(str(k), None, v))
    return tuple(out)


def refusal_for(
    actor: Actor,
    *,
    status: str,
    maker_id: int,
    last_editor_id: int | None | Iterable[int | None],
    approver_ids: Iterable[int],
) -> str | None:
    """Why ``actor`` may not decide a correction (the sentence shown in the inbox), or None when they may.

    The same rules the corrections service and the database enforce; here they only explain, never decide.
    """
    if not actor.can(Permission.APPROVE_CORRECTION):
        return f"{actor.username} ({actor.role.value}) may not approve corrections; this needs a supervisor."
    if status != CorrectionStatus.PENDING.value:
        return f"This correction is already {status.lower()}."
    if actor.user_id is not None and actor.user_id == maker_id:
        return "You proposed this correction: another supervisor must approve or reject it (four eyes)."
    editors = set(last_editor_id) if isinstance(last_editor_id, Iterable) else {last_editor_id}
    if actor.user_id is not None and actor.user_id in editors:
        return "You were the last to edit the item: another supervisor must approve or reject it (four eyes)."
    if actor.user_id is not None and actor.user_id in set(approver_ids):
        return "You have already approved it; it needs a second approver."
    return None


def _item_labels(s: Session, items: set[tuple[str, int]]) -> dict[tuple[str, int], str]:
    out: dict[tuple[str, int], str] = {}
    break_ids = [i for t, i in items if t in _BREAK_WORDS]
    if break_ids:
        rows = s.execute(
            select(Break.id, ReconDefinition.name, Break.internal_ref, Break.external_ref)
            .join(ReconDefinition, ReconDefinition.id == Break.definition_id)
            .where(Break.id.in_(break_ids))
        ).all()
        for i, name, iref, eref in rows:
            ref = iref or eref
            for word in _BREAK_WORDS:
                out[(word, int(i))] = f"Break #{i} · {name}" + (f" · {ref}" if ref else "")
    trade_ids = [i for t, i in items if t in ("trades", "trade")]
    if trade_ids:
        from app.models import Trade

        for i, ref in s.execute(select(Trade.id, Trade.trade_ref).where(Trade.id.in_(trade_ids))):
            out[("trades", int(i))] = out[("trade", int(i))] = f"Trade {ref}"
    for t, i in items:
        out.setdefault((t, i), f"{t.rstrip('s').replace('_', ' ').capitalize()} #{i}")
    return out


def approvals_inbox(
    db: Database,
    actor: Actor,
    filters: InboxFilter | None = None,
    *,
    limit: int = 2000,
    now: dt.datetime | None = None,
) -> list[InboxItem]:
    """Corrections the filter selects, oldest first, each with what the signed-in user may do about it."""
    require(actor, Permission.VIEW)
    flt = filters or InboxFilter()
    now = now or dt.datetime.now(dt.UTC)
    maker = aliased(User)
    conds: list[ColumnElement[bool]] = []
    if flt.ids:
        conds.append(Correction.id.in_(list(flt.ids)))
    if flt.statuses:
        conds.append(Correction.status.in_([CorrectionStatus(x) for x in flt.statuses]))
    if flt.kinds:
        conds.append(Correction.kind.in_([CorrectionKind(k) for k in flt.kinds]))
    if flt.item_type:
        conds.append(Correction.item_type == flt.item_type)
    if flt.maker_id is not None:
        conds.append(Correction.maker_id == flt.maker_id)
    if flt.older_than_hours is not None:
        conds.append(Correction.created_at < now - dt.timedelta(hours=flt.older_than_hours))
    if flt.decidable_only and actor.user_id is not None:
        # The cheap half of the rule in SQL; "already approved by me" is settled below.
        conds.append(Correction.maker_id != actor.user_id)
        conds.append(
            or_(Correction.item_last_editor_id.is_(None), Correction.item_last_editor_id != actor.user_id)
        )
    with db.read() as s:
        rows = s.execute(
            select(Correction, maker.username)
            .join(maker, maker.id == Correction.maker_id)
            .where(and_(True, *conds))
            .order_by(Correction.created_at, Correction.id)
            .limit(limit)
        ).all()
        ids = [c.id for c, _ in rows]
        approvals: dict[int, list[tuple[int, str]]] = {}
        if ids:
            for cid, uid, name in s.execute(
                select(CorrectionApproval.correction_id, CorrectionApproval.approver_id, User.username)
                .join(User, User.id == CorrectionApproval.approver_id)
                .where(
                    CorrectionApproval.correction_id.in_(ids),
                    CorrectionApproval.decision == Decision.APPROVE,
                )
                .order_by(CorrectionApproval.id)
            ):
                approvals.setdefault(int(cid), []).append((int(uid), str(name)))
        labels = _item_labels(s, {(c.item_type, int(c.item_id)) for c, _ in rows})
        # The last editor of a trade may have changed since the proposal; the corrections service asks again.
        trade_ids = [int(c.item_id) for c, _ in rows if c.item_type in ("trades", "trade")]
        trade_editors: dict[int, int | None] = {}
        if trade_ids:
            from app.models import Trade

            trade_editors = dict(
                s.execute(select(Trade.id, Trade.updated_by_id).where(Trade.id.in_(trade_ids))).all()
            )
        describe = _change_describer()
        changes = {c.id: describe(s, c) for c, _ in rows}
    out: list[InboxItem] = []
    for c, maker_name in rows:
        given = approvals.get(c.id, [])
        # Everyone who last edited an item the correction touches (the service keeps them in the payload).
        editors = {c.item_last_editor_id, *((c.payload or {}).get("editors") or [])}
        if c.item_type in ("trades", "trade"):
            editors.add(trade_editors.get(int(c.item_id)))
        refusal = refusal_for(
            actor,
            status=c.status.value,
            maker_id=c.maker_id,
            last_editor_id=editors,
            approver_ids=[u for u, _ in given],
        )
        if flt.decidable_only and refusal is not None:
            continue
        out.append(
            InboxItem(
                id=c.id,
                version=c.version,
                kind=c.kind.value,
                status=c.status.value,
                item_type=c.item_type,
                item_id=int(c.item_id),
                item_label=labels[(c.item_type, int(c.item_id))],
                changes=changes[c.id],
                payload={k: v for k, v in (c.payload or {}).items() if k != "editors"},
                reason=c.reason,
                amount=Decimal(c.amount or 0),
                currency=c.currency,
                maker_id=c.maker_id,
                maker=str(maker_name),
                created_at=c.created_at,
                age_hours=max(0.0, (now - c.created_at).total_seconds() / 3600),
                approvals=len(given),
                required=int(c.required_approvals),
                approvers=tuple(n for _, n in given),
                may_decide=refusal is None,
                refusal=refusal,
                decision_comment=c.decision_comment,
                bulk_allowed=int(c.required_approvals) == 1,
            )
        )
    return out


def _change_describer() -> Any:
    """The corrections service's own before/after of a correction (it knows each kind's payload)."""

    def describe(s: Session, c: Correction) -> tuple[ChangeRow, ...]:
        try:
            return tuple(ChangeRow(x.field, x.before, x.after) for x in field_changes(s, c))
        except Exception:  # a payload that service cannot read (hand-made, older) still shows its values
            return change_rows({k: v for k, v in (c.payload or {}).items() if k != "editors"})

    return describe


__all__ = [
    "AGE_BUCKETS",
    "DESK_CALENDAR",
    "ITEM_TYPE",
    "OPEN_STATUSES",
    "BreakDetail",
    "BreakFilter",
    "BreakPage",
    "BreakRow",
    "BreakSort",
    "BreakTotals",
    "InboxFilter",
    "InboxItem",
    "approvals_inbox",
    "break_detail",
    "change_rows",
    "choices",
    "position_of",
    "refusal_for",
    "side_by_side",
    "totals",
    "work_list",
]
