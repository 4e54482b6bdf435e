"""Heartbeat: a live runner's claims (running, or claimed and waiting) never run out."""

from __future__ import annotations

import pytest

from faults.conftest import FaultDb, wait_until

pytestmark = pytest.mark.faults


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
