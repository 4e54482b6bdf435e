"""``max_running``: at most N attempts of a handler hold claims at once, across runners.

Claims are made on the store directly (as runners on different hosts would make them, each
with its own name and the limits of its registry) or by passes and workers. A claimed job
counts whether its handler has started or not; a claim that ran out does not count.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import timedelta

from jobsched import FakeClock, Job, Scheduler
from jobsched.handlers import Registry
from jobsched.model import OpKind
from jobsched.rules import lost_attempt_error
from jobsched.schema import meta
from jobsched.store.base import Claim, ClaimRequest, Op
from jobsched.store.dialect import LIMITS_LOCK

LEASE = timedelta(minutes=5)


def claim(
    scheduler: Scheduler,
    runner: str,
    limits: Mapping[str, int] | None,
    *,
    limit: int = 10,
    handlers: tuple[str, ...] | None = None,
    ops: Sequence[Op] = (),
) -> list[Claim]:
    """One claim by ``runner`` at the scheduler's time, as a pass makes it."""
    request = ClaimRequest(
        now=scheduler.clock.now(),
        limit=limit,
        runner=runner,
        lease_for=lambda handler: LEASE,
        lost_error=lost_attempt_error,
        handlers=handlers,
        limits=limits,
    )
    claims, _ = scheduler.store.claim(request, ops)
    return claims


def ids(claims: Sequence[Claim]) -> list[str]:
    return [c.job.job_id for c in claims]


def add(scheduler: Scheduler, handler: str, prefix: str, count: int, minutes_ago: int) -> None:
    """``count`` due jobs ``prefix0``, ``prefix1``, ... one second apart, the first
    ``minutes_ago`` minutes old."""
    for i in range(count):
        start = timedelta(minutes=-minutes_ago, seconds=i)
        scheduler.schedule_job(f"{prefix}{i}", start, handler)


def deepest_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    """How many of ``intervals`` (start, end) were open at once, at most."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    depth = deepest = 0
    for _, step in events:  # at a tie, an end (-1) sorts before a start: touching is no overlap
        depth += step
        deepest = max(deepest, depth)
    return deepest


class Recording:
    """A handler that records when each run started and ended (``time.monotonic``)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.intervals: list[tuple[float, float]] = []
        self.lock = threading.Lock()

    def __call__(self, job: Job) -> None:
        began = time.monotonic()
        time.sleep(self.seconds)
        with self.lock:
            self.intervals.append((began, time.monotonic()))


# -- claims by several runners --------------------------------------------------------------------


def test_a_claim_takes_the_free_slots_of_a_limited_handler_and_the_other_jobs_behind_it(
    scheduler: Scheduler,
) -> None:
    add(scheduler, "lim", "L", 5, minutes_ago=10)
    add(scheduler, "other", "O", 10, minutes_ago=5)
    assert ids(claim(scheduler, "a", {"lim": 2}, limit=5)) == ["L0", "L1", "O0", "O1", "O2"]


def test_a_second_runner_takes_none_of_a_handler_at_its_limit_but_the_jobs_behind_it(
    scheduler: Scheduler,
) -> None:
    add(scheduler, "lim", "L", 5, minutes_ago=10)
    add(scheduler, "other", "O", 10, minutes_ago=5)
    claim(scheduler, "a", {"lim": 2}, limit=5)
    assert ids(claim(scheduler, "b", {"lim": 2}, limit=5)) == ["O3", "O4", "O5", "O6", "O7"]


def test_a_finished_job_frees_its_slot_for_the_next_claim(scheduler: Scheduler) -> None:
    add(scheduler, "lim", "L", 5, minutes_ago=10)
    add(scheduler, "other", "O", 4, minutes_ago=5)
    first = claim(scheduler, "a", {"lim": 2}, limit=2)
    assert ids(first) == ["L0", "L1"]
    assert ids(claim(scheduler, "b", {"lim": 2}, limit=2)) == ["O0", "O1"]
    done = Op(OpKind.REMOVE, first[0])
    # The finish travels with the next claim, as a pass sends it: one slot, one job.
    assert ids(claim(scheduler, "c", {"lim": 2}, limit=3, ops=[done])) == ["L2", "O2", "O3"]
    assert not scheduler.job_exists("L0")


def test_a_started_job_holds_its_slot_until_it_ends(scheduler: Scheduler) -> None:
    add(scheduler, "lim", "L", 3, minutes_ago=10)
    [held] = claim(scheduler, "a", {"lim": 1})
    started = Op(OpKind.START, held, at=scheduler.clock.now(), attempts=1)
    scheduler.store.apply([started])
    assert claim(scheduler, "b", {"lim": 1}) == []


