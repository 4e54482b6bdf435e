"""The worker (``Scheduler.run_worker``): a pass that keeps going until it is stopped, looking for
due jobs again at most ``poll`` seconds after it found none, holding at most ``prefetch`` claimed
jobs unstarted. It runs in a thread here, on the fake clock the test moves."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

from jobsched import FakeClock, Job, NoHandlersError, RunReport, Scheduler, UsageError
from jobsched.handlers import Registry
from jobsched.model import JobResult

POLL = 0.02


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    done = threading.Event()
    deadline = timeout
    while not predicate():
        if deadline <= 0:
            pytest.fail(f"timed out waiting for {what}", pytrace=False)
        done.wait(0.01)
        deadline -= 0.01


@contextmanager
def worker(
    scheduler: Scheduler, **options: Any
) -> Iterator[tuple[threading.Event, Future[RunReport]]]:
    """A worker in a thread; stopped (and its report checked for errors) at the end."""
    stop = threading.Event()
    options.setdefault("poll", POLL)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(scheduler.run_worker, stop=stop, **options)
        try:
            yield stop, future
        finally:
            stop.set()
            future.result(timeout=30)


def test_a_worker_runs_jobs_as_they_come_due_until_stopped(
    scheduler: Scheduler, clock: FakeClock, registry: Registry
) -> None:
    ran: list[str] = []
    registry.register("h", lambda job: ran.append(job.job_id))
    scheduler.schedule_job("now", timedelta(0), "h")
    scheduler.schedule_job("later", timedelta(minutes=10), "h")
    with worker(scheduler) as (stop, future):
        wait_for(lambda: ran == ["now"], "the job due now")
        clock.advance(timedelta(minutes=10))
        wait_for(lambda: ran == ["now", "later"], "the job due ten minutes later")
        stop.set()
        report = future.result(timeout=30)
    assert (report.succeeded, report.ran) == (2, 2)
    assert scheduler.count_jobs() == 0


def test_a_worker_runs_a_job_scheduled_while_it_waits(
    scheduler: Scheduler, registry: Registry
) -> None:
    ran = threading.Event()
    registry.register("h", lambda job: ran.set())
    with worker(scheduler):
        assert not ran.wait(5 * POLL)
        scheduler.schedule_job("a", timedelta(0), "h")
        assert ran.wait(10)


def test_a_worker_runs_a_retried_job_again_when_its_retry_comes_due(
    scheduler: Scheduler, clock: FakeClock, registry: Registry
) -> None:
    attempts: list[int] = []

    def flaky(job: Job) -> None:
        attempts.append(job.attempts)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")

    registry.register("h", flaky, retry_delay=60)
    scheduler.schedule_job("a", timedelta(0), "h")
    with worker(scheduler):
        wait_for(lambda: attempts == [1], "the first attempt")
        clock.advance(timedelta(seconds=60))
        wait_for(lambda: scheduler.count_jobs() == 0, "the retry to succeed")
    assert attempts == [1, 2]


def test_a_worker_holds_no_more_than_prefetch_claimed_jobs_unstarted(
    scheduler: Scheduler, registry: Registry
) -> None:
    release = threading.Event()
    started: list[str] = []

    def blocked(job: Job) -> None:
        started.append(job.job_id)
        release.wait(30)

    registry.register("h", blocked)
    for i in range(20):
        scheduler.schedule_job(f"j{i:02}", timedelta(0), "h")
    with worker(scheduler, prefetch=3):
        wait_for(lambda: started, "the first handler to start")
        claimed = [info for info in scheduler.list_job_infos() if info.claimed_by is not None]
        # The one running, and at most three waiting behind it.
        assert 1 < len(claimed) <= 1 + 3
        release.set()
        wait_for(lambda: scheduler.count_jobs() == 0, "every job to run")
    assert sorted(started) == [f"j{i:02}" for i in range(20)]


def test_stopping_a_worker_lets_the_running_handler_finish_and_gives_back_the_rest(
    scheduler: Scheduler, registry: Registry
) -> None:
    started = threading.Event()
    release = threading.Event()

    def blocked(job: Job) -> None:
        started.set()
        release.wait(30)

    registry.register("h", blocked)
    for i in range(5):
        scheduler.schedule_job(f"j{i}", timedelta(0), "h")
    with worker(scheduler) as (stop, future):
        assert started.wait(10)
        stop.set()
        release.set()
        report = future.result(timeout=30)
    assert (report.succeeded, report.ran) == (1, 1)
    left = list(scheduler.list_job_infos())
    assert len(left) == 4
    assert all(info.claimed_by is None and info.job.attempts == 0 for info in left)


def test_a_worker_with_concurrency_runs_handlers_side_by_side(
    scheduler: Scheduler, registry: Registry
) -> None:
    together = threading.Barrier(3, timeout=10)
    registry.register("h", lambda job: together.wait())
    for i in range(3):
        scheduler.schedule_job(f"j{i}", timedelta(0), "h")
    with worker(scheduler, concurrency=3):
        wait_for(lambda: scheduler.count_jobs() == 0, "three handlers at once")


def test_a_worker_tells_each_result_as_it_happens(scheduler: Scheduler, registry: Registry) -> None:
    heard: list[JobResult] = []
    registry.register("h", lambda job: None)
    scheduler.schedule_job("a", timedelta(0), "h")
    with worker(scheduler, on_result=heard.append):
        wait_for(lambda: heard, "the result")
    assert [(r.job_id, r.outcome.value) for r in heard] == [("a", "succeeded")]


def test_a_worker_with_no_handler_registered_refuses_to_start(scheduler: Scheduler) -> None:
    with pytest.raises(NoHandlersError):
        scheduler.run_worker(stop=threading.Event())


def test_a_worker_for_a_handler_nobody_registers_refuses_to_start(
    scheduler: Scheduler, registry: Registry
) -> None:
    registry.register("h", lambda job: None)
    with pytest.raises(UsageError, match="'other'"):
        scheduler.run_worker(stop=threading.Event(), handlers=["other"])


@pytest.mark.parametrize(
    ("option", "value"), [("poll", 0), ("poll", -1.0), ("prefetch", 0), ("concurrency", 0)]
)
def test_a_worker_refuses_a_bad_option(
    scheduler: Scheduler, registry: Registry, option: str, value: object
) -> None:
    registry.register("h", lambda job: None)
    with pytest.raises(UsageError, match=option):
        scheduler.run_worker(stop=threading.Event(), **{option: value})
