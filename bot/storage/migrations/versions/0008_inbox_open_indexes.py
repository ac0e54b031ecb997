"""webhook inbox: partial indexes over the open rows

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 23:00:00

Every claim looks for open rows (accepted or processed) in id order and, for each, for an
earlier open row of the same person. Through the whole-table indexes it walked past every
row already sent, so claims grew slower as the inbox filled (4 ms with 1,500 sent rows,
12 ms with 50,000), and the held rows (claimed_until in the future) were found by a scan of
the whole table. Partial indexes over the open rows only, in id order, by person, and by
lease, keep a claim at ~1 ms however many rows are kept; the old queue index served only
this check.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("status IN ('accepted', 'processed')")


def upgrade() -> None:
    with op.batch_alter_table("webhook_inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_inbox_queue")
        batch_op.create_index(
            "ix_webhook_inbox_open", ["channel", "id"], postgresql_where=OPEN, sqlite_where=OPEN
        )
        batch_op.create_index(
            "ix_webhook_inbox_open_queue",
            ["channel", "queue_key", "id"],
            postgresql_where=OPEN,
            sqlite_where=OPEN,
        )
        batch_op.create_index(
            "ix_webhook_inbox_open_held",
            ["channel", "claimed_until"],
            postgresql_where=OPEN,
            sqlite_where=OPEN,
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_inbox_open_held")
        batch_op.drop_index("ix_webhook_inbox_open_queue")
        batch_op.drop_index("ix_webhook_inbox_open")
        batch_op.create_index(
            "ix_webhook_inbox_queue", ["channel", "queue_key", "id"], unique=False
        )
