"""Alembic environment: runs on the connection `mailer.db` hands over (no alembic.ini)."""

from alembic import context
from sqlmodel import SQLModel

import mailer.models  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
