"""The settlement queue's reads and actions, on SQLite and PostgreSQL.

A small book is written through Core inserts: four markets in three time zones, instruments (an equity, a bond
traded free of payment), counterparties, accounts and a few hundred instructions in every status, some claimed. The
expectations are computed in Python from the rows inserted: every filter, every sort page by page, totals by
currency, group counts, the refresh window; then the actions: two clerks racing for one claim, bulk actions with
refused items, escalation, and the detail of one instruction.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert, select

from app.models import (
    Account,
    AuditEntry,
    CashMovement,
    Comment,
    Counterparty,
    FailPenalty,
    InstructionTrade,
    Instrument,
    Market,
    MarketHoliday,
    SecuritiesMovement,
    SettlementInstruction,
    SettlementMessage,
    utcnow,
)
from app.models.enums import InstructionStatus, MessageDirection, MessageStatus, TradeStatus
from app.services import paging
from app.services.db import Database
from app.services.errors import AlreadyClaimed, PermissionDenied, ValidationFailed
from app.services.interrupt import Interrupted
from app.services.permissions import Actor
from app.services.settlement import actions, queue
from app.services.settlement.queue import COL, QueueFilter, Sort

from . import factories
from .helpers import WON, every_row, race

S = InstructionStatus
N = 263  # not a multiple of the page size
AS_OF = dt.date(2026, 11, 20)  # a Friday
MARKETS = [
    # mic, zone, cutoff, calendar
    ("XNYS", "America/New_York", dt.time(15, 0), "XNYS"),
    ("XETR", "Europe/Berlin", dt.time(16, 0), "XETR"),
    ("XLON", "Europe/London", dt.time(16, 30), "XLON"),
    ("XTKS", "Asia/Tokyo", dt.time(14, 0), "XTKS"),
]
INSTRUMENTS = [
    # isin, name, asset class, currency, market index, price
    ("US0378331005", "Apple Inc", "EQUITY", "USD", 0, Decimal("190")),
    ("DE0007164600", "SAP SE", "EQUITY", "EUR", 1, Decimal("120")),
    ("GB0002634946", "BAE Systems", "EQUITY", "GBP", 2, Decimal("12")),
    ("DE0001102580", "Bund 2032", "GOVT_BOND", "EUR", 1, Decimal("98.5")),
    ("JP3633400001", "Toyota Motor", "EQUITY", "JPY", 3, Decimal("2800")),
]
CPTYS = ["ALPHA", "BETA", "GAMMA"]
ACCOUNTS = ["ACC1", "ACC2"]
STATUSES = list(S)
REASONS = {
    S.FAILED: ["LACK", "MONY", "CMIS"],
    S.INSTRUCTED: ["CMIS", "DDAT", None],
    S.PARTIALLY_SETTLED: ["LACK"],
}


def _reference(s: Any) -> dict[str, dict[Any, int]]:
    now = utcnow()
    ids: dict[str, dict[Any, int]] = {"market": {}, "instrument": {}, "cpty": {}, "account": {}}
    for mic, zone, cutoff, cal in MARKETS:
        ids["market"][mic] = s.execute(
            insert(Market)
            .values(
                mic=mic,
                name=f"{mic} market",
                country=mic[1:3],
                timezone=zone,
                calendar_code=cal,
                instruction_cutoff=cutoff,
                default_settlement_cycle=2,
                version=1,
                created_at=now,
                updated_at=now,
            )
            .returning(Market.id)
        ).scalar_one()
    for isin, name, ac, ccy, m, price in INSTRUMENTS:
        ids["instrument"][isin] = s.execute(
            insert(Instrument)
            .values(
                isin=isin,
                name=name,
                asset_class=ac,
                currency=ccy,
                market_id=ids["market"][MARKETS[m][0]],
                settlement_cycle=2,
                liquidity="SOVEREIGN_DEBT" if ac == "GOVT_BOND" else "LIQUID_SHARE",
                reference_price=price,
                contract_size=Decimal(1),
                version=1,
                created_at=now,
                updated_at=now,
            )
            .returning(Instrument.id)
        ).scalar_one()
    for i, code in enumerate(CPTYS):
        ids["cpty"][code] = s.execute(
            insert(Counterparty)
            .values(
                code=code,
                name=f"{code.title()} Securities",
                lei=f"5493000000000000{i:04d}"[:20],
                bic=f"{code[:4]}GB2L",
                country="GB",
                version=1,
                created_at=now,
                updated_at=now,
            )
            .returning(Counterparty.id)
        ).scalar_one()
    for code in ACCOUNTS:
        ids["account"][code] = s.execute(
            insert(Account)
            .values(
                code=code,
                name=f"Account {code}",
                account_type="CLIENT",
                kyc_status="APPROVED",
                segregation="SEGREGATED",
                base_currency="EUR",
                version=1,
                created_at=now,
                updated_at=now,
            )
            .returning(Account.id)
        ).scalar_one()
    return ids


def _instruction(
    i: int, rnd: random.Random, ids: dict[str, dict[Any, int]], owners: list[int | None]
) -> dict:
    status = STATUSES[i % len(STATUSES)]
    isin, _name, ac, ccy, _m, price = INSTRUMENTS[rnd.randrange(len(INSTRUMENTS))]
    free = ac == "GOVT_BOND"
    qty = Decimal(rnd.randrange(1, 40) * 100)
    amount = Decimal(0) if free else (qty * price).quantize(Decimal("0.01"))
    settled_q = {S.SETTLED: qty, S.PARTIALLY_SETTLED: qty / 2}.get(status, Decimal(0))
    settled_a = {S.SETTLED: amount, S.PARTIALLY_SETTLED: amount / 2}.get(status, Decimal(0))
    reason = rnd.choice(REASONS[status]) if status in REASONS else None
    isd = AS_OF + dt.timedelta(days=rnd.randrange(-12, 5))
    now = utcnow()
    return dict(
        instruction_ref=f"SEME{i:06d}",
        instruction_type=("DFP" if rnd.random() < 0.5 else "RFP") if free else rnd.choice(["DVP", "RVP"]),
        is_netted=False,
        account_id=ids["account"][rnd.choice(ACCOUNTS)],
        counterparty_id=ids["cpty"][rnd.choice(CPTYS)],
        instrument_id=ids["instrument"][isin],
        quantity=qty,
        settlement_amount=amount,
        currency=ccy,
        trade_date=isd - dt.timedelta(days=2),
        intended_settlement_date=isd,
        settled_quantity=settled_q,
        settled_amount=settled_a,
        status=status,
        reason_code=reason,
        reason_text=f"reason {reason}" if reason else None,
        counterparty_ref=f"THEIR{i:05d}" if i % 4 else None,
        owner_id=owners[i % len(owners)],
        claimed_at=now if owners[i % len(owners)] else None,
        version=1,
        created_at=now,
        updated_at=now - dt.timedelta(seconds=rnd.randrange(100000)),
    )


@pytest.fixture
def book(db: Database, users: dict[str, Actor]) -> list[dict[str, Any]]:
    rnd = random.Random(5)
    owners = [None, None, None, users["clerk1"].user_id, users["clerk2"].user_id]
    with db.write() as s:
        ids = _reference(s)
        rows = [_instruction(i, rnd, ids, owners) for i in range(N)]
        s.execute(insert(SettlementInstruction), rows)
        by_ref = dict(
            s.execute(select(SettlementInstruction.instruction_ref, SettlementInstruction.id)).all()
        )
        # Penalties on some failed instructions, in their currency.
        for r in rows:
            r["id"] = by_ref[r["instruction_ref"]]
            r["penalty"] = Decimal(0)
            if r["status"] is S.FAILED and r["id"] % 2:
                for day in (1, 2):
                    amt = Decimal("1.25") * day
                    s.add(
                        FailPenalty(
                            instruction_id=r["id"],
                            penalty_date=r["intended_settlement_date"] + dt.timedelta(days=day),
                            reference_value=Decimal(1000),
                            rate_bp=Decimal(1),
                            amount=amt,
                            currency=r["currency"],
                        )
                    )
                    r["penalty"] += amt
    inv = {v: k for k, v in ids["cpty"].items()}
    acc = {v: k for k, v in ids["account"].items()}
    ins = {v: k for k, v in ids["instrument"].items()}
    for r in rows:
        r["cpty"] = inv[r["counterparty_id"]]
        r["account"] = acc[r["account_id"]]
        r["isin"] = ins[r["instrument_id"]]
        r["mic"] = MARKETS[next(x[4] for x in INSTRUMENTS if x[0] == r["isin"])][0]
    return rows


# --- helpers --------------------------------------------------------------------------------------------------------


def all_pages(db: Database, actor: Actor, flt: QueueFilter, sort: Sort, limit: int = 40) -> list[tuple]:
    return every_row(queue.fetch_page, db, actor, flt, sort, limit)


def refs(rows: list[tuple]) -> list[str]:
    return [r[COL["instruction_ref"]] for r in rows]


def expected(
    book: list[dict], pred: Any, key: str = "intended_settlement_date", desc: bool = False
) -> list[str]:
    rows = [r for r in book if pred(r)]
    unique = key in ("instruction_ref", "id")

    def k(r: dict) -> tuple:
        v = r[key]
        v = getattr(v, "value", v)
        return (v,) if unique else (v, r["id"])

    return [r["instruction_ref"] for r in sorted(rows, key=k, reverse=desc)]


OPEN = {s.value for s in (S.PENDING, S.INSTRUCTED, S.MATCHED, S.PARTIALLY_SETTLED, S.FAILED)}


def at_stake(r: dict) -> Decimal:
    if r["status"].value not in OPEN:
        return Decimal(0)
    if r["instruction_type"] in ("DFP", "RFP"):
        price = next(x[5] for x in INSTRUMENTS if x[0] == r["isin"])
        return (r["quantity"] - r["settled_quantity"]) * price / 100  # the bond: % of nominal
    return abs(r["settlement_amount"]) - abs(r["settled_amount"])


# --- reads ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(queue.SORTABLE))
@pytest.mark.parametrize("desc", [False, True])
def test_keyset_pages_follow_every_sort(db, users, book, key, desc) -> None:
    rows = all_pages(db, users["clerk1"], QueueFilter(), Sort(key, desc))
    assert refs(rows) == expected(book, lambda r: True, key, desc)


def test_pages_from_the_end_by_offset_and_backwards_agree_with_the_keyset_walk(db, users, book) -> None:
    actor, flt, sort = users["clerk1"], QueueFilter(), Sort("settlement_amount", True)
    whole = all_pages(db, actor, flt, sort)
    last = queue.fetch_page(db, actor, flt, sort, limit=30, from_end=True)
    assert last.rows == whole[-30:]
    middle = queue.fetch_page(db, actor, flt, sort, limit=25, offset=100)
    assert middle.rows == whole[100:125]
    above = queue.fetch_page(db, actor, flt, sort, limit=25, before=middle.first_key)
    assert above.rows == whole[75:100]
    from_end = queue.fetch_page(db, actor, flt, sort, limit=20, from_end=True, offset=50)
    assert from_end.rows == whole[-70:-50]


@pytest.mark.parametrize(
    ("flt", "sort"),
    [
        (QueueFilter(), Sort()),
        (QueueFilter(), Sort("instruction_ref", True)),
        (QueueFilter(statuses=("FAILED", "PARTIALLY_SETTLED")), Sort("settlement_amount", True)),
        (QueueFilter(counterparty=CPTYS[0]), Sort("updated_at")),
    ],
    ids=["settle date", "ref desc (unique)", "statuses by amount", "counterparty by updated"],
)
def test_a_jump_by_offset_reads_the_same_rows_and_penalties_as_the_keyset_walk(
    db, users, book, flt, sort
) -> None:
    """A jump into the middle finds the page's ids first and reads their rows and penalties after: every page it
    reads is the keyset walk's, penalties included (some pages hold penalised failed instructions)."""
    actor = users["clerk1"]
    whole = all_pages(db, actor, flt, sort)
    assert len(whole) > 50
    penalised = 0
    for offset in range(1, len(whole), 23):
        page = queue.fetch_page(db, actor, flt, sort, limit=20, offset=offset)
        assert page.rows == whole[offset : offset + 20]
        penalised += sum(1 for r in page.rows if r[COL["penalty"]])
    if flt.statuses:
        assert penalised  # the penalties were read for the jumped-to rows, not lost in the two-step read


