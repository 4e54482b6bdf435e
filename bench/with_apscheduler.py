"""APScheduler 3.11 as its users run it against MariaDB: a ``BackgroundScheduler`` with a
``SQLAlchemyJobStore``, one ``date``-triggered job per job, its default executor (a pool of 10
threads), UTC, and no misfire grace limit (so due jobs run however late the pass starts).

- W1: ``add_job`` on a scheduler started paused (the web process only schedules), one INSERT and
  commit per job;
- W2/W3: start the scheduler; the pass ends when every due job has run and left the table;
- W4: two processes each start a scheduler on the same table and stop once it is empty.
  APScheduler 3 does not coordinate schedulers sharing a job store (its FAQ says so), so both may
  run the same job: the harness counts and reports it.
"""

from __future__ import annotations

import pickle
import threading
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from bench import common
from bench.base import Implementation
from bench.sqlbulk import multiply_mysql

TABLE = "apscheduler_jobs"
POLL = 0.005


def make_scheduler(url: str, store: Any = None) -> Any:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    return BackgroundScheduler(
        jobstores={"default": store if store is not None else SQLAlchemyJobStore(url=url)},
        job_defaults={"misfire_grace_time": None},
        timezone=UTC,
    )


def engine_url(url: str) -> str:
    return url + ("&" if "?" in url else "?") + "charset=utf8mb4"


class APSchedulerImpl(Implementation):
    name = "apscheduler"
    backend = "mariadb"
    workloads: ClassVar[frozenset[str]] = frozenset({"W1", "W2", "W3", "W4"})

    scheduler: Any = None
    store: Any = None

    # -- set-up ---------------------------------------------------------------------------------

    def _store(self) -> Any:
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

        return SQLAlchemyJobStore(url=engine_url(self.target))

    def create(self, workload: str) -> None:
        store = self._store()
        store.jobs_t.create(store.engine, checkfirst=True)
        store.shutdown()

    def _bulk_add(self, jobs: list[tuple[str, datetime, dict[str, Any]]]) -> None:
        """Rows exactly as ``SQLAlchemyJobStore.add_job`` writes them, in one transaction: the jobs
        are made by a paused scheduler on a memory store, then pickled as the SQL store does."""
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.util import datetime_to_utc_timestamp

        maker = make_scheduler("", MemoryJobStore())
        maker.start(paused=True)
        for job_id, run_date, data in jobs:
            maker.add_job(common.noop, "date", run_date=run_date, id=job_id, args=[job_id, data])
        rows = [
            {
                "id": job.id,
                "next_run_time": datetime_to_utc_timestamp(job.next_run_time),
                "job_state": pickle.dumps(job.__getstate__(), pickle.HIGHEST_PROTOCOL),
            }
            for job in maker.get_jobs()
        ]
        maker.shutdown(wait=False)
        store = self._store()
        with store.engine.begin() as conn:
            for i in range(0, len(rows), 1000):
                conn.execute(store.jobs_t.insert(), rows[i : i + 1000])
        store.shutdown()

    def load_due(self, job_ids: list[str]) -> None:
        due = common.utcnow() - common.DUE_AGO
        self._bulk_add([(job_id, due, common.payload(i)) for i, job_id in enumerate(job_ids)])

    def load_future(self, seeds: int, factor: int) -> None:
        import pymysql

        now = common.utcnow()
        self._bulk_add(
            [(f"fut-{k:05d}", common.seed_start(k, seeds, now), common.payload(k))
             for k in range(seeds)]
        )  # fmt: skip
        conn = pymysql.connect(**common.mysql_params(self.target))
        try:
            multiply_mysql(conn, TABLE, "id", factor)
        finally:
            conn.close()

    def remaining(self) -> int:
        store = self._store()
        try:
            return self._count(store)
        finally:
            store.shutdown()

    @staticmethod
    def _count(store: Any, due_before: datetime | None = None) -> int:
        import sqlalchemy as sa

        query = sa.select(sa.func.count()).select_from(store.jobs_t)
        if due_before is not None:
            query = query.where(store.jobs_t.c.next_run_time <= due_before.timestamp())
        with store.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # -- in the child ---------------------------------------------------------------------------

    def open(self, workload: str) -> None:
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED

        self.store = self._store()
        self.scheduler = make_scheduler("", self.store)
        self._finished = 0
        self._finished_lock = threading.Lock()
        self._all_finished = threading.Event()
        self._expected = 0
        self.scheduler.add_listener(
            self._on_finished, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
        )
        self._died = threading.Event()
        previous = threading.excepthook

        def died(args: Any) -> None:
            # The scheduler's own thread ends on an exception it does not catch (in W4: the
            # JobLookupError of removing a job the other process removed first).
            self.notes.append(f"scheduler thread died: {args.exc_type.__name__}: {args.exc_value}")
            self._died.set()
            previous(args)

        threading.excepthook = died
        self._count(self.store)  # the first connection
        if workload == "W1":
            self.scheduler.start(paused=True)

    def _on_finished(self, event: Any) -> None:
        with self._finished_lock:
            self._finished += 1
            if self._expected and self._finished >= self._expected:
                self._all_finished.set()

    def schedule_each(self, job_ids: list[str], starts: list[datetime]) -> None:
        add_job = self.scheduler.add_job
        for i, (job_id, start) in enumerate(zip(job_ids, starts, strict=True)):
            add_job(
                common.noop, "date", run_date=start, id=job_id, args=[job_id, common.payload(i)]
            )

    def run_pass(self, expected: int, deadline: float) -> None:
        with self._finished_lock:
            self._expected = expected
            if self._finished >= expected:
                self._all_finished.set()
        self.scheduler.start()
        while not self._all_finished.wait(POLL):
            if self._died.is_set() or time.monotonic() > deadline:
                break
        while self.due_left() and time.monotonic() < deadline and not self._died.is_set():
            time.sleep(POLL)

    def run_runner(self, deadline: float) -> None:
        self.scheduler.start()
        while self._count(self.store) and time.monotonic() < deadline:
            if self._died.is_set():
                break  # this process will run nothing more
            time.sleep(POLL)
        self.scheduler.shutdown(wait=True)  # the handlers it started have returned

    def due_left(self) -> int:
        return self._count(self.store, common.utcnow())

    def count(self) -> int:
        return self._count(self.store)

    def close(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)
