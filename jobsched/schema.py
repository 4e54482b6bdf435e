"""jobsched's tables as SQLAlchemy Core sees them (``jobs``, the history ``job_runs``,
``jobsched_meta``, the live ``runners``), and the column types that hide dialect quirks.

Alembic revisions in ``migrations/`` create this schema; a test checks that they agree. What each
database stores a column as (and the table options of MySQL/MariaDB) comes from the dialect seam,
``jobsched.store.dialect``: this module names no database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

if TYPE_CHECKING:
    from jobsched.store import dialect as seam

#: The Alembic revision this code expects (checked against the migrations by a test).
SCHEMA_REVISION = "0003"
#: jobsched's own Alembic version table, apart from the host application's ``alembic_version``.
VERSION_TABLE = "jobsched_alembic_version"


def _seam(dialect: Dialect) -> seam.Dialect:
    """jobsched's dialect class for a SQLAlchemy dialect (the generic one for any other)."""
    from jobsched.store.dialect import seam_for

    return seam_for(dialect.name)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """An aware datetime stored as naive UTC: ``DATETIME(6)`` on MySQL/MariaDB, text on SQLite.

    Refuses naive values, so no code path can store a local time by mistake.
    """

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        return dialect.type_descriptor(_seam(dialect).datetime_type())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("jobsched stores aware datetimes only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class ExactString(sa.TypeDecorator[str]):
    """A string compared byte for byte on every backend.

    MySQL/MariaDB collations fold case and pad spaces (``'a' = 'A '``), so there it is a
    ``VARBINARY`` of the UTF-8 bytes; SQLite compares text exactly already
    (``Dialect.exact_string_type``).
    """

    impl = sa.String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.chars = length

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        return dialect.type_descriptor(_seam(dialect).exact_string_type(self.chars))

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if isinstance(value, bytes | bytearray):
            return bytes(value).decode("utf-8")
        return value  # type: ignore[no-any-return]


class LongText(sa.TypeDecorator[str]):
    """Text up to 16 MiB: ``MEDIUMTEXT`` on MySQL/MariaDB (plain ``TEXT`` stops at 64 KiB)."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        return dialect.type_descriptor(_seam(dialect).long_text_type())


class RowId(sa.TypeDecorator[int]):
    """An auto-incrementing 64-bit row id (``Dialect.row_id_type``: SQLite's is its rowid)."""

    impl = sa.BigInteger
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        return dialect.type_descriptor(_seam(dialect).row_id_type())


metadata = sa.MetaData()

# Typed as Any, as it has always been here: the store's statements are checked by their tests.
jobs: Any = sa.Table(
    "jobs",
    metadata,
    sa.Column("job_id", ExactString(255), primary_key=True),
    sa.Column("handler", ExactString(255), nullable=False),
    sa.Column("data", LongText(), nullable=False),
    sa.Column("start_time", UtcDateTime(), nullable=False),
    sa.Column("expiry", UtcDateTime(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("max_attempts", sa.Integer(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("last_error", sa.Text(), nullable=True),
    # Bumped by every write but heartbeats; a runner's finish applies only to the version it holds.
    sa.Column("version", sa.BigInteger(), nullable=False),
    # The lease: who holds the job, until when, and whether its handler has started.
    sa.Column("claim_token", sa.String(32), nullable=True),
    sa.Column("claimed_by", sa.String(255), nullable=True),
    sa.Column("claimed_until", UtcDateTime(), nullable=True),
    sa.Column("started_at", UtcDateTime(), nullable=True),
    # What the running handler last reported (``jobsched.progress``); cleared when it ends.
    sa.Column("progress_done", sa.Double(), nullable=True),
    sa.Column("progress_total", sa.Double(), nullable=True),
    sa.Column("progress_note", sa.Text(), nullable=True),
    sa.Index("ix_jobs_start", "start_time", "job_id"),
    # Counting jobs per handler (``stats``) reads this index, not the table.
    sa.Index("ix_jobs_handler", "handler", "start_time"),
    # The table options (MySQL's engine, charset and collation) are the dialect seam's
    # (``jobsched.store.dialect.table_options``), given by the migrations that create tables.
)

#: The history: one row per attempt that ended, or decision made without running the handler.
job_runs: Any = sa.Table(
    "job_runs",
    metadata,
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
    # The payload, for the outcomes that remove the job (succeeded, failed, expired).
    sa.Column("data", LongText(), nullable=True),
    # A newer state of the job won: the outcome was not written to it.
    sa.Column("superseded", sa.Boolean(create_constraint=False), nullable=False),
    # A failed run whose job ``retry`` scheduled again.
    sa.Column("retried_at", UtcDateTime(), nullable=True),
    # One job's runs; the newest of all (and pruning, and stats: covering); the failed ones.
    sa.Index("ix_job_runs_job", "job_id", "finished_at"),
    sa.Index("ix_job_runs_finished", "finished_at", "handler", "outcome"),
)

#: Facts about the database as a whole: when the history was last pruned.
meta: Any = sa.Table(
    "jobsched_meta",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("at", UtcDateTime(), nullable=True),
)
#: ``jobsched_meta``'s row of the last pruning of the history.
PRUNED_AT = "history_pruned_at"

#: The runners (``worker`` processes and ``run-due`` passes) that are running, or were: each
#: registers its row, beats it while it runs and removes it on a clean exit
#: (``jobsched.presence``). A row whose heartbeat is old is a runner that died.
runners: Any = sa.Table(
    "runners",
    metadata,
    # ``host:pid``, as the runner signs its claims (``jobs.claimed_by``).
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("heartbeat_at", UtcDateTime(), nullable=False),
    sa.Column("concurrency", sa.Integer(), nullable=False),
    # Forgetting runners long dead reads this index, not the table (nor the live rows' locks).
    sa.Index("ix_runners_heartbeat", "heartbeat_at"),
)
