"""What the simulator, the pytest plugin and the CLI ask of a Scheduler besides jobs:
``next_due()``, ``clear()`` and ``describe()``."""

from __future__ import annotations

from datetime import timedelta

import storeops

from jobsched import FakeClock, Job, Scheduler


def test_next_due_is_none_without_jobs(scheduler: Scheduler) -> None:
    assert scheduler.next_due() is None


def test_next_due_is_the_earliest_start_of_the_jobs(scheduler: Scheduler, clock: FakeClock) -> None:
    scheduler.schedule_job("later", timedelta(hours=3), "h")
    scheduler.schedule_job("sooner", timedelta(minutes=5), "h")
    scheduler.schedule_job("latest", timedelta(days=1), "h")
    assert scheduler.next_due() == clock.now() + timedelta(minutes=5)


def test_next_due_of_a_claimed_job_is_the_end_of_its_claim(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    # A claimed job may be taken over when its claim runs out: not before.
    scheduler.schedule_job("a", timedelta(0), "h")
    scheduler.schedule_job("b", timedelta(hours=1), "h")
    [claim] = storeops.claim(scheduler.store, clock.now(), lease=timedelta(minutes=2))
    assert claim.job.job_id == "a"
    assert scheduler.next_due() == clock.now() + timedelta(minutes=2)


def test_clear_removes_every_job_claimed_or_not_and_says_how_many(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    for i in range(5):
        scheduler.schedule_job(f"job-{i}", timedelta(minutes=i - 2), "h")
    storeops.claim(scheduler.store, clock.now(), limit=2)
    assert scheduler.clear() == 5
    assert scheduler.count_jobs() == 0
    assert list(scheduler.list_jobs()) == []
    assert scheduler.next_due() is None


def test_clear_removes_the_history_too_unless_told_to_keep_it(scheduler: Scheduler) -> None:
    scheduler.registry.register("h", lambda job: None)
    scheduler.schedule_job("a", timedelta(0), "h")
    scheduler.run_due_jobs()
    scheduler.clear(history=False)
    assert [run.job_id for run in scheduler.history()] == ["a"]
    scheduler.clear()
    assert scheduler.history() == []


def test_clear_on_an_empty_database_removes_nothing(scheduler: Scheduler) -> None:
    assert scheduler.clear() == 0


def test_jobs_scheduled_after_clear_run_as_usual(scheduler: Scheduler) -> None:
    scheduler.registry.register("h", lambda job: None)
    scheduler.schedule_job("a", timedelta(0), "h")
    scheduler.clear()
    scheduler.schedule_job("a", timedelta(0), "h")
    assert scheduler.run_due_jobs().succeeded == 1
    assert scheduler.count_jobs() == 0


def test_a_job_cleared_while_its_handler_runs_stays_gone(scheduler: Scheduler) -> None:
    def clear_all(job: Job) -> bool:
        scheduler.clear()
        return False  # keep: the newer state (no job) wins

    scheduler.registry.register("h", clear_all)
    scheduler.schedule_job("a", timedelta(0), "h")
    scheduler.schedule_job("b", timedelta(minutes=1), "h")
    report = scheduler.run_due_jobs()
    assert report.ran == 1
    assert scheduler.count_jobs() == 0


def test_describe_names_the_database(scheduler: Scheduler, backend: str) -> None:
    described = scheduler.describe()
    if backend == "memory":
        assert described == "memory://"
    elif backend == "sqlite":
        assert described.startswith("sqlite:///") and described.endswith("jobs.db")
    else:
        assert described.startswith("mysql+pymysql://") and "jobsched_test_" in described
    assert described in repr(scheduler)


def test_describe_hides_the_password() -> None:
    scheduler = Scheduler("mysql+pymysql://app:s3cret@db.invalid:3306/shop")  # never connected
    try:
        described = scheduler.describe()
        assert described.startswith("mysql+pymysql://app:***@db.invalid:3306/shop")
        assert "s3cret" not in described
    finally:
        scheduler.close()


def test_a_database_in_memory_is_not_persistent(scheduler: Scheduler, backend: str) -> None:
    assert scheduler.persistent is (backend != "memory")
    in_memory = Scheduler("sqlite://")
    try:
        assert not in_memory.persistent
    finally:
        in_memory.close()
