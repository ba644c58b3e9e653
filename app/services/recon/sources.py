"""Bulk readers of each side of a reconciliation into pandas DataFrames, exact: money never passes through a float.

Every number becomes an integer of its column's scale: on PostgreSQL in SQL (``CAST(x * 10^s AS BIGINT)``, exact
on ``numeric``, the cast rounding half away from zero); on SQLite, which stores the Numeric columns as doubles
holding at most 15 significant digits, numpy does the very arithmetic SQLite's ``ROUND`` would (multiply, add a half
away from zero, truncate), which recovers the exact decimal without costing the database engine a function call per
value. Dates become day numbers. One query per side, no ORM objects, no query per row; rows in id order (each
query's ``_ord`` column; the columnar PostgreSQL read orders them after a plain scan, see ``_read_columnar``). A run
reads its two sides at the same time (:func:`read_sources`: one thread and one columnar connection each, so one
SQLite worker process or PostgreSQL backend each).

Sources (the names a definition's ``left.source``/``right.source`` use):

- ``trades``: our trades (current version), with ``counterparty_id`` to tell unknown counterparties.
- ``positions``: settled and traded quantity per account and ISIN, with the instrument's asset class and price.
- ``cash_movements``: cash movements with the reference a bank quotes (our instruction reference, else the trade's).
- ``settlement_instructions``: our instructions with their settled quantity, amount and date.
- ``statement_lines:<KIND>``: lines of imported statements of one kind (CASH, HOLDINGS, TRADE_CONFIRMATIONS,
  SETTLEMENT_CONFIRMATIONS), with their statement's date, reference and account. Holdings statements are
  snapshots: only each safekeeping account's latest statement (on or before the run date) is read.

``as_of`` limits each side to what was known on that date (trade date, value date, statement date).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy.orm import Session

from app.models.enums import StatementKind

from .. import columnar
from ..db import Database
from .config import SCALES, ConfigError, FieldSpec, ReconConfig, SideSpec
from .stored_units import STORED_UNITS

# Column kinds: t text, d date, i integer, q quantity (1e-6), p price (1e-8), m money (1e-4).
KIND_SCALE = {"q": SCALES["quantity"], "p": SCALES["price"], "m": SCALES["money"], "i": 0}
KIND_TYPES = {
    "t": ("text",),
    "d": ("date",),
    "q": ("quantity", "number"),
    "p": ("price", "number"),
    "m": ("money", "number"),
    "i": ("number", "text"),
}
_EPOCH = np.datetime64("1970-01-01", "D")


@dataclass(frozen=True)
class Source:
    name: str
    columns: dict[str, str]  # column -> kind
    identity: tuple[str, ...]
    sql: Callable[..., tuple[str, dict[str, Any]]]
    label: str
    #: Numeric columns whose integer units PostgreSQL stores (``stored_units``): the query built with ``units=True``
    #: also selects them as ``_u_<column>``.
    units: tuple[str, ...] = ()


def _num(expr: str, kind: str) -> str:
    # PostgreSQL's numeric -> bigint cast rounds half away from zero itself: ROUND first would be a second pass.
    return f"CAST({expr} * {10 ** KIND_SCALE[kind]} AS BIGINT)"


def _as_of(col: str, as_of: dt.date | None, params: dict[str, Any]) -> str:
    if as_of is None:
        return ""
    params["as_of"] = as_of
    return f" AND {col} <= :as_of"


def _stored_units(table: str, alias: str, units: bool) -> str:
    """The select list's stored-units columns (``_u_<column>``), when the reader asks for them (PostgreSQL)."""
    if not units:
        return ""
    return "".join(f"{alias}.{u} AS _u_{c}, " for c, u in STORED_UNITS[table].items())


