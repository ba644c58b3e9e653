"""Columnar reads (ADBC) give exactly what SQLAlchemy reads, on both backends: ids, text, money to 4 decimals (negative,
large, rounding), dates, NULLs (also NULLs filling the first batches), aware timestamps; committed data only; and the
DBAPI fallback when ADBC cannot connect."""

from __future__ import annotations

import datetime as dt
import logging
import random
from decimal import Decimal

import pytest
from sqlalchemy import insert, select, text

from app.models import Trade
from app.services import columnar
from app.services.db import Database

from .factories import trade_row

AMOUNTS = [
    Decimal("12345678901.2345"),
    Decimal("-12345678901.2345"),
    Decimal("-0.0001"),
    Decimal("0.0001"),
    Decimal("0"),
    Decimal("1"),
    Decimal("-2.5"),
    Decimal("99999999999.9999"),
    Decimal("0.1"),
    Decimal("-7.0005"),
]
KINDS = {
    "id": "int",
    "trade_ref": "text",
    "order_ref": "text",
    "net_amount": "units:4",
    "quantity": "units:6",
    "price": "units:8",
    "trade_date": "date",
    "settlement_date": "days",
    "affirmed_at": "timestamp",
    "trade_time": "timestamp",
}
SQL = (
    "SELECT id, trade_ref, order_ref, net_amount, quantity, price, trade_date, settlement_date, affirmed_at, "
    "trade_time FROM trades ORDER BY id"
)
EPOCH = dt.date(1970, 1, 1)


def _units(d: Decimal | None, scale: int) -> int | None:
    return None if d is None else int(d.scaleb(scale))


def _load(db: Database, n: int = 2600) -> None:
    """n trades; the first 1,500 without order reference, settlement date or affirmation (NULLs filling the first
    batches), then every amount of AMOUNTS in turn, timestamps with and without microseconds."""
    rnd = random.Random(7)
    base = dt.datetime(2026, 11, 20, 14, 30, 5, 123456, tzinfo=dt.UTC)
    rows = []
    for i in range(n):
        late = i >= 1500
        rows.append(
            trade_row(
                i,
                rnd,
                latest=dt.date(2026, 11, 20),
                net_amount=AMOUNTS[i % len(AMOUNTS)] if late else Decimal("10.5"),
                quantity=Decimal("1234567.123456") if i % 2 else Decimal("-3"),
                price=Decimal("189.12345678") if i % 3 else Decimal("0.00000001"),
                order_ref=f"O{i}" if late else None,
                settlement_date=dt.date(2026, 11, 20) + dt.timedelta(days=i % 5) if late else None,
                affirmed_at=(base + dt.timedelta(seconds=i, microseconds=i % 2)) if late and i % 3 else None,
                trade_time=base.replace(microsecond=0) - dt.timedelta(minutes=i),
            )
        )
    with db.write() as s:
        s.execute(insert(Trade), rows)


def _expected(db: Database) -> list[dict]:
    with db.read() as s:
        got = s.execute(
            select(
                Trade.id,
                Trade.trade_ref,
                Trade.order_ref,
                Trade.net_amount,
                Trade.quantity,
                Trade.price,
                Trade.trade_date,
                Trade.settlement_date,
                Trade.affirmed_at,
                Trade.trade_time,
            ).order_by(Trade.id)
        ).all()
    return [
        {
            "id": r.id,
            "trade_ref": r.trade_ref,
            "order_ref": r.order_ref,
            "net_amount": _units(r.net_amount, 4),
            "quantity": _units(r.quantity, 6),
            "price": _units(r.price, 8),
            "trade_date": r.trade_date,
            "settlement_date": None if r.settlement_date is None else (r.settlement_date - EPOCH).days,
            "affirmed_at": r.affirmed_at,
            "trade_time": r.trade_time,
        }
        for r in got
    ]


def test_every_column_kind_equals_what_sqlalchemy_reads(db: Database) -> None:
    _load(db)
    with columnar.reader(db) as r:
        assert r.via == "adbc"  # the fast path is the one under test
        table = r.arrow(SQL, kinds=KINDS)
    assert table.schema.names == list(KINDS)
    assert str(table.schema.field("affirmed_at").type) == "timestamp[us, tz=UTC]"
    assert str(table.schema.field("net_amount").type) == "int64"
    got = table.to_pylist()
    want = _expected(db)
    assert len(got) == len(want) == 2600
    for g, w in zip(got, want, strict=True):
        for k in ("affirmed_at", "trade_time"):
            g[k] = None if g[k] is None else g[k].astimezone(dt.UTC)
        assert g == w
    amounts = {g["net_amount"] for g in got}
    assert {_units(a, 4) for a in AMOUNTS} <= amounts  # large, negative and tiny amounts all made it exactly


