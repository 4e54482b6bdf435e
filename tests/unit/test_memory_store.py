"""What only the in-memory backend has to show (the contract suite covers the rest)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import storeops

from jobsched import FakeClock, Job, MigrateResult, Mode, RealClock, Scheduler
from jobsched.errors import UsageError
from jobsched.handlers import Registry
from jobsched.model import OpKind
from jobsched.rules import new_job
from jobsched.store import Op, Store, open_store
from jobsched.store.memory import MemoryStore

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = timedelta(minutes=5)


@pytest.fixture
def memory() -> Scheduler:
    return Scheduler("memory://", clock=FakeClock(T0), registry=Registry())


def schedule(store: Store, job_id: str, start: datetime, mode: Mode = Mode.NEW) -> Job:
    [(job, _)] = store.schedule([new_job(job_id, start, "h", {"n": 1}, now=T0)], mode)
    return job


@pytest.mark.parametrize("url", ["memory://", "memory:", "memory:///"])
def test_a_memory_url_opens_the_memory_store(url: str) -> None:
    assert isinstance(open_store(url), MemoryStore)


def test_the_memory_store_is_private_to_its_process() -> None:
    scheduler = Scheduler("memory://", clock=RealClock())

    assert scheduler.store.shared is False
    assert scheduler.run_jobs_remotely is False  # even on a real clock: no run-due can see it


def test_migrate_is_a_no_op(memory: Scheduler) -> None:
    memory.schedule_job("a", T0, "h")

    memory.migrate()

    assert memory.job_exists("a")


def test_migrate_reports_the_schema_current(memory: Scheduler) -> None:
    assert memory.migrate() is MigrateResult.CURRENT


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.schedule_job("a", T0, "h", conn=object()),
        lambda s: s.schedule_jobs([{"job_id": "a", "start": T0, "handler": "h"}], conn=object()),
        lambda s: s.add_job(Job("a", "h", None, T0), conn=object()),
        lambda s: s.get_job("a", conn=object()),
        lambda s: s.job_exists("a", conn=object()),
        lambda s: s.remove_job("a", conn=object()),
        lambda s: s.update_job("a", lambda job: (Job("a", "h", None, T0), None), conn=object()),
    ],
    ids=[
        "schedule_job",
        "schedule_jobs",
        "add_job",
        "get_job",
        "job_exists",
        "remove_job",
        "update_job",
    ],
)
def test_conn_is_refused_with_a_clear_error(
    memory: Scheduler, call: Callable[[Scheduler], Any]
) -> None:
    with pytest.raises(UsageError, match=r"conn= is not supported by the in-memory store"):
        call(memory)
    assert memory.count_jobs() == 0


def test_the_caller_and_the_store_never_share_a_payload(memory: Scheduler) -> None:
    data: dict[str, Any] = {"tags": ["a"]}
    returned = memory.schedule_job("a", T0, "h", data)
    data["tags"].append("changed by the caller")
    returned.data["tags"].append("changed through the returned job")
    memory.get_job("a").data["tags"].append("changed through get_job")  # type: ignore[union-attr]

    assert memory.get_job("a").data == {"tags": ["a"]}  # type: ignore[union-attr]


def test_a_new_job_starts_at_a_random_version() -> None:
    versions = set()
    for _ in range(5):
        store = MemoryStore()
        schedule(store, "a", T0)
        [claim] = storeops.claim(store, T0, lease=LEASE, limit=1)
        versions.add(claim.version)

    assert len(versions) == 5


def test_a_recreated_job_does_not_match_an_old_claims_fence() -> None:
    store = MemoryStore()
    schedule(store, "a", T0)
    [old] = storeops.claim(store, T0, lease=LEASE, limit=1)
    store.remove("a")
    schedule(store, "a", T0)

    assert store.apply([Op(OpKind.REMOVE, old)]) == [False]
    assert store.get("a") is not None


def test_the_lost_attempt_reads_as_on_sqlite(sqlite_url: str) -> None:
    errors = []
    for store in (MemoryStore(), open_store(sqlite_url)):
        schedule(store, "a", T0)
        [claim] = storeops.claim(store, T0, runner="host:1", lease=LEASE, limit=1)
        store.apply([storeops.start(claim, T0)])
        later = T0 + LEASE
        [taken] = storeops.claim(store, later, runner="host:2", lease=LEASE, limit=1)
        errors.append((taken.taken_from, taken.job.last_error, store.get("a").last_error))  # type: ignore[union-attr]
        store.close()

    assert errors[0] == errors[1]
    assert errors[0][0] == "host:1"
    assert errors[0][1] == (
        "attempt 1 lost: its runner host:1 stopped (claim ran out at 2030-01-01T00:05:00+00:00)"
    )


def test_claiming_and_next_due_do_not_scan_every_job() -> None:
    store = MemoryStore()
    far = T0 + timedelta(days=365)
    store.schedule(
        [new_job(f"later-{i:06d}", far, "h", None, now=T0) for i in range(50_000)], Mode.NEW
    )

    began = time.perf_counter()
    for i in range(2_000):
        now = T0 + timedelta(minutes=i)
        schedule(store, f"due-{i}", now)
        assert store.next_due() == now
        [claim] = storeops.claim(store, now, lease=LEASE, limit=25)
        store.apply([Op(OpKind.REMOVE, claim)])
    elapsed = time.perf_counter() - began

    # A scan of 50,000 jobs per call would take minutes; the heaps take milliseconds.
    assert elapsed < 5.0, elapsed


def test_a_job_rescheduled_many_times_does_not_grow_the_index() -> None:
    store = MemoryStore()
    for i in range(20_000):
        schedule(store, "a", T0 + timedelta(seconds=i), Mode.RESCHEDULE)

    assert store.count() == 1
    assert len(store._waiting) + len(store._held) < 2_000


def test_next_due_is_a_live_claims_end(memory: Scheduler) -> None:
    store = memory.store
    schedule(store, "a", T0)
    storeops.claim(store, T0, lease=LEASE, limit=1)

    assert store.next_due() == T0 + LEASE
    before_its_end = T0 + LEASE - timedelta(microseconds=1)
    assert storeops.claim(store, before_its_end, runner="r2", lease=LEASE, limit=1) == []
    assert len(storeops.claim(store, T0 + LEASE, runner="r2", lease=LEASE, limit=1)) == 1


def test_threads_claiming_together_take_each_job_once() -> None:
    store = MemoryStore()
    store.schedule([new_job(f"j{i:04d}", T0, "h", None, now=T0) for i in range(2_000)], Mode.NEW)
    taken: list[str] = []
    lock = threading.Lock()

    def runner(name: str) -> None:
        while claims := storeops.claim(store, T0, runner=name, lease=LEASE, limit=7):
            with lock:
                taken.extend(c.job.job_id for c in claims)

    threads = [threading.Thread(target=runner, args=(f"r{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(taken) == [f"j{i:04d}" for i in range(2_000)]
