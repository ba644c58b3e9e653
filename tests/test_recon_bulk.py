"""The recon run's fast paths give exactly what the plain paths give: the two sides read side by side (columnar, one
connection each) equal the same sources read one after the other through the session; identities stored as JSON
arrays built in Arrow equal ``json.dumps`` of them, whatever characters they hold; a break's fingerprint is the
canonical-JSON hash it always was (breaks already in a database are found again); and the SQLite columnar worker
that fails half-way through a result reports the error and stays usable; a break found again (written in one
statement for all) takes the run's values and keeps its status, owner and version."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import select, text

from app.models import Break
from app.services import columnar, demo
from app.services.db import Database
from app.services.jsonable import canonical_json
from app.services.permissions import SYSTEM, Actor
from app.services.recon import definitions as defs
from app.services.recon.config import parse_config
from app.services.recon.engine import reconcile
from app.services.recon.run import _json_ids, _json_strings, fingerprint, run_recon
from app.services.recon.sources import needed_columns, read_source, read_sources

from .conftest import PASSWORD

ODD = ['quote"d', "back\\slash", "tab\there", "ctrl\x01", "é-ß-中", "", "plain", "T000000001"]


def test_both_sides_read_side_by_side_equal_the_session_reads(db: Database, users: dict[str, Actor]) -> None:
    demo.build_demo(db, SYSTEM, trades=300, seed=7, today=dt.date(2026, 11, 30), password=PASSWORD)
    defs.ensure_default_definitions(db, SYSTEM)
    both_sides = 0
    with db.read() as s:
        for name in defs.DEFAULTS:
            cfg = defs.validate(defs.find(s, name).config)
            wanted = [
                (cfg.left.source, None, needed_columns(cfg, "left")),
                (cfg.right.source, None, needed_columns(cfg, "right")),
            ]
            together = read_sources(s, db, wanted)
            # Without ``db``: the session's own driver (COPY as CSV / sqlite3 fetchall), one after the other.
            alone = [read_source(s, src, as_of, cols) for src, as_of, cols in wanted]
            assert [len(f) for f in together] == [len(f) for f in alone]
            both_sides += all(len(f) for f in alone)
            for got, want in zip(together, alone, strict=True):
                pd.testing.assert_frame_equal(got, want, check_dtype=False)
                for c in want.columns:  # exact integers on both paths (never a float on the way)
                    assert str(got[c].dtype) == str(want[c].dtype) or got[c].dtype.kind == want[c].dtype.kind
    # The demo book gives most definitions rows on both sides: the comparison means something.
    assert both_sides >= 3


def _cfg() -> object:
    return parse_config(
        {
            "left": {"source": "ours"},
            "right": {"source": "theirs"},
            "fields": {"ref": {}},
            "key": ["ref"],
            "compare": [],
            "passes": [{"name": "exact_ref", "kind": "pair", "keys": ["ref"]}],
        }
    )


@pytest.mark.parametrize("arrow", [True, False])
def test_identity_arrays_are_the_json_of_the_identities(arrow: bool) -> None:
    ids = [f"{v}#{i}" for i, v in enumerate(ODD)] + [f"T{i:09d}" for i in range(1000)]
    for subset in (ids, ids[len(ODD) :], []):
        col = pa.array(subset, type=pa.large_string())
        values = pd.arrays.ArrowStringArray(col) if arrow else pd.array(subset, dtype=object)
        left = pd.DataFrame({"_id": values, "ref": values})
        result = reconcile(left, left.copy(), _cfg())
        pos = result.pair_left
        assert len(pos) == len(subset)
        text = _json_ids(result.left, pos)
        assert json.loads(text) == result.left.ids[pos].tolist()
        assert text == _json_strings(result.left.ids[pos].tolist())  # the very text stored before


def test_fingerprints_are_the_canonical_hash_they_always_were() -> None:
    for key in (["T1", "C1", "quantity"], ODD, ["X"], [], ["a", 1], ["a", None], [{"b": 2, "a": 1}]):
        want = hashlib.sha256(canonical_json([7, "FIELD_MISMATCH", key]).encode()).hexdigest()
        assert fingerprint(7, "FIELD_MISMATCH", key) == want


def test_the_sqlite_worker_reports_a_failure_half_way_and_stays_usable(tmp_path: Path) -> None:
    path = tmp_path / "mixed.sqlite"
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t (a)")
    # Integers for more than one batch, then a text: the driver typed the column from the first batch.
    con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(columnar._SQLITE_BATCH_ROWS + 10)])
    con.execute("INSERT INTO t VALUES ('text')")
    con.commit()
    con.close()
    db = Database(f"sqlite:///{path}")
    try:
        with columnar.reader(db) as r:
            assert r.via == "adbc"
            with pytest.raises(columnar.DRIVER_ERRORS):
                r._adbc.query("SELECT a FROM t", ())
            # The exchange stayed in step: the same worker answers the next query.
            again = r._adbc.query("SELECT count(*) AS n FROM t WHERE a < ?", (5,))
            assert again.column("n").to_pylist() == [5]
            got = r.arrow("SELECT a FROM t WHERE typeof(a) = :k", {"k": "integer"}, {"a": "int"})
            assert got.num_rows == columnar._SQLITE_BATCH_ROWS + 10
    finally:
        db.dispose()


def test_a_break_found_again_takes_the_new_values_and_keeps_its_state(
    db: Database, users: dict[str, Actor]
) -> None:
    demo.build_demo(db, SYSTEM, trades=300, seed=7, today=dt.date(2026, 11, 30), password=PASSWORD)
    clerk = users["clerk1"]
    first = run_recon(db, clerk, defs.CASH)
    with db.read() as s:
        before = {b.id: b for b in s.scalars(select(Break))}
    mism = next(b for b in before.values() if b.break_type.value == "FIELD_MISMATCH")
    missing = [b for b in before.values() if b.break_type.value != "FIELD_MISMATCH"]
    good = Decimal(mism.differences[0]["internal"])
    other = good + Decimal("12.34")  # still wrong, by another amount: the same difference (same fields)
    shown = format(other.normalize(), "f")  # as break records show decimals: no trailing zeros
    with db.write() as s:
        s.execute(
            text("UPDATE statement_lines SET amount = :a WHERE reference = :r"),
            {"a": str(other), "r": mism.external_ref},
        )
    again = run_recon(db, clerk, defs.CASH)
    assert (again.new_breaks, again.still_open, again.resolved) == (0, first.new_breaks, 0)
    with db.read() as s:
        after = {b.id: b for b in s.scalars(select(Break))}
    assert set(after) == set(before)
    b = after[mism.id]
    assert b.differences == [
        {"field": "amount", "internal": mism.differences[0]["internal"], "external": shown}
    ]
    assert b.external_record["amount"] == shown and b.internal_record == mism.internal_record
    assert b.amount == Decimal("12.34") and mism.amount != b.amount
    assert (b.version, b.status, b.last_run_id) == (mism.version, mism.status, again.run_id)
    for old in missing:  # a missing side stays missing (SQL NULL read back as None), the record as it was
        new = after[old.id]
        assert (new.internal_record, new.external_record) == (old.internal_record, old.external_record)
        assert (new.version, new.amount, new.as_of_date) == (old.version, old.amount, old.as_of_date)
        assert new.last_run_id == again.run_id


def _engine_outcome(result: object) -> dict[str, object]:
    """Everything a run takes from the engine: pairs and mismatches by pass, groups, duplicates, missing records,
    the break records and every record's final state."""
    from app.services.recon.engine import describe  # noqa: PLC0415

    r = result
    return {
        "pairs": (r.pair_pass.tolist(), r.pair_left.tolist(), r.pair_right.tolist()),
        "mismatches": (r.mismatch_pass.tolist(), r.mismatch_left.tolist(), r.mismatch_right.tolist()),
        "fields": r.mismatch_fields.tolist(),
        "groups": [(n, lp.tolist(), rp.tolist()) for n, lp, rp in r.groups],
        "duplicates": [(g.pass_name, g.key, g.left.tolist(), g.right.tolist()) for g in r.duplicates],
        "missing": (r.missing_left.tolist(), r.missing_right.tolist()),
        "states": (r.state_left.tolist(), r.state_right.tolist()),
        "breaks": describe(r),
    }


