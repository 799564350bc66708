"""Public ids: every subscriber gets a random id for links, so an erased person's links can never
reach whoever later gets the same row id (SQLite reuses it).

Existing rows keep their row id as `legacy_id`: links sent before this migration carry it and keep
working for exactly those people. A row created later has none, so an old link that names a
reused row id finds nobody.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# 32 random hex digits, made by the database itself for the rows that exist now (and, as a
# safety net, for any insert that does not bring one).
RANDOM_HEX = {
    "sqlite": "lower(hex(randomblob(16)))",
    "postgresql": "replace(gen_random_uuid()::text, '-', '')",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    random_hex = RANDOM_HEX[dialect]
    if dialect == "sqlite":  # ADD COLUMN allows only a constant default here
        op.execute("ALTER TABLE subscriber ADD COLUMN public_id VARCHAR(32) NOT NULL DEFAULT ''")
        op.execute("CREATE TRIGGER subscriber_public_id AFTER INSERT ON subscriber "
                   "WHEN NEW.public_id = '' BEGIN "
                   f"UPDATE subscriber SET public_id = {random_hex} WHERE id = NEW.id; END")
    else:
        op.add_column("subscriber", sa.Column("public_id", sa.String(length=32), nullable=True))
    op.add_column("subscriber", sa.Column("legacy_id", sa.Integer(), nullable=True))
    op.execute(f"UPDATE subscriber SET public_id = {random_hex}, legacy_id = id")
    if dialect != "sqlite":
        op.alter_column("subscriber", "public_id", nullable=False,
                        server_default=sa.text(random_hex))
    op.create_index("ix_subscriber_public_id", "subscriber", ["public_id"], unique=True)
    op.create_index("ix_subscriber_legacy_id", "subscriber", ["legacy_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_subscriber_legacy_id", "subscriber")
    op.drop_index("ix_subscriber_public_id", "subscriber")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER subscriber_public_id")
    op.drop_column("subscriber", "legacy_id")
    op.drop_column("subscriber", "public_id")
