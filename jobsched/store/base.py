"""The storage interface every backend implements (SQL, memory), and the values it trades in.

A store never reads the clock and never decides policy: it is told ``now`` and what to write.
Writes a runner makes to a job it holds are *fenced*: they apply only while the row still carries
that runner's claim token and the version it last wrote, so a newer state always wins.
"""

from __future__ import annotations

import abc
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, TypeVar

from jobsched.errors import DatabaseError, UsageError
from jobsched.history import HistoryQuery, JobCounts, JobRun, NewRun
from jobsched.model import Job, JobRecord, MigrateResult, Mode, NewJob, OpKind, Progress
from jobsched.presence import Runner, RunningJob

T = TypeVar("T")

#: Conflicting writes ``update`` puts up with before it gives up.
UPDATE_ATTEMPTS = 1000

#: (start, job_id) of the last job a pass took: the pass goes on strictly after it.
Cursor = tuple[datetime, str]


def new_version() -> int:
    """A random first version for a new row (so a re-created job never matches an old fence)."""
    return secrets.randbits(62) + 1


def new_token() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Claim:
    """A job a runner holds: its state at the claim, the version it wrote, its token and lease."""

    job: Job
    version: int
    token: str
    lease: timedelta
    #: ``claimed_until`` as the claim wrote it.
    until: datetime
    #: The runner whose claim on this job ran out before it wrote an outcome (None: the job was
    #: free). Such a job may have run, or be running still on a paused runner: a *suspect*.
    taken_from: str | None = None
    #: True when that runner had marked its attempt started: the attempt is lost (counted, and
    #: ``job.last_error`` says so). The job stays marked started until an op of this claim ends
    #: or replaces the attempt.
    lost: bool = False
    #: The job's payload as stored (JSON text): history records it for some outcomes.
    payload: str = "null"
    #: When the lost attempt started (with ``lost``).
    started_at: datetime | None = None


class Op(NamedTuple):
    """One write to a claimed job. Every time it needs travels in it. (A named tuple: a pass
    makes two for every job it runs, and a frozen dataclass costs several times as much.)"""

    kind: OpKind
    claim: Claim
    at: datetime | None = None  # START: when the handler started; RETRY: the new start
    attempts: int | None = None  # START, RETRY, KEEP: the job's attempts after this write
    error: str | None = None  # RETRY: the new last_error
    until: datetime | None = None  # START: the renewed end of the claim, if any
    #: History rows written in the same transaction (the store adds whether the op applied).
    runs: tuple[NewRun, ...] = ()
    progress: Progress | None = None  # PROGRESS: the handler's latest report


#: Formats the ``last_error`` of an attempt whose runner vanished: ``(last_error, attempts,
#: runner, claim_ran_out)`` -> text (``rules.lost_attempt_error``).
LostError = Callable[[str | None, int, str | None, datetime | None], str]


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """What a runner asks of ``Store.claim``."""

    now: datetime
    limit: int
    runner: str
    lease_for: Callable[[str], timedelta]
    lost_error: LostError
    #: Only jobs strictly after this (start, id) in the pass's order.
    after: Cursor | None = None
    #: Only jobs of these handlers (None: every job).
    handlers: tuple[str, ...] | None = None
    #: Only jobs whose start is at or before this (None: ``now``): a pass takes the jobs that
    #: were due when it began.
    due_by: datetime | None = None
    #: ``max_running`` by handler: the claim leaves a handler's jobs alone while that many of
    #: them are claimed (by any runner), and takes no more than the rest of its slots.
    limits: Mapping[str, int] | None = None


