"""add_job: insert a Job exactly as given (for restoring and copying jobs)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from jobsched import FakeClock, InvalidJobError, Job, JobExistsError, Outcome, Scheduler

CET = timezone(timedelta(hours=1))


def fail(job: Job) -> None:
    raise ValueError("still broken")


def full_job() -> Job:
    return Job(
        job_id="restored",
        handler="h",
        data={"list": [1, "😀"]},
        start=datetime(2026, 1, 1, 8, 0, 0, 123456, tzinfo=UTC),
        expiry=datetime(2026, 2, 1, 8, 0, 0, 654321, tzinfo=UTC),
        attempts=2,
        max_attempts=5,
        created_at=datetime(2025, 12, 24, 18, 0, 0, 1, tzinfo=UTC),
        last_error="ValueError: earlier 💥",
    )


def test_add_job_keeps_every_field(scheduler: Scheduler) -> None:
    job = full_job()
    assert scheduler.add_job(job) == job
    assert scheduler.get_job("restored") == job


def test_add_job_stores_times_in_utc(scheduler: Scheduler) -> None:
    job = dataclasses.replace(
        full_job(),
        start=datetime(2026, 1, 1, 9, 0, tzinfo=CET),
        expiry=None,
        created_at=datetime(2025, 12, 31, 23, 30, tzinfo=CET),
    )
    stored = scheduler.get_job(scheduler.add_job(job).job_id)
    assert stored is not None and stored.created_at is not None
    assert stored.start == job.start and stored.start.utcoffset() == timedelta(0)
    assert stored.start.hour == 8
    assert stored.created_at == job.created_at and stored.created_at.year == 2025


def test_add_job_without_created_at_uses_now(scheduler: Scheduler, clock: FakeClock) -> None:
    job = dataclasses.replace(full_job(), created_at=None)
    assert scheduler.add_job(job).created_at == clock.now()
    stored = scheduler.get_job("restored")
    assert stored is not None and stored.created_at == clock.now()


def test_add_job_refuses_an_existing_id(scheduler: Scheduler) -> None:
    existing = scheduler.schedule_job("restored", timedelta(0), "other")
    with pytest.raises(JobExistsError) as info:
        scheduler.add_job(full_job())
    assert info.value.job_id == "restored"
    assert scheduler.get_job("restored") == existing


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("start", datetime(2026, 1, 1)),
        ("expiry", datetime(2025, 1, 1, tzinfo=UTC)),
        ("created_at", datetime(2026, 1, 1)),
        ("data", float("nan")),
        ("job_id", ""),
        ("job_id", "a\nb"),
        ("handler", ""),
        ("handler", "h\t"),
        ("handler", " "),
        ("attempts", -1),
        ("attempts", True),
        ("max_attempts", 0),
        ("last_error", 5),
    ],
)
def test_add_job_validates_like_schedule_job(
    scheduler: Scheduler, field: str, value: object
) -> None:
    bad = dataclasses.replace(full_job(), **{field: value})
    with pytest.raises(InvalidJobError) as info:
        scheduler.add_job(bad)
    assert info.value.field == field
    assert list(scheduler.list_jobs()) == []


def test_add_job_refuses_what_is_not_a_job(scheduler: Scheduler) -> None:
    with pytest.raises(InvalidJobError):
        scheduler.add_job({"job_id": "a"})  # type: ignore[arg-type]


def test_a_job_copied_by_get_and_add_is_identical(scheduler: Scheduler, clock: FakeClock) -> None:
    scheduler.registry.register("h", fail)
    scheduler.schedule_job("a", timedelta(0), "h", {"v": "😀"}, max_attempts=4)
    scheduler.run_due_jobs()
    original = scheduler.get_job("a")
    assert original is not None and original.attempts == 1
    scheduler.remove_job("a")
    clock.advance(timedelta(days=1))
    scheduler.add_job(original)
    assert scheduler.get_job("a") == original


def test_an_added_job_spends_only_its_remaining_attempts(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.registry.register("h", fail)
    scheduler.add_job(dataclasses.replace(full_job(), start=clock.now(), expiry=None, attempts=4))
    [result] = scheduler.run_due_jobs().results
    assert (result.outcome, result.attempt) == (Outcome.FAILED, 5)
    assert not scheduler.job_exists("restored")