PLAN_CASES = [
    (QueueFilter(counterparty="beta"), Sort("settlement_amount", True), lambda r, u: r["cpty"] == "BETA"),
    (
        QueueFilter(statuses=("FAILED", "MATCHED"), isin="DE0007164600"),
        Sort("quantity"),
        lambda r, u: r["status"] in (S.FAILED, S.MATCHED) and r["isin"] == "DE0007164600",
    ),
    (
        QueueFilter(market="xetr", owner="mine"),
        Sort("status", True),
        lambda r, u: r["mic"] == "XETR" and r["owner_id"] == u["clerk1"].user_id,
    ),
    (
        QueueFilter(account="ACC1", reasons=("lack",)),
        Sort("instruction_ref"),
        lambda r, u: r["account"] == "ACC1" and r["reason_code"] == "LACK",
    ),
]


@pytest.mark.parametrize(
    ("plan", "probe_rows", "after_probe"),
    [
        (queue.PLANNER, 4000, None),
        (queue.FILTER_INDEX, 4000, None),
        (queue.SORT_INDEX, 10_000, None),  # SQLite: the probe fills each page but the last
        (queue.SORT_INDEX, 1, queue.SORT_INDEX),  # SQLite: the probe falls short, the walk goes on
        (
            queue.SORT_INDEX,
            1,
            queue.FILTER_INDEX,
        ),  # SQLite: the probe falls short, the matches are read and sorted
    ],
    ids=[
        "planner",
        "filter index",
        "sort index, probe fills",
        "probe short, walk",
        "probe short, filter index",
    ],
)
@pytest.mark.parametrize(
    ("flt", "sort", "pred"), PLAN_CASES, ids=["cpty", "status+isin", "market+mine", "unique"]
)
def test_every_access_path_pages_the_same_rows(
    db, users, book, monkeypatch, plan, probe_rows, after_probe, flt, sort, pred
) -> None:
    """The queue picks the access path of a filtered page itself (see queue._plan, queue._probe); every path must
    give exactly the same rows and penalties, by keyset forwards and backwards, from the end, by offset and around
    an item."""
    monkeypatch.setattr(queue, "_plan", lambda *_args: plan)
    monkeypatch.setattr(queue, "PROBE_ROWS", probe_rows)
    if after_probe is not None:
        monkeypatch.setattr(queue, "_after_probe", lambda *_args, **_kw: after_probe)
    actor = users["clerk1"]
    want = expected(book, lambda r: pred(r, users), sort.key, sort.descending)
    assert len(want) > 12, "the case needs a few pages"
    whole = all_pages(db, actor, flt, sort, limit=5)
    assert refs(whole) == want
    pens = {r["instruction_ref"]: r["penalty"] for r in book}
    assert [r[COL["penalty"]] or Decimal(0) for r in whole] == [pens[ref] for ref in want]
    third = queue.fetch_page(db, actor, flt, sort, limit=5, offset=10)
    assert third.rows == whole[10:15]
    assert queue.fetch_page(db, actor, flt, sort, limit=5, before=third.first_key).rows == whole[5:10]
    assert queue.fetch_page(db, actor, flt, sort, limit=4, from_end=True).rows == whole[-4:]
    assert queue.fetch_page(db, actor, flt, sort, limit=3, from_end=True, offset=2).rows == whole[-5:-2]
    top = whole[7][COL["id"]]
    w = queue.window(db, actor, flt, sort, top_row=0, top_id=top, visible=3, page_size=5)
    assert w.count == len(want) and w.top == 7 and w.start == 5 and w.rows == whole[5:10]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_the_plan_follows_how_many_rows_match(db, users, book, monkeypatch) -> None:
    """Few matches: read them through their index and sort them; many: walk the sort index (SQLite counts the
    matches through the filter's index; codes become ids through the reference cache)."""
    actor = users["clerk1"]
    queue._refs.clear()
    paging._cache.clear()
    by_amount = Sort("settlement_amount", True)
    with db.read() as session:
        conn = session.connection()
        for flt in (
            QueueFilter(counterparty="beta"),
            QueueFilter(isin="US0378331005"),
            QueueFilter(market="XTKS"),
            QueueFilter(statuses=("FAILED",), account="acc2"),
            QueueFilter(owner="mine"),
            QueueFilter(counterparty="NOSUCH"),  # a code nobody has: nothing to read
            QueueFilter(ids=(1, 2, 3)),
        ):
            assert queue._plan(conn, actor, flt, by_amount) == queue.FILTER_INDEX, flt
        # Sorted by the filtered column, its index does both; a text search or a date range: nothing to count.
        assert queue._plan(conn, actor, QueueFilter(statuses=("FAILED",)), Sort("status")) == queue.PLANNER
        assert queue._plan(conn, actor, QueueFilter(text="THEIR"), by_amount) == queue.PLANNER
        monkeypatch.setattr(queue, "FEW_ROWS", 20)
        beta = sum(1 for r in book if r["cpty"] == "BETA")
        failed = sum(1 for r in book if r["status"] is S.FAILED)
        assert (
            beta >= 20
            and queue._plan(conn, actor, QueueFilter(counterparty="beta"), by_amount) == queue.SORT_INDEX
        )
        # Two conditions narrow each other (taken as independent): a third of a tenth is below twenty rows.
        assert N * (beta / N) * (failed / N) < 20
        few = QueueFilter(counterparty="beta", statuses=("FAILED",))
        assert queue._plan(conn, actor, few, by_amount) == queue.FILTER_INDEX


