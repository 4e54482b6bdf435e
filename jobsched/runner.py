"""One pass of run-due: claim due jobs, run their handlers, write each outcome (fenced).

Policy (what happens to a job) comes from ``rules``; storage from the ``Store``; time from the
clock, read once per batch. No transaction is open while a handler runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime

from jobsched.clock import Clock
from jobsched.errors import NoHandlersError, PermanentError, UsageError
from jobsched.handlers import Registry
from jobsched.heartbeat import Heartbeat
from jobsched.loops import EventLoops
from jobsched.model import JobResult, Outcome, RunReport
from jobsched.outbox import MAX_DELAY, Outbox
from jobsched.rules import after_failure, describe_error, is_expired, retry_at
from jobsched.store.base import Claim, Cursor, Op, OpKind, Store

log = logging.getLogger("jobsched")

#: Jobs claimed per claim transaction (at least twice the concurrency).
BATCH_SIZE = 25


def runner_name() -> str:
    """How this process signs its claims: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class PassOptions:
    limit: int | None = None
    concurrency: int = 1
    max_seconds: float | None = None
    keep_results: bool = True
    batch_size: int = BATCH_SIZE
    #: Take only the jobs of these handlers (None: every job; others' jobs are then deferred).
    handlers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and (isinstance(self.limit, bool) or self.limit < 1):
            raise UsageError(f"limit must be a positive integer, got {self.limit!r}")
        if isinstance(self.concurrency, bool) or self.concurrency < 1:
            raise UsageError(f"concurrency must be a positive integer, got {self.concurrency!r}")
        if self.max_seconds is not None and not 0 < self.max_seconds < float("inf"):
            raise UsageError(f"max_seconds must be a positive number, got {self.max_seconds!r}")
        if self.handlers is not None and not self.handlers:
            raise UsageError("handlers must name at least one handler (or be None for all)")


