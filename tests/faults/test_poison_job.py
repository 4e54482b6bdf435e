"""A job whose handler kills its runner every time (os._exit, out of memory) ends FAILED after
at most max_attempts + 1 crashes instead of looping forever, and the jobs claimed in the same
batch all run, losing no attempt: a crash no start mark pins on a job spends no attempt, and the
jobs of a dead runner then run alone, each after a written start, so the next crash is pinned."""

from __future__ import annotations

import time

import pytest

from faults.conftest import FaultDb
from faults.test_crash_recovery import OUTCOME_SLACK

pytestmark = pytest.mark.faults


def test_a_handler_that_kills_its_runner_every_time_fails_after_max_attempts(
    fdb: FaultDb,
) -> None:
    datas: list[object] = [{} for _ in range(6)]
    datas[2] = {"exit": 137}
    ids = fdb.add(6, datas=datas, prefix="batch", max_attempts=3)
    poison = ids[2]

    passes = []
    deadline = time.monotonic() + 60
    while fdb.count_jobs() and time.monotonic() < deadline:
        runner = fdb.runner()
        code = runner.wait()
        assert code in (0, 137), runner.stderr[-3000:]
        passes.append(runner)
        if code == 137 or not runner.summary("ran"):
            time.sleep(0.2)  # the dead runner's claims (2 s) have to run out first

    assert fdb.count_jobs() == 0, f"left after 60 s: {sorted(fdb.rows())}"
    # The first crash comes before the poison job's start mark is out (it exits at once), so
    # it spends no attempt: then each crash spends one, max_attempts + 1 crashes at most.
    crashes = [p.code for p in passes].count(137)
    assert 3 <= crashes <= 4, crashes
    runs = fdb.runs()
    starts = [r for r in runs if r.phase == "start"]
    assert [r.attempt for r in starts if r.job_id == poison] in ([1, 2, 3], [1, 1, 2, 3])
    # When the poison job killed its runner: its own start record in that runner.
    crashed_at = {r.pid: r.at for r in starts if r.job_id == poison}
    for job_id in (i for i in ids if i != poison):
        mine = [r for r in starts if r.job_id == job_id]
        assert [r.attempt for r in mine] in ([1], [1, 1]), f"{job_id} lost an attempt: {mine}"
        for run in mine[:-1]:
            # Run again only if its outcome was still waiting to be written (50 ms) at the crash.
            end = next(
                r for r in runs if r.phase == "end" and r.pid == run.pid and r.job_id == job_id
            )
            assert crashed_at[run.pid] - end.at < OUTCOME_SLACK, f"{job_id} ran again"
    final = next(p for p in passes if p.summary("failed"))
    assert final.summary("failed") == 1
    assert f"job {poison!r} failed after 3 attempt(s): attempt 3 lost: its runner" in final.stderr
