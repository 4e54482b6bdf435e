"""Helpers shared by the contract tests."""

from __future__ import annotations

import threading
import time

from jobsched import RunReport, Scheduler

#: How long a running job may take to show as started (50 ms promised; slack for a loaded CI).
START_VISIBLE_WITHIN = 2.0


def wait_until_started(scheduler: Scheduler, job_id: str, attempt: int = 1) -> None:
    """Wait until the store shows ``job_id``'s attempt ``attempt`` started (its attempts
    counted): a pass writes a running job's start mark with its next batch of writes."""
    deadline = time.monotonic() + START_VISIBLE_WITHIN
    while True:
        job = scheduler.get_job(job_id)
        if job is not None and job.attempts >= attempt:
            return
        assert time.monotonic() < deadline, f"{job_id!r} never showed attempt {attempt} started"
        time.sleep(0.002)


class PassInThread:
    """Runs one pass in a thread of its own (so the test thread can act while a handler runs)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.report: RunReport | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(scheduler,), daemon=True)
        self.thread.start()

    def _run(self, scheduler: Scheduler) -> None:
        try:
            self.report = scheduler.run_due_jobs()
        except BaseException as e:
            self.error = e

    def join(self) -> RunReport:
        self.thread.join(30)
        assert not self.thread.is_alive(), "the pass did not end"
        if self.error is not None:
            raise self.error
        assert self.report is not None
        return self.report
