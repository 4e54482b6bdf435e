"""Expiry is judged when a job would start, not when its batch was claimed; a failed attempt is
retried its retry delay after it failed, not after the claim (issue 12, invariant 5). With
real processes and a real clock: a batch's jobs wait behind the handlers before them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from faults.conftest import FaultDb, wait_until
from jobsched.model import RETRY_DELAY

pytestmark = pytest.mark.faults


def test_a_job_whose_expiry_passes_while_an_earlier_job_of_its_batch_runs_does_not_start(
    fdb: FaultDb, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    [first] = fdb.add(1, {"wait_for": str(gate)})
    now = datetime.now(UTC)
    expiry = now + timedelta(seconds=3)
    fdb.scheduler.schedule_job("expiring", now - timedelta(minutes=30), "fault.work", expiry=expiry)
    fdb.scheduler.schedule_job("lasting", now - timedelta(minutes=20), "fault.work")
    runner = fdb.runner()
    wait_until(lambda: fdb.count_runs("start"), 30, "the first handler to start")
    row = fdb.row("expiring")
    assert row is not None and row.claim_token is not None, "not claimed with the first job"
    assert datetime.now(UTC) < expiry, "the runner took too long to start: claimed after expiry"
    # The first handler runs on past the expiry of the job claimed with it.
    wait_until(lambda: datetime.now(UTC) > expiry + timedelta(milliseconds=50), 5, "the expiry")
    gate.touch()
    runner.expect(0)

    assert (runner.summary("succeeded"), runner.summary("expired")) == (2, 1)
    assert fdb.starts() == {first: 1, "lasting": 1}
    assert fdb.count_jobs() == 0


def test_a_failed_attempt_is_retried_its_retry_delay_after_it_failed_not_after_its_claim(
    fdb: FaultDb,
) -> None:
    [job_id] = fdb.add(1, {"sleep": 1.5, "fail": "failed, as planned"})
    runner = fdb.run_pass()
    ended = time.time()

    assert runner.summary("retried") == 1
    [start] = [run for run in fdb.runs() if run.phase == "start"]
    row = fdb.row(job_id)
    assert row is not None and row.attempts == 1
    assert row.last_error == "RuntimeError: failed, as planned"
    failed_at = (row.start_time - RETRY_DELAY).timestamp()
    # The handler failed 1.5 s after it started (and its claim was taken before that).
    print(f"{fdb.backend}: retry counted from {failed_at - start.at:.3f}s after the start")
    assert start.at + 1.5 <= failed_at + 0.01
    assert failed_at <= ended
