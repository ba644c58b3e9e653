"""Settlement messages: drop the indexes on ``reference`` and ``related_reference`` that nothing reads.

Every incoming message of a file (100,000 in one) writes an entry into each index of ``settlement_messages``.
Nothing looks messages up by the sender's reference or by our related reference: the importer matches by the
instruction's own reference (on ``settlement_instructions``) and recognises a duplicate by its content hash (the
unique ``direction, content_hash`` index), and the queue's detail finds an instruction's messages by
``instruction_id`` (indexed). The two indexes only cost the import; they go, the columns stay.

Revision ID: 0018
Revises: 0016
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("settlement_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_settlement_messages_related_reference")
        batch_op.drop_index("ix_settlement_messages_reference")


def downgrade() -> None:
    with op.batch_alter_table("settlement_messages", schema=None) as batch_op:
        batch_op.create_index("ix_settlement_messages_reference", ["reference"], unique=False)
        batch_op.create_index("ix_settlement_messages_related_reference", ["related_reference"], unique=False)
