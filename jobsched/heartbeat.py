"""The heartbeat: keeps a live runner's claims from running out while it holds them."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from jobsched.clock import Clock
from jobsched.store.base import Claim, Store

log = logging.getLogger("jobsched")


class Heartbeat:
    """Keeps the claims of a live runner from running out, and logs overdue attempts.

    Every third of the shortest lease it extends ``claimed_until`` of every job the pass holds
    (claimed and waiting, or running) to ``now + lease``.
    """

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._held: dict[str, Claim] = {}
        self._running: dict[str, tuple[Claim, float]] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="jobsched-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def hold(self, claim: Claim) -> None:
        with self._lock:
            self._held[claim.job.job_id] = claim

    def running(self, claim: Claim) -> None:
        with self._lock:
            self._held[claim.job.job_id] = claim
            self._running[claim.job.job_id] = (claim, time.monotonic())

    def drop(self, claim: Claim) -> None:
        with self._lock:
            self._held.pop(claim.job.job_id, None)
            self._running.pop(claim.job.job_id, None)

    def interval(self) -> float:
        with self._lock:
            leases = [claim.lease for claim in self._held.values()]
        shortest = min(leases, default=timedelta(minutes=5))
        return min(max(shortest.total_seconds() / 3, 0.1), 60.0)

    def _loop(self) -> None:
        # Wake often, beat every third of the shortest lease held: claims taken after the thread
        # started may carry a much shorter lease than the default.
        last = time.monotonic()
        while not self._stop.wait(0.1):
            if time.monotonic() - last >= self.interval():
                last = time.monotonic()
                self.beat()

    def beat(self) -> None:
        with self._lock:
            held = list(self._held.values())
            running = list(self._running.values())
        for claim, began in running:
            overdue = time.monotonic() - began - claim.lease.total_seconds()
            if overdue > 0 and claim.job.job_id not in self._warned:
                self._warned.add(claim.job.job_id)
                log.warning(
                    "job %r (%s) is overdue: running for longer than its timeout of %s",
                    claim.job.job_id,
                    claim.job.handler,
                    claim.lease,
                )
        if not held:
            return
        now = self.clock.now()
        try:
            self.store.heartbeat([(claim, now + claim.lease) for claim in held])
        except Exception as e:  # a missed beat is retried at the next one
            log.warning("heartbeat failed (will try again): %s", e)
