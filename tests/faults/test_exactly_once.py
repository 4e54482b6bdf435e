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
    # A pass gives back a claimed job it cannot start safely (its heartbeat could not renew the
    # claim in time: SQLite's one writer, a loaded machine). Such a job is due again at once and
    # runs in the next pass, no attempt spent; a pass that ended first does not wait for it.
    given_back = sum(r.summary("released") for r in runners)
    left = fdb.count_jobs()
    assert left <= given_back, f"{left} job(s) left, only {given_back} given back"
    if left:
        print(f"{left} job(s) given back and left for the next pass")
        runners.append(fdb.runner("--concurrency", concurrency).expect(0, timeout=240))
        assert runners[-1].summary("succeeded") == left

    starts = fdb.starts()
    assert sorted(starts) == ids, f"{JOBS - len(starts)} job(s) never ran"
    twice = {job_id: n for job_id, n in starts.items() if n != 1}
    assert not twice, f"jobs that ran more than once: {twice}"
    assert fdb.count_runs("end") == JOBS
    assert fdb.count_jobs() == 0
    ran = [r.summary("succeeded") for r in runners]
    assert sum(ran) == JOBS
    print(f"{fdb.backend}, concurrency {concurrency}: jobs per runner {ran}")
