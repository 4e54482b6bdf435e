"""Alembic environment for jobsched: run by ``jobsched migrate`` with a connection attached."""

from __future__ import annotations

from alembic import context

from jobsched.schema import VERSION_TABLE, metadata
from jobsched.store.dialect import seam_for

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    transactional_ddl=seam_for(connection.dialect.name).transactional_ddl,
)
with context.begin_transaction():
    context.run_migrations()
