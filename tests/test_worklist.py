"""The read side of exception work, on both backends: the break work list (every filter, age buckets counted in
business days, keyset and offset paging in every order, totals), one break side by side, and the approvals inbox
with who may decide what.

Breaks are written straight into the tables (the engine is not needed to read them); expectations are computed in
Python from the inserted rows, ages with the calendar's own scalar function.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from app.models import Break, ReconDefinition
from app.models.enums import BreakStatus, BreakType, CorrectionKind, CorrectionStatus, Decision
from app.models.workflow import Attachment, Comment, Correction, CorrectionApproval
from app.services import concurrency
from app.services.calendars import business_days_between
from app.services.db import Database
from app.services.errors import NotFound, ValidationFailed
from app.services.permissions import Actor
from app.services.workflow import worklist
from app.services.workflow.worklist import (
    AGE_BUCKETS,
    DESK_CALENDAR,
    BreakFilter,
    BreakSort,
    InboxFilter,
    approvals_inbox,
    break_detail,
    totals,
    work_list,
)

TODAY = dt.date(2026, 11, 20)  # a Friday
N = 137
CATEGORIES = ("PRICE", "QUANTITY", "TIMING", None)
CAUSES = ("DMON", "DQUA", "DDAT", None)


def make_definitions(db: Database) -> list[int]:
    with db.write() as s:
        ids = []
        for name, left, right in (
            ("trades_vs_confirmations", "trades", "confirmations"),
            ("cash_vs_bank", "cash", "bank statements"),
        ):
            d = ReconDefinition(name=name, left_source=left, right_source=right, config={"passes": []})
            s.add(d)
            s.flush()
            ids.append(d.id)
    return ids


def break_row(i: int, rnd: random.Random, definition_id: int, today: dt.date, **over: Any) -> dict[str, Any]:
    """One break as a Core insert row, opened up to 30 calendar days before ``today`` at a random hour (UTC)."""
    kind = [BreakType.FIELD_MISMATCH, BreakType.MISSING_EXTERNAL, BreakType.MISSING_INTERNAL][i % 3]
    ref = f"T{i:05d}"
    internal = {"trade_ref": ref, "isin": "US0378331005", "quantity": "100", "amount": f"{1000 + i}.00"}
    external = dict(internal, quantity="90") if kind is BreakType.FIELD_MISMATCH else dict(internal)
    differences = (
        [{"field": "quantity", "internal": "100", "external": "90"}]
        if kind is BreakType.FIELD_MISMATCH
        else []
    )
    opened = dt.datetime.combine(
        today - dt.timedelta(days=rnd.randrange(31)),
        dt.time(rnd.randrange(24), rnd.randrange(60)),
        tzinfo=dt.UTC,
    )
    row = dict(
        definition_id=definition_id,
        fingerprint=hashlib.sha256(f"{definition_id}:{i}".encode()).hexdigest(),
        break_type=kind,
        status=[BreakStatus.OPEN, BreakStatus.ASSIGNED, BreakStatus.PROPOSED, BreakStatus.RESOLVED][i % 4],
        category=CATEGORIES[i % 4],
        root_cause=CAUSES[(i // 4) % 4],
        internal_ref=None if kind is BreakType.MISSING_INTERNAL else ref,
        external_ref=None if kind is BreakType.MISSING_EXTERNAL else f"EXT-{i:05d}",
        internal_record=None if kind is BreakType.MISSING_INTERNAL else internal,
        external_record=None if kind is BreakType.MISSING_EXTERNAL else external,
        differences=differences,
        amount=Decimal(rnd.randrange(-500_000, 500_000)) / 100,
        currency=rnd.choice(["USD", "EUR", "GBP"]),
        as_of_date=opened.date(),
        opened_at=opened,
        owner_id=None,
    )
    row.update(over)
    return row


def seed_breaks(
    db: Database, users: dict[str, Actor], n: int = N, *, today: dt.date = TODAY, seed: int = 5
) -> list[dict[str, Any]]:
    """``n`` breaks over two recon definitions; owners clerk1, clerk2 or nobody. Returns the rows with their ids."""
    defs = make_definitions(db)
    rnd = random.Random(seed)
    owners = [users["clerk1"].user_id, users["clerk2"].user_id, None]
    rows = [break_row(i, rnd, defs[i % 2], today, owner_id=owners[(i // 4) % 3]) for i in range(n)]
    with db.write() as s:
        s.execute(insert(Break), rows)
        ids = dict(s.execute(select(Break.fingerprint, Break.id)).all())
    for r in rows:
        r["id"] = ids[r["fingerprint"]]
    return rows


def age_of(r: dict[str, Any], actor: Actor, today: dt.date = TODAY) -> int:
    opened = r["opened_at"].astimezone(ZoneInfo(actor.timezone)).date()
    return max(0, business_days_between(DESK_CALENDAR, opened, today))


def read_all(db: Database, actor: Actor, flt: BreakFilter, sort: BreakSort, limit: int = 25) -> list[int]:
    """Every break of the filter, paged by keyset."""
    out: list[int] = []
    after = None
    while True:
        page = work_list(db, actor, flt, sort, limit=limit, after=after, today=TODAY)
        out += [r.id for r in page.rows]
        if not page.more:
            return out
        after = page.last_key


def ids_where(rows: list[dict[str, Any]], keep: Any) -> set[int]:
    return {r["id"] for r in rows if keep(r)}


@pytest.fixture
def book(db: Database, users: dict[str, Actor]) -> list[dict[str, Any]]:
    return seed_breaks(db, users)


# --- the work list ----------------------------------------------------------------------------------------------


def test_each_filter_selects_what_it_says(
    db: Database, users: dict[str, Actor], book: list[dict[str, Any]]
) -> None:
    clerk = users["clerk1"]
    sort = BreakSort("id")
    defs = sorted({r["definition_id"] for r in book})
    cases: list[tuple[BreakFilter, Any]] = [
        (BreakFilter(), lambda r: True),
        (BreakFilter(definition_ids=(defs[1],)), lambda r: r["definition_id"] == defs[1]),
        (
            BreakFilter(break_types=("MISSING_EXTERNAL",)),
            lambda r: r["break_type"] is BreakType.MISSING_EXTERNAL,
        ),
        (
            BreakFilter(statuses=("OPEN", "ASSIGNED")),
            lambda r: r["status"] in (BreakStatus.OPEN, BreakStatus.ASSIGNED),
        ),
        (BreakFilter(category="PRICE"), lambda r: r["category"] == "PRICE"),
        (BreakFilter(root_cause="ddat"), lambda r: r["root_cause"] == "DDAT"),
        (BreakFilter(mine=True), lambda r: r["owner_id"] == clerk.user_id),
        (BreakFilter(unassigned=True), lambda r: r["owner_id"] is None),
        (BreakFilter(owner_id=users["clerk2"].user_id), lambda r: r["owner_id"] == users["clerk2"].user_id),
        (
            BreakFilter(amount_min=Decimal("1000"), amount_max=Decimal("2500")),
            lambda r: Decimal(1000) <= abs(r["amount"]) <= Decimal(2500),
        ),
        (BreakFilter(currency="gbp"), lambda r: r["currency"] == "GBP"),
        (
            BreakFilter(text="T0004"),
            lambda r: "T0004" in (r["internal_ref"] or "") + (r["external_ref"] or ""),
        ),
        (
            BreakFilter(ids=(book[3]["id"], book[7]["id"])),
            lambda r: r["id"] in (book[3]["id"], book[7]["id"]),
        ),
        (
            BreakFilter(mine=True, statuses=("ASSIGNED",), currency="USD"),
            lambda r: (
                r["owner_id"] == clerk.user_id
                and r["status"] is BreakStatus.ASSIGNED
                and r["currency"] == "USD"
            ),
        ),
    ]
    for flt, keep in cases:
        expected = ids_where(book, keep)
        assert expected or flt == BreakFilter(mine=True, statuses=("ASSIGNED",), currency="USD"), flt
        assert set(read_all(db, clerk, flt, sort)) == expected, flt
        assert totals(db, clerk, flt, today=TODAY).count == len(expected), flt


def test_age_buckets_and_older_than_count_business_days(
    db: Database, users: dict[str, Actor], book: list[dict[str, Any]]
) -> None:
    clerk = users["clerk2"]  # New York: the user's own dates decide a break's opening day
    sort = BreakSort("opened_at")
    seen: set[int] = set()
    for bucket, (lo, hi) in AGE_BUCKETS.items():
        expected = ids_where(
            book, lambda r, lo=lo, hi=hi: lo <= age_of(r, clerk) and (hi is None or age_of(r, clerk) <= hi)
        )
        got = read_all(db, clerk, BreakFilter(age_bucket=bucket), sort)
        assert set(got) == expected, bucket
        assert not seen & expected
        seen |= expected
    assert seen == {r["id"] for r in book}  # the buckets cover every break exactly once
    for n in (0, 3, 10):
        expected = ids_where(book, lambda r, n=n: age_of(r, clerk) > n)
        assert set(read_all(db, clerk, BreakFilter(older_than_days=n), sort)) == expected
    # Each row carries its age, the same as the calendar's count.
    by_id = {r["id"]: r for r in book}
    for row in work_list(db, clerk, BreakFilter(), sort, limit=N, today=TODAY).rows:
        assert row.age == age_of(by_id[row.id], clerk)
    with pytest.raises(ValidationFailed, match="age bucket"):
        work_list(db, clerk, BreakFilter(age_bucket="3-4"), today=TODAY)


@pytest.mark.parametrize("key", sorted(worklist.SORTABLE))
def test_keyset_and_offset_pages_follow_every_order(
    db: Database, users: dict[str, Actor], book: list[dict[str, Any]], key: str
) -> None:
    actor = users["supervisor"]
    flt = BreakFilter(statuses=("OPEN", "ASSIGNED", "PROPOSED"))
    keep = [r for r in book if r["status"] is not BreakStatus.RESOLVED]
    for desc in (False, True):
        sort = BreakSort(key, desc)

        def k(r: dict[str, Any]) -> Any:
            v = r[key]
            return getattr(v, "value", v)

        expected = [r["id"] for r in sorted(keep, key=lambda r: (k(r), r["id"]), reverse=desc)]
        assert read_all(db, actor, flt, sort, limit=17) == expected
        by_offset = []
        for offset in range(0, len(expected), 20):
            by_offset += [
                r.id for r in work_list(db, actor, flt, sort, limit=20, offset=offset, today=TODAY).rows
            ]
        assert by_offset == expected
        target = expected[len(expected) // 2]
        assert worklist.position_of(db, actor, flt, sort, target, today=TODAY) == len(expected) // 2


def test_totals_add_the_amount_at_stake_by_currency(
    db: Database, users: dict[str, Actor], book: list[dict[str, Any]]
) -> None:
    flt = BreakFilter(statuses=("OPEN",))
    got = totals(db, users["clerk1"], flt, today=TODAY)
    rows = [r for r in book if r["status"] is BreakStatus.OPEN]
    assert got.count == len(rows)
    expected: dict[str, Decimal] = {}
    for r in rows:
        expected[r["currency"]] = expected.get(r["currency"], Decimal(0)) + abs(r["amount"])
    assert got.by_currency == {c: v.quantize(Decimal("0.01")) for c, v in expected.items()}
    assert got.by_status == {"OPEN": len(rows)}


def test_a_bad_sort_or_page_is_refused(db: Database, users: dict[str, Actor]) -> None:
    with pytest.raises(ValidationFailed, match="cannot be sorted"):
        work_list(db, users["clerk1"], BreakFilter(), BreakSort("fingerprint"))
    with pytest.raises(ValidationFailed, match="page holds"):
        work_list(db, users["clerk1"], BreakFilter(), limit=0)


# --- one break --------------------------------------------------------------------------------------------------


def test_detail_shows_both_records_side_by_side_with_differences_marked(
    db: Database, users: dict[str, Actor], book: list[dict[str, Any]]
) -> None:
    clerk = users["clerk1"]
    mismatch = next(r for r in book if r["break_type"] is BreakType.FIELD_MISMATCH and r["owner_id"] is None)
    with db.write() as s:
        concurrency.claim(s, clerk, Break, mismatch["id"])
        s.add(
            Comment(
                item_type="breaks", item_id=mismatch["id"], author_id=clerk.user_id, body="Asked the broker."
            )
        )
        s.add(
            Attachment(
                item_type="breaks",
                item_id=mismatch["id"],
                file_name="confirm.pdf",
                media_type="application/pdf",
                content=b"%PDF-1.4 demo",
                sha256=hashlib.sha256(b"%PDF-1.4 demo").hexdigest(),
                uploaded_by_id=clerk.user_id,
            )
        )
    d = break_detail(db, users["auditor"], mismatch["id"], today=TODAY)
    assert (d.break_type, d.recon) == ("FIELD_MISMATCH", d.recon)
    assert d.differing == ["quantity"]
    by_field = {f.field: f for f in d.fields}
    assert (by_field["quantity"].internal, by_field["quantity"].external) == ("100", "90")
    assert not by_field["isin"].differs and by_field["isin"].internal == by_field["isin"].external
    assert [f.field for f in d.fields][0] == "quantity"  # what differs comes first
    assert sorted(f.field for f in d.fields) == ["amount", "isin", "quantity", "trade_ref"]
    assert d.owner == "clerk1" and d.claimed_at is not None
    assert d.age == age_of(mismatch, users["auditor"])
    assert [c.body for c in d.comments] == ["Asked the broker."] and d.comments[0].author == "clerk1"
    assert [(a.file_name, a.size, a.uploaded_by) for a in d.attachments] == [("confirm.pdf", 13, "clerk1")]
    assert worklist.attachment_content(db, clerk, d.attachments[0].id) == (
        "confirm.pdf",
        "application/pdf",
        b"%PDF-1.4 demo",
    )
    assert d.history[0].action == "breaks.claim"  # then the note and the file, written together
    assert sorted(h.text for h in d.history[1:]) == ["attached confirm.pdf", "commented: Asked the broker."]
    assert d.history[0].who == "clerk1" and "claimed by clerk1" in d.history[0].text

    missing = next(r for r in book if r["break_type"] is BreakType.MISSING_INTERNAL)
    d2 = break_detail(db, clerk, missing["id"], today=TODAY)
    assert d2.internal_record is None and d2.external_record is not None
    assert all(f.internal is None and f.external is not None and not f.differs for f in d2.fields)
    with pytest.raises(NotFound):
        break_detail(db, clerk, 10**9)


def test_payloads_read_as_before_and_after() -> None:
    rows = worklist.change_rows({"fields": {"price": {"before": "10", "after": "11"}}, "break_ids": [3, 4]})
    assert [(r.field, r.before, r.after) for r in rows] == [
        ("price", "10", "11"),
        ("break_ids", None, "3, 4"),
    ]


def test_side_by_side_without_the_engines_word_compares_values() -> None:
    rows = worklist.side_by_side(
        {"qty": "100.00", "ccy": "USD", "x": 1}, {"qty": 100, "ccy": "EUR", "y": 2}, []
    )
    by = {r.field: r for r in rows}
    assert not by["qty"].differs and by["ccy"].differs
    assert by["x"].only == "internal" and by["y"].only == "external"


# --- the approvals inbox ----------------------------------------------------------------------------------------


def propose(
    db: Database,
    maker: Actor,
    break_id: int,
    *,
    amount: str = "150.00",
    required: int = 1,
    last_editor: int | None = None,
) -> int:
    with db.write() as s:
        c = Correction(
            kind=CorrectionKind.WRITE_OFF,
            item_type="breaks",
            item_id=break_id,
            item_version=1,
            payload={
                "break_ids": [break_id],
                "status_before": "ASSIGNED",
                "status_after": "WRITTEN_OFF",
                "amount": amount,
                "editors": [last_editor if last_editor is not None else maker.user_id],
            },
            reason="Rounding on the broker's side",
            amount=Decimal(amount),
            currency="USD",
            status=CorrectionStatus.PENDING,
            maker_id=maker.user_id,
            item_last_editor_id=last_editor if last_editor is not None else maker.user_id,
            required_approvals=required,
        )
        s.add(c)
        s.flush()
        return c.id


def test_the_inbox_says_who_may_decide_and_why_not(
    db: Database, users: dict[str, Actor], book: list[dict[str, Any]]
) -> None:
    by_clerk = propose(db, users["clerk1"], book[0]["id"])
    by_sup = propose(db, users["supervisor"], book[1]["id"], amount="250000.00", required=2)
    edited_by_sup2 = propose(db, users["clerk2"], book[2]["id"], last_editor=users["supervisor2"].user_id)
    with db.write() as s:  # supervisor2 gave the first of two approvals on the big one
        s.add(
            CorrectionApproval(
                correction_id=by_sup,
                approver_id=users["supervisor2"].user_id,
                maker_id=users["supervisor"].user_id,
                item_last_editor_id=users["supervisor"].user_id,
                decision=Decision.APPROVE,
            )
        )

    def view(who: str, **kw: Any) -> dict[int, worklist.InboxItem]:
        return {i.id: i for i in approvals_inbox(db, users[who], InboxFilter(**kw))}

    sup = view("supervisor")
    assert list(sup) == [by_clerk, by_sup, edited_by_sup2]  # oldest first
    assert sup[by_clerk].may_decide and sup[by_clerk].refusal is None
    assert not sup[by_sup].may_decide and "You proposed this correction" in (sup[by_sup].refusal or "")
    assert (sup[by_sup].approvals, sup[by_sup].required, sup[by_sup].approvers) == (1, 2, ("supervisor2",))
    assert sup[by_clerk].maker == "clerk1" and sup[by_clerk].item_label.startswith(f"Break #{book[0]['id']}")
    assert [(c.field, c.before, c.after) for c in sup[by_clerk].changes] == [
        ("status", "ASSIGNED", "WRITTEN_OFF"),
        ("written off", None, "150.00 USD"),
    ]
    assert sup[by_clerk].bulk_allowed and not sup[by_sup].bulk_allowed

    sup2 = view("supervisor2")
    assert sup2[by_clerk].may_decide
    assert "already approved" in (sup2[by_sup].refusal or "")
    assert "last to edit" in (sup2[edited_by_sup2].refusal or "")
    assert set(view("supervisor2", decidable_only=True)) == {by_clerk}

    clerk = view("clerk2")
    assert not any(i.may_decide for i in clerk.values())
    assert "needs a supervisor" in (clerk[by_clerk].refusal or "")

    assert set(view("supervisor", ids=(by_sup,))) == {by_sup}
    assert view("supervisor", statuses=("APPROVED",)) == {}
