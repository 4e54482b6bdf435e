"""What happened to jobs: the values of the history (``job_runs``), status, progress and stats,
and the rules that make them. Pure: nothing here reads a clock or touches a database.

Every attempt that ended, and every decision a pass made without running the handler, is one
``JobRun``. A pass hands each one to the store with the write it records (``store.base.Op``), so
it is written in the same transaction, batched as outcomes are.
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from jobsched.errors import UsageError, cut_text
from jobsched.model import Job, JobInfo, JobState, JSONValue, Outcome, Progress, parse_payload

#: History rows kept by default, counted from when they were written.
RETENTION = timedelta(days=14)
#: Failed runs are kept longer: they are what ``jobsched failed`` and ``retry`` work from.
FAILED_RETENTION = timedelta(days=30)
#: The most history rows one pruning transaction deletes (it never holds locks for long).
PRUNE_BATCH = 1000
#: A pass prunes the history itself at most this often (across every process sharing the
#: database).
PRUNE_EVERY = timedelta(minutes=10)

#: The outcomes whose run records the job's payload: they remove the job, and a failed one may
#: be retried from its history row.
PAYLOAD_OUTCOMES = frozenset({Outcome.SUCCEEDED, Outcome.FAILED, Outcome.EXPIRED})
#: The outcomes history records (RELEASED gives a job back unstarted: nothing ended).
RECORDED_OUTCOMES = tuple(o for o in Outcome if o is not Outcome.RELEASED)

#: The longest progress note kept, in bytes of UTF-8.
MAX_NOTE_BYTES = 1000


def history_enabled(setting: bool | None) -> bool:
    """``Scheduler(history=...)``: True/False as given; None reads ``$JOBSCHED_HISTORY``
    (``off``, ``false``, ``0`` or ``no`` turn it off; anything else, or unset, leaves it on)."""
    if setting is not None:
        if not isinstance(setting, bool):
            raise UsageError(f"history must be True, False or None, got {setting!r}")
        return setting
    value = os.environ.get("JOBSCHED_HISTORY", "").strip().lower()
    if value in ("", "on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no"):
        return False
    raise UsageError(f"JOBSCHED_HISTORY={value!r}: use on or off")


class NewRun(NamedTuple):
    """A history row to write, as a pass makes it (the store adds ``superseded``). A named
    tuple: a pass makes one for every job it takes."""

    job_id: str
    handler: str
    attempt: int
    max_attempts: int
    #: The ``Outcome``'s value (a string: a row of plain values is one the garbage collector
    #: stops tracking, and the memory store keeps thousands).
    outcome: str
    runner: str | None
    scheduled_start: datetime
    started_at: datetime | None
    finished_at: datetime
    error: str | None = None
    #: The job's payload as stored (JSON text), for the outcomes that remove it.
    payload: str | None = None


@dataclass(frozen=True, slots=True)
class JobRun:
    """One row of the history: an attempt that ended, or a decision made without running.

    ``started_at`` is None for decisions made without running the handler (expired,
    deferred, and failing a job whose last attempt was lost). ``superseded`` is True when a
    newer state of the job won (it was rescheduled, updated, removed or taken over while this
    attempt ran): the attempt happened, but its outcome was not written to the job.
    ``retried_at`` is set on a failed run once ``retry`` scheduled its job again.
    """

    run_id: int
    job_id: str
    handler: str
    attempt: int
    max_attempts: int
    outcome: Outcome
    runner: str | None
    scheduled_start: datetime
    started_at: datetime | None
    finished_at: datetime
    error: str | None = None
    #: The job's payload (JSON text) for succeeded, failed and expired runs, else None.
    payload: str | None = None
    superseded: bool = False
    retried_at: datetime | None = None

    @property
    def data(self) -> JSONValue:
        """The recorded payload as the handler saw it (None when none was recorded)."""
        return None if self.payload is None else parse_payload(self.payload)

    @property
    def duration(self) -> timedelta | None:
        """How long the handler ran (None for a decision made without running it)."""
        return None if self.started_at is None else self.finished_at - self.started_at


def checked_progress(done: object, total: object, note: object) -> Progress:
    """``jobsched.progress``'s arguments, checked (``UsageError`` for what cannot be shown)."""
    values: list[float | None] = []
    for name, value in (("done", done), ("total", total)):
        if value is None and name == "total":
            values.append(None)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"progress {name} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"progress {name} must be a finite number >= 0, got {value!r}")
        values.append(float(value))
    if note is not None and not isinstance(note, str):
        raise UsageError(f"progress note must be a string or None, got {type(note).__name__}")
    done_, total_ = values
    assert done_ is not None
    return Progress(done_, total_, None if note is None else cut_text(note, MAX_NOTE_BYTES))


