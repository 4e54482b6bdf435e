"""Without a crash, each handler runs exactly once per attempt and every attempt is counted
(issue 12, invariant 1), while passes start and finish many jobs per commit: overlapping
runners over jobs that succeed, fail (retried in an hour) or are kept (due again at once, so
the other runner may run them again)."""

from __future__ import annotations

from collections import defaultdict

import pytest

from faults.conftest import FaultDb

pytestmark = pytest.mark.faults

JOBS = 300


@pytest.mark.parametrize("concurrency", [1, 3])
def test_overlapping_runners_run_each_attempt_once_and_count_every_attempt(
    fdb: FaultDb, concurrency: int
) -> None:
    behaviours = [{}, {"fail": "failed, as planned"}, {"keep": True}]
    ids = fdb.add(JOBS, datas=[behaviours[i % 3] for i in range(JOBS)], max_attempts=5)
    runners = [fdb.runner("--concurrency", concurrency, verbose=False) for _ in range(2)]
    for runner in runners:
        runner.expect(0, timeout=120)

    attempts: dict[str, list[int]] = defaultdict(list)
    for run in fdb.runs():
        if run.phase == "start":
            attempts[run.job_id].append(run.attempt)
    assert sorted(attempts) == ids, "some job never ran"
    rows = fdb.rows()
    for i, job_id in enumerate(ids):
        runs = attempts[job_id]
        # Each attempt ran once, and the attempts ran in order: 1, 2, ...
        assert runs == list(range(1, len(runs) + 1)), f"{job_id}: attempts {runs}"
        row = rows.get(job_id)
        if i % 3 == 0:
            assert row is None and runs == [1], f"{job_id}: succeeded, yet {runs}, {row}"
        else:
            # Failed (retried in an hour) or kept: every attempt that ran is counted.
            assert row is not None and row.attempts == len(runs), f"{job_id}: {runs}, {row}"
            assert row.claim_token is None and row.started_at is None
            assert len(runs) == 1 if i % 3 == 1 else len(runs) <= 2, f"{job_id}: {runs}"
    ran = sum(r.summary("ran") for r in runners)
    assert ran == sum(len(runs) for runs in attempts.values())
