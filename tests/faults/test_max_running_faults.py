"""``max_running`` across processes: four ``jobsched worker`` processes, each running up to four
handlers at once, never run more than two attempts of a handler limited to two at the same
time, and run every job exactly once (SQLite, then MariaDB).

The handlers record their start and end (``time.time()`` on this one host) from inside the
attempt, so each recorded interval lies within its claim: overlapping intervals were running at
the same time.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

import pytest

from faults.conftest import FaultDb, start_worker

pytestmark = pytest.mark.faults

APP = "faults.apps.limited"
WORKERS = 4
LIMITED = 24
FREE = 40


def deepest_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    """How many of ``intervals`` (start, end) were open at once, at most."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    depth = deepest = 0
    for _, step in events:  # at a tie, an end (-1) sorts first: touching is no overlap
        depth += step
        deepest = max(deepest, depth)
    return deepest


def test_four_workers_never_run_more_attempts_of_a_handler_at_once_than_its_limit(
    fdb: FaultDb,
) -> None:
    limited = fdb.add(LIMITED, {"sleep": 0.2}, handler="limited.two", prefix="lim")
    free = fdb.add(FREE, {"sleep": 0.05}, handler="limited.free", prefix="free")
    began = time.monotonic()
    workers = [
        start_worker(fdb, "--concurrency", 4, "--poll", 0.2, app=APP) for _ in range(WORKERS)
    ]
    workers[0].wait_for(lambda: fdb.count_jobs() == 0, 60, "every job to run")
    took = time.monotonic() - began
    for worker in workers:
        worker.stop()

    runs = fdb.runs()
    starts = Counter(run.job_id for run in runs if run.phase == "start")
    assert sorted(starts) == sorted(limited + free), "some job never ran"
    assert {n for n in starts.values()} == {1}, f"jobs that ran twice: {starts.most_common(3)}"
    spans: dict[str, dict[str, float]] = {}
    for run in runs:
        if run.job_id.startswith("lim"):
            spans.setdefault(run.job_id, {})[run.phase] = run.at
    intervals = [(span["start"], span["end"]) for span in spans.values()]
    assert len(intervals) == LIMITED
    assert deepest_overlap(intervals) == 2
    processes = {run.pid for run in runs if run.job_id.startswith("lim")}
    print(
        f"{fdb.backend}: {LIMITED} limited and {FREE} free jobs in {took:.1f} s through "
        f"{WORKERS} workers; the limited ones ran in {len(processes)} of them"
    )
