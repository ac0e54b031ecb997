"""webhook inbox leases

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 19:00:00

Several processes answer from one inbox: each row is claimed with a lease (`owner`,
`claimed_until`) that its process renews, so a killed process's rows are taken over by the
others once the lease runs out. `queue_key` (the person) keeps one person's events in order
across processes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queue_key", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("owner", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_webhook_inbox_queue", ["channel", "queue_key", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_inbox_queue")
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("owner")
        batch_op.drop_column("queue_key")
