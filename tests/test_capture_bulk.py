"""The bulk writer's own paths: rows written through COPY text buffers (PostgreSQL) read back exactly as the rows the
driver formats one by one, and ids drawn from a sequence in one statement, contiguous or not.

Run on SQLite and PostgreSQL (the ``db`` fixture); each test works in temporary tables of one transaction.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np

from app.services.capture import bulk
from app.services.db import Database

COLUMNS = ("id", "name", "amount", "ratio", "note", "payload")
# Values the import writes (text with every character COPY escapes, NULLs, exact decimals beyond a float's 15
# digits, negative and tiny floats, JSON text) in a column-wise layout, as bulk.insert_rows takes them.
DATA: list[list[Any]] = [
    [1, 2, 3, 4, 5],
    ["plain", "tab\there", "new\nline\r\n", "back\\slash \\N", "ünïcødé \b\v\f"],
    [Decimal("1234567890123456.123456"), 0.1, -2.5, 1e-07, Decimal("-99999999999999999.99")],
    [1.5, None, 3, None, -0.0],
    [None, "", "x", None, "\\."],
    ['{"raw":"a\\tb"}', '{"line":2}', "{}", '{"k":"v\\\\w"}', '{"u":"é"}'],
]


def _create(conn: Any, name: str, pg: bool) -> None:
    payload = "jsonb" if pg else "JSON"
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE {name} (id BIGINT PRIMARY KEY, name VARCHAR(64), amount NUMERIC(28, 6), "
        f"ratio NUMERIC(18, 8), note TEXT, payload {payload})"
    )


def _rows(conn: Any, name: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.exec_driver_sql(f"SELECT {', '.join(COLUMNS)} FROM {name} ORDER BY id")]


def test_bulk_rows_read_back_as_the_driver_writes_them(db: Database) -> None:
    with db.write() as s:
        conn = s.connection()
        pg = bulk.is_postgres(s)
        _create(conn, "bulk_fast", pg)
        _create(conn, "bulk_driver", pg)
        # SQLite stores numbers as floats (bulk.numbers gives it no Decimal).
        data = DATA if pg else [[float(v) if isinstance(v, Decimal) else v for v in col] for col in DATA]
        chunks: list[int] = []
        assert bulk.insert_rows(s, "bulk_fast", COLUMNS, data, on_chunk=chunks.append) == 5
        assert chunks[-1] == 5
        if pg:
            # The driver's own formatting, one row at a time (the path before the COPY text buffers).
            cur = conn.connection.driver_connection.cursor()
            with cur.copy(f"COPY bulk_driver ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in zip(*data, strict=True):
                    copy.write_row(row)
            cur.close()
        else:
            conn.exec_driver_sql(
                f"INSERT INTO bulk_driver ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",
                list(zip(*data, strict=True)),
            )
        fast = _rows(conn, "bulk_fast")
        assert fast == _rows(conn, "bulk_driver")
        assert [r[1] for r in fast] == DATA[1]
        assert [r[4] for r in fast] == DATA[4]
        if pg:  # exact beyond a float's 15 digits
            assert fast[0][2] == Decimal("1234567890123456.123456")
            assert fast[4][2] == Decimal("-99999999999999999.99")
        conn.exec_driver_sql("DROP TABLE bulk_fast")
        conn.exec_driver_sql("DROP TABLE bulk_driver")


def test_copy_text_escapes_a_whole_column_as_value_by_value() -> None:
    """The column-wide escape (one replace per character over all texts) gives each value exactly the escapes the
    value-by-value way gives: backslashes once, every control character, None and empty texts kept apart, and a
    value holding a NUL (which PostgreSQL refuses) escaped on its own."""
    import re  # noqa: PLC0415

    def one(v: str) -> str:
        return re.sub("[\b\t\n\v\f\r\\\\]", lambda m: bulk._COPY_ESCAPES[m.group(0)], v)

    texts = [
        "{1:F01}\n:20C::SEME//X\n-}",
        None,
        "",
        "C:\\dir\\n",
        "tab\there",
        "\\n",
        "a\r\nb",
        "\b\v\f",
        "plain",
    ]
    column = texts * 3
    assert bulk.copy_text([column]) == "".join(("\\N" if v is None else one(v)) + "\n" for v in column)
    with_nul = ["a\nb", "c\x00d", None, "e\\f"]
    assert bulk.copy_text([with_nul]) == "a\\nb\nc\x00d\n\\N\ne\\\\f\n"


def test_copy_text_leaves_other_types_to_the_driver(db: Database) -> None:
    """A column of a type the buffer does not format (bool, non-finite numbers) goes through the driver."""
    assert bulk.copy_text([[1, 2], [True, False]]) is None
    assert bulk.copy_text([[1, 2], [float("inf"), 1.0]]) is None
    assert bulk.copy_text([[1, 2], [Decimal("NaN"), Decimal(1)]]) is None
    assert bulk.copy_text([[1, None], ["a\tb", None]]) == "1\ta\\tb\n\\N\t\\N\n"
    with db.write() as s:
        conn = s.connection()
        conn.exec_driver_sql("CREATE TEMP TABLE bulk_flags (id BIGINT PRIMARY KEY, flag BOOLEAN)")
        bulk.insert_rows(s, "bulk_flags", ("id", "flag"), [[1, 2, 3], [True, False, None]])
        flags = [r[0] for r in conn.exec_driver_sql("SELECT flag FROM bulk_flags ORDER BY id")]
        assert [None if f is None else bool(f) for f in flags] == [True, False, None]
        conn.exec_driver_sql("DROP TABLE bulk_flags")


def test_allocated_ids_are_fresh_and_ascending(db: Database) -> None:
    with db.write() as s:
        conn = s.connection()
        pg = bulk.is_postgres(s)
        key = "BIGSERIAL PRIMARY KEY" if pg else "INTEGER PRIMARY KEY"
        conn.exec_driver_sql(f"CREATE TEMP TABLE bulk_seq (id {key}, v INTEGER)")
        conn.exec_driver_sql("INSERT INTO bulk_seq (v) VALUES (1)")
        first = bulk.allocate_ids(s, "bulk_seq", 1000)
        assert first.tolist() == list(range(2, 1002))  # one run after the row already there
        bulk.insert_rows(s, "bulk_seq", ("id", "v"), [first.tolist(), [0] * 1000])
        if pg:
            # Values that are not one run (here a sequence stepping by 3; in use, another session drawing at the
            # same time) come back one by one, sorted.
            conn.exec_driver_sql("ALTER SEQUENCE bulk_seq_id_seq INCREMENT BY 3")
            gaps = bulk.allocate_ids(s, "bulk_seq", 500)
            assert gaps.tolist() == sorted(gaps.tolist())
            assert len(set(gaps.tolist())) == 500 and int(gaps[0]) > 1001
            assert set(int(b - a) for a, b in zip(gaps[:-1], gaps[1:], strict=False)) == {3}
        else:
            assert bulk.allocate_ids(s, "bulk_seq", 3).tolist() == [1002, 1003, 1004]
        assert bulk.allocate_ids(s, "bulk_seq", 0).size == 0
        conn.exec_driver_sql("DROP TABLE bulk_seq")


def test_copy_numbers_store_the_same_values_as_numbers(db: Database) -> None:
    """Amounts written from integer units in COPY's exponent form read back exactly as the float/Decimal form
    (and exactly beyond a float's 15 digits on PostgreSQL)."""
    units = np.array([0, 1, -1, 1_234_500, -987_654_321, 10**15 + 7, -(10**17) - 3, 120_000], dtype=np.int64)
    with db.write() as s:
        conn = s.connection()
        conn.exec_driver_sql("CREATE TEMP TABLE bulk_money (id BIGINT PRIMARY KEY, a NUMERIC(20, 4))")
        conn.exec_driver_sql("CREATE TEMP TABLE bulk_money_ref (id BIGINT PRIMARY KEY, a NUMERIC(20, 4))")
        ids = list(range(1, len(units) + 1))
        bulk.insert_rows(s, "bulk_money", ("id", "a"), [ids, bulk.copy_numbers(units, 4, s)])
        bulk.insert_rows(s, "bulk_money_ref", ("id", "a"), [ids, bulk.numbers(units, 4, s)])
        got = [r[0] for r in conn.exec_driver_sql("SELECT a FROM bulk_money ORDER BY id")]
        ref = [r[0] for r in conn.exec_driver_sql("SELECT a FROM bulk_money_ref ORDER BY id")]
        assert got == ref
        if bulk.is_postgres(s):
            assert got == [Decimal(int(u)).scaleb(-4) for u in units.tolist()]
            assert str(got[3]) == "123.4500"  # the column's scale, as before
        conn.exec_driver_sql("DROP TABLE bulk_money")
        conn.exec_driver_sql("DROP TABLE bulk_money_ref")