class Store(abc.ABC):
    """Where jobs live. Methods that depend on time take ``now``."""

    #: True when separate ``run-due`` processes can share the jobs (a SQL database).
    shared = True

    @property
    def persistent(self) -> bool:
        """False when the jobs live only as long as this process (memory://, in-memory SQLite)."""
        return True

    @abc.abstractmethod
    def migrate(self) -> MigrateResult:
        """Create or upgrade the schema (idempotent); says which it did."""

    @abc.abstractmethod
    def schedule(
        self, jobs: Sequence[NewJob], mode: Mode, *, conn: object = None
    ) -> list[tuple[Job, bool]]:
        """Write ``jobs`` (ids distinct) in ``mode``; each result says whether it was written.

        NEW raises ``JobExistsError`` for the first existing id, and then nothing is written
        (inside a caller's ``conn`` the caller must roll back, as after any error).
        """

    def schedule_many(self, jobs: Sequence[NewJob], mode: Mode, *, conn: object = None) -> int:
        """``schedule``, returning only how many jobs were written (created, or replaced in
        RESCHEDULE mode): a store may then skip reading back the jobs that were there."""
        return sum(written for _, written in self.schedule(jobs, mode, conn=conn))

    @abc.abstractmethod
    def get(self, job_id: str, *, conn: object = None) -> Job | None:
        """The job, or None; with ``conn``, as the caller's transaction sees it."""

    @abc.abstractmethod
    def remove(self, job_id: str, *, conn: object = None) -> bool:
        """Delete the job (inside the caller's transaction with ``conn``); True if there was one."""

    def update(
        self,
        job_id: str,
        fn: Callable[[Job | None], tuple[NewJob | None, T]],
        *,
        conn: object = None,
    ) -> T:
        """Atomic read-modify-write of one job; ``fn`` may run again after a conflict.

        ``fn`` runs outside any transaction or lock; the write is fenced on the version it saw.
        With ``conn`` (SQL stores) it runs inside the caller's transaction instead, reading the
        job with a lock, so that no other writer comes between the read and the write.
        """
        if conn is not None:
            raise UsageError(f"conn= is not supported by {self.describe()}")
        for _ in range(UPDATE_ATTEMPTS):
            seen = self.read_versioned(job_id)
            new, value = fn(None if seen is None else seen[0])
            if seen is None and new is None:
                return value
            if self.write_versioned(job_id, None if seen is None else seen[1], new):
                return value
        raise DatabaseError(f"update_job({job_id!r}) gave up: the job kept changing under it")

    @abc.abstractmethod
    def read_versioned(self, job_id: str) -> tuple[Job, int] | None:
        """The job and its version, or None."""

    @abc.abstractmethod
    def write_versioned(self, job_id: str, version: int | None, new: NewJob | None) -> bool:
        """Write ``new`` (None: delete) if the job is still at ``version`` (None: still absent).

        A replaced job keeps its claim (a running attempt is not started twice), its version is
        bumped (the attempt's finish loses) and it counts as not started.
        """

    @abc.abstractmethod
    def claim(
        self, request: ClaimRequest, ops: Sequence[Op] = ()
    ) -> tuple[list[Claim], list[bool]]:
        """Apply ``ops`` (as ``apply``), then take up to ``request.limit`` due jobs that no live
        claim holds, oldest first: all in one transaction. Returns the claims and ``ops``' results.

        Taking over a claim that ran out sets ``Claim.taken_from``; if its attempt had been
        marked started, the claim also records the lost attempt (``request.lost_error``) and
        sets ``Claim.lost``.
        """

    @abc.abstractmethod
    def apply(self, ops: Sequence[Op]) -> list[bool]:
        """Apply writes to claimed jobs in one transaction; False where a newer state won
        (the job was rescheduled, updated, removed or taken over meanwhile).

        Where a fenced write does not apply, the claim is still released if the row carries it.
        """

    @abc.abstractmethod
    def heartbeat(self, leases: Sequence[tuple[Claim, datetime]]) -> set[str]:
        """Extend ``claimed_until`` of jobs still held by these claims (same token); returns the
        ids of the jobs whose claims it extended."""

    #: True when writes are worth batching (a database round trip each); False when they cost
    #: nothing (memory), so the runner writes each one at once.
    batches_writes = True

    @abc.abstractmethod
    def next_due(self) -> datetime | None:
        """The earliest time at which some job could be due (never later than the truth)."""

    @abc.abstractmethod
    def list_jobs(
        self,
        *,
        due_at: datetime | None = None,
        handler: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Job]:
        """Jobs ordered by start then id, optionally only those due at ``due_at``."""

    @abc.abstractmethod
    def get_record(self, job_id: str) -> JobRecord | None:
        """The job with its claim, or None."""

    @abc.abstractmethod
    def list_records(
        self,
        *,
        due_at: datetime | None = None,
        handler: str | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        """``list_jobs``, each job with its claim."""

    @abc.abstractmethod
    def count(self) -> int: ...

    # -- history ----------------------------------------------------------------------------------

    #: Bookkeeping transactions retried since the store opened (the database was busy or away).
    retries = 0

    @abc.abstractmethod
    def history(self, query: HistoryQuery) -> list[JobRun]:
        """History rows matching ``query``, newest first (by finish, then by row id)."""

    @abc.abstractmethod
    def retry(self, new: NewJob, now: datetime) -> None:
        """Insert ``new`` (NEW mode: ``JobExistsError`` if its id exists) and mark every open
        failed run of its id retried at ``now``, in one transaction."""

    @abc.abstractmethod
    def prune_history(self, cutoff: datetime, failed_cutoff: datetime) -> int:
        """Delete history rows that finished before ``cutoff`` (failed runs: before
        ``failed_cutoff``), at most ``PRUNE_BATCH`` a transaction; returns how many."""

    @abc.abstractmethod
    def due_for_pruning(self, now: datetime, every: timedelta) -> bool:
        """True for one caller in every ``every`` (across every process sharing the store),
        which should then prune; the store notes ``now`` as the last time."""

    def prune_if_due(
        self, now: datetime, every: timedelta, cutoff: datetime, failed_cutoff: datetime
    ) -> int:
        """A pass's own pruning: ``prune_history`` if ``due_for_pruning``; how many rows went."""
        if not self.due_for_pruning(now, every):
            return 0
        return self.prune_history(cutoff, failed_cutoff)

    @abc.abstractmethod
    def job_counts(self, now: datetime) -> dict[str, JobCounts]:
        """Per handler, its jobs by where they stand at ``now``."""

    @abc.abstractmethod
    def outcome_counts(self, since: datetime) -> dict[tuple[str, str], int]:
        """Runs that finished at or after ``since``, per (handler, outcome value)."""

    @abc.abstractmethod
    def run_seconds(self, since: datetime) -> dict[str, list[float]]:
        """Per handler, how long each run that finished at or after ``since`` ran (seconds);
        lost attempts are left out (their end is when the loss was found)."""

    @abc.abstractmethod
    def backlog(self, now: datetime) -> tuple[int, datetime | None]:
        """How many jobs are due at ``now`` that no live claim holds, and the oldest's start."""

    @abc.abstractmethod
    def clear(self, *, history: bool = False) -> int:
        """Delete every job, claimed or not (and with ``history`` every history row), in one
        transaction; returns how many jobs there were."""

    def close(self) -> None:  # noqa: B027 (optional for backends)
        """Release connections."""

    def describe(self) -> str:
        return type(self).__name__

    # -- runners (``jobsched.presence``) ----------------------------------------------------------

    @abc.abstractmethod
    def register_runner(self, runner: Runner) -> None:
        """Insert the runner's row, or replace the row of the same name (a reused pid)."""

    @abc.abstractmethod
    def beat_runner(self, name: str, now: datetime) -> bool:
        """Set the runner's ``heartbeat_at`` to ``now``; False if it has no row."""

    @abc.abstractmethod
    def remove_runner(self, name: str) -> bool:
        """Delete the runner's row; True if there was one."""

    @abc.abstractmethod
    def forget_runners(self, before: datetime) -> int:
        """Delete the rows whose heartbeat is older than ``before``; returns how many."""

    @abc.abstractmethod
    def list_runners(self, live_since: datetime) -> list[tuple[Runner, tuple[RunningJob, ...]]]:
        """Every runner's row, each with the jobs it is running now (claimed by it and started,
        oldest start first) if its heartbeat is at or after ``live_since`` (none otherwise)."""
