"""Deliverability: the install id, and the RFC 3463 class of every answer and bounce.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

import datetime as dt
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    installation = op.create_table(
        "installation",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # Made once, here: every database gets its own, so no two share a Message-ID.
    op.bulk_insert(installation, [{"id": secrets.token_hex(8),
                                   "created_at": dt.datetime.now(dt.UTC)}])
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("answer_class", sa.String(length=8), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("enhanced_code", sa.String(length=12), nullable=False,
                                   server_default=""))
    with op.batch_alter_table("bounce") as batch:
        batch.alter_column("kind", type_=sa.String(length=8), existing_nullable=False)
        batch.add_column(sa.Column("answer", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    # `kind` keeps its 8 characters: a "blocked" bounce would not fit in 4 (PostgreSQL refuses
    # it), and the older code reads the wider column alike.
    with op.batch_alter_table("bounce") as batch:
        batch.drop_column("answer")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("enhanced_code")
        batch.drop_column("answer_class")
    op.drop_table("installation")
