"""SIGTERM/SIGINT: a pass stops taking jobs, lets running handlers finish within --grace, gives
back the jobs it had not started (due again at once, no attempt spent) and exits 0. A second
signal, or a grace period that runs out, ends it at once with exit code 1."""

from __future__ import annotations

import signal
import time

import pytest

from faults.conftest import FaultDb, Runner, wait_until

pytestmark = pytest.mark.faults


def started_in(fdb: FaultDb, runner: Runner) -> int:
    return sum(1 for run in fdb.runs() if run.pid == runner.pid and run.phase == "start")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_pass_lets_running_handlers_finish_and_releases_the_rest(
    fdb: FaultDb, sig: signal.Signals
) -> None:
    ids = fdb.add(10, {"sleep": 1.0})
    runner = fdb.runner("--concurrency", 2)
    wait_until(lambda: started_in(fdb, runner) == 2, 30, "two handlers to start")
    runner.signal(sig)
    runner.expect(0, timeout=10)

    assert f"{sig.name}: taking no new jobs" in runner.stderr
    assert (runner.summary("succeeded"), runner.summary("released")) == (2, 8)
    ran = [r.job_id for r in fdb.runs() if r.phase == "end"]
    assert ran == ids[:2] or ran == ids[1::-1], "the running handlers did not finish"
    rows = fdb.rows()
    assert sorted(rows) == ids[2:]
    # Given back: unclaimed, no attempt spent, due at once (their start times are unchanged).
    assert {(r.claim_token, r.started_at, r.attempts) for r in rows.values()} == {(None, None, 0)}
    assert len(list(fdb.scheduler.list_jobs(due=True))) == 8


def test_a_second_signal_ends_the_pass_at_once_and_its_claims_run_out(fdb: FaultDb) -> None:
    slow_first_attempt = {"by_attempt": {"1": {"sleep": 60}}}
    ids = fdb.add(4, datas=[slow_first_attempt] * 2 + [{}] * 2)
    runner = fdb.runner("--concurrency", 2)
    wait_until(lambda: started_in(fdb, runner) == 2, 30, "two handlers to start")
    runner.signal(signal.SIGTERM)
    time.sleep(0.2)
    began = time.monotonic()
    runner.signal(signal.SIGTERM)
    runner.expect(1, timeout=10)
    assert time.monotonic() - began < 2
    assert runner.stderr.splitlines()[-1] == (
        "jobsched: error: second SIGTERM: exiting now; running jobs' claims will run out"
    )

    time.sleep(2.2)  # the claims (2 s) of the two interrupted attempts run out
    after = fdb.run_pass("--concurrency", 2)
    assert (after.summary("lost"), after.summary("succeeded")) == (2, 4)
    starts = sorted((r.job_id, r.attempt) for r in fdb.runs() if r.phase == "start")
    assert starts == sorted(
        [(ids[0], 1), (ids[1], 1), (ids[0], 2), (ids[1], 2), (ids[2], 1), (ids[3], 1)]
    )


def test_a_pass_whose_grace_period_runs_out_exits_1(fdb: FaultDb) -> None:
    fdb.add(2, {"sleep": 60})
    runner = fdb.runner("--grace", 0.5)
    wait_until(lambda: started_in(fdb, runner) == 1, 30, "a handler to start")
    began = time.monotonic()
    runner.signal(signal.SIGTERM)
    runner.expect(1, timeout=10)
    assert 0.5 <= time.monotonic() - began < 3
    assert runner.stderr.splitlines()[-1] == (
        "jobsched: error: handlers still running after 0.5s grace"
    )
