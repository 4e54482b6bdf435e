"""update_job: an atomic read-modify-write of one job."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta

import pytest

from jobsched import FakeClock, InvalidJobError, Job, Scheduler


def test_update_job_replaces_the_job_with_what_fn_returns(scheduler: Scheduler) -> None:
    scheduler.schedule_job("a", timedelta(0), "h", {"count": 1})

    def bump(job: Job | None) -> tuple[Job | None, str]:
        assert job is not None
        return dataclasses.replace(job, data={"count": job.data["count"] + 1}), "bumped"

    assert scheduler.update_job("a", bump) == "bumped"
    job = scheduler.get_job("a")
    assert job is not None and job.data == {"count": 2}


def test_fn_sees_the_stored_job(scheduler: Scheduler) -> None:
    stored = scheduler.schedule_job("a", timedelta(minutes=3), "h", [1, "😀"], max_attempts=4)
    seen = scheduler.update_job("a", lambda job: (job, job))
    assert seen == stored


def test_update_job_can_change_any_field_but_the_id(scheduler: Scheduler) -> None:
    scheduler.schedule_job("a", timedelta(0), "h")
    new_start = datetime(2026, 6, 1, 12, 0, 0, 1, tzinfo=UTC)

    def change(job: Job | None) -> tuple[Job | None, None]:
        assert job is not None
        changed = dataclasses.replace(
            job,
            handler="other",
            start=new_start,
            expiry=new_start + timedelta(days=1),
            max_attempts=9,
            attempts=2,
            last_error="noted",
        )
        return changed, None

    scheduler.update_job("a", change)
    job = scheduler.get_job("a")
    assert job is not None
    assert (job.handler, job.start, job.expiry, job.max_attempts, job.attempts) == (
        "other",
        new_start,
        new_start + timedelta(days=1),
        9,
        2,
    )
    assert job.last_error == "noted"


def test_returning_none_removes_the_job(scheduler: Scheduler) -> None:
    scheduler.schedule_job("a", timedelta(0), "h")
    assert scheduler.update_job("a", lambda job: (None, "gone")) == "gone"
    assert not scheduler.job_exists("a")


def test_a_missing_job_is_passed_as_none_and_stays_absent(scheduler: Scheduler) -> None:
    seen: list[Job | None] = []

    def fn(job: Job | None) -> tuple[Job | None, int]:
        seen.append(job)
        return None, 42

    assert scheduler.update_job("nope", fn) == 42
    assert seen == [None]
    assert not scheduler.job_exists("nope")


def test_update_job_can_create_a_missing_job(scheduler: Scheduler, clock: FakeClock) -> None:
    new = Job("a", "h", {"made": True}, clock.now())
    scheduler.update_job("a", lambda job: (new if job is None else job, None))
    job = scheduler.get_job("a")
    assert job is not None and job.data == {"made": True}


def test_an_exception_in_fn_propagates_and_changes_nothing(scheduler: Scheduler) -> None:
    stored = scheduler.schedule_job("a", timedelta(0), "h", 1)

    def explode(job: Job | None) -> tuple[Job | None, None]:
        raise KeyError("nope")

    with pytest.raises(KeyError):
        scheduler.update_job("a", explode)
    assert scheduler.get_job("a") == stored


def test_an_invalid_job_from_fn_is_refused_and_nothing_changes(scheduler: Scheduler) -> None:
    stored = scheduler.schedule_job("a", timedelta(0), "h", 1)
    naive = datetime(2026, 1, 1)
    with pytest.raises(InvalidJobError) as info:
        scheduler.update_job("a", lambda job: (dataclasses.replace(job, start=naive), None))  # type: ignore[type-var]
    assert info.value.field == "start"
    with pytest.raises(InvalidJobError) as info:
        scheduler.update_job("a", lambda job: (dataclasses.replace(job, data=float("nan")), None))  # type: ignore[type-var]
    assert info.value.field == "data"
    assert scheduler.get_job("a") == stored


def test_fn_cannot_change_the_job_id(scheduler: Scheduler) -> None:
    stored = scheduler.schedule_job("a", timedelta(0), "h", 1)
    with pytest.raises(InvalidJobError) as info:
        scheduler.update_job("a", lambda job: (dataclasses.replace(job, job_id="b"), None))  # type: ignore[type-var]
    assert info.value.field == "job_id"
    assert scheduler.get_job("a") == stored
    assert not scheduler.job_exists("b")


def test_concurrent_updates_lose_no_increment(scheduler: Scheduler) -> None:
    scheduler.schedule_job("counter", timedelta(days=1), "h", {"n": 0})
    threads, rounds = 8, 25
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def increment(job: Job | None) -> tuple[Job | None, int]:
        assert job is not None
        n = job.data["n"] + 1
        return dataclasses.replace(job, data={"n": n}), n

    def work() -> None:
        try:
            barrier.wait(10)
            for _ in range(rounds):
                scheduler.update_job("counter", increment)
        except BaseException as e:
            errors.append(e)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert errors == []
    job = scheduler.get_job("counter")
    assert job is not None and job.data == {"n": threads * rounds}


def test_concurrent_updates_return_distinct_values(scheduler: Scheduler) -> None:
    scheduler.schedule_job("seq", timedelta(days=1), "h", 0)
    got: list[int] = []
    lock = threading.Lock()

    def take(job: Job | None) -> tuple[Job | None, int]:
        assert job is not None
        return dataclasses.replace(job, data=job.data + 1), job.data

    def work() -> None:
        for _ in range(10):
            value = scheduler.update_job("seq", take)
            with lock:
                got.append(value)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert sorted(got) == list(range(40))
