"""The blotter's free text on references: through the index of migration 0011, the same trades as a scan, on both
backends, including trades written after the index was built and terms too short for trigrams."""

from __future__ import annotations

import datetime as dt
import logging
import random
import re
import uuid

import pytest
from sqlalchemy import create_engine, delete, insert, text, update
from sqlalchemy.engine import make_url

from app.models import Trade
from app.services import blotter, schema, trade_search
from app.services.blotter import COLUMN_KEYS, BlotterFilter, Sort
from app.services.db import Database
from app.services.permissions import SYSTEM

from .factories import trade_row

REF = COLUMN_KEYS.index("trade_ref")
N = 260


@pytest.fixture
def book(db, users):
    rnd = random.Random(11)
    rows = [
        trade_row(
            i,
            rnd,
            latest=dt.date(2026, 11, 18),
            trade_ref=f"FO-{i:05d}{'abc' if i % 7 == 0 else 'XYZ'}",
            order_ref=None if i % 5 == 0 else f"Ord_{i // 3:04d}",
            source_ref=None if i % 4 == 0 else f"fix:Exec-{i * 13:06d}",
        )
        for i in range(N)
    ]
    with db.write() as s:
        s.execute(insert(Trade), rows)
    return rows


def _like(term: str):
    """What ``ref LIKE '%term%'`` selects, in Python: ASCII case ignored, ``%`` and ``_`` wildcards."""
    body = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in term)
    pattern = re.compile(body, re.IGNORECASE | re.DOTALL)
    return lambda r: any(
        r[k] is not None and pattern.search(r[k]) for k in ("trade_ref", "order_ref", "source_ref")
    )


def _refs(db, actor, flt, sort, limit=40):
    out, after = [], None
    while True:
        page = blotter.fetch_page(db, actor, flt, sort, limit=limit, after=after)
        out.extend(r[REF] for r in page.rows)
        if len(page.rows) < limit:
            return out
        after = page.last_key


def _expected(rows, term, sort):
    keep = [r for r in rows if _like(term)(r)]
    ids = {r["trade_ref"]: i for i, r in enumerate(rows)}
    key = sort.key
    keep.sort(key=lambda r: (r[key], ids[r["trade_ref"]]), reverse=sort.descending)
    return [r["trade_ref"] for r in keep]


TERMS = [
    "abc",  # lower case in the data
    "ABC",  # the same, upper case
    "xyz",  # upper case in the data, lower case asked
    "ord_00",  # "_" is a wildcard, and matches the underscore too
    "exec-0001",
    "fix:exec-000013",  # one trade
    "00%abc",  # a wildcard between two stretches long enough for trigrams
    "7",  # too short for trigrams: a scan
    "o_",  # short with a wildcard: a scan
    'q"x',  # a quote in the term, nothing matches
    "nothing-like-this",
]


@pytest.mark.parametrize("term", TERMS)
def test_text_search_matches_like_on_every_reference(db, users, book, term) -> None:
    actor = users["clerk1"]
    flt = BlotterFilter(text=term)
    for sort in (Sort("trade_date", True), Sort("trade_ref", False)):
        assert _refs(db, actor, flt, sort) == _expected(book, term, sort)
    want = sum(1 for r in book if _like(term)(r))
    assert blotter.count(db, actor, flt) == want
    assert blotter.totals(db, actor, flt).count == want


def test_the_index_serves_long_terms_only(db, users, book) -> None:
    with db.engine.connect() as conn:
        if db.is_postgres:
            names = set(conn.scalars(text("SELECT indexname FROM pg_indexes WHERE tablename = 'trades'")))
            assert set(trade_search.TRGM_INDEXES) <= names
            # The trigram index can serve the ILIKE (the planner prefers a scan of so small a table otherwise).
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            where = blotter._text_condition("abc", blotter.ILIKE)
            sql = str(where.compile(conn, compile_kwargs={"literal_binds": True}))
            plan = "\n".join(conn.scalars(text(f"EXPLAIN SELECT id FROM trades WHERE {sql}")))
            assert "_trgm" in plan
            conn.rollback()
            # With statistics, a term few trades match is read through the index and sorted (the planner alone
            # would walk the sort index), with the same rows.
            conn.execute(text("ANALYZE trades"))
            conn.commit()
            assert blotter._choose_plan(conn, BlotterFilter(text="abc"), Sort()) == blotter.FILTER_INDEX
            sort = Sort("trade_date", True)
            assert _refs(db, users["clerk1"], BlotterFilter(text="abc"), sort) == _expected(book, "abc", sort)
        else:
            assert trade_search.sqlite_has_index(conn)
            assert blotter._search_mode(conn, BlotterFilter(text="abc")) == blotter.FTS
            assert blotter._search_mode(conn, BlotterFilter(text="ab")) == blotter.SCAN
            assert blotter._search_mode(conn, BlotterFilter(text="a%b_c")) == blotter.SCAN


