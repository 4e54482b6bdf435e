"""Scheduling rules as pure functions: validation of new jobs, expiry, retries, error text.

Nothing here reads a clock or touches a database: every time comes in as an argument.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from jobsched.errors import InvalidJobError, IsolatedAttemptError, PermanentError, cut_text
from jobsched.model import (
    DEFAULT_MAX_ATTEMPTS,
    RETRY_DELAY,
    Job,
    JobInfo,
    JobRecord,
    JobState,
    JSONValue,
    NewJob,
    OpKind,
    Outcome,
    dump_payload,
    parse_payload,
)

#: Longest job id or handler name, in characters.
MAX_ID_LENGTH = 255
#: Default cap on a job's JSON payload, in bytes of UTF-8 (``Scheduler(max_payload_bytes=...)``).
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
#: The largest ``max_attempts`` (a 32-bit INT column).
MAX_ATTEMPTS = 2**31 - 1
#: The most of an error message kept in ``last_error``, in bytes of UTF-8.
MAX_ERROR_BYTES = 4000


def resolve_time(value: object, now: datetime, field: str, *, base: str = "now") -> datetime:
    """An aware datetime as is (in UTC), or a timedelta counted from ``now`` (which ``base``
    names in messages: an expiry's timedelta counts from the start)."""
    if isinstance(value, timedelta):
        try:
            return now + value
        except OverflowError:
            raise InvalidJobError(field, f"{base} + {value} is past the year 9999") from None
    if not isinstance(value, datetime):
        raise InvalidJobError(
            field, f"expected a datetime or timedelta, got {type(value).__name__}"
        )
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise InvalidJobError(
            field, f"{value.isoformat()} has no time zone; pass an aware datetime (tzinfo=UTC)"
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidJobError(field, f"{value.isoformat()} in UTC is out of range") from None


def resolve_expiry(value: object, start: datetime) -> datetime | None:
    """None, an aware datetime (in UTC), or a timedelta counted from the job's ``start``."""
    if value is None:
        return None
    return resolve_time(value, start, "expiry", base="the start")


#: Control characters (Unicode category Cc: C0, DEL and C1), refused in ids and handler names.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_NAMES = {
    "\x00": "a NUL character",
    "\t": "a tab",
    "\n": "a newline",
    "\r": "a carriage return",
    "\x1b": "an escape character",
    "\x7f": "a DEL character",
    "\x85": "a next-line character",
}


def check_name(value: object, field: str) -> str:
    """A job id or handler name: a non-empty string of at most ``MAX_ID_LENGTH`` characters,
    valid unicode, without control characters (they break logs, listings and lookups)."""
    if not isinstance(value, str):
        raise InvalidJobError(field, f"expected a string, got {type(value).__name__}")
    if not value:
        raise InvalidJobError(field, "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidJobError(field, f"{len(value)} characters; at most {MAX_ID_LENGTH} allowed")
    control = _CONTROL.search(value)
    if control is not None:
        char = control.group()
        name = _CONTROL_NAMES.get(char, "a control character")
        raise InvalidJobError(
            field,
            f"contains {name} ({char!r}, U+{ord(char):04X}) at index {control.start()}; "
            "ids and handler names must not contain control characters",
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidJobError(field, "is not valid unicode (lone surrogate)") from e
    return value


def check_handler_name(value: object) -> str:
    """A handler name: as ``check_name``, and not only whitespace."""
    name = check_name(value, "handler")
    if not name.strip():
        raise InvalidJobError("handler", f"{name!r} is only whitespace; give a handler's name")
    return name


def serialise_payload(data: JSONValue, max_bytes: int) -> str:
    """``data`` as compact JSON text; refuses what JSON cannot hold and payloads over the cap."""
    try:
        text = dump_payload(data)
    except (TypeError, ValueError, RecursionError) as e:
        raise InvalidJobError("data", f"not JSON-serialisable: {e}") from e
    try:
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise InvalidJobError("data", "contains a lone surrogate, which UTF-8 cannot hold") from e
    if size > max_bytes:
        raise InvalidJobError("data", f"{size} bytes of JSON; the cap is {max_bytes} bytes")
    return text


def check_max_attempts(value: object) -> int:
    if value is None:
        return DEFAULT_MAX_ATTEMPTS
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidJobError("max_attempts", f"expected an integer, got {value!r}")
    if value < 1 or value > MAX_ATTEMPTS:
        raise InvalidJobError(
            "max_attempts", f"{value} is out of range; it must be from 1 to {MAX_ATTEMPTS}"
        )
    return value


def check_attempts(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**31 - 1:
        raise InvalidJobError("attempts", f"expected an integer >= 0, got {value!r}")
    return value


def new_job(
    job_id: object,
    start: object,
    handler: object,
    data: JSONValue,
    *,
    now: datetime,
    expiry: object = None,
    max_attempts: object = None,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> NewJob:
    """Validate ``schedule_job``'s arguments into a fresh job created at ``now``.

    A timedelta ``start`` counts from ``now``; a timedelta ``expiry`` from the start. (What
    ``checked`` does for a whole ``Job``, in one pass: this runs for every job scheduled.)
    """
    start_at = _in_utc(resolve_time(start, now, "start"), "start")
    name = check_name(job_id, "job_id")
    handler_name = check_handler_name(handler)
    expiry_at = resolve_expiry(expiry, start_at)
    if expiry_at is not None:
        expiry_at = _in_utc(expiry_at, "expiry")
    attempts_cap = check_max_attempts(max_attempts)
    if expiry_at is not None and expiry_at < start_at:
        raise InvalidJobError(
            "expiry", f"{expiry_at.isoformat()} is before the start {start_at.isoformat()}"
        )
    created_at = _in_utc(now, "created_at")
    payload = serialise_payload(data, max_payload_bytes)
    # Store exactly what reading it back will give (tuples become lists, and so on).
    job = Job(
        name, handler_name, parse_payload(payload), start_at, expiry_at, 0, attempts_cap, created_at
    )
    return NewJob(job=job, payload=payload)


def checked(job: Job, *, now: datetime, max_payload_bytes: int) -> NewJob:
    """Validate a whole ``Job`` (as ``add_job`` and ``update_job`` receive it)."""
    if not isinstance(job, Job):
        raise InvalidJobError("job", f"expected a jobsched.Job, got {type(job).__name__}")
    start = resolve_time(job.start, now, "start")
    expiry = resolve_expiry(job.expiry, start)
    if expiry is not None and expiry < start:
        raise InvalidJobError(
            "expiry", f"{expiry.isoformat()} is before the start {start.isoformat()}"
        )
    created_at = now if job.created_at is None else resolve_time(job.created_at, now, "created_at")
    last_error = job.last_error
    if last_error is not None and not isinstance(last_error, str):
        raise InvalidJobError("last_error", f"expected a string or None, got {last_error!r}")
    job_id = check_name(job.job_id, "job_id")
    handler = check_handler_name(job.handler)
    attempts = check_attempts(job.attempts)
    max_attempts = check_max_attempts(job.max_attempts)
    payload = serialise_payload(job.data, max_payload_bytes)
    clean = Job(
        job_id,
        handler,
        # Store exactly what reading it back will give (tuples become lists, and so on).
        parse_payload(payload),
        _in_utc(start, "start"),
        None if expiry is None else _in_utc(expiry, "expiry"),
        attempts,
        max_attempts,
        _in_utc(created_at, "created_at"),
        None if last_error is None else cut_error(last_error),
    )
    return NewJob(job=clean, payload=payload)


def _in_utc(value: datetime, field: str) -> datetime:
    """An aware datetime in UTC."""
    if value.tzinfo is UTC:
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidJobError(field, f"{value.isoformat()} in UTC is out of range") from None


def first_repeated(ids: Iterable[str]) -> tuple[int, int, str] | None:
    """The first id that repeats: (index of its first occurrence, index of the repeat, id)."""
    seen: dict[str, int] = {}
    for index, job_id in enumerate(ids):
        if job_id in seen:
            return seen[job_id], index, job_id
        seen[job_id] = index
    return None


def is_expired(job: Job, now: datetime) -> bool:
    """A job past its expiry must not start."""
    return job.expiry is not None and job.expiry < now


def retry_at(now: datetime, delay: timedelta = RETRY_DELAY) -> datetime:
    """When a failed (or deferred) job runs again: ``delay`` (one hour unless its handler says
    otherwise) after ``now``, the time it failed."""
    return now + delay


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a pass writes for a job it took, and how it reports it."""

    kind: OpKind
    outcome: Outcome
    at: datetime | None = None  # RETRY: the job's new start
    error: str | None = None


def before_start(
    job: Job, *, lost: bool, now: datetime, handler_known: bool, lease_safe: bool
) -> Verdict | None:
    """What becomes of a job a pass took, decided at ``now``, the moment its handler would
    start: None to run it; else it fails (its last attempt was lost), expires, is deferred (no
    handler registered) or is given back (its claim may run out before it could start safely).
    """
    if lost and job.attempts >= job.max_attempts:
        # Only a lost attempt spends the last one this way: a job kept (False) any number of
        # times is not failed for it.
        return Verdict(OpKind.REMOVE, Outcome.FAILED, error=job.last_error)
    if is_expired(job, now):
        return Verdict(OpKind.REMOVE, Outcome.EXPIRED)
    if not handler_known:
        return Verdict(
            OpKind.RETRY, Outcome.DEFERRED, at=retry_at(now), error=no_handler_error(job.handler)
        )
    if not lease_safe:
        return Verdict(OpKind.RELEASE, Outcome.RELEASED)
    return None


def after_attempt(
    job: Job,
    *,
    returned: object = None,
    raised: BaseException | None = None,
    now: datetime,
    retry_delay: timedelta = RETRY_DELAY,
) -> Verdict:
    """What becomes of ``job`` (its attempts counting this one) once its handler returned
    ``returned`` or raised ``raised``, at ``now``: False keeps it, any other return removes it,
    an error retries it ``retry_delay`` after ``now`` while attempts are left (a
    ``PermanentError`` fails it at once)."""
    if raised is None:
        if returned is False:
            return Verdict(OpKind.KEEP, Outcome.KEPT)
        return Verdict(OpKind.REMOVE, Outcome.SUCCEEDED)
    error = describe_error(raised)
    permanent = isinstance(raised, PermanentError) or (
        isinstance(raised, IsolatedAttemptError) and raised.permanent  # raised in a child
    )
    if permanent or job.attempts >= job.max_attempts:
        return Verdict(OpKind.REMOVE, Outcome.FAILED, error=error)
    return Verdict(OpKind.RETRY, Outcome.RETRIED, at=retry_at(now, retry_delay), error=error)


def no_handler_error(handler: str) -> str:
    """The ``last_error`` of a job deferred because no handler is registered for it."""
    return (
        f"{DEFERRED_PREFIX}{handler!r} (is the module that defines it imported, "
        "with --app?); deferred, no attempt spent"
    )


#: A handler starts only while its claim has at least this share of its lease left, as its
#: runner last confirmed it: one heartbeat interval. A claim the heartbeat could not renew
#: (the database was away, the runner paused) may be taken over soon; the runner gives it up.
START_MARGIN = 1 / 3


def start_by(confirmed_until: datetime, lease: timedelta) -> datetime:
    """Until when a handler may start on a claim of ``lease`` confirmed until
    ``confirmed_until`` (strictly before it): the claim leaves a safe margin until then."""
    return confirmed_until - lease * START_MARGIN


#: Jobs the first claim of a pass takes (at least twice the concurrency).
FIRST_BATCH = 16
#: The most jobs one claim takes.
MAX_BATCH = 1000
#: Handler time one batch should hold, in seconds (per handler running at once).
BATCH_SECONDS = 0.1
#: How many times the last batch the next one may be, while handlers are quick: a pass over a
#: hundred quick jobs takes two claims (16, then the rest), not four.
BATCH_GROWTH = 8


def next_batch_size(current: int, handler_seconds: float, jobs: int, concurrency: int) -> int:
    """The size of a pass's next claim, after the last batch ran ``jobs`` handlers taking
    ``handler_seconds`` in all: about ``BATCH_SECONDS`` of handler time per handler slot, never
    more than ``BATCH_GROWTH`` times the last batch, and at least twice the concurrency."""
    floor = 2 * concurrency
    if jobs <= 0:
        return max(floor, min(current, MAX_BATCH))
    per_job = handler_seconds / jobs
    fits = MAX_BATCH if per_job <= 0 else int(BATCH_SECONDS * concurrency / per_job)
    return max(floor, min(fits, BATCH_GROWTH * current, MAX_BATCH))


def cut_error(text: str, max_bytes: int = MAX_ERROR_BYTES) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8 (a ``last_error``)."""
    return cut_text(text, max_bytes)


def lost_attempt_error(
    last_error: str | None, attempts: int, runner: str | None, claim_ran_out: datetime | None
) -> str:
    """The ``last_error`` of an attempt whose runner vanished before finishing it.

    A lost attempt stays marked started until a runner decides what becomes of the job, so a
    runner that took it over and died in turn before deciding leaves it lost for the next one
    (which must not start an attempt past ``max_attempts``). The first record, naming the runner
    that ran the attempt, is kept.
    """
    prefix = f"attempt {attempts} lost: "
    if last_error is not None and last_error.startswith(prefix):
        return last_error
    at = claim_ran_out.isoformat() if claim_ran_out else "?"
    return f"{prefix}its runner {runner or 'an unknown runner'} stopped (claim ran out at {at})"


def describe_error(exc: BaseException) -> str:
    """The ``last_error`` of an attempt that raised ``exc``."""
    if isinstance(exc, IsolatedAttemptError):  # run in a child: its message says it all
        return cut_error(str(exc))
    if isinstance(exc, SystemExit):
        code = "" if exc.code is None else repr(exc.code)
        return cut_error(f"the handler called sys.exit({code})")
    text = f"{type(exc).__name__}: {exc}"
    return cut_error(text)


#: How the ``last_error`` of a job a pass deferred (no handler registered) begins; the runner
#: writes it, and a contract test checks that a deferred job reads as DEFERRED.
DEFERRED_PREFIX = "no handler registered for "


def job_state(
    job: Job, *, claimed_until: datetime | None, started_at: datetime | None, now: datetime
) -> JobState:
    """Where ``job`` stands at ``now``, given its claim (see ``JobState``)."""
    if claimed_until is not None and claimed_until > now:
        return JobState.RUNNING if started_at is not None else JobState.CLAIMED
    if started_at is not None:
        return JobState.LOST
    if job.last_error is not None and job.last_error.startswith(DEFERRED_PREFIX):
        return JobState.DEFERRED
    return JobState.DUE if job.start <= now else JobState.SCHEDULED


def job_info(record: JobRecord, now: datetime) -> JobInfo:
    """A stored job with its claim, and where it stands at ``now``."""
    state = job_state(
        record.job, claimed_until=record.claimed_until, started_at=record.started_at, now=now
    )
    return JobInfo(record.job, state, record.claimed_by, record.claimed_until, record.started_at)
