"""Isolated handlers under a real ``jobsched run-due --isolate`` process: each way an attempt
ends has its own cause and the pass goes on; a runner killed with SIGKILL takes its children
(and its fork server) with it soon after."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from faults.conftest import JOBSCHED, TESTS_DIR, FaultDb, Runner, wait_until
from jobsched import JobSpec

pytestmark = pytest.mark.faults

APP = "faults.apps.isolated"


class IsolatedRunner(Runner):
    """``jobsched --app faults.apps.isolated run-due ARGS`` as a process of its own."""

    def __init__(self, url: str, args: Sequence[str], workdir: Path, name: str) -> None:
        self.name = name
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH")) if p
        )
        command = [str(JOBSCHED), "--database-url", url, "--app", APP, "-v", "run-due", *args]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=workdir)
        self.pid = self.proc.pid
        self.code = None
        self.peak_rss_kib = 0


def run_due(fdb: FaultDb, *args: str) -> IsolatedRunner:
    runner = IsolatedRunner(fdb.url, args, fdb.workdir, f"isolated-{len(fdb.started)}")
    fdb.started.append(runner)
    return runner


def add(fdb: FaultDb, *jobs: tuple[str, str, dict[str, object]]) -> None:
    """Jobs (id, handler, data) due now, in this order."""
    first = datetime.now(UTC) - timedelta(minutes=1)
    fdb.scheduler.schedule_jobs(
        JobSpec(job_id, first + timedelta(seconds=i), handler, data)
        for i, (job_id, handler, data) in enumerate(jobs)
    )


def pids(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    lines = (line.split() for line in path.read_text().splitlines() if line)
    return {job_id: int(pid) for job_id, pid in lines}


def gone(pid: int) -> bool:
    """True once process ``pid`` has exited (a zombie counts as exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status


def parent_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("\nPPid:\t")[1].split()[0])


def test_run_due_isolate_fails_each_attempt_with_its_cause_and_runs_the_next_job(
    fdb: FaultDb,
) -> None:
    file = str(fdb.workdir / "pids")
    add(
        fdb,
        ("boom", "iso_boom", {}),
        ("hang", "iso_hang", {"file": file}),
        ("segv", "iso_segfault", {}),
        ("exit", "iso_os_exit", {}),
        ("plain", "plain_ok", {"file": file}),
    )
    runner = run_due(fdb, "--isolate").expect(0, timeout=60)
    rows = fdb.rows()
    assert {job_id: row.last_error for job_id, row in rows.items()} == {
        "boom": "ValueError: boom",
        "hang": "killed after its timeout of 1s (SIGTERM)",
        "segv": "the handler's process was killed by SIGSEGV before the handler returned",
        "exit": "the handler's process exited with code 3 before the handler returned",
    }
    assert all(row.attempts == 1 and row.claim_token is None for row in rows.values())
    ran_in = pids(fdb.workdir / "pids")
    # --isolate runs a handler without isolate=True in a child too; none runs in the runner.
    assert ran_in["plain"] != runner.pid and ran_in["hang"] != runner.pid
    assert gone(ran_in["hang"])
    # The runner logs each cause apart (the handler's own error is logged as in-process).
    for job_id, cause in [
        ("hang", "killed after its timeout of 1s"),
        ("segv", "the handler's process was killed by SIGSEGV"),
        ("exit", "the handler's process exited with code 3"),
    ]:
        assert f"job {job_id!r}: isolated attempt 1: {cause}" in runner.stderr, runner.stderr


def test_an_isolated_child_does_not_outlive_its_runner_killed_with_sigkill(
    fdb: FaultDb,
) -> None:
    file = fdb.workdir / "pids"
    add(fdb, ("long", "iso_long", {"file": str(file), "sleep": 60}))
    runner = run_due(fdb)
    child = wait_until(lambda: pids(file).get("long"), 30, "the isolated child to start")
    server = parent_of(child)  # the fork server the child came from
    assert server != runner.pid
    runner.signal(signal.SIGKILL)
    runner.wait(10)
    began = time.monotonic()
    wait_until(lambda: gone(child), 5, "the child to exit after its runner was killed")
    wait_until(lambda: gone(server), 5, "the fork server to exit after its runner was killed")
    assert time.monotonic() - began < 5