@pytest.mark.parametrize("probe_rows", [1, 10_000], ids=["probe falls short", "probe fills the page"])
@pytest.mark.parametrize("text", ["SEME0001", "THEIR"])
@pytest.mark.parametrize(
    "sort", [Sort("settlement_amount", True), Sort("instruction_ref"), Sort("status", True)]
)
def test_a_reference_search_pages_the_same_rows_however_it_is_read(
    db, users, book, monkeypatch, probe_rows, text, sort
):
    """SQLite looks for a search's page among the next rows of the sort order first and, when they hold too few
    matches, reads the matches in table order and sorts them (queue._probe): either way, every page is the same."""
    monkeypatch.setattr(queue, "PROBE_ROWS", probe_rows)
    actor, flt = users["clerk1"], QueueFilter(text=text)
    want = expected(
        book,
        lambda r: text in r["instruction_ref"] or text in (r["counterparty_ref"] or ""),
        sort.key,
        sort.descending,
    )
    assert len(want) > 20
    whole = all_pages(db, actor, flt, sort, limit=7)
    assert refs(whole) == want
    first = queue.fetch_page(db, actor, flt, sort, limit=7)
    second = queue.fetch_page(db, actor, flt, sort, limit=7, after=first.last_key)
    third = queue.fetch_page(db, actor, flt, sort, limit=7, after=second.last_key)
    assert third.rows == whole[14:21]
    assert queue.fetch_page(db, actor, flt, sort, limit=7, before=third.first_key).rows == whole[7:14]
    assert queue.fetch_page(db, actor, flt, sort, limit=5, from_end=True).rows == whole[-5:]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_after_a_short_probe_the_read_of_fewer_rows_is_taken(db, users, book, monkeypatch) -> None:
    """The probe's matches say how far the sort-index walk would go; the filter's count, how many rows reading the
    matches costs; a search alone costs a scan of the table, SCAN_SPEEDUP times as fast a row."""
    actor, by_amount = users["clerk1"], Sort("settlement_amount", True)
    queue._refs.clear()
    paging._cache.clear()
    monkeypatch.setattr(queue, "PROBE_ROWS", 100)
    beta = QueueFilter(counterparty="beta")
    n_beta = sum(1 for r in book if r["cpty"] == "BETA")
    assert 60 < n_beta < 120
    with db.read() as session:
        conn = session.connection()

        def after(flt: QueueFilter, plan: str, found: int) -> str:
            return queue._after_probe(conn, actor, flt, by_amount, plan, found=found, limit=50)

        assert (
            after(beta, queue.SORT_INDEX, 0) == queue.FILTER_INDEX
        )  # none met: the walk could go on for ever
        assert after(beta, queue.SORT_INDEX, 10) == queue.FILTER_INDEX  # 500 rows to walk against the matches
        assert after(beta, queue.SORT_INDEX, 90) == queue.SORT_INDEX  # 56 rows to walk
        search = QueueFilter(text="SEME")
        assert after(search, queue.PLANNER, 90) == queue.FILTER_INDEX  # 56 rows against a scan worth 26
        monkeypatch.setattr(queue, "SCAN_SPEEDUP", 1.0)
        assert after(search, queue.PLANNER, 90) == queue.PLANNER  # 56 rows against a scan of 263


