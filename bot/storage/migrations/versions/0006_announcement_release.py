"""announcement release cursor

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 15:40:00

An announcement is expanded into outbox rows in several transactions; `expanded_through`
(the last person id handed to the outbox) lets a run that died between them resume without
queueing anyone twice, and `expanded_at` says the expansion is complete.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("announcements", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("expanded_through", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("expanded_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("announcements", schema=None) as batch_op:
        batch_op.drop_column("expanded_at")
        batch_op.drop_column("expanded_through")
