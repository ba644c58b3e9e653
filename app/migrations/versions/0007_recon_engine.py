"""reconciliation engine: recon_run_pairs, every one-to-one match of a run's pass stored compactly

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21

A run used to write one ``recon_matches`` row per matched pair (a million rows per run of a million records). The
pairs now go to ``recon_run_pairs``, one row per run and pass holding two JSON arrays of identities;
``recon_matches`` keeps aggregations, pairs that closed a break, and manual matches.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "recon_run_pairs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("definition_id", _ID, nullable=False),
        sa.Column("pass_name", sa.String(length=64), nullable=False),
        sa.Column("pairs", sa.Integer(), nullable=False),
        sa.Column("left_refs", sa.Text(), nullable=False),
        sa.Column("right_refs", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["definition_id"],
            ["recon_definitions.id"],
            name=op.f("fk_recon_run_pairs_definition_id_recon_definitions"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["recon_runs.id"], name=op.f("fk_recon_run_pairs_run_id_recon_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_run_pairs")),
    )
    with op.batch_alter_table("recon_run_pairs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recon_run_pairs_definition_id"), ["definition_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_recon_run_pairs_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recon_run_pairs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recon_run_pairs_run_id"))
        batch_op.drop_index(batch_op.f("ix_recon_run_pairs_definition_id"))
    op.drop_table("recon_run_pairs")
