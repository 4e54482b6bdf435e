"""The values jobsched passes around: jobs, scheduling modes, outcomes and run reports."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

#: Attempts a job gets unless ``max_attempts`` says otherwise (two retries).
DEFAULT_MAX_ATTEMPTS = 3

#: How long after a failed attempt (counted from the failure) the job runs again.
RETRY_DELAY = timedelta(hours=1)

JSONValue = Any


class Mode(enum.Enum):
    """What ``schedule_job`` does when a job with the same id exists."""

    #: The id must be new: ``JobExistsError`` otherwise.
    NEW = "new"
    #: Keep the existing job unchanged and return it.
    IGNORE_IF_EXISTS = "ignore-if-exists"
    #: Replace the existing job (every field reset, attempts to 0) or create it.
    RESCHEDULE = "reschedule"


class Outcome(enum.Enum):
    """What became of a job that a pass took. Used by reports, logs and the simulator."""

    SUCCEEDED = "succeeded"  # handler returned None/True: job removed
    KEPT = "kept"  # handler returned False: job kept as the handler left it
    RETRIED = "retried"  # handler raised, attempts left: due again after the retry delay
    FAILED = "failed"  # no attempts left (or PermanentError): job removed
    EXPIRED = "expired"  # past its expiry when taken: removed without running
    DEFERRED = "deferred"  # no handler registered under its name: put off, no attempt spent
    LOST = "lost"  # its runner vanished mid-attempt: the attempt counts, due again at once
    RELEASED = "released"  # claimed but given back unstarted (shutdown, time limit)


class OpKind(enum.Enum):
    """The writes a pass makes to a job it holds (``store.base.Op``)."""

    # Fenced (token and version); version unchanged: attempts and started_at of the attempt
    # now running (and, given ``until``, the claim renewed). Sent before the handler for a
    # suspect, else with the next batch of writes.
    START = "start"
    REMOVE = "remove"  # fenced: delete the job (succeeded, failed, expired)
    # Fenced: new start, last_error and attempts; claim and started mark cleared (retried,
    # deferred); version bumped.
    RETRY = "retry"
    KEEP = "keep"  # fenced: attempts; claim and started mark cleared (kept); version bumped
    # By token only: claim cleared, job exactly as it is (given back unstarted). A lost attempt
    # stays marked started, so the next runner still sees it lost.
    RELEASE = "release"
    # Fenced, version unchanged: the running handler's latest ``jobsched.progress``. A progress
    # write that does not hold leaves the claim alone (the handler is still running).
    PROGRESS = "progress"


class MigrateResult(enum.Enum):
    """What ``migrate`` found and did."""

    CREATED = "created"  # there was no jobsched schema: it was created
    UPGRADED = "upgraded"  # the schema was at an older revision: it was brought up to date
    CURRENT = "current"  # the schema was current already: nothing was done


@dataclass(frozen=True, slots=True)
class Job:
    """A scheduled job as stored. Times are aware UTC datetimes."""

    job_id: str
    handler: str
    data: JSONValue
    start: datetime
    expiry: datetime | None = None
    attempts: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    created_at: datetime | None = None
    last_error: str | None = None


class JobState(enum.Enum):
    """Where a job stands at a given time (``rules.job_state``); ``show`` and ``list`` say it."""

    SCHEDULED = "scheduled"  # its start is still to come
    DUE = "due"  # its start has come and no runner holds it: the next pass takes it
    CLAIMED = "claimed"  # a runner holds it and has not started its handler yet
    RUNNING = "running"  # a runner holds it and its handler is running
    LOST = "lost"  # its handler started, but the runner's claim ran out: that runner stopped
    DEFERRED = "deferred"  # a pass put it off: no handler was registered under its name


def with_attempts(job: Job, attempts: int) -> Job:
    """``job`` with ``attempts`` (what ``dataclasses.replace`` does, at a tenth of its cost: a
    pass does this for every job it runs)."""
    return Job(
        job.job_id,
        job.handler,
        job.data,
        job.start,
        job.expiry,
        attempts,
        job.max_attempts,
        job.created_at,
        job.last_error,
    )


def with_data(job: Job, data: JSONValue) -> Job:
    """``job`` with ``data`` (as ``with_attempts``)."""
    return Job(
        job.job_id,
        job.handler,
        data,
        job.start,
        job.expiry,
        job.attempts,
        job.max_attempts,
        job.created_at,
        job.last_error,
    )


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a running handler says it is: ``done`` of ``total`` (None: unknown), a note."""

    done: float
    total: float | None = None
    note: str | None = None

    def describe(self) -> str:
        """``3/10 (30%) copying``, ``3``, ``3 copying``..."""
        text = _number(self.done)
        if self.total is not None:
            text += f"/{_number(self.total)}"
            if self.total > 0:
                text += f" ({100 * self.done / self.total:.0f}%)"
        return text + (f" {self.note}" if self.note else "")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job with its claim as stored (``rules.job_info`` tells where it stands)."""

    job: Job
    claimed_by: str | None
    claimed_until: datetime | None
    started_at: datetime | None
    #: What the running handler last reported (``jobsched.progress``), while it runs.
    progress: Progress | None = None


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job with its claim, read at one time: ``Scheduler.get_job_info``/``list_job_infos``.

    ``claimed_by`` (``host:pid``) and ``claimed_until`` stay set after a claim runs out;
    ``started_at`` is set while an attempt's handler runs (or was running when its runner
    stopped).
    """

    job: Job
    state: JobState
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    started_at: datetime | None = None
    #: What the running handler last reported (``jobsched.progress``).
    progress: Progress | None = None