def _trades_sql(as_of: dt.date | None, units: bool = False) -> tuple[str, dict[str, Any]]:
    p: dict[str, Any] = {}
    sql = f"""
        SELECT t.trade_ref, t.order_ref, t.isin, t.account_code AS account, t.counterparty_code AS counterparty,
               t.counterparty_id, t.side, t.quantity AS quantity, t.price AS price,
               t.currency, t.gross_amount AS gross_amount, t.net_amount AS net_amount,
               t.trade_date, t.settlement_date, t.status, t.source, {_stored_units("trades", "t", units)}t.id AS _ord
        FROM trades t WHERE 1 = 1{_as_of("t.trade_date", as_of, p)}
        ORDER BY _ord"""
    return sql, p


def _positions_sql(as_of: dt.date | None) -> tuple[str, dict[str, Any]]:
    # Bonds are quoted in % of nominal: the value of one unit is the price / 100.
    unit = (
        "CASE WHEN i.asset_class IN ('GOVT_BOND', 'CORP_BOND') THEN i.reference_price / 100 "
        "ELSE i.reference_price END"
    )
    sql = f"""
        SELECT a.code AS account, p.account_id, i.isin, i.asset_class, i.currency,
               p.settled_quantity AS settled_quantity,
               p.traded_quantity AS traded_quantity,
               i.reference_price AS price, {unit} AS unit_price, p.id AS _ord
        FROM positions p JOIN accounts a ON a.id = p.account_id JOIN instruments i ON i.id = p.instrument_id
        ORDER BY _ord"""
    return sql, {}


def _cash_sql(as_of: dt.date | None) -> tuple[str, dict[str, Any]]:
    p: dict[str, Any] = {}
    sql = f"""
        SELECT 'CASH-' || c.id AS movement_ref, c.id AS movement_id, a.code AS account, c.account_id, c.currency, c.kind,
               c.amount AS amount, c.value_date,
               COALESCE(si.instruction_ref, t.trade_ref) AS ref, si.instruction_ref, t.trade_ref, i.isin,
               c.id AS _ord
        FROM cash_movements c JOIN accounts a ON a.id = c.account_id
        LEFT JOIN settlement_instructions si ON si.id = c.instruction_id
        LEFT JOIN trades t ON t.id = c.trade_id
        LEFT JOIN instruments i ON i.id = t.instrument_id
        WHERE 1 = 1{_as_of("c.value_date", as_of, p)}
        ORDER BY _ord"""
    return sql, p


def _instructions_sql(as_of: dt.date | None) -> tuple[str, dict[str, Any]]:
    p: dict[str, Any] = {}
    sql = f"""
        SELECT si.instruction_ref, si.instruction_type, si.counterparty_ref, a.code AS account, si.account_id,
               cp.code AS counterparty, i.isin, si.quantity AS quantity,
               si.settled_quantity AS settled_quantity,
               si.settlement_amount AS settlement_amount,
               si.settled_amount AS settled_amount, si.currency, si.trade_date,
               si.intended_settlement_date, si.actual_settlement_date, si.status, si.reason_code,
               si.id AS _ord
        FROM settlement_instructions si JOIN accounts a ON a.id = si.account_id
        JOIN counterparties cp ON cp.id = si.counterparty_id JOIN instruments i ON i.id = si.instrument_id
        WHERE 1 = 1{_as_of("si.trade_date", as_of, p)}
        ORDER BY _ord"""
    return sql, p


def _lines_sql(kind: StatementKind) -> Callable[[dt.date | None], tuple[str, dict[str, Any]]]:
    def build(as_of: dt.date | None, units: bool = False) -> tuple[str, dict[str, Any]]:
        p: dict[str, Any] = {"kind": kind.value}
        latest = ""
        if kind == StatementKind.HOLDINGS:
            # A holdings statement is a snapshot: only the latest per safekeeping account counts.
            latest = (
                " AND s.statement_date = (SELECT max(s2.statement_date) FROM statements s2 WHERE s2.kind = s.kind"
                f" AND s2.account_identifier = s.account_identifier{_as_of('s2.statement_date', as_of, p)})"
            )
        sql = f"""
            SELECT l.id AS line_id, l.reference,
                   COALESCE(l.reference, COALESCE(s.statement_ref, '') || '#' || l.line_no) AS line_ref,
                   l.related_reference, l.value_date, l.entry_date, l.trade_date,
                   l.amount AS amount, l.currency, l.isin, l.quantity AS quantity,
                   l.price AS price, l.side, l.counterparty, l.account_identifier,
                   a.code AS account, s.account_id, s.statement_ref, s.statement_date, l.line_no,
                   s.account_identifier AS statement_account, s.sender,
                   {_stored_units("statement_lines", "l", units)}l.id AS _ord
            FROM statement_lines l JOIN statements s ON s.id = l.statement_id
            LEFT JOIN accounts a ON a.id = s.account_id
            WHERE s.kind = :kind{_as_of("s.statement_date", as_of, p)}{latest}
            ORDER BY _ord"""
        return sql, p

    return build


