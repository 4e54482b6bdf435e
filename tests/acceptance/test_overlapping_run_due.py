"""Two real ``jobsched run-due`` processes over the same due jobs: each job runs exactly once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from jobsched import Scheduler

JOBSCHED = Path(sys.executable).parent / "jobsched"
APPS = Path(__file__).parent / "apps"
JOBS = 300
RUNNERS = 2
SUMMARY = re.compile(
    r"^jobsched run-due: took \d+ jobs?(?: \([a-z0-9, ]+\))?: ran (\d+)(?:[,;][a-z0-9 ,;()]*)? "
    r"in \d+\.\d\ds$"
)


def schedule_due_jobs(url: str, count: int) -> list[str]:
    scheduler = Scheduler(url)
    try:
        ids = [f"job-{i:04}" for i in range(count)]
        now = scheduler.now()
        # Distinct start times in the past, so both runners walk the same order.
        scheduler.schedule_jobs(
            {"job_id": job_id, "start": now - timedelta(seconds=count - i), "handler": "record"}
            for i, job_id in enumerate(ids)
        )
        assert scheduler.count_jobs() == count
        return ids
    finally:
        scheduler.close()


def start_runners(url: str, tmp_path: Path, runs: Path) -> list[subprocess.Popen[str]]:
    """Start the runners; each waits at a start gate (in its app module) until all are up."""
    gate = tmp_path / "gate"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
    env.update(
        JOBSCHED_DATABASE_URL=url,
        JOBSCHED_TEST_RUNS_FILE=str(runs),
        JOBSCHED_TEST_START_GATE=str(gate),
    )
    processes = [
        subprocess.Popen(
            [str(JOBSCHED), "--app", "record_runs", "run-due"],
            cwd=APPS,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(RUNNERS)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("gate.ready.*"))) < RUNNERS:
        assert time.monotonic() < deadline, "the runners never reached the start gate"
        assert all(p.poll() is None for p in processes), [p.communicate() for p in processes]
        time.sleep(0.01)
    gate.touch()
    return processes


@pytest.mark.timeout(300)
def test_two_overlapping_run_due_processes_run_each_job_exactly_once(
    db_url: str, tmp_path: Path
) -> None:
    ids = schedule_due_jobs(db_url, JOBS)
    runs = tmp_path / "runs.log"
    processes = start_runners(db_url, tmp_path, runs)

    ran = 0
    for process in processes:
        stdout, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr
        match = SUMMARY.match(stdout.strip())
        assert match, stdout
        ran += int(match.group(1))

    lines = runs.read_text().splitlines()
    times_run = Counter(line.split()[0] for line in lines)
    assert set(times_run) == set(ids)
    assert [job_id for job_id, n in times_run.items() if n != 1] == []
    assert ran == JOBS
    # Both runners took part: the passes really overlapped.
    assert len({line.split()[1] for line in lines}) == RUNNERS

    scheduler = Scheduler(db_url)
    try:
        assert scheduler.count_jobs() == 0
    finally:
        scheduler.close()
