"""A job whose handler kills its runner every time (os._exit, out of memory) ends FAILED after
max_attempts instead of looping forever, and the jobs claimed with it still run."""

from __future__ import annotations

import time

import pytest

from faults.conftest import FaultDb

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
    assert [p.code for p in passes].count(137) == 3
    starts = [(r.job_id, r.attempt) for r in fdb.runs() if r.phase == "start"]
    assert [a for job_id, a in starts if job_id == poison] == [1, 2, 3]
    assert sorted(job_id for job_id, _ in starts if job_id != poison) == sorted(
        i for i in ids if i != poison
    ), "the jobs claimed with the poison job must each run exactly once"
    assert fdb.count_runs("end") == 5
    final = next(p for p in passes if p.summary("failed"))
    assert final.summary("failed") == 1
    assert f"job {poison!r} failed after 3 attempt(s): attempt 3 lost: its runner" in final.stderr