_LINE_COLUMNS = {
    "line_id": "i",
    "reference": "t",
    "line_ref": "t",  # the line's identity: its reference, else statement reference '#' line number
    "related_reference": "t",
    "value_date": "d",
    "entry_date": "d",
    "trade_date": "d",
    "amount": "m",
    "currency": "t",
    "isin": "t",
    "quantity": "q",
    "price": "p",
    "side": "t",
    "counterparty": "t",
    "account_identifier": "t",
    "account": "t",
    "account_id": "i",
    "statement_ref": "t",
    "statement_date": "d",
    "line_no": "i",
    "statement_account": "t",
    "sender": "t",
}

SOURCES: dict[str, Source] = {
    "trades": Source(
        "trades",
        {
            "trade_ref": "t",
            "order_ref": "t",
            "isin": "t",
            "account": "t",
            "counterparty": "t",
            "counterparty_id": "i",
            "side": "t",
            "quantity": "q",
            "price": "p",
            "currency": "t",
            "gross_amount": "m",
            "net_amount": "m",
            "trade_date": "d",
            "settlement_date": "d",
            "status": "t",
            "source": "t",
        },
        ("trade_ref",),
        _trades_sql,
        "our trades",
        tuple(STORED_UNITS["trades"]),
    ),
    "positions": Source(
        "positions",
        {
            "account": "t",
            "account_id": "i",
            "isin": "t",
            "asset_class": "t",
            "currency": "t",
            "settled_quantity": "q",
            "traded_quantity": "q",
            "price": "p",
            "unit_price": "p",
        },
        ("account", "isin"),
        _positions_sql,
        "our positions",
    ),
    "cash_movements": Source(
        "cash_movements",
        {
            "movement_ref": "t",
            "movement_id": "i",
            "account": "t",
            "account_id": "i",
            "currency": "t",
            "kind": "t",
            "amount": "m",
            "value_date": "d",
            "ref": "t",
            "instruction_ref": "t",
            "trade_ref": "t",
            "isin": "t",
        },
        ("movement_ref",),
        _cash_sql,
        "our cash movements",
    ),
    "settlement_instructions": Source(
        "settlement_instructions",
        {
            "instruction_ref": "t",
            "instruction_type": "t",
            "counterparty_ref": "t",
            "account": "t",
            "account_id": "i",
            "counterparty": "t",
            "isin": "t",
            "quantity": "q",
            "settled_quantity": "q",
            "settlement_amount": "m",
            "settled_amount": "m",
            "currency": "t",
            "trade_date": "d",
            "intended_settlement_date": "d",
            "actual_settlement_date": "d",
            "status": "t",
            "reason_code": "t",
        },
        ("instruction_ref",),
        _instructions_sql,
        "our settlement instructions",
    ),
}
for _kind in StatementKind:
    SOURCES[f"statement_lines:{_kind.value}"] = Source(
        f"statement_lines:{_kind.value}",
        dict(_LINE_COLUMNS),
        ("line_ref",),
        _lines_sql(_kind),
        f"{_kind.value.lower().replace('_', ' ')} statement lines",
        tuple(STORED_UNITS["statement_lines"]),
    )


def source_columns() -> dict[str, set[str]]:
    """Source name -> its column names (for validating a definition's config)."""
    return {name: set(s.columns) for name, s in SOURCES.items()}


