"""Stopping a long-running worker (``jobsched worker``): SIGTERM or SIGINT lets the running
handlers finish, gives back the claimed jobs it had not started (no attempt spent) and exits 0,
and another worker runs those; a second signal, or a grace period that runs out, ends it at once
with exit code 1."""

from __future__ import annotations

import signal
import time

import pytest

from faults.conftest import FaultDb, start_worker, started_by

pytestmark = pytest.mark.faults

#: Claim length of "fault.work" jobs, in seconds.
CLAIM = 2.0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_run_lets_running_handlers_finish_and_gives_back_the_rest(
    fdb: FaultDb, sig: signal.Signals
) -> None:
    ids = fdb.add(10, {"sleep": 1.0})
    worker = start_worker(fdb, "--concurrency", 2)
    worker.wait_for(lambda: len(started_by(fdb, worker)) == 2, 30, "two handlers to start")
    began = time.monotonic()
    worker.stop(sig)
    assert time.monotonic() - began < 3, "the worker did not stop once its handlers were done"

    assert f"{sig.name}: taking no new jobs" in worker.stderr
    assert worker.summary("succeeded") == 2
    assert 1 <= worker.summary("released") <= 8, worker.stdout
    ended = sorted(r.job_id for r in fdb.runs() if r.phase == "end")
    assert ended == ids[:2], "the running handlers did not finish"
    rows = fdb.rows()
    assert sorted(rows) == ids[2:]
    # Given back: unclaimed, no attempt spent, due at once (their start times are unchanged).
    assert {(r.claim_token, r.started_at, r.attempts) for r in rows.values()} == {(None, None, 0)}
    assert len(list(fdb.scheduler.list_jobs(due=True))) == 8

    successor = start_worker(fdb, "--concurrency", 4)
    successor.wait_for(lambda: fdb.count_jobs() == 0, 20, "another worker to run the rest")
    successor.stop()
    assert successor.summary("succeeded") == 8
    assert sorted(r.job_id for r in started_by(fdb, successor)) == ids[2:]
    starts = fdb.starts()
    assert sorted(starts) == ids and set(starts.values()) == {1}, "a job ran twice"
    assert {r.attempt for r in fdb.runs()} == {1}


def test_an_idle_worker_stops_at_once(fdb: FaultDb) -> None:
    [job_id] = fdb.add(1, {})
    worker = start_worker(fdb, "--poll", 10)
    worker.wait_for(lambda: fdb.count_jobs() == 0, 30, "the worker to run a job")
    time.sleep(0.5)  # idle, waiting up to 10 s for the next look
    began = time.monotonic()
    worker.stop(signal.SIGINT)
    assert time.monotonic() - began < 3, "the worker slept out its poll before stopping"
    assert worker.took() == 1
    assert [r.job_id for r in started_by(fdb, worker)] == [job_id]


def test_a_second_signal_ends_the_worker_at_once_and_its_claims_run_out(fdb: FaultDb) -> None:
    slow_first_attempt = {"by_attempt": {"1": {"sleep": 60}}}
    ids = fdb.add(4, datas=[slow_first_attempt] * 2 + [{}] * 2)
    worker = start_worker(fdb, "--concurrency", 2)
    worker.wait_for(lambda: len(started_by(fdb, worker)) == 2, 30, "two handlers to start")
    worker.wait_for(lambda: len(fdb.marked_started()) == 2, 5, "their start marks")
    worker.signal(signal.SIGTERM)
    time.sleep(0.2)
    began = time.monotonic()
    worker.stop(signal.SIGTERM, code=1, timeout=10)
    assert time.monotonic() - began < 2
    assert worker.stderr.splitlines()[-1] == (
        "jobsched: error: second SIGTERM: exiting now; running jobs' claims will run out"
    )

    successor = start_worker(fdb, "--concurrency", 2)
    successor.wait_for(lambda: fdb.count_jobs() == 0, CLAIM + 15, "another worker to run them all")
    successor.stop()
    assert (successor.summary("lost"), successor.summary("succeeded")) == (2, 4)
    starts = sorted((r.job_id, r.attempt) for r in fdb.runs() if r.phase == "start")
    assert starts == sorted(
        [(ids[0], 1), (ids[1], 1), (ids[0], 2), (ids[1], 2), (ids[2], 1), (ids[3], 1)]
    )


def test_a_worker_whose_grace_period_runs_out_exits_1(fdb: FaultDb) -> None:
    fdb.add(2, {"sleep": 60})
    worker = start_worker(fdb, "--grace", 0.5)
    worker.wait_for(lambda: len(started_by(fdb, worker)) == 1, 30, "a handler to start")
    began = time.monotonic()
    worker.stop(code=1, timeout=10)
    assert 0.5 <= time.monotonic() - began < 3
    assert worker.stderr.splitlines()[-1] == (
        "jobsched: error: handlers still running after 0.5s grace"
    )
