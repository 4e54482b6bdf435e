"""The history (``job_runs``): a row for every attempt that ended and every decision a pass made
without running the handler, written with the outcome it records; on every backend."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import storeops

from contract.passes import PassInThread, wait_until_started
from jobsched import FakeClock, Job, JobRun, Mode, Outcome, PermanentError, Scheduler
from jobsched.errors import UsageError
from jobsched.rules import MAX_ERROR_BYTES

HOUR = timedelta(hours=1)


def only_run(scheduler: Scheduler, job_id: str = "a") -> JobRun:
    [run] = scheduler.history(job_id)
    return run


def test_a_succeeded_attempt_is_recorded_with_its_payload_runner_and_times(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    def handler(job: Job) -> None:
        clock.advance(timedelta(seconds=3))

    scheduler.registry.register("h", handler)
    due = clock.now()
    scheduler.schedule_job("a", due, "h", {"user": 42}, max_attempts=5)
    clock.advance(timedelta(seconds=10))
    scheduler.run_due_jobs()

    run = only_run(scheduler)
    assert run.outcome is Outcome.SUCCEEDED
    assert (run.job_id, run.handler, run.attempt, run.max_attempts) == ("a", "h", 1, 5)
    assert run.scheduled_start == due
    assert run.started_at == due + timedelta(seconds=10)
    assert run.finished_at == due + timedelta(seconds=13)
    assert run.duration == timedelta(seconds=3)
    assert run.data == {"user": 42}
    assert run.runner is not None and ":" in run.runner
    assert run.error is None and not run.superseded and run.retried_at is None


def test_a_kept_job_is_recorded_without_its_payload(scheduler: Scheduler) -> None:
    scheduler.registry.register("h", lambda job: False)
    scheduler.schedule_job("a", timedelta(0), "h", {"x": 1})
    scheduler.run_due_jobs()
    run = only_run(scheduler)
    assert (run.outcome, run.attempt, run.payload) == (Outcome.KEPT, 1, None)


def test_a_retried_attempt_records_its_error(scheduler: Scheduler) -> None:
    def handler(job: Job) -> None:
        raise ValueError("the mail server said no")

    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h", {"x": 1})
    scheduler.run_due_jobs()
    run = only_run(scheduler)
    assert run.outcome is Outcome.RETRIED
    assert run.error == "ValueError: the mail server said no"
    assert run.payload is None


def test_every_attempt_of_a_job_that_fails_in_the_end_is_recorded_newest_first(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    def handler(job: Job) -> None:
        raise ValueError(f"attempt {job.attempts}")

    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h", {"x": 1}, max_attempts=3)
    for _ in range(3):
        scheduler.run_due_jobs()
        clock.advance(HOUR)
    runs = scheduler.history("a")
    assert [(r.outcome, r.attempt) for r in runs] == [
        (Outcome.FAILED, 3),
        (Outcome.RETRIED, 2),
        (Outcome.RETRIED, 1),
    ]
    assert runs[0].error == "ValueError: attempt 3" and runs[0].data == {"x": 1}
    assert not scheduler.job_exists("a")


def test_an_error_is_cut_as_last_error_is(scheduler: Scheduler) -> None:
    def handler(job: Job) -> None:
        raise PermanentError("é" * 5000)

    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h")
    scheduler.run_due_jobs()
    run = only_run(scheduler)
    assert run.outcome is Outcome.FAILED
    assert run.error is not None and len(run.error.encode()) <= MAX_ERROR_BYTES


def test_an_expired_job_is_recorded_with_its_payload_and_no_start(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.registry.register("h", lambda job: None)
    scheduler.schedule_job("a", timedelta(0), "h", [1, 2], expiry=timedelta(minutes=5))
    clock.advance(HOUR)
    scheduler.run_due_jobs()
    run = only_run(scheduler)
    assert (run.outcome, run.started_at, run.finished_at) == (Outcome.EXPIRED, None, clock.now())
    assert run.data == [1, 2] and run.duration is None


def test_a_deferred_job_is_recorded_without_running(scheduler: Scheduler) -> None:
    scheduler.registry.register("known", lambda job: None)
    scheduler.schedule_job("a", timedelta(0), "unknown")
    scheduler.run_due_jobs()
    run = only_run(scheduler)
    assert (run.outcome, run.attempt, run.started_at) == (Outcome.DEFERRED, 0, None)
    assert run.error is not None and "no handler registered" in run.error


def test_a_job_given_back_unstarted_leaves_no_history(scheduler: Scheduler) -> None:
    stop = threading.Event()
    stop.set()
    scheduler.registry.register("h", lambda job: None)
    scheduler.schedule_job("a", timedelta(0), "h")
    scheduler.run_due_jobs(stop=stop)
    assert scheduler.history() == []


def test_a_lost_attempt_is_recorded_by_the_runner_that_takes_the_job_over(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.registry.register("h", lambda job: None, timeout=timedelta(minutes=1))
    scheduler.schedule_job("a", timedelta(0), "h", {"x": 1}, max_attempts=3)
    [claim] = storeops.claim(scheduler.store, clock.now(), runner="dead-1:1")
    started = clock.now()
    assert scheduler.store.apply([storeops.start(claim, started)]) == [True]
    clock.advance(timedelta(minutes=2))

    scheduler.run_due_jobs()

    succeeded, lost = scheduler.history("a")
    assert (lost.outcome, lost.attempt, lost.runner, lost.started_at) == (
        Outcome.LOST,
        1,
        "dead-1:1",
        started,
    )
    assert lost.finished_at == clock.now()
    assert lost.error is not None and "lost" in lost.error
    assert (succeeded.outcome, succeeded.attempt) == (Outcome.SUCCEEDED, 2)


def test_a_lost_last_attempt_is_recorded_as_lost_then_failed(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.registry.register("h", lambda job: None, timeout=timedelta(minutes=1))
    scheduler.schedule_job("a", timedelta(0), "h", {"x": 1}, max_attempts=1)
    [claim] = storeops.claim(scheduler.store, clock.now(), runner="dead-1:1")
    assert scheduler.store.apply([storeops.start(claim, clock.now())]) == [True]
    clock.advance(timedelta(minutes=2))

    scheduler.run_due_jobs()

    failed, lost = scheduler.history("a")
    assert (lost.outcome, lost.attempt) == (Outcome.LOST, 1)
    assert (failed.outcome, failed.attempt, failed.started_at) == (Outcome.FAILED, 1, None)
    assert failed.data == {"x": 1}
    assert [r.job_id for r in scheduler.failed_jobs()] == ["a"]


def test_a_finish_that_lost_to_a_newer_state_is_recorded_as_superseded(
    scheduler: Scheduler,
) -> None:
    started = threading.Event()
    release = threading.Event()

    def handler(job: Job) -> None:
        started.set()
        assert release.wait(30)

    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h", "old")
    run = PassInThread(scheduler)
    try:
        assert started.wait(30)
        wait_until_started(scheduler, "a")
        scheduler.schedule_job("a", timedelta(hours=2), "h", "new", mode=Mode.RESCHEDULE)
    finally:
        release.set()
    run.join()

    recorded = only_run(scheduler)
    assert (recorded.outcome, recorded.superseded) == (Outcome.SUCCEEDED, True)
    job = scheduler.get_job("a")
    assert job is not None and job.data == "new"


def test_history_off_records_nothing(scheduler: Scheduler) -> None:
    scheduler.history_enabled = False  # as Scheduler(..., history=False) sets it
    scheduler.registry.register("h", lambda job: None)
    scheduler.schedule_job("a", timedelta(0), "h")
    scheduler.run_due_jobs()
    assert scheduler.history() == []
    assert not scheduler.job_exists("a")


def test_jobsched_history_off_in_the_environment_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBSCHED_HISTORY", "off")
    assert Scheduler("memory://").history_enabled is False
    monkeypatch.setenv("JOBSCHED_HISTORY", "on")
    assert Scheduler("memory://").history_enabled is True
    assert Scheduler("memory://", history=False).history_enabled is False


def test_a_malformed_jobsched_history_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBSCHED_HISTORY", "sometimes")
    with pytest.raises(UsageError, match="JOBSCHED_HISTORY"):
        Scheduler("memory://")


def test_history_filters_by_handler_outcome_and_time(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    def fails(job: Job) -> None:
        raise PermanentError("no")

    scheduler.registry.register("ok", lambda job: None)
    scheduler.registry.register("bad", fails)
    scheduler.schedule_jobs(
        [{"job_id": f"ok-{i}", "start": timedelta(0), "handler": "ok"} for i in range(3)]
    )
    scheduler.run_due_jobs()
    clock.advance(HOUR)
    scheduler.schedule_job("bad-1", timedelta(0), "bad")
    scheduler.run_due_jobs()

    assert len(scheduler.history()) == 4
    assert [r.job_id for r in scheduler.history(handler="bad")] == ["bad-1"]
    assert [r.job_id for r in scheduler.history(outcome="failed")] == ["bad-1"]
    assert len(scheduler.history(outcome=Outcome.SUCCEEDED)) == 3
    assert [r.job_id for r in scheduler.history(since=timedelta(minutes=30))] == ["bad-1"]
    assert len(scheduler.history(limit=2)) == 2


def test_an_unknown_outcome_is_a_usage_error(scheduler: Scheduler) -> None:
    with pytest.raises(UsageError, match="unknown outcome 'won'"):
        scheduler.history(outcome="won")
