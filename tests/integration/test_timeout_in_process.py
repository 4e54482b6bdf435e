"""A handler that is not isolated cannot be stopped past its timeout (a Python thread cannot be
killed): its runner logs a warning once, and keeps the job's claim while it runs, so no other
runner starts the job a second time meanwhile."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import pytest

from jobsched import Job, Scheduler
from jobsched.handlers import Registry

TIMEOUT = 0.6


def test_a_handler_past_its_timeout_is_warned_about_once_and_keeps_its_claim(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    started = threading.Event()
    runs: list[str] = []

    def slow(job: Job) -> None:
        runs.append(job.job_id)
        started.set()
        time.sleep(4 * TIMEOUT)

    registry = Registry()
    registry.register("slow", slow, timeout=TIMEOUT)
    first = Scheduler(db_url, registry=registry)
    second = Scheduler(db_url, registry=registry)
    try:
        first.schedule_job("a", timedelta(0), "slow")
        with caplog.at_level(logging.WARNING, logger="jobsched"):
            running = threading.Thread(target=first.run_due_jobs)
            running.start()
            assert started.wait(10)
            # Past the timeout (and past the claim's first end): another pass finds it held.
            time.sleep(2 * TIMEOUT)
            assert second.run_due_jobs().taken == 0
            running.join(30)
        overdue = [r for r in caplog.records if "longer than its timeout" in r.getMessage()]
        assert len(overdue) == 1
        assert "'a'" in overdue[0].getMessage()
        assert runs == ["a"]
        assert first.count_jobs() == 0
    finally:
        first.close()
        second.close()