def check_types(config: ReconConfig) -> None:
    """Each field's type must suit the columns it reads on both sides (a money field on a date column is refused)."""
    for side_name, side in (("left", config.left), ("right", config.right)):
        cols = SOURCES[side.source].columns
        for f in config.fields.values():
            col = f.left if side_name == "left" else f.right
            kind = cols[col]
            if f.type not in KIND_TYPES[kind]:
                wanted = " or ".join(KIND_TYPES[kind])
                raise ConfigError(
                    f"fields.{f.name}.type: the {side_name} column {col!r} holds {wanted}, not {f.type}"
                )
            if f.numeric and kind in KIND_SCALE and (f.scale or 0) < KIND_SCALE[kind]:
                raise ConfigError(
                    f"fields.{f.name}.scale: {f.scale} decimals would cut the {side_name} column {col!r} "
                    f"({KIND_SCALE[kind]} decimals)"
                )


# --------------------------------------------------------------------------------------------------------------------


def _days(values: pd.Series) -> pd.Series:
    """Dates (ISO text from SQLite, date objects from PostgreSQL) as nullable Int64 day numbers."""
    # Few distinct dates in millions of rows: parse each once (factorize hashes; no sort of strings).
    codes, uniq = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
    parsed = pd.to_datetime(
        pd.Series([str(u) for u in uniq], dtype=object), errors="coerce", format="ISO8601"
    )
    table = np.append(parsed.to_numpy().astype("datetime64[D]"), np.datetime64("NaT", "D"))
    days = table[codes]  # the sentinel -1 picks the NaT at the end
    null = np.isnat(days)
    out = pd.array(np.where(null, 0, (days - _EPOCH).astype(np.int64)), dtype="Int64")
    out[null] = pd.NA
    return pd.Series(out, index=values.index)


def needed_columns(config: ReconConfig, which: str) -> list[str]:
    """The source columns a definition reads on one side (fields, filters, identity): nothing else is fetched."""
    side = config.left if which == "left" else config.right
    src = SOURCES[side.source]
    cols = [f.left if which == "left" else f.right for f in config.fields.values()]
    cols += list(side.where) + list(side.identity or src.identity)
    return [c for c in src.columns if c in set(cols)]


def read_source(
    session: Session,
    name: str,
    as_of: dt.date | None = None,
    columns: list[str] | None = None,
    *,
    db: Database | None = None,
) -> pd.DataFrame:
    """Rows of a source as a typed frame (numbers Int64 of the column's scale, dates Int64 day numbers, text as
    Arrow-backed strings).

    Only ``columns`` are fetched (default: all), in one query, no ORM, no row objects. With ``db`` the rows come
    columnar through ADBC (``app.services.columnar``: committed data, Arrow buffers straight into the frame);
    without it, or where ADBC is unavailable (logged there), through the session's own driver connection:
    PostgreSQL streams CSV (``COPY (query) TO STDOUT``) parsed by Arrow, SQLite hands back one ``fetchall``.
    """
    src = SOURCES[name]
    sql, params = src.sql(as_of)
    cols = columns or list(src.columns)
    pg = session.get_bind().dialect.name == "postgresql"
    if db is not None:
        with columnar.reader(db) as r:
            if r.via == "adbc":
                return _read_columnar(r, src, sql, params, cols, pg)
    conn = session.connection()
    raw = conn.connection.driver_connection
    if pg:
        return _read_postgres(raw, src, sql, params, cols)
    return _read_sqlite(raw, src, sql, params, cols)