class Pass:
    """One pass over the due jobs. ``stop`` (set by a signal handler) ends it gracefully."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        registry: Registry,
        options: PassOptions,
        *,
        stop: threading.Event | None = None,
        runner: str | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.registry = registry
        self.options = options
        self.stop = stop or threading.Event()
        self.runner = runner or runner_name()
        self.report = RunReport(keep_results=options.keep_results)
        self._report_lock = threading.Lock()
        # Jobs this pass took that are still in the table (kept, retried, deferred, or changed
        # while they ran): a pass runs each job at most once, even if it is due again.
        self._kept: set[str] = set()
        self.heartbeat = Heartbeat(store, clock) if clock.is_real else None
        self.outbox = Outbox(store)
        self.loops = EventLoops()

    def check_handlers(self) -> None:
        """Refuse a pass that could run nothing: no handler registered (the app was not
        imported), or asked to serve a handler that no imported module registers."""
        if not len(self.registry):
            raise NoHandlersError()
        if self.options.handlers is not None:
            unknown = [name for name in self.options.handlers if self.registry.get(name) is None]
            if unknown:
                raise UsageError(
                    f"no imported module registers the handler(s) {', '.join(map(repr, unknown))} "
                    f"(registered: {', '.join(map(repr, self.registry.names()))})"
                )

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> RunReport:
        self.check_handlers()
        began = time.monotonic()
        opts = self.options
        batch = max(opts.batch_size, 2 * opts.concurrency)
        if opts.limit is not None:
            batch = min(batch, opts.limit)
        pending: deque[tuple[Claim, datetime]] = deque()
        in_flight: set[Future[None]] = set()
        cursor: Cursor | None = None
        taken = 0
        exhausted = False
        pool = _pool(opts.concurrency, inline=not self.clock.is_real and opts.concurrency == 1)
        if self.heartbeat:
            self.heartbeat.start()
        try:
            while True:
                out_of_time = opts.max_seconds is not None and (
                    time.monotonic() - began >= opts.max_seconds
                )
                if self.stop.is_set() or out_of_time:
                    self._release(pending)
                    break
                room = None if opts.limit is None else opts.limit - taken
                if not pending and not exhausted and (room is None or room > 0):
                    now = self.clock.now()
                    self.outbox.send(now)  # the claim sees this pass's own outcomes
                    want = batch if room is None else min(batch, room)
                    claims = self.store.claim(
                        now,
                        limit=want,
                        after=cursor,
                        runner=self.runner,
                        lease_for=self.registry.timeout_for,
                        handlers=opts.handlers,
                    )
                    exhausted = len(claims) < want
                    if claims:
                        cursor = (claims[-1].job.start, claims[-1].job.job_id)
                    for claim in claims:
                        if claim.job.job_id in self._kept:
                            # Kept earlier in this pass: a pass runs each job at most once.
                            self.store.apply(now, [Op(OpKind.RELEASE, claim)])
                            continue
                        taken += 1
                        pending.append((claim, now))
                        if self.heartbeat:
                            self.heartbeat.hold(claim)
                while pending and len(in_flight) < opts.concurrency:
                    claim, now = pending.popleft()
                    in_flight.add(pool.submit(self._process, claim, now))
                if not in_flight:
                    if exhausted or (room is not None and room <= 0):
                        break
                    continue
                done, in_flight = wait(in_flight, timeout=MAX_DELAY, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
                if self.outbox.stale():
                    self.outbox.send(self.clock.now())
        finally:
            # Running handlers finish (the CLI bounds this with --grace); nothing new starts.
            for future in in_flight:
                future.exception()
            pool.shutdown(wait=True)
            self.loops.close()
            try:
                self._release(pending)
                self.outbox.send(self.clock.now())
            except Exception as e:
                # Claims of unstarted jobs run out (no attempt spent); unwritten outcomes' attempts
                # count as lost and run again.
                log.warning(
                    "could not write %d outcome(s) and release %d unstarted job(s): %s",
                    len(self.outbox),
                    len(pending),
                    e,
                )
            if self.heartbeat:
                self.heartbeat.close()
            self.report.duration = time.monotonic() - began
        return self.report

    def _release(self, pending: deque[tuple[Claim, datetime]]) -> None:
        if not pending:
            return
        now = self.clock.now()
        claims = [claim for claim, _ in pending]
        self.outbox.send(now, [Op(OpKind.RELEASE, claim) for claim in claims])
        pending.clear()
        for claim in claims:
            self._drop(claim)
            self._record(claim, Outcome.RELEASED, now, claim.job.attempts)
        log.info("released %d claimed job(s) that had not started", len(claims))

    # -- one job --------------------------------------------------------------------------------

    def _process(self, claim: Claim, now: datetime) -> None:
        try:
            self._decide(claim, now)
        except BaseException:
            self._drop(claim)
            raise

    def _decide(self, claim: Claim, now: datetime) -> None:
        job = claim.job
        if claim.lost_runner is not None:
            # Only a lost attempt spends the last one this way: a job kept (False) any number
            # of times is not failed for it.
            if job.attempts >= job.max_attempts:
                log.error(
                    "job %r failed after %d attempt(s): %s",
                    job.job_id,
                    job.attempts,
                    job.last_error,
                )
                self._finish(claim, OpKind.REMOVE, Outcome.FAILED, now, error=job.last_error)
                return
            if not is_expired(job, now):
                log.warning("job %r: %s; running it again", job.job_id, job.last_error)
                self._record(claim, Outcome.LOST, now, job.attempts, job.last_error)
        if is_expired(job, now):
            self._finish(claim, OpKind.REMOVE, Outcome.EXPIRED, now)
            return
        handler = self.registry.get(job.handler)
        if handler is None:
            error = (
                f"no handler registered for {job.handler!r} (is the module that defines it "
                "imported, with --app?); deferred, no attempt spent"
            )
            log.warning("job %r: %s", job.job_id, error)
            self._finish(claim, OpKind.RETRY, Outcome.DEFERRED, now, at=retry_at(now), error=error)
            return
        # The start goes out with the outcomes waiting in the outbox: one transaction.
        if not self.outbox.send(now, [Op(OpKind.START, claim, at=now)])[0]:
            log.info("job %r changed before its handler started; the newer state wins", job.job_id)
            self._drop(claim)
            self._record(claim, Outcome.RELEASED, now, job.attempts)
            return
        job = replace(job, attempts=job.attempts + 1)
        claim = claim.advanced(job)
        with self._report_lock:
            self.report.ran += 1
        if self.heartbeat:
            self.heartbeat.running(claim)
        try:
            result = self.loops.resolve(handler.fn(job))
        except PermanentError as e:
            error = describe_error(e)
            log.error("job %r failed permanently: %s", job.job_id, error)
            self._finish(claim, OpKind.REMOVE, Outcome.FAILED, now, error=error)
        except (Exception, SystemExit, asyncio.CancelledError) as e:
            # sys.exit() in a handler fails its attempt like any error; the pass goes on.
            error = describe_error(e)
            outcome = after_failure(job, permanent=False)
            if outcome is Outcome.RETRIED:
                at = retry_at(now, handler.retry_delay)
                log.warning(
                    "job %r attempt %d/%d failed, retry at %s: %s\n%s",
                    job.job_id,
                    job.attempts,
                    job.max_attempts,
                    at.isoformat(),
                    error,
                    where(e),
                )
                self._finish(claim, OpKind.RETRY, outcome, now, at=at, error=error)
            else:
                log.error(
                    "job %r failed after %d attempt(s): %s\n%s",
                    job.job_id,
                    job.attempts,
                    error,
                    where(e),
                )
                self._finish(claim, OpKind.REMOVE, outcome, now, error=error)
        else:
            if result is False:
                self._finish(claim, OpKind.KEEP, Outcome.KEPT, now)
            else:
                self._finish(claim, OpKind.REMOVE, Outcome.SUCCEEDED, now)

    def _finish(
        self,
        claim: Claim,
        kind: OpKind,
        outcome: Outcome,
        now: datetime,
        *,
        at: datetime | None = None,
        error: str | None = None,
    ) -> None:
        # Remembered before the write that frees the job, so no other claim of this pass runs it.
        self._kept.add(claim.job.job_id)

        def sent(applied: bool) -> None:
            if applied and kind is OpKind.REMOVE:
                self._kept.discard(claim.job.job_id)
            if not applied and kind is not OpKind.KEEP:
                log.info(
                    "job %r was rescheduled, updated, removed, or taken over by another runner "
                    "(its claim ran out) while it ran: the newer state wins and its %s outcome "
                    "was not written",
                    claim.job.job_id,
                    outcome.value,
                )
            self._drop(claim)  # the heartbeat keeps the claim until the outcome is written

        self.outbox.put(Op(kind, claim, at=at, error=error), sent)
        self._record(claim, outcome, now, claim.job.attempts, error)

    def _record(
        self, claim: Claim, outcome: Outcome, now: datetime, attempt: int, error: str | None = None
    ) -> None:
        job = claim.job
        result = JobResult(job.job_id, job.handler, attempt, outcome, now, error)
        with self._report_lock:
            self.report.record(result)
        log.info("job %r (%s) attempt %d: %s", job.job_id, job.handler, attempt, outcome.value)

    def _drop(self, claim: Claim) -> None:
        if self.heartbeat:
            self.heartbeat.drop(claim)


def where(exc: BaseException) -> str:
    """Where a handler raised: the traceback's frames, without the (possibly huge) message,
    which the log line gives already cut."""
    frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
    return f"Traceback (most recent call last):\n{frames}"


class _InlinePool:
    """Runs submitted work at once in the calling thread (deterministic, for fake clocks)."""

    def submit(self, fn: Callable[..., None], *args: object) -> Future[None]:
        future: Future[None] = Future()
        try:
            fn(*args)
        except BaseException as e:
            future.set_exception(e)
        else:
            future.set_result(None)
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass


def _pool(concurrency: int, *, inline: bool) -> ThreadPoolExecutor | _InlinePool:
    if inline:
        return _InlinePool()
    return ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="jobsched-handler")