@dataclass(frozen=True, slots=True)
class NewJob:
    """A validated job ready to be written, with its payload already serialised."""

    job: Job
    payload: str


def dump_payload(data: JSONValue) -> str:
    """``data`` as the compact JSON text jobsched stores (raises what ``json.dumps`` raises)."""
    return _ENCODER.encode(data)


#: ``json.dumps(ensure_ascii=False, allow_nan=False, separators=(",", ":"))``, made once
#: (``json.dumps`` makes an encoder per call when given options).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def parse_payload(text: str) -> JSONValue:
    """A stored payload's JSON text as the value handlers see."""
    return None if text == "null" else json.loads(text)  # no payload: the common case


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job for ``schedule_jobs``: the arguments of ``schedule_job``."""

    job_id: str
    start: datetime | timedelta
    handler: str
    data: JSONValue = None
    expiry: datetime | timedelta | None = None
    max_attempts: int | None = None

    @classmethod
    def of(cls, value: JobSpec | Mapping[str, Any]) -> JobSpec:
        if isinstance(value, JobSpec):
            return value
        if isinstance(value, Mapping):
            unknown = value.keys() - _SPEC_FIELDS
            if unknown:
                from jobsched.errors import InvalidJobError

                raise InvalidJobError("job spec", f"unknown keys {sorted(unknown)}")
            for required in ("job_id", "start", "handler"):
                if required not in value:
                    from jobsched.errors import InvalidJobError

                    raise InvalidJobError(required, "missing from the job spec")
            return cls(**value)
        from jobsched.errors import InvalidJobError

        raise InvalidJobError(
            "job spec", f"expected a JobSpec or a dict, got {type(value).__name__}"
        )


_SPEC_FIELDS = frozenset(JobSpec.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class JobResult:
    """What one pass did with one job."""

    job_id: str
    handler: str
    attempt: int
    outcome: Outcome
    at: datetime
    error: str | None = None
    #: Seconds the handler ran, in real time (None: it did not run). Not compared: two runs of
    #: the same schedule give equal results.
    duration: float | None = field(default=None, compare=False)


@dataclass
class RunReport:
    """Counts of one pass of run-due, one lowercase attribute per outcome, plus per-job results."""

    ran: int = 0
    succeeded: int = 0
    kept: int = 0
    retried: int = 0
    failed: int = 0
    expired: int = 0
    deferred: int = 0
    lost: int = 0
    released: int = 0
    #: Per-job results, in the order they happened (empty when the caller asked for counts only).
    results: list[JobResult] = field(default_factory=list)
    #: Seconds of real time the pass took.
    duration: float = 0.0
    #: Bookkeeping transactions the pass had to try again (the database was busy or away).
    retries: int = 0
    keep_results: bool = field(default=True, repr=False)

    def record(self, result: JobResult) -> None:
        self.count(result.outcome)
        if self.keep_results:
            self.results.append(result)

    def count(self, outcome: Outcome) -> None:
        """Count one ``outcome`` (without a per-job result)."""
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)

    @property
    def taken(self) -> int:
        """Jobs the pass took (every outcome but LOST, which precedes another one, and RELEASED)."""
        return (
            self.succeeded + self.kept + self.retried + self.failed + self.expired + self.deferred
        )

    @property
    def troubled(self) -> bool:
        """True if a job failed, was retried, lost or deferred: what cron should mail about."""
        return bool(self.failed or self.retried or self.lost or self.deferred)

    def summary(self) -> str:
        """One line that adds up: the jobs taken by outcome, how many of them ran, and why the
        others did not, e.g. ``took 4 jobs (succeeded 2, retried 1, expired 1): ran 3,
        1 expired without running in 0.04s``. Each outcome appears once as ``<outcome> N``."""
        side = (Outcome.LOST, Outcome.RELEASED)  # not outcomes of a job taken: see ``taken``
        counts = ", ".join(
            f"{o.value} {getattr(self, o.value)}"
            for o in Outcome
            if o not in side and getattr(self, o.value)
        )
        taken = self.taken
        line = f"took {taken} job{'' if taken == 1 else 's'}" + (f" ({counts})" if counts else "")
        # A handler that ran ended SUCCEEDED, KEPT, RETRIED or FAILED; FAILED also counts jobs
        # whose last attempt a stopped runner lost, which fail without running again.
        ended = self.succeeded + self.kept + self.retried + self.failed
        not_run = [
            (self.expired, "expired"),
            (self.deferred, "deferred"),
            (max(0, ended - self.ran), "failed"),
        ]
        line += f": ran {self.ran}" + "".join(
            f", {n} {what} without running" for n, what in not_run if n
        )
        why = {
            Outcome.LOST: "attempts of stopped runners",
            Outcome.RELEASED: "given back unstarted",
        }
        notes = [
            f"{o.value} {getattr(self, o.value)} ({why[o]})" for o in side if getattr(self, o.value)
        ]
        if notes:
            line += "; " + ", ".join(notes)
        return f"{line} in {self.duration:.2f}s"
