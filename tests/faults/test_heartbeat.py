"""Heartbeat: a live runner's claims (running, or claimed and waiting) never run out."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta

import pytest

from faults.conftest import FaultDb, wait_until

pytestmark = pytest.mark.faults

HALF_HOUR = timedelta(minutes=30)


def test_a_live_runners_slow_attempts_are_never_taken_over(fdb: FaultDb) -> None:
    # Claims of 1 s ("fault.slow"); each attempt takes 1.6 s, and the second waits for the first.
    ids = fdb.add(2, {"sleep": 1.6}, handler="fault.slow")
    slow = fdb.runner("--concurrency", 1)
    wait_until(fdb.count_runs, 10, "the first attempt to start")

    others = []
    while slow.poll() is None:
        others.append(fdb.runner().expect(0))

    slow.expect(0)
    assert slow.summary("succeeded") == 2
    assert len(others) >= 3
    assert [other.summary("ran") for other in others] == [0] * len(others)
    assert fdb.starts() == {job_id: 1 for job_id in ids}
    assert fdb.count_jobs() == 0


def test_a_resumed_runners_heartbeat_leaves_alone_the_jobs_another_runner_took_over(
    fdb: FaultDb,
) -> None:
    # A runner frozen past its claims, whose jobs another runner took over meanwhile, must not
    # extend those claims when it wakes: its heartbeat extends only rows that still carry its
    # claim's token. Otherwise a job the other runner kept (unclaimed, due again) would look
    # claimed for a whole lease, and nobody would run it.
    [first] = fdb.add(1, {"by_attempt": {"1": {"sleep": 1.5}}})
    # Next, a job of 5-minute claims keeps the frozen runner busy for a second after it wakes
    # (its claim is still good, and the other runner serves only "fault.work"), so that its
    # heartbeat beats while it still holds the last job's (stale) claim.
    [busy] = fdb.add(1, {"sleep": 1.0}, handler="fault.patient", prefix="busy", overdue=HALF_HOUR)
    [kept] = fdb.add(1, {"keep": True}, prefix="kept", overdue=timedelta(minutes=10))
    frozen = fdb.runner()
    wait_until(lambda: fdb.count_runs("start"), 30, "the first handler to start")
    beat = fdb.row(kept).claimed_until
    wait_until(lambda: fdb.row(kept).claimed_until != beat, 5, "a heartbeat", step=0.002)
    frozen.signal(signal.SIGSTOP)
    try:
        until = fdb.row(kept).claimed_until
        wait_until(lambda: datetime.now(UTC) > until, 5, "the frozen runner's claims to run out")
        taker = fdb.run_pass("--handler", "fault.work")
        assert (taker.summary("lost"), taker.summary("kept")) == (1, 1)
    finally:
        frozen.signal(signal.SIGCONT)
    # It wakes, beats, and finds it no longer holds the kept job's claim.
    wait_until(
        lambda: (
            f"job {kept!r} (fault.work): this runner no longer holds its claim" in frozen.stderr
        ),
        10,
        "the woken runner's heartbeat",
    )
    row = fdb.row(kept)
    assert (row.claim_token, row.claimed_until) == (None, None), "a stale heartbeat claimed it"
    # Nobody holds it: a pass now runs it (while the woken runner still runs its own job).
    assert fdb.run_pass("--handler", "fault.work").summary("kept") == 1
    frozen.expect(0)
    assert fdb.starts() == {first: 2, kept: 2, busy: 1}