FILTERS: list[tuple[str, QueueFilter, Any]] = [
    (
        "settlement dates",
        QueueFilter(settlement_date_from=AS_OF - dt.timedelta(days=5), settlement_date_to=AS_OF),
        lambda r, u: AS_OF - dt.timedelta(days=5) <= r["intended_settlement_date"] <= AS_OF,
    ),
    (
        "statuses",
        QueueFilter(statuses=("FAILED", "MATCHED")),
        lambda r, u: r["status"] in (S.FAILED, S.MATCHED),
    ),
    ("reason", QueueFilter(reasons=("lack",)), lambda r, u: r["reason_code"] == "LACK"),
    ("counterparty", QueueFilter(counterparty="beta"), lambda r, u: r["cpty"] == "BETA"),
    ("market", QueueFilter(market="xetr"), lambda r, u: r["mic"] == "XETR"),
    ("account", QueueFilter(account="ACC2"), lambda r, u: r["account"] == "ACC2"),
    ("isin", QueueFilter(isin="US0378331005"), lambda r, u: r["isin"] == "US0378331005"),
    ("instrument name", QueueFilter(isin="toyota"), lambda r, u: r["isin"] == "JP3633400001"),
    ("currency", QueueFilter(currency="eur"), lambda r, u: r["currency"] == "EUR"),
    ("owner mine", QueueFilter(owner="mine"), lambda r, u: r["owner_id"] == u["clerk1"].user_id),
    ("owner unassigned", QueueFilter(owner="unassigned"), lambda r, u: r["owner_id"] is None),
    (
        "mine or unassigned",
        QueueFilter(owner="mine_or_unassigned"),
        lambda r, u: r["owner_id"] in (None, u["clerk1"].user_id),
    ),
    ("owner by name", QueueFilter(owner="clerk2"), lambda r, u: r["owner_id"] == u["clerk2"].user_id),
    (
        "failing only",
        QueueFilter(failing_only=True, as_of=AS_OF),
        lambda r, u: (
            r["status"] is S.FAILED or (r["status"].value in OPEN and r["intended_settlement_date"] < AS_OF)
        ),
    ),
    ("text", QueueFilter(text="THEIR0001"), lambda r, u: "THEIR0001" in (r["counterparty_ref"] or "")),
    (
        "combined",
        QueueFilter(statuses=("FAILED", "INSTRUCTED"), counterparty="ALPHA", owner="unassigned"),
        lambda r, u: (
            r["status"] in (S.FAILED, S.INSTRUCTED) and r["cpty"] == "ALPHA" and r["owner_id"] is None
        ),
    ),
]


