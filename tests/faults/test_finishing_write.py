"""Finishing is not failing: once a handler has succeeded, a fault on the write that records it
(a killed connection, a lock wait that times out, a locked SQLite file) is retried, and the job
is not run again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from faults.conftest import FaultDb, Runner, wait_until

pytestmark = pytest.mark.faults

JOB = "finish-00000"


def start_and_block_the_finish(
    fdb: FaultDb, tmp_path: Path, conn: sa.Connection, url: str
) -> Runner:
    """Run JOB's handler in a runner; lock JOB's row from ``conn`` before the handler returns."""
    gate = tmp_path / "gate"
    # The handler records its run in a file: the database is locked when it returns.
    data = {"wait_for": str(gate), "file": str(tmp_path / "runs.txt"), "no_record": True}
    fdb.add(1, data, prefix="finish")
    runner = fdb.runner(url=url)
    wait_until((tmp_path / "runs.txt").exists, 30, "the handler to start")
    conn.begin()
    if fdb.backend == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # the whole file: nobody else can write
    else:
        conn.exec_driver_sql("SELECT * FROM jobs WHERE job_id = %s FOR UPDATE", (JOB,))
    gate.touch()
    return runner


def waiting_finish(conn: sa.Connection, other_than: Any = None) -> Any:
    """The id of the runner's connection whose finishing write of JOB waits on our lock, if
    any: the locking read of the rows it writes, or the write itself."""
    query = (
        "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
        "AND ID <> CONNECTION_ID() AND (INFO LIKE 'DELETE %%jobs%%' OR "
        "(INFO LIKE 'SELECT %%FROM jobs%%FOR UPDATE' AND INFO NOT LIKE '%%SKIP LOCKED%%'))"
    )
    ids = [i for i in conn.exec_driver_sql(query).scalars() if i != other_than]
    return ids[0] if ids else None


def assert_ran_once_and_finished(fdb: FaultDb, runner: Runner) -> None:
    runner.expect(0)
    assert runner.summary("succeeded") == 1
    assert fdb.row(JOB) is None
    assert fdb.run_pass().summary("ran") == 0
    runs = (fdb.workdir / "runs.txt").read_text().splitlines()
    assert runs == [f"{JOB} 1 {runner.pid}"]


@pytest.mark.mariadb
def test_a_finishing_write_whose_connection_is_killed_is_retried(
    mariadb_fdb: FaultDb, tmp_path: Path
) -> None:
    fdb = mariadb_fdb
    with fdb.engine.connect() as conn:
        runner = start_and_block_the_finish(fdb, tmp_path, conn, fdb.url)
        victim = wait_until(lambda: waiting_finish(conn), 30, "the finishing write to wait")
        conn.exec_driver_sql(f"KILL CONNECTION {int(victim)}")
        # The runner reconnects and sends its finishing write again (it waits on our lock).
        wait_until(lambda: waiting_finish(conn, other_than=victim), 30, "the retried write")
        conn.commit()
    assert_ran_once_and_finished(fdb, runner)


@pytest.mark.mariadb
def test_a_finishing_write_whose_lock_wait_times_out_is_retried(
    mariadb_fdb: FaultDb, tmp_path: Path
) -> None:
    fdb = mariadb_fdb
    url = f"{fdb.url}?init_command=SET innodb_lock_wait_timeout=1"
    with fdb.engine.connect() as conn:
        runner = start_and_block_the_finish(fdb, tmp_path, conn, url)
        wait_until(lambda: waiting_finish(conn), 30, "the finishing write to wait")
        time.sleep(2.5)  # two lock wait timeouts (error 1205) at least
        conn.commit()
    assert_ran_once_and_finished(fdb, runner)


def test_a_finishing_write_to_a_locked_sqlite_file_is_retried(
    sqlite_url: str, tmp_path: Path
) -> None:
    fdb = FaultDb(sqlite_url, tmp_path)
    try:
        with fdb.engine.connect() as conn:
            runner = start_and_block_the_finish(fdb, tmp_path, conn, fdb.url)
            time.sleep(5.5)  # past the runner's 5 s busy timeout: "database is locked"
            conn.commit()
        assert_ran_once_and_finished(fdb, runner)
    finally:
        fdb.close()
