"""SLA monitor reads stored data: per-day outcomes, open items per deadline and owner, deadlines as integers

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-21

The monitor pane refreshes from what the (background) evaluation stored instead of evaluating:

- ``sla_daily_outcomes``: distinct MET and BREACHED items per SLA and business date, the aggregate of
  ``sla_events`` the attainment tiles and trends read; filled here from the existing history, then kept by every
  recording evaluation;
- ``sla_due_counts``: open items per SLA, deadline and owner, the aggregate of ``sla_item_states`` the tiles'
  counts by state (deadline ranges at the moment of reading) and the workload read; filled here, then moved by
  every recording evaluation;
- ``sla_item_states.due_s``: the deadline as epoch seconds, so the evaluator's bulk read of the stored states
  (which now compares deadlines too) reads integers instead of parsing a timestamp per row. Filled here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _epoch(col: str) -> str:
    if op.get_bind().dialect.name == "postgresql":
        return f"CAST(EXTRACT(EPOCH FROM {col}) AS BIGINT)"
    return f"CAST(ROUND((julianday({col}) - 2440587.5) * 86400.0) AS INTEGER)"


def upgrade() -> None:
    with op.batch_alter_table("sla_item_states", schema=None) as batch_op:
        batch_op.add_column(sa.Column("due_s", sa.BigInteger(), nullable=True))
    op.execute(f"UPDATE sla_item_states SET due_s = {_epoch('due_at')}")

    op.create_table(
        "sla_daily_outcomes",
        sa.Column("sla_id", _ID, nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("met", sa.Integer(), nullable=False),
        sa.Column("breached", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sla_id"],
            ["sla_definitions.id"],
            name=op.f("fk_sla_daily_outcomes_sla_id_sla_definitions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sla_id", "business_date", name=op.f("pk_sla_daily_outcomes")),
    )
    # The history recorded so far, aggregated as the evaluator keeps it from now on.
    op.execute(
        "INSERT INTO sla_daily_outcomes (sla_id, business_date, met, breached) "
        "SELECT sla_id, business_date, "
        "COUNT(DISTINCT CASE WHEN state = 'MET' THEN item_id END), "
        "COUNT(DISTINCT CASE WHEN state = 'BREACHED' THEN item_id END) "
        "FROM sla_events WHERE state IN ('MET', 'BREACHED') AND business_date IS NOT NULL "
        "GROUP BY sla_id, business_date"
    )

    op.create_table(
        "sla_due_counts",
        sa.Column("sla_id", _ID, nullable=False),
        sa.Column("due_s", sa.BigInteger(), nullable=False),
        sa.Column("owner_key", _ID, nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sla_id"],
            ["sla_definitions.id"],
            name=op.f("fk_sla_due_counts_sla_id_sla_definitions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sla_id", "due_s", "owner_key", name=op.f("pk_sla_due_counts")),
    )
    op.execute(
        "INSERT INTO sla_due_counts (sla_id, due_s, owner_key, items) "
        "SELECT sla_id, due_s, COALESCE(owner_id, -1), COUNT(*) FROM sla_item_states "
        "GROUP BY sla_id, due_s, COALESCE(owner_id, -1)"
    )


def downgrade() -> None:
    op.drop_table("sla_due_counts")
    op.drop_table("sla_daily_outcomes")
    with op.batch_alter_table("sla_item_states", schema=None) as batch_op:
        batch_op.drop_column("due_s")
