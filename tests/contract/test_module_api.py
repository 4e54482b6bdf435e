"""The module-level API acts on the current scheduler (get/set/use_scheduler)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

import jobsched
from jobsched import FakeClock, Job, JobSpec, Mode, Scheduler


@pytest.fixture
def current(scheduler: Scheduler) -> Iterator[Scheduler]:
    """``scheduler`` as the current one for the test; the previous one is restored after."""
    with jobsched.use_scheduler(scheduler):
        yield scheduler


def test_use_scheduler_makes_it_current_and_restores_the_previous(scheduler: Scheduler) -> None:
    other = object.__new__(Scheduler)  # a stand-in that is never used
    previous = jobsched.set_scheduler(other)
    try:
        with jobsched.use_scheduler(scheduler) as used:
            assert used is scheduler
            assert jobsched.get_scheduler() is scheduler
        assert jobsched.get_scheduler() is other
    finally:
        jobsched.set_scheduler(previous)


def test_use_scheduler_restores_the_previous_after_an_error(scheduler: Scheduler) -> None:
    other = object.__new__(Scheduler)
    previous = jobsched.set_scheduler(other)
    try:
        with pytest.raises(RuntimeError), jobsched.use_scheduler(scheduler):
            raise RuntimeError("inside")
        assert jobsched.get_scheduler() is other
    finally:
        jobsched.set_scheduler(previous)


def test_set_scheduler_returns_the_previous_one(scheduler: Scheduler) -> None:
    previous = jobsched.set_scheduler(scheduler)
    try:
        assert jobsched.get_scheduler() is scheduler
        assert jobsched.set_scheduler(previous) is scheduler
    finally:
        jobsched.set_scheduler(previous)


def test_module_functions_write_and_read_the_current_scheduler(
    current: Scheduler, clock: FakeClock
) -> None:
    job = jobsched.schedule_job("a", timedelta(minutes=5), "h", {"x": 1}, max_attempts=2)
    assert job.start == clock.now() + timedelta(minutes=5)
    assert current.get_job("a") == job
    assert jobsched.get_job("a") == job
    assert jobsched.job_exists("a")
    assert jobsched.remove_job("a") is True
    assert not current.job_exists("a")


def test_module_schedule_job_takes_every_mode(current: Scheduler) -> None:
    jobsched.schedule_job("a", timedelta(0), "h", 1)
    with pytest.raises(jobsched.JobExistsError):
        jobsched.schedule_job("a", timedelta(0), "h", 2)
    assert jobsched.schedule_job("a", timedelta(0), "h", 3, mode=Mode.IGNORE_IF_EXISTS).data == 1
    jobsched.schedule_job("a", timedelta(0), "h", 4, mode=Mode.RESCHEDULE, expiry=timedelta(1))
    job = current.get_job("a")
    assert job is not None and job.data == 4 and job.expiry is not None


def test_module_schedule_jobs_and_add_job(current: Scheduler, clock: FakeClock) -> None:
    assert (
        jobsched.schedule_jobs(
            [
                JobSpec("a", timedelta(0), "h"),
                {"job_id": "b", "start": timedelta(0), "handler": "h"},
            ]
        )
        == 2
    )
    copy = Job("c", "h", None, clock.now(), attempts=1, last_error="x")
    jobsched.add_job(copy)
    assert current.get_job("c") == dataclasses.replace(copy, created_at=clock.now())
    assert {j.job_id for j in current.list_jobs()} == {"a", "b", "c"}


def test_module_update_job(current: Scheduler) -> None:
    jobsched.schedule_job("a", timedelta(0), "h", 1)
    value = jobsched.update_job("a", lambda job: (dataclasses.replace(job, data=2), "ok"))  # type: ignore[type-var]
    assert value == "ok"
    job = current.get_job("a")
    assert job is not None and job.data == 2


def test_module_run_due_jobs(current: Scheduler) -> None:
    ran: list[str] = []
    current.registry.register("h", lambda job: ran.append(job.job_id))
    jobsched.schedule_job("a", timedelta(0), "h")
    jobsched.schedule_job("b", timedelta(0), "h")
    assert jobsched.run_due_jobs(limit=1).succeeded == 1
    assert jobsched.run_due_jobs().succeeded == 1
    assert ran == ["a", "b"]


def test_now_and_time_are_the_fake_clock(current: Scheduler, clock: FakeClock) -> None:
    assert jobsched.now() == clock.now()
    clock.advance(timedelta(days=2, microseconds=3))
    assert jobsched.now() == clock.now()
    assert jobsched.now().utcoffset() == timedelta(0)
    assert jobsched.time() == clock.now().timestamp()
    assert current.is_real is False


def test_a_handler_reschedules_itself_through_the_module_api(
    current: Scheduler, clock: FakeClock
) -> None:
    def remind(job: Job) -> bool:
        jobsched.schedule_job(
            job.job_id, timedelta(days=1), job.handler, job.data + 1, mode=Mode.RESCHEDULE
        )
        return False

    current.registry.register("remind", remind)
    jobsched.schedule_job("r", timedelta(0), "remind", 1)
    for expected in (2, 3, 4):
        assert jobsched.run_due_jobs().kept == 1
        job = jobsched.get_job("r")
        assert job is not None and job.data == expected
        assert job.start == jobsched.now() + timedelta(days=1)
        clock.advance(timedelta(days=1))


def test_handler_threads_see_the_current_scheduler(current: Scheduler) -> None:
    seen: list[Scheduler] = []
    current.registry.register("h", lambda job: seen.append(jobsched.get_scheduler()))
    jobsched.schedule_job("a", timedelta(0), "h")
    jobsched.schedule_job("b", timedelta(0), "h")
    runner = threading.Thread(target=lambda: current.run_due_jobs(concurrency=2))
    runner.start()
    runner.join(30)
    assert seen == [current, current]
