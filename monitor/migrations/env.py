"""Alembic environment: always runs on the connection monitor.db.upgrade() hands over.

There is no alembic.ini; monitor.db.alembic_config() builds the configuration in code so that the
migrations work from an installed package. Batch mode is on so that ALTERs work on SQLite.
"""

from __future__ import annotations

from alembic import context

from monitor.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through monitor.db.upgrade(engine) or `ncii db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things; batch mode rebuilds the table instead
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