class Status(enum.Enum):
    """Where a job stands, from its row and its history (``Scheduler.status``)."""

    SCHEDULED = "scheduled"  # its start is still to come
    DUE = "due"  # its start has come: the next pass takes it (or a runner has just taken it)
    RUNNING = "running"  # its handler is running (runner, started time, progress)
    DEFERRED = "deferred"  # put off: no handler was registered under its name
    FINISHED = "finished"  # its row is gone; the history says how it ended
    UNKNOWN = "unknown"  # neither the jobs table nor the history knows the id


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job's status (``Scheduler.status``): ``info`` while the job exists, ``last_run`` the
    newest history row of its id (if any), ``progress`` while its handler runs."""

    job_id: str
    status: Status
    info: JobInfo | None = None
    last_run: JobRun | None = None
    progress: Progress | None = None

    @property
    def job(self) -> Job | None:
        return None if self.info is None else self.info.job

    @property
    def runner(self) -> str | None:
        """The runner running the job (``host:pid``), while it runs."""
        return self.info.claimed_by if self.status is Status.RUNNING and self.info else None

    @property
    def started_at(self) -> datetime | None:
        """When the running attempt started, while it runs."""
        return self.info.started_at if self.status is Status.RUNNING and self.info else None


#: How each state of an existing job reads as a status: a claimed job waiting to start, and a
#: lost one (its runner stopped; the next pass takes it over), are due.
_STATUS_OF_STATE = {
    JobState.SCHEDULED: Status.SCHEDULED,
    JobState.DUE: Status.DUE,
    JobState.CLAIMED: Status.DUE,
    JobState.RUNNING: Status.RUNNING,
    JobState.LOST: Status.DUE,
    JobState.DEFERRED: Status.DEFERRED,
}


def job_status(
    job_id: str, info: JobInfo | None, last_run: JobRun | None, progress: Progress | None
) -> JobStatus:
    """The status of ``job_id`` given its row (``info``) and its newest history row."""
    if info is not None:
        status = _STATUS_OF_STATE[info.state]
        return JobStatus(
            job_id, status, info, last_run, progress if status is Status.RUNNING else None
        )
    if last_run is not None:
        return JobStatus(job_id, Status.FINISHED, None, last_run)
    return JobStatus(job_id, Status.UNKNOWN)


def lost_run(job: Job, runner: str | None, started_at: datetime | None, now: datetime) -> NewRun:
    """The history row of an attempt whose runner stopped before writing its outcome, written
    by the runner that took the job over at ``now`` (its ``last_error`` says what was lost)."""
    return NewRun(
        job.job_id,
        job.handler,
        job.attempts,
        job.max_attempts,
        Outcome.LOST.value,
        runner,
        job.start,
        started_at,
        now,
        job.last_error,
    )


# -- stats --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobCounts:
    """A handler's jobs by where they stand (``JobState``s grouped as ``Status``)."""

    scheduled: int = 0
    due: int = 0
    running: int = 0
    deferred: int = 0
    #: The start of its oldest due job that no runner holds (None: none is due).
    oldest_due: datetime | None = None


@dataclass(frozen=True, slots=True)
class HandlerStats:
    """``jobsched stats`` for one handler."""

    handler: str
    scheduled: int
    due: int
    running: int
    deferred: int
    #: How late its oldest due job is (None: none is due).
    lateness: timedelta | None
    #: Runs that ended in the last hour and day, by outcome value (outcomes with none left out).
    last_hour: dict[str, int] = field(default_factory=dict)
    last_day: dict[str, int] = field(default_factory=dict)
    #: Median and 95th percentile of handler run time in the last hour (None: no run).
    p50: timedelta | None = None
    p95: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    """``Scheduler.stats``: per handler, and the oldest due job's lateness over all."""

    at: datetime
    handlers: list[HandlerStats]
    lateness: timedelta | None

    @property
    def due(self) -> int:
        return sum(h.due for h in self.handlers)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The ``fraction`` percentile (0..1) of ascending values, nearest-rank (non-empty)."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def build_stats(
    now: datetime,
    counts: dict[str, JobCounts],
    last_hour: dict[tuple[str, str], int],
    last_day: dict[tuple[str, str], int],
    run_seconds: dict[str, list[float]],
) -> Stats:
    """``Stats`` from the store's aggregates (one ``now`` for all)."""
    names = sorted(set(counts) | {h for h, _ in last_day} | {h for h, _ in last_hour})
    handlers = []
    for name in names:
        jc = counts.get(name, JobCounts())
        seconds = sorted(run_seconds.get(name, []))
        handlers.append(
            HandlerStats(
                handler=name,
                scheduled=jc.scheduled,
                due=jc.due,
                running=jc.running,
                deferred=jc.deferred,
                lateness=None if jc.oldest_due is None else max(now - jc.oldest_due, ZERO),
                last_hour=_by_outcome(last_hour, name),
                last_day=_by_outcome(last_day, name),
                p50=timedelta(seconds=percentile(seconds, 0.5)) if seconds else None,
                p95=timedelta(seconds=percentile(seconds, 0.95)) if seconds else None,
            )
        )
    latenesses = [h.lateness for h in handlers if h.lateness is not None]
    return Stats(now, handlers, max(latenesses, default=None))


ZERO = timedelta(0)


def _by_outcome(counts: dict[tuple[str, str], int], handler: str) -> dict[str, int]:
    return {
        o.value: counts[(handler, o.value)]
        for o in RECORDED_OUTCOMES
        if counts.get((handler, o.value))
    }


def newest_per_job(runs: Iterable[JobRun]) -> list[JobRun]:
    """``runs`` (newest first) keeping the first of each job id."""
    seen: set[str] = set()
    kept = []
    for run in runs:
        if run.job_id not in seen:
            seen.add(run.job_id)
            kept.append(run)
    return kept


@dataclass(frozen=True, slots=True)
class RetryReport:
    """What ``retry_failed`` did: the jobs it scheduled again, and the ids it left alone (a job
    with that id exists again) with why."""

    scheduled: list[Job] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Which history rows to read, newest first."""

    job_id: str | None = None
    handler: str | None = None
    outcome: Outcome | None = None
    since: datetime | None = None
    limit: int | None = 100
    #: Failed runs not yet retried (nor superseded) only.
    open_failures: bool = False
