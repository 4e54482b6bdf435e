"""jobsched, driven only through its public API: ``Scheduler`` (``schedule_job``,
``schedule_jobs``, ``run_due_jobs``, ``count_jobs``, ``list_jobs``, ``migrate``), the
``@jobsched.handler`` registry (``bench.jobsched_app``) and the ``jobsched run-due`` command.

``jobsched-nohistory`` is the same with the history of attempts (``job_runs``) turned off:
``Scheduler(url, history=False)``, and ``JOBSCHED_HISTORY=off`` for ``jobsched run-due`` (W4), so
one invocation compares the two on the same runs.

The one exception is W3's untimed load: 1,000 seed jobs go through ``schedule_jobs`` and are then
copied a thousand times over by SQL on the documented ``jobs`` table (``bench.sqlbulk``), since
scheduling a million jobs through the API would take minutes per run.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime
from typing import Any, ClassVar

from bench import common
from bench.base import Implementation
from bench.sqlbulk import multiply_mysql, multiply_sqlite

APP_TABLE = "bench_app_rows"
CLI_APP = "bench.jobsched_app"


class JobschedImpl(Implementation):
    name = "jobsched"
    workloads: ClassVar[frozenset[str]] = frozenset({"W1", "W1b", "W2", "W3", "W4", "W6"})

    #: Whether passes record every attempt in ``job_runs`` (jobsched's default: on).
    history: ClassVar[bool] = True

    scheduler: Any = None
    engine: Any = None

    @property
    def url(self) -> str:
        return self.target

    def _scheduler(self) -> Any:
        from jobsched import Scheduler

        return Scheduler(self.url, history=self.history)

    def _app_table(self) -> Any:
        import sqlalchemy as sa

        return sa.Table(
            APP_TABLE,
            sa.MetaData(),
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("note", sa.String(64), nullable=False),
        )

    # -- set-up ---------------------------------------------------------------------------------

    def create(self, workload: str) -> None:
        scheduler = self._scheduler()
        scheduler.migrate()
        scheduler.close()
        if workload == "W6":
            import sqlalchemy as sa

            engine = sa.create_engine(self.url)
            self._app_table().create(engine)
            engine.dispose()

    def load_due(self, job_ids: list[str]) -> None:
        from jobsched import JobSpec

        scheduler = self._scheduler()
        if self.prior_pass:
            # With the history on, a pass prunes it when no pass has for ten minutes (the first
            # pass on a fresh database always does): this one does, so the timed one need not.
            import bench.jobsched_app  # noqa: F401  (a pass needs a handler registered)

            scheduler.run_due_jobs(keep_results=False)
        scheduler.schedule_jobs(
            [
                JobSpec(job_id, -common.DUE_AGO, common.HANDLER, common.payload(i))
                for i, job_id in enumerate(job_ids)
            ]
        )
        scheduler.close()

    def load_future(self, seeds: int, factor: int) -> None:
        from jobsched import JobSpec

        now = common.utcnow()
        scheduler = self._scheduler()
        scheduler.schedule_jobs(
            [
                JobSpec(f"fut-{k:05d}", common.seed_start(k, seeds, now), common.HANDLER,
                        common.payload(k))
                for k in range(seeds)
            ]
        )  # fmt: skip
        scheduler.close()
        self._multiply(factor)

    def remaining(self) -> int:
        scheduler = self._scheduler()
        try:
            return int(scheduler.count_jobs())
        finally:
            scheduler.close()

    def history_rows(self) -> int | None:
        scheduler = self.scheduler or self._scheduler()
        try:
            return len(scheduler.history(limit=None))
        finally:
            if scheduler is not self.scheduler:
                scheduler.close()

    # -- in the child ---------------------------------------------------------------------------

    def open(self, workload: str) -> None:
        import bench.jobsched_app  # noqa: F401  (registers the handler, as an app module does)

        # What ``jobsched run-due`` (W4, in this process) reads; the parent's own setting (if
        # any) is not passed to children, so without this the history is on.
        os.environ["JOBSCHED_HISTORY"] = "on" if self.history else "off"
        if workload == "W4":
            import jobsched.cli  # noqa: F401

            # Warm the imports the command needs; run-due opens its own connections.
            warm = self._scheduler()
            warm.count_jobs()
            warm.close()
            return
        if workload == "W6":
            import sqlalchemy as sa

            from jobsched import Scheduler

            self.engine = sa.create_engine(self.url)  # the web app's own engine
            self.app_rows = self._app_table()
            self.scheduler = Scheduler(self.engine)
            with self.engine.connect() as conn:
                conn.execute(sa.select(sa.func.count()).select_from(self.app_rows)).scalar()
        else:
            self.scheduler = self._scheduler()
        self.scheduler.count_jobs()

    def schedule_each(self, job_ids: list[str], starts: list[datetime]) -> None:
        schedule_job = self.scheduler.schedule_job
        for i, (job_id, start) in enumerate(zip(job_ids, starts, strict=True)):
            schedule_job(job_id, start, common.HANDLER, common.payload(i))

    def schedule_bulk(self, job_ids: list[str], starts: list[datetime]) -> None:
        from jobsched import JobSpec

        self.scheduler.schedule_jobs(
            [
                JobSpec(job_id, start, common.HANDLER, common.payload(i))
                for i, (job_id, start) in enumerate(zip(job_ids, starts, strict=True))
            ]
        )

    def schedule_in_transaction(self, job_ids: list[str], starts: list[datetime]) -> None:
        insert = self.app_rows.insert()
        schedule_job = self.scheduler.schedule_job
        for i, (job_id, start) in enumerate(zip(job_ids, starts, strict=True)):
            with self.engine.begin() as conn:
                conn.execute(insert, {"id": f"order-{i}", "note": job_id})
                schedule_job(job_id, start, common.HANDLER, common.payload(i), conn=conn)

    def run_pass(self, expected: int, deadline: float) -> None:
        self.scheduler.run_due_jobs(keep_results=False)

    def run_runner(self, deadline: float) -> None:
        import jobsched.cli

        args = ["--database-url", self.url, "--app", CLI_APP, "run-due", "--quiet"]
        try:
            jobsched.cli.main(args)
        except SystemExit as e:
            if e.code not in (0, None):
                raise RuntimeError(f"jobsched run-due exited with {e.code}") from None

    def due_left(self) -> int:
        return sum(1 for _ in self.scheduler.list_jobs(due=True))

    def count(self) -> int:
        return int(self.scheduler.count_jobs())

    def app_rows_count(self) -> int:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(self.app_rows)).scalar_one()
            )

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()
        if self.engine is not None:
            self.engine.dispose()

    def _multiply(self, factor: int) -> None:
        raise NotImplementedError


class NoHistory:
    """Mixed in before a jobsched implementation: the same with the history off."""

    name: ClassVar[str] = "jobsched-nohistory"
    history: ClassVar[bool] = False
    #: Scheduling writes no history: W1, W1b and W6 would measure the same code twice.
    workloads: ClassVar[frozenset[str]] = frozenset({"W2", "W3", "W4"})
    #: Its tables are jobsched's, loaded the same way (W3's SQLite template is shared).
    tables: ClassVar[str | None] = "jobsched"


class ThroughCommand:
    """Mixed in before a jobsched implementation: W2 and W3 through a ``jobsched`` command, called
    in the child's process (``jobsched.cli.main``, imports warmed first, as W4 does), so the
    command's own start (its scheduler, its connections, its runner row) is timed as well."""

    #: Its tables are jobsched's, loaded the same way (W3's SQLite template is shared).
    tables: ClassVar[str | None] = "jobsched"

    url: str
    scheduler: Any
    finished_at: float | None = None
    started_at: float | None = None
    #: Options for ``jobsched worker`` (``python -m bench --worker-args``).
    worker_args: tuple[str, ...] = ()

    def open(self, workload: str) -> None:
        import bench.jobsched_app  # noqa: F401
        import jobsched.cli  # noqa: F401
        from jobsched import Scheduler

        os.environ["JOBSCHED_HISTORY"] = "on"
        # The checks' own scheduler (the command opens its own): also warms what it imports.
        self.scheduler = Scheduler(self.url)
        self.scheduler.count_jobs()

    def command(self, *args: str) -> None:
        import jobsched.cli

        try:
            jobsched.cli.main(["--database-url", self.url, "--app", CLI_APP, *args])
        except SystemExit as e:
            if e.code not in (0, None):
                raise RuntimeError(f"jobsched {args[0]} exited with {e.code}") from None


