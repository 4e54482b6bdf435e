"""Handler registration: replacing with a warning, timeouts as claim lengths, the decorator."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import jobsched
from contract.passes import wait_until_started
from jobsched import FakeClock, InvalidJobError, Job, Outcome, RunReport, Scheduler
from jobsched.handlers import DEFAULT_TIMEOUT, Registry
from jobsched.handlers import registry as global_registry


def first(job: Job) -> None:
    raise AssertionError("the replaced handler ran")


def test_registering_a_name_again_replaces_it_with_a_warning(
    scheduler: Scheduler, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []
    scheduler.registry.register("h", first)
    with caplog.at_level(logging.WARNING, logger="jobsched"):
        scheduler.registry.register("h", lambda job: ran.append(job.job_id))
    assert "'h'" in caplog.text and "again" in caplog.text
    scheduler.schedule_job("a", timedelta(0), "h")
    assert scheduler.run_due_jobs().succeeded == 1
    assert ran == ["a"]


def test_the_default_timeout_is_five_minutes(registry: Registry) -> None:
    assert timedelta(minutes=5) == DEFAULT_TIMEOUT
    assert registry.register("h", first).timeout == timedelta(minutes=5)
    assert registry.timeout_for("unknown") == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("given", "expected"),
    [(90, timedelta(seconds=90)), (0.5, timedelta(seconds=0.5)), (timedelta(hours=3), None)],
)
def test_a_timeout_is_seconds_or_a_timedelta(
    registry: Registry, given: float | timedelta, expected: timedelta | None
) -> None:
    handler = registry.register("h", first, timeout=given)
    assert handler.timeout == (expected or given)


@pytest.mark.parametrize("bad", [0, -1, timedelta(0), timedelta(seconds=-5), True, "60"])
def test_a_bad_timeout_is_refused(registry: Registry, bad: object) -> None:
    with pytest.raises(InvalidJobError) as info:
        registry.register("h", first, timeout=bad)  # type: ignore[arg-type]
    assert info.value.field == "timeout"
    assert registry.get("h") is None


@pytest.mark.parametrize("bad", ["", None, 5])
def test_a_handler_name_must_be_a_non_empty_string(registry: Registry, bad: object) -> None:
    with pytest.raises(InvalidJobError):
        registry.register(bad, first)  # type: ignore[arg-type]


def second_pass_while_first_runs(
    scheduler: Scheduler, clock: FakeClock, timeout: timedelta | None, after: timedelta
) -> tuple[RunReport, int]:
    """Start a pass whose handler (with ``timeout``) blocks; ``after`` later, run a second pass.

    Returns the second pass's report and how often the handler started in all.
    """
    started, release = threading.Event(), threading.Event()
    calls: list[Job] = []

    def slow(job: Job) -> None:
        calls.append(job)
        if len(calls) == 1:
            started.set()
            assert release.wait(30)

    scheduler.registry.register("slow", slow, timeout=timeout)
    scheduler.schedule_job("a", timedelta(0), "slow")
    first_pass = threading.Thread(target=scheduler.run_due_jobs, daemon=True)
    first_pass.start()
    try:
        assert started.wait(30)
        wait_until_started(scheduler, "a")
        clock.advance(after)
        second = scheduler.run_due_jobs()
    finally:
        release.set()
        first_pass.join(30)
    assert not first_pass.is_alive()
    return second, len(calls)


@pytest.mark.parametrize("timeout", [timedelta(seconds=30), timedelta(hours=2)])
def test_a_handler_timeout_is_the_length_of_its_claim(
    scheduler: Scheduler, clock: FakeClock, timeout: timedelta
) -> None:
    tiny = timedelta(microseconds=1)
    before, calls = second_pass_while_first_runs(scheduler, clock, timeout, timeout - tiny)
    assert before.results == [] and calls == 1
    assert not scheduler.job_exists("a")  # the first pass finished it

    after, calls = second_pass_while_first_runs(scheduler, clock, timeout, timeout)
    assert [r.outcome for r in after.results] == [Outcome.LOST, Outcome.SUCCEEDED]
    assert calls == 2


def test_a_handler_without_a_timeout_holds_its_job_five_minutes(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    five = timedelta(minutes=5)
    before, _ = second_pass_while_first_runs(scheduler, clock, None, five - timedelta(seconds=1))
    assert before.results == []
    after, _ = second_pass_while_first_runs(scheduler, clock, None, five)
    assert [r.outcome for r in after.results] == [Outcome.LOST, Outcome.SUCCEEDED]


def test_an_unregistered_handler_defers_its_jobs(scheduler: Scheduler) -> None:
    scheduler.registry.register("other", first)
    scheduler.registry.register("h", first)
    scheduler.registry.unregister("h")
    assert scheduler.registry.get("h") is None
    scheduler.schedule_job("a", timedelta(0), "h")
    assert scheduler.run_due_jobs().deferred == 1


@pytest.fixture
def global_name() -> Iterator[str]:
    name = "contract-test-global-handler"
    yield name
    global_registry.unregister(name)


def test_the_handler_decorator_registers_in_the_global_registry(
    global_name: str, scheduler: Scheduler
) -> None:
    ran: list[Job] = []

    @jobsched.handler(global_name, timeout=timedelta(minutes=7))
    def handle(job: Job) -> None:
        ran.append(job)

    entry = global_registry.get(global_name)
    assert entry is not None and entry.fn is handle and entry.timeout == timedelta(minutes=7)
    assert scheduler.registry.get(global_name) is None  # the test's own registry is separate
    scheduler.registry = global_registry  # a scheduler on the process-wide registry
    scheduler.schedule_job("a", timedelta(0), global_name, {"v": 1})
    assert scheduler.run_due_jobs().succeeded == 1
    assert [j.data for j in ran] == [{"v": 1}]


def test_the_handler_decorator_returns_the_function_unchanged(global_name: str) -> None:
    def handle(job: Job) -> bool:
        return True

    assert jobsched.handler(global_name)(handle) is handle
    entry = global_registry.get(global_name)
    assert entry is not None and entry.timeout == DEFAULT_TIMEOUT


def test_a_scheduler_without_a_registry_uses_the_global_one(tmp_path: Path) -> None:
    scheduler = Scheduler(f"sqlite:///{tmp_path / 'never-opened.db'}")
    assert scheduler.registry is global_registry
    scheduler.close()


@pytest.mark.parametrize("bad", ["a\nb", "tab\there", "   ", "\x7f"])
def test_a_handler_name_with_control_characters_or_only_whitespace_is_refused(
    registry: Registry, bad: str
) -> None:
    with pytest.raises(InvalidJobError) as info:
        registry.register(bad, first)
    assert info.value.field == "handler"
