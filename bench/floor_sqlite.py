"""The SQLite floor: the least SQL a correct scheduler needs on an SQLite file, in plain sqlite3,
at jobsched's durability (WAL, ``synchronous=FULL``, a 5 s busy timeout).

- schedule: one autocommitted ``INSERT`` per job (one commit, one fsync each);
- a pass (and each of two runners): ``BEGIN IMMEDIATE``, take up to 100 due jobs oldest first
  through the start-time index, run their handlers, delete them by primary key, ``COMMIT``; until
  a claim finds nothing. Two runners take turns on the write lock, so each job runs once.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import ClassVar

from bench import common
from bench.base import Implementation
from bench.sqlbulk import multiply_sqlite

TABLE = "floor_jobs"
DDL = [
    f"""CREATE TABLE {TABLE} (
  job_id TEXT NOT NULL PRIMARY KEY,
  handler TEXT NOT NULL,
  data TEXT NOT NULL,
  start_time TEXT NOT NULL,
  expiry TEXT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL DEFAULT 3
)""",
    f"CREATE INDEX ix_floor_start ON {TABLE} (start_time, job_id)",
]
INSERT = f"INSERT INTO {TABLE} (job_id, handler, data, start_time) VALUES (?, ?, ?, ?)"
CLAIM = (
    f"SELECT job_id, handler, data, expiry, attempts FROM {TABLE} "
    f"WHERE start_time <= ? ORDER BY start_time, job_id LIMIT {common.FLOOR_BATCH}"
)
DELETE = f"DELETE FROM {TABLE} WHERE job_id = ?"
HANDLERS = {common.HANDLER: common.noop}


def text(when: datetime) -> str:
    """UTC, one fixed format, so that stored times compare as strings."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class SQLiteFloor(Implementation):
    name = "floor"
    backend = "sqlite"
    workloads: ClassVar[frozenset[str]] = frozenset({"W1", "W1b", "W2", "W3", "W4"})

    conn: sqlite3.Connection | None = None

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.target, timeout=5.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    # -- set-up ---------------------------------------------------------------------------------

    def create(self, workload: str) -> None:
        conn = self.connect()
        for statement in DDL:
            conn.execute(statement)
        conn.close()

    def load_due(self, job_ids: list[str]) -> None:
        due = text(common.utcnow() - common.DUE_AGO)
        conn = self.connect()
        conn.execute("BEGIN")
        conn.executemany(
            INSERT,
            [
                (job_id, common.HANDLER, common.payload_json(i), due)
                for i, job_id in enumerate(job_ids)
            ],
        )
        conn.execute("COMMIT")
        conn.close()

    def load_future(self, seeds: int, factor: int) -> None:
        now = common.utcnow()
        conn = self.connect()
        conn.execute("BEGIN")
        conn.executemany(
            INSERT,
            [
                (f"fut-{k:05d}", common.HANDLER, common.payload_json(k),
                 text(common.seed_start(k, seeds, now)))
                for k in range(seeds)
            ],
        )  # fmt: skip
        conn.execute("COMMIT")
        multiply_sqlite(conn, TABLE, "job_id", factor, autoincrement=False)
        conn.close()

    def remaining(self) -> int:
        conn = self.connect()
        try:
            return int(conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])
        finally:
            conn.close()

    # -- in the child ---------------------------------------------------------------------------

    def open(self, workload: str) -> None:
        self.conn = self.connect()
        self.conn.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE 0").fetchall()

    def schedule_each(self, job_ids: list[str], starts: list[datetime]) -> None:
        assert self.conn is not None
        execute = self.conn.execute
        for i, (job_id, start) in enumerate(zip(job_ids, starts, strict=True)):
            execute(INSERT, (job_id, common.HANDLER, common.payload_json(i), text(start)))

    def schedule_bulk(self, job_ids: list[str], starts: list[datetime]) -> None:
        assert self.conn is not None
        rows = [
            (job_id, common.HANDLER, common.payload_json(i), text(start))
            for i, (job_id, start) in enumerate(zip(job_ids, starts, strict=True))
        ]
        self.conn.execute("BEGIN")
        self.conn.executemany(INSERT, rows)
        self.conn.execute("COMMIT")

    def run_pass(self, expected: int, deadline: float) -> None:
        conn = self.conn
        assert conn is not None
        while True:
            conn.execute("BEGIN IMMEDIATE")
            now = common.utcnow()
            rows = conn.execute(CLAIM, (text(now),)).fetchall()
            if not rows:
                conn.execute("COMMIT")
                break
            now_text = text(now)
            for job_id, handler, data, expiry, _attempts in rows:
                if expiry is not None and expiry < now_text:
                    continue  # expired: deleted without running
                HANDLERS[handler](job_id, json.loads(data))
            conn.executemany(DELETE, [(row[0],) for row in rows])
            conn.execute("COMMIT")

    def run_runner(self, deadline: float) -> None:
        self.run_pass(0, deadline)

    def due_left(self) -> int:
        assert self.conn is not None
        row = self.conn.execute(
            f"SELECT COUNT(*) FROM {TABLE} WHERE start_time <= ?", (text(common.utcnow()),)
        ).fetchone()
        return int(row[0])

    def count(self) -> int:
        assert self.conn is not None
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
