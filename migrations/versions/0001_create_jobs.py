"""Create the jobs table.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from jobsched.schema import ExactString, LongText, UtcDateTime
from jobsched.store.dialect import table_options

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

OPTIONS: dict[str, Any] = table_options()


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("job_id", ExactString(255), primary_key=True),
        sa.Column("handler", ExactString(255), nullable=False),
        sa.Column("data", LongText(), nullable=False),
        sa.Column("start_time", UtcDateTime(), nullable=False),
        sa.Column("expiry", UtcDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("claim_token", sa.String(32), nullable=True),
        sa.Column("claimed_by", sa.String(255), nullable=True),
        sa.Column("claimed_until", UtcDateTime(), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        **OPTIONS,
    )
    op.create_index("ix_jobs_start", "jobs", ["start_time", "job_id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_start", table_name="jobs")
    op.drop_table("jobs")