@pytest.mark.parametrize(("name", "flt", "pred"), FILTERS, ids=[f[0] for f in FILTERS])
def test_every_filter_selects_what_it_says(db, users, book, name, flt, pred) -> None:
    actor = users["clerk1"]
    want = expected(book, lambda r: pred(r, users))
    assert want, f"the book must hold rows for the {name} filter"
    assert refs(all_pages(db, actor, flt, Sort())) == want
    assert queue.count(db, actor, flt) == len(want)


def test_drill_down_ids_show_exactly_those_instructions(db, users, book) -> None:
    chosen = [r["id"] for r in book[5:40:7]]
    rows = all_pages(db, users["clerk1"], QueueFilter(ids=tuple(chosen), ids_title="SLA breached"), Sort())
    assert sorted(r[COL["id"]] for r in rows) == sorted(chosen)
    assert "ids" not in QueueFilter(ids=(1, 2), statuses=("FAILED",)).as_dict()  # never saved in a view


def test_rows_carry_codes_value_at_stake_penalty_and_age(db, users, book) -> None:
    rows = all_pages(db, users["clerk1"], QueueFilter(as_of=AS_OF), Sort("id"))
    by_id = {r["id"]: r for r in book}
    for row in rows:
        want = by_id[row[COL["id"]]]
        assert row[COL["counterparty_code"]] == want["cpty"]
        assert row[COL["account_code"]] == want["account"]
        assert row[COL["isin"]] == want["isin"]
        assert row[COL["market_mic"]] == want["mic"]
        assert row[COL["value_at_stake"]] == at_stake(want).quantize(Decimal("0.01"))
        assert (row[COL["penalty"]] or Decimal(0)) == want["penalty"]
        open_late = want["status"].value in OPEN and want["intended_settlement_date"] < AS_OF
        assert (row[COL["age_days"]] > 0) == open_late


