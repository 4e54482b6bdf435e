"""The Simulator: cron's passes in virtual time, skipping empty ticks without changing the log."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jobsched
from jobsched import FakeClock, Job, Mode, Outcome, PermanentError, RealClock, Scheduler
from jobsched.errors import UsageError
from jobsched.handlers import Registry
from jobsched.model import JobResult
from jobsched.testing import SimulationLog, Simulator

START = datetime(2030, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def minutes(n: float) -> datetime:
    return START + timedelta(minutes=n)


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def sim(registry: Registry) -> Simulator:
    return Simulator.in_memory(START, registry=registry)


def record_runs(registry: Registry, name: str = "work") -> list[tuple[str, datetime]]:
    """Register a handler that succeeds and notes (job_id, jobsched.now()) of each run."""
    runs: list[tuple[str, datetime]] = []

    def work(job: Job) -> None:
        runs.append((job.job_id, jobsched.now()))

    registry.register(name, work)
    return runs


# -- set-up ---------------------------------------------------------------------------------------


def test_the_simulator_needs_a_fake_clock() -> None:
    scheduler = Scheduler("memory://", clock=RealClock())
    with pytest.raises(UsageError, match="FakeClock"):
        Simulator(scheduler)


def test_the_tick_must_be_positive() -> None:
    scheduler = Scheduler("memory://", clock=FakeClock(START))
    with pytest.raises(UsageError, match="tick"):
        Simulator(scheduler, tick=timedelta(0))


def test_a_simulated_scheduler_is_not_real_and_runs_its_own_jobs(sim: Simulator) -> None:
    assert sim.scheduler.is_real is False
    assert sim.scheduler.run_jobs_remotely is False


# -- ticks ----------------------------------------------------------------------------------------


def test_a_job_runs_at_the_first_tick_at_or_after_its_start(
    sim: Simulator, registry: Registry
) -> None:
    runs = record_runs(registry)
    sim.scheduler.schedule_job("a", minutes(10.5), "work")
    sim.scheduler.schedule_job("b", minutes(20), "work")

    log = sim.advance(timedelta(hours=1))

    assert runs == [("a", minutes(11)), ("b", minutes(20))]
    assert [(e.at, e.job_id, e.handler, e.attempt, e.outcome) for e in log] == [
        (minutes(11), "a", "work", 1, Outcome.SUCCEEDED),
        (minutes(20), "b", "work", 1, Outcome.SUCCEEDED),
    ]


def test_ticks_fall_on_whole_multiples_of_the_tick_from_the_epoch(registry: Registry) -> None:
    runs = record_runs(registry)
    off_grid = START + timedelta(seconds=17)
    sim = Simulator.in_memory(off_grid, tick=timedelta(minutes=7), registry=registry)
    sim.scheduler.schedule_job("a", off_grid, "work")

    sim.advance(timedelta(minutes=30))

    [(_, when)] = runs
    assert (when - EPOCH) % timedelta(minutes=7) == timedelta(0)
    assert off_grid < when <= off_grid + timedelta(minutes=7)


def test_a_simulation_runs_passes_after_now_up_to_and_including_the_end(
    sim: Simulator, registry: Registry
) -> None:
    runs = record_runs(registry)
    sim.scheduler.schedule_job("due-now", START, "work")
    sim.scheduler.schedule_job("due-at-end", minutes(5), "work")
    sim.scheduler.schedule_job("due-after-end", minutes(6), "work")

    sim.run_until(minutes(5))

    # No pass at the start itself (it is not after now); one at the end.
    assert runs == [("due-now", minutes(1)), ("due-at-end", minutes(5))]
    assert sim.now() == minutes(5)


def test_the_clock_is_left_at_the_end_even_between_ticks(sim: Simulator) -> None:
    log = sim.advance(timedelta(seconds=90))

    assert list(log) == []
    assert sim.now() == START + timedelta(seconds=90)


def test_advance_accepts_seconds(sim: Simulator) -> None:
    sim.advance(120)

    assert sim.now() == minutes(2)


def test_a_simulation_only_moves_forward(sim: Simulator) -> None:
    with pytest.raises(UsageError, match="forward"):
        sim.run_until(minutes(-1))
    with pytest.raises(UsageError, match="forward"):
        sim.advance(timedelta(seconds=-1))


def test_a_simulation_refuses_a_naive_end(sim: Simulator) -> None:
    with pytest.raises(UsageError, match="time zone"):
        sim.run_until(datetime(2030, 1, 2))


def test_empty_ticks_are_skipped_without_running_a_pass(sim: Simulator, registry: Registry) -> None:
    runs = record_runs(registry)
    sim.scheduler.schedule_job("next-year", timedelta(days=365), "work")

    log = sim.run_until(START + timedelta(days=366))

    assert log.passes == 1
    assert runs == [("next-year", START + timedelta(days=365))]


# -- what handlers see ----------------------------------------------------------------------------


def test_handlers_see_virtual_time_and_the_simulated_scheduler_as_current(
    sim: Simulator, registry: Registry
) -> None:
    seen: list[tuple[datetime, datetime, bool]] = []

    def look(job: Job) -> None:
        current = jobsched.get_scheduler()
        seen.append((jobsched.now(), current.now(), current is sim.scheduler))

    registry.register("look", look)
    sim.scheduler.schedule_job("a", timedelta(hours=5), "look")
    before = jobsched.set_scheduler(None)
    jobsched.set_scheduler(before)

    sim.advance(timedelta(days=1))

    assert seen == [(minutes(300), minutes(300), True)]
    after = jobsched.set_scheduler(before)
    assert after is before  # the previous current scheduler is back


def test_jobs_scheduled_by_handlers_run_at_their_own_times(
    sim: Simulator, registry: Registry
) -> None:
    def poll(job: Job) -> bool:
        if job.data["left"] == 0:
            return True
        jobsched.schedule_job(
            job.job_id,
            timedelta(minutes=10),
            "poll",
            {"left": job.data["left"] - 1},
            mode=Mode.RESCHEDULE,
        )
        return False

    def spawn(job: Job) -> None:
        jobsched.schedule_job("child", timedelta(seconds=150), "poll", {"left": 0})

    registry.register("poll", poll)
    registry.register("spawn", spawn)
    sim.scheduler.schedule_job("poller", minutes(1), "poll", {"left": 2})
    sim.scheduler.schedule_job("parent", minutes(3), "spawn")

    log = sim.run_until_idle()

    assert [(e.at, e.job_id, e.outcome) for e in log] == [
        (minutes(1), "poller", Outcome.KEPT),
        (minutes(3), "parent", Outcome.SUCCEEDED),
        (minutes(6), "child", Outcome.SUCCEEDED),  # 3 min + 150 s = 5.5 min: the 6 min tick
        (minutes(11), "poller", Outcome.KEPT),
        (minutes(21), "poller", Outcome.SUCCEEDED),
    ]


def test_a_failing_job_is_retried_an_hour_later_until_max_attempts(
    sim: Simulator, registry: Registry
) -> None:
    def broken(job: Job) -> None:
        raise ConnectionError("down")

    registry.register("broken", broken)
    sim.scheduler.schedule_job("a", minutes(1), "broken", max_attempts=3)

    log = sim.run_until_idle()

    assert [(e.at, e.attempt, e.outcome, e.error) for e in log] == [
        (minutes(1), 1, Outcome.RETRIED, "ConnectionError: down"),
        (minutes(61), 2, Outcome.RETRIED, "ConnectionError: down"),
        (minutes(121), 3, Outcome.FAILED, "ConnectionError: down"),
    ]


# -- run_until_idle -------------------------------------------------------------------------------


def test_run_until_idle_stops_at_the_pass_that_left_no_job(
    sim: Simulator, registry: Registry
) -> None:
    record_runs(registry)
    sim.scheduler.schedule_job("a", timedelta(days=3, seconds=1), "work")

    log = sim.run_until_idle()

    assert log.idle is True
    assert log.outcomes() == [Outcome.SUCCEEDED]
    assert sim.now() == START + timedelta(days=3, minutes=1)


def test_run_until_idle_with_no_jobs_does_nothing(sim: Simulator) -> None:
    log = sim.run_until_idle()

    assert log.idle is True
    assert list(log) == []
    assert sim.now() == START


def test_run_until_idle_at_its_bound_says_so_and_warns(
    sim: Simulator, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    record_runs(registry)
    sim.scheduler.schedule_job("soon", minutes(30), "work")
    sim.scheduler.schedule_job("later", timedelta(days=2), "work")

    with caplog.at_level(logging.WARNING, logger="jobsched"):
        log = sim.run_until_idle(max_time=timedelta(days=1))

    assert log.idle is False
    assert log.outcomes() == [Outcome.SUCCEEDED]
    assert sim.now() == START + timedelta(days=1)
    assert sim.scheduler.job_exists("later")
    assert "1 job(s) left" in caplog.text


def test_run_until_idle_accepts_an_aware_datetime_bound(sim: Simulator, registry: Registry) -> None:
    record_runs(registry)
    sim.scheduler.schedule_job("later", timedelta(days=2), "work")

    log = sim.run_until_idle(max_time=START + timedelta(hours=6))

    assert log.idle is False
    assert sim.now() == START + timedelta(hours=6)


def test_a_job_left_due_is_run_at_every_tick(sim: Simulator, registry: Registry) -> None:
    # KEPT without a new start: the job stays due, and cron takes it again at every pass.
    registry.register("stay", lambda job: False)
    sim.scheduler.schedule_job("a", minutes(1), "stay")

    log = sim.advance(timedelta(minutes=5))

    assert [(e.at, e.outcome) for e in log] == [(minutes(n), Outcome.KEPT) for n in range(1, 6)]


def test_a_job_without_a_handler_is_deferred_an_hour(sim: Simulator, registry: Registry) -> None:
    record_runs(registry)  # the app's other handlers
    sim.scheduler.schedule_job("a", minutes(1), "nobody-handles-this")

    log = sim.advance(timedelta(hours=2))

    assert [(e.at, e.outcome) for e in log] == [
        (minutes(1), Outcome.DEFERRED),
        (minutes(61), Outcome.DEFERRED),
    ]


def test_the_log_can_be_read_per_job(sim: Simulator, registry: Registry) -> None:
    record_runs(registry)
    sim.scheduler.schedule_job("a", minutes(1), "work")
    sim.scheduler.schedule_job("b", minutes(2), "work")

    log = sim.advance(timedelta(minutes=5))

    assert [e.job_id for e in log.for_job("b")] == ["b"]
    assert isinstance(log[:1], SimulationLog)
    assert "a (work) attempt 1: succeeded" in log.format()


# -- every backend --------------------------------------------------------------------------------


def test_a_simulation_gives_the_same_log_on_every_backend(scheduler: Scheduler) -> None:
    def flaky(job: Job) -> None:
        if job.attempts == 1:
            raise RuntimeError("first try fails")

    scheduler.registry.register("flaky", flaky)
    sim = Simulator(scheduler)
    start = sim.now()
    scheduler.schedule_job("a", timedelta(minutes=3), "flaky")
    scheduler.schedule_job("b", timedelta(minutes=90), "flaky", expiry=timedelta(minutes=10))

    log = sim.run_until_idle()

    def at(m: int) -> datetime:
        return sim.tick_after(start) + timedelta(minutes=m - 1)

    assert [(e.at, e.job_id, e.attempt, e.outcome) for e in log] == [
        (at(3), "a", 1, Outcome.RETRIED),
        (at(63), "a", 2, Outcome.SUCCEEDED),
        (at(90), "b", 1, Outcome.RETRIED),
        (at(150), "b", 1, Outcome.EXPIRED),
    ]


# -- skip-ahead equals stepping every tick (hypothesis) -------------------------------------------


def naive_run(scheduler: Scheduler, end: datetime, tick: timedelta, *, until_idle: bool) -> list:
    """Cron by brute force: a pass at every tick after now up to ``end``."""
    clock = scheduler.clock
    assert isinstance(clock, FakeClock)
    results: list[JobResult] = []
    at = EPOCH + ((clock.now() - EPOCH) // tick + 1) * tick
    with jobsched.use_scheduler(scheduler):
        while at <= end:
            if until_idle and scheduler.count_jobs() == 0:
                return results
            clock.set(at)
            results.extend(scheduler.run_due_jobs().results)
            at += tick
    if not (until_idle and scheduler.count_jobs() == 0):
        clock.set(end)
    return results


# One step of a job's plan: what its handler does on its n-th run (runs past the plan succeed).
actions = st.one_of(
    st.just(("ok", 0)),
    st.just(("fail", 0)),
    st.just(("permanent", 0)),
    st.just(("keep", 0)),
    st.tuples(st.just("again"), st.integers(0, 3 * 3600)),  # reschedule itself, return False
    st.tuples(st.just("spawn"), st.integers(0, 3 * 3600)),  # schedule a new job, succeed
)
job_specs = st.lists(
    st.tuples(
        st.integers(-600, 8 * 3600),  # start, seconds from the clock
        st.one_of(st.none(), st.integers(0, 4 * 3600)),  # expiry, seconds after the start
        st.integers(1, 3),  # max_attempts
        st.lists(actions, max_size=4),  # the plan
    ),
    max_size=6,
)


def simulate(
    specs: list[tuple[int, int | None, int, list[tuple[str, int]]]],
    offset: int,
    tick: timedelta,
    end: timedelta,
    *,
    naive: bool,
    until_idle: bool,
) -> tuple[list[JobResult], datetime, list[Job]]:
    registry = Registry()
    clock = FakeClock(START + timedelta(seconds=offset))
    scheduler = Scheduler("memory://", clock=clock, registry=registry)
    runs: dict[str, int] = {}

    def planned(job: Job) -> bool | None:
        n = runs[job.job_id] = runs.get(job.job_id, 0) + 1
        plan = job.data["plan"]
        what, seconds = plan[n - 1] if n <= len(plan) else ("ok", 0)
        if what == "fail":
            raise RuntimeError(f"run {n} failed")
        if what == "permanent":
            raise PermanentError(f"run {n} gave up")
        if what == "keep":
            return False
        if what == "again":
            jobsched.schedule_job(
                job.job_id,
                timedelta(seconds=seconds),
                "planned",
                job.data,
                mode=Mode.RESCHEDULE,
                expiry=job.expiry,
                max_attempts=job.max_attempts,
            )
            return False
        if what == "spawn":
            jobsched.schedule_job(
                f"{job.job_id}/{n}", timedelta(seconds=seconds), "planned", {"plan": []}
            )
        return None

    registry.register("planned", planned)
    now = clock.now()
    for i, (start, expiry, max_attempts, plan) in enumerate(specs):
        begins = now + timedelta(seconds=start)
        scheduler.schedule_job(
            f"job-{i}",
            begins,
            "planned",
            {"plan": plan},
            expiry=None if expiry is None else begins + timedelta(seconds=expiry),
            max_attempts=max_attempts,
        )
    if naive:
        log = naive_run(scheduler, now + end, tick, until_idle=until_idle)
    else:
        sim = Simulator(scheduler, tick=tick)
        log = sim.run_until_idle(now + end) if until_idle else sim.run_until(now + end)
    return list(log), clock.now(), list(scheduler.list_jobs())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=job_specs,
    offset=st.integers(0, 3600),
    tick=st.sampled_from([timedelta(seconds=45), MINUTE, timedelta(minutes=5)]),
    until_idle=st.booleans(),
)
def test_skipping_empty_ticks_gives_the_same_log_as_stepping_every_tick(
    specs: list[tuple[int, int | None, int, list[tuple[str, int]]]],
    offset: int,
    tick: timedelta,
    until_idle: bool,
) -> None:
    end = timedelta(hours=14)
    logging.getLogger("jobsched").disabled = True
    try:
        fast = simulate(specs, offset, tick, end, naive=False, until_idle=until_idle)
        slow = simulate(specs, offset, tick, end, naive=True, until_idle=until_idle)
    finally:
        logging.getLogger("jobsched").disabled = False

    assert fast[0] == slow[0]  # the logs
    assert fast[1] == slow[1]  # where the clock was left
    assert fast[2] == slow[2]  # the jobs left


def test_the_simulator_runs_async_handlers(sim: Simulator, registry: Registry) -> None:
    async def work(job: Job) -> None:
        await asyncio.sleep(0)

    registry.register("async-work", work)
    sim.scheduler.schedule_job("a", minutes(1), "async-work")

    assert sim.advance(timedelta(minutes=2)).outcomes() == [Outcome.SUCCEEDED]
