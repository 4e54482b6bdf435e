"""The ``Scheduler``: the public operations on jobs, tying a store, a clock and the handlers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa

from jobsched import history as hist
from jobsched import presence, rules
from jobsched.clock import Clock, RealClock
from jobsched.errors import InvalidJobError, JobExistsError, MissingJobError, UsageError
from jobsched.handlers import Registry
from jobsched.handlers import registry as default_registry
from jobsched.history import HistoryQuery, JobRun, JobStatus, RetryReport, Stats
from jobsched.model import (
    Job,
    JobInfo,
    JobResult,
    JobSpec,
    JSONValue,
    MigrateResult,
    Mode,
    NewJob,
    Outcome,
    RunReport,
)
from jobsched.presence import REGISTER_AFTER, RUN_DUE, WORKER, Presence, RunnerInfo
from jobsched.runner import Pass, PassOptions, runner_name
from jobsched.store import Store, open_store
from jobsched.worker import DEFAULT_POLL, DEFAULT_PREFETCH, run_worker

T = TypeVar("T")
log = logging.getLogger("jobsched")


class Scheduler:
    """Jobs in one database, seen through one clock.

    ``url`` is a database URL (default ``$JOBSCHED_DATABASE_URL``, else ``sqlite:///jobsched.db``),
    an existing SQLAlchemy ``Engine``, or ``"memory://"`` for the in-memory backend.

    ``history`` (default ``$JOBSCHED_HISTORY``, else on) records every attempt in ``job_runs``;
    rows older than ``retention`` (failed runs: ``failed_retention``) are pruned.
    """

    def __init__(
        self,
        url: str | sa.Engine | None = None,
        *,
        clock: Clock | None = None,
        max_payload_bytes: int = rules.DEFAULT_MAX_PAYLOAD_BYTES,
        registry: Registry | None = None,
        history: bool | None = None,
        retention: timedelta = hist.RETENTION,
        failed_retention: timedelta = hist.FAILED_RETENTION,
    ) -> None:
        self.history_enabled = hist.history_enabled(history)
        self.retention = _positive_duration(retention, "retention")
        self.failed_retention = _positive_duration(failed_retention, "failed_retention")
        self.clock: Clock = clock or RealClock()
        self.store: Store = open_store(url)
        self.max_payload_bytes = max_payload_bytes
        self.registry = default_registry if registry is None else registry

    def __repr__(self) -> str:
        return f"Scheduler({self.describe()!r}, clock={self.clock!r})"

    def describe(self) -> str:
        """The database, for messages: its URL with any password hidden (``memory://`` for the
        in-memory backend)."""
        return self.store.describe()

    @property
    def persistent(self) -> bool:
        """False when the jobs live only as long as this process (``memory://``, an in-memory
        SQLite database): what is written there is lost when the process ends."""
        return self.store.persistent

    def close(self) -> None:
        """Release the database connections this scheduler opened."""
        self.store.close()

    # -- clock ----------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The scheduler's current time (aware, UTC)."""
        return self.clock.now()

    def time(self) -> float:
        """The scheduler's current time as a Unix timestamp."""
        return self.clock.now().timestamp()

    @property
    def is_real(self) -> bool:
        """False when the clock is a fake one (tests, simulations)."""
        return bool(self.clock.is_real)

    @property
    def run_jobs_remotely(self) -> bool:
        """True when separate ``run-due`` processes run the jobs (a real clock on SQL)."""
        return self.is_real and self.store.shared

    # -- schema ---------------------------------------------------------------------------------

    def migrate(self) -> MigrateResult:
        """Create or upgrade the schema to the newest revision (idempotent); says which it did."""
        return self.store.migrate()

    # -- writing jobs ---------------------------------------------------------------------------

    def schedule_job(
        self,
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
        """Schedule ``handler`` to run with ``data`` at ``start`` (see ``Mode`` for an existing id).

        With ``conn`` the job is written inside the caller's transaction: it exists if and only
        if that transaction commits. Raises ``InvalidJobError`` (nothing written) for bad input.
        """
        spec = JobSpec(job_id, start, handler, data, expiry, max_attempts)
        new = self._validate(spec, self.now())
        _check_mode(mode)
        [(job, _)] = self.store.schedule([new], mode, conn=conn)
        return job

    def schedule_jobs(
        self,
        jobs: Iterable[JobSpec | Mapping[str, Any]],
        *,
        mode: Mode = Mode.NEW,
        conn: sa.Connection | None = None,
    ) -> int:
        """Schedule many jobs in as few round trips as the database allows.

        All are validated before anything is written. In NEW mode an id that exists or repeats
        raises ``JobExistsError`` and nothing is written. Returns how many were created or
        replaced (in IGNORE_IF_EXISTS mode: created).
        """
        mode = _check_mode(mode)
        now = self.now()
        news: list[NewJob] = []
        for index, item in enumerate(jobs):
            try:
                news.append(self._validate(JobSpec.of(item), now))
            except InvalidJobError as e:
                raise e.in_item(index, _item_id(item)) from None
        repeated = rules.first_repeated(n.job.job_id for n in news)
        if repeated is not None:
            first, index, job_id = repeated
            if mode is Mode.NEW:
                raise JobExistsError(job_id)
            raise InvalidJobError(
                "job_id", f"appears more than once in the batch (first as item {first})"
            ).in_item(index, job_id)
        if not news:
            return 0
        return self.store.schedule_many(news, mode, conn=conn)

    def add_job(self, job: Job, *, conn: sa.Connection | None = None) -> Job:
        """Insert ``job`` exactly as given (attempts, last_error, created_at kept).

        ``JobExistsError`` if the id exists.
        """
        new = rules.checked(job, now=self.now(), max_payload_bytes=self.max_payload_bytes)
        [(stored, _)] = self.store.schedule([new], Mode.NEW, conn=conn)
        return stored

    def _validate(self, spec: JobSpec, now: datetime) -> NewJob:
        return rules.new_job(
            spec.job_id,
            spec.start,
            spec.handler,
            spec.data,
            now=now,
            expiry=spec.expiry,
            max_attempts=spec.max_attempts,
            max_payload_bytes=self.max_payload_bytes,
        )

    def remove_job(self, job_id: str, *, conn: sa.Connection | None = None) -> bool:
        """Remove a job; True if there was one.

        With ``conn`` the job is removed inside the caller's transaction (gone if and only if
        that transaction commits).
        """
        return self.store.remove(rules.check_name(job_id, "job_id"), conn=conn)

    def clear(self, *, history: bool = True) -> int:
        """Remove every job, claimed or running ones too, and (unless ``history=False``) the
        history, in one transaction; returns how many jobs there were. For tests (the
        ``jobsched_sim`` fixture empties a SQL database with it): a running handler's outcome
        is then not written (the newer state wins)."""
        return self.store.clear(history=history)

    def update_job(
        self,
        job_id: str,
        fn: Callable[[Job | None], tuple[Job | None, T]],
        *,
        conn: sa.Connection | None = None,
    ) -> T:
        """Atomically replace a job with ``fn(job)[0]`` (None removes it); returns ``fn(job)[1]``.

        ``fn`` may be called more than once (after a conflicting write) and must not call the
        scheduler itself. With ``conn`` it runs inside the caller's transaction, reading the job
        with a lock (on SQLite, the database's write lock) that the transaction holds until it
        ends; the change exists if and only if that transaction commits.
        """
        job_id = rules.check_name(job_id, "job_id")

        def checked(current: Job | None) -> tuple[NewJob | None, T]:
            new, value = fn(current)
            if new is None:
                return None, value
            if not isinstance(new, Job):
                raise InvalidJobError("job", f"update_job's fn returned {type(new).__name__}")
            if new.job_id != job_id:
                raise InvalidJobError("job_id", f"update_job cannot change {job_id!r}'s id")
            return rules.checked(
                new, now=self.now(), max_payload_bytes=self.max_payload_bytes
            ), value

        return self.store.update(job_id, checked, conn=conn)

    # -- reading jobs ---------------------------------------------------------------------------

    def get_job(self, job_id: str, *, conn: sa.Connection | None = None) -> Job | None:
        """The job with this id, or None; with ``conn``, as the caller's transaction sees it."""
        return self.store.get(rules.check_name(job_id, "job_id"), conn=conn)

    def job_exists(self, job_id: str, *, conn: sa.Connection | None = None) -> bool:
        """True if a job with this id exists (with ``conn``, in the caller's transaction)."""
        return self.get_job(job_id, conn=conn) is not None

    def list_jobs(
        self, *, due: bool = False, handler: str | None = None, limit: int | None = None
    ) -> Iterator[Job]:
        """Jobs by start time (then id); ``due`` keeps those whose start has come."""
        if limit is not None and (isinstance(limit, bool) or limit < 1):
            raise UsageError(f"limit must be a positive integer, got {limit!r}")
        return self.store.list_jobs(
            due_at=self.now() if due else None, handler=handler, limit=limit
        )

    def get_job_info(self, job_id: str) -> JobInfo | None:
        """The job with its claim and where it stands now (``JobInfo.state``), or None."""
        record = self.store.get_record(rules.check_name(job_id, "job_id"))
        return None if record is None else rules.job_info(record, self.now())

    def list_job_infos(
        self, *, due: bool = False, handler: str | None = None, limit: int | None = None
    ) -> Iterator[JobInfo]:
        """``list_jobs``, each job with its claim and where it stands now (one ``now``)."""
        if limit is not None and (isinstance(limit, bool) or limit < 1):
            raise UsageError(f"limit must be a positive integer, got {limit!r}")
        now = self.now()
        records = self.store.list_records(due_at=now if due else None, handler=handler, limit=limit)
        return (rules.job_info(record, now) for record in records)

    def count_jobs(self) -> int:
        """How many jobs there are."""
        return self.store.count()

    def next_due(self) -> datetime | None:
        """The earliest time at which a pass could find some job due (None: there is no job).

        Never later than the truth, so a pass before it has nothing to do: the earliest start
        of an unclaimed job, or end of a claim (a claimed job may be taken over then). It may
        come earlier than any job is actually due; a pass then finds nothing.
        """
        return self.store.next_due()

    # -- running jobs ---------------------------------------------------------------------------

    def run_due_jobs(
        self,
        *,
        limit: int | None = None,
        concurrency: int = 1,
        max_seconds: float | None = None,
        stop: threading.Event | None = None,
        keep_results: bool = True,
        handlers: Iterable[str] | None = None,
        on_result: Callable[[JobResult], None] | None = None,
        isolate: bool = False,
    ) -> RunReport:
        """Run one pass over the due jobs (at most ``limit``) and report what became of each.

        ``handlers`` restricts the pass to the jobs of those handlers (each must be registered),
        so runners of different apps can share one database; without it, a job whose handler is
        not registered here is deferred an hour. A pass with no handler registered at all raises
        ``NoHandlersError`` before it takes anything. ``on_result`` hears of every job's
        result as it happens (from the threads running handlers: it must be thread-safe).
        ``isolate`` runs every handler's attempts in child processes (as ``isolate=True`` on
        each handler does).

        With history on, every attempt is recorded, and at most every ten minutes (across every
        process sharing the database) the pass prunes history older than the retention.
        """
        options = PassOptions(
            limit=limit,
            concurrency=concurrency,
            max_seconds=max_seconds,
            keep_results=keep_results,
            handlers=None if handlers is None else _handler_names(handlers),
            history=self.history_enabled,
            isolate=isolate,
        )
        made = self._pass(options, stop, on_result)
        with Presence(
            self.store,
            self.clock,
            runner=made.runner,
            kind=RUN_DUE,
            concurrency=concurrency,
            register_after=REGISTER_AFTER,
        ):
            report = made.run()
        if self.history_enabled:
            self._prune_now_and_then()
        return report

    def run_worker(
        self,
        *,
        stop: threading.Event,
        concurrency: int = 1,
        poll: float = DEFAULT_POLL,
        prefetch: int = DEFAULT_PREFETCH,
        handlers: Iterable[str] | None = None,
        isolate: bool = False,
        on_result: Callable[[JobResult], None] | None = None,
        on_round: Callable[[], None] | None = None,
    ) -> RunReport:
        """Run due jobs until ``stop`` is set: a pass that, when nothing is due, waits for the
        next due job (at most ``poll`` seconds) and goes on. It holds at most ``prefetch``
        claimed jobs that have not started. A database that goes away is waited out (backing
        off from one second to thirty, with a log line each time), never raised. Returns what
        it did, counted (no per-job results: ``on_result`` hears of each).

        ``handlers``, ``isolate`` and ``concurrency`` are those of ``run_due_jobs``;
        ``on_round`` is called each time it looks for due jobs. Raises
        ``NoHandlersError`` or ``UsageError`` before taking anything when it could run nothing.
        """
        options = PassOptions(
            concurrency=concurrency,
            keep_results=False,
            handlers=None if handlers is None else _handler_names(handlers),
            history=self.history_enabled,
            isolate=isolate,
            poll=poll,
            prefetch=prefetch,
        )

        def new_pass(each_round: Callable[[], None]) -> Pass:
            return self._pass(options, stop, on_result, each_round)

        chores = self._prune_now_and_then if self.history_enabled else None
        new_pass(lambda: None)  # refuses missing handlers before anything else
        with Presence(
            self.store,
            self.clock,
            runner=runner_name(),
            kind=WORKER,
            concurrency=concurrency,
            register_after=REGISTER_AFTER,
        ):
            return run_worker(new_pass, stop=stop, chores=chores, on_round=on_round)

    def _pass(
        self,
        options: PassOptions,
        stop: threading.Event | None,
        on_result: Callable[[JobResult], None] | None,
        on_round: Callable[[], None] | None = None,
    ) -> Pass:
        """A pass over this scheduler's jobs, checked to have handlers to run."""
        made = Pass(
            self.store,
            self.clock,
            self.registry,
            options,
            stop=stop,
            on_result=on_result,
            api=self,
            on_round=on_round,
        )
        made.check_handlers()
        return made

    def runners(self, *, include_stale: bool = False) -> list[RunnerInfo]:
        """The workers and passes running now on this database (with ``include_stale``, also
        those whose heartbeat stopped: they died), each with the jobs it is running."""
        return presence.runners(self.store, self.clock, include_stale=include_stale)

    # -- history ----------------------------------------------------------------------------------

    def status(self, job_id: str) -> JobStatus:
        """Where the job stands: scheduled, due, running (with its runner, started time and
        progress), deferred, finished (its row is gone: ``last_run`` says how it ended), or
        unknown (neither the jobs table nor the history knows the id)."""
        job_id = rules.check_name(job_id, "job_id")
        record = self.store.get_record(job_id)
        runs = self.store.history(HistoryQuery(job_id=job_id, limit=1))
        info = None if record is None else rules.job_info(record, self.now())
        progress = None if record is None else record.progress
        return hist.job_status(job_id, info, runs[0] if runs else None, progress)

    def history(
        self,
        job_id: str | None = None,
        *,
        handler: str | None = None,
        outcome: Outcome | str | None = None,
        since: datetime | timedelta | None = None,
        limit: int | None = 100,
    ) -> list[JobRun]:
        """History rows, newest first: of one job, a handler, an outcome, since a time (a
        timedelta: that long ago); at most ``limit`` (None: all)."""
        return self.store.history(
            HistoryQuery(
                job_id=None if job_id is None else rules.check_name(job_id, "job_id"),
                handler=handler,
                outcome=_outcome(outcome),
                since=self._since(since),
                limit=_limit(limit),
            )
        )

    def failed_jobs(
        self,
        *,
        handler: str | None = None,
        since: datetime | timedelta | None = None,
        limit: int | None = None,
    ) -> list[JobRun]:
        """The failed jobs not yet retried, newest first: the newest failed run of each id.
        A failure whose outcome was superseded (the job was replaced while it ran) is not
        listed; one whose id was scheduled again since is (``retry`` then refuses it)."""
        runs = self.store.history(
            HistoryQuery(
                handler=handler,
                since=self._since(since),
                limit=None,
                open_failures=True,
            )
        )
        found = hist.newest_per_job(runs)
        limit = _limit(limit)
        return found if limit is None else found[:limit]

    def retry(
        self,
        job_id: str,
        *,
        start: datetime | timedelta | None = None,
        expiry: datetime | timedelta | None = None,
    ) -> Job:
        """Schedule a failed job again from its newest failed run: its payload, handler and
        max_attempts, attempts reset, due ``start`` (default now), no expiry unless given.

        ``MissingJobError`` if no failed run of ``job_id`` waits for a retry;
        ``JobExistsError`` if a job with this id exists again (nothing is written).
        """
        job_id = rules.check_name(job_id, "job_id")
        found = self.store.history(HistoryQuery(job_id=job_id, limit=None, open_failures=True))
        if not found:
            raise MissingJobError(
                f"no failed run of job {job_id!r} waits for a retry (see jobsched history "
                f"{job_id}); a job that has been retried already, or whose history was pruned, "
                "cannot be retried from it"
            )
        return self._retry(found[0], start, expiry, self.now())

    def retry_failed(
        self,
        *,
        handler: str | None = None,
        since: datetime | timedelta | None = None,
        start: datetime | timedelta | None = None,
        expiry: datetime | timedelta | None = None,
    ) -> RetryReport:
        """``retry`` every failed job not yet retried (of ``handler``, failed ``since``); an id
        that exists again is skipped, and the report says so."""
        now = self.now()
        report = RetryReport()
        for run in self.failed_jobs(handler=handler, since=since):
            try:
                report.scheduled.append(self._retry(run, start, expiry, now))
            except JobExistsError:
                report.skipped.append((run.job_id, "a job with this id exists again"))
        return report

    def _retry(
        self,
        run: JobRun,
        start: datetime | timedelta | None,
        expiry: datetime | timedelta | None,
        now: datetime,
    ) -> Job:
        new = rules.new_job(
            run.job_id,
            now if start is None else start,
            run.handler,
            run.data,
            now=now,
            expiry=expiry,
            max_attempts=run.max_attempts,
            max_payload_bytes=max(self.max_payload_bytes, len((run.payload or "").encode())),
        )
        self.store.retry(new, now)
        return new.job

    def prune_history(self, older_than: timedelta | None = None) -> int:
        """Delete history rows older than the retention (failed runs: ``failed_retention``),
        or with ``older_than``, every row older than that; in transactions of at most
        1,000 rows. Returns how many rows went."""
        now = self.now()
        if older_than is not None:
            older_than = _positive_duration(older_than, "older_than", zero_ok=True)
            return self.store.prune_history(now - older_than, now - older_than)
        return self.store.prune_history(now - self.retention, now - self.failed_retention)

    def _prune_now_and_then(self) -> None:
        """A pass's own pruning: at most every ``PRUNE_EVERY`` across the database."""
        now = self.now()
        try:
            self.store.prune_if_due(
                now, hist.PRUNE_EVERY, now - self.retention, now - self.failed_retention
            )
        except Exception as e:  # bookkeeping: a pass ten minutes on prunes instead
            log.warning(
                "could not prune the history (a pass will try again within ten minutes): %s", e
            )

    def stats(self) -> Stats:
        """Per handler: jobs scheduled, due, running and deferred; how late its oldest due job
        is; runs in the last hour and day by outcome; p50 and p95 run time in the last hour (of
        the attempts that ended in this runner's hands: lost ones are left out)."""
        now = self.now()
        hour, day = now - timedelta(hours=1), now - timedelta(days=1)
        return hist.build_stats(
            now,
            self.store.job_counts(now),
            self.store.outcome_counts(hour),
            self.store.outcome_counts(day),
            self.store.run_seconds(hour),
        )

    def backlog(self) -> tuple[int, datetime | None]:
        """How many jobs are due and no runner holds, and the start of the oldest of them."""
        return self.store.backlog(self.now())

    def _since(self, since: datetime | timedelta | None) -> datetime | None:
        if since is None:
            return None
        if isinstance(since, timedelta):
            return self.now() - since
        return rules.resolve_time(since, self.now(), "since")


def _outcome(outcome: Outcome | str | None) -> Outcome | None:
    if outcome is None or isinstance(outcome, Outcome):
        return outcome
    try:
        return Outcome(outcome)
    except ValueError:
        names = ", ".join(o.value for o in hist.RECORDED_OUTCOMES)
        raise UsageError(f"unknown outcome {outcome!r}; one of {names}") from None


def _limit(limit: int | None) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UsageError(f"limit must be a positive integer or None, got {limit!r}")
    return limit


def _positive_duration(value: object, name: str, *, zero_ok: bool = False) -> timedelta:
    if not isinstance(value, timedelta) or value < timedelta(0) or (not zero_ok and not value):
        raise UsageError(f"{name} must be a positive timedelta, got {value!r}")
    return value


def _handler_names(handlers: Iterable[str]) -> tuple[str, ...]:
    if isinstance(handlers, str):
        raise UsageError(f"handlers must be a list of names, got the string {handlers!r}")
    return tuple(dict.fromkeys(rules.check_handler_name(name) for name in handlers))


def _item_id(item: object) -> object:
    """The id of a ``schedule_jobs`` item, whatever shape it has (None if it has none)."""
    if isinstance(item, JobSpec):
        return item.job_id
    if isinstance(item, Mapping):
        return item.get("job_id")
    return None


def _check_mode(mode: object) -> Mode:
    if not isinstance(mode, Mode):
        raise InvalidJobError("mode", f"expected a jobsched.Mode, got {mode!r}")
    return mode