class RunDue(ThroughCommand):
    """W2 and W3 through ``jobsched run-due``: timed from the call to its return."""

    name: ClassVar[str] = "jobsched-run-due"
    workloads: ClassVar[frozenset[str]] = frozenset({"W2", "W3"})

    def run_pass(self, expected: int, deadline: float) -> None:
        self.command("run-due", "--quiet")


class Worker(ThroughCommand):
    """W2 and W3 through ``jobsched worker`` (default options) in this process: timed from the
    call until every due job ran and none is left in the table (``finished_at``, seen by a thread
    that waits for the handler's last run, then looks at the table every millisecond), when that
    thread sends this process SIGTERM; the worker's graceful exit is not timed. W7 runs workers as
    processes of their own (the harness starts them: ``bench.run.Harness.latency``)."""

    name: ClassVar[str] = "jobsched-worker"
    workloads: ClassVar[frozenset[str]] = frozenset({"W2", "W3", "W7", "W7b"})

    def run_pass(self, expected: int, deadline: float) -> None:
        import signal
        import threading
        import time

        self.started_at = time.monotonic()
        failed: list[BaseException] = []

        def watch() -> None:
            try:
                common.expect_runs(expected)
                if not common.ALL_RAN.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"{len(common.RUNS)} of {expected} jobs ran in time")
                while self.due_left_any() and time.monotonic() < deadline:
                    time.sleep(0.001)
                self.finished_at = time.monotonic()
            except BaseException as e:
                failed.append(e)
            finally:
                os.kill(os.getpid(), signal.SIGTERM)

        watcher = threading.Thread(target=watch, name="bench-drained", daemon=True)
        watcher.start()
        self.command("worker", *self.worker_args)
        watcher.join()
        if failed:
            raise failed[0]

    def due_left_any(self) -> bool:
        """Whether any due job is in the table (claimed or not): one row through the index."""
        return next(iter(self.scheduler.list_jobs(due=True, limit=1)), None) is not None


class JobschedMariaDB(JobschedImpl):
    backend = "mariadb"

    def _multiply(self, factor: int) -> None:
        import pymysql

        conn = pymysql.connect(**common.mysql_params(self.url))
        try:
            multiply_mysql(conn, "jobs", "job_id", factor)
        finally:
            conn.close()


class JobschedSQLite(JobschedImpl):
    backend = "sqlite"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.target}"

    def _multiply(self, factor: int) -> None:
        conn = sqlite3.connect(self.target, timeout=5.0, isolation_level=None)
        try:
            multiply_sqlite(conn, "jobs", "job_id", factor, autoincrement=False)
        finally:
            conn.close()


class JobschedMariaDBNoHistory(NoHistory, JobschedMariaDB):
    pass


class JobschedSQLiteNoHistory(NoHistory, JobschedSQLite):
    pass


class JobschedMariaDBRunDue(RunDue, JobschedMariaDB):
    pass


class JobschedSQLiteRunDue(RunDue, JobschedSQLite):
    pass


class JobschedMariaDBWorker(Worker, JobschedMariaDB):
    pass


class JobschedSQLiteWorker(Worker, JobschedSQLite):
    pass
