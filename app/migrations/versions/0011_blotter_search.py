"""blotter search: a trigram index on the trade, order and source references

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-21

The blotter's free-text search (``LIKE '%term%'`` on three references) scanned every trade: 2.5 s at a million.

- SQLite: an FTS5 table ``trades_search`` with the trigram tokenizer, external content over ``trades`` (only the
  index is stored), filled from the existing trades and kept in step by three triggers. The update trigger fires
  only when a reference changes, so status changes and other bulk updates of trades do not touch the index.
- PostgreSQL: ``pg_trgm`` and a GIN trigram index per column. Creating the extension needs a privilege the
  application's role may lack; then the migration says so in the log and leaves the indexes out, and the search
  scans as it did before (the query is the same ILIKE either way).

Neither object has a spelling in the SQLAlchemy models, so autogenerate leaves them out
(``app.services.trade_search.include_object``). The DDL is written out here, frozen with the revision.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from alembic import op
from sqlalchemy import exc, text

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

COLUMNS = ("trade_ref", "order_ref", "source_ref")
_COLS = ", ".join(COLUMNS)
_NEW = ", ".join(f"new.{c}" for c in COLUMNS)
_OLD = ", ".join(f"old.{c}" for c in COLUMNS)

SQLITE_UP = (
    f"CREATE VIRTUAL TABLE trades_search USING fts5({_COLS}, content='trades', content_rowid='id', "
    "tokenize='trigram')",
    "INSERT INTO trades_search(trades_search) VALUES ('rebuild')",
    f"CREATE TRIGGER trades_search_ai AFTER INSERT ON trades BEGIN "
    f"INSERT INTO trades_search(rowid, {_COLS}) VALUES (new.id, {_NEW}); END",
    f"CREATE TRIGGER trades_search_ad AFTER DELETE ON trades BEGIN "
    f"INSERT INTO trades_search(trades_search, rowid, {_COLS}) VALUES ('delete', old.id, {_OLD}); END",
    f"CREATE TRIGGER trades_search_au AFTER UPDATE OF id, {_COLS} ON trades BEGIN "
    f"INSERT INTO trades_search(trades_search, rowid, {_COLS}) VALUES ('delete', old.id, {_OLD}); "
    f"INSERT INTO trades_search(rowid, {_COLS}) VALUES (new.id, {_NEW}); END",
)
SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS trades_search_au",
    "DROP TRIGGER IF EXISTS trades_search_ad",
    "DROP TRIGGER IF EXISTS trades_search_ai",
    "DROP TABLE IF EXISTS trades_search",
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for sql in SQLITE_UP:
            op.execute(sql)
        return
    if bind.dialect.name != "postgresql":
        return
    # A savepoint: a refused CREATE EXTENSION must not abort the migration's transaction.
    savepoint = bind.begin_nested()
    try:
        bind.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except exc.DBAPIError as err:
        savepoint.rollback()
        log.warning(
            "pg_trgm could not be created (%s): the blotter's free-text search will scan the trades table. "
            "An administrator can add the index later: CREATE EXTENSION pg_trgm, then the three CREATE INDEX "
            "... gin_trgm_ops statements of migration 0011.",
            str(err.orig).strip().splitlines()[0] if err.orig else err,
        )
        return
    savepoint.commit()
    for column in COLUMNS:
        op.execute(
            f"CREATE INDEX IF NOT EXISTS ix_trades_{column}_trgm ON trades USING gin ({column} gin_trgm_ops)"
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for sql in SQLITE_DOWN:
            op.execute(sql)
        return
    if bind.dialect.name == "postgresql":
        for column in COLUMNS:
            op.execute(f"DROP INDEX IF EXISTS ix_trades_{column}_trgm")
        # The extension stays: other objects (or another application's) may use it, and dropping it needs the
        # privilege creating it did.
