"""The heartbeat: keeps a live runner's claims from running out, and knows how long each lasts.

Every third of the shortest lease held it extends ``claimed_until`` of every job the pass holds
(claimed and waiting, or running) to ``now + lease``, for the claims that still carry its token.
It remembers, for each claim, the end the database last confirmed: a handler starts only while
that end is far enough away (``rules.start_by``).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from jobsched.clock import Clock
from jobsched.rules import start_by
from jobsched.store.base import Claim, Store

log = logging.getLogger("jobsched")


class Heartbeat:
    """The claims a pass holds and their confirmed ends; ``start`` runs the beating thread
    (real clocks only: a fake clock's time moves only when a test moves it)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._held: dict[str, Claim] = {}
        #: When each held claim stops being safe to start a handler on: a margin before its
        #: end as last written (by the claim, a beat, or a durable start).
        self._start_by: dict[str, datetime] = {}
        self._running: dict[str, float] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        #: Without the thread (fake clocks), claims are never extended: each claim's own end
        #: is the one to go by, and nothing needs holding.
        self._beating = False

    def start(self) -> None:
        self._beating = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="jobsched-heartbeat", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5)

    def hold(self, claim: Claim) -> None:
        if not self._beating:
            return
        with self._lock:
            self._held[claim.job.job_id] = claim
            self._start_by[claim.job.job_id] = start_by(claim.until, claim.lease)

    def running(self, claim: Claim) -> None:
        if not self._beating:
            return
        with self._lock:
            self._running[claim.job.job_id] = time.monotonic()

    def renewed(self, claim: Claim, until: datetime) -> None:
        """The claim was renewed until ``until`` by another write (a durable start)."""
        with self._lock:
            if claim.job.job_id in self._held or not self._beating:
                self._start_by[claim.job.job_id] = start_by(until, claim.lease)

    def drop(self, claim: Claim) -> None:
        job_id = claim.job.job_id
        if not self._beating:
            self._start_by.pop(job_id, None)
            return
        with self._lock:
            held = self._held.get(job_id)
            if held is None or held.token == claim.token:
                self._held.pop(job_id, None)
                self._start_by.pop(job_id, None)
                self._running.pop(job_id, None)

    def may_start(self, claim: Claim, now: datetime) -> bool:
        """True while the claim, as last confirmed, leaves a safe margin for a handler to start."""
        deadline = self._start_by.get(claim.job.job_id)
        if deadline is None:
            deadline = start_by(claim.until, claim.lease)
        return now < deadline

    def interval(self) -> float:
        with self._lock:
            leases = [claim.lease for claim in self._held.values()]
        shortest = min(leases, default=timedelta(minutes=5))
        return min(max(shortest.total_seconds() / 3, 0.1), 60.0)

    def _loop(self) -> None:
        # Wake often, beat every third of the shortest lease held: claims taken after the thread
        # started may carry a much shorter lease than the default.
        last = time.monotonic()
        assert self._stop is not None
        while not self._stop.wait(0.1):
            if time.monotonic() - last >= self.interval():
                last = time.monotonic()
                self.beat()

    def beat(self) -> None:
        with self._lock:
            held = list(self._held.values())
            running = dict(self._running)
        for claim in held:
            began = running.get(claim.job.job_id)
            if began is None:
                continue
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
        leases = [(claim, now + claim.lease) for claim in held]
        try:
            extended = self.store.heartbeat(leases)
        except Exception as e:  # a missed beat is retried at the next one
            log.warning("heartbeat failed (will try again): %s", e)
            return
        with self._lock:
            for claim, until in leases:
                job_id = claim.job.job_id
                if self._held.get(job_id) is not claim:
                    continue  # dropped meanwhile
                if job_id in extended:
                    self._start_by[job_id] = start_by(until, claim.lease)
                else:
                    # Taken over (its claim ran out while this runner was paused or cut off)
                    # or changed: no longer ours to extend, and never ours to start.
                    del self._held[job_id]
                    self._start_by[job_id] = now
                    log.warning(
                        "job %r (%s): this runner no longer holds its claim (it ran out and "
                        "another runner may have taken the job over)",
                        job_id,
                        claim.job.handler,
                    )
