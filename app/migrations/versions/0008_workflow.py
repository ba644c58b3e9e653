"""breaks and corrections workflow

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21

Placeholder in the migration chain reserved for this area; it changes nothing until the area needs a schema change.
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
