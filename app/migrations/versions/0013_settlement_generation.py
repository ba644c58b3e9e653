"""settlement generation: partial indexes on the instructions' owner and replaced-obligation columns

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-21

``settlement_instructions.owner_id`` and ``replaces_id`` are NULL for most instructions (nobody has claimed it, it
replaces nothing), and no query reads their indexes for the NULLs: the queue looks the values up (a clerk's items,
the obligation a replacement came from) and finds the unowned instructions through its sort index. Both indexes
become partial (``WHERE column IS NOT NULL``): they hold only the rows they are read for, and a newly generated
instruction - PENDING, unclaimed, replacing nothing - adds no entry to either, so a generation run of a million
trades rebuilds two indexes of nothing instead of two of 620,000 entries. PostgreSQL and SQLite (3.8+) both use a
partial index for ``column = value`` / ``column IN (...)``, which imply ``IS NOT NULL``. (``reason_code`` keeps its
full index: the queue's count per reason reads it in order.)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "settlement_instructions"
# Written out (a migration never imports the models, whose later edits would change what an old revision does).
COLUMNS = ("owner_id", "replaces_id")


def upgrade() -> None:
    for column in COLUMNS:
        name = f"ix_{TABLE}_{column}"
        where = sa.text(f"{column} IS NOT NULL")
        op.drop_index(name, table_name=TABLE)
        op.create_index(name, TABLE, [column], postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for column in COLUMNS:
        name = f"ix_{TABLE}_{column}"
        op.drop_index(name, table_name=TABLE)
        op.create_index(name, TABLE, [column])
