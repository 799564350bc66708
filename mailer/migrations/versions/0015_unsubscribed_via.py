"""How a subscription was left (one-click, page, mail, staff), for the figures of /metrics.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscription") as table:
        table.add_column(sa.Column("unsubscribed_via", sa.String(length=12), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("subscription") as table:
        table.drop_column("unsubscribed_via")