def test_ages_follow_each_markets_own_closures_when_two_markets_share_a_calendar(db, users, book) -> None:
    # US Treasuries settle on Fedwire, closed on Veterans Day while the NYSE trades: their market (XOFF) takes the
    # NYSE's calendar plus that closure. An equity failing on the NYSE since 10 November counts the 11th; the
    # Treasury failing since the same day does not. Business days in [10 Nov, 20 Nov): 8 on the NYSE, 7 on Fedwire.
    actor = users["clerk1"]
    now = utcnow()
    with db.write() as s:
        apple = s.execute(select(Instrument.id).where(Instrument.isin == "US0378331005")).scalar_one()
        nyse = s.execute(select(Market.id).where(Market.mic == "XNYS")).scalar_one()
        base = {"version": 1, "created_at": now, "updated_at": now}
        fedwire = s.execute(
            insert(Market)
            .values(
                mic="XOFF",
                name="US Treasuries OTC (Fedwire)",
                country="US",
                timezone="America/New_York",
                calendar_code="XNYS",
                instruction_cutoff=dt.time(15, 0),
                default_settlement_cycle=1,
                **base,
            )
            .returning(Market.id)
        ).scalar_one()
        s.add(
            MarketHoliday(
                market_id=fedwire, holiday_date=dt.date(2026, 11, 11), name="Veterans Day (Fedwire)"
            )
        )
        bond = s.execute(
            insert(Instrument)
            .values(
                isin="US91282CJL54",
                name="UST 4.5% 2033",
                asset_class="GOVT_BOND",
                currency="USD",
                market_id=fedwire,
                settlement_cycle=1,
                liquidity="SOVEREIGN_DEBT",
                reference_price=Decimal("99.5"),
                contract_size=Decimal(1),
                **base,
            )
            .returning(Instrument.id)
        ).scalar_one()
        template = next(r for r in book if r["status"] is S.FAILED)
        keep = {
            k: v for k, v in template.items() if k in SettlementInstruction.__table__.columns and k != "id"
        }
        for ref, instrument in (("SEME-NYSE-AGE", apple), ("SEME-FED-AGE", bond)):
            s.execute(
                insert(SettlementInstruction).values(
                    {**keep, "instruction_ref": ref, "instrument_id": instrument,
                     "intended_settlement_date": dt.date(2026, 11, 10), "owner_id": None, "claimed_at": None}
                )
            )  # fmt: skip
    assert nyse != fedwire
    queue.cutoffs(
        db, actor, now=dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
    )  # builds the markets' calendars
    rows = all_pages(db, actor, QueueFilter(text="-AGE", as_of=AS_OF), Sort("id"))
    ages = {r[COL["instruction_ref"]]: r[COL["age_days"]] for r in rows}
    assert ages == {"SEME-NYSE-AGE": 8, "SEME-FED-AGE": 7}


@pytest.mark.parametrize(
    "flt",
    [
        QueueFilter(statuses=("FAILED", "PARTIALLY_SETTLED", "SETTLED")),
        QueueFilter(),  # unfiltered: the penalties are read from their own table alone
        QueueFilter(counterparty="BETA"),
    ],
    ids=["statuses", "everything", "counterparty"],
)
def test_totals_by_currency(db, users, book, flt) -> None:
    totals = queue.totals(db, users["clerk1"], flt)
    chosen = [
        r
        for r in book
        if (not flt.statuses or r["status"].value in flt.statuses)
        and (not flt.counterparty or r["cpty"] == flt.counterparty)
    ]
    assert totals.count == len(chosen)
    assert set(totals.by_currency) == {r["currency"] for r in chosen}
    for ccy in {r["currency"] for r in chosen}:
        mine = [r for r in chosen if r["currency"] == ccy]
        t = totals.by_currency[ccy]
        assert t.count == len(mine)
        assert t.amount == sum((r["settlement_amount"] for r in mine), Decimal(0)).quantize(Decimal("0.01"))
        assert t.at_stake == sum((at_stake(r) for r in mine), Decimal(0)).quantize(Decimal("0.01"))
        pen = sum((r["penalty"] for r in mine), Decimal(0))
        assert totals.penalties.get(ccy, Decimal(0)) == pen


def test_totals_nobody_waits_for_stop_and_the_connection_stays_usable(db, users, book) -> None:
    actor, flt = users["clerk1"], QueueFilter()
    want = queue.totals(db, actor, flt)
    asked: list[bool] = []

    def cancelled() -> bool:
        asked.append(True)
        return True

    # Asked before each query (a few hundred rows are added up before the watcher's first look).
    with pytest.raises(Interrupted):
        queue.totals(db, actor, flt, cancelled=cancelled)
    assert asked
    # The pooled connection is handed back clean: the next reads run whole.
    assert queue.totals(db, actor, flt, cancelled=lambda: False) == want
    assert queue.count(db, actor, flt) == N


@pytest.mark.parametrize("by", queue.GROUP_BY)
@pytest.mark.parametrize("unassigned", [True, False], ids=["unassigned", "everything"])
def test_group_counts(db, users, book, by, unassigned) -> None:
    # Filtered and not: unfiltered, the totals come from the key's index and the failed ones apart.
    flt = QueueFilter(owner="unassigned") if unassigned else QueueFilter()
    got = {g.value: (g.count, g.failing) for g in queue.groups(db, users["clerk1"], flt, by)}
    field = {
        "status": lambda r: r["status"].value,
        "reason": lambda r: r["reason_code"],
        "counterparty": lambda r: r["cpty"],
        "market": lambda r: r["mic"],
        "settlement_date": lambda r: r["intended_settlement_date"],
    }[by]
    mine = [r for r in book if r["owner_id"] is None or not unassigned]
    counts = Counter(field(r) for r in mine)
    failing = Counter(field(r) for r in mine if r["status"] is S.FAILED)
    assert got == {k: (n, failing.get(k, 0)) for k, n in counts.items()}
    # A click on a group narrows the filter to exactly that group.
    value = next(iter(got))
    narrowed = queue.group_filter(flt, by, value)
    assert queue.count(db, users["clerk1"], narrowed) == got[value][0] or value is None