def test_trades_written_after_the_index_was_built_are_found(db, users, book) -> None:
    actor = users["clerk1"]
    rnd = random.Random(3)
    with db.write() as s:
        s.execute(
            insert(Trade),
            [trade_row(N + 1, rnd, latest=dt.date(2026, 11, 18), trade_ref="NEW-Quokka-1", order_ref="q1")],
        )
        # A reference changes: found by its new value, no longer by its old one.
        s.execute(update(Trade).where(Trade.trade_ref == "FO-00001XYZ").values(order_ref="Amended-Wombat"))
        # Other columns change: the trade is still found by its references.
        s.execute(update(Trade).where(Trade.trade_ref == "FO-00002XYZ").values(exception_codes="X"))
        s.execute(delete(Trade).where(Trade.trade_ref == "FO-00014abc"))
    sort = Sort("trade_ref", False)
    assert _refs(db, actor, BlotterFilter(text="quokka"), sort) == ["NEW-Quokka-1"]
    assert _refs(db, actor, BlotterFilter(text="WOMBAT"), sort) == ["FO-00001XYZ"]
    assert "FO-00001XYZ" not in _refs(db, actor, BlotterFilter(text="Ord_0000"), sort)
    assert _refs(db, actor, BlotterFilter(text="FO-00002"), sort) == ["FO-00002XYZ"]
    assert _refs(db, actor, BlotterFilter(text="00014abc"), sort) == []
    assert blotter.count(db, actor, BlotterFilter(text="FO-0001")) == 9  # 00010-00019, less the deleted one


def test_many_matches_walk_the_sort_index_with_the_same_result(db, users, book, monkeypatch) -> None:
    """A term most trades contain is looked for along the sort index, not through the text index: same rows."""
    actor = users["clerk1"]
    flt = BlotterFilter(text="fo-0")
    sort = Sort("gross_amount", True)
    few = _refs(db, actor, flt, sort)
    monkeypatch.setattr(blotter, "FEW_ROWS", 10)
    with db.engine.connect() as conn:
        assert blotter._search_mode(conn, flt) == (blotter.ILIKE if db.is_postgres else blotter.SCAN)
    assert _refs(db, actor, flt, sort) == few == _expected(book, "fo-0", sort)
    trade_id = blotter.fetch_page(db, actor, flt, sort, limit=1, offset=100).rows[0][COLUMN_KEYS.index("id")]
    assert blotter.position_of(db, actor, flt, sort, trade_id) == 100


def test_a_bulk_insert_indexes_its_trades_at_the_end(db, users, book) -> None:
    """Capture's bulk insert (trade_search.bulk_inserts) indexes the new trades in one go and leaves the trigger."""
    actor = users["clerk1"]
    rnd = random.Random(5)
    new = [
        trade_row(N + 10 + i, rnd, latest=dt.date(2026, 11, 18), trade_ref=f"BULK-Koala-{i:03d}")
        for i in range(30)
    ]
    with db.write() as s, trade_search.bulk_inserts(s):
        s.execute(insert(Trade), new)
    sort = Sort("trade_ref", False)
    assert _refs(db, actor, BlotterFilter(text="koala"), sort) == [r["trade_ref"] for r in new]
    # The insert trigger is back: a trade inserted afterwards is indexed on its own.
    with db.write() as s:
        s.execute(
            insert(Trade), [trade_row(N + 99, rnd, latest=dt.date(2026, 11, 18), trade_ref="Koala-late")]
        )
    assert blotter.count(db, actor, BlotterFilter(text="koala")) == 31
    # A bulk insert that fails changes nothing, the trigger included.
    with pytest.raises(RuntimeError), db.write() as s, trade_search.bulk_inserts(s):
        s.execute(
            insert(Trade), [trade_row(N + 100, rnd, latest=dt.date(2026, 11, 18), trade_ref="Koala-gone")]
        )
        raise RuntimeError("cancelled")
    with db.write() as s:
        s.execute(
            insert(Trade), [trade_row(N + 101, rnd, latest=dt.date(2026, 11, 18), trade_ref="Koala-after")]
        )
    found = _refs(db, actor, BlotterFilter(text="koala-"), sort)
    assert [r for r in found if not r.startswith("BULK")] == ["Koala-after", "Koala-late"]
    assert len(found) == 32
    if not db.is_postgres:
        with db.engine.connect() as conn:
            assert _search_mode_is_fts(conn, "koala")
            # The larger in-memory buffer of the bulk indexing (BULK_HASH_BYTES) was FTS5's default again after.
            hashsize = conn.execute(text("SELECT v FROM trades_search_config WHERE k = 'hashsize'")).scalar()
            assert hashsize == trade_search.FTS5_HASH_BYTES


