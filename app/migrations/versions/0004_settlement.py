"""settlement instructions, netting, lifecycle

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-21

Settlement core (issue 4):

* ``settlement_instructions``: ``exception_kind`` (GIVE_UP / OUT_TRADE for the futures exceptions worked in the
  settlement queue), ``replaces_id`` (un-netting: the cancelled obligation a replacement came from; no foreign key, see the model) and
  ``escalated_at``.
* ``fail_penalties``: ``direction`` (DEBIT we pay / CREDIT we receive), ``reason_code`` and ``accrued_at``.
* ``clearing_exceptions``: the give-up / out-trade details behind an exception row.
* The settlement queue's sort and filter indexes on ``settlement_instructions`` ((column, id) for keyset paging).

On SQLite the new columns are added with a plain ``ALTER TABLE ... ADD COLUMN`` (constraints written inline), not a
batch table copy: a copy drops and re-creates ``settlement_instructions``, and with foreign keys on, dropping it on a
populated database would cascade-delete its trade links and penalties. The downgrade uses batch mode (SQLite cannot
drop a column that a constraint names), which is safe on the empty tables a downgrade is tested with.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The settlement queue's sort and filter indexes (queue.INDEXES_WANTED), written out: a migration never imports
# service code, whose later edits would otherwise change what an old revision creates.
QUEUE_INDEXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ix_settlement_instructions_trade_date_id", ("trade_date", "id")),
    ("ix_settlement_instructions_amount_id", ("settlement_amount", "id")),
    ("ix_settlement_instructions_quantity_id", ("quantity", "id")),
    ("ix_settlement_instructions_currency_id", ("currency", "id")),
    ("ix_settlement_instructions_updated_at_id", ("updated_at", "id")),
    ("ix_settlement_instructions_status_isd_id", ("status", "intended_settlement_date", "id")),
    ("ix_settlement_instructions_reason_code", ("reason_code",)),
)


def _kind_enum() -> sa.Enum:
    return sa.Enum(
        "GIVE_UP", "OUT_TRADE", name="settlementexceptionkind", native_enum=False, create_constraint=True
    )


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "clearing_exceptions",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("instruction_id", BigId, nullable=False),
        sa.Column("kind", _kind_enum(), nullable=False),
        sa.Column("trade_id", BigId, nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "RAISED",
                "ACKNOWLEDGED",
                "RESOLVED",
                "REJECTED",
                "CANCELLED",
                name="clearingexceptionstate",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("from_counterparty_id", BigId, nullable=True),
        sa.Column("to_counterparty_id", BigId, nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("ack_ref", sa.String(length=35), nullable=True),
        sa.Column("resolution", sa.String(length=32), nullable=True),
        sa.Column("raised_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("raised_by_id", BigId, nullable=True),
        sa.Column("acknowledged_at", app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_id", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["from_counterparty_id"],
            ["counterparties.id"],
            name=op.f("fk_clearing_exceptions_from_counterparty_id_counterparties"),
        ),
        sa.ForeignKeyConstraint(
            ["instruction_id"],
            ["settlement_instructions.id"],
            name=op.f("fk_clearing_exceptions_instruction_id_settlement_instructions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["raised_by_id"], ["users.id"], name=op.f("fk_clearing_exceptions_raised_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by_id"], ["users.id"], name=op.f("fk_clearing_exceptions_resolved_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["to_counterparty_id"],
            ["counterparties.id"],
            name=op.f("fk_clearing_exceptions_to_counterparty_id_counterparties"),
        ),
        sa.ForeignKeyConstraint(
            ["trade_id"], ["trades.id"], name=op.f("fk_clearing_exceptions_trade_id_trades")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clearing_exceptions")),
        sa.UniqueConstraint("instruction_id", name=op.f("uq_clearing_exceptions_instruction_id")),
    )
    op.create_index("ix_clearing_exceptions_trade_id", "clearing_exceptions", ["trade_id"], unique=False)

    if sqlite:
        for sql in (
            "ALTER TABLE settlement_instructions ADD COLUMN exception_kind VARCHAR(9) "
            "CONSTRAINT ck_settlement_instructions_settlementexceptionkind "
            "CHECK (exception_kind IN ('GIVE_UP', 'OUT_TRADE'))",
            "ALTER TABLE settlement_instructions ADD COLUMN replaces_id INTEGER",
            "ALTER TABLE settlement_instructions ADD COLUMN escalated_at DATETIME",
            "ALTER TABLE fail_penalties ADD COLUMN direction VARCHAR(6) DEFAULT 'DEBIT' NOT NULL "
            "CONSTRAINT ck_fail_penalties_penaltydirection CHECK (direction IN ('DEBIT', 'CREDIT'))",
            "ALTER TABLE fail_penalties ADD COLUMN reason_code VARCHAR(8)",
            "ALTER TABLE fail_penalties ADD COLUMN accrued_at DATETIME",
        ):
            op.execute(sql)
    else:
        op.add_column("settlement_instructions", sa.Column("exception_kind", _kind_enum(), nullable=True))
        op.add_column("settlement_instructions", sa.Column("replaces_id", BigId, nullable=True))
        op.add_column(
            "settlement_instructions",
            sa.Column("escalated_at", app.models.base.UTCDateTime(timezone=True), nullable=True),
        )
        op.add_column(
            "fail_penalties",
            sa.Column(
                "direction",
                sa.Enum(
                    "DEBIT", "CREDIT", name="penaltydirection", native_enum=False, create_constraint=True
                ),
                server_default="DEBIT",
                nullable=False,
            ),
        )
        op.add_column("fail_penalties", sa.Column("reason_code", sa.String(length=8), nullable=True))
        op.add_column(
            "fail_penalties",
            sa.Column("accrued_at", app.models.base.UTCDateTime(timezone=True), nullable=True),
        )
    op.create_index(
        "ix_settlement_instructions_replaces_id", "settlement_instructions", ["replaces_id"], unique=False
    )
    for name, columns in QUEUE_INDEXES:
        op.create_index(name, "settlement_instructions", list(columns), unique=False)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, _ in reversed(QUEUE_INDEXES):
        op.drop_index(name, table_name="settlement_instructions")
    op.drop_index("ix_settlement_instructions_replaces_id", table_name="settlement_instructions")
    with op.batch_alter_table("settlement_instructions", schema=None) as batch_op:
        if sqlite:
            # The batch copy keeps reflected CHECK constraints; this one names a column that goes away.
            batch_op.drop_constraint(
                op.f("ck_settlement_instructions_settlementexceptionkind"), type_="check"
            )
        batch_op.drop_column("escalated_at")
        batch_op.drop_column("replaces_id")
        batch_op.drop_column("exception_kind")
    with op.batch_alter_table("fail_penalties", schema=None) as batch_op:
        if sqlite:
            batch_op.drop_constraint(op.f("ck_fail_penalties_penaltydirection"), type_="check")
        batch_op.drop_column("accrued_at")
        batch_op.drop_column("reason_code")
        batch_op.drop_column("direction")
    op.drop_index("ix_clearing_exceptions_trade_id", table_name="clearing_exceptions")
    op.drop_table("clearing_exceptions")