def test_fields_coded_two_at_a_time_give_what_coding_on_first_use_gives(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large runs code every field the passes use up front on two threads; the result is the same to the last
    break record as coding each field when a pass first asks for it (every default definition, both backends)."""
    from app.services.recon import engine  # noqa: PLC0415
    from app.services.recon.sources import prepare  # noqa: PLC0415

    demo.build_demo(db, SYSTEM, trades=300, seed=7, today=dt.date(2026, 11, 30), password=PASSWORD)
    defs.ensure_default_definitions(db, SYSTEM)
    coded_up_front: list[bool] = []
    original = engine._precode

    def spy(L: engine._Side, R: engine._Side, config: object) -> None:
        original(L, R, config)
        coded_up_front.append(bool(L._cols) and bool(R._cols))

    monkeypatch.setattr(engine, "_precode", spy)
    with db.read() as s:
        for name in defs.DEFAULTS:
            cfg = defs.validate(defs.find(s, name).config)
            raw = read_sources(
                s,
                db,
                [
                    (cfg.left.source, None, needed_columns(cfg, "left")),
                    (cfg.right.source, None, needed_columns(cfg, "right")),
                ],
            )
            left = prepare(raw[0], cfg.left, cfg, "left")
            right = prepare(raw[1], cfg.right, cfg, "right")
            outcomes = []
            for threshold in (10**12, 0):  # never up front / always up front
                monkeypatch.setattr(engine, "_PARALLEL_MIN_ROWS", threshold)
                outcomes.append(_engine_outcome(reconcile(left, right, cfg)))
            assert outcomes[0] == outcomes[1]
            assert outcomes[0]["pairs"][0] or outcomes[0]["breaks"]  # something was compared
    # Without the threshold nothing is coded up front; with it, every definition's fields were (Arrow strings).
    assert coded_up_front == [False, True] * len(defs.DEFAULTS)


def test_break_documents_are_what_json_dumps_gives() -> None:
    from app.services.jsonable import to_jsonable  # noqa: PLC0415
    from app.services.recon.run import _json  # noqa: PLC0415

    values: list[object] = [
        {
            "_id": "T1",
            "amount": "12.5",
            "n": 3,
            "f": 1.25,
            "ok": True,
            "none": None,
            "list": [1, {"a": None}],
        },
        {"odd": ODD, "é": 'q"\n\t\x01', "中": ["ß"]},
        [{"field": "amount", "internal": "1", "external": "2"}],
        [],
        {},
        "text",
    ]
    for value in values:
        assert _json(value) == json.dumps(value)
    assert _json(None) is None
    # Not JSON as such (a Decimal): made JSON-able first, as before.
    assert _json({"amount": Decimal("1.50")}) == json.dumps(to_jsonable({"amount": Decimal("1.50")}))


def test_new_breaks_written_in_chunks_are_every_break_found_in_order(
    db: Database, users: dict[str, Actor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new breaks go in by chunks from a thread: every break the engine found is written once, in the
    engine's order, with its records, differences and fingerprint (every default definition, both backends)."""
    from app.services.recon import engine  # noqa: PLC0415
    from app.services.recon.engine import describe  # noqa: PLC0415
    from app.services.recon.sources import prepare  # noqa: PLC0415

    demo.build_demo(db, SYSTEM, trades=300, seed=7, today=dt.date(2026, 11, 30), password=PASSWORD)
    defs.ensure_default_definitions(db, SYSTEM)
    want = []
    names = []
    with db.read() as s:
        for name in defs.DEFAULTS:
            d = defs.find(s, name)
            cfg = defs.validate(d.config)
            if cfg.coverage:  # the run narrows the left side first; the plain engine call here would not
                continue
            names.append(name)
            raw = read_sources(
                s,
                db,
                [
                    (cfg.left.source, None, needed_columns(cfg, "left")),
                    (cfg.right.source, None, needed_columns(cfg, "right")),
                ],
            )
            found = describe(
                reconcile(
                    prepare(raw[0], cfg.left, cfg, "left"), prepare(raw[1], cfg.right, cfg, "right"), cfg
                )
            )
            want += [
                (
                    fingerprint(d.id, b["break_type"], b["key"]),
                    b["break_type"],
                    b["internal_ref"],
                    b["external_ref"],
                    json.loads(json.dumps(b["internal_record"])),
                    json.loads(json.dumps(b["external_record"])),
                    json.loads(json.dumps(b["differences"])),
                )
                for b in found
            ]
    monkeypatch.setattr(engine, "DESCRIBE_CHUNK", 3)  # many chunks from a small book
    for name in names:
        run_recon(db, users["clerk1"], name)
    with db.read() as s:
        got = [
            (
                b.fingerprint,
                b.break_type.value,
                b.internal_ref,
                b.external_ref,
                b.internal_record,
                b.external_record,
                b.differences,
            )
            for b in s.scalars(select(Break).order_by(Break.id))
        ]
    assert len(want) > 3 * 2  # several chunks
    assert got == want


def test_break_documents_without_the_c_encoder_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """An interpreter whose private C encoder is missing or different falls back to json.dumps: same text."""
    from app.services.recon import run  # noqa: PLC0415

    value = {"odd": ODD, "é": 'q"\n\t\x01', "list": [1, {"a": None}], "f": 1.25}
    fast = run._json(value)
    monkeypatch.setattr(run, "_c_make_encoder", None)
    assert run._c_encoder() is None
    monkeypatch.setattr(run, "_ENCODE", None)
    assert run._json(value) == fast == json.dumps(value)


def test_sides_come_in_id_order_whatever_order_the_table_holds_them_in(
    db: Database, users: dict[str, Actor]
) -> None:
    """PostgreSQL scans each side in the table's physical order and the rows are put in id order afterwards; with
    rows moved about by updates the side-by-side reads still equal the session's ``ORDER BY`` reads, as of a date
    too (the date goes into the query as a literal)."""
    demo.build_demo(db, SYSTEM, trades=300, seed=7, today=dt.date(2026, 11, 30), password=PASSWORD)
    defs.ensure_default_definitions(db, SYSTEM)
    tables = ["trades", "cash_movements", "settlement_instructions", "positions", "statement_lines"]
    with db.write() as s:
        for table in tables:  # a new version of every third row: PostgreSQL stores it after the others
            s.execute(text(f"UPDATE {table} SET id = id WHERE id % 3 = 1"))
    with db.read() as s:
        if db.is_postgres:  # the physical order really is another order now
            heap = s.execute(text("SELECT id FROM trades")).scalars().all()
            assert heap != sorted(heap)
        compared = 0
        for name in defs.DEFAULTS:
            cfg = defs.validate(defs.find(s, name).config)
            for as_of in (None, dt.date(2026, 11, 25)):
                wanted = [
                    (cfg.left.source, as_of, needed_columns(cfg, "left")),
                    (cfg.right.source, as_of, needed_columns(cfg, "right")),
                ]
                together = read_sources(s, db, wanted)
                alone = [read_source(s, src, a, cols) for src, a, cols in wanted]
                for got, want in zip(together, alone, strict=True):
                    pd.testing.assert_frame_equal(got, want, check_dtype=False)
                    compared += len(want)
    assert compared > 1000


def test_source_parameters_written_as_literals() -> None:
    from app.services.recon.sources import _inline  # noqa: PLC0415

    sql = "SELECT 1 WHERE s.kind = :kind AND d <= :as_of AND x::text = 'a' AND n = :n"
    got = _inline(sql, {"kind": "it's", "as_of": dt.date(2026, 1, 2), "n": 7})
    assert got == "SELECT 1 WHERE s.kind = 'it''s' AND d <= DATE '2026-01-02' AND x::text = 'a' AND n = 7"
    for bad in (dt.datetime(2026, 1, 2, tzinfo=dt.UTC), 1.5, "nul\x00"):
        with pytest.raises((TypeError, ValueError)):
            _inline("SELECT :v", {"v": bad})


def test_a_runs_pairs_read_back_as_the_engine_made_them(db: Database, users: dict[str, Actor]) -> None:
    """The run's 1:1 pairs are stored compressed (LZ4 on a PostgreSQL server that has it) and read back exactly."""
    from app.models.recon import ReconRunPairs  # noqa: PLC0415
    from app.services.recon.run import run_pairs  # noqa: PLC0415

    demo.build_demo(db, SYSTEM, trades=300, seed=7, today=dt.date(2026, 11, 30), password=PASSWORD)
    result = run_recon(db, users["clerk1"], defs.CASH)
    pairs = run_pairs(db, users["clerk1"], result.run_id)
    assert sum(len(p) for p in pairs.values()) == sum(result.matched_by_pass.values())
    assert all(len(set(p)) == len(p) for p in pairs.values())
    if db.is_postgres:
        with db.read() as s:
            lz4 = s.scalar(
                text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
            )
            stored = s.execute(
                select(text("pg_column_compression(left_refs)")).select_from(ReconRunPairs)
            ).scalars()
            methods = {m for m in stored if m is not None}  # None: stored as it is (too small to compress)
        assert methods <= ({"lz4"} if lz4 else {"pglz"})


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_stored_integer_units_read_as_the_cast_reads_even_beyond_their_range(
    db: Database, users: dict[str, Actor]
) -> None:
    """PostgreSQL stores trades' and statement lines' numbers as integer units (migration 0019) and the recon read
    takes them; a number too large for them (units NULL) or no number at all reads exactly as the cast reads it."""
    demo.build_demo(db, SYSTEM, trades=120, seed=11, today=dt.date(2026, 11, 30), password=PASSWORD)
    with db.write() as s:
        ids = s.scalars(text("SELECT id FROM trades ORDER BY id LIMIT 4")).all()
        edges = [  # quantity, price, net amount
            (
                Decimal("9100000000000"),
                Decimal("91000000000.5"),
                Decimal("910000000000000.25"),
            ),  # beyond the range
            (Decimal("-0.000001"), Decimal("0.00000001"), Decimal("-0.0001")),  # the smallest units, negative
            (
                Decimal("8999999999999.999999"),
                Decimal("89999999999.99999999"),
                Decimal("899999999999999.9999"),
            ),
            (Decimal("1"), Decimal("1"), Decimal("0")),
        ]
        for tid, (q, p, n) in zip(ids, edges, strict=True):
            s.execute(
                text("UPDATE trades SET quantity = :q, price = :p, net_amount = :n WHERE id = :i"),
                {"q": q, "p": p, "n": n, "i": tid},
            )
    with db.read() as s:
        stored = s.execute(
            text(
                "SELECT quantity_units, price_units, net_amount_units FROM trades WHERE id = ANY(:ids) ORDER BY id"
            ),
            {"ids": list(ids)},
        ).all()
        assert stored[0] == (None, None, None)  # beyond the stored range: the read casts these rows itself
        assert stored[1] == (-1, 1, -1)
        assert stored[2] == (8999999999999999999, 8999999999999999999, 8999999999999999999)
        assert stored[3] == (1000000, 100000000, 0)
        # Where a statement line has no number, its units are NULL too (and the read gives NULL, as the cast does).
        assert (
            s.execute(
                text(
                    "SELECT count(*) FROM statement_lines WHERE (quantity IS NULL) <> (quantity_units IS NULL)"
                    " OR (price IS NULL) <> (price_units IS NULL) OR (amount IS NULL) <> (amount_units IS NULL)"
                )
            ).scalar_one()
            == 0
        )
        cols = ["trade_ref", "quantity", "price", "net_amount"]
        fast = read_sources(
            s, db, [("trades", None, cols), ("statement_lines:TRADE_CONFIRMATIONS", None, None)]
        )[0]
        plain = read_source(s, "trades", None, cols)  # the session's COPY, with the cast for every row
    pd.testing.assert_frame_equal(fast, plain, check_dtype=False)
    first = fast.iloc[0]
    assert (first["quantity"], first["price"], first["net_amount"]) == (
        9100000000000 * 10**6,
        9100000000050000000,
        9100000000000002500,
    )
