"""``Scheduler.status`` (from the jobs table and the history) and ``jobsched.progress``."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest

import jobsched
from contract.passes import PassInThread, wait_until_started
from jobsched import FakeClock, Job, Progress, Scheduler, Status

HOUR = timedelta(hours=1)
#: How long a progress report may take to reach the table (about a second promised).
PROGRESS_VISIBLE_WITHIN = 5.0


def test_a_job_whose_start_is_to_come_is_scheduled(scheduler: Scheduler) -> None:
    scheduler.schedule_job("a", HOUR, "h")
    status = scheduler.status("a")
    assert status.status is Status.SCHEDULED
    assert status.job is not None and status.job.job_id == "a"
    assert status.last_run is None


def test_a_job_whose_start_has_come_is_due(scheduler: Scheduler) -> None:
    scheduler.schedule_job("a", timedelta(0), "h")
    assert scheduler.status("a").status is Status.DUE


def test_a_deferred_job_is_deferred_and_says_why(scheduler: Scheduler) -> None:
    scheduler.registry.register("known", lambda job: None)
    scheduler.schedule_job("a", timedelta(0), "unknown")
    scheduler.run_due_jobs()
    status = scheduler.status("a")
    assert status.status is Status.DEFERRED
    assert status.last_run is not None and status.last_run.outcome is jobsched.Outcome.DEFERRED


def test_a_finished_job_whose_row_is_gone_reads_from_the_history(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.registry.register("h", lambda job: None)
    scheduler.schedule_job("a", timedelta(0), "h")
    scheduler.run_due_jobs()
    status = scheduler.status("a")
    assert status.status is Status.FINISHED
    assert status.info is None
    assert status.last_run is not None
    assert (status.last_run.outcome, status.last_run.finished_at) == (
        jobsched.Outcome.SUCCEEDED,
        clock.now(),
    )


def test_an_id_neither_table_knows_is_unknown(scheduler: Scheduler) -> None:
    status = scheduler.status("nobody")
    assert (status.status, status.info, status.last_run) == (Status.UNKNOWN, None, None)


def test_a_retried_job_is_scheduled_with_its_last_run(scheduler: Scheduler) -> None:
    def handler(job: Job) -> None:
        raise ValueError("later")

    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h")
    scheduler.run_due_jobs()
    status = scheduler.status("a")
    assert status.status is Status.SCHEDULED
    assert status.last_run is not None and status.last_run.error == "ValueError: later"


class Reporting:
    """A handler that reports progress, then waits until released."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, job: Job) -> None:
        jobsched.progress(3, 10, "copying")
        self.started.set()
        assert self.release.wait(30), "never released"


def wait_for_progress(scheduler: Scheduler, job_id: str) -> jobsched.JobStatus:
    deadline = time.monotonic() + PROGRESS_VISIBLE_WITHIN
    while True:
        status = scheduler.status(job_id)
        if status.progress is not None:
            return status
        assert time.monotonic() < deadline, f"no progress of {job_id!r} reached the table"
        time.sleep(0.02)


def test_a_running_job_shows_its_runner_start_and_progress(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    handler = Reporting()
    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h")
    run = PassInThread(scheduler)
    try:
        assert handler.started.wait(30)
        wait_until_started(scheduler, "a")
        status = wait_for_progress(scheduler, "a")
        assert status.status is Status.RUNNING
        assert status.progress == Progress(3, 10, "copying")
        assert status.runner is not None and ":" in status.runner
        assert status.started_at == clock.now()
    finally:
        handler.release.set()
    run.join()
    assert scheduler.status("a").progress is None


def test_an_async_handler_reports_progress_too(scheduler: Scheduler) -> None:
    started = threading.Event()
    release = threading.Event()

    async def handler(job: Job) -> None:
        await asyncio.sleep(0)
        jobsched.progress(1, note="half way")
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.01)

    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h")
    run = PassInThread(scheduler)
    try:
        assert started.wait(30)
        assert wait_for_progress(scheduler, "a").progress == Progress(1, None, "half way")
    finally:
        release.set()
    run.join()


def test_a_handler_reporting_in_a_loop_keeps_only_the_latest_value(
    scheduler: Scheduler,
) -> None:
    started = threading.Event()
    release = threading.Event()

    def handler(job: Job) -> None:
        for done in range(1, 10001):
            jobsched.progress(done, 10000)
        started.set()
        assert release.wait(30)

    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h")
    run = PassInThread(scheduler)
    try:
        assert started.wait(30)
        deadline = time.monotonic() + PROGRESS_VISIBLE_WITHIN
        while scheduler.status("a").progress != Progress(10000, 10000):
            assert time.monotonic() < deadline, scheduler.status("a").progress
            time.sleep(0.02)
    finally:
        release.set()
    run.join()


def test_a_new_attempt_starts_without_the_progress_of_the_last(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    def handler(job: Job) -> None:
        jobsched.progress(job.attempts, 2)
        raise ValueError("again")

    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h")
    scheduler.run_due_jobs()
    info = scheduler.get_job_info("a")
    assert info is not None and info.progress is None


def test_progress_outside_a_pass_does_nothing() -> None:
    jobsched.progress(1, 2, "nobody listens")  # no error, no write


@pytest.mark.parametrize(
    ("done", "total", "note", "message"),
    [
        ("3", 10, None, "done must be a number"),
        (-1, 10, None, "finite number >= 0"),
        (1, float("nan"), None, "finite number >= 0"),
        (True, None, None, "done must be a number"),
        (1, 2, 3, "note must be a string"),
    ],
)
def test_malformed_progress_inside_a_handler_fails_that_attempt(
    scheduler: Scheduler, done: object, total: object, note: object, message: str
) -> None:
    def handler(job: Job) -> None:
        jobsched.progress(done, total, note)  # type: ignore[arg-type]

    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h")
    report = scheduler.run_due_jobs()
    [result] = report.results
    assert result.outcome is jobsched.Outcome.RETRIED
    assert result.error is not None and message in result.error
    assert result.error.startswith("UsageError: progress")


def test_progress_describes_itself() -> None:
    assert Progress(3, 10, "copying").describe() == "3/10 (30%) copying"
    assert Progress(2.5).describe() == "2.5"
