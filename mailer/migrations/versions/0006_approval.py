"""Who created, approved or forced a send or schedule, when, and against which build.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

APPROVAL = ("created_by", "approved_by", "approved_at", "approved_hash")
SEND_ONLY = ("forced_by", "forced_reason", "forced_checks")


def _column(name: str) -> sa.Column:
    if name == "approved_at":
        return sa.Column(name, sa.DateTime(timezone=True), nullable=True)
    if name in ("forced_reason", "forced_checks"):
        return sa.Column(name, sa.Text(), nullable=False, server_default="")
    length = 64 if name == "approved_hash" else 200
    return sa.Column(name, sa.String(length=length), nullable=False, server_default="")


def upgrade() -> None:
    with op.batch_alter_table("send") as batch:
        for name in APPROVAL + SEND_ONLY:
            batch.add_column(_column(name))
    with op.batch_alter_table("schedule") as batch:
        for name in APPROVAL:
            batch.add_column(_column(name))
        batch.add_column(sa.Column("hold_reason", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("schedule") as batch:
        for name in ("hold_reason", *APPROVAL):
            batch.drop_column(name)
    with op.batch_alter_table("send") as batch:
        for name in APPROVAL + SEND_ONLY:
            batch.drop_column(name)
