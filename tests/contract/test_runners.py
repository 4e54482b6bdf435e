"""The ``runners`` table on every backend: registering, beating, removing and forgetting rows,
staleness (on the fake clock), the jobs each live runner is running with their progress, and
``Presence``, the context manager a worker or pass holds it through."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import storeops

from jobsched import FakeClock, Scheduler
from jobsched.clock import Clock, RealClock
from jobsched.model import OpKind, Progress
from jobsched.presence import (
    STALE_AFTER,
    Presence,
    Runner,
    RunnerInfo,
    RunningJob,
    jobsched_version,
    runners,
)
from jobsched.store.base import Op, Store

SECOND = timedelta(seconds=1)


@pytest.fixture
def store(scheduler: Scheduler) -> Iterator[Store]:
    """The scheduler's store with an empty runners table (MariaDB's is shared by the run)."""
    empty(scheduler.store)
    yield scheduler.store
    empty(scheduler.store)


def empty(store: Store) -> None:
    for runner, _ in store.list_runners(datetime.max.replace(tzinfo=UTC)):
        store.remove_runner(runner.name)


def row(
    name: str = "host-a:101",
    *,
    at: datetime,
    kind: str = "worker",
    heartbeat: datetime | None = None,
    concurrency: int = 4,
) -> Runner:
    host, _, pid = name.rpartition(":")
    return Runner(
        name=name,
        host=host,
        pid=int(pid),
        kind=kind,
        version="1.2.3",
        started_at=at,
        heartbeat_at=heartbeat or at,
        concurrency=concurrency,
    )


def names(store: Store, clock: Clock, *, include_stale: bool = False) -> list[str]:
    return [info.name for info in runners(store, clock, include_stale=include_stale)]


def test_a_registered_runner_is_listed_live_with_its_row(store: Store, clock: FakeClock) -> None:
    store.register_runner(row(at=clock.now() - 5 * SECOND, kind="run-due", concurrency=8))
    clock.advance(3)
    assert runners(store, clock) == [
        RunnerInfo(
            name="host-a:101",
            host="host-a",
            pid=101,
            kind="run-due",
            version="1.2.3",
            started_at=clock.now() - 8 * SECOND,
            heartbeat_at=clock.now() - 8 * SECOND,
            concurrency=8,
            at=clock.now(),
            stale=False,
            jobs=(),
        )
    ]
    [info] = runners(store, clock)
    assert info.heartbeat_age == 8 * SECOND


def test_registering_a_name_again_replaces_its_row(store: Store, clock: FakeClock) -> None:
    store.register_runner(row(at=clock.now(), kind="run-due", concurrency=1))
    clock.advance(30)
    store.register_runner(row(at=clock.now(), kind="worker", concurrency=16))
    [info] = runners(store, clock)
    assert (info.kind, info.concurrency, info.started_at) == ("worker", 16, clock.now())


def test_a_beat_moves_the_heartbeat_and_keeps_the_runner_live(
    store: Store, clock: FakeClock
) -> None:
    started = clock.now()
    store.register_runner(row(at=started))
    for _ in range(3):
        clock.advance(STALE_AFTER - SECOND)
        assert store.beat_runner("host-a:101", clock.now()) is True
    clock.advance(STALE_AFTER - SECOND)
    [info] = runners(store, clock)
    assert (info.stale, info.started_at) == (False, started)
    assert info.heartbeat_at == clock.now() - (STALE_AFTER - SECOND)


def test_beating_a_runner_without_a_row_says_so(store: Store, clock: FakeClock) -> None:
    assert store.beat_runner("host-a:101", clock.now()) is False
    assert names(store, clock, include_stale=True) == []


def test_a_runner_silent_past_the_stale_threshold_is_listed_only_with_the_stale_ones(
    store: Store, clock: FakeClock
) -> None:
    store.register_runner(row("host-a:1", at=clock.now()))
    clock.advance(STALE_AFTER)
    store.register_runner(row("host-b:2", at=clock.now()))
    assert names(store, clock) == ["host-a:1", "host-b:2"]  # exactly STALE_AFTER: still live
    clock.advance(1e-3)
    assert names(store, clock) == ["host-b:2"]
    listed = runners(store, clock, include_stale=True)
    assert [(info.name, info.stale) for info in listed] == [("host-a:1", True), ("host-b:2", False)]


def test_a_removed_runner_is_no_longer_listed(store: Store, clock: FakeClock) -> None:
    store.register_runner(row("host-a:1", at=clock.now()))
    store.register_runner(row("host-a:2", at=clock.now()))
    assert store.remove_runner("host-a:1") is True
    assert store.remove_runner("host-a:1") is False
    assert names(store, clock, include_stale=True) == ["host-a:2"]


def test_forgetting_deletes_only_the_rows_silent_since_before_the_cutoff(
    store: Store, clock: FakeClock
) -> None:
    store.register_runner(row("host-a:1", at=clock.now()))
    clock.advance(10)
    store.register_runner(row("host-a:2", at=clock.now()))
    assert store.forget_runners(clock.now()) == 1
    assert store.forget_runners(clock.now()) == 0
    assert names(store, clock, include_stale=True) == ["host-a:2"]


def test_runners_are_ordered_by_host_then_pid(store: Store, clock: FakeClock) -> None:
    for name in ("host-b:3", "host-a:1000", "host-a:999"):
        store.register_runner(row(name, at=clock.now()))
    assert names(store, clock) == ["host-a:999", "host-a:1000", "host-b:3"]


def test_a_live_runner_lists_the_jobs_it_has_started_with_their_progress(
    scheduler: Scheduler, store: Store, clock: FakeClock
) -> None:
    store.register_runner(row("host-a:1", at=clock.now()))
    store.register_runner(row("host-b:2", at=clock.now()))
    starts = {}
    for i, job_id in enumerate(("copy", "plain", "waiting")):
        starts[job_id] = clock.now() - timedelta(minutes=3 - i)
        scheduler.schedule_job(job_id, starts[job_id], "h", None)
    scheduler.schedule_job("elsewhere", clock.now() - timedelta(minutes=5), "other", None)
    [theirs] = storeops.claim(store, clock.now(), runner="host-b:2", limit=1)
    copy, plain, waiting = storeops.claim(store, clock.now(), runner="host-a:1")
    begun = clock.now()
    progress = Progress(3, 10, "copying")
    assert store.apply(
        [
            storeops.start(copy, begun),
            storeops.start(theirs, begun),
            Op(OpKind.PROGRESS, copy, progress=progress),
        ]
    ) == [True, True, True]
    clock.advance(1)
    assert store.apply([storeops.start(plain, clock.now())]) == [True]
    clock.advance(1)
    listed = {info.name: info.jobs for info in runners(store, clock)}
    assert listed["host-a:1"] == (
        RunningJob("copy", "h", starts["copy"], begun, progress),
        RunningJob("plain", "h", starts["plain"], begun + SECOND, None),
    )
    assert [job.job_id for job in listed["host-b:2"]] == ["elsewhere"]
    assert waiting.job.job_id == "waiting"  # claimed, not started: not running


def test_a_job_whose_attempt_ended_is_no_longer_listed(
    scheduler: Scheduler, store: Store, clock: FakeClock
) -> None:
    store.register_runner(row("host-a:1", at=clock.now()))
    scheduler.schedule_job("j", clock.now(), "h", None)
    [claim] = storeops.claim(store, clock.now(), runner="host-a:1")
    assert store.apply([storeops.start(claim, clock.now())]) == [True]
    assert [job.job_id for info in runners(store, clock) for job in info.jobs] == ["j"]
    assert store.apply([Op(OpKind.REMOVE, claim)]) == [True]
    [info] = runners(store, clock)
    assert info.jobs == ()


def test_a_stale_runner_lists_no_jobs(scheduler: Scheduler, store: Store, clock: FakeClock) -> None:
    store.register_runner(row("host-a:1", at=clock.now()))
    scheduler.schedule_job("j", clock.now(), "h", None)
    [claim] = storeops.claim(store, clock.now(), runner="host-a:1", lease=timedelta(hours=1))
    assert store.apply([storeops.start(claim, clock.now())]) == [True]
    clock.advance(STALE_AFTER + SECOND)
    [info] = runners(store, clock, include_stale=True)
    assert (info.stale, info.jobs) == (True, ())


# -- Presence -------------------------------------------------------------------------------------


def test_presence_on_a_fake_clock_writes_nothing_and_starts_no_thread(
    store: Store, clock: FakeClock
) -> None:
    before = threading.active_count()
    with Presence(store, clock, runner="host-a:1", kind="worker", concurrency=2):
        assert threading.active_count() == before
        assert names(store, clock, include_stale=True) == []
    assert names(store, clock, include_stale=True) == []


def test_presence_registers_on_entry_beats_and_removes_its_row_on_exit(store: Store) -> None:
    clock = RealClock()
    presence = Presence(
        store, clock, runner="host-a:1", kind="run-due", concurrency=3, beat_every=0.05 * SECOND
    )
    with presence:
        [info] = runners(store, clock)
        assert (info.name, info.host, info.pid, info.kind, info.concurrency) == (
            "host-a:1",
            "host-a",
            1,
            "run-due",
            3,
        )
        assert info.version == jobsched_version() != ""
        first = info.heartbeat_at
        deadline = time.monotonic() + 5
        while runners(store, clock)[0].heartbeat_at == first:
            assert time.monotonic() < deadline, "the heartbeat never moved"
            time.sleep(0.02)
        [info] = runners(store, clock)
        assert info.started_at == first < info.heartbeat_at
    assert names(store, clock, include_stale=True) == []


def test_a_presence_asked_to_wait_writes_nothing_if_it_ends_before(store: Store) -> None:
    clock = RealClock()
    with Presence(
        store, clock, runner="host-a:1", kind="run-due", concurrency=1, register_after=60
    ):
        assert names(store, clock, include_stale=True) == []
    assert names(store, clock, include_stale=True) == []


def test_a_presence_asked_to_wait_registers_once_the_wait_is_over(store: Store) -> None:
    clock = RealClock()
    with Presence(
        store, clock, runner="host-a:1", kind="run-due", concurrency=1, register_after=0.05
    ):
        deadline = time.monotonic() + 5
        while names(store, clock) != ["host-a:1"]:
            assert time.monotonic() < deadline, "it never registered"
            time.sleep(0.02)
    assert names(store, clock, include_stale=True) == []


def test_presence_registers_its_row_again_if_it_went_missing(store: Store) -> None:
    clock = RealClock()
    with Presence(store, clock, runner="host-a:1", kind="worker", concurrency=1) as presence:
        assert store.remove_runner("host-a:1") is True
        presence.beat()
        assert [info.name for info in runners(store, clock)] == ["host-a:1"]


def test_presence_takes_host_and_pid_from_a_host_pid_name_else_from_this_process(
    store: Store,
) -> None:
    clock = RealClock()
    with Presence(store, clock, runner="test-runner", kind="worker", concurrency=1):
        [info] = runners(store, clock)
    assert (info.name, info.host, info.pid) == ("test-runner", socket.gethostname(), os.getpid())


def test_presence_forgets_runners_silent_for_a_day_when_it_starts(store: Store) -> None:
    clock = RealClock()
    now = clock.now()
    store.register_runner(row("host-a:1", at=now - timedelta(days=2)))
    store.register_runner(row("host-a:2", at=now - timedelta(hours=23)))
    with Presence(store, clock, runner="host-a:3", kind="worker", concurrency=1):
        listed = runners(store, clock, include_stale=True)
    assert [(info.name, info.stale) for info in listed] == [
        ("host-a:2", True),
        ("host-a:3", False),
    ]


def test_presence_refuses_an_unknown_kind(store: Store, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="worker, run-due"):
        Presence(store, clock, runner="host-a:1", kind="cron", concurrency=1)


def test_presence_warns_of_a_database_error_from_its_second_failure_and_registers_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'later.db'}"
    scheduler = Scheduler(url)  # no schema yet: every write fails
    clock = RealClock()
    try:
        presence = Presence(scheduler.store, clock, runner="host-a:1", kind="worker", concurrency=1)
        with caplog.at_level(logging.WARNING, logger="jobsched"), presence:
            # A runner that cannot reach its database says so itself: the first failure is quiet.
            assert "could not write runner" not in caplog.text
            presence.beat()
            assert "could not write runner host-a:1" in caplog.text
            assert "jobsched migrate" in caplog.text
            scheduler.migrate()
            presence.beat()
            assert [info.name for info in runners(scheduler.store, clock)] == ["host-a:1"]
        assert runners(scheduler.store, clock, include_stale=True) == []
    finally:
        scheduler.close()
