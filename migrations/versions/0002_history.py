"""The history of attempts (``job_runs``), progress of running jobs, and ``jobsched_meta``.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from jobsched.schema import PRUNED_AT, ExactString, LongText, RowId, UtcDateTime
from jobsched.store.dialect import table_options

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OPTIONS: dict[str, Any] = table_options()


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("progress_done", sa.Double(), nullable=True))
        batch.add_column(sa.Column("progress_total", sa.Double(), nullable=True))
        batch.add_column(sa.Column("progress_note", sa.Text(), nullable=True))
    op.create_index("ix_jobs_handler", "jobs", ["handler", "start_time"])
    op.create_table(
        "job_runs",
        sa.Column("run_id", RowId(), primary_key=True, autoincrement=True),
        sa.Column("job_id", ExactString(255), nullable=False),
        sa.Column("handler", ExactString(255), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("runner", sa.String(255), nullable=True),
        sa.Column("scheduled_start", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("data", LongText(), nullable=True),
        sa.Column("superseded", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("retried_at", UtcDateTime(), nullable=True),
        **OPTIONS,
    )
    op.create_index("ix_job_runs_job", "job_runs", ["job_id", "finished_at"])
    op.create_index("ix_job_runs_finished", "job_runs", ["finished_at", "handler", "outcome"])
    meta = op.create_table(
        "jobsched_meta",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("at", UtcDateTime(), nullable=True),
        **OPTIONS,
    )
    op.bulk_insert(meta, [{"name": PRUNED_AT, "at": None}])


def downgrade() -> None:
    op.drop_table("jobsched_meta")
    op.drop_index("ix_job_runs_finished", table_name="job_runs")
    op.drop_index("ix_job_runs_job", table_name="job_runs")
    op.drop_table("job_runs")
    op.drop_index("ix_jobs_handler", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("progress_note")
        batch.drop_column("progress_total")
        batch.drop_column("progress_done")
