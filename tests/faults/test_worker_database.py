"""MariaDB stopped under a running worker and started again (a private server of the test's own,
never the shared one): the worker says so and waits (it does not exit), then goes on; no job is
lost, none runs twice (a single runner: nothing else could take a job over), and it stops
cleanly afterwards."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from faults.conftest import FaultDb, PrivateMariaDb, start_worker
from jobsched import Outcome, Scheduler

pytestmark = [pytest.mark.faults, pytest.mark.mariadb]

#: The worker's warning while the database is away.
UNAVAILABLE = "database unavailable"


@pytest.fixture
def private_fdb(private_mariadb: PrivateMariaDb, tmp_path: Path) -> Iterator[FaultDb]:
    """The private server's database, migrated and empty."""
    if private_mariadb.proc is None:  # an earlier test failed while the server was down
        private_mariadb.start()
    migrating = Scheduler(private_mariadb.url)
    migrating.migrate()
    migrating.clear()
    migrating.close()
    fdb = FaultDb(private_mariadb.url, tmp_path)
    yield fdb
    fdb.close()
    if private_mariadb.proc is None:  # a test that failed while the server was down
        private_mariadb.start()
    leaving = Scheduler(private_mariadb.url)
    leaving.clear()  # the next test on this server starts empty too
    leaving.close()


def recorded(path: Path) -> list[str]:
    """Job ids in the order their handlers started (written to a file, which stays writable
    while the database is down)."""
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


def test_an_idle_worker_waits_out_a_stopped_database_and_goes_on(
    private_mariadb: PrivateMariaDb, private_fdb: FaultDb, tmp_path: Path
) -> None:
    fdb = private_fdb
    record = tmp_path / "runs.txt"
    data = {"file": str(record), "no_record": True}
    fdb.add(1, data, prefix="before")
    worker = start_worker(fdb)
    worker.wait_for(lambda: fdb.count_jobs() == 0, 30, "the first job to run")

    private_mariadb.stop()
    warning = worker.wait_for_log(UNAVAILABLE, 10)
    print(warning)
    assert "retrying" in warning
    time.sleep(2)
    assert worker.alive(), worker.stderr[-3000:]
    private_mariadb.start()

    ids = fdb.add(20, data, prefix="after")
    worker.wait_for(lambda: fdb.count_jobs() == 0, 40, "the jobs scheduled after the restart")
    worker.stop()
    assert "Traceback" not in worker.stderr, worker.stderr[-3000:]
    assert worker.summary("succeeded") == 21
    assert Counter(recorded(record)) == Counter(["before-00000", *ids])


def test_a_busy_worker_waits_out_a_stopped_database_and_loses_nothing(
    private_mariadb: PrivateMariaDb, private_fdb: FaultDb, tmp_path: Path
) -> None:
    fdb = private_fdb
    record = tmp_path / "runs.txt"
    ids = fdb.add(150, {"sleep": 0.03, "file": str(record), "no_record": True})
    worker = start_worker(fdb, "--concurrency", 2)
    worker.wait_for(lambda: len(recorded(record)) >= 20, 30, "20 jobs to run")

    private_mariadb.stop()
    # Down for longer than the jobs' 2 s claims: those the worker holds run out meanwhile.
    time.sleep(4)
    assert worker.alive(), worker.stderr[-3000:]
    during = len(recorded(record))
    private_mariadb.start()

    worker.wait_for(lambda: fdb.count_jobs() == 0, 60, "every job to run after the restart")
    worker.stop()
    print(
        f"{during} of {len(ids)} jobs had started when the server came back; "
        f"worker: {worker.stdout.strip()}"
    )
    assert "Traceback" not in worker.stderr, worker.stderr[-3000:]
    runs = Counter(recorded(record))
    assert sorted(runs) == ids, "a job was lost"
    assert {job_id: n for job_id, n in runs.items() if n > 1} == {}, "a job ran twice"


def test_a_busy_worker_says_the_database_is_unavailable_while_it_is(
    private_mariadb: PrivateMariaDb, private_fdb: FaultDb, tmp_path: Path
) -> None:
    fdb = private_fdb
    record = tmp_path / "runs.txt"
    fdb.add(150, {"sleep": 0.03, "file": str(record), "no_record": True})
    worker = start_worker(fdb, "--concurrency", 2)
    worker.wait_for(lambda: len(recorded(record)) >= 20, 30, "20 jobs to run")
    private_mariadb.stop()
    try:
        warning = worker.wait_for_log(UNAVAILABLE, 10)
        assert "retrying" in warning
        assert worker.alive()
    finally:
        private_mariadb.start()
        fdb.engine.dispose()  # the test's own pooled connections died with the server
    worker.wait_for(lambda: fdb.count_jobs() == 0, 60, "every job to run after the restart")
    worker.stop()


def test_a_worker_that_outlasts_its_bookkeeping_patience_writes_its_outcomes_when_back(
    private_mariadb: PrivateMariaDb, private_fdb: FaultDb, tmp_path: Path
) -> None:
    """Its pass gives up on the outcomes it holds (after 2 s here, a minute in production) and
    ends; the next pass writes them before it claims, so the worker does not take its own jobs
    over as if it had died: none runs twice and no attempt is counted lost."""
    fdb = private_fdb
    record = tmp_path / "runs.txt"
    ids = fdb.add(150, {"sleep": 0.03, "file": str(record), "no_record": True})
    worker = start_worker(fdb, "--concurrency", 2, env={"FAULTS_BOOKKEEPING_PATIENCE": "2"})
    worker.wait_for(lambda: len(recorded(record)) >= 20, 30, "20 jobs to run")

    private_mariadb.stop()
    stopped = time.monotonic()
    # The pass ends once its patience ran out; the worker backs off and tries again.
    assert "retrying in" in worker.wait_for_log(UNAVAILABLE, 15)
    time.sleep(max(0.0, 5 - (time.monotonic() - stopped)))  # past the jobs' 2 s claims too
    assert worker.alive(), worker.stderr[-3000:]
    private_mariadb.start()

    worker.wait_for(lambda: fdb.count_jobs() == 0, 60, "every job to run after the restart")
    worker.stop()
    print(f"worker: {worker.stdout.strip()}")
    runs = Counter(recorded(record))
    assert sorted(runs) == ids, "a job was lost"
    assert {job_id: n for job_id, n in runs.items() if n > 1} == {}, "a job ran twice"
    assert worker.summary("lost") == 0, worker.stderr[-3000:]
    assert list(fdb.scheduler.history(outcome=Outcome.LOST)) == []
    assert "Traceback" not in worker.stderr, worker.stderr[-3000:]
