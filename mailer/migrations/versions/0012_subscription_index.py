"""Drop the index on subscription.subscriber_id: UNIQUE (subscriber_id, topic) already serves
every look-up by person, and a list import paid for both on every new subscription.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_subscription_subscriber_id", table_name="subscription")


def downgrade() -> None:
    op.create_index("ix_subscription_subscriber_id", "subscription", ["subscriber_id"])
