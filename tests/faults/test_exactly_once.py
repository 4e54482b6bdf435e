"""Overlapping run-due passes (cron started a new one before the last ended) share the due jobs:
every job runs exactly once."""

from __future__ import annotations

import pytest

from faults.conftest import FaultDb

pytestmark = pytest.mark.faults

JOBS = 2000
RUNNERS = 3


@pytest.mark.parametrize("concurrency", [1, 4])
def test_overlapping_runners_run_every_job_exactly_once(fdb: FaultDb, concurrency: int) -> None:
    ids = fdb.add(JOBS)

    runners = [fdb.runner("--concurrency", concurrency) for _ in range(RUNNERS)]
    for runner in runners:
        runner.expect(0, timeout=240)

    starts = fdb.starts()
    assert sorted(starts) == ids, f"{JOBS - len(starts)} job(s) never ran"
    twice = {job_id: n for job_id, n in starts.items() if n != 1}
    assert not twice, f"jobs that ran more than once: {twice}"
    assert fdb.count_runs("end") == JOBS
    assert fdb.count_jobs() == 0
    ran = [r.summary("succeeded") for r in runners]
    assert sum(ran) == JOBS
    print(f"{fdb.backend}, concurrency {concurrency}: jobs per runner {ran}")
