"""A worker whose outcome writes fail for longer than its patience (here: a real SQLite write
lock held by another connection) starts a fresh pass, and that pass writes the outcomes first:
the worker does not take its own jobs over as if it had died, so none runs twice."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from jobsched import Job, Outcome, Scheduler
from jobsched.handlers import Registry
from jobsched.store import sql

HOLD = (
    13.0  # two of SQLite's 5 s busy timeouts (the flusher's write, the pass's last one), and more
)


def test_a_worker_writes_the_outcomes_a_failed_pass_could_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "BOOKKEEPING_PATIENCE", 0.5)
    path = tmp_path / "jobs.db"
    runs: list[str] = []
    locked = threading.Event()

    def hold_the_write_lock() -> None:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(HOLD)
        conn.execute("ROLLBACK")
        conn.close()

    holder = threading.Thread(target=hold_the_write_lock)

    def lock_then_return(job: Job) -> None:
        runs.append(job.job_id)
        if job.job_id == "a":
            holder.start()
            assert locked.wait(10)

    registry = Registry()
    registry.register("h", lock_then_return, timeout=2)
    scheduler = Scheduler(f"sqlite:///{path}", registry=registry)
    scheduler.migrate()
    scheduler.schedule_job("a", timedelta(0), "h")
    stop = threading.Event()
    worker = threading.Thread(target=scheduler.run_worker, kwargs={"stop": stop, "poll": 0.1})
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while scheduler.count_jobs() and time.monotonic() < deadline:
            time.sleep(0.1)
        # Past the job's 2 s claim, and past the time a takeover would have run it again.
        time.sleep(3)
    finally:
        stop.set()
        worker.join(60)
        holder.join(60)
    assert scheduler.count_jobs() == 0
    assert runs == ["a"]
    outcomes = [run.outcome for run in scheduler.history("a")]
    assert outcomes == [Outcome.SUCCEEDED]
    scheduler.close()
