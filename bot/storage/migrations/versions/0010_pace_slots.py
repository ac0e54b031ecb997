"""pace slots: platform rates shared by every worker

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 03:00:00

With several workers each pacing itself, Telegram got N x 30 messages a second. Each
worker now books its send slots in this table (bot/pacing.py, bot/storage/pace_slots.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pace_slots",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("pace_slots")