def test_window_keeps_the_top_instruction_and_finds_the_selected_ones(db, users, book) -> None:
    actor, flt, sort = users["clerk1"], QueueFilter(), Sort("intended_settlement_date")
    whole = all_pages(db, actor, flt, sort)
    top_id, picked = whole[57][COL["id"]], whole[61][COL["id"]]
    # Another workstation settles an instruction above the top row: the top one stays on top, one row higher.
    gone = whole[3][COL["id"]]
    with db.write() as s:
        s.get(SettlementInstruction, gone).intended_settlement_date = dt.date(2030, 1, 1)
    w = queue.window(
        db, actor, flt, sort, top_row=57, top_id=top_id, visible=10, track=[picked, 999_999], page_size=20
    )
    assert w.count == N and w.top == 56 and w.start == 40
    assert w.rows[w.top - w.start][COL["id"]] == top_id
    assert w.positions == {picked: 60, 999_999: None}
    assert [r[COL["id"]] for r in w.rows] == [
        r[COL["id"]] for r in all_pages(db, actor, flt, sort)[w.start : w.start + len(w.rows)]
    ]


def test_cutoffs_count_down_in_each_markets_zone(db, users, book) -> None:
    # Friday 20 Nov 2026 at 14:30 UTC: 09:30 in New York (cut-off 15:00 ahead), 15:30 in Berlin (16:00 ahead),
    # 14:30 in London (16:30 ahead), 23:30 in Tokyo (14:00 passed: next business day, Monday).
    now = dt.datetime(2026, 11, 20, 14, 30, tzinfo=dt.UTC)
    got = {c.mic: c for c in queue.cutoffs(db, users["clerk1"], now=now)}
    assert got["XNYS"].at == dt.datetime(2026, 11, 20, 20, 0, tzinfo=dt.UTC)
    assert got["XETR"].at == dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC)
    assert got["XLON"].at == dt.datetime(2026, 11, 20, 16, 30, tzinfo=dt.UTC)
    assert got["XTKS"].settlement_date == dt.date(2026, 11, 24)  # Monday 23 Nov is Labour Thanksgiving Day
    assert got["XTKS"].at == dt.datetime(2026, 11, 24, 5, 0, tzinfo=dt.UTC)
    for mic, c in got.items():
        due = [
            r
            for r in book
            if r["mic"] == mic
            and r["status"].value in OPEN
            and r["intended_settlement_date"] <= c.settlement_date
        ]
        assert c.due == len(due)
        assert c.failing == sum(1 for r in due if r["status"] is S.FAILED)


def test_detail_has_messages_trades_movements_penalties_and_history(db, users, book) -> None:
    r = next(r for r in book if r["status"] is S.FAILED and r["penalty"] and r["owner_id"] is None)
    trade_id = factories.make_trade(db, "T-DETAIL", TradeStatus.FAILED)
    with db.write() as s:
        s.add(InstructionTrade(instruction_id=r["id"], trade_id=trade_id))
        s.add(
            SettlementMessage(
                direction=MessageDirection.INBOUND,
                message_type="MT548",
                reference="STAT1",
                related_reference=r["instruction_ref"],
                instruction_id=r["id"],
                status=MessageStatus.APPLIED,
                content_hash="h1",
                raw=":20C::SEME//STAT1",
                parsed={"reason_code": "LACK"},
            )
        )
        s.add(
            SecuritiesMovement(
                account_id=r["account_id"],
                instrument_id=r["instrument_id"],
                kind="TRADED",
                quantity=r["quantity"],
                value_date=r["trade_date"],
                instruction_id=r["id"],
            )
        )
        s.add(
            CashMovement(
                account_id=r["account_id"],
                currency=r["currency"],
                kind="TRADED",
                amount=-r["settlement_amount"],
                value_date=r["trade_date"],
                instruction_id=r["id"],
            )
        )
    actions.claim(db, users["clerk1"], r["id"])
    d = queue.detail(db, users["auditor"], r["id"])
    assert d.instruction["instruction_ref"] == r["instruction_ref"]
    assert d.instruction["counterparty_code"] == r["cpty"] and d.instruction["owner"] == "clerk1"
    assert [(m["message_type"], m["reason_codes"]) for m in d.messages] == [("MT548", ["LACK"])]
    assert [t["trade_ref"] for t in d.trades] == ["T-DETAIL"]
    assert len(d.securities_movements) == 1 and len(d.cash_movements) == 1
    assert d.penalty_total == r["penalty"] and len(d.penalties) == 2
    assert [h["action"] for h in d.history] == ["settlement_instructions.claim"]


# --- actions --------------------------------------------------------------------------------------------------------


def test_exactly_one_of_two_clerks_claims_an_instruction(db, users, book) -> None:
    item = next(r for r in book if r["owner_id"] is None)["id"]
    other = Database(db.url)  # another workstation: its own pool
    outcomes = race(
        {
            "clerk1": lambda: actions.claim(db, users["clerk1"], item),
            "clerk2": lambda: actions.claim(other, users["clerk2"], item),
        },
        AlreadyClaimed,
    )
    other.dispose()
    winners = [n for n, o in outcomes.items() if o == WON]
    losers = [o for o in outcomes.values() if isinstance(o, AlreadyClaimed)]
    assert len(winners) == 1 and len(losers) == 1
    assert f"claimed by {winners[0]}" in str(losers[0])
    flt = QueueFilter(owner=winners[0], ids=(item,))
    assert queue.count(db, users["clerk1"], flt) == 1


