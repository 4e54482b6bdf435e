"""Isolated handlers under a real ``jobsched worker``: an attempt that runs past its timeout, one
whose process segfaults and one that calls ``os._exit(3)`` each fail with their own cause, and
the worker, which never dies with them, runs the next job and keeps running.
(``test_isolation_faults.py`` shows the same of ``run-due --isolate``.)"""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from faults.conftest import FaultDb, start_worker, started_by
from jobsched import JobSpec

pytestmark = pytest.mark.faults


def add(fdb: FaultDb, *jobs: tuple[str, str, object]) -> None:
    """Jobs (id, handler, data) due now, in this order."""
    first = datetime.now(UTC) - timedelta(minutes=1)
    fdb.scheduler.schedule_jobs(
        JobSpec(job_id, first + timedelta(seconds=i), handler, data)
        for i, (job_id, handler, data) in enumerate(jobs)
    )


def pids(path: Path) -> dict[str, int]:
    """The pid each isolated handler wrote when it started, by job id."""
    if not path.exists():
        return {}
    lines = (line.split() for line in path.read_text().splitlines() if line)
    return {job_id: int(pid) for job_id, pid in lines}


def failed_once(fdb: FaultDb, job_id: str) -> bool:
    """True once ``job_id``'s first attempt has failed (its job waits for a retry, unclaimed)."""
    row = fdb.row(job_id)
    return row is not None and row.attempts == 1 and row.claim_token is None


def test_isolated_attempts_that_hang_segfault_or_exit_fail_with_their_cause_and_the_worker_goes_on(
    fdb: FaultDb,
) -> None:
    file = str(fdb.workdir / "pids")
    add(
        fdb,
        ("hang", "iso_hang", {"file": file}),
        ("segv", "iso_segfault", {"file": file}),
        ("exit", "iso_os_exit", {"file": file}),
        ("next", "fault.work", {}),
    )
    worker = start_worker(fdb)
    worker.wait_for(lambda: "next" not in fdb.rows(), 30, "the job after them to run")
    causes = {
        "hang": "killed after its timeout of 1s (SIGTERM)",
        "segv": "the handler's process was killed by SIGSEGV before the handler returned",
        "exit": "the handler's process exited with code 3 before the handler returned",
    }
    rows = fdb.rows()
    assert {job_id: row.last_error for job_id, row in rows.items()} == causes
    # Each failed its attempt (retried later), and the worker holds none of them.
    assert {(row.attempts, row.claim_token, row.started_at) for row in rows.values()} == {
        (1, None, None)
    }
    for job_id in causes:
        line = f"job {job_id!r}: isolated attempt 1: {causes[job_id].split(' (')[0]}"
        assert line in worker.stderr, worker.stderr[-3000:]
    children = pids(fdb.workdir / "pids")
    assert sorted(children) == sorted(causes) and worker.pid not in children.values()
    assert [r.job_id for r in started_by(fdb, worker)] == ["next"]

    # Still alive, and still taking jobs.
    fdb.scheduler.schedule_job("later", timedelta(0), "fault.work", {})
    worker.wait_for(lambda: "later" not in fdb.rows(), 10, "a job scheduled afterwards to run")
    worker.stop()
    assert (worker.summary("retried"), worker.summary("succeeded")) == (3, 2)


def test_worker_isolate_runs_every_handler_in_a_child(fdb: FaultDb) -> None:
    file = str(fdb.workdir / "pids")
    add(fdb, ("plain", "plain_ok", {"file": file}), ("exit", "iso_os_exit", {"file": file}))
    worker = start_worker(fdb, "--isolate")
    worker.wait_for(lambda: "plain" not in fdb.rows(), 30, "the plain handler to run")
    worker.wait_for(lambda: failed_once(fdb, "exit"), 10, "the exiting handler's attempt to fail")
    children = pids(fdb.workdir / "pids")
    assert sorted(children) == ["exit", "plain"]
    assert worker.pid not in children.values(), "a handler ran in the worker's own process"
    worker.stop()
    assert (worker.summary("succeeded"), worker.summary("retried")) == (1, 1)


def test_ctrl_c_lets_an_isolated_handler_finish_within_the_grace(fdb: FaultDb) -> None:
    file = str(fdb.workdir / "pids")
    add(fdb, ("slow", "iso_ok", {"file": file, "sleep": 0.7}), ("waiting", "iso_ok", {}))
    worker = start_worker(fdb, session=True)
    worker.wait_for(lambda: "slow" in pids(fdb.workdir / "pids"), 30, "the handler to start")
    # A terminal's Ctrl-C: SIGINT to the whole process group (worker, fork server, child).
    os.killpg(worker.pid, signal.SIGINT)
    worker.expect(0, timeout=10)
    assert (worker.summary("succeeded"), worker.summary("released")) == (1, 1), worker.stdout
    assert sorted(fdb.rows()) == ["waiting"]
