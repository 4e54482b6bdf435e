"""The outbox: a pass's writes to the jobs it holds, sent in batches but promptly.

A finished job's write, and the start mark of a handler that began, wait here for the next write
the pass makes anyway (its next claim, in the same transaction) and at most ``MAX_DELAY``
seconds: a flusher thread sends whatever has waited that long. So many jobs start and finish per
commit, a finished job's outcome is written within 50 ms of its handler's return, and a running
job shows as started within the same 50 ms. A crash loses at most the writes of that interval:
the jobs concerned run again (see docs/reliability.md).

A store whose writes cost nothing (memory) gets each write at once instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from jobsched.model import OpKind, Progress
from jobsched.store.base import Claim, ClaimRequest, Op, Store

log = logging.getLogger("jobsched")

#: The longest a write waits before the flusher sends it, in seconds. The flusher looks every
#: ``TICK``, so each write reaches the database well within 50 ms.
MAX_DELAY = 0.02
TICK = 0.01
#: The longest a running handler's progress report waits, in seconds (it goes sooner with any
#: other write): a handler reporting in a loop costs a write every half second at most.
PROGRESS_DELAY = 0.5


class Outbox:
    """Writes waiting to be sent. Thread-safe; ``on_sent(op, applied)`` hears of each one."""

    def __init__(self, store: Store, on_sent: Callable[[Op, bool], None]) -> None:
        self.store = store
        self.on_sent = on_sent
        self.batched = store.batches_writes
        self._letters: list[Op] = []
        #: Start marks of running handlers not sent yet: job id -> (claim, started at, attempts,
        #: monotonic time).
        self._starts: dict[str, tuple[Claim, datetime, int, float]] = {}
        #: The latest progress of running handlers not sent yet: job id -> (claim, progress,
        #: monotonic time of the first report not sent).
        self._progress: dict[str, tuple[Claim, Progress, float]] = {}
        self._since: float | None = None
        self._lock = threading.Lock()
        self._closed: threading.Event | None = None
        self._thread: threading.Thread | None = None
        #: Why the flusher last failed to send (the pass ends with it), if it did.
        self.error: BaseException | None = None

    # -- what the pass hands in -----------------------------------------------------------------

    def started(self, claim: Claim, at: datetime, attempts: int) -> None:
        """A handler starts at ``at``: its start mark goes out with the next batch."""
        if not self.batched:
            self._write_now(Op(OpKind.START, claim, at=at, attempts=attempts))
            return
        with self._lock:
            self._starts[claim.job.job_id] = (claim, at, attempts, time.monotonic())

    def progress(self, claim: Claim, progress: Progress) -> None:
        """A running handler reported ``progress``: the latest report goes out with the next
        batch, within ``PROGRESS_DELAY``."""
        if not self.batched:
            self._write_now(Op(OpKind.PROGRESS, claim, progress=progress))
            return
        with self._lock:
            entry = self._progress.get(claim.job.job_id)
            since = time.monotonic() if entry is None else entry[2]
            self._progress[claim.job.job_id] = (claim, progress, since)

    def put(self, op: Op) -> None:
        """Queue a write; an outcome replaces the start mark (and progress) of its attempt if
        still unsent."""
        if not self.batched:
            self._write_now(op)
            return
        with self._lock:
            self._starts.pop(op.claim.job.job_id, None)
            self._progress.pop(op.claim.job.job_id, None)
            self._letters.append(op)
            if self._since is None:
                self._since = time.monotonic()

    # -- sending --------------------------------------------------------------------------------

    def _write_now(self, op: Op) -> None:
        [applied] = self.store.apply([op])
        self.on_sent(op, applied)

    def send(self, ops: Sequence[Op] = ()) -> list[bool]:
        """Write what waits together with ``ops``, in one transaction; returns ``ops``' results.

        If the write fails, what waited is put back (a later send retries it)."""
        waiting = self._take()
        if not waiting and not ops:
            return []
        everything = [*waiting, *ops]
        try:
            results = self.store.apply(everything)
        except BaseException:
            self._put_back(waiting)
            raise
        self._delivered(everything, results)
        return results[len(waiting) :]

    def claim(self, request: ClaimRequest) -> list[Claim]:
        """Take new jobs, in the same transaction as what waits."""
        waiting = self._take()
        try:
            claims, results = self.store.claim(request, waiting)
        except BaseException:
            self._put_back(waiting)
            raise
        self._delivered(waiting, results)
        return claims

    def due(self) -> bool:
        """True when some write has waited ``MAX_DELAY`` or more."""
        now = time.monotonic()
        with self._lock:
            oldest = self._since
            if self._starts:
                first = min(entry[3] for entry in self._starts.values())
                oldest = first if oldest is None else min(oldest, first)
            if self._progress and now - min(e[2] for e in self._progress.values()) >= (
                PROGRESS_DELAY
            ):
                return True
        return oldest is not None and now - oldest >= MAX_DELAY

    def __len__(self) -> int:
        with self._lock:
            return len(self._letters) + len(self._starts) + len(self._progress)

    def _take(self) -> list[Op]:
        if not self._letters and not self._starts and not self._progress:
            return []  # a letter put meanwhile goes with the next send
        with self._lock:
            letters, self._letters = self._letters, []
            starts, self._starts = self._starts, {}
            self._since = None
            # Progress goes once its attempt's start mark is out (one write per job a batch).
            progress = {
                job_id: entry for job_id, entry in self._progress.items() if job_id not in starts
            }
            for job_id in progress:
                del self._progress[job_id]
        marks = [
            Op(OpKind.START, claim, at=at, attempts=attempts)
            for claim, at, attempts, _ in starts.values()
        ]
        reports = [
            Op(OpKind.PROGRESS, claim, progress=value) for claim, value, _ in progress.values()
        ]
        return marks + reports + letters

    def leftover(self) -> list[Op]:
        """Take the outcomes that could not be sent (a pass that ended on a database error),
        for the next pass of the same runner to send: their writes are fenced, so each applies
        only if no other runner took its job over meanwhile. Start marks and progress of
        attempts that ended are dropped with them."""
        marks = (OpKind.START, OpKind.PROGRESS)
        return [op for op in self._take() if op.kind not in marks]

    def _put_back(self, ops: list[Op]) -> None:
        now = time.monotonic()
        marks = (OpKind.START, OpKind.PROGRESS)
        with self._lock:
            letters = [op for op in ops if op.kind not in marks]
            finished = {op.claim.job.job_id for op in self._letters} | {
                op.claim.job.job_id for op in letters
            }
            for op in ops:
                job_id = op.claim.job.job_id
                if job_id in finished:
                    continue  # its outcome replaces its start mark and progress
                if op.kind is OpKind.START and op.until is None:
                    assert op.at is not None and op.attempts is not None
                    self._starts.setdefault(job_id, (op.claim, op.at, op.attempts, now))
                elif op.kind is OpKind.PROGRESS:
                    assert op.progress is not None
                    self._progress.setdefault(job_id, (op.claim, op.progress, now))
            self._letters[:0] = letters
            if self._letters and self._since is None:
                self._since = now

    def _delivered(self, ops: list[Op], results: list[bool]) -> None:
        for op, applied in zip(ops, results, strict=False):
            self.on_sent(op, applied)

    # -- the flusher ----------------------------------------------------------------------------

    def open(self) -> None:
        """Start the flusher thread (batched stores only)."""
        if self.batched and self._thread is None:
            self._closed = threading.Event()
            self._thread = threading.Thread(
                target=self._flush_loop, name="jobsched-outbox", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        """Stop the flusher (what still waits is the caller's to send)."""
        if self._closed is not None:
            self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=BOOKKEEPING_JOIN)
            self._thread = None

    def _flush_loop(self) -> None:
        closed = self._closed
        assert closed is not None
        while not closed.wait(TICK):
            if not self.due():
                continue
            try:
                self.send()
            except Exception as e:  # the store retried already; the pass ends with this
                self.error = e
                log.warning("could not write %d finished or started job(s): %s", len(self), e)
                closed.wait(1.0)


#: Seconds ``close`` waits for a send in progress (the store's own patience bounds it).
BOOKKEEPING_JOIN = 90.0
