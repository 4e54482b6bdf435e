"""schedule_job and its three modes (NEW, IGNORE_IF_EXISTS, RESCHEDULE); reading, removing."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

import jobsched
from jobsched import FakeClock, InvalidJobError, Job, JobExistsError, JobSpec, Mode, Scheduler

HOUR = timedelta(hours=1)


def fail(job: Job) -> None:
    raise ValueError("boom")


def failed_once(scheduler: Scheduler, clock: FakeClock, job_id: str = "a") -> Job:
    """A job that has spent one attempt (attempts 1, last_error set)."""
    scheduler.registry.register("flaky", fail)
    scheduler.schedule_job(job_id, timedelta(0), "flaky", {"v": 1}, max_attempts=5)
    assert scheduler.run_due_jobs().retried == 1
    job = scheduler.get_job(job_id)
    assert job is not None and job.attempts == 1 and job.last_error
    return job


def test_new_job_gets_defaults_and_is_stored(scheduler: Scheduler, clock: FakeClock) -> None:
    job = scheduler.schedule_job("a", timedelta(minutes=10), "h", {"x": 1})
    assert job == Job(
        job_id="a",
        handler="h",
        data={"x": 1},
        start=clock.now() + timedelta(minutes=10),
        expiry=None,
        attempts=0,
        max_attempts=jobsched.DEFAULT_MAX_ATTEMPTS,
        created_at=clock.now(),
        last_error=None,
    )
    assert scheduler.get_job("a") == job


def test_default_max_attempts_is_three() -> None:
    assert jobsched.DEFAULT_MAX_ATTEMPTS == 3


def test_a_timedelta_start_counts_from_the_scheduler_clock(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    clock.advance(timedelta(days=3, microseconds=7))
    job = scheduler.schedule_job("a", timedelta(hours=2), "h")
    assert job.start == clock.now() + timedelta(hours=2)
    assert job.created_at == clock.now()


def test_a_timedelta_expiry_counts_from_the_start(scheduler: Scheduler, clock: FakeClock) -> None:
    clock.advance(timedelta(days=3, microseconds=7))
    job = scheduler.schedule_job("a", timedelta(hours=2), "h", expiry=timedelta(hours=5))
    assert job.expiry == job.start + timedelta(hours=5) == clock.now() + timedelta(hours=7)
    assert scheduler.get_job("a") == job


def test_a_timedelta_expiry_after_a_fixed_start_counts_from_that_start(
    scheduler: Scheduler,
) -> None:
    at_nine = datetime(2026, 11, 24, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    job = scheduler.schedule_job("a", at_nine, "h", expiry=timedelta(minutes=30))
    assert job.expiry == datetime(2026, 11, 24, 9, 30, tzinfo=timezone(timedelta(hours=1)))


def test_a_timedelta_expiry_counts_from_each_start_in_a_batch(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    at_nine = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    scheduler.schedule_jobs(
        [
            JobSpec("fixed", at_nine, "h", expiry=timedelta(minutes=30)),
            {"job_id": "later", "start": timedelta(hours=1), "handler": "h", "expiry": HOUR},
        ]
    )
    fixed, later = scheduler.get_job("fixed"), scheduler.get_job("later")
    assert fixed is not None and fixed.expiry == at_nine + timedelta(minutes=30)
    assert later is not None and later.expiry == clock.now() + timedelta(hours=2)


def test_a_rescheduled_timedelta_expiry_counts_from_the_new_start(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.schedule_job("a", timedelta(0), "h", expiry=HOUR)
    job = scheduler.schedule_job("a", timedelta(days=1), "h", expiry=HOUR, mode=Mode.RESCHEDULE)
    assert job.expiry == clock.now() + timedelta(days=1) + HOUR
    assert scheduler.get_job("a") == job


def test_negative_timedelta_start_is_in_the_past(scheduler: Scheduler, clock: FakeClock) -> None:
    job = scheduler.schedule_job("a", timedelta(hours=-1), "h")
    assert job.start == clock.now() - timedelta(hours=1)


def test_new_refuses_an_existing_id_and_keeps_the_job(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    first = scheduler.schedule_job("a", timedelta(0), "h", {"v": 1})
    with pytest.raises(JobExistsError) as info:
        scheduler.schedule_job("a", timedelta(hours=1), "other", {"v": 2})
    assert info.value.job_id == "a"
    assert "'a'" in str(info.value)
    assert scheduler.get_job("a") == first


def test_new_is_the_default_mode(scheduler: Scheduler) -> None:
    scheduler.schedule_job("a", timedelta(0), "h")
    with pytest.raises(JobExistsError):
        scheduler.schedule_job("a", timedelta(0), "h")


def test_ignore_if_exists_creates_a_missing_job(scheduler: Scheduler, clock: FakeClock) -> None:
    job = scheduler.schedule_job("a", timedelta(0), "h", [1], mode=Mode.IGNORE_IF_EXISTS)
    assert job.data == [1]
    assert scheduler.get_job("a") == job


def test_ignore_if_exists_returns_the_existing_job_untouched(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    existing = failed_once(scheduler, clock)
    clock.advance(timedelta(minutes=5))
    got = scheduler.schedule_job(
        "a", timedelta(days=1), "other", {"v": 2}, mode=Mode.IGNORE_IF_EXISTS, max_attempts=9
    )
    assert got == existing
    assert got.attempts == 1 and got.max_attempts == 5
    assert scheduler.get_job("a") == existing


def test_reschedule_creates_a_missing_job(scheduler: Scheduler, clock: FakeClock) -> None:
    job = scheduler.schedule_job("a", timedelta(hours=1), "h", "x", mode=Mode.RESCHEDULE)
    assert job.start == clock.now() + timedelta(hours=1)
    assert scheduler.get_job("a") == job


def test_reschedule_resets_every_field(scheduler: Scheduler, clock: FakeClock) -> None:
    failed_once(scheduler, clock)
    clock.advance(timedelta(minutes=5))
    expiry = datetime(2027, 1, 1, tzinfo=UTC)
    job = scheduler.schedule_job(
        "a",
        timedelta(hours=3),
        "other",
        {"v": 2},
        mode=Mode.RESCHEDULE,
        expiry=expiry,
        max_attempts=7,
    )
    assert job == Job(
        job_id="a",
        handler="other",
        data={"v": 2},
        start=clock.now() + timedelta(hours=3),
        expiry=expiry,
        attempts=0,
        max_attempts=7,
        created_at=clock.now(),
        last_error=None,
    )
    assert scheduler.get_job("a") == job


def test_reschedule_without_expiry_or_max_attempts_resets_them(scheduler: Scheduler) -> None:
    scheduler.schedule_job("a", timedelta(0), "h", expiry=timedelta(days=1), max_attempts=9)
    job = scheduler.schedule_job("a", timedelta(0), "h", mode=Mode.RESCHEDULE)
    assert job.expiry is None
    assert job.max_attempts == jobsched.DEFAULT_MAX_ATTEMPTS
    assert scheduler.get_job("a") == job


def test_data_defaults_to_none(scheduler: Scheduler) -> None:
    scheduler.schedule_job("a", timedelta(0), "h")
    job = scheduler.get_job("a")
    assert job is not None and job.data is None


def test_get_job_of_a_missing_id_is_none(scheduler: Scheduler) -> None:
    assert scheduler.get_job("nope") is None
    assert scheduler.job_exists("nope") is False


def test_job_exists_and_remove_job(scheduler: Scheduler) -> None:
    scheduler.schedule_job("a", timedelta(0), "h")
    scheduler.schedule_job("b", timedelta(0), "h")
    assert scheduler.job_exists("a")
    assert scheduler.remove_job("a") is True
    assert scheduler.remove_job("a") is False
    assert not scheduler.job_exists("a")
    assert scheduler.job_exists("b")


def test_a_removed_id_can_be_scheduled_again(scheduler: Scheduler) -> None:
    scheduler.schedule_job("a", timedelta(0), "h", 1)
    scheduler.remove_job("a")
    job = scheduler.schedule_job("a", timedelta(0), "h", 2)
    assert scheduler.get_job("a") == job


def test_jobs_are_immutable(scheduler: Scheduler) -> None:
    job = scheduler.schedule_job("a", timedelta(0), "h")
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.attempts = 5  # type: ignore[misc]


def test_mode_must_be_a_mode(scheduler: Scheduler) -> None:
    with pytest.raises(InvalidJobError) as info:
        scheduler.schedule_job("a", timedelta(0), "h", mode="new")  # type: ignore[arg-type]
    assert info.value.field == "mode"
    assert not scheduler.job_exists("a")
