"""Runners killed with SIGKILL while their handlers run: after the dead runners' claims run out,
nothing is lost, nothing is stuck, and only the attempts a crash may repeat ran twice.

The outcome rule: outcomes and start marks are written within 50 ms, so a crash re-runs at most
the attempts that were running and the ones that had finished within that interval before the
kill, each at most once more; an attempt is charged to a job only if its start mark was out (a
run cut short within 50 ms of its start runs again as the same attempt).
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import time
from collections import defaultdict

import pytest

from faults.conftest import ROUNDS, FaultDb, Run, Runner, wait_until

pytestmark = pytest.mark.faults

#: Seconds after a kill within which a finished attempt may still lack its written outcome:
#: the documented 50 ms plus room for a loaded two-core machine.
OUTCOME_SLACK = 0.5
#: Claim length of "fault.work" jobs, in seconds.
CLAIM = 2.0


def test_runners_killed_mid_pass_lose_nothing_and_repeat_only_running_attempts(
    fdb: FaultDb,
) -> None:
    seed = int(os.environ.get("JOBSCHED_FAULT_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    print(f"seed {seed} (set JOBSCHED_FAULT_SEED to repeat), {ROUNDS} rounds")
    count = 25 * ROUNDS
    max_attempts = [2 if i % 2 else 3 for i in range(count)]
    datas = [{"sleep": rng.uniform(0.01, 0.25)} for _ in range(count)]
    ids = fdb.add(count, datas=datas, prefix="kill", max_attempts=max_attempts)

    killed_at: dict[int, float] = {}
    for round_ in range(ROUNDS):
        victim = fdb.runner("--concurrency", rng.choice([1, 2, 4]))
        wait_until(lambda r=victim: handler_started(fdb, r), 30, f"round {round_}: a start")
        time.sleep(rng.uniform(0, 0.6))
        victim.kill()
        killed_at[victim.pid] = time.time()
        assert victim.code == -signal.SIGKILL, f"round {round_}: {victim.stderr[-2000:]}"

    time.sleep(CLAIM + 0.2)  # the last victim's claims run out
    final = fdb.run_pass("--concurrency", 4)
    assert fdb.claimed() == [], "claims stuck after the final pass"
    assert fdb.count_jobs() == 0, f"jobs left over: {sorted(fdb.rows())[:10]}"

    by_job: dict[str, list[Run]] = defaultdict(list)
    for run in fdb.runs():
        by_job[run.job_id].append(run)
    succeeded = failed = repeated = 0
    for i, job_id in enumerate(ids):
        starts = [r for r in by_job[job_id] if r.phase == "start"]
        ends = [r for r in by_job[job_id] if r.phase == "end"]
        attempts = [r.attempt for r in starts]
        assert attempts == sorted(attempts), f"{job_id}: attempts {attempts}"
        assert len(set(attempts)) <= max_attempts[i], f"{job_id}: attempts {attempts}"
        # Every run but the last was in a killed runner, one run per kill at most (a crash
        # repeats a job at most once), and was running at the kill or had finished just before.
        pids = [run.pid for run in starts[:-1]]
        assert len(pids) == len(set(pids)), f"{job_id} ran twice in one runner"
        for run, after in itertools.pairwise(starts):
            assert run.pid in killed_at, f"{job_id}: attempt {run.attempt} repeated, runner alive"
            end = next((e for e in ends if e.attempt == run.attempt and e.pid == run.pid), None)
            if end is not None:
                assert killed_at[run.pid] - end.at < OUTCOME_SLACK, (
                    f"{job_id}: attempt {run.attempt} finished {killed_at[run.pid] - end.at:.3f}s "
                    "before its runner was killed, yet ran again"
                )
            if after.attempt == run.attempt:
                # Run again without spending an attempt: only when its start mark (written
                # within 50 ms of the handler's start) could not be out before the kill.
                assert killed_at[run.pid] - run.at < OUTCOME_SLACK, (
                    f"{job_id}: attempt {run.attempt} started {killed_at[run.pid] - run.at:.3f}s "
                    "before its runner was killed, yet was not counted"
                )
        if starts and any(e.attempt == starts[-1].attempt for e in ends):
            succeeded += 1
        else:
            # Gone without a finished attempt: only FAILED (attempts used up by crashes) does that.
            assert all(r.pid in killed_at for r in starts), f"{job_id} vanished"
            failed += 1
        repeated += len(starts) > 1
    print(
        f"{fdb.backend}: {count} jobs, {ROUNDS} kills: {succeeded} succeeded, {failed} failed "
        f"after their attempts were lost, {repeated} ran more than once; final pass: "
        f"{final.stdout.strip()}"
    )
    assert succeeded + failed == count


def handler_started(fdb: FaultDb, runner: Runner) -> bool:
    """True once one of ``runner``'s handlers has started (it must not end before that)."""
    assert runner.poll() is None, f"the runner ended before a handler started: {runner.stdout}"
    return any(run.pid == runner.pid for run in fdb.runs())
