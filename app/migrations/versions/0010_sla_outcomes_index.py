"""SLA events: a covering index for the dashboard's outcomes per SLA and day

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-21

The SLA monitor's attainment trend counts MET and BREACHED items per SLA and business date over 30 days of event
history; with (business_date, state, sla_id, item_id) SQLite and PostgreSQL answer it from the index alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sla_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sla_events_outcomes", ["business_date", "state", "sla_id", "item_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sla_events", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_events_outcomes")