def read_sources(
    session: Session, db: Database, wanted: list[tuple[str, dt.date | None, list[str] | None]]
) -> list[pd.DataFrame]:
    """Several sources, columnar through ADBC where it is available (else through the session, logged once).

    The columnar reads run side by side, one thread each on a connection of its own (SQLite: one worker process
    each; PostgreSQL: one server backend each): the drivers, the workers and Arrow's conversions release the GIL,
    so on two cores the two sides of a recon take about as long as the longer one. Each read is its own snapshot,
    as it was when they ran one after the other. Where ADBC is unavailable the reads go through the session, one
    after the other (one connection)."""
    if len(wanted) < 2:
        return [read_source(session, n, a, c, db=db) for n, a, c in wanted]
    pg = session.get_bind().dialect.name == "postgresql"

    def columnar_read(item: tuple[str, dt.date | None, list[str] | None]) -> pd.DataFrame | None:
        name, as_of, columns = item
        src = SOURCES[name]
        # PostgreSQL: the numbers' stored integer units where the source has them (migration 0019).
        sql, params = src.sql(as_of, units=True) if pg and src.units else src.sql(as_of)
        with columnar.reader(db) as r:
            if r.via != "adbc":
                return None
            return _read_columnar(r, src, sql, params, columns or list(src.columns), pg)

    with ThreadPoolExecutor(max_workers=len(wanted), thread_name_prefix="recon-read") as pool:
        frames = list(pool.map(columnar_read, wanted))
    return [
        frame if frame is not None else read_source(session, n, a, c)
        for frame, (n, a, c) in zip(frames, wanted, strict=True)
    ]


_COLUMNAR_KIND = {"t": "text", "d": "days", "i": "int"}


def _read_columnar(
    r: columnar.Reader, src: Source, sql: str, params: dict[str, Any], cols: list[str], pg: bool
) -> pd.DataFrame:
    if pg:
        # Exact integers and day numbers made by the server (cheaper on the wire than numeric text). The server
        # scans the table in its physical order and the rows are put in id order here: an ORDER BY walks the
        # primary key and visits the heap page by page in index order, which cost the server a third more (measured
        # on a million trades); the heap is usually in id order already, then checking that is all it costs.
        # The parameters go in as literals: ADBC streams a query without parameters with a binary COPY, and one
        # with parameters through an ordinary result that libpq holds whole in memory first (a third more CPU).
        # Dates go as dates: the driver reads them as day numbers already, and a date subtraction in the server
        # cost it a tenth of a second a column per million rows (measured), at a moment when both cores are busy.
        exprs = ", ".join(_pg_expr(src, c, dates=True, units=c in src.units) for c in cols)
        outer = f"SELECT {exprs}, q._ord FROM ({_unordered(sql)}) q"
        kinds = {c: {"t": "text", "d": "days"}.get(src.columns[c], "int") for c in cols}
        table = r.arrow(_inline(outer, params), None, {**kinds, "_ord": "int"})
        return columnar.to_frame(_in_id_order(table).drop_columns(["_ord"]))
    kinds = {c: _COLUMNAR_KIND.get(src.columns[c]) or f"units:{KIND_SCALE[src.columns[c]]}" for c in cols}
    return r.frame(sql, params, kinds)


_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def _literal(value: Any) -> str:
    """A source query's parameter as a PostgreSQL literal (the values are dates and statement kinds)."""
    if isinstance(value, dt.datetime):
        raise TypeError("a datetime parameter is not expected in a source query")
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("a NUL character cannot be a query parameter")
        return "'" + value.replace("'", "''") + "'"  # standard_conforming_strings: only quotes are special
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"a {type(value).__name__} parameter is not expected in a source query")


def _inline(sql: str, params: dict[str, Any]) -> str:
    """``sql`` with its ``:name`` parameters written in as literals."""
    return _PARAM.sub(lambda m: _literal(params[m.group(1)]), sql)


_ORDER = " ORDER BY _ord"


def _unordered(sql: str) -> str:
    """A source's query without its final ORDER BY (the rows are ordered by :func:`_in_id_order` instead)."""
    body = sql.rstrip()
    if not body.endswith(_ORDER):
        raise ValueError("a source's query must end with ORDER BY _ord")
    return body[: -len(_ORDER)]


def _in_id_order(table: pa.Table) -> pa.Table:
    """The rows in ``_ord`` (row id) order, as the ordered query would give them; untouched when they already are."""
    ids = table.column("_ord").to_numpy()
    if len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1])):
        return table
    return table.take(pa.array(np.argsort(ids, kind="stable")))