def test_bulk_reinstruct_applies_where_allowed_and_says_why_not_elsewhere(db, users, book) -> None:
    clerk = users["clerk1"]
    chosen = [r for r in book if r["owner_id"] in (None, clerk.user_id, users["clerk2"].user_id)][:60]
    ids = [r["id"] for r in chosen]
    preview = actions.preview_bulk(db, clerk, "reinstruct", ids)
    result = actions.bulk(db, clerk, "reinstruct", ids, reason="counterparty corrected their SSI")
    can = {
        r["id"]
        for r in chosen
        if r["status"] in (S.INSTRUCTED, S.MATCHED, S.FAILED) and r["owner_id"] in (None, clerk.user_id)
    }
    assert set(result.done) == can and set(result.refused) == set(ids) - can
    assert preview.applicable == len(can) and sum(preview.refused.values()) == len(ids) - len(can)
    theirs = next(r for r in chosen if r["owner_id"] == users["clerk2"].user_id)
    assert result.refused[theirs["id"]] == "it is claimed by clerk2"
    settled = next(r for r in chosen if r["status"] is S.SETTLED and r["owner_id"] is None)
    assert "final" in result.refused[settled["id"]]
    with db.read() as s:
        statuses = dict(
            s.execute(
                select(SettlementInstruction.id, SettlementInstruction.status).where(
                    SettlementInstruction.id.in_(ids)
                )
            ).all()
        )
        notes = [
            e.after.get("note")
            for e in s.scalars(
                select(AuditEntry).where(AuditEntry.action == "settlement_instructions.transition")
            )
        ]
    before = {r["id"]: r["status"] for r in chosen}
    assert all(statuses[i] is S.INSTRUCTED for i in can)
    assert all(statuses[i] == before[i] for i in set(ids) - can)  # refused items did not move
    assert notes.count("re-instructed: counterparty corrected their SSI") == len(can)


def test_bulk_cancel_needs_a_reason_and_refuses_partly_settled(db, users, book) -> None:
    sup = users["supervisor"]
    ids = [r["id"] for r in book[:21]]
    with pytest.raises(ValidationFailed, match="reason"):
        actions.bulk(db, sup, "cancel", ids)
    result = actions.bulk(db, sup, "cancel", ids, reason="trade cancelled by the front office")
    partial = [r["id"] for r in book[:21] if r["status"] is S.PARTIALLY_SETTLED]
    assert partial and all("part of it has already settled" in result.refused[i] for i in partial)
    can = [r["id"] for r in book[:21] if r["status"] not in (S.PARTIALLY_SETTLED, S.SETTLED, S.CANCELLED)]
    assert sorted(result.done) == sorted(can)  # a supervisor may act on items other clerks hold


def test_escalate_hands_over_to_the_least_busy_supervisor_with_a_comment(db, users, book) -> None:
    clerk = users["clerk1"]
    mine = [r["id"] for r in book if r["owner_id"] == clerk.user_id and r["status"].value in OPEN][:3]
    actions.assign(db, users["supervisor"], mine[0], users["supervisor"].user_id)  # supervisor is busier now
    result = actions.bulk(db, users["supervisor"], "escalate", mine[1:], reason="counterparty unresponsive")
    assert result.done == mine[1:]
    with db.read() as s:
        owners = set(
            s.scalars(select(SettlementInstruction.owner_id).where(SettlementInstruction.id.in_(mine[1:])))
        )
        comments = s.scalars(select(Comment.body).where(Comment.item_id.in_(mine[1:]))).all()
        escalations = s.scalars(select(AuditEntry).where(AuditEntry.action == "escalate")).all()
    assert owners == {users["supervisor2"].user_id}
    assert comments == ["Escalated: counterparty unresponsive"] * 2
    assert {e.entity_id for e in escalations} == {str(i) for i in mine[1:]}
    assert all(e.after["owner"] == "supervisor2" for e in escalations)


def test_assign_is_for_supervisors_and_auditors_change_nothing(db, users, book) -> None:
    item = book[0]["id"]
    with pytest.raises(PermissionDenied):
        actions.assign(db, users["clerk1"], item, users["clerk2"].user_id)
    with pytest.raises(PermissionDenied):
        actions.bulk(db, users["auditor"], "claim", [item])
    with pytest.raises(ValidationFailed, match="auditor"):
        actions.bulk(db, users["supervisor"], "assign", [item], assignee_id=users["auditor"].user_id)
    actions.bulk(db, users["supervisor"], "assign", [item], assignee_id=users["clerk2"].user_id)
    assert queue.count(db, users["clerk2"], QueueFilter(owner="mine", ids=(item,))) == 1


def test_bulk_claim_and_release(db, users, book) -> None:
    clerk = users["clerk2"]
    ids = [r["id"] for r in book[:15]]
    result = actions.bulk(db, clerk, "claim", ids)
    free = {r["id"] for r in book[:15] if r["owner_id"] is None}
    assert set(result.done) == free
    assert all(
        result.refused[r["id"]] in ("it is already yours", "it is claimed by clerk1")
        for r in book[:15]
        if r["owner_id"] is not None
    )
    released = actions.bulk(db, clerk, "release", ids)
    assert set(released.done) == free | {r["id"] for r in book[:15] if r["owner_id"] == clerk.user_id}
