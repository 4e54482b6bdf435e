"""Isolated handlers (``isolate=True``): each attempt runs in a real child process, and every way
it can end (returned, raised, killed after its timeout, died, not started) has its own outcome
and ``last_error``, on every backend, through ``Scheduler.run_due_jobs``.

The handlers live in ``faults.apps.isolated`` (a module the child imports); each test registers
the ones it needs on its own registry, with their one-second timeout.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from faults.apps import isolated

from jobsched import FakeClock, Job, Outcome, Progress, Scheduler, handlers, isolation
from jobsched.errors import HandlerProcessDiedError, HandlerRaisedError
from jobsched.handlers import Registry

HOUR = timedelta(hours=1)
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def register(scheduler: Scheduler, *names: str, isolate: bool = True) -> None:
    """Register ``faults.apps.isolated``'s handlers ``names`` on the test's registry."""
    for name in names:
        entry = handlers.registry.get(name)
        assert entry is not None, name
        scheduler.registry.register(name, entry.fn, entry.timeout, isolate=isolate)


def run(scheduler: Scheduler, **kwargs: Any) -> dict[str, Outcome]:
    return {r.job_id: r.outcome for r in scheduler.run_due_jobs(**kwargs).results}


def pids(path: Path) -> dict[str, int]:
    """The pid each handler ran in, by job id (from the ``file`` the handlers append to)."""
    if not path.exists():
        return {}
    lines = (line.split() for line in path.read_text().splitlines() if line)
    return {job_id: int(pid) for job_id, pid in lines}


def last_error(scheduler: Scheduler, job_id: str) -> str | None:
    job = scheduler.get_job(job_id)
    assert job is not None, f"{job_id} is gone"
    return job.last_error


def history_error(scheduler: Scheduler, job_id: str) -> tuple[Outcome, str | None]:
    row = scheduler.history(job_id)[0]
    return row.outcome, row.error


def gone(pid: int) -> bool:
    """True once process ``pid`` has exited (a zombie counts as exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status


# -- the handler returned -----------------------------------------------------------------------


def test_an_isolated_handler_runs_in_a_child_process_and_its_job_is_removed(
    scheduler: Scheduler, tmp_path: Path
) -> None:
    register(scheduler, "iso_ok")
    scheduler.schedule_job("a", timedelta(0), "iso_ok", {"file": str(tmp_path / "pids")})
    assert run(scheduler) == {"a": Outcome.SUCCEEDED}
    assert not scheduler.job_exists("a")
    child = pids(tmp_path / "pids")["a"]
    assert child != os.getpid()
    assert gone(child)


def test_an_isolated_handler_returning_false_keeps_its_job(scheduler: Scheduler) -> None:
    register(scheduler, "iso_keep")
    scheduler.schedule_job("a", timedelta(0), "iso_keep")
    assert run(scheduler) == {"a": Outcome.KEPT}
    job = scheduler.get_job("a")
    assert job is not None and job.attempts == 1 and job.last_error is None


def test_the_isolate_option_of_a_pass_isolates_every_handler(
    scheduler: Scheduler, tmp_path: Path
) -> None:
    register(scheduler, "iso_ok", isolate=False)
    scheduler.schedule_job("a", timedelta(0), "iso_ok", {"file": str(tmp_path / "pids")})
    assert run(scheduler, isolate=True) == {"a": Outcome.SUCCEEDED}
    assert pids(tmp_path / "pids")["a"] != os.getpid()


def test_an_async_isolated_handler_is_awaited_in_its_child(scheduler: Scheduler) -> None:
    register(scheduler, "iso_async")
    scheduler.schedule_job("a", timedelta(0), "iso_async")
    assert run(scheduler) == {"a": Outcome.KEPT}


# -- the handler raised -------------------------------------------------------------------------


def test_an_error_raised_in_the_child_retries_the_job_with_the_in_process_last_error(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    register(scheduler, "iso_boom")
    scheduler.schedule_job("a", timedelta(0), "iso_boom")
    assert run(scheduler) == {"a": Outcome.RETRIED}
    job = scheduler.get_job("a")
    assert job is not None and job.last_error == "ValueError: boom"
    assert job.start == clock.now() + HOUR
    assert history_error(scheduler, "a") == (Outcome.RETRIED, "ValueError: boom")


def test_a_permanent_error_raised_in_the_child_fails_the_job_at_once(
    scheduler: Scheduler,
) -> None:
    register(scheduler, "iso_permanent")
    scheduler.schedule_job("a", timedelta(0), "iso_permanent")
    assert run(scheduler) == {"a": Outcome.FAILED}
    assert not scheduler.job_exists("a")
    assert history_error(scheduler, "a") == (Outcome.FAILED, "PermanentError: no such customer")


def test_sys_exit_in_the_child_reads_as_it_does_in_process(scheduler: Scheduler) -> None:
    register(scheduler, "iso_sys_exit")
    scheduler.schedule_job("a", timedelta(0), "iso_sys_exit")
    assert run(scheduler) == {"a": Outcome.RETRIED}
    assert last_error(scheduler, "a") == "the handler called sys.exit(3)"


# -- killed after its timeout -------------------------------------------------------------------


def test_a_handler_past_its_timeout_is_killed_and_its_job_retried(
    scheduler: Scheduler, clock: FakeClock, tmp_path: Path
) -> None:
    register(scheduler, "iso_hang")
    scheduler.schedule_job("a", timedelta(0), "iso_hang", {"file": str(tmp_path / "pids")})
    began = time.monotonic()
    assert run(scheduler) == {"a": Outcome.RETRIED}
    took = time.monotonic() - began
    assert isolated.TIMEOUT <= took < isolated.TIMEOUT + 3
    expected = "killed after its timeout of 1s (SIGTERM)"
    job = scheduler.get_job("a")
    assert job is not None and job.last_error == expected
    assert job.start == clock.now() + HOUR
    assert history_error(scheduler, "a") == (Outcome.RETRIED, expected)
    assert gone(pids(tmp_path / "pids")["a"])


def test_a_handler_that_ignores_sigterm_is_killed_with_sigkill_after_the_grace(
    scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(isolation, "KILL_GRACE", 0.3)
    register(scheduler, "iso_stubborn")
    scheduler.schedule_job("a", timedelta(0), "iso_stubborn")
    began = time.monotonic()
    assert run(scheduler) == {"a": Outcome.RETRIED}
    assert time.monotonic() - began >= isolated.TIMEOUT + 0.3
    assert last_error(scheduler, "a") == (
        "killed after its timeout of 1s (SIGKILL: it was still running 0.3s after SIGTERM)"
    )


# -- the process died ---------------------------------------------------------------------------


def test_a_child_that_segfaults_fails_its_attempt_with_the_signal(scheduler: Scheduler) -> None:
    register(scheduler, "iso_segfault")
    scheduler.schedule_job("a", timedelta(0), "iso_segfault")
    assert run(scheduler) == {"a": Outcome.RETRIED}
    expected = "the handler's process was killed by SIGSEGV before the handler returned"
    assert last_error(scheduler, "a") == expected
    assert history_error(scheduler, "a") == (Outcome.RETRIED, expected)


def test_a_child_that_calls_os_exit_fails_its_attempt_with_the_exit_code(
    scheduler: Scheduler,
) -> None:
    register(scheduler, "iso_os_exit")
    scheduler.schedule_job("a", timedelta(0), "iso_os_exit")
    assert run(scheduler) == {"a": Outcome.RETRIED}
    assert last_error(scheduler, "a") == (
        "the handler's process exited with code 3 before the handler returned"
    )


def test_kill_children_kills_a_running_child_and_its_attempt_fails(tmp_path: Path) -> None:
    registry = Registry()
    entry = handlers.registry.get("iso_long")
    assert entry is not None
    handler = registry.register("iso_long", entry.fn, entry.timeout, isolate=True)
    job = Job("a", "iso_long", {"file": str(tmp_path / "pids")}, T0, attempts=1)
    raised: list[BaseException] = []

    def attempt() -> None:
        try:
            isolation.run_isolated(handler, job, on_progress=lambda p: None)
        except BaseException as e:
            raised.append(e)

    thread = threading.Thread(target=attempt)
    thread.start()
    deadline = time.monotonic() + 10
    while "a" not in pids(tmp_path / "pids"):
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.01)
    assert isolation.kill_children() == 1
    thread.join(10)
    assert not thread.is_alive()
    assert len(raised) == 1 and isinstance(raised[0], HandlerProcessDiedError)
    assert str(raised[0]).startswith("the handler's process was killed by SIGKILL (perhaps out")
    assert isolation.kill_children() == 0


# -- the handler could not be started -----------------------------------------------------------


def test_a_handler_whose_module_the_child_cannot_import_is_not_started(
    scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module that exists in this process only (made here, not on disk).
    ghost = types.ModuleType("jobsched_ghost_app")

    def handle(job: Job) -> None:
        pass

    handle.__module__ = ghost.__name__
    handle.__qualname__ = "handle"
    ghost.handle = handle  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, ghost.__name__, ghost)
    scheduler.registry.register("ghost", handle, 1, isolate=True)
    scheduler.schedule_job("a", timedelta(0), "ghost")
    assert run(scheduler) == {"a": Outcome.RETRIED}
    error = last_error(scheduler, "a")
    assert error is not None
    assert error.startswith(
        "the handler could not be started: its module 'jobsched_ghost_app' could not be "
        "imported in the child process (ModuleNotFoundError: "
    ), error


def test_a_handler_the_child_cannot_find_in_its_module_is_not_started(
    scheduler: Scheduler,
) -> None:
    def handle(job: Job) -> None:  # defined in a function: the child cannot look it up
        pass

    # (The child imports this test module first, which takes a while.)
    scheduler.registry.register("local", handle, 30, isolate=True)
    scheduler.schedule_job("a", timedelta(0), "local")
    assert run(scheduler) == {"a": Outcome.RETRIED}
    error = last_error(scheduler, "a")
    assert error is not None
    assert error.startswith("the handler could not be started: ") and "was not found" in error


# -- calls to the scheduler and progress from the child ------------------------------------------


def test_an_isolated_handler_schedules_a_job_through_its_runner(scheduler: Scheduler) -> None:
    register(scheduler, "iso_schedules")
    scheduler.schedule_job("a", timedelta(0), "iso_schedules")
    assert run(scheduler, limit=1) == {"a": Outcome.SUCCEEDED}
    follow_up = scheduler.get_job("a-next")
    assert follow_up is not None
    assert follow_up.data == {"from": "a"} and follow_up.start == scheduler.now()


def test_a_jobsched_error_of_a_forwarded_call_is_raised_in_the_child_as_its_class(
    scheduler: Scheduler,
) -> None:
    register(scheduler, "iso_schedules_twice")
    scheduler.schedule_job("a", timedelta(0), "iso_schedules_twice")
    assert run(scheduler, limit=1) == {"a": Outcome.FAILED}
    assert history_error(scheduler, "a") == (
        Outcome.FAILED,
        "PermanentError: as expected: JobExistsError a-next",
    )


def test_arguments_that_cannot_cross_the_process_boundary_are_a_clear_error(
    scheduler: Scheduler,
) -> None:
    register(scheduler, "iso_bad_call")
    scheduler.schedule_job("a", timedelta(0), "iso_bad_call")
    assert run(scheduler) == {"a": Outcome.RETRIED}
    error = last_error(scheduler, "a")
    assert error is not None
    assert error.startswith(
        "ProcessBoundaryError: jobsched.schedule_job(...) from an isolated handler: its "
        "arguments cannot cross the process boundary"
    ), error
    assert not scheduler.job_exists("never")


def test_progress_reported_in_the_child_reaches_the_parent(scheduler: Scheduler) -> None:
    register(scheduler, "iso_schedules")
    handler = scheduler.registry.get("iso_schedules")
    assert handler is not None
    reports: list[Progress] = []
    job = Job("a", "iso_schedules", None, scheduler.now(), attempts=1)
    assert isolation.run_isolated(handler, job, on_progress=reports.append, api=scheduler) is None
    assert reports == [Progress(1, 2, "half way")]
    assert scheduler.job_exists("a-next")


def test_the_child_traceback_comes_back_as_text(scheduler: Scheduler) -> None:
    register(scheduler, "iso_boom")
    handler = scheduler.registry.get("iso_boom")
    assert handler is not None
    job = Job("a", "iso_boom", None, scheduler.now(), attempts=1)
    with pytest.raises(HandlerRaisedError) as raised:
        isolation.run_isolated(handler, job, on_progress=lambda p: None, api=scheduler)
    assert str(raised.value) == "ValueError: boom"
    assert raised.value.error_type == "ValueError" and not raised.value.permanent
    assert 'raise ValueError("boom")' in raised.value.child_traceback


# -- the pass goes on ---------------------------------------------------------------------------


def test_after_each_way_an_attempt_ends_the_pass_runs_the_next_job(
    scheduler: Scheduler, tmp_path: Path
) -> None:
    names = ["iso_boom", "iso_hang", "iso_segfault", "iso_os_exit", "iso_sys_exit", "iso_ok"]
    register(scheduler, *names)
    for i, name in enumerate(names):
        scheduler.schedule_job(f"{i}-{name}", timedelta(seconds=-10 + i), name)
    results = scheduler.run_due_jobs().results
    assert [(r.job_id, r.outcome) for r in results] == [
        ("0-iso_boom", Outcome.RETRIED),
        ("1-iso_hang", Outcome.RETRIED),
        ("2-iso_segfault", Outcome.RETRIED),
        ("3-iso_os_exit", Outcome.RETRIED),
        ("4-iso_sys_exit", Outcome.RETRIED),
        ("5-iso_ok", Outcome.SUCCEEDED),
    ]
    errors = [r.error for r in results[:-1]]
    assert errors[0] == "ValueError: boom"
    assert errors[1] is not None and errors[1].startswith("killed after its timeout")
    assert errors[2] is not None and "SIGSEGV" in errors[2]
    assert errors[3] is not None and "exited with code 3" in errors[3]
    assert errors[4] == "the handler called sys.exit(3)"
