"""Clocks: every claim and due comparison uses the scheduler's clock, so hosts need NTP, and a
claim must be much longer than the clock skew between hosts plus the heartbeat interval."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from faults.conftest import FaultDb, Runner, wait_until
from jobsched import RealClock, Scheduler, use_scheduler

pytestmark = pytest.mark.faults

SKEW = timedelta(seconds=5)


@pytest.fixture
def skewed(fdb: FaultDb) -> Iterator[Scheduler]:
    """A scheduler in this process whose clock is five seconds ahead of the runners' clocks."""
    scheduler = Scheduler(fdb.url, clock=RealClock(offset=SKEW))
    with use_scheduler(scheduler):
        yield scheduler
    scheduler.close()


def running(fdb: FaultDb, handler: str, gate: Path) -> Runner:
    data = {"wait_for": str(gate), "by_attempt": {"2": {"wait_for": None}}}
    fdb.add(1, data, handler=handler, prefix="skew")
    runner = fdb.runner()
    wait_until(lambda: fdb.count_runs("start"), 30, "the handler to start")
    wait_until(fdb.marked_started, 5, "the runner to write the start mark")
    return runner


def test_a_runner_whose_clock_is_ahead_never_takes_over_a_live_claim_of_the_default_length(
    fdb: FaultDb, skewed: Scheduler, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    runner = running(fdb, "fault.patient", gate)  # the default claim: 5 minutes

    for _ in range(3):
        report = skewed.run_due_jobs()
        assert (report.ran, report.lost) == (0, 0)
    row = fdb.row("skew-00000")
    assert row is not None and row.claimed_by.endswith(f":{runner.pid}")

    gate.touch()
    runner.expect(0)
    assert runner.summary("succeeded") == 1
    assert [(r.attempt, r.pid) for r in fdb.runs() if r.phase == "start"] == [(1, runner.pid)]


def test_a_claim_shorter_than_the_clock_skew_is_taken_over_and_fencing_keeps_one_outcome(
    fdb: FaultDb, skewed: Scheduler, tmp_path: Path
) -> None:
    # Why claims must be much longer than the skew: a 1 s claim looks expired to a clock 5 s
    # ahead, though its runner is alive and beating. Fencing still keeps one outcome.
    gate = tmp_path / "gate"
    runner = running(fdb, "fault.slow", gate)

    report = skewed.run_due_jobs()
    assert (report.lost, report.succeeded) == (1, 1)

    gate.touch()
    runner.expect(0)
    assert "the newer state wins" in runner.stderr
    assert fdb.count_jobs() == 0
