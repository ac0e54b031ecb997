"""staff accounts: session epoch and test recipients

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 02:50:00

`session_epoch` makes console sessions revocable: each cookie carries the epoch it was issued
in and every request compares it with the account's, so logout, a new password, a role change
or deactivation (each bumps it) ends the account's sessions at once in every process.
`test_recipients` lists where a member of staff may test-send an announcement.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff_accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("test_recipients", sa.JSON(), nullable=False, server_default="[]")
        )


def downgrade() -> None:
    with op.batch_alter_table("staff_accounts", schema=None) as batch_op:
        batch_op.drop_column("test_recipients")
        batch_op.drop_column("session_epoch")
