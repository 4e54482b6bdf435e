"""Catch-up after downtime: a large backlog of overdue jobs is drained by repeated bounded passes
(--limit), oldest first, with flat memory whatever the backlog."""

from __future__ import annotations

import statistics

import pytest

from faults.conftest import BACKLOG, FaultDb

pytestmark = pytest.mark.faults

PASSES = 5


@pytest.mark.timeout(1800)
def test_a_backlog_of_overdue_jobs_is_drained_by_bounded_passes_with_flat_memory(
    fdb: FaultDb,
) -> None:
    fdb.add_backlog(BACKLOG, {"no_record": True})
    limit = BACKLOG // PASSES

    peaks = []
    left = [BACKLOG]
    oldest_left = []
    for _ in range(PASSES):
        runner = fdb.runner("--limit", limit, "--concurrency", 4, "--quiet", verbose=False)
        runner.expect(0, timeout=600)
        assert runner.stdout == ""  # --quiet: nothing to say when all went well
        peaks.append(runner.peak_rss_kib)
        left.append(fdb.count_jobs())
        first = next(fdb.scheduler.list_jobs(limit=1), None)
        oldest_left.append(first.job_id if first else None)

    print(
        f"{fdb.backend}: {BACKLOG} overdue jobs, {PASSES} passes of --limit {limit}; jobs left "
        f"{left}; peak RSS per pass (MiB): {[round(p / 1024, 1) for p in peaks]}"
    )
    assert left == [BACKLOG - i * limit for i in range(PASSES + 1)]
    assert oldest_left[:-1] == [f"old-{(i + 1) * limit:06d}" for i in range(PASSES - 1)]
    median = statistics.median(peaks)
    assert all(abs(peak - median) < max(0.1 * median, 8 * 1024) for peak in peaks), peaks
