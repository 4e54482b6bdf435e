"""Live runners: each worker and ``run-due`` pass registers itself in the ``runners`` table,
beats its row while it runs and removes it when it ends; ``runners`` lists them with the jobs
each is running now.

A runner is *live* while its heartbeat is younger than ``STALE_AFTER`` (six beats of
``BEAT_EVERY``): a runner that died (``kill -9``, a crash, a lost host) leaves a row whose
heartbeat grows old, and is shown as stale (``jobsched runners --all``). A runner that starts
deletes the rows of runners silent for longer than ``FORGET_AFTER``.

The bookkeeping never stops jobs: a database error is logged and the write is tried again at
the next beat. With a fake clock (tests, the simulator) ``Presence`` does nothing at all.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING

from jobsched.clock import Clock
from jobsched.model import Progress

if TYPE_CHECKING:
    from jobsched.store.base import Store

log = logging.getLogger("jobsched")

#: How often a runner writes its heartbeat.
BEAT_EVERY = timedelta(seconds=10)
#: A runner whose heartbeat is older than this is taken for dead (stale): six missed beats, so a
#: busy database or a paused process is not mistaken for a dead one.
STALE_AFTER = timedelta(seconds=60)
#: A runner writes its row once it has run this many seconds, from the presence thread: its first
#: claims do not wait for (or compete with) that bookkeeping, and a cron pass that finds nothing
#: due (most of them) costs the database nothing more.
REGISTER_AFTER = 0.5
#: Rows of runners silent for longer than this are deleted by the next runner that starts.
FORGET_AFTER = timedelta(days=1)
#: The kinds of runner.
WORKER = "worker"
RUN_DUE = "run-due"
KINDS = (WORKER, RUN_DUE)
#: How long ``Presence.__exit__`` waits for a beat in progress before removing the row.
_EXIT_WAIT = 5.0


@dataclass(frozen=True, slots=True)
class Runner:
    """A row of the ``runners`` table: who runs jobs, where, since when, last heard of when."""

    #: ``host:pid``, as the runner signs its claims (``JobInfo.claimed_by``).
    name: str
    host: str
    pid: int
    #: ``worker`` or ``run-due``.
    kind: str
    #: jobsched's version in that process.
    version: str
    started_at: datetime
    heartbeat_at: datetime
    #: Handlers it runs at once at most.
    concurrency: int


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job a runner is running now: its handler has started and not ended."""

    job_id: str
    handler: str
    #: When the job was due (its start time).
    scheduled_start: datetime
    #: When its handler started.
    started_at: datetime
    #: What the handler last reported (``jobsched.progress``), if anything.
    progress: Progress | None = None


@dataclass(frozen=True, slots=True)
class RunnerInfo:
    """A runner as ``runners`` saw it at ``at``, with the jobs it is running (none for a stale
    one: whatever it was running is a lost attempt, which the next claim records)."""

    name: str
    host: str
    pid: int
    kind: str
    version: str
    started_at: datetime
    heartbeat_at: datetime
    concurrency: int
    #: The time of the reading.
    at: datetime
    #: True when its heartbeat is older than ``STALE_AFTER``: the runner is presumably dead.
    stale: bool
    jobs: tuple[RunningJob, ...] = ()

    @property
    def heartbeat_age(self) -> timedelta:
        """How long ago its heartbeat was written (never negative: clocks differ a little)."""
        return max(self.at - self.heartbeat_at, timedelta(0))


@functools.cache
def jobsched_version() -> str:
    """The installed jobsched's version (``unknown`` when it runs from a tree not installed)."""
    try:
        return importlib.metadata.version("jobsched")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def runners(
    store: Store,
    clock: Clock,
    *,
    include_stale: bool = False,
    stale_after: timedelta = STALE_AFTER,
) -> list[RunnerInfo]:
    """The live runners (with ``include_stale`` the stale ones too), by host then pid, each with
    the jobs it is running now (oldest start first). What ``Scheduler.runners`` returns."""
    now = clock.now()
    live_since = now - stale_after
    found = []
    for row, jobs in store.list_runners(live_since):
        stale = row.heartbeat_at < live_since
        if stale and not include_stale:
            continue
        found.append(
            RunnerInfo(
                name=row.name,
                host=row.host,
                pid=row.pid,
                kind=row.kind,
                version=row.version,
                started_at=row.started_at,
                heartbeat_at=row.heartbeat_at,
                concurrency=row.concurrency,
                at=now,
                stale=stale,
                jobs=() if stale else tuple(jobs),
            )
        )
    found.sort(key=lambda info: (info.host, info.pid, info.name))
    return found


