"""A graceful stop (SIGTERM, SIGINT, --max-seconds) gives back every job whose handler has not
started, with no attempt spent (issue 12, invariant 2): unclaimed, not marked started, due at
once; the next pass runs each of them as its first attempt."""

from __future__ import annotations

import signal

import pytest

from faults.conftest import FaultDb, Runner, wait_until

pytestmark = pytest.mark.faults

STOPS = ["SIGTERM", "SIGINT", "max-seconds"]


def started_in(fdb: FaultDb, runner: Runner) -> int:
    return sum(1 for run in fdb.runs() if run.pid == runner.pid and run.phase == "start")


@pytest.mark.parametrize("stop", STOPS)
def test_a_graceful_stop_gives_back_every_unstarted_job_with_no_attempt_spent(
    fdb: FaultDb, stop: str
) -> None:
    ids = fdb.add(12, {"sleep": 0.4})
    if stop == "max-seconds":
        runner = fdb.runner("--concurrency", 2, "--max-seconds", 0.6)
    else:
        runner = fdb.runner("--concurrency", 2)
        wait_until(lambda: started_in(fdb, runner) >= 2, 30, "two handlers to start")
        runner.signal(getattr(signal, stop))
    runner.expect(0, timeout=20)

    started = {run.job_id for run in fdb.runs() if run.phase == "start"}
    ended = {run.job_id for run in fdb.runs() if run.phase == "end"}
    assert started and started == ended, "a started handler did not finish"
    assert runner.summary("succeeded") == len(started)
    assert runner.summary("released") == len(ids) - len(started)
    rows = fdb.rows()
    assert sorted(rows) == sorted(set(ids) - started)
    assert {
        (r.claim_token, r.claimed_by, r.claimed_until, r.started_at, r.attempts, r.last_error)
        for r in rows.values()
    } == {(None, None, None, None, 0, None)}
    # Due at once, and each runs as its first attempt.
    after = fdb.run_pass("--concurrency", 4)
    assert after.summary("succeeded") == len(rows)
    assert fdb.starts() == {job_id: 1 for job_id in ids}
    assert {run.attempt for run in fdb.runs()} == {1}
