"""``jobsched runners`` beside a real ``jobsched worker``: while a job runs it lists the worker
(kind, pid, concurrency, a fresh heartbeat) and the job it runs (handler, scheduled start,
started time, progress); once the job ended, the worker with no job; after a clean stop, nothing."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from faults.conftest import JOBSCHED, FaultDb, start_worker

pytestmark = pytest.mark.faults


def jobsched(fdb: FaultDb, *args: str) -> subprocess.CompletedProcess[str]:
    """A ``jobsched`` command on the test's database, to its end (exit 0)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
    command = [str(JOBSCHED), "--database-url", fdb.url, *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


def runners(fdb: FaultDb, pid: int) -> list[dict[str, Any]]:
    """The live runners ``jobsched runners --json`` lists with this pid (the shared MariaDB
    database may still list the killed runners of earlier tests: live for a minute)."""
    found = json.loads(jobsched(fdb, "runners", "--json").stdout)["runners"]
    return [r for r in found if r["pid"] == pid]


def test_runners_shows_a_worker_and_the_job_it_is_running(fdb: FaultDb, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    [job_id] = fdb.add(
        1, {"progress": [3, 10, "copying"], "wait_for": str(gate)}, handler="fault.patient"
    )
    worker = start_worker(fdb, "--concurrency", 2)
    try:
        worker.wait_for(lambda: fdb.marked_started() == [job_id], 30, "the job's start mark")
        scheduled = fdb.scheduler.get_job(job_id).start  # type: ignore[union-attr]
        # The registration and the progress report may each take a moment to be written.
        found = worker.wait_for(
            lambda: [r for r in runners(fdb, worker.pid) if r["jobs"] and r["jobs"][0]["progress"]],
            10,
            "runners to list the worker with its job and progress",
        )
        [me] = found
        assert (me["pid"], me["kind"], me["concurrency"], me["stale"]) == (
            worker.pid,
            "worker",
            2,
            False,
        )
        assert me["name"].endswith(f":{worker.pid}")
        assert me["heartbeat_age_seconds"] < 30
        [job] = me["jobs"]
        assert (job["job_id"], job["handler"]) == (job_id, "fault.patient")
        assert datetime.fromisoformat(job["scheduled_start"]) == scheduled
        [started] = [r.at for r in fdb.runs() if r.phase == "start"]
        assert abs(datetime.fromisoformat(job["started_at"]).timestamp() - started) < 1
        assert job["progress"]["done"] == 3 and job["progress"]["total"] == 10
        assert job["progress"]["note"] == "copying"

        text = jobsched(fdb, "runners").stdout
        assert me["name"] in text and job_id in text and "fault.patient" in text, text
    finally:
        gate.touch()

    worker.wait_for(lambda: fdb.count_jobs() == 0, 10, "the job to finish")
    # Still listed, with no job.
    worker.wait_for(lambda: [r["jobs"] for r in runners(fdb, worker.pid)] == [[]], 10, "no job")
    worker.stop()
    assert runners(fdb, worker.pid) == [], "a worker that stopped cleanly is still listed"
