"""statements import: statements.extra (balances by type, message id, period, sequence keys)

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-21

The importer keeps on each statement what its columns cannot hold: every balance the sender gave (camt has a dozen
types), the message id, the statement period and the sequence keys the next import compares with to flag gaps and
overlaps. Existing rows get an empty document.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("statements", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "extra",
                sa.JSON()
                .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
                .with_variant(sqlite.JSON(), "sqlite"),
                server_default=sa.text("'{}'"),
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("statements", schema=None) as batch_op:
        batch_op.drop_column("extra")