def test_frame_types_and_values(db: Database) -> None:
    _load(db, 1600)
    frame = columnar.read_frame(db, SQL, kinds=KINDS)
    want = _expected(db)
    assert str(frame["net_amount"].dtype) == "Int64"
    assert str(frame["settlement_date"].dtype) == "Int64"
    assert frame["settlement_date"].isna().sum() == sum(w["settlement_date"] is None for w in want)
    assert frame["order_ref"].iloc[-1] == want[-1]["order_ref"]
    assert frame["trade_date"].iloc[0].date() == want[0]["trade_date"]
    assert frame["affirmed_at"].dt.tz is not None
    assert list(frame["net_amount"].astype(object).where(frame["net_amount"].notna(), None)) == [
        w["net_amount"] for w in want
    ]


def test_named_parameters_and_rounding_like_sql_round(db: Database) -> None:
    _load(db, 1600)
    params = {"day": dt.date(2026, 11, 24), "ccy": "USD"}
    sql = (
        "SELECT id, net_amount / 3.0 AS third, net_amount * -1 AS neg FROM trades "
        "WHERE settlement_date <= :day AND currency = :ccy ORDER BY id"
    )
    table = columnar.read_arrow(db, sql, params, kinds={"id": "int", "third": "units:4", "neg": "units:4"})
    with db.read() as s:
        want = s.execute(
            text(
                "SELECT id, CAST(ROUND(net_amount / 3.0 * 10000) AS BIGINT), CAST(ROUND(net_amount * -10000) AS BIGINT) "
                "FROM trades WHERE settlement_date <= :day AND currency = :ccy ORDER BY id"
            ),
            params,
        ).all()
    assert len(want) > 20
    assert [tuple(r.values()) for r in table.to_pylist()] == [tuple(r) for r in want]


def test_empty_result_has_the_kinds_types(db: Database) -> None:
    table = columnar.read_arrow(db, SQL.replace("ORDER BY", "WHERE 1 = 0 ORDER BY"), kinds=KINDS)
    assert table.num_rows == 0
    assert str(table.schema.field("net_amount").type) == "int64"
    assert str(table.schema.field("trade_ref").type) == "large_string"


def test_a_reader_sees_committed_data_only(db: Database) -> None:
    _load(db, 10)
    count = "SELECT COUNT(*) AS n FROM trades"
    with db.write() as s:
        s.execute(insert(Trade), [trade_row(99, random.Random(1), latest=dt.date(2026, 11, 20))])
        s.flush()
        assert columnar.read_arrow(db, count, kinds={"n": "int"}).column("n").to_pylist() == [10]
    assert columnar.read_arrow(db, count, kinds={"n": "int"}).column("n").to_pylist() == [11]


def test_falls_back_to_the_dbapi_driver_with_a_logged_reason(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _load(db, 1600)
    want = columnar.read_arrow(db, SQL, kinds=KINDS).to_pylist()

    def refuse(_db: Database) -> None:
        raise ConnectionError("driver says no")

    monkeypatch.setattr(columnar, "_adbc_connect", refuse)
    monkeypatch.setattr(columnar, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="app.services.columnar"), columnar.reader(db) as r:
        assert r.via == "dbapi"
        got = r.arrow(SQL, kinds=KINDS).to_pylist()
    assert "driver says no" in caplog.text
    assert got == want


def test_a_value_beyond_64_bit_units_is_refused_not_wrapped(db: Database) -> None:
    _load(db, 3)
    with pytest.raises(columnar.ColumnarError):
        columnar.read_arrow(
            db,
            "SELECT id, net_amount * 1000000000000 AS big FROM trades",
            kinds={"id": "int", "big": "units:8"},
        )


def test_columnar_reads_between_writes_leave_the_database_sound(db: Database) -> None:
    """Reads interleaved with committed writes: every write commits, every read sees the committed count (on SQLite
    the driver's own copy of SQLite must not break the application's locks)."""
    for i in range(6):
        n = (
            columnar.read_arrow(db, "SELECT COUNT(*) AS n FROM trades", kinds={"n": "int"})
            .column("n")[0]
            .as_py()
        )
        assert n == i
        with db.write() as s:
            s.execute(insert(Trade), [trade_row(500 + i, random.Random(i), latest=dt.date(2026, 11, 20))])
    if db.backend == "sqlite":
        with db.read() as s:
            assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"


def test_arrow_allocates_from_jemalloc_unless_the_user_chose_a_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process's Arrow pool is jemalloc once the columnar reader is loaded (mimalloc's huge pages made a cold
    million-row read pay seconds of page zeroing); a pool named in ARROW_DEFAULT_MEMORY_POOL is left alone."""
    import pyarrow as pa  # noqa: PLC0415

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:  # pragma: no cover - a pyarrow built without jemalloc keeps its default
        assert columnar.prefer_jemalloc() == pa.default_memory_pool().backend_name
        return
    assert pa.default_memory_pool().backend_name == "jemalloc"
    before = pa.default_memory_pool()
    try:
        pa.set_memory_pool(pa.system_memory_pool())
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
        assert columnar.prefer_jemalloc() == "system"
        monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL")
        assert columnar.prefer_jemalloc() == "jemalloc"
    finally:
        pa.set_memory_pool(before)
