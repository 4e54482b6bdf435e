"""Reading a job with its claim: where it stands (scheduled, due, claimed, running, lost,
deferred), who holds it, until and since when."""

from __future__ import annotations

from datetime import timedelta

import storeops

from contract.passes import PassInThread, wait_until_started
from jobsched import FakeClock, Job, JobInfo, JobState, Scheduler
from jobsched.runner import runner_name
from jobsched.store.base import Claim

LEASE = timedelta(minutes=1)


def info(scheduler: Scheduler, job_id: str = "a") -> JobInfo:
    found = scheduler.get_job_info(job_id)
    assert found is not None
    return found


def claim_all(scheduler: Scheduler, clock: FakeClock, runner: str) -> list[Claim]:
    return storeops.claim(scheduler.store, clock.now(), runner=runner, lease=LEASE)


def claim_as(scheduler: Scheduler, clock: FakeClock, runner: str) -> Claim:
    [claim] = claim_all(scheduler, clock, runner)
    return claim


def test_a_job_is_scheduled_until_its_start_and_due_from_then(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    job = scheduler.schedule_job("a", timedelta(minutes=5), "h", {"n": 1})
    before = info(scheduler)
    assert before.state is JobState.SCHEDULED
    assert before.job == job
    assert (before.claimed_by, before.claimed_until, before.started_at) == (None, None, None)
    clock.advance(timedelta(minutes=5))
    assert info(scheduler).state is JobState.DUE


def test_a_claimed_job_not_started_says_by_whom_and_until_when(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.schedule_job("a", timedelta(0), "h")
    claim_as(scheduler, clock, "web-1:42")
    held = info(scheduler)
    assert held.state is JobState.CLAIMED
    assert held.claimed_by == "web-1:42"
    assert held.claimed_until == clock.now() + LEASE
    assert held.started_at is None


def test_a_claimed_job_whose_claim_ran_out_before_it_started_is_due_again(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.schedule_job("a", timedelta(0), "h")
    claim_as(scheduler, clock, "web-1:42")
    clock.advance(LEASE)
    assert info(scheduler).state is JobState.DUE


def test_a_running_job_says_its_runner_since_when_and_until_when(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    seen: list[JobInfo] = []

    def handler(job: Job) -> None:
        wait_until_started(scheduler, job.job_id)  # its start mark goes out within 50 ms
        seen.append(info(scheduler, job.job_id))

    scheduler.registry.register("h", handler, timeout=timedelta(minutes=2))
    scheduler.schedule_job("a", timedelta(0), "h")
    PassInThread(scheduler).join()
    [running] = seen
    assert running.state is JobState.RUNNING
    assert running.claimed_by == runner_name()
    assert running.started_at == clock.now()
    assert running.claimed_until == clock.now() + timedelta(minutes=2)
    assert running.job.attempts == 1


def test_a_job_whose_runner_stopped_mid_attempt_is_lost(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.schedule_job("a", timedelta(0), "h")
    claim = claim_as(scheduler, clock, "dead-1:1")
    started = clock.now()
    assert scheduler.store.apply([storeops.start(claim, started)]) == [True]
    assert info(scheduler).state is JobState.RUNNING
    clock.advance(LEASE)
    lost = info(scheduler)
    assert lost.state is JobState.LOST
    assert lost.claimed_by == "dead-1:1"
    assert lost.claimed_until == started + LEASE
    assert lost.started_at == started


def test_a_job_a_pass_deferred_for_want_of_a_handler_is_deferred(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.registry.register("other", lambda job: None)
    scheduler.schedule_job("a", timedelta(0), "not-registered-here")
    scheduler.run_due_jobs()
    deferred = info(scheduler)
    assert deferred.state is JobState.DEFERRED
    assert deferred.job.last_error is not None
    assert "not-registered-here" in deferred.job.last_error
    clock.advance(timedelta(hours=2))
    assert info(scheduler).state is JobState.DEFERRED  # until a runner with the handler takes it


def test_a_retried_job_is_scheduled_with_its_last_error(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    def fails(job: Job) -> None:
        raise RuntimeError("mail server down")

    scheduler.registry.register("h", fails)
    scheduler.schedule_job("a", timedelta(0), "h")
    scheduler.run_due_jobs()
    retried = info(scheduler)
    assert retried.state is JobState.SCHEDULED
    assert retried.job.last_error is not None
    assert "mail server down" in retried.job.last_error
    assert retried.claimed_by is None


def test_get_job_info_of_a_missing_job_is_none(scheduler: Scheduler) -> None:
    assert scheduler.get_job_info("missing") is None


def test_list_job_infos_lists_what_list_jobs_lists_with_each_state(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.schedule_job("later", timedelta(hours=1), "h")
    scheduler.schedule_job("now-1", timedelta(0), "h")
    scheduler.schedule_job("now-2", timedelta(0), "other")
    assert len(claim_all(scheduler, clock, "web-1:42")) == 2
    for args in [{}, {"due": True}, {"handler": "h"}, {"limit": 2}]:
        infos = list(scheduler.list_job_infos(**args))
        assert [i.job for i in infos] == list(scheduler.list_jobs(**args))
    states = {i.job.job_id: i.state for i in scheduler.list_job_infos()}
    assert states == {
        "now-1": JobState.CLAIMED,
        "now-2": JobState.CLAIMED,
        "later": JobState.SCHEDULED,
    }