def _pg_expr(src: Source, c: str, dates: bool = False, units: bool = False) -> str:
    """The select expression of a source column: numbers as exact integer units (with ``units``, the stored ones
    where the row has them); dates as day numbers, or as they are with ``dates`` (a reader that takes dates)."""
    kind = src.columns[c]
    if kind in ("q", "p", "m"):
        cast = _num("q." + c, kind)  # exact: numeric arithmetic in the server
        # The stored units are NULL only where the number is (or is too large for them): the cast then decides.
        return f"COALESCE(q._u_{c}, {cast}) AS {c}" if units else f"{cast} AS {c}"
    if kind == "d" and not dates:
        return f"(q.{c} - DATE '1970-01-01') AS {c}"  # day numbers, whatever the DateStyle
    return f"q.{c}"


def _read_postgres(raw: Any, src: Source, sql: str, params: dict[str, Any], cols: list[str]) -> pd.DataFrame:
    outer = f"SELECT {', '.join(_pg_expr(src, c) for c in cols)} FROM ({sql}) q"
    outer = outer.replace(":as_of", "%(as_of)s").replace(":kind", "%(kind)s")
    buf = io.BytesIO()
    cur = raw.cursor()
    try:
        # COPY takes no server-side parameters: psycopg merges them into the statement client-side.
        with cur.copy(f"COPY ({outer}) TO STDOUT WITH (FORMAT csv)", params or None) as copy:
            for chunk in copy:
                buf.write(chunk)
    finally:
        cur.close()
    types = {c: (pa.large_string() if src.columns[c] == "t" else pa.int64()) for c in cols}
    if buf.tell() == 0:
        table = pa.table({c: pa.array([], type=types[c]) for c in cols})
    else:
        buf.seek(0)
        table = pacsv.read_csv(
            buf,
            read_options=pacsv.ReadOptions(column_names=cols),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                # PostgreSQL's CSV: NULL is an empty unquoted field, an empty text is "" (quoted).
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    frame = pd.DataFrame(index=pd.RangeIndex(table.num_rows))
    for c in cols:
        arr = table.column(c)
        if src.columns[c] == "t":
            frame[c] = pd.Series(pd.arrays.ArrowStringArray(arr), index=frame.index)
        else:
            values = arr.fill_null(0).to_numpy().astype(np.int64, copy=False)
            frame[c] = pd.arrays.IntegerArray(values, arr.is_null().to_numpy(zero_copy_only=False))
    return frame


def _read_sqlite(raw: Any, src: Source, sql: str, params: dict[str, Any], cols: list[str]) -> pd.DataFrame:
    outer = f"SELECT {', '.join('q.' + c for c in cols)} FROM ({sql}) q"
    cur = raw.cursor()
    try:
        cur.execute(outer, params)
        rows = cur.fetchall()
    finally:
        cur.close()
    n = len(rows)
    # One C loop turns the row tuples into a 2-D object array; its columns are then converted one by one.
    grid = np.array(rows, dtype=object) if n else np.empty((0, len(cols)), dtype=object)
    del rows
    frame = pd.DataFrame(index=pd.RangeIndex(n))
    for j, c in enumerate(cols):
        kind = src.columns[c]
        values = grid[:, j]
        if kind == "d":
            frame[c] = _days(pd.Series(values, dtype=object))
        elif kind in KIND_SCALE:
            frame[c] = _sqlite_units(values, kind)
        else:
            try:
                arrow = pa.array(values, type=pa.large_string())
            except (TypeError, ValueError, pa.ArrowException):  # a number in a text column: as its text
                arrow = pa.array([None if v is None else str(v) for v in values], type=pa.large_string())
            # Arrow strings: the engine dictionary-encodes them without touching a Python object again.
            frame[c] = pd.Series(pd.arrays.ArrowStringArray(arrow), index=frame.index)
    return frame


_EXACT = 2**53  # doubles hold every integer below this exactly


def _sqlite_units(values: np.ndarray, kind: str) -> pd.arrays.IntegerArray:
    """SQLite numbers (integers, or doubles for Numeric columns) as int64 units of the kind's scale.

    The same arithmetic SQLite's ``CAST(ROUND(x * 10^s) AS BIGINT)`` does, vectorised: multiply as doubles,
    add 0.5 away from zero, truncate. A double holds at most 15 significant digits exactly, so the product is
    within a hair of the exact decimal's integer and rounding recovers it. Integer columns are taken as they are.
    """
    null = pd.isna(values)
    filled = np.where(null, 0, values) if null.any() else values
    scale = KIND_SCALE[kind]
    if scale == 0:
        return pd.arrays.IntegerArray(filled.astype(np.int64), null)
    x = filled.astype(np.float64) * float(10**scale)
    units = np.trunc(x + np.where(x < 0, -0.5, 0.5))
    out = units.astype(np.int64)
    big = np.abs(x) >= _EXACT
    for i in np.flatnonzero(big):  # beyond a double's integers: integers stay exact, doubles as SQLite does
        v = filled[i]
        out[i] = int(v) * 10**scale if isinstance(v, int) else int(units[i])
    return pd.arrays.IntegerArray(out, null)


def _apply_where(frame: pd.DataFrame, side: SideSpec) -> pd.DataFrame:
    if not side.where:
        return frame
    keep = np.ones(len(frame), dtype=bool)
    for col, cond in side.where.items():
        op, val = next(iter(cond.items()))
        s = frame[col]
        if op == "not_null":
            m = s.notna().to_numpy() == bool(val if val is not None else True)
        elif op == "is_null":
            m = s.isna().to_numpy() == bool(val if val is not None else True)
        elif op in ("eq", "ne"):
            m = (s == val).fillna(False).to_numpy(dtype=bool)
            m = m if op == "eq" else ~m
        else:
            m = s.isin(val).to_numpy(dtype=bool)
            m = m if op == "in" else ~m
        keep &= m
    return frame.loc[keep].reset_index(drop=True)


def _identity(frame: pd.DataFrame, cols: tuple[str, ...]) -> pd.Series:
    """Each record's identity: its identity column ('' where missing), or the columns joined with '|'."""
    if len(cols) == 1:
        s = frame[cols[0]]
        if isinstance(s.dtype, pd.StringDtype) or (
            s.dtype == object and (len(s) == 0 or isinstance(s.iloc[0], str))
        ):
            null = s.isna()
            return s.where(~null, "") if null.any() else s
    parts = [frame[c].astype(object).where(frame[c].notna(), "").astype(str) for c in cols]
    ident = parts[0]
    for p in parts[1:]:
        ident = ident + "|" + p
    return ident


def prepare(frame: pd.DataFrame, side: SideSpec, config: ReconConfig, which: str) -> pd.DataFrame:
    """The engine's view of a source frame: filtered by ``where``, ``_id`` plus one column per config field."""
    src = SOURCES[side.source]
    frame = _apply_where(frame, side)
    out = pd.DataFrame(index=frame.index)
    ident_cols = side.identity or src.identity
    ids = _identity(frame, ident_cols)
    out["_id"] = ids
    for f in config.fields.values():
        col = f.left if which == "left" else f.right
        out[f.name] = _rescale(frame[col], f, src.columns[col])
    return out


def _rescale(s: pd.Series, f: FieldSpec, kind: str) -> pd.Series:
    if not f.numeric or kind not in KIND_SCALE:
        return s
    shift = (f.scale or 0) - KIND_SCALE[kind]
    return s * (10**shift) if shift else s


def read_side(
    session: Session,
    config: ReconConfig,
    which: str,
    as_of: dt.date | None = None,
    *,
    db: Database | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(raw source frame, engine frame) for one side of a definition."""
    side = config.left if which == "left" else config.right
    raw = read_source(session, side.source, as_of, needed_columns(config, which), db=db)
    return raw, prepare(raw, side, config, which)
