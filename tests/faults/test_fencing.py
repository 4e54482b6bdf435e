"""Fencing: a runner paused past its claim, whose job another runner took over, cannot overwrite
the outcome of the runner that took over when it resumes; it logs why."""

from __future__ import annotations

import signal
from datetime import UTC, datetime

import pytest

from faults.conftest import FaultDb, wait_until

pytestmark = pytest.mark.faults

JOB = "paused-00000"


def test_a_runner_paused_past_its_claim_cannot_overwrite_the_outcome_of_the_one_that_took_over(
    fdb: FaultDb,
) -> None:
    # Attempt 1 (the runner we pause) would succeed; attempt 2 (the one that takes over) fails,
    # which keeps the job with its error: if the paused runner's success got written, it is gone.
    fdb.add(
        1,
        {"by_attempt": {"1": {"sleep": 3.0}, "2": {"fail": "attempt 2 failed, as planned"}}},
        prefix="paused",
    )
    paused = fdb.runner()
    wait_until(lambda: fdb.count_runs("start"), 30, "attempt 1 to start")
    # Pause it while its handler sleeps, just after a heartbeat committed (so no transaction of
    # its own is open and no row lock is held), and keep it stopped past its claim.
    row = fdb.row(JOB)
    assert row is not None
    beat = row.claimed_until
    wait_until(lambda: fdb.row(JOB).claimed_until != beat, 5, "a heartbeat", step=0.002)
    paused.signal(signal.SIGSTOP)
    try:
        until = fdb.row(JOB).claimed_until
        wait_until(lambda: datetime.now(UTC) > until, 5, "the paused runner's claim to run out")

        taker = fdb.run_pass()
        assert (taker.summary("lost"), taker.summary("retried")) == (1, 1)
    finally:
        paused.signal(signal.SIGCONT)
    paused.expect(0)

    assert "the newer state wins" in paused.stderr
    row = fdb.row(JOB)
    assert row is not None, "the resumed runner's success removed the job"
    assert row.attempts == 2
    assert row.last_error == "RuntimeError: attempt 2 failed, as planned"
    assert row.claim_token is None
    assert [(r.attempt, r.pid, r.phase) for r in fdb.runs()] == [
        (1, paused.pid, "start"),
        (2, taker.pid, "start"),
        (1, paused.pid, "end"),
    ]
