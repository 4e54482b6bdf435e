"""The web app changes a job while its handler runs in a run-due process: the newer state wins,
and a job rescheduled to be due at once does not start again while its first attempt runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from faults.conftest import FaultDb, Runner, wait_until
from jobsched import Mode

pytestmark = pytest.mark.faults

NEWER_STATE_WINS = "the newer state wins"


def while_running(fdb: FaultDb, tmp_path: Path, change: Callable[[], None]) -> Runner:
    """Start job "race" in a runner, ``change`` it while the handler waits, then let it finish."""
    gate = tmp_path / "gate"
    fdb.add(1, {"wait_for": str(gate)}, prefix="race")
    runner = fdb.runner()
    wait_until(lambda: fdb.count_runs("start"), 30, "the handler to start")
    change()
    # Another pass meanwhile must not start it again, whatever the change made of it.
    assert fdb.run_pass().summary("ran") == 0
    gate.touch()
    runner.expect(0)
    assert runner.summary("succeeded") == 1  # the handler did succeed ...
    assert NEWER_STATE_WINS in runner.stderr  # ... but its outcome was not written
    return runner


def test_reschedule_while_running_wins_and_the_job_runs_again_after(
    fdb: FaultDb, tmp_path: Path
) -> None:
    def reschedule() -> None:
        fdb.scheduler.schedule_job(
            "race-00000", timedelta(0), "fault.work", {"v": 2}, mode=Mode.RESCHEDULE
        )

    while_running(fdb, tmp_path, reschedule)

    row = fdb.row("race-00000")
    assert row is not None, "the runner's finish removed the rescheduled job"
    assert (row.data, row.attempts, row.claim_token, row.started_at) == ('{"v":2}', 0, None, None)
    fdb.run_pass()
    assert [(r.job_id, r.attempt) for r in fdb.runs() if r.phase == "start"] == [
        ("race-00000", 1),
        ("race-00000", 1),
    ]
    assert fdb.count_jobs() == 0


def test_update_job_while_running_wins(fdb: FaultDb, tmp_path: Path) -> None:
    later = timedelta(hours=2)

    def update() -> None:
        fdb.scheduler.update_job(
            "race-00000",
            lambda job: (job and replace(job, data={"v": 2}, start=later), None),
        )

    while_running(fdb, tmp_path, update)

    row = fdb.row("race-00000")
    assert row is not None, "the runner's finish removed the updated job"
    assert (row.data, row.claim_token, row.started_at) == ('{"v":2}', None, None)
    assert fdb.count_runs("start") == 1


def test_remove_job_while_running_wins(fdb: FaultDb, tmp_path: Path) -> None:
    while_running(fdb, tmp_path, lambda: fdb.scheduler.remove_job("race-00000"))

    assert fdb.row("race-00000") is None
    assert fdb.count_runs("start") == 1


def test_a_job_removed_and_scheduled_anew_while_running_keeps_the_new_one(
    fdb: FaultDb, tmp_path: Path
) -> None:
    def recreate() -> None:
        fdb.scheduler.remove_job("race-00000")
        fdb.scheduler.schedule_job("race-00000", timedelta(hours=1), "fault.work", {"v": 2})

    while_running(fdb, tmp_path, recreate)

    row = fdb.row("race-00000")
    assert row is not None, "the old attempt's finish removed the new job"
    assert (row.data, row.attempts, row.claim_token) == ('{"v":2}', 0, None)
