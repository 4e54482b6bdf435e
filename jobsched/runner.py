"""One pass of run-due: claim due jobs in batches, run their handlers, write what became of each.

What happens to a job comes from ``rules`` (decided when its handler would start, from the
clock read then); storage from the ``Store``. No transaction is open while a handler runs. A
batch is claimed in one transaction together with the writes that waited in the outbox (the
outcomes and start marks of the batch before), and the outbox sends the rest within
``MAX_DELAY``, so a pass commits once per batch, not once per job.

A job taken over from a runner whose claim ran out (a *suspect*: it may have run, or been
running, when that runner died) runs alone, after its start is written: a crash it causes is
then pinned on it alone, and costs the other jobs of its batch no attempt.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime

from jobsched.clock import Clock
from jobsched.errors import (
    HandlerRaisedError,
    IsolatedAttemptError,
    NoHandlersError,
    UsageError,
)
from jobsched.handlers import Registry
from jobsched.heartbeat import Heartbeat
from jobsched.history import PAYLOAD_OUTCOMES, NewRun, lost_run
from jobsched.isolation import run_isolated
from jobsched.loops import EventLoops
from jobsched.model import Job, JobResult, OpKind, Outcome, Progress, RunReport, with_attempts
from jobsched.outbox import MAX_DELAY, Outbox
from jobsched.progress import sink as progress_sink
from jobsched.rules import (
    FIRST_BATCH,
    Verdict,
    after_attempt,
    before_start,
    lost_attempt_error,
    next_batch_size,
)
from jobsched.store.base import Claim, ClaimRequest, Cursor, Op, Store

log = logging.getLogger("jobsched")


#: The stop event of a pass nobody stops (it is never set).
_NEVER = threading.Event()


#: A worker that finds the next job due within this many seconds before now, just after a claim
#: that took nothing, looks again after ``JUST_DUE_PAUSE`` rather than a whole ``poll``.
JUST_DUE = 1.0
JUST_DUE_PAUSE = 0.05


def runner_name() -> str:
    """How this process signs its claims: ``host:pid``."""
    return f"{_host()}:{os.getpid()}"


@functools.cache
def _host() -> str:
    return socket.gethostname()


@dataclass(frozen=True)
class PassOptions:
    limit: int | None = None
    concurrency: int = 1
    max_seconds: float | None = None
    keep_results: bool = True
    #: Take only the jobs of these handlers (None: every job; others' jobs are then deferred).
    handlers: tuple[str, ...] | None = None
    #: Jobs the first claim takes; later claims adapt to how long handlers take.
    first_batch: int = FIRST_BATCH
    #: Record every attempt in the history (``job_runs``).
    history: bool = True
    #: Run every handler's attempts in child processes (``isolate=True`` on each handler).
    isolate: bool = False
    #: A worker: when nothing is due, wait for the next due job (at most this many seconds)
    #: and go on, until stopped. None: a pass, which ends when nothing is due.
    poll: float | None = None
    #: At most this many claimed jobs wait unstarted (each claim's size is capped by it).
    prefetch: int | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and (isinstance(self.limit, bool) or self.limit < 1):
            raise UsageError(f"limit must be a positive integer, got {self.limit!r}")
        if isinstance(self.concurrency, bool) or self.concurrency < 1:
            raise UsageError(f"concurrency must be a positive integer, got {self.concurrency!r}")
        if self.max_seconds is not None and not 0 < self.max_seconds < float("inf"):
            raise UsageError(f"max_seconds must be a positive number, got {self.max_seconds!r}")
        if self.handlers is not None and not self.handlers:
            raise UsageError("handlers must name at least one handler (or be None for all)")
        if self.poll is not None and not 0 < self.poll < float("inf"):
            raise UsageError(f"poll must be a positive number of seconds, got {self.poll!r}")
        if self.prefetch is not None and (isinstance(self.prefetch, bool) or self.prefetch < 1):
            raise UsageError(f"prefetch must be a positive integer, got {self.prefetch!r}")


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
        on_result: Callable[[JobResult], None] | None = None,
        api: object | None = None,
        on_round: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        #: The scheduler whose methods isolated handlers call (``jobsched.schedule_job`` in a
        #: child process is carried out here); None: the current one.
        self.api = api
        #: Called before each claim (a look for due jobs).
        self.on_round = on_round
        self.on_result = on_result
        self.clock = clock
        self.registry = registry
        self.options = options
        self.stop = stop or _NEVER
        self.runner = runner or runner_name()
        self.report = RunReport(keep_results=options.keep_results)
        self._lock = threading.Lock()
        # Jobs this pass took that are still in the table (kept, retried, deferred, given back,
        # or changed while they ran): a pass runs each job at most once, even if due again.
        self._taken_present: set[str] = set()
        #: The time of the pass's first claim: it takes only the jobs due by then.
        self._due_by: datetime | None = None
        # Handler time and count since the last claim: the next batch's size follows them.
        self._handler_seconds = 0.0
        self._handler_runs = 0
        self.heartbeat = Heartbeat(store, clock)
        self.outbox = Outbox(store, self._sent)
        self.loops = EventLoops()
        self._limits = registry.limits()

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
        retries_before = self.store.retries
        opts = self.options
        pending: deque[Claim] = deque()
        in_flight: set[Future[None]] = set()
        pool = None
        if opts.concurrency > 1:
            pool = ThreadPoolExecutor(opts.concurrency, thread_name_prefix="jobsched-handler")
        # With handlers in this thread, the next batch is claimed in another one meanwhile (a
        # store that batches writes only: they cost a round trip there).
        worker = opts.poll is not None
        feed = _Feed(self, ahead=pool is None and self.store.batches_writes)
        next_round = 0.0  # a worker's next look for due jobs (time.monotonic)
        if self.clock.is_real:
            self.heartbeat.start()
        self.outbox.open()
        try:
            while True:
                if self.outbox.error is not None:
                    raise self.outbox.error
                out_of_time = opts.max_seconds is not None and (
                    time.monotonic() - began >= opts.max_seconds
                )
                if self.stop.is_set() or out_of_time:
                    break
                if worker and feed.done and time.monotonic() >= next_round:
                    self._new_round(feed)
                # A worker claims only for a free handler slot, so that a job it would only hold
                # runs sooner on another worker; a pass claims the next batch ahead.
                busy = worker and pool is not None and len(in_flight) >= opts.concurrency
                if not pending and not feed.done and not busy:
                    pending.extend(feed.take())
                    if worker and feed.done:
                        next_round = self._next_round()
                    continue  # the signal may have come while claiming: look again first
                if not pending and not in_flight:
                    if worker:
                        self.outbox.send()  # idle: the outcomes waiting go now, not in 20 ms
                    if not worker:
                        if feed.done and feed.rewind():
                            continue  # slots of limited handlers may have let held-back jobs in
                        break
                    self.stop.wait(max(0.0, next_round - time.monotonic()))
                    continue
                if pool is None:
                    self._process(pending.popleft())
                    feed.ran(len(pending))
                    continue
                while pending and len(in_flight) < opts.concurrency:
                    if pending[0].taken_from is not None:
                        if in_flight:
                            break  # a suspect runs alone: wait for the others first
                        self._process(pending.popleft())
                        continue
                    in_flight.add(pool.submit(self._process, pending.popleft()))
                if in_flight:
                    done, in_flight = wait(
                        in_flight, timeout=MAX_DELAY, return_when=FIRST_COMPLETED
                    )
                    for future in done:
                        future.result()
        finally:
            # Running handlers finish (the CLI bounds this with --grace), their outcomes sent
            # by the flusher as they come; nothing new starts.
            if pool is not None:
                pool.shutdown(wait=True)
            self.loops.close()
            try:
                pending.extend(feed.close())
                self._release(pending)
                self.outbox.send()
            except Exception as e:
                # Claims of unstarted jobs run out (no attempt spent); jobs whose outcomes were
                # not written run again.
                log.warning(
                    "could not write %d outcome(s) and give back %d unstarted job(s): %s",
                    len(self.outbox),
                    len(pending),
                    e,
                )
            self.outbox.close()
            self.heartbeat.close()
            self.report.duration = time.monotonic() - began
            self.report.retries = self.store.retries - retries_before
        return self.report

    def _new_round(self, feed: _Feed) -> None:
        """A worker looks for due jobs again: those due now, including any it ran before."""
        with self._lock:
            self._taken_present.clear()
        self._due_by = None
        feed.restart()

    def _next_round(self) -> float:
        """When a worker that found nothing due looks again (``time.monotonic``): when the next
        job is due, but no later than ``poll`` seconds from now."""
        assert self.options.poll is not None
        wait = self.options.poll
        due = self.store.next_due()
        if due is not None:
            ahead = (due - self.clock.now()).total_seconds()
            if ahead > 0:
                wait = min(wait, ahead)
            elif ahead > -JUST_DUE:
                # It came due between the claim and this read: look again at once, nearly. (A
                # job due for longer is held by another runner: no sooner than ``poll``.)
                wait = min(wait, JUST_DUE_PAUSE)
        return time.monotonic() + wait

    def _next_batch(self, batch: int) -> int:
        """The size of the next claim, from the handlers run since the last one."""
        with self._lock:
            seconds, runs = self._handler_seconds, self._handler_runs
            self._handler_seconds, self._handler_runs = 0.0, 0
        return next_batch_size(batch, seconds, runs, self.options.concurrency)

    def _claim(self, want: int, cursor: Cursor | None) -> list[Claim]:
        if self.on_round is not None:
            self.on_round()
        now = self.clock.now()
        if self._due_by is None:
            self._due_by = now  # a pass takes the jobs due when it began: later ones wait
        request = ClaimRequest(
            now=now,
            limit=want,
            runner=self.runner,
            lease_for=self.registry.timeout_for,
            lost_error=lost_attempt_error,
            after=cursor,
            handlers=self.options.handlers,
            due_by=self._due_by,
            limits=self._limits or None,
        )
        return self.outbox.claim(request)

    def _release(self, pending: deque[Claim]) -> None:
        if not pending:
            return
        now = self.clock.now()
        count = len(pending)
        while pending:
            claim = pending.popleft()
            self._finish(claim, Verdict(OpKind.RELEASE, Outcome.RELEASED), now, claim.job.attempts)
        log.info("gave back %d claimed job(s) that had not started", count)

    # -- one job --------------------------------------------------------------------------------

    def _process(self, claim: Claim) -> None:
        try:
            self._run_one(claim)
        except BaseException:
            self.heartbeat.drop(claim)
            raise

    def _run_one(self, claim: Claim) -> None:
        job = claim.job
        now = self.clock.now()
        handler = self.registry.get(job.handler)
        verdict = before_start(
            job,
            lost=claim.lost,
            now=now,
            handler_known=handler is not None,
            lease_safe=not self.stop.is_set() and self.heartbeat.may_start(claim, now),
        )
        # The attempt a stopped runner lost: recorded with whatever this pass writes next for
        # the job (unless it gives the job back: the runner that takes it next records it).
        lost: tuple[NewRun, ...] = ()
        if claim.lost and self.options.history:
            lost = (lost_run(job, claim.taken_from, claim.started_at, now),)
        if claim.lost and (
            verdict is None or verdict.outcome not in (Outcome.FAILED, Outcome.EXPIRED)
        ):
            log.warning(
                "job %r: %s; running it again", job.job_id, job.last_error, extra=_job_extra(job)
            )
            self._record(claim, Outcome.LOST, now, job.attempts, job.last_error)
        elif claim.taken_from is not None and verdict is None:
            log.warning(
                "job %r: its runner %s stopped before writing its outcome (its claim ran out); "
                "running it again, alone",
                job.job_id,
                claim.taken_from,
                extra=_job_extra(job),
            )
        if verdict is not None:
            self._explain(claim, verdict)
            self._finish(
                claim,
                verdict,
                now,
                job.attempts,
                runs=() if verdict.kind is OpKind.RELEASE else lost,
            )
            return
        assert handler is not None
        attempt = job.attempts + 1
        if claim.taken_from is not None:
            # A suspect: its start is written before it runs, so that if it kills its runner
            # again, the next runner counts that attempt lost.
            until = now + claim.lease
            start = Op(OpKind.START, claim, at=now, attempts=attempt, until=until, runs=lost)
            if not self.outbox.send([start])[0]:
                log.info(
                    "job %r changed before its handler started; the newer state wins", job.job_id
                )
                self._finish(claim, Verdict(OpKind.RELEASE, Outcome.RELEASED), now, job.attempts)
                return
            self.heartbeat.renewed(claim, until)
            if self.stop.is_set() or not self.heartbeat.may_start(claim, self.clock.now()):
                # The write waited (on the database) past the signal or the claim's margin: give
                # the job back, its start mark taken back with it (the attempt never ran).
                self._explain(claim, Verdict(OpKind.RELEASE, Outcome.RELEASED))
                self._finish(claim, Verdict(OpKind.KEEP, Outcome.RELEASED), now, job.attempts)
                return
        else:
            self.outbox.started(claim, now, attempt)
        running = with_attempts(job, attempt)
        with self._lock:
            self.report.ran += 1
        self.heartbeat.running(claim)
        began = time.monotonic()
        reports = progress_sink.set(functools.partial(self._progress, claim))
        try:
            if handler.isolate or self.options.isolate:
                result = run_isolated(
                    handler,
                    running,
                    on_progress=functools.partial(self._progress, claim),
                    api=self.api,
                )
            else:
                result = self.loops.resolve(handler.fn(running))
        except (Exception, SystemExit, asyncio.CancelledError) as e:
            # sys.exit() in a handler fails its attempt like any error; the pass goes on.
            finished = self.clock.now()
            verdict = after_attempt(
                running, raised=e, now=finished, retry_delay=handler.retry_delay
            )
            self._explain(claim, verdict, attempt, e, time.monotonic() - began)
        else:
            finished = self.clock.now()
            verdict = after_attempt(running, returned=result, now=finished)
        finally:
            progress_sink.reset(reports)
        elapsed = time.monotonic() - began
        with self._lock:
            self._handler_seconds += elapsed
            self._handler_runs += 1
        self._finish(claim, verdict, now, attempt, finished=finished, duration=elapsed)

    def _progress(self, claim: Claim, progress: Progress) -> None:
        """The handler of ``claim`` reported ``progress`` (``jobsched.progress``)."""
        self.outbox.progress(claim, progress)

    def _explain(
        self,
        claim: Claim,
        verdict: Verdict,
        attempt: int | None = None,
        error: BaseException | None = None,
        duration: float | None = None,
    ) -> None:
        """Log what the verdict means for the job, at the level it deserves."""
        job = claim.job
        outcome = verdict.outcome
        level = logging.ERROR if outcome is Outcome.FAILED else logging.WARNING
        if not log.isEnabledFor(level):
            return
        # An isolated attempt that did not raise (killed, died, not started) has no frames.
        bare = isinstance(error, IsolatedAttemptError) and not isinstance(error, HandlerRaisedError)
        trace = f"\n{where(error)}" if error is not None and not bare else ""
        extra = _job_extra(job, attempt, outcome, duration, verdict.error)
        if isinstance(error, IsolatedAttemptError):
            extra["cause"] = error.cause
        if outcome is Outcome.FAILED:
            log.error(
                "job %r failed after %d attempt(s): %s%s",
                job.job_id,
                attempt or job.attempts,
                verdict.error,
                trace,
                extra=extra,
            )
        elif outcome is Outcome.RETRIED:
            assert verdict.at is not None
            log.warning(
                "job %r attempt %d/%d failed, retry at %s: %s%s",
                job.job_id,
                attempt,
                job.max_attempts,
                verdict.at.isoformat(),
                verdict.error,
                trace,
                extra=extra,
            )
        elif outcome is Outcome.DEFERRED:
            log.warning("job %r: %s", job.job_id, verdict.error, extra=extra)
        elif outcome is Outcome.RELEASED and self.stop.is_set():
            log.info("job %r: given back unstarted: the pass is stopping", job.job_id, extra=extra)
        elif outcome is Outcome.RELEASED:
            log.warning(
                "job %r: given back unstarted: its claim may run out before its handler could "
                "start safely (the heartbeat could not renew it in time)",
                job.job_id,
                extra=extra,
            )

    def _finish(
        self,
        claim: Claim,
        verdict: Verdict,
        now: datetime,
        attempts: int,
        *,
        finished: datetime | None = None,
        duration: float | None = None,
        runs: tuple[NewRun, ...] = (),
    ) -> None:
        """Queue the verdict's write, with its history row: an attempt that ran from ``now``
        until ``finished``, or (no ``finished``) a decision made at ``now`` without running."""
        # Remembered before the write that frees the job, so no other claim of this pass runs it.
        with self._lock:
            self._taken_present.add(claim.job.job_id)
        outcome = verdict.outcome
        if self.options.history and outcome is not Outcome.RELEASED:
            job = claim.job
            runs += (
                NewRun(
                    job.job_id,
                    job.handler,
                    attempts,
                    job.max_attempts,
                    outcome.value,
                    self.runner,
                    job.start,
                    None if finished is None else now,
                    now if finished is None else finished,
                    verdict.error,
                    claim.payload if outcome in _PAYLOAD_OUTCOMES else None,
                ),
            )
        self.outbox.put(
            Op(
                verdict.kind,
                claim,
                at=verdict.at,
                attempts=attempts,
                error=verdict.error,
                runs=runs,
            )
        )
        self._record(claim, outcome, now, attempts, verdict.error, duration)

    def _sent(self, op: Op, applied: bool) -> None:
        """The outbox wrote ``op``: ``applied`` False when a newer state won."""
        if op.kind is OpKind.START or op.kind is OpKind.PROGRESS:
            return  # the attempt runs on: its claim stays held
        job_id = op.claim.job.job_id
        if applied and op.kind is OpKind.REMOVE:
            with self._lock:
                self._taken_present.discard(job_id)
        if not applied and op.kind not in (OpKind.KEEP, OpKind.RELEASE):
            log.info(
                "job %r was rescheduled, updated, removed, or taken over by another runner "
                "(its claim ran out) while it ran: the newer state wins and its %s was not "
                "written",
                job_id,
                op.kind.value,
            )
        self.heartbeat.drop(op.claim)  # the heartbeat keeps the claim until the write is done

    def _record(
        self,
        claim: Claim,
        outcome: Outcome,
        now: datetime,
        attempt: int,
        error: str | None = None,
        duration: float | None = None,
    ) -> None:
        job = claim.job
        result = None
        if self.report.keep_results or self.on_result is not None:
            result = JobResult(job.job_id, job.handler, attempt, outcome, now, error, duration)
        with self._lock:
            if result is not None and self.report.keep_results:
                self.report.record(result)
            else:
                self.report.count(outcome)
        if self.on_result is not None:
            assert result is not None
            self.on_result(result)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "job %r (%s) attempt %d: %s",
                job.job_id,
                job.handler,
                attempt,
                outcome.value,
                extra=_job_extra(job, attempt, outcome, duration, error),
            )


#: ``PAYLOAD_OUTCOMES`` as a tuple: membership by identity first, without hashing an enum member
#: (Python code, on every job a pass takes).
_PAYLOAD_OUTCOMES = tuple(PAYLOAD_OUTCOMES)


def _job_extra(
    job: Job,
    attempt: int | None = None,
    outcome: Outcome | None = None,
    duration: float | None = None,
    error: str | None = None,
) -> dict[str, object]:
    """The fields of a job event, for log formats that keep them apart (``--log-format json``)."""
    return {
        "job_id": job.job_id,
        "handler": job.handler,
        "attempt": attempt,
        "outcome": None if outcome is None else outcome.value,
        "duration": duration,
        "error": error,
    }


class _Feed:
    """Where a pass's jobs come from: claims in (start, id) order, at most ``--limit`` in all,
    each sized from how long the handlers since the last one took. With ``ahead``, while
    handlers are quick, the next claim is made in a thread of its own as soon as a handler of
    the current batch has run. An empty claim ends it (a short one does not: other runners
    may hold some of the due jobs)."""

    def __init__(self, pass_: Pass, *, ahead: bool) -> None:
        self._pass = pass_
        self._concurrency = pass_.options.concurrency
        self._limit = pass_.options.limit
        self._prefetch = pass_.options.prefetch
        self._batch = max(pass_.options.first_batch, 2 * self._concurrency)
        self._cursor: Cursor | None = None
        self._claimed = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="jobsched-claim") if ahead else None
        self._asked: tuple[int, Future[list[Claim]]] | None = None
        self._ask_after_a_run = False
        #: True once a claim came back empty or the limit is reached.
        self.done = False
        #: This sweep took a job of a handler with ``max_running`` (see ``rewind``).
        self.took_limited = False

    def restart(self) -> None:
        """Go on from the first due job again (a worker's next round)."""
        self._cursor = None
        self._claimed = 0
        self.done = False

    def take(self) -> list[Claim]:
        """The next batch (the one asked ahead, or claimed now), held by the heartbeat; jobs
        this pass took before are given back (a pass runs each job at most once)."""
        if self._asked is not None:
            (want, future), self._asked = self._asked, None
            claims = future.result()
        else:
            want = self._want()
            if want <= 0:
                self.done = True
                return []
            claims = self._pass._claim(want, self._cursor)
        self._claimed += len(claims)
        self.done = not claims
        if claims:
            self._cursor = (claims[-1].job.start, claims[-1].job.job_id)
        self._ask_after_a_run = self._pool is not None and len(claims) == want
        taken = []
        for claim in claims:
            if claim.job.job_id in self._pass._taken_present:
                self._pass.outbox.put(Op(OpKind.RELEASE, claim))
                continue
            taken.append(claim)
            self._pass.heartbeat.hold(claim)
            if claim.job.handler in self._pass._limits:
                self.took_limited = True
        return taken

    def rewind(self) -> bool:
        """A pass that took jobs of a handler with ``max_running`` goes over the jobs due when
        it began once more, from the first: the ones the limit held back are behind its cursor,
        and the slots of the jobs it ran are free now. True if it does (each sweep that takes
        none ends it; jobs it ran before are given back, as in any claim)."""
        if not self.took_limited:
            return False
        self.took_limited = False
        self._cursor = None
        self.done = False
        return True

    def ran(self, waiting: int) -> None:
        """A handler ran (``waiting`` claimed jobs wait behind it): the first of a batch tells
        how big the next one should be."""
        if not self._ask_after_a_run:
            return
        if self._prefetch is not None and 2 * waiting > self._prefetch:
            return  # ask when half the buffer is free: fewer, larger claims within --prefetch
        self._ask_after_a_run = False
        want = self._want()
        if self._prefetch is not None:
            want = min(want, self._prefetch - waiting)
        # Only quick handlers gain by it; slow ones would hold a batch more.
        if want > 0 and self._batch > 2 * self._concurrency:
            assert self._pool is not None
            self._asked = (want, self._pool.submit(self._pass._claim, want, self._cursor))

    def _want(self) -> int:
        self._batch = self._pass._next_batch(self._batch)
        want = self._batch if self._prefetch is None else min(self._batch, self._prefetch)
        return want if self._limit is None else min(want, self._limit - self._claimed)

    def close(self) -> list[Claim]:
        """Wait for a claim under way; returns its claims (the pass gives them back)."""
        try:
            if self._asked is None:
                return []
            try:
                return self._asked[1].result()
            except Exception:
                return []  # nothing was claimed
        finally:
            self._asked = None
            if self._pool is not None:
                self._pool.shutdown(wait=True)


def where(exc: BaseException) -> str:
    """Where a handler raised: the traceback's frames, without the (possibly huge) message,
    which the log line gives already cut."""
    if isinstance(exc, HandlerRaisedError):  # raised in a child process: its frames as text
        return exc.child_traceback
    frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
    return f"Traceback (most recent call last):\n{frames}"
