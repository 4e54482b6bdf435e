"""Alembic environment for jobsched: run by ``jobsched migrate`` with a connection attached."""

from __future__ import annotations

from alembic import context

from jobsched.schema import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    transactional_ddl=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
