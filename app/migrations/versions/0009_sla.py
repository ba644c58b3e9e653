"""SLA monitors: current item states, richer events, last evaluation time, regulatory reports

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-21

- ``sla_item_states``: the state the last recorded evaluation gave each open item (the evaluator writes an event
  only where a fresh evaluation differs from it).
- ``sla_events.business_date`` (attainment per day as a GROUP BY) and ``sla_events.owner_id`` (whom to alert).
- ``sla_definitions.last_evaluated_at``: items closed since then get their final MET/BREACHED event.
- ``regulatory_reports``: when a trade's transaction report was filed (the T+1 reporting SLA reads it).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sla_item_states",
        sa.Column("sla_id", _ID, nullable=False),
        sa.Column("item_id", _ID, nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "ON_TRACK",
                "AT_RISK",
                "BREACHED",
                "MET",
                name="slastate",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("due_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("since", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("owner_id", _ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["sla_id"],
            ["sla_definitions.id"],
            name=op.f("fk_sla_item_states_sla_id_sla_definitions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sla_id", "item_id", name=op.f("pk_sla_item_states")),
    )
    op.create_table(
        "regulatory_reports",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("trade_id", _ID, nullable=False),
        sa.Column("regime", sa.String(length=16), nullable=False),
        sa.Column("report_ref", sa.String(length=64), nullable=True),
        sa.Column("reported_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by_id", _ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"], ["users.id"], name=op.f("fk_regulatory_reports_recorded_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["trade_id"],
            ["trades.id"],
            name=op.f("fk_regulatory_reports_trade_id_trades"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_regulatory_reports")),
    )
    with op.batch_alter_table("regulatory_reports", schema=None) as batch_op:
        batch_op.create_index("ix_regulatory_reports_trade_regime", ["trade_id", "regime"], unique=True)

    with op.batch_alter_table("sla_definitions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_evaluated_at", app.models.base.UTCDateTime(timezone=True), nullable=True)
        )

    with op.batch_alter_table("sla_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("business_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("owner_id", _ID, nullable=True))
        batch_op.create_index("ix_sla_events_sla_business_date", ["sla_id", "business_date"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sla_events", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_events_sla_business_date")
        batch_op.drop_column("owner_id")
        batch_op.drop_column("business_date")

    with op.batch_alter_table("sla_definitions", schema=None) as batch_op:
        batch_op.drop_column("last_evaluated_at")

    with op.batch_alter_table("regulatory_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_regulatory_reports_trade_regime")

    op.drop_table("regulatory_reports")
    op.drop_table("sla_item_states")
