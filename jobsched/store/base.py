"""The storage interface every backend implements (SQL, memory), and the values it trades in.

A store never reads the clock and never decides policy: it is told ``now`` and what to write.
Writes a runner makes to a job it holds are *fenced*: they apply only while the row still carries
that runner's claim token and the version it last wrote, so a newer state always wins.
"""

from __future__ import annotations

import abc
import enum
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from jobsched.errors import DatabaseError, UsageError
from jobsched.model import Job, JobInfo, MigrateResult, Mode
from jobsched.rules import NewJob

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
    """A job a runner holds: its state at the claim, the version it wrote and its token."""

    job: Job
    version: int
    token: str
    lease: timedelta
    #: Set when this claim took over an attempt whose runner vanished: that runner's name.
    lost_runner: str | None = None

    def advanced(self, job: Job | None = None) -> Claim:
        """The claim after one more fenced write (which bumps the version)."""
        return replace(self, job=job or self.job, version=self.version + 1, lost_runner=None)


class OpKind(enum.Enum):
    START = "start"  # attempts + 1, started_at = now: the handler is about to run
    REMOVE = "remove"  # delete the job (succeeded, failed, expired)
    RETRY = "retry"  # new start and last_error; claim and started mark cleared (retried, deferred)
    KEEP = "keep"  # claim and started mark cleared, job as it is (kept); by token only
    # Claim cleared, job exactly as it is (given back unstarted); by token only. A lost attempt
    # stays marked started, so the next runner still sees it lost.
    RELEASE = "release"


@dataclass(frozen=True, slots=True)
class Op:
    """One fenced write to a claimed job."""

    kind: OpKind
    claim: Claim
    at: datetime | None = None  # START: when it started; RETRY: the new start
    error: str | None = None  # RETRY: the new last_error


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
        self,
        now: datetime,
        *,
        limit: int,
        after: Cursor | None,
        runner: str,
        lease_for: Callable[[str], timedelta],
        handlers: Sequence[str] | None = None,
    ) -> list[Claim]:
        """Take up to ``limit`` due jobs no live claim holds, oldest first, after ``after``
        (only jobs of ``handlers``, if given).

        A taken-over claim whose handler had started records the lost attempt in the same
        transaction (``last_error`` names the lost runner) and sets ``Claim.lost_runner``; the
        job stays marked started until an op of the new claim ends or replaces the attempt.
        """

    @abc.abstractmethod
    def apply(self, now: datetime, ops: Sequence[Op]) -> list[bool]:
        """Apply fenced writes in one transaction; False where a newer state won.

        Where a fenced write does not apply, the claim is still released if the row carries it.
        Fenced: START, REMOVE, RETRY; by token only: KEEP, RELEASE.
        """

    @abc.abstractmethod
    def heartbeat(self, leases: Sequence[tuple[Claim, datetime]]) -> int:
        """Extend ``claimed_until`` of jobs still held by these claims; returns how many."""

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
    def get_info(self, job_id: str, now: datetime) -> JobInfo | None:
        """The job with its claim and its state at ``now``, or None."""

    @abc.abstractmethod
    def list_info(
        self,
        now: datetime,
        *,
        due_at: datetime | None = None,
        handler: str | None = None,
        limit: int | None = None,
    ) -> Iterator[JobInfo]:
        """``list_jobs``, each job with its claim and its state at ``now``."""

    @abc.abstractmethod
    def count(self) -> int: ...

    def close(self) -> None:  # noqa: B027 (optional for backends)
        """Release connections."""

    def describe(self) -> str:
        return type(self).__name__
