"""Retrying failed jobs from their history, and pruning the history (retention)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobsched import FakeClock, Job, JobExistsError, MissingJobError, Outcome, Scheduler
from jobsched.errors import UsageError
from jobsched.history import PRUNE_BATCH

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def fail_permanently(job: Job) -> None:
    from jobsched import PermanentError

    raise PermanentError(f"cannot send to {job.data}")


@pytest.fixture
def failed(scheduler: Scheduler, clock: FakeClock) -> Scheduler:
    """Job "a" of handler "mail" failed (payload {"to": "x"}, max_attempts 7, an expiry)."""
    scheduler.registry.register("mail", fail_permanently)
    scheduler.schedule_job(
        "a", timedelta(0), "mail", {"to": "x"}, max_attempts=7, expiry=timedelta(hours=2)
    )
    scheduler.run_due_jobs()
    assert not scheduler.job_exists("a")
    clock.advance(HOUR)
    return scheduler


# -- retry ----------------------------------------------------------------------------------------


def test_a_failed_job_is_listed_until_it_is_retried(failed: Scheduler) -> None:
    [run] = failed.failed_jobs()
    assert (run.job_id, run.outcome, run.data) == ("a", Outcome.FAILED, {"to": "x"})
    failed.retry("a")
    assert failed.failed_jobs() == []


def test_retry_schedules_the_job_again_from_its_history(
    failed: Scheduler, clock: FakeClock
) -> None:
    job = failed.retry("a")
    assert failed.get_job("a") == job
    assert (job.handler, job.data, job.max_attempts) == ("mail", {"to": "x"}, 7)
    assert (job.start, job.expiry, job.attempts, job.last_error) == (clock.now(), None, 0, None)
    [run] = failed.history("a", outcome="failed")
    assert run.retried_at == clock.now()


def test_retry_takes_a_start_and_an_expiry(failed: Scheduler, clock: FakeClock) -> None:
    job = failed.retry("a", start=HOUR, expiry=timedelta(minutes=30))
    assert job.start == clock.now() + HOUR
    assert job.expiry == clock.now() + HOUR + timedelta(minutes=30)


def test_a_retried_job_runs_again(failed: Scheduler) -> None:
    failed.registry.register("mail", lambda job: None)
    failed.retry("a")
    report = failed.run_due_jobs()
    assert [r.outcome for r in report.results] == [Outcome.SUCCEEDED]


def test_retry_refuses_an_id_that_exists_again(failed: Scheduler) -> None:
    failed.schedule_job("a", HOUR, "mail", "new")
    with pytest.raises(JobExistsError):
        failed.retry("a")
    job = failed.get_job("a")
    assert job is not None and job.data == "new"
    assert [r.job_id for r in failed.failed_jobs()] == ["a"]  # still waiting for a retry


def test_a_job_retried_once_cannot_be_retried_from_the_same_failure(failed: Scheduler) -> None:
    failed.retry("a")
    failed.remove_job("a")
    with pytest.raises(MissingJobError, match="no failed run of job 'a'"):
        failed.retry("a")


def test_a_job_that_never_failed_cannot_be_retried(scheduler: Scheduler) -> None:
    with pytest.raises(MissingJobError):
        scheduler.retry("nobody")


def test_retry_failed_retries_every_failure_of_a_handler_and_skips_ids_that_exist(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.registry.register("mail", fail_permanently)
    scheduler.registry.register("sms", fail_permanently)
    for job_id, handler in [("m1", "mail"), ("m2", "mail"), ("s1", "sms")]:
        scheduler.schedule_job(job_id, timedelta(0), handler, job_id)
    scheduler.run_due_jobs()
    scheduler.schedule_job("m2", HOUR, "mail", "again")

    report = scheduler.retry_failed(handler="mail")

    assert [job.job_id for job in report.scheduled] == ["m1"]
    assert report.skipped == [("m2", "a job with this id exists again")]
    assert sorted(r.job_id for r in scheduler.failed_jobs()) == ["m2", "s1"]


def test_failed_jobs_lists_the_newest_failure_of_each_id_newest_first(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.registry.register("mail", fail_permanently)
    for job_id in ["a", "b", "a"]:
        scheduler.schedule_job(job_id, timedelta(0), "mail", clock.now().isoformat())
        scheduler.run_due_jobs()
        clock.advance(HOUR)
    runs = scheduler.failed_jobs()
    assert [r.job_id for r in runs] == ["a", "b"]
    assert runs[0].finished_at == clock.now() - HOUR
    assert [r.job_id for r in scheduler.failed_jobs(since=timedelta(minutes=90))] == ["a"]


# -- prune ----------------------------------------------------------------------------------------


def succeed_jobs(scheduler: Scheduler, count: int, prefix: str = "j") -> None:
    scheduler.registry.register("ok", lambda job: None)
    scheduler.schedule_jobs(
        [{"job_id": f"{prefix}-{i}", "start": timedelta(0), "handler": "ok"} for i in range(count)]
    )
    scheduler.run_due_jobs()


def test_prune_deletes_runs_older_than_the_retention_and_keeps_failures_longer(
    failed: Scheduler, clock: FakeClock
) -> None:
    succeed_jobs(failed, 3)
    clock.advance(13 * DAY)
    assert failed.prune_history() == 0
    clock.advance(2 * DAY)
    assert failed.prune_history() == 3
    assert [r.job_id for r in failed.history()] == ["a"]
    clock.advance(16 * DAY)
    assert failed.prune_history() == 1
    assert failed.history() == []


def test_prune_older_than_deletes_failures_too(failed: Scheduler, clock: FakeClock) -> None:
    succeed_jobs(failed, 2)
    clock.advance(timedelta(minutes=5))
    assert failed.prune_history(older_than=timedelta(minutes=1)) == 3
    assert failed.history() == []


def test_prune_deletes_more_rows_than_one_batch(scheduler: Scheduler, clock: FakeClock) -> None:
    succeed_jobs(scheduler, PRUNE_BATCH + 5)
    clock.advance(timedelta(minutes=1))
    assert scheduler.prune_history(older_than=timedelta(0)) == PRUNE_BATCH + 5
    assert scheduler.history(limit=None) == []


def test_a_negative_older_than_is_a_usage_error(scheduler: Scheduler) -> None:
    with pytest.raises(UsageError, match="older_than"):
        scheduler.prune_history(older_than=timedelta(days=-1))


def test_a_pass_prunes_the_history_itself_at_most_every_ten_minutes(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.retention = timedelta(minutes=1)
    succeed_jobs(scheduler, 2)  # this pass prunes (nothing is old yet)
    clock.advance(timedelta(minutes=5))
    succeed_jobs(scheduler, 1, prefix="later")  # too soon to prune again
    assert len(scheduler.history()) == 3
    clock.advance(timedelta(minutes=5))
    succeed_jobs(scheduler, 1, prefix="last")  # ten minutes on: it prunes
    assert sorted(r.job_id for r in scheduler.history()) == ["last-0"]
