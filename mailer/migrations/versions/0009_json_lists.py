"""Lists stored one way: JSON arrays in the text columns that held ","- or "|"-joined values.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Frozen here on purpose: table → (separator it used, its list columns).
LISTS = {
    "send": (",", ("regions", "audiences")),
    "schedule": (",", ("regions", "audiences")),
    "partner_publication": ("|", ("categories", "themes", "regions")),
}


def _convert(table: str, columns: tuple[str, ...], change) -> None:
    bind = op.get_bind()
    rows = sa.table(table, sa.column("id"), *(sa.column(c, sa.Text) for c in columns))
    for row in bind.execute(sa.select(rows)).all():
        values = {c: change(getattr(row, c) or "") for c in columns}
        bind.execute(sa.update(rows).where(rows.c.id == row.id).values(**values))


def upgrade() -> None:
    for table, (separator, columns) in LISTS.items():
        _convert(table, columns, lambda text, sep=separator: json.dumps(
            [v for v in text.split(sep) if v], ensure_ascii=False))


def downgrade() -> None:
    for table, (separator, columns) in LISTS.items():
        _convert(table, columns, lambda text, sep=separator: sep.join(json.loads(text or "[]")))
