"""The index behind the blotter's free-text search on trade, order and source references.

The filter bar's text matches a trade when any of its three references contains the term (``LIKE '%term%'``: case
does not matter, ``%`` and ``_`` in the term are wildcards). At a million trades that is a scan of every row
(2.5 s on SQLite), so migration 0011 builds an index that finds the candidates first:

- **SQLite**: an FTS5 table with the trigram tokenizer (:data:`FTS_TABLE`), external content over ``trades`` (it
  stores only the index, not a second copy of the references), kept in step by triggers on insert, delete and an
  update of a reference. Since migration 0016 it keeps no column sizes (``columnsize=0``: they serve only
  ranking, which the blotter does not use), which makes indexing an import 40% cheaper. A phrase query
  ``"term"`` finds every row whose reference contains the term, whatever its case; the LIKE is then checked on those rows only, so the result is exactly the scan's.
- **PostgreSQL**: pg_trgm GIN indexes on the three columns (:data:`TRGM_INDEXES`), which serve ``ILIKE`` itself.
  Where the database role may not create the extension the migration leaves the indexes out and the same query
  scans, as before.

Trigrams need three characters: a term (or each part between wildcards) shorter than that cannot use the index
and the search scans, as it always did. These objects are not in the SQLAlchemy models (neither has a model-level
spelling), so Alembic's autogenerate must not see them: :func:`include_object` (env.py and the migration test).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.services.recon.stored_units import is_stored_units

#: The FTS5 table (its shadow tables are named ``trades_search_*``).
FTS_TABLE = "trades_search"
#: The referenced columns, in the FTS table's order.
SEARCH_COLUMNS = ("trade_ref", "order_ref", "source_ref")
#: PostgreSQL's trigram indexes, one per column.
TRGM_INDEXES = tuple(f"ix_trades_{c}_trgm" for c in SEARCH_COLUMNS)
#: The shortest literal stretch trigrams can look up.
MIN_TERM = 3

_WILDCARDS = re.compile(r"[%_]")


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic autogenerate filter: leave out the search objects and the stored integer units (PostgreSQL's generated
    columns for the reconciliation), which the models do not describe."""
    if name is None:
        return True
    if type_ == "column" and is_stored_units(getattr(getattr(obj, "table", None), "name", None), name):
        return False
    if type_ == "table" and (name == FTS_TABLE or name.startswith(FTS_TABLE + "_")):
        return False
    return not (type_ == "index" and name in TRGM_INDEXES)


def literal_parts(term: str) -> list[str]:
    """The stretches of a LIKE term between its wildcards that are long enough for a trigram lookup."""
    return [p for p in _WILDCARDS.split(term) if len(p) >= MIN_TERM]


def fts_query(term: str) -> str | None:
    """The FTS5 query that finds every row a ``LIKE '%term%'`` on a reference could match (a superset: the LIKE
    is checked after), or None when no part of the term is long enough (then the search scans)."""
    parts = literal_parts(term)
    if not parts:
        return None
    return " AND ".join('"' + p.replace('"', '""') + '"' for p in parts)


_has_fts: dict[str, bool] = {}
_lock = threading.Lock()


def sqlite_has_index(conn: Connection) -> bool:
    """Whether this SQLite database has the FTS table (a database not yet upgraded to 0011 scans)."""
    key = str(conn.engine.url)
    with _lock:
        known = _has_fts.get(key)
    if known is not None:
        return known
    found = (
        conn.execute(
            text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :n"), {"n": FTS_TABLE}
        ).first()
        is not None
    )
    with _lock:
        _has_fts[key] = found
    return found


def forget(url: str | None = None) -> None:
    """Forget what :func:`sqlite_has_index` learnt (after a migration changed the schema under a running app)."""
    with _lock:
        if url is None:
            _has_fts.clear()
        else:
            _has_fts.pop(url, None)


#: The SQLite trigger that indexes each inserted trade (migration 0011).
INSERT_TRIGGER = "trades_search_ai"
#: FTS5 collects the terms of the rows being indexed in memory and writes them out as a new segment of the index
#: whenever they pass ``hashsize`` (1 MiB by default); the segments are then merged, again and again as they pile
#: up. For a bulk insert the limit is raised to BULK_HASH_BYTES (memory taken only as terms come), then set back
#: to FTS5's default. Measured CPU time for indexing the references of 1,000,000 trades: 14.8 s with 1 MiB, 5.7 s
#: with 64 MiB (6.0 s with 256 MiB); 200,000 trades: 2.0 s and 1.1 s.
FTS5_HASH_BYTES = 1024 * 1024
BULK_HASH_BYTES = 64 * 1024 * 1024


@contextlib.contextmanager
def bulk_inserts(session: Session) -> Iterator[None]:
    """Around a bulk insert of new trades (ids above every existing one, as capture's ``allocate_ids`` gives):
    index them in one statement at the end instead of one trigger firing per row.

    FTS5 writes its pending terms out as a new segment at every statement that touches it, and a trigger makes
    that one segment per inserted row: measured, 66 µs a row against 8.6 µs for the same rows indexed by one
    ``INSERT … SELECT`` (and that statement runs with a larger ``hashsize``, see BULK_HASH_BYTES). Inside the
    caller's transaction the insert trigger is dropped and, after the block, the new rows are indexed and the trigger created again from its own stored definition; a failure rolls it all
    back with the import. Updates and deletes keep their triggers. PostgreSQL: nothing to do (a GIN index takes
    COPY in its pending list).
    """
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        yield
        return
    trigger = conn.execute(
        text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :n"), {"n": INSERT_TRIGGER}
    ).scalar()
    if not trigger:
        yield  # a database without the index (not yet upgraded to 0011)
        return
    before = int(conn.execute(text("SELECT coalesce(max(id), 0) FROM trades")).scalar() or 0)
    conn.execute(text(f"DROP TRIGGER {INSERT_TRIGGER}"))
    yield
    cols = ", ".join(SEARCH_COLUMNS)
    conn.execute(text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) VALUES ('hashsize', {BULK_HASH_BYTES})"))
    conn.execute(
        text(f"INSERT INTO {FTS_TABLE}(rowid, {cols}) SELECT id, {cols} FROM trades WHERE id > :before"),
        {"before": before},
    )
    conn.execute(text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) VALUES ('hashsize', {FTS5_HASH_BYTES})"))
    conn.execute(text(str(trigger)))


__all__ = [
    "INSERT_TRIGGER",
    "bulk_inserts",
    "FTS_TABLE",
    "MIN_TERM",
    "SEARCH_COLUMNS",
    "TRGM_INDEXES",
    "forget",
    "fts_query",
    "include_object",
    "literal_parts",
    "sqlite_has_index",
]
