"""One pass of run-due: outcomes, retry timing, expiry, unknown handlers, order, limit, report."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest

from contract.passes import PassInThread
from jobsched import (
    FakeClock,
    Job,
    JobResult,
    Mode,
    Outcome,
    PermanentError,
    RunReport,
    Scheduler,
)
from jobsched.errors import NoHandlersError, UsageError
from jobsched.rules import MAX_ERROR_BYTES

HOUR = timedelta(hours=1)


class Calls:
    """A handler that records the jobs it saw and returns (or raises) what it is told."""

    def __init__(self, result: bool | BaseException | None = None) -> None:
        self.result = result
        self.jobs: list[Job] = []

    def __call__(self, job: Job) -> bool | None:
        self.jobs.append(job)
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result

    @property
    def ids(self) -> list[str]:
        return [job.job_id for job in self.jobs]


def outcomes(report: RunReport) -> dict[str, Outcome]:
    return {r.job_id: r.outcome for r in report.results}


# -- success, keep, reschedule --------------------------------------------------------------------


@pytest.mark.parametrize("result", [None, True])
def test_a_handler_that_returns_none_or_true_removes_its_job(
    scheduler: Scheduler, result: bool | None
) -> None:
    handler = Calls(result)
    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h", {"x": 1})
    report = scheduler.run_due_jobs()
    assert (report.ran, report.succeeded) == (1, 1)
    assert handler.ids == ["a"]
    assert not scheduler.job_exists("a")


def test_the_handler_sees_the_job_with_its_attempt_counted(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    handler = Calls()
    scheduler.registry.register("h", handler)
    scheduled = scheduler.schedule_job("a", timedelta(0), "h", {"x": [1, "😀"]}, max_attempts=4)
    scheduler.run_due_jobs()
    [seen] = handler.jobs
    assert seen.data == {"x": [1, "😀"]}
    assert seen.attempts == 1
    assert (seen.start, seen.max_attempts, seen.created_at) == (
        scheduled.start,
        4,
        scheduled.created_at,
    )


def test_a_job_not_yet_due_is_not_run(scheduler: Scheduler, clock: FakeClock) -> None:
    handler = Calls()
    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(microseconds=1), "h")
    report = scheduler.run_due_jobs()
    assert report.ran == 0 and report.results == []
    assert handler.ids == []
    clock.advance(timedelta(microseconds=1))
    assert scheduler.run_due_jobs().succeeded == 1


def test_an_empty_pass_reports_nothing(scheduler: Scheduler) -> None:
    scheduler.registry.register("h", Calls())
    report = scheduler.run_due_jobs()
    assert report.results == []
    assert report.ran == report.succeeded == report.failed == report.taken == 0


def test_false_keeps_the_job_and_it_is_not_run_again_in_the_same_pass(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    handler = Calls(False)
    scheduler.registry.register("h", handler)
    scheduled = scheduler.schedule_job("a", timedelta(hours=-2), "h", {"v": 1})
    report = scheduler.run_due_jobs()
    assert (report.ran, report.kept) == (1, 1)
    assert handler.ids == ["a"]
    kept = scheduler.get_job("a")
    assert kept is not None
    assert (kept.start, kept.data, kept.attempts) == (scheduled.start, {"v": 1}, 1)
    assert scheduler.run_due_jobs().kept == 1  # due still: the next pass runs it again
    assert handler.ids == ["a", "a"]


def test_a_handler_rescheduling_itself_sets_its_next_run(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    def again(job: Job) -> bool:
        n = job.data["n"]
        scheduler.schedule_job(job.job_id, HOUR, job.handler, {"n": n + 1}, mode=Mode.RESCHEDULE)
        return False

    scheduler.registry.register("tick", again)
    scheduler.schedule_job("a", timedelta(0), "tick", {"n": 1})
    assert scheduler.run_due_jobs().kept == 1
    job = scheduler.get_job("a")
    assert job is not None
    assert (job.start, job.data, job.attempts) == (clock.now() + HOUR, {"n": 2}, 0)
    clock.advance(HOUR)
    scheduler.run_due_jobs()
    job = scheduler.get_job("a")
    assert job is not None and job.data == {"n": 3}


@pytest.mark.parametrize("result", [None, True, False])
def test_a_self_rescheduled_job_survives_whatever_its_handler_returns(
    scheduler: Scheduler, clock: FakeClock, result: bool | None
) -> None:
    def again(job: Job) -> bool | None:
        scheduler.schedule_job(job.job_id, HOUR, job.handler, "next", mode=Mode.RESCHEDULE)
        return result

    scheduler.registry.register("tick", again)
    scheduler.schedule_job("a", timedelta(0), "tick", "first")
    scheduler.run_due_jobs()
    job = scheduler.get_job("a")
    assert job is not None and (job.data, job.start) == ("next", clock.now() + HOUR)


def test_a_self_rescheduled_job_survives_its_handler_raising(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    def again(job: Job) -> None:
        scheduler.schedule_job(job.job_id, HOUR * 5, job.handler, "next", mode=Mode.RESCHEDULE)
        raise ValueError("after rescheduling")

    scheduler.registry.register("tick", again)
    scheduler.schedule_job("a", timedelta(0), "tick", "first")
    scheduler.run_due_jobs()
    job = scheduler.get_job("a")
    assert job is not None
    assert (job.data, job.start, job.attempts, job.last_error) == (
        "next",
        clock.now() + HOUR * 5,
        0,
        None,
    )


def test_jobs_that_reschedule_themselves_due_now_run_once_per_pass(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    handler_calls: list[str] = []

    def again(job: Job) -> None:
        handler_calls.append(job.job_id)
        scheduler.schedule_job(job.job_id, timedelta(0), job.handler, mode=Mode.RESCHEDULE)

    scheduler.registry.register("again", again)
    ids = [f"j{i:02}" for i in range(60)]  # more than one claim batch
    for job_id in ids:
        scheduler.schedule_job(job_id, timedelta(hours=-1), "again")
    report = scheduler.run_due_jobs()
    assert sorted(handler_calls) == ids
    assert report.ran == 60
    assert all(scheduler.job_exists(job_id) for job_id in ids)


# -- failures and retries -------------------------------------------------------------------------


def test_a_raising_handler_is_retried_one_hour_after_now_not_after_its_start(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.registry.register("h", Calls(ValueError("boom")))
    scheduler.schedule_job("a", timedelta(hours=-3), "h")
    clock.advance(timedelta(seconds=17, microseconds=5))
    report = scheduler.run_due_jobs()
    assert (report.ran, report.retried) == (1, 1)
    job = scheduler.get_job("a")
    assert job is not None
    assert job.start == clock.now() + HOUR
    assert job.attempts == 1
    assert job.last_error == "ValueError: boom"


def test_a_retry_is_due_exactly_one_hour_later(scheduler: Scheduler, clock: FakeClock) -> None:
    handler = Calls(ValueError("boom"))
    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h")
    scheduler.run_due_jobs()
    clock.advance(HOUR - timedelta(microseconds=1))
    assert scheduler.run_due_jobs().ran == 0
    clock.advance(timedelta(microseconds=1))
    assert scheduler.run_due_jobs().ran == 1
    assert [j.attempts for j in handler.jobs] == [1, 2]


def test_a_job_fails_and_is_removed_after_max_attempts(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    handler = Calls(ValueError("boom"))
    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h", max_attempts=3)
    seen: list[tuple[Outcome, int]] = []
    for _ in range(3):
        [result] = scheduler.run_due_jobs().results
        seen.append((result.outcome, result.attempt))
        clock.advance(HOUR)
    assert seen == [(Outcome.RETRIED, 1), (Outcome.RETRIED, 2), (Outcome.FAILED, 3)]
    assert not scheduler.job_exists("a")
    assert len(handler.jobs) == 3
    assert scheduler.run_due_jobs().results == []


def test_max_attempts_one_fails_on_the_first_error(scheduler: Scheduler) -> None:
    scheduler.registry.register("h", Calls(ValueError("boom")))
    scheduler.schedule_job("a", timedelta(0), "h", max_attempts=1)
    report = scheduler.run_due_jobs()
    assert (report.failed, report.retried) == (1, 0)
    assert report.results[0].error == "ValueError: boom"
    assert not scheduler.job_exists("a")


def test_permanent_error_fails_at_once(scheduler: Scheduler) -> None:
    scheduler.registry.register("h", Calls(PermanentError("card declined")))
    scheduler.schedule_job("a", timedelta(0), "h", max_attempts=5)
    report = scheduler.run_due_jobs()
    assert (report.ran, report.failed, report.retried) == (1, 1, 0)
    assert report.results[0].error is not None and "card declined" in report.results[0].error
    assert not scheduler.job_exists("a")


def test_a_long_error_is_cut_byte_safely(scheduler: Scheduler) -> None:
    scheduler.registry.register("h", Calls(ValueError("😀" * 5000)))
    scheduler.schedule_job("a", timedelta(0), "h")
    scheduler.run_due_jobs()
    job = scheduler.get_job("a")
    assert job is not None and job.last_error is not None
    assert job.last_error.startswith("ValueError: 😀😀")
    assert len(job.last_error.encode("utf-8")) <= MAX_ERROR_BYTES
    assert "\ufffd" not in job.last_error


# -- expiry ---------------------------------------------------------------------------------------


def test_an_expired_job_is_removed_without_running(scheduler: Scheduler, clock: FakeClock) -> None:
    handler = Calls()
    scheduler.registry.register("h", handler)
    expiry = timedelta(hours=2, microseconds=-1)  # counts from the start: 1 µs before now
    scheduler.schedule_job("a", timedelta(hours=-2), "h", expiry=expiry)
    report = scheduler.run_due_jobs()
    assert (report.expired, report.ran) == (1, 0)
    assert handler.ids == []
    assert not scheduler.job_exists("a")


def test_a_job_runs_at_the_instant_of_its_expiry(scheduler: Scheduler, clock: FakeClock) -> None:
    scheduler.registry.register("h", Calls())
    scheduler.schedule_job("a", timedelta(hours=-1), "h", expiry=timedelta(hours=1))
    assert scheduler.run_due_jobs().succeeded == 1


def test_expiry_also_holds_for_retries(scheduler: Scheduler, clock: FakeClock) -> None:
    handler = Calls(ValueError("boom"))
    scheduler.registry.register("h", handler)
    scheduler.schedule_job("a", timedelta(0), "h", expiry=timedelta(minutes=30))
    assert scheduler.run_due_jobs().retried == 1
    clock.advance(HOUR)
    report = scheduler.run_due_jobs()
    assert (report.expired, report.ran) == (1, 0)
    assert len(handler.jobs) == 1
    assert not scheduler.job_exists("a")


# -- unknown handlers -----------------------------------------------------------------------------


@pytest.fixture
def deployed(scheduler: Scheduler) -> Calls:
    """The handler that is registered, beside the job handlers that are not."""
    handler = Calls()
    scheduler.registry.register("deployed", handler)
    return handler


def test_a_job_without_a_registered_handler_is_deferred_without_spending_an_attempt(
    scheduler: Scheduler, clock: FakeClock, caplog: pytest.LogCaptureFixture, deployed: Calls
) -> None:
    scheduler.schedule_job("a", timedelta(hours=-5), "not_deployed", {"x": 1})
    with caplog.at_level(logging.WARNING, logger="jobsched"):
        report = scheduler.run_due_jobs()
    assert (report.deferred, report.ran) == (1, 0)
    assert "not_deployed" in caplog.text
    job = scheduler.get_job("a")
    assert job is not None
    assert (job.start, job.attempts, job.data) == (clock.now() + HOUR, 0, {"x": 1})
    assert job.last_error is not None and "not_deployed" in job.last_error
    assert report.results[0].error is not None and "not_deployed" in report.results[0].error


def test_a_deferred_job_runs_once_its_handler_is_registered(
    scheduler: Scheduler, clock: FakeClock, deployed: Calls
) -> None:
    scheduler.schedule_job("a", timedelta(0), "late")
    scheduler.run_due_jobs()
    handler = Calls()
    scheduler.registry.register("late", handler)
    assert scheduler.run_due_jobs().ran == 0  # put off by the retry delay
    clock.advance(HOUR)
    report = scheduler.run_due_jobs()
    assert report.succeeded == 1
    assert [j.attempts for j in handler.jobs] == [1]
    assert not scheduler.job_exists("a")


def test_a_deferred_job_is_deferred_again_while_its_handler_is_missing(
    scheduler: Scheduler, clock: FakeClock, deployed: Calls
) -> None:
    scheduler.schedule_job("a", timedelta(0), "missing", max_attempts=1)
    for _ in range(4):
        assert scheduler.run_due_jobs().deferred == 1
        clock.advance(HOUR)
    job = scheduler.get_job("a")
    assert job is not None and job.attempts == 0


def test_a_deferred_job_still_expires(
    scheduler: Scheduler, clock: FakeClock, deployed: Calls
) -> None:
    scheduler.schedule_job("a", timedelta(0), "missing", expiry=timedelta(minutes=10))
    assert scheduler.run_due_jobs().deferred == 1
    clock.advance(HOUR)
    assert scheduler.run_due_jobs().expired == 1
    assert not scheduler.job_exists("a")


def test_a_pass_with_no_handler_registered_is_refused_before_it_takes_anything(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.schedule_job("a", timedelta(0), "h")
    with pytest.raises(NoHandlersError, match="no handlers registered: pass --app"):
        scheduler.run_due_jobs()
    clock.advance(timedelta(seconds=1))
    scheduler.registry.register("h", Calls())
    assert outcomes(scheduler.run_due_jobs()) == {"a": Outcome.SUCCEEDED}  # it was not claimed


def test_a_pass_for_some_handlers_takes_only_their_jobs_and_leaves_the_rest_untouched(
    scheduler: Scheduler, deployed: Calls
) -> None:
    mine = Calls()
    scheduler.registry.register("mine", mine)
    scheduler.schedule_job("1-other-app", timedelta(minutes=-3), "other_apps_handler")
    scheduler.schedule_job("2-deployed", timedelta(minutes=-2), "deployed")
    scheduler.schedule_job("3-mine", timedelta(minutes=-1), "mine")
    report = scheduler.run_due_jobs(handlers=["mine"])
    assert outcomes(report) == {"3-mine": Outcome.SUCCEEDED}
    assert deployed.ids == [] and mine.ids == ["3-mine"]
    other = scheduler.get_job("1-other-app")
    assert other is not None and other.last_error is None  # not deferred
    assert outcomes(scheduler.run_due_jobs(handlers=["deployed", "mine"])) == {
        "2-deployed": Outcome.SUCCEEDED
    }


def test_a_pass_for_a_handler_nobody_registered_is_refused(
    scheduler: Scheduler, deployed: Calls
) -> None:
    scheduler.schedule_job("a", timedelta(0), "deployed")
    with pytest.raises(UsageError, match="'typo'"):
        scheduler.run_due_jobs(handlers=["deployed", "typo"])
    with pytest.raises(UsageError):
        scheduler.run_due_jobs(handlers=[])
    assert scheduler.run_due_jobs(handlers=["deployed"]).succeeded == 1


# -- order, limit and report ----------------------------------------------------------------------


def test_jobs_run_oldest_first_by_start_then_id(scheduler: Scheduler, clock: FakeClock) -> None:
    handler = Calls()
    scheduler.registry.register("h", handler)
    for job_id, minutes_ago in [("c", 1), ("b", 5), ("a ", 5), ("z", 9), ("a", 5), ("A", 5)]:
        scheduler.schedule_job(job_id, timedelta(minutes=-minutes_ago), "h")
    scheduler.run_due_jobs()
    assert handler.ids == ["z", "A", "a", "a ", "b", "c"]


def test_limit_takes_the_oldest_jobs(scheduler: Scheduler) -> None:
    handler = Calls()
    scheduler.registry.register("h", handler)
    for i in range(5):
        scheduler.schedule_job(f"j{i}", timedelta(minutes=i - 10), "h")
    report = scheduler.run_due_jobs(limit=2)
    assert handler.ids == ["j0", "j1"]
    assert report.succeeded == 2
    assert [j.job_id for j in scheduler.list_jobs()] == ["j2", "j3", "j4"]


def test_limit_counts_expired_and_deferred_jobs_too(scheduler: Scheduler) -> None:
    handler = Calls()
    scheduler.registry.register("h", handler)
    scheduler.schedule_job("1-expired", timedelta(minutes=-5), "h", expiry=timedelta(minutes=4))
    scheduler.schedule_job("2-deferred", timedelta(minutes=-4), "missing")
    scheduler.schedule_job("3-run", timedelta(minutes=-3), "h")
    scheduler.schedule_job("4-left", timedelta(minutes=-2), "h")
    report = scheduler.run_due_jobs(limit=3)
    assert (report.expired, report.deferred, report.succeeded) == (1, 1, 1)
    assert handler.ids == ["3-run"]
    assert scheduler.job_exists("4-left")


def test_a_pass_over_more_jobs_than_one_claim_batch_runs_each_once(
    scheduler: Scheduler,
) -> None:
    handler = Calls()
    scheduler.registry.register("h", handler)
    scheduler.schedule_jobs(
        {"job_id": f"j{i:03}", "start": timedelta(seconds=-(i % 7)), "handler": "h"}
        for i in range(120)
    )
    report = scheduler.run_due_jobs()
    assert report.succeeded == 120
    assert sorted(handler.ids) == [f"j{i:03}" for i in range(120)]


def test_limit_must_be_positive(scheduler: Scheduler) -> None:
    with pytest.raises(UsageError):
        scheduler.run_due_jobs(limit=0)


def test_the_report_counts_every_outcome_and_lists_each_job(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.registry.register("ok", Calls())
    scheduler.registry.register("keep", Calls(False))
    scheduler.registry.register("flaky", Calls(ValueError("try again")))
    scheduler.registry.register("fatal", Calls(PermanentError("no way")))
    scheduler.schedule_job("1", timedelta(minutes=-6), "ok")
    scheduler.schedule_job("2", timedelta(minutes=-5), "keep")
    scheduler.schedule_job("3", timedelta(minutes=-4), "flaky")
    scheduler.schedule_job("4", timedelta(minutes=-3), "fatal")
    scheduler.schedule_job("5", timedelta(minutes=-2), "ok", expiry=timedelta(minutes=1))
    scheduler.schedule_job("6", timedelta(minutes=-1), "missing")
    report = scheduler.run_due_jobs()
    counts = {o.value: getattr(report, o.value) for o in Outcome}
    assert counts == {
        "succeeded": 1,
        "kept": 1,
        "retried": 1,
        "failed": 1,
        "expired": 1,
        "deferred": 1,
        "lost": 0,
        "released": 0,
    }
    assert report.ran == 4
    now = clock.now()
    results = [(r.job_id, r.handler, r.attempt, r.outcome) for r in report.results]
    assert results == [
        ("1", "ok", 1, Outcome.SUCCEEDED),
        ("2", "keep", 1, Outcome.KEPT),
        ("3", "flaky", 1, Outcome.RETRIED),
        ("4", "fatal", 1, Outcome.FAILED),
        ("5", "ok", 0, Outcome.EXPIRED),
        ("6", "missing", 0, Outcome.DEFERRED),
    ]
    assert all(isinstance(r, JobResult) and r.at == now for r in report.results)
    errors = {r.job_id: r.error for r in report.results}
    assert errors["1"] is None and errors["2"] is None and errors["5"] is None
    assert errors["3"] == "ValueError: try again"
    assert errors["4"] is not None and "no way" in errors["4"]
    assert errors["6"] is not None and "missing" in errors["6"]


def test_a_handler_error_does_not_stop_the_pass(scheduler: Scheduler) -> None:
    ok = Calls()
    scheduler.registry.register("ok", ok)
    scheduler.registry.register("bad", Calls(RuntimeError("x")))
    scheduler.schedule_job("1", timedelta(minutes=-2), "bad")
    scheduler.schedule_job("2", timedelta(minutes=-1), "ok")
    report = scheduler.run_due_jobs()
    assert (report.retried, report.succeeded) == (1, 1)
    assert ok.ids == ["2"]


# -- a running handler blocks nothing -------------------------------------------------------------


def test_a_running_handler_does_not_block_schedule_job_or_get_job(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(job: Job) -> None:
        started.set()
        assert release.wait(30)

    scheduler.registry.register("slow", slow)
    scheduler.schedule_job("running", timedelta(0), "slow", {"v": 1})
    run = PassInThread(scheduler)
    try:
        assert started.wait(30)
        running = scheduler.get_job("running")
        assert running is not None and running.data == {"v": 1}
        assert scheduler.job_exists("running")
        other = scheduler.schedule_job("other", HOUR, "slow", "x")
        assert scheduler.get_job("other") == other
        same = scheduler.schedule_job("running", HOUR, "slow", {"v": 1}, mode=Mode.IGNORE_IF_EXISTS)
        assert same.data == {"v": 1}
        assert len(list(scheduler.list_jobs())) == 2
    finally:
        release.set()
    assert run.join().succeeded == 1
    assert not scheduler.job_exists("running")
    assert scheduler.job_exists("other")


def test_expiry_is_judged_when_a_job_would_start_not_when_its_batch_was_claimed(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    def slow(job: Job) -> None:
        clock.advance(timedelta(hours=2))  # a long handler: time moves on during the batch

    ran: list[str] = []
    scheduler.registry.register("slow", slow)
    scheduler.registry.register("h", lambda job: ran.append(job.job_id))
    start = clock.now()
    scheduler.schedule_job("1-slow", timedelta(minutes=-1), "slow")
    scheduler.schedule_job("2-expires-in-1h", timedelta(0), "h", expiry=timedelta(hours=1))
    report = scheduler.run_due_jobs()
    assert ran == []  # claimed in the same batch, but its expiry had passed when it would start
    assert outcomes(report) == {"1-slow": Outcome.SUCCEEDED, "2-expires-in-1h": Outcome.EXPIRED}
    assert [r.at for r in report.results] == [start, start + timedelta(hours=2)]
    assert not scheduler.job_exists("2-expires-in-1h")


def test_a_failed_attempt_is_retried_one_hour_after_it_failed_not_after_its_claim(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    def slow_failure(job: Job) -> None:
        clock.advance(timedelta(minutes=10))
        raise ValueError("after ten minutes")

    scheduler.registry.register("h", slow_failure)
    scheduler.schedule_job("a", timedelta(0), "h")
    claimed = clock.now()
    assert scheduler.run_due_jobs().retried == 1
    job = scheduler.get_job("a")
    assert job is not None and job.start == claimed + timedelta(minutes=10) + HOUR


def test_a_handler_never_starts_on_a_claim_that_may_run_out_before_it_could(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    def slow(job: Job) -> None:
        clock.advance(timedelta(minutes=3, seconds=30))  # past two thirds of the 5-minute claim

    later = Calls()
    scheduler.registry.register("slow", slow)
    scheduler.registry.register("h", later)
    scheduler.schedule_job("1-slow", timedelta(minutes=-1), "slow")
    scheduler.schedule_job("2-later", timedelta(0), "h")
    report = scheduler.run_due_jobs()
    assert outcomes(report) == {"1-slow": Outcome.SUCCEEDED, "2-later": Outcome.RELEASED}
    assert later.jobs == []
    job = scheduler.get_job("2-later")
    assert job is not None and job.attempts == 0  # given back: no attempt spent
    assert outcomes(scheduler.run_due_jobs()) == {"2-later": Outcome.SUCCEEDED}


def test_a_pass_takes_the_jobs_due_when_it_began_and_leaves_later_ones_to_the_next(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    def chain(job: Job) -> None:
        clock.advance(timedelta(seconds=1))
        # Due at once, which is after this pass began: the next pass runs it.
        scheduler.schedule_job(f"after-{job.job_id}", timedelta(0), "h")

    later = Calls()
    scheduler.registry.register("chain", chain)
    scheduler.registry.register("h", later)
    scheduler.schedule_job("first", timedelta(seconds=-5), "chain")
    scheduler.schedule_job("second", timedelta(seconds=-4), "chain")
    assert outcomes(scheduler.run_due_jobs()) == {
        "first": Outcome.SUCCEEDED,
        "second": Outcome.SUCCEEDED,
    }
    assert later.ids == []
    assert outcomes(scheduler.run_due_jobs()) == {
        "after-first": Outcome.SUCCEEDED,
        "after-second": Outcome.SUCCEEDED,
    }
