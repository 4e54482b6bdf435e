"""Huey 3.5 as its users run it on an SQLite file: ``SqliteHuey`` (WAL, ``fsync=True``: the same
durability as jobsched's ``synchronous=FULL``), one task per job scheduled with an ``eta``, and its
consumer (``huey.create_consumer()``: one worker thread, the scheduler reading due tasks every
second), started in the process.

- W1: ``task.schedule(args, eta=...)``, one INSERT and commit per job, as a web app does;
- W2/W3: the due tasks wait in Huey's schedule table (where its consumer puts tasks whose eta is
  in the future); the pass starts the consumer and ends when every due task ran and both the
  queue and the due part of the schedule are empty;
- W4: two processes each run a consumer on the same file and stop once nothing is left.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from bench import common
from bench.base import Implementation
from bench.sqlbulk import multiply_sqlite

POLL = 0.005
#: W4: a runner stops once the table has stayed empty this long (Huey's scheduler moves due tasks
#: from the table into memory before it enqueues them again, so one empty reading is not enough).
QUIET = 1.5


def make_huey(path: str) -> tuple[Any, Any]:
    from huey import SqliteHuey

    huey = SqliteHuey(name="bench", filename=path, fsync=True)
    return huey, huey.task(name=common.HANDLER)(common.noop)


def huey_time(when: datetime) -> float:
    """A time as Huey's SQLite storage stores it: naive UTC, then ``.timestamp()``."""
    return when.astimezone(UTC).replace(tzinfo=None).timestamp()


class HueyImpl(Implementation):
    name = "huey"
    backend = "sqlite"
    workloads: ClassVar[frozenset[str]] = frozenset({"W1", "W2", "W3", "W4"})

    huey: Any = None
    task: Any = None
    consumer: Any = None
    probe: sqlite3.Connection | None = None

    # -- set-up ---------------------------------------------------------------------------------

    def create(self, workload: str) -> None:
        huey, _ = make_huey(self.target)  # creates the tables
        huey.storage.close()

    def _add_scheduled(self, jobs: list[tuple[str, datetime, dict[str, Any]]]) -> None:
        huey, task = make_huey(self.target)
        for job_id, eta, data in jobs:
            huey.add_schedule(task.s(job_id, data, eta=eta))
        huey.storage.close()

    def load_due(self, job_ids: list[str]) -> None:
        due = common.utcnow() - common.DUE_AGO
        self._add_scheduled([(job_id, due, common.payload(i)) for i, job_id in enumerate(job_ids)])

    def load_future(self, seeds: int, factor: int) -> None:
        now = common.utcnow()
        self._add_scheduled(
            [(f"fut-{k:05d}", common.seed_start(k, seeds, now), common.payload(k))
             for k in range(seeds)]
        )  # fmt: skip
        conn = sqlite3.connect(self.target, timeout=5.0, isolation_level=None)
        try:
            multiply_sqlite(conn, "schedule", "id", factor, autoincrement=True)
        finally:
            conn.close()

    def remaining(self) -> int:
        conn = sqlite3.connect(self.target, timeout=5.0)
        try:
            return self._left(conn, None)
        finally:
            conn.close()

    @staticmethod
    def _left(conn: sqlite3.Connection, due_before: datetime | None) -> int:
        """Tasks in the queue plus scheduled ones (due ones only, if ``due_before``)."""
        scheduled = "SELECT COUNT(*) FROM schedule"
        params: tuple[float, ...] = ()
        if due_before is not None:
            scheduled += " WHERE timestamp <= ?"
            params = (huey_time(due_before),)
        row = conn.execute(f"SELECT (SELECT COUNT(*) FROM task) + ({scheduled})", params)
        return int(row.fetchone()[0])

    # -- in the child ---------------------------------------------------------------------------

    def open(self, workload: str) -> None:
        self.huey, self.task = make_huey(self.target)
        self.huey.storage.queue_size()  # the first connection
        self.probe = sqlite3.connect(self.target, timeout=5.0)
        self._left(self.probe, None if workload == "W1" else common.utcnow())

    def schedule_each(self, job_ids: list[str], starts: list[datetime]) -> None:
        schedule = self.task.schedule
        for i, (job_id, start) in enumerate(zip(job_ids, starts, strict=True)):
            schedule(args=(job_id, common.payload(i)), eta=start)

    def run_pass(self, expected: int, deadline: float) -> None:
        common.expect_runs(expected)
        self.consumer = self.huey.create_consumer()
        self.consumer.start()
        common.ALL_RAN.wait(max(0.0, deadline - time.monotonic()))
        while self.due_left() and time.monotonic() < deadline:
            time.sleep(POLL)

    def run_runner(self, deadline: float) -> None:
        self.consumer = self.huey.create_consumer()
        self.consumer.start()
        empty_since = None
        while time.monotonic() < deadline:
            if self.due_left():
                empty_since = None
            elif empty_since is None:
                empty_since = time.monotonic()
            elif time.monotonic() - empty_since >= QUIET:
                break
            time.sleep(POLL)
        self.finished_at = empty_since  # the quiet period is not Huey's time
        self.consumer.stop(graceful=True)  # the task it is running, if any, finishes
        self.consumer = None

    def due_left(self) -> int:
        assert self.probe is not None
        return self._left(self.probe, common.utcnow())

    def count(self) -> int:
        assert self.probe is not None
        return self._left(self.probe, None)

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.stop(graceful=True)
        if self.probe is not None:
            self.probe.close()
        if self.huey is not None:
            self.huey.storage.close()
