"""breaks and corrections workflow

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21

Tables the correction workflow needs beyond the foundation (``correction_items``: every item a correction touches;
``approval_thresholds``: per-currency amounts above which a second approver is required, seeded with defaults), and
the database's half of the four-eyes rule, on both backends:

* an approval (or rejection) row is refused when its approver is the correction's maker or the item's last editor
  as recorded on the ``corrections`` row (not only the denormalised copies on the approval row, which must agree),
  or when the correction is no longer pending; approval rows are never updated;
* a correction cannot be stored already APPROVED, cannot become APPROVED without ``required_approvals`` distinct
  approving approvers who are neither maker nor last editor, cannot leave a final status, cannot have its maker or
  last editor changed, and cannot ask for fewer approvals than the threshold of its currency demands when it is
  stored (or its amount changes); lowering a threshold later does not change what pending corrections need.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Defaults a supervisor can change (services.workflow.corrections.set_threshold). JPY has no minor unit and a
# different order of magnitude; '*' covers every other currency.
DEFAULT_THRESHOLDS = {
    "*": Decimal("1000000"),
    "USD": Decimal("1000000"),
    "EUR": Decimal("1000000"),
    "GBP": Decimal("1000000"),
    "CHF": Decimal("1000000"),
    "JPY": Decimal("150000000"),
}

# The number of approvals a correction needs by its amount: 2 above the threshold of its currency (or '*').
_REQUIRED_SQL = """
CASE WHEN abs(coalesce({r}.amount, 0)) > coalesce(
    (SELECT t.amount FROM approval_thresholds t WHERE t.currency = {r}.currency),
    (SELECT t.amount FROM approval_thresholds t WHERE t.currency = '*'),
    abs(coalesce({r}.amount, 0))
) THEN 2 ELSE 1 END
"""

# --- SQLite -----------------------------------------------------------------------------------------------------

SQLITE_TRIGGERS = {
    "correction_approvals_four_eyes": """
CREATE TRIGGER correction_approvals_four_eyes BEFORE INSERT ON correction_approvals
BEGIN
    SELECT RAISE(ABORT, 'four-eyes: no such correction')
     WHERE NOT EXISTS (SELECT 1 FROM corrections c WHERE c.id = NEW.correction_id);
    SELECT RAISE(ABORT, 'four-eyes: the maker of a correction may not approve or reject it')
     WHERE NEW.approver_id = (SELECT c.maker_id FROM corrections c WHERE c.id = NEW.correction_id);
    SELECT RAISE(ABORT, 'four-eyes: the last editor of the item may not approve or reject its correction')
     WHERE NEW.approver_id = (SELECT c.item_last_editor_id FROM corrections c WHERE c.id = NEW.correction_id);
    SELECT RAISE(ABORT, 'four-eyes: the approval names another maker or last editor than its correction')
     WHERE NEW.maker_id <> (SELECT c.maker_id FROM corrections c WHERE c.id = NEW.correction_id)
        OR NEW.item_last_editor_id IS NOT (SELECT c.item_last_editor_id FROM corrections c
                                            WHERE c.id = NEW.correction_id);
    SELECT RAISE(ABORT, 'four-eyes: the correction is no longer pending')
     WHERE (SELECT c.status FROM corrections c WHERE c.id = NEW.correction_id) <> 'PENDING';
END
""",
    "correction_approvals_immutable": """
CREATE TRIGGER correction_approvals_immutable BEFORE UPDATE ON correction_approvals
BEGIN
    SELECT RAISE(ABORT, 'four-eyes: an approval is never changed once given');
END
""",
    "corrections_insert_rules": f"""
CREATE TRIGGER corrections_insert_rules BEFORE INSERT ON corrections
BEGIN
    SELECT RAISE(ABORT, 'four-eyes: a correction is stored PENDING, never already decided')
     WHERE NEW.status <> 'PENDING';
    SELECT RAISE(ABORT, 'four-eyes: the amount is above the approval threshold; two approvals are required')
     WHERE NEW.required_approvals < {_REQUIRED_SQL.format(r="NEW")};
END
""",
    "corrections_update_rules": f"""
CREATE TRIGGER corrections_update_rules BEFORE UPDATE ON corrections
BEGIN
    SELECT RAISE(ABORT, 'four-eyes: a decided correction cannot change its status')
     WHERE OLD.status <> 'PENDING' AND NEW.status <> OLD.status;
    SELECT RAISE(ABORT, 'four-eyes: the maker and last editor of a correction cannot be changed')
     WHERE NEW.maker_id <> OLD.maker_id OR NEW.item_last_editor_id IS NOT OLD.item_last_editor_id;
    SELECT RAISE(ABORT, 'four-eyes: the amount is above the approval threshold; two approvals are required')
     WHERE NEW.required_approvals < OLD.required_approvals
        OR ((NEW.amount IS NOT OLD.amount OR NEW.currency IS NOT OLD.currency)
            AND NEW.required_approvals < {_REQUIRED_SQL.format(r="NEW")});
    SELECT RAISE(ABORT, 'four-eyes: not enough distinct approvals to approve this correction')
     WHERE NEW.status = 'APPROVED' AND OLD.status <> 'APPROVED'
       AND (SELECT count(DISTINCT a.approver_id) FROM correction_approvals a
             WHERE a.correction_id = NEW.id AND a.decision = 'APPROVE'
               AND a.approver_id <> NEW.maker_id
               AND (NEW.item_last_editor_id IS NULL OR a.approver_id <> NEW.item_last_editor_id))
           < NEW.required_approvals;
END
""",
}

# --- PostgreSQL -------------------------------------------------------------------------------------------------

PG_FUNCTIONS = {
    "opsdesk_correction_approval_check": """
