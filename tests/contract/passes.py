"""Helpers shared by the contract tests."""

from __future__ import annotations

import threading

from jobsched import RunReport, Scheduler


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
