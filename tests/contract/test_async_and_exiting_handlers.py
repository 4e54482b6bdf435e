"""Handlers that are coroutines, return awaitables or call sys.exit(), and per-handler retry
delays: every kind of handler has the same outcomes as a plain function."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import pytest

from jobsched import FakeClock, InvalidJobError, Job, Outcome, PermanentError, Scheduler
from jobsched.handlers import Registry

HOUR = timedelta(hours=1)


def outcomes(scheduler: Scheduler, **kwargs: Any) -> dict[str, Outcome]:
    return {r.job_id: r.outcome for r in scheduler.run_due_jobs(**kwargs).results}


# -- async def handlers -------------------------------------------------------------------------


def test_an_async_handler_is_awaited_to_completion_before_its_job_is_removed(
    scheduler: Scheduler,
) -> None:
    finished: list[str] = []

    async def handle(job: Job) -> None:
        await asyncio.sleep(0.01)
        finished.append(job.job_id)

    scheduler.registry.register("h", handle)
    scheduler.schedule_job("a", timedelta(0), "h")
    assert outcomes(scheduler) == {"a": Outcome.SUCCEEDED}
    assert finished == ["a"]
    assert not scheduler.job_exists("a")


def test_an_async_handler_returning_false_keeps_its_job(scheduler: Scheduler) -> None:
    async def handle(job: Job) -> bool:
        await asyncio.sleep(0)
        return False

    scheduler.registry.register("h", handle)
    scheduler.schedule_job("a", timedelta(0), "h")
    assert outcomes(scheduler) == {"a": Outcome.KEPT}
    job = scheduler.get_job("a")
    assert job is not None and job.attempts == 1


def test_an_async_handler_that_raises_is_retried(scheduler: Scheduler, clock: FakeClock) -> None:
    async def handle(job: Job) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("async boom")

    scheduler.registry.register("h", handle)
    scheduler.schedule_job("a", timedelta(0), "h")
    assert outcomes(scheduler) == {"a": Outcome.RETRIED}
    job = scheduler.get_job("a")
    assert job is not None and job.last_error == "RuntimeError: async boom"
    assert job.start == clock.now() + HOUR


def test_an_async_handler_raising_permanent_error_fails_at_once(scheduler: Scheduler) -> None:
    async def handle(job: Job) -> None:
        raise PermanentError("gone")

    scheduler.registry.register("h", handle)
    scheduler.schedule_job("a", timedelta(0), "h")
    assert outcomes(scheduler) == {"a": Outcome.FAILED}
    assert not scheduler.job_exists("a")


def test_async_handlers_run_in_handler_threads_too(scheduler: Scheduler) -> None:
    ran: list[str] = []

    async def handle(job: Job) -> None:
        await asyncio.sleep(0.005)
        ran.append(job.job_id)

    scheduler.registry.register("h", handle)
    scheduler.schedule_jobs(
        {"job_id": f"j{i}", "start": timedelta(0), "handler": "h"} for i in range(6)
    )
    report = scheduler.run_due_jobs(concurrency=3)
    assert report.succeeded == 6
    assert sorted(ran) == [f"j{i}" for i in range(6)]


class Later:
    """An awaitable that is not a coroutine."""

    def __init__(self, value: bool | None, seen: list[str]) -> None:
        self.value, self.seen = value, seen

    def __await__(self) -> Generator[Any, None, bool | None]:
        yield from asyncio.sleep(0).__await__()
        self.seen.append("awaited")
        return self.value


@pytest.mark.parametrize(("value", "outcome"), [(None, Outcome.SUCCEEDED), (False, Outcome.KEPT)])
def test_an_awaitable_returned_by_a_plain_handler_is_awaited_for_its_result(
    scheduler: Scheduler, value: bool | None, outcome: Outcome
) -> None:
    seen: list[str] = []
    scheduler.registry.register("h", lambda job: Later(value, seen))
    scheduler.schedule_job("a", timedelta(0), "h")
    assert outcomes(scheduler) == {"a": outcome}
    assert seen == ["awaited"]


def test_an_awaitable_that_cannot_be_awaited_fails_its_attempt_not_succeeds(
    scheduler: Scheduler,
) -> None:
    other_loop = asyncio.new_event_loop()
    try:
        scheduler.registry.register("h", lambda job: other_loop.create_future())
        scheduler.schedule_job("a", timedelta(0), "h")
        assert outcomes(scheduler) == {"a": Outcome.RETRIED}
    finally:
        other_loop.close()
    job = scheduler.get_job("a")
    assert job is not None and job.attempts == 1 and job.last_error


# -- sys.exit() -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text"), [(3, "sys.exit(3)"), ("bye", "sys.exit('bye')"), (None, "sys.exit()")]
)
def test_a_handler_calling_sys_exit_fails_its_attempt_and_the_pass_goes_on(
    scheduler: Scheduler, code: object, text: str
) -> None:
    def leave(job: Job) -> None:
        raise SystemExit(code)

    scheduler.registry.register("leave", leave)
    scheduler.registry.register("ok", lambda job: None)
    scheduler.schedule_job("1-leaves", timedelta(minutes=-1), "leave")
    scheduler.schedule_job("2-ok", timedelta(0), "ok")
    assert outcomes(scheduler) == {"1-leaves": Outcome.RETRIED, "2-ok": Outcome.SUCCEEDED}
    job = scheduler.get_job("1-leaves")
    assert job is not None and job.last_error == f"the handler called {text}"


def test_a_handler_calling_sys_exit_in_a_handler_thread_fails_its_attempt(
    scheduler: Scheduler,
) -> None:
    scheduler.registry.register("leave", lambda job: exec("raise SystemExit(4)"))
    scheduler.schedule_job("a", timedelta(0), "leave", max_attempts=1)
    assert outcomes(scheduler, concurrency=2) == {"a": Outcome.FAILED}


# -- per-handler retry delay --------------------------------------------------------------------


def test_a_handler_retry_delay_sets_when_its_failed_jobs_run_again(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    def fail(job: Job) -> None:
        raise RuntimeError("not yet")

    scheduler.registry.register("h", fail, retry_delay=timedelta(minutes=5))
    scheduler.schedule_job("a", timedelta(0), "h")
    assert outcomes(scheduler) == {"a": Outcome.RETRIED}
    job = scheduler.get_job("a")
    assert job is not None and job.start == clock.now() + timedelta(minutes=5)
    clock.advance(timedelta(minutes=5))
    assert outcomes(scheduler) == {"a": Outcome.RETRIED}


def test_the_default_retry_delay_is_one_hour(registry: Registry) -> None:
    assert registry.register("h", lambda job: None).retry_delay == HOUR


@pytest.mark.parametrize(
    ("given", "expected"), [(0, timedelta(0)), (30, timedelta(seconds=30)), (HOUR * 2, HOUR * 2)]
)
def test_a_retry_delay_is_seconds_or_a_timedelta(
    registry: Registry, given: float | timedelta, expected: timedelta
) -> None:
    assert registry.register("h", lambda job: None, retry_delay=given).retry_delay == expected


@pytest.mark.parametrize(
    "bad", [-1, timedelta(seconds=-1), float("nan"), float("inf"), True, "5m", 1e300]
)
def test_a_bad_retry_delay_is_refused(registry: Registry, bad: object) -> None:
    with pytest.raises(InvalidJobError) as info:
        registry.register("h", lambda job: None, retry_delay=bad)  # type: ignore[arg-type]
    assert info.value.field == "retry_delay"
    assert registry.get("h") is None