def test_a_claim_that_ran_out_no_longer_counts(scheduler: Scheduler, clock: FakeClock) -> None:
    add(scheduler, "lim", "L", 4, minutes_ago=10)
    assert ids(claim(scheduler, "a", {"lim": 2})) == ["L0", "L1"]
    clock.advance(LEASE)  # runner a died: its claims end now
    taken = claim(scheduler, "b", {"lim": 2})
    assert ids(taken) == ["L0", "L1"]
    assert [c.taken_from for c in taken] == ["a", "a"]


def test_each_limited_handler_has_slots_of_its_own(scheduler: Scheduler) -> None:
    add(scheduler, "one", "A", 3, minutes_ago=10)
    add(scheduler, "two", "B", 3, minutes_ago=9)
    add(scheduler, "other", "O", 2, minutes_ago=8)
    limits = {"one": 1, "two": 2}
    assert ids(claim(scheduler, "a", limits)) == ["A0", "B0", "B1", "O0", "O1"]
    assert claim(scheduler, "b", limits) == []


def test_a_runner_serving_only_other_handlers_takes_their_jobs_beside_a_full_limit(
    scheduler: Scheduler,
) -> None:
    add(scheduler, "lim", "L", 3, minutes_ago=10)
    add(scheduler, "other", "O", 2, minutes_ago=5)
    claim(scheduler, "a", {"lim": 1}, handlers=("lim",))
    assert ids(claim(scheduler, "b", {"lim": 1}, handlers=("other",))) == ["O0", "O1"]
    assert ids(claim(scheduler, "c", {"lim": 2}, handlers=("lim",))) == ["L1"]


def test_claims_without_limits_are_not_held_back(scheduler: Scheduler) -> None:
    add(scheduler, "lim", "L", 3, minutes_ago=10)
    claim(scheduler, "a", {"lim": 1})
    assert ids(claim(scheduler, "b", None)) == ["L1", "L2"]


def test_a_claim_takes_the_oldest_jobs_of_a_limited_handler_after_its_cursor(
    scheduler: Scheduler,
) -> None:
    add(scheduler, "lim", "L", 4, minutes_ago=10)
    [first] = claim(scheduler, "a", {"lim": 3}, limit=1)
    request = ClaimRequest(
        now=scheduler.clock.now(),
        limit=10,
        runner="a",
        lease_for=lambda handler: LEASE,
        lost_error=lost_attempt_error,
        after=(first.job.start, first.job.job_id),
        limits={"lim": 3},
    )
    claims, _ = scheduler.store.claim(request)
    assert ids(claims) == ["L1", "L2"]


def test_concurrent_claims_never_take_more_than_the_limit(
    scheduler: Scheduler, backend: str, clock: FakeClock
) -> None:
    runners, races = 8, 4
    add(scheduler, "warm", "W", runners, minutes_ago=20)
    for race in range(races):
        add(scheduler, f"lim{race}", f"L{race}-", 40, minutes_ago=10)
    add(scheduler, "other", "O", 200, minutes_ago=5)
    # Each runner with a store (connections) of its own, as on separate hosts. A claim of the
    # same shape first, so that the racing ones spend no time connecting or compiling SQL:
    # without the lock of ``lock_limits``, two of them then count the same free slots.
    schedulers = [scheduler]
    if backend != "memory":
        engine = scheduler.store.engine  # type: ignore[attr-defined]
        url = engine.url.render_as_string(hide_password=False)
        schedulers = [Scheduler(url, clock=clock, registry=Registry()) for _ in range(runners)]
    taken: list[list[str]] = [[] for _ in range(runners)]
    try:
        for i in range(runners):
            warm = claim(schedulers[i % len(schedulers)], f"r{i}", {"warm": runners}, limit=1)
            assert ids(warm) == [f"W{i}"]
        if backend != "memory":  # and the racing claims make the row they lock (MariaDB)
            with engine.begin() as conn:
                conn.execute(meta.delete().where(meta.c.name == LIMITS_LOCK))
        barrier = threading.Barrier(runners)

        def one(i: int) -> None:
            for race in range(races):
                barrier.wait(10)
                for _ in range(2):
                    store = schedulers[i % len(schedulers)]
                    limits, served = {f"lim{race}": 3}, (f"lim{race}", "other")
                    taken[i] += ids(claim(store, f"r{i}", limits, limit=4, handlers=served))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(runners)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for other in schedulers[1:]:
            other.close()
    everything = [job_id for claims in taken for job_id in claims]
    assert len(everything) == len(set(everything))
    # Three of each race's limited handler (which three: the oldest, but for rows another
    # claim's read had locked for a moment, which SKIP LOCKED passes over).
    limited = Counter(job_id.split("-")[0] for job_id in everything if job_id.startswith("L"))
    assert limited == {f"L{race}": 3 for race in range(races)}


