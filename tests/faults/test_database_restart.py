"""MariaDB stopped and started again in the middle of a pass (a private server of the test's
own, never the shared one): the pass recovers or ends with a one-line error and exit code 1,
no job is lost or run twice, and the next pass carries on."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from faults.conftest import FaultDb, PrivateMariaDb, wait_until
from jobsched import Scheduler, use_scheduler

pytestmark = [pytest.mark.faults, pytest.mark.mariadb]

JOBS = 150


def test_mariadb_restarted_mid_pass_loses_no_job_and_the_next_pass_carries_on(
    private_mariadb: PrivateMariaDb, tmp_path: Path
) -> None:
    migrating = Scheduler(private_mariadb.url)
    migrating.migrate()
    migrating.close()
    fdb = FaultDb(private_mariadb.url, tmp_path)
    try:
        # Handlers record their runs in a file, which stays writable while the database is down.
        record = tmp_path / "runs.txt"
        ids = fdb.add(JOBS, {"sleep": 0.03, "file": str(record), "no_record": True})

        def recorded() -> list[str]:
            return record.read_text().splitlines() if record.exists() else []

        first = fdb.runner("--concurrency", 2)
        wait_until(lambda: len(recorded()) >= 20, 30, "20 jobs to run")
        private_mariadb.stop()
        # A pass that starts while the server is down says so in one line and exits 1.
        down = fdb.run_pass(code=1).stderr.splitlines()
        assert len(down) == 1
        assert down[0].startswith(
            f"jobsched: error: the database {fdb.scheduler.store.describe()} cannot be reached: "
        )
        time.sleep(0.5)
        private_mariadb.start()
        code = first.wait(timeout=120)
        if code == 1:
            assert first.stderr.splitlines()[-1].startswith("jobsched: error: the database ")
            assert "Traceback" not in first.stderr
        else:
            assert code == 0, first.stderr[-3000:]
        print(f"the pass during the restart exited {code}: {first.stdout.strip()}")

        if fdb.claimed():
            time.sleep(2.2)  # claims the first pass could not give back run out
        for _ in range(3):
            if not fdb.count_jobs():
                break
            fdb.run_pass("--concurrency", 2)
        assert fdb.count_jobs() == 0

        runs = Counter(line.split()[0] for line in recorded())
        assert sorted(runs) == ids, "a job was lost"
        assert {job_id: n for job_id, n in runs.items() if n > 1} == {}, "a job ran twice"
    finally:
        fdb.close()


def test_a_connection_the_server_killed_between_passes_is_not_an_error(
    mariadb_fdb: FaultDb,
) -> None:
    fdb = mariadb_fdb
    fdb.add(2, {})
    scheduler = Scheduler(fdb.url)  # a long-lived process running passes, as an app might
    try:
        with use_scheduler(scheduler):
            assert scheduler.run_due_jobs(limit=1).succeeded == 1
            with fdb.engine.connect() as conn:
                query = (
                    "SELECT ID FROM information_schema.PROCESSLIST "
                    "WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
                )
                idle = list(conn.exec_driver_sql(query).scalars())
                assert idle, "the scheduler keeps no connection between passes?"
                for connection_id in idle:
                    conn.exec_driver_sql(f"KILL CONNECTION {int(connection_id)}")
            assert scheduler.run_due_jobs().succeeded == 1
    finally:
        scheduler.close()
    assert fdb.count_jobs() == 0
