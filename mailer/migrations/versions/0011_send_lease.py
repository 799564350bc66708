"""The lease of the one worker allowed on a send on SQLite.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("send") as table:
        table.add_column(sa.Column("lease_holder", sa.String(length=200), nullable=False,
                                   server_default=""))
        table.add_column(sa.Column("lease_since", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("lease_renewed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("send") as table:
        table.drop_column("lease_renewed_at")
        table.drop_column("lease_since")
        table.drop_column("lease_holder")