# -- passes and workers ---------------------------------------------------------------------------


def test_a_pass_leaves_held_back_jobs_as_they_were(scheduler: Scheduler) -> None:
    ran: list[str] = []
    scheduler.registry.register("lim", lambda job: ran.append(job.job_id), max_running=1)
    scheduler.registry.register("other", lambda job: ran.append(job.job_id))
    add(scheduler, "lim", "L", 3, minutes_ago=10)
    add(scheduler, "other", "O", 3, minutes_ago=5)
    before = {job.job_id: job for job in scheduler.list_jobs()}
    claim(scheduler, "elsewhere", {"lim": 1}, handlers=("lim",))  # L0 runs on another host
    report = scheduler.run_due_jobs(concurrency=4)
    assert sorted(ran) == ["O0", "O1", "O2"]
    assert (report.ran, report.succeeded, report.deferred) == (3, 3, 0)
    for job_id in ("L1", "L2"):
        job = scheduler.get_job(job_id)
        assert job == before[job_id]  # start, attempts 0, no last_error: untouched
        info = scheduler.get_job_info(job_id)
        assert info is not None and info.claimed_by is None


def test_a_worker_runs_a_handler_limited_to_one_at_a_time(scheduler: Scheduler) -> None:
    limited = Recording(0.03)
    scheduler.registry.register("lim", limited, max_running=1)
    add(scheduler, "lim", "L", 6, minutes_ago=10)
    stop = threading.Event()
    worker = threading.Thread(
        target=lambda: scheduler.run_worker(stop=stop, concurrency=4, poll=0.01), daemon=True
    )
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while scheduler.count_jobs() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        worker.join(30)
    assert len(limited.intervals) == 6
    assert deepest_overlap(limited.intervals) == 1


def test_handlers_without_a_limit_run_with_the_full_concurrency_beside_a_limited_one(
    scheduler: Scheduler,
) -> None:
    limited = Recording(0.2)
    free = Recording(0.2)
    scheduler.registry.register("lim", limited, max_running=1)
    scheduler.registry.register("free", free)
    add(scheduler, "lim", "L", 4, minutes_ago=10)
    add(scheduler, "free", "F", 4, minutes_ago=5)
    scheduler.run_due_jobs(concurrency=4)
    assert len(free.intervals) == 4
    assert deepest_overlap(free.intervals) >= 3
    assert deepest_overlap(limited.intervals) == 1


def test_a_pass_runs_a_limited_handlers_due_jobs_one_at_a_time_to_the_end(
    scheduler: Scheduler,
) -> None:
    limited = Recording(0.02)
    scheduler.registry.register("lim", limited, max_running=1)
    scheduler.registry.register("other", lambda job: None)
    add(scheduler, "lim", "L", 5, minutes_ago=10)
    add(scheduler, "other", "O", 5, minutes_ago=5)
    report = scheduler.run_due_jobs(concurrency=4)
    assert report.succeeded == 10
    assert len(limited.intervals) == 5
    assert deepest_overlap(limited.intervals) == 1


def test_a_pass_ends_when_other_runners_hold_every_slot(scheduler: Scheduler) -> None:
    ran: list[str] = []
    scheduler.registry.register("lim", lambda job: ran.append(job.job_id), max_running=1)
    add(scheduler, "lim", "L", 3, minutes_ago=10)
    claim(scheduler, "elsewhere", {"lim": 1})
    report = scheduler.run_due_jobs(concurrency=4)
    assert (report.ran, ran) == (0, [])


def test_a_pass_takes_a_kept_limited_job_once(scheduler: Scheduler) -> None:
    ran: list[str] = []
    scheduler.registry.register("lim", lambda job: ran.append(job.job_id) or False, max_running=1)
    add(scheduler, "lim", "L", 2, minutes_ago=10)
    report = scheduler.run_due_jobs(concurrency=2)
    assert sorted(ran) == ["L0", "L1"]
    assert report.kept == 2
