"""jobsched: schedule work to run at a given time, and run it when the time comes.

    import jobsched
    from datetime import timedelta

    @jobsched.handler("send_reminder")
    def send_reminder(job: jobsched.Job) -> None:
        ...  # return None/True: done; False: keep the job; raise: retried an hour later

    jobsched.schedule_job("reminder-42", timedelta(hours=1), "send_reminder", {"user": 42})

Jobs run when ``jobsched run-due`` (cron, every minute) finds them due. The module-level functions
act on the current scheduler (``get_scheduler``); tests swap it with ``use_scheduler``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from jobsched.clock import Clock, FakeClock, RealClock
from jobsched.current import get_scheduler, set_scheduler, use_scheduler
from jobsched.errors import (
    AppImportError,
    DatabaseError,
    HandlerProcessDiedError,
    HandlerRaisedError,
    HandlerStartError,
    HandlerTimeoutError,
    InvalidJobError,
    IsolatedAttemptError,
    JobExistsError,
    JobschedError,
    MissingJobError,
    NoHandlersError,
    PermanentError,
    ProcessBoundaryError,
    RealDatabaseWarning,
    RunnerCallError,
    SchemaError,
    UsageError,
)
from jobsched.handlers import handler
from jobsched.history import (
    HandlerStats,
    JobRun,
    JobStatus,
    RetryReport,
    Stats,
    Status,
)
from jobsched.model import (
    DEFAULT_MAX_ATTEMPTS,
    Job,
    JobInfo,
    JobResult,
    JobSpec,
    JobState,
    JSONValue,
    MigrateResult,
    Mode,
    Outcome,
    Progress,
    RunReport,
)
from jobsched.presence import RunnerInfo, RunningJob
from jobsched.progress import progress

if TYPE_CHECKING:
    import sqlalchemy as sa

    from jobsched.scheduler import Scheduler


def __getattr__(name: str) -> Any:
    # Scheduler is imported on first use, so that importing jobsched (as pytest does for the
    # plugin) stays light: it pulls in SQLAlchemy.
    if name == "Scheduler":
        from jobsched.scheduler import Scheduler

        return Scheduler
    raise AttributeError(f"module 'jobsched' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "AppImportError",
    "Clock",
    "DatabaseError",
    "FakeClock",
    "HandlerProcessDiedError",
    "HandlerRaisedError",
    "HandlerStartError",
    "HandlerStats",
    "HandlerTimeoutError",
    "InvalidJobError",
    "IsolatedAttemptError",
    "Job",
    "JobExistsError",
    "JobInfo",
    "JobResult",
    "JobRun",
    "JobSpec",
    "JobState",
    "JobStatus",
    "JobschedError",
    "MigrateResult",
    "MissingJobError",
    "Mode",
    "NoHandlersError",
    "Outcome",
    "PermanentError",
    "ProcessBoundaryError",
    "Progress",
    "RealClock",
    "RealDatabaseWarning",
    "RetryReport",
    "RunReport",
    "RunnerCallError",
    "RunnerInfo",
    "RunningJob",
    "Scheduler",
    "SchemaError",
    "Stats",
    "Status",
    "UsageError",
    "add_job",
    "get_job",
    "get_scheduler",
    "handler",
    "job_exists",
    "now",
    "progress",
    "remove_job",
    "retry",
    "run_due_jobs",
    "schedule_job",
    "schedule_jobs",
    "set_scheduler",
    "status",
    "time",
    "update_job",
    "use_scheduler",
]

T = TypeVar("T")


def schedule_job(
    job_id: str,
    start: datetime | timedelta,
    handler: str,
    data: JSONValue = None,
    *,
    mode: Mode = Mode.NEW,
    expiry: datetime | timedelta | None = None,
    max_attempts: int | None = None,
    conn: sa.Connection | None = None,
) -> Job:
    """Schedule a job on the current scheduler: see ``Scheduler.schedule_job``."""
    return get_scheduler().schedule_job(
        job_id, start, handler, data, mode=mode, expiry=expiry, max_attempts=max_attempts, conn=conn
    )


def schedule_jobs(
    jobs: Iterable[JobSpec | Mapping[str, Any]],
    *,
    mode: Mode = Mode.NEW,
    conn: sa.Connection | None = None,
) -> int:
    """Schedule many jobs on the current scheduler: see ``Scheduler.schedule_jobs``."""
    return get_scheduler().schedule_jobs(jobs, mode=mode, conn=conn)


def add_job(job: Job, *, conn: sa.Connection | None = None) -> Job:
    """Insert a job exactly as given: see ``Scheduler.add_job``."""
    return get_scheduler().add_job(job, conn=conn)


def get_job(job_id: str, *, conn: sa.Connection | None = None) -> Job | None:
    """The job with this id, or None: see ``Scheduler.get_job``."""
    return get_scheduler().get_job(job_id, conn=conn)


def job_exists(job_id: str, *, conn: sa.Connection | None = None) -> bool:
    """True if a job with this id exists: see ``Scheduler.job_exists``."""
    return get_scheduler().job_exists(job_id, conn=conn)


def remove_job(job_id: str, *, conn: sa.Connection | None = None) -> bool:
    """Remove a job; True if there was one: see ``Scheduler.remove_job``."""
    return get_scheduler().remove_job(job_id, conn=conn)


def update_job(
    job_id: str,
    fn: Callable[[Job | None], tuple[Job | None, T]],
    *,
    conn: sa.Connection | None = None,
) -> T:
    """Atomic read-modify-write of one job: see ``Scheduler.update_job``."""
    return get_scheduler().update_job(job_id, fn, conn=conn)


def run_due_jobs(*, limit: int | None = None) -> RunReport:
    """Run one pass over the due jobs of the current scheduler."""
    return get_scheduler().run_due_jobs(limit=limit)


def now() -> datetime:
    """The current scheduler's time (aware UTC; virtual time in a simulation)."""
    return get_scheduler().now()


def time() -> float:
    """The current scheduler's time as a Unix timestamp."""
    return get_scheduler().time()


def status(job_id: str) -> JobStatus:
    """Where a job stands, from its row or its history: see ``Scheduler.status``."""
    return get_scheduler().status(job_id)


def retry(
    job_id: str,
    *,
    start: datetime | timedelta | None = None,
    expiry: datetime | timedelta | None = None,
) -> Job:
    """Schedule a failed job again from its history: see ``Scheduler.retry``."""
    return get_scheduler().retry(job_id, start=start, expiry=expiry)