CREATE OR REPLACE FUNCTION opsdesk_correction_approval_check() RETURNS trigger AS $$
DECLARE
    c corrections%ROWTYPE;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'four-eyes: an approval is never changed once given';
    END IF;
    SELECT * INTO c FROM corrections WHERE id = NEW.correction_id FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'four-eyes: no such correction';
    END IF;
    IF NEW.approver_id = c.maker_id THEN
        RAISE EXCEPTION 'four-eyes: the maker of a correction may not approve or reject it';
    END IF;
    IF NEW.approver_id = c.item_last_editor_id THEN
        RAISE EXCEPTION 'four-eyes: the last editor of the item may not approve or reject its correction';
    END IF;
    IF NEW.maker_id <> c.maker_id OR NEW.item_last_editor_id IS DISTINCT FROM c.item_last_editor_id THEN
        RAISE EXCEPTION 'four-eyes: the approval names another maker or last editor than its correction';
    END IF;
    IF c.status <> 'PENDING' THEN
        RAISE EXCEPTION 'four-eyes: the correction is no longer pending';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql
""",
    "opsdesk_correction_check": f"""
CREATE OR REPLACE FUNCTION opsdesk_correction_check() RETURNS trigger AS $$
DECLARE
    needed integer;
    approvals integer;
BEGIN
    SELECT {_REQUIRED_SQL.format(r="n")} INTO needed FROM (SELECT NEW.amount AS amount, NEW.currency AS currency) n;
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'PENDING' THEN
            RAISE EXCEPTION 'four-eyes: a correction is stored PENDING, never already decided';
        END IF;
        IF NEW.required_approvals < needed THEN
            RAISE EXCEPTION 'four-eyes: the amount is above the approval threshold; two approvals are required';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.status <> 'PENDING' AND NEW.status <> OLD.status THEN
        RAISE EXCEPTION 'four-eyes: a decided correction cannot change its status';
    END IF;
    IF NEW.maker_id <> OLD.maker_id OR NEW.item_last_editor_id IS DISTINCT FROM OLD.item_last_editor_id THEN
        RAISE EXCEPTION 'four-eyes: the maker and last editor of a correction cannot be changed';
    END IF;
    IF NEW.required_approvals < OLD.required_approvals
       OR ((NEW.amount IS DISTINCT FROM OLD.amount OR NEW.currency IS DISTINCT FROM OLD.currency)
           AND NEW.required_approvals < needed) THEN
        RAISE EXCEPTION 'four-eyes: the amount is above the approval threshold; two approvals are required';
    END IF;
    IF NEW.status = 'APPROVED' AND OLD.status <> 'APPROVED' THEN
        SELECT count(DISTINCT a.approver_id) INTO approvals FROM correction_approvals a
         WHERE a.correction_id = NEW.id AND a.decision = 'APPROVE'
           AND a.approver_id <> NEW.maker_id
           AND (NEW.item_last_editor_id IS NULL OR a.approver_id <> NEW.item_last_editor_id);
        IF approvals < NEW.required_approvals THEN
            RAISE EXCEPTION 'four-eyes: not enough distinct approvals to approve this correction';
        END IF;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql
""",
}

PG_TRIGGERS = {
    "correction_approvals_four_eyes": (
        "CREATE TRIGGER correction_approvals_four_eyes BEFORE INSERT OR UPDATE ON correction_approvals "
        "FOR EACH ROW EXECUTE FUNCTION opsdesk_correction_approval_check()",
        "correction_approvals",
    ),
    "corrections_rules": (
        "CREATE TRIGGER corrections_rules BEFORE INSERT OR UPDATE ON corrections "
        "FOR EACH ROW EXECUTE FUNCTION opsdesk_correction_check()",
        "corrections",
    ),
}


def _create_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for sql in PG_FUNCTIONS.values():
            op.execute(sql)
        for sql, _table in PG_TRIGGERS.values():
            op.execute(sql)
    else:
        for sql in SQLITE_TRIGGERS.values():
            op.execute(sql)


def _drop_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, (_sql, table) in PG_TRIGGERS.items():
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for name in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def upgrade() -> None:
    op.create_table(
        "correction_items",
        sa.Column("id", app.models.base.BigId, autoincrement=True, nullable=False),
        sa.Column("correction_id", app.models.base.BigId, nullable=False),
        sa.Column("item_type", sa.String(length=32), nullable=False),
        sa.Column("item_id", app.models.base.BigId, nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("prior_status", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["correction_id"],
            ["corrections.id"],
            name=op.f("fk_correction_items_correction_id_corrections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_correction_items")),
        sa.UniqueConstraint(
            "correction_id",
            "item_type",
            "item_id",
            name=op.f("uq_correction_items_correction_id_item_type_item_id"),
        ),
    )
    op.create_index("ix_correction_items_item", "correction_items", ["item_type", "item_id"], unique=False)
    thresholds = op.create_table(
        "approval_thresholds",
        sa.Column("id", app.models.base.BigId, autoincrement=True, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", app.models.base.BigId, nullable=True),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_approval_thresholds_amount_not_negative")),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["users.id"], name=op.f("fk_approval_thresholds_updated_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_thresholds")),
        sa.UniqueConstraint("currency", name=op.f("uq_approval_thresholds_currency")),
    )
    now = app.models.base.utcnow()
    op.bulk_insert(
        thresholds,
        [
            {"currency": c, "amount": a, "version": 1, "created_at": now, "updated_at": now}
            for c, a in DEFAULT_THRESHOLDS.items()
        ],
    )
    _create_triggers()


def downgrade() -> None:
    _drop_triggers()
    op.drop_table("approval_thresholds")
    op.drop_index("ix_correction_items_item", table_name="correction_items")
    op.drop_table("correction_items")
