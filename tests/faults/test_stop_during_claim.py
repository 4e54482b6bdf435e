"""After SIGTERM/SIGINT no handler starts, including the ones whose claim was being taken when
the signal came (issue 12, invariant 8): a claim that waited on the database (SQLite's write
lock, a row lock on MariaDB) and goes through after the signal is given back whole."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import storeops

from faults.conftest import FaultDb, wait_until
from faults.test_start_margin import starts_in_file
from jobsched.rules import FIRST_BATCH

pytestmark = pytest.mark.faults


def claim_waiting(conn: sa.Connection) -> Any:
    """The id of the runner's connection whose claim waits on our lock, if any: it writes the
    outcome of the job before (a fenced DELETE) in the same transaction."""
    query = (
        "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
        "AND ID <> CONNECTION_ID() AND INFO LIKE 'DELETE %%jobs%%'"
    )
    return conn.exec_driver_sql(query).scalar()


def test_a_signal_while_a_claim_waits_for_the_database_starts_no_handler(
    fdb: FaultDb, tmp_path: Path
) -> None:
    # The first batch: a job that waits for the gate, then quick ones; ten more jobs wait for
    # the next claim, which the pass makes once the first job has returned (at once, or after
    # the rest of the batch). The first batch's handlers record their runs in a file: the
    # database is locked while they run.
    gate = tmp_path / "gate"
    started = tmp_path / "started.txt"
    quick = {"file": str(started), "no_record": True}
    datas: list[object] = [{"wait_for": str(gate), **quick}] + [quick] * (FIRST_BATCH - 1)
    datas += [{}] * 10
    ids = fdb.add(len(datas), datas=datas, prefix="claim")
    first, second = ids[:FIRST_BATCH], ids[FIRST_BATCH:]
    runner = fdb.runner()
    wait_until(lambda: starts_in_file(started), 30, "the first handler to start")
    wait_until(lambda: fdb.row(ids[0]).started_at is not None, 5, "its start mark")
    versions = {job_id: row.version for job_id, row in fdb.rows().items() if job_id in second}
    with fdb.engine.connect() as conn:
        conn.begin()
        if fdb.backend == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the whole file: nobody else can write
        else:
            # The first job's row: its outcome goes out with the next claim, which waits.
            conn.exec_driver_sql("SELECT * FROM jobs WHERE job_id = %s FOR UPDATE", (ids[0],))
        gate.touch()  # the first handler returns; the next claim waits on our lock
        wait_until(lambda: len(starts_in_file(started)) == FIRST_BATCH, 10, "the first batch")
        if fdb.backend == "sqlite":
            time.sleep(0.5)
        else:
            wait_until(lambda: claim_waiting(conn), 10, "the claim to wait on the lock")
        runner.signal(signal.SIGTERM)
        time.sleep(0.2)
        conn.rollback()  # the claim goes through, after the signal
    runner.expect(0)

    assert "SIGTERM: taking no new jobs" in runner.stderr
    # The claim that waited took some of the second batch (as many as its size said: a slow
    # first handler makes it small) and gave them all back.
    released = runner.summary("released")
    assert runner.summary("succeeded") == FIRST_BATCH and released >= 1
    assert sorted(job for job, _, _ in starts_in_file(started)) == first
    assert not fdb.runs(), "a handler of the second batch started after SIGTERM"
    rows = fdb.rows()
    assert sorted(rows) == second
    claimed = [job_id for job_id in second if rows[job_id].version != versions[job_id]]
    assert len(claimed) == released, "the claim did not wait on the lock (the signal came first)"
    # Given back: unclaimed, no attempt spent, due at once.
    assert {
        (r.claim_token, r.claimed_by, r.claimed_until, r.started_at, r.attempts)
        for r in rows.values()
    } == {(None, None, None, None, 0)}
    assert fdb.run_pass().summary("succeeded") == 10


def test_a_signal_while_a_suspects_start_mark_waits_for_the_database_starts_no_handler(
    fdb: FaultDb, tmp_path: Path
) -> None:
    # Two jobs a dead runner held unstarted (its claims ran out): the next runner runs each
    # alone, after writing its start mark. The second's start mark waits on our lock when
    # SIGTERM comes: once it goes through, the handler must not start.
    started = tmp_path / "started.txt"
    gate = tmp_path / "gate"
    first = {"wait_for": str(gate), "file": str(started), "no_record": True}
    ids = fdb.add(2, datas=[first, {"file": str(started)}], prefix="suspect")
    dead = storeops.claim(
        fdb.scheduler.store,
        datetime.now(UTC) - timedelta(minutes=1),
        runner="dead-host:1",
        lease=timedelta(seconds=2),
    )
    assert [claim.job.job_id for claim in dead] == ids
    runner = fdb.runner()
    wait_until(lambda: starts_in_file(started), 30, "the first job to start")
    with fdb.engine.connect() as conn:
        conn.begin()
        if fdb.backend == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the whole file: nobody else can write
        else:
            conn.exec_driver_sql("SELECT * FROM jobs WHERE job_id = %s FOR UPDATE", (ids[1],))
        gate.touch()  # the first returns; the second's start mark waits on our lock
        time.sleep(0.3)
        runner.signal(signal.SIGTERM)
        time.sleep(0.2)
        conn.rollback()
    runner.expect(0)

    assert "SIGTERM: taking no new jobs" in runner.stderr
    assert [job for job, _, _ in starts_in_file(started)] == [ids[0]], (
        "a handler started after SIGTERM"
    )
