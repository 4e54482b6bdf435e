"""``Scheduler.stats`` and ``backlog`` on a known set of jobs and runs."""

from __future__ import annotations

from datetime import timedelta

import storeops

from jobsched import FakeClock, Job, PermanentError, Scheduler

HOUR = timedelta(hours=1)


def known_set(scheduler: Scheduler, clock: FakeClock) -> None:
    """Handler "a": 2 runs in the last hour (1 s and 3 s), 2 jobs to come, 1 due for 10
    minutes, 1 running. Handler "b": a failure 2 hours ago. Handler "ghost" (registered
    nowhere): 1 job deferred half an hour ago."""

    def takes(job: Job) -> None:
        clock.advance(timedelta(seconds=job.data))

    def fails(job: Job) -> None:
        raise PermanentError("no")

    scheduler.registry.register("a", takes)
    scheduler.registry.register("b", fails)
    scheduler.schedule_job("b-1", timedelta(0), "b")
    scheduler.run_due_jobs()
    clock.advance(90 * timedelta(minutes=1))
    scheduler.schedule_job("a-1", timedelta(0), "a", 1)
    scheduler.schedule_job("a-2", timedelta(0), "a", 3)
    scheduler.schedule_job("ghost-1", timedelta(0), "ghost")
    scheduler.run_due_jobs()
    clock.advance(timedelta(minutes=30))
    scheduler.schedule_job("a-run", timedelta(0), "a", 0)
    [claim] = storeops.claim(scheduler.store, clock.now(), limit=1)
    assert scheduler.store.apply([storeops.start(claim, clock.now())]) == [True]
    scheduler.schedule_job("a-late", clock.now() - timedelta(minutes=10), "a", 0)
    scheduler.schedule_job("a-next-1", HOUR, "a", 0)
    scheduler.schedule_job("a-next-2", 2 * HOUR, "a", 0)


def test_stats_count_jobs_runs_and_run_times_per_handler(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    known_set(scheduler, clock)
    stats = scheduler.stats()
    by_name = {h.handler: h for h in stats.handlers}
    assert sorted(by_name) == ["a", "b", "ghost"]
    a, b, ghost = by_name["a"], by_name["b"], by_name["ghost"]
    assert (a.scheduled, a.due, a.running, a.deferred) == (2, 1, 1, 0)
    assert a.lateness == timedelta(minutes=10)
    assert a.last_hour == {"succeeded": 2} == a.last_day
    assert (a.p50, a.p95) == (timedelta(seconds=1), timedelta(seconds=3))
    assert (b.scheduled, b.due, b.running, b.deferred, b.lateness) == (0, 0, 0, 0, None)
    assert (b.last_hour, b.last_day) == ({}, {"failed": 1})
    assert (b.p50, b.p95) == (None, None)
    assert (ghost.scheduled, ghost.due, ghost.deferred) == (0, 0, 1)
    assert ghost.last_hour == {"deferred": 1}
    assert stats.lateness == timedelta(minutes=10)
    assert stats.due == 1


def test_a_deferred_job_due_again_still_counts_as_deferred(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.registry.register("a", lambda job: None)
    scheduler.schedule_job("ghost-1", timedelta(0), "ghost")
    scheduler.run_due_jobs()
    clock.advance(2 * HOUR)
    [ghost] = scheduler.stats().handlers
    assert (ghost.handler, ghost.scheduled, ghost.due, ghost.deferred) == ("ghost", 0, 0, 1)


def test_stats_of_an_empty_database(scheduler: Scheduler) -> None:
    stats = scheduler.stats()
    assert (stats.handlers, stats.lateness, stats.due) == ([], None, 0)


def test_the_backlog_counts_due_jobs_no_runner_holds(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.schedule_job("held", timedelta(0), "h")
    storeops.claim(scheduler.store, clock.now(), limit=1)
    scheduler.schedule_job("late", clock.now() - timedelta(minutes=5), "h")
    scheduler.schedule_job("due", timedelta(0), "h")
    scheduler.schedule_job("later", HOUR, "h")
    assert scheduler.backlog() == (2, clock.now() - timedelta(minutes=5))


def test_run_times_leave_lost_attempts_out(scheduler: Scheduler, clock: FakeClock) -> None:
    def takes(job: Job) -> None:
        clock.advance(timedelta(seconds=1))

    scheduler.registry.register("a", takes, timeout=timedelta(minutes=1))
    scheduler.schedule_job("a-1", timedelta(0), "a")
    [claim] = storeops.claim(scheduler.store, clock.now(), runner="dead-1:1")
    assert scheduler.store.apply([storeops.start(claim, clock.now())]) == [True]
    clock.advance(timedelta(minutes=2))
    scheduler.run_due_jobs()
    [a] = scheduler.stats().handlers
    assert a.last_hour == {"lost": 1, "succeeded": 1}
    assert (a.p50, a.p95) == (timedelta(seconds=1), timedelta(seconds=1))
