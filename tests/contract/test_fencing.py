"""Fenced finishes: a runner's finish loses to a newer version; a claim that ran out is taken over.

The pass runs in a thread of its own while its handler waits, so the test thread can change the
job in between, as a web request would.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import timedelta

import pytest
import storeops

from contract.passes import PassInThread, wait_until_started
from jobsched import FakeClock, Job, Mode, Outcome, RunReport, Scheduler
from jobsched.model import OpKind
from jobsched.outbox import MAX_DELAY
from jobsched.store.base import Claim, Op


class Blocking:
    """A handler whose first call waits until released, then returns or raises ``result``."""

    def __init__(self, result: bool | BaseException | None = None) -> None:
        self.result = result
        self.started = threading.Event()
        self.release = threading.Event()
        self.jobs: list[Job] = []

    def __call__(self, job: Job) -> bool | None:
        self.jobs.append(job)
        if len(self.jobs) == 1:
            self.started.set()
            assert self.release.wait(30), "never released"
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


def while_running(
    scheduler: Scheduler, handler: Blocking, change: object, job_id: str = "a"
) -> RunReport:
    """Run a pass; once ``handler`` has started (and its start is written), call ``change()``;
    then let the handler end."""
    run = PassInThread(scheduler)
    try:
        assert handler.started.wait(30), "the handler never started"
        wait_until_started(scheduler, job_id)
        change()  # type: ignore[operator]
    finally:
        handler.release.set()
    return run.join()


@pytest.mark.parametrize("result", [None, False, ValueError("boom"), Exception("x")])
def test_a_reschedule_while_the_handler_runs_wins_over_its_finish(
    scheduler: Scheduler,
    clock: FakeClock,
    result: bool | BaseException | None,
) -> None:
    handler = Blocking(result)
    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h", "old", max_attempts=1)
    newer: list[Job] = []

    def reschedule() -> None:
        newer.append(
            scheduler.schedule_job("a", timedelta(hours=2), "h", "new", mode=Mode.RESCHEDULE)
        )

    while_running(scheduler, handler, reschedule)
    assert scheduler.get_job("a") == newer[0]
    assert newer[0].attempts == 0 and newer[0].last_error is None


def test_the_runner_says_when_its_finish_lost(
    scheduler: Scheduler, caplog: pytest.LogCaptureFixture
) -> None:
    handler = Blocking()
    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h")

    def reschedule() -> None:
        scheduler.schedule_job("a", timedelta(hours=2), "h", mode=Mode.RESCHEDULE)

    with caplog.at_level(logging.INFO, logger="jobsched"):
        while_running(scheduler, handler, reschedule)
    assert "newer state wins" in caplog.text


@pytest.mark.parametrize("result", [None, False, ValueError("boom")])
def test_an_update_while_the_handler_runs_wins_over_its_finish(
    scheduler: Scheduler, result: bool | BaseException | None
) -> None:
    handler = Blocking(result)
    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h", {"n": 1})

    def update() -> None:
        scheduler.update_job(
            "a",
            lambda job: (Job("a", "h", {"n": 99}, job.start + timedelta(days=1)), None),  # type: ignore[union-attr]
        )

    while_running(scheduler, handler, update)
    job = scheduler.get_job("a")
    assert job is not None and job.data == {"n": 99}
    assert job.last_error is None


@pytest.mark.parametrize("result", [None, False, ValueError("boom")])
def test_a_job_removed_while_its_handler_runs_stays_removed(
    scheduler: Scheduler, result: bool | BaseException | None
) -> None:
    handler = Blocking(result)
    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h")
    while_running(scheduler, handler, lambda: scheduler.remove_job("a"))
    assert not scheduler.job_exists("a")


@pytest.mark.parametrize("result", [None, ValueError("boom")])
def test_a_job_removed_and_created_anew_while_its_handler_runs_is_left_alone(
    scheduler: Scheduler, clock: FakeClock, result: bool | BaseException | None
) -> None:
    handler = Blocking(result)
    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h", "old")
    fresh: list[Job] = []

    def recreate() -> None:
        scheduler.remove_job("a")
        fresh.append(scheduler.schedule_job("a", timedelta(hours=3), "h", "fresh"))

    while_running(scheduler, handler, recreate)
    assert scheduler.get_job("a") == fresh[0]


def test_a_job_rescheduled_due_while_it_runs_is_not_started_twice_at_once(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    handler = Blocking()
    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h", "old")
    second: list[RunReport] = []

    def reschedule_and_run_again() -> None:
        scheduler.schedule_job("a", timedelta(0), "h", "new", mode=Mode.RESCHEDULE)
        second.append(scheduler.run_due_jobs())  # another runner, while the first still runs

    while_running(scheduler, handler, reschedule_and_run_again)
    assert second[0].ran == 0 and second[0].results == []
    assert [j.data for j in handler.jobs] == ["old"]
    # Once the first attempt has ended, the rescheduled job runs normally.
    report = scheduler.run_due_jobs()
    assert report.succeeded == 1
    assert [j.data for j in handler.jobs] == ["old", "new"]


def test_a_running_job_is_not_taken_by_another_pass_while_its_claim_lasts(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    handler = Blocking()
    scheduler.registry.register("h", handler, timeout=timedelta(minutes=2))
    scheduler.schedule_job("a", timedelta(0), "h")
    others: list[RunReport] = []

    def run_again_before_the_claim_ends() -> None:
        clock.advance(timedelta(minutes=2) - timedelta(microseconds=1))
        others.append(scheduler.run_due_jobs())

    report = while_running(scheduler, handler, run_again_before_the_claim_ends)
    assert others[0].results == []
    assert len(handler.jobs) == 1
    assert report.succeeded == 1
    assert not scheduler.job_exists("a")


def test_a_claim_that_ran_out_is_taken_over_and_the_old_finish_changes_nothing(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    handler = Blocking(ValueError("first runner's late error"))
    scheduler.registry.register("h", handler, timeout=timedelta(minutes=2))
    scheduler.schedule_job("a", timedelta(0), "h", max_attempts=3)
    takeover: list[RunReport] = []

    def take_over() -> None:
        clock.advance(timedelta(minutes=2))
        handler.result = None  # the second attempt succeeds
        takeover.append(scheduler.run_due_jobs())

    while_running(scheduler, handler, take_over)
    [lost, succeeded] = takeover[0].results
    assert (lost.outcome, lost.attempt) == (Outcome.LOST, 1)
    assert lost.error is not None and "lost" in lost.error
    assert (succeeded.outcome, succeeded.attempt) == (Outcome.SUCCEEDED, 2)
    assert (takeover[0].lost, takeover[0].ran) == (1, 1)
    assert len(handler.jobs) == 2
    # The first runner's late error wrote nothing: the job is gone, as the second run left it.
    assert not scheduler.job_exists("a")


def test_a_taken_over_job_keeps_the_lost_attempt_and_names_the_runner(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    handler = Blocking()
    scheduler.registry.register("h", handler, timeout=timedelta(minutes=2))
    scheduler.schedule_job("a", timedelta(0), "h", max_attempts=3)
    seen: list[Job | None] = []

    def take_over() -> None:
        clock.advance(timedelta(minutes=2))
        scheduler.registry.register("h", lambda job: False)  # the new deploy keeps the job
        scheduler.run_due_jobs()
        seen.append(scheduler.get_job("a"))

    while_running(scheduler, handler, take_over)
    job = seen[0]
    assert job is not None and job.attempts == 2
    assert job.last_error is not None and "lost" in job.last_error
    assert socket.gethostname() in job.last_error


def test_a_claim_that_ran_out_at_max_attempts_fails_without_running_again(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    handler = Blocking()
    scheduler.registry.register("h", handler, timeout=timedelta(minutes=1))
    scheduler.schedule_job("a", timedelta(0), "h", max_attempts=1)
    takeover: list[RunReport] = []

    def take_over() -> None:
        clock.advance(timedelta(minutes=1))
        takeover.append(scheduler.run_due_jobs())

    while_running(scheduler, handler, take_over)
    assert [r.outcome for r in takeover[0].results] == [Outcome.FAILED]
    assert takeover[0].ran == 0
    assert len(handler.jobs) == 1
    assert not scheduler.job_exists("a")


def claim_as(scheduler: Scheduler, clock: FakeClock, runner: str) -> Claim:
    """Claim job "a" as ``runner`` would, with one-minute claims."""
    [claim] = storeops.claim(scheduler.store, clock.now(), runner=runner)
    return claim


def last_attempt_lost_by_a_dead_runner(scheduler: Scheduler, clock: FakeClock) -> list[Job]:
    """Job "a" (one attempt allowed) whose attempt runner dead-1:1 started, then died; its claim
    has run out. Returns the list the handler appends to if it is ever called."""
    calls: list[Job] = []
    scheduler.registry.register("h", calls.append, timeout=timedelta(minutes=1))
    scheduler.schedule_job("a", timedelta(0), "h", max_attempts=1)
    first = claim_as(scheduler, clock, "dead-1:1")
    assert scheduler.store.apply([storeops.start(first, clock.now())]) == [True]
    clock.advance(timedelta(minutes=2))
    return calls


def test_a_job_whose_last_attempt_was_lost_fails_even_if_the_runner_that_took_it_over_died(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    # Found by the fault suite: runner 1 starts the last attempt and dies; runner 2 takes the
    # job over (recording the lost attempt) and dies before deciding anything; runner 3 must
    # fail the job, not start an attempt past max_attempts.
    calls = last_attempt_lost_by_a_dead_runner(scheduler, clock)
    second = claim_as(scheduler, clock, "dead-2:2")
    assert second.lost and second.taken_from == "dead-1:1"
    clock.advance(timedelta(minutes=2))

    report = scheduler.run_due_jobs()

    assert [r.outcome for r in report.results] == [Outcome.FAILED]
    assert report.ran == 0 and calls == []
    assert "dead-1:1" in (report.results[0].error or "")
    assert not scheduler.job_exists("a")


def test_a_job_whose_last_attempt_was_lost_fails_even_after_a_runner_gave_it_back_unstarted(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    # As above, but runner 2 gave the job back unstarted (a SIGTERM before it got to it).
    calls = last_attempt_lost_by_a_dead_runner(scheduler, clock)
    second = claim_as(scheduler, clock, "stopped-2:2")
    assert scheduler.store.apply([Op(OpKind.RELEASE, second)]) == [True]

    report = scheduler.run_due_jobs()

    assert [r.outcome for r in report.results] == [Outcome.FAILED]
    assert report.ran == 0 and calls == []
    assert not scheduler.job_exists("a")


def test_a_job_kept_more_often_than_max_attempts_is_not_failed_for_it(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.registry.register("poll", lambda job: False)
    scheduler.schedule_job("a", timedelta(0), "poll", max_attempts=1)

    outcomes = []
    for _ in range(3):
        outcomes += [r.outcome for r in scheduler.run_due_jobs().results]
        clock.advance(timedelta(minutes=1))

    assert outcomes == [Outcome.KEPT] * 3
    job = scheduler.get_job("a")
    assert job is not None and job.attempts == 3


def test_an_update_keeps_a_running_job_from_starting_twice_at_once(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    handler = Blocking()
    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h", "old")
    second: list[RunReport] = []

    def update_and_run_again() -> None:
        scheduler.update_job(
            "a",
            lambda job: (Job("a", "h", "new", clock.now()), None),
        )
        second.append(scheduler.run_due_jobs())

    while_running(scheduler, handler, update_and_run_again)
    assert second[0].results == []
    assert scheduler.run_due_jobs().succeeded == 1
    assert [j.data for j in handler.jobs] == ["old", "new"]


def test_a_handler_that_removes_its_own_job_leaves_it_removed(scheduler: Scheduler) -> None:
    def remove_self(job: Job) -> bool:
        scheduler.remove_job(job.job_id)
        return False

    scheduler.registry.register("h", remove_self)
    scheduler.schedule_job("a", timedelta(0), "h")
    assert scheduler.run_due_jobs().kept == 1
    assert not scheduler.job_exists("a")


def test_a_claim_that_ran_out_past_the_expiry_expires_the_job(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    handler = Blocking()
    scheduler.registry.register("h", handler, timeout=timedelta(minutes=5))
    scheduler.schedule_job("a", timedelta(0), "h", expiry=timedelta(minutes=1))
    takeover: list[RunReport] = []

    def take_over() -> None:
        clock.advance(timedelta(minutes=5))
        takeover.append(scheduler.run_due_jobs())

    while_running(scheduler, handler, take_over)
    assert [r.outcome for r in takeover[0].results] == [Outcome.EXPIRED]
    assert len(handler.jobs) == 1
    assert not scheduler.job_exists("a")


def test_a_job_changed_before_its_start_mark_is_written_keeps_its_claim_while_it_runs(
    scheduler: Scheduler,
) -> None:
    # A pass writes a start mark with its next batch; a change that comes first must leave the
    # running attempt's claim in place, so that no other pass starts the job meanwhile.
    nested: list[RunReport] = []

    def handler(job: Job) -> None:
        if job.data == "old":
            scheduler.schedule_job("a", timedelta(0), "h", "new", mode=Mode.RESCHEDULE)
            time.sleep(10 * MAX_DELAY)  # the start mark has gone out by now, and lost
            nested.append(scheduler.run_due_jobs())

    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h", "old")
    assert scheduler.run_due_jobs().succeeded == 1
    assert nested[0].ran == 0 and nested[0].results == []
    job = scheduler.get_job("a")
    assert job is not None and (job.data, job.attempts) == ("new", 0)
    assert scheduler.run_due_jobs().succeeded == 1
    assert not scheduler.job_exists("a")
