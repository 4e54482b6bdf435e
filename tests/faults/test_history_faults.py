"""The history under real faults and real processes: an attempt killed with SIGKILL is recorded
lost, progress reaches another process while the handler runs, and pruning beside passes that
claim blocks nothing and loses nothing."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from faults.conftest import FaultDb, wait_until
from jobsched import Outcome, Progress, Status
from jobsched.schema import job_runs

pytestmark = pytest.mark.faults

#: Claim length of "fault.work" jobs, in seconds.
CLAIM = 2.0


def test_an_attempt_killed_with_sigkill_is_recorded_lost_by_the_runner_that_takes_it_over(
    fdb: FaultDb, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    [job_id] = fdb.add(1, {"wait_for": str(gate)}, prefix="kill9")
    victim = fdb.runner()
    wait_until(lambda: fdb.marked_started() == [job_id], 30, "the start mark")
    victim.kill()
    time.sleep(CLAIM + 0.2)  # its claim runs out
    gate.touch()

    fdb.run_pass()

    succeeded, lost = fdb.scheduler.history(job_id)
    assert (lost.outcome, lost.attempt) == (Outcome.LOST, 1)
    assert lost.runner is not None and lost.runner.endswith(f":{victim.pid}")
    assert lost.started_at is not None and lost.started_at < lost.finished_at
    assert lost.error is not None and f":{victim.pid}" in lost.error
    assert (succeeded.outcome, succeeded.attempt) == (Outcome.SUCCEEDED, 2)
    status = fdb.scheduler.status(job_id)
    assert status.status is Status.FINISHED and status.last_run == succeeded


def test_progress_reaches_another_process_while_the_handler_runs(
    fdb: FaultDb, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    [job_id] = fdb.add(1, {"progress": [3, 10, "copying"], "wait_for": str(gate)}, prefix="p")
    runner = fdb.runner()
    try:
        status = wait_until(
            lambda: (s := fdb.scheduler.status(job_id)).progress is not None and s,
            30,
            "the progress report",
        )
        assert status.status is Status.RUNNING
        assert status.progress == Progress(3, 10, "copying")
        assert status.runner is not None and status.runner.endswith(f":{runner.pid}")
    finally:
        gate.touch()
    runner.expect(0)
    assert fdb.scheduler.status(job_id).status is Status.FINISHED


def test_pruning_beside_two_passes_that_claim_blocks_nothing_and_loses_nothing(
    fdb: FaultDb,
) -> None:
    old = 3000  # more than one pruning batch
    long_ago = datetime.now(UTC) - timedelta(days=40)
    with fdb.engine.begin() as conn:
        conn.execute(
            job_runs.insert(),
            [
                {
                    "job_id": f"old-{i:05d}",
                    "handler": "fault.work",
                    "attempt": 1,
                    "max_attempts": 3,
                    "outcome": "failed" if i % 3 == 0 else "succeeded",
                    "runner": "gone:1",
                    "scheduled_start": long_ago,
                    "started_at": long_ago,
                    "finished_at": long_ago + timedelta(microseconds=i),
                    "data": "null",
                    "superseded": False,
                }
                for i in range(old)
            ],
        )
    ids = fdb.add(400, {"sleep": 0.002}, prefix="new")
    runners = [fdb.runner("--concurrency", 2, verbose=False) for _ in range(2)]
    pruned: list[int] = []
    pruner = threading.Thread(target=lambda: pruned.append(fdb.scheduler.prune_history()))
    time.sleep(0.1)
    pruner.start()
    pruner.join(60)
    assert not pruner.is_alive(), "pruning did not finish"
    for runner in runners:
        runner.expect(0, timeout=120)

    # (The passes prune too, at their end: together they deleted every old row.)
    assert len(pruned) == 1 and pruned[0] <= old
    assert fdb.count_jobs() == 0
    assert all(fdb.starts()[job_id] == 1 for job_id in ids), "a job ran twice or never"
    with fdb.engine.connect() as conn:
        rows = conn.execute(sa.select(job_runs.c.job_id, job_runs.c.outcome)).all()
    assert sorted(job_id for job_id, _ in rows) == ids
    assert {outcome for _, outcome in rows} == {"succeeded"}


def test_a_handler_reporting_progress_keeps_its_claim_while_it_runs(
    fdb: FaultDb, tmp_path: Path
) -> None:
    # Its claim lasts 2 s; the handler reports progress at once, then runs 4 s more. The
    # heartbeat must keep extending the claim (a progress write is not the attempt's end), so
    # a pass started meanwhile takes nothing and the job runs once.
    [job_id] = fdb.add(1, {"progress": [1, 2, "half way"], "sleep": 4}, prefix="long")
    first = fdb.runner()
    wait_until(lambda: fdb.scheduler.status(job_id).progress is not None, 30, "the progress")
    time.sleep(CLAIM + 0.5)  # past the first claim's end
    second = fdb.run_pass()
    first.expect(0)
    assert fdb.starts()[job_id] == 1, "the job ran twice: its claim was not kept"
    assert "took 0 jobs" in second.stdout, second.stdout