def _search_mode_is_fts(conn, term: str) -> bool:
    return blotter._search_mode(conn, BlotterFilter(text=term)) == blotter.FTS


def test_a_role_that_may_not_create_pg_trgm_gets_the_scan(pg_admin_url, pg_empty_url, caplog) -> None:
    """PostgreSQL: without the privilege to create the extension the migration still succeeds, says why the
    index is missing, and the search scans with the same results."""
    role = f"opsdesk_plain_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    owner = create_engine(pg_empty_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD 'plain-pass-1'"))
    with owner.connect() as c:
        c.execute(text(f"GRANT USAGE, CREATE ON SCHEMA public TO {role}"))  # tables yes, extensions no
    db = Database(make_url(pg_empty_url).set(username=role, password="plain-pass-1").render_as_string(False))
    try:
        with caplog.at_level(logging.WARNING):
            schema.upgrade(db)
        assert schema.current_revision(db) == schema.head_revision()
        assert any("pg_trgm could not be created" in r.getMessage() for r in caplog.records)
        with db.engine.connect() as conn:
            names = set(conn.scalars(text("SELECT indexname FROM pg_indexes WHERE tablename = 'trades'")))
        assert not names & set(trade_search.TRGM_INDEXES)
        rnd = random.Random(2)
        rows = [trade_row(i, rnd, latest=dt.date(2026, 11, 18), order_ref=f"Wallaby-{i}") for i in range(12)]
        with db.write() as s:
            s.execute(insert(Trade), rows)
        assert blotter.count(db, SYSTEM, BlotterFilter(text="WALLABY-1")) == 3  # 1, 10, 11
    finally:
        db.dispose()
        with owner.connect() as c:
            c.execute(text(f"DROP OWNED BY {role}"))
        owner.dispose()
        with admin.connect() as c:
            c.execute(text(f"DROP ROLE {role}"))
        admin.dispose()


def test_the_sqlite_index_without_column_sizes_finds_the_same_trades(sqlite_db) -> None:
    """Migration 0016 rebuilds the FTS5 table with ``columnsize=0`` (no per-trade size row): every search finds
    the same trades before and after it, and going down to 0015 gives back 0011's table with the same answers."""
    actor = SYSTEM
    rnd = random.Random(17)
    rows = [
        trade_row(
            i,
            rnd,
            latest=dt.date(2026, 11, 18),
            trade_ref=f"MIG-{i:04d}{'Emu' if i % 3 == 0 else 'Yak'}",
            order_ref=None if i % 4 == 0 else f"ord-{i // 2:04d}",
        )
        for i in range(60)
    ]
    with sqlite_db.write() as s:
        s.execute(insert(Trade), rows)
    sort = Sort("trade_ref", False)
    terms = ("emu", "YAK", "ord-001", "MIG-00", "4Em", "no-such-ref")

    def answers() -> list[list[str]]:
        return [_refs(sqlite_db, actor, BlotterFilter(text=t), sort) for t in terms]

    def fts_definition() -> tuple[str, bool]:
        with sqlite_db.engine.connect() as conn:
            sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'trades_search'")).scalar()
            docsize = conn.execute(
                text("SELECT 1 FROM sqlite_master WHERE name = 'trades_search_docsize'")
            ).first()
            triggers = conn.scalars(
                text(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'trades' ORDER BY 1"
                )
            ).all()
        assert triggers == ["trades_search_ad", "trades_search_ai", "trades_search_au"]
        return str(sql), docsize is not None

    head = answers()
    assert head[0] and head[1] and head[-1] == []
    sql, docsize = fts_definition()
    assert "columnsize=0" in sql and not docsize
    schema.downgrade(sqlite_db, "0015")
    trade_search.forget()
    sql, docsize = fts_definition()
    assert "columnsize" not in sql and docsize
    assert answers() == head
    schema.upgrade(sqlite_db)
    trade_search.forget()
    assert fts_definition() == (sql.replace("tokenize='trigram'", "tokenize='trigram', columnsize=0"), False)
    assert answers() == head
    # Still kept in step by the triggers after the rebuild.
    with sqlite_db.write() as s:
        s.execute(update(Trade).where(Trade.trade_ref == "MIG-0001Yak").values(order_ref="Late-Emu"))
    assert "MIG-0001Yak" in _refs(sqlite_db, actor, BlotterFilter(text="emu"), sort)
