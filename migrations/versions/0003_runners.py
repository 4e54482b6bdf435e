"""The live runners (``runners``): each worker and ``run-due`` pass, and its last heartbeat.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from jobsched.schema import UtcDateTime
from jobsched.store.dialect import table_options

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OPTIONS: dict[str, Any] = table_options()


def upgrade() -> None:
    op.create_table(
        "runners",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("heartbeat_at", UtcDateTime(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        **OPTIONS,
    )
    op.create_index("ix_runners_heartbeat", "runners", ["heartbeat_at"])


def downgrade() -> None:
    op.drop_index("ix_runners_heartbeat", table_name="runners")
    op.drop_table("runners")