class Presence:
    """A runner's row in the ``runners`` table for as long as the ``with`` block runs.

    ``__enter__`` registers the row (and deletes rows silent for ``FORGET_AFTER``) and starts a
    daemon thread that beats it every ``beat_every``; ``__exit__`` stops the thread and removes
    the row. Database errors are logged, never raised: a failed registration is tried again at
    the next beat, and a row that has gone (deleted meanwhile) is registered again. With a fake
    clock it does nothing (no thread, no writes).
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        runner: str,
        kind: str,
        concurrency: int,
        beat_every: timedelta = BEAT_EVERY,
        register_after: float | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        self.store = store
        self.clock = clock
        self.runner = runner
        self.kind = kind
        self.concurrency = concurrency
        self.beat_every = beat_every
        #: Seconds before the row is first written, by the thread (None: at once, on entry): a
        #: runner does not wait for it, and a pass that ends sooner (a cron pass that finds
        #: nothing due) writes nothing at all.
        self.register_after = register_after
        host, sep, pid = runner.rpartition(":")
        if sep and host and pid.isdigit():
            self.host, self.pid = host, int(pid)
        else:  # a name of the caller's choosing: this process's own host and pid
            self.host, self.pid = socket.gethostname(), os.getpid()
        self.active = bool(clock.is_real)
        self._started_at: datetime | None = None
        self._registered = False
        self._failing = False
        #: Writes that failed in a row.
        self._failures = 0
        self._closed = False
        #: Held by each write, so that ``__exit__`` removes the row after any beat in progress.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Presence:
        if not self.active:
            return self
        self._started_at = self.clock.now()
        if self.register_after is None:
            self._register()
        self._thread = threading.Thread(target=self._loop, name="jobsched-presence", daemon=True)
        self._thread.start()
        return self

    def _register(self) -> None:
        self._beat(self._started_at)
        if self._registered:
            self._forget_the_long_dead()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.active:
            return
        self._stop.set()
        locked = self._lock.acquire(timeout=_EXIT_WAIT)
        try:
            self._closed = True
            if not (self._registered or self._failing):
                return  # never written (it ended before its first beat)
            try:
                self.store.remove_runner(self.runner)
            except Exception as e:  # its heartbeat stops: it shows as stale, then is forgotten
                log.warning("could not remove runner %s from the runners table: %s", self.runner, e)
        finally:
            if locked:
                self._lock.release()
        if self._thread is not None:
            self._thread.join(timeout=_EXIT_WAIT)

    def beat(self) -> None:
        """Write the heartbeat now (registering the row if it is not there); never raises."""
        self._beat(None)

    def _beat(self, at: datetime | None) -> None:
        with self._lock:
            if self._closed:
                return
            now = self.clock.now() if at is None else at
            try:
                if not (self._registered and self.store.beat_runner(self.runner, now)):
                    self.store.register_runner(self._row(now))
                    if self._failures >= 2:
                        log.info("runner %s is in the runners table again", self.runner)
                    self._registered = True
                self._failing = False
                self._failures = 0
            except Exception as e:  # bookkeeping: tried again at the next beat
                self._registered = False
                self._failures += 1
                # The first failure is not worth a warning: a runner that cannot reach the
                # database says so itself, and ends, before its next beat.
                if self._failures == 2:
                    log.warning(
                        "could not write runner %s to the runners table (jobs run on; trying "
                        "again every %ss): %s",
                        self.runner,
                        self.beat_every.total_seconds(),
                        e,
                    )
                else:
                    log.debug("runner %s: the runners table is out of reach: %s", self.runner, e)
                self._failing = True

    def _row(self, now: datetime) -> Runner:
        return Runner(
            name=self.runner,
            host=self.host,
            pid=self.pid,
            kind=self.kind,
            version=jobsched_version(),
            started_at=self._started_at or now,
            heartbeat_at=now,
            concurrency=self.concurrency,
        )

    def _forget_the_long_dead(self) -> None:
        try:
            forgotten = self.store.forget_runners(self.clock.now() - FORGET_AFTER)
        except Exception as e:
            log.debug("could not delete the rows of runners long dead: %s", e)
            return
        if forgotten:
            log.debug("deleted %d row(s) of runners silent for over %s", forgotten, FORGET_AFTER)

    def _loop(self) -> None:
        if self.register_after is not None:
            if self._stop.wait(self.register_after):
                return
            self._register()
        seconds = self.beat_every.total_seconds()
        while not self._stop.wait(seconds):
            self.beat()
