"""The MariaDB floor: the least SQL a correct database-backed scheduler needs, in plain PyMySQL.

- schedule: one autocommitted ``INSERT`` per job (a duplicate id is the primary key's error);
- a pass (and each of two runners): in one READ COMMITTED transaction, claim up to 100 due jobs
  oldest first with ``SELECT ... ORDER BY start_time LIMIT 100 FOR UPDATE SKIP LOCKED`` through
  the start-time index (``FORCE INDEX``), run their handlers, delete them by primary key (one
  ``DELETE`` per row, all sent in one round trip with ``CLIENT.MULTI_STATEMENTS``; an ``IN`` list
  can deadlock between two runners), commit; until a claim finds nothing.

A runner that dies rolls its batch back, so its jobs run again: at least once after a crash,
exactly once otherwise. It keeps no attempts, leases or heartbeats: it is the physical limit.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, ClassVar

import pymysql
from pymysql.constants import CLIENT

from bench import common
from bench.base import Implementation
from bench.sqlbulk import multiply_mysql

TABLE = "floor_jobs"
DDL = f"""
CREATE TABLE {TABLE} (
  job_id VARBINARY(1020) NOT NULL PRIMARY KEY,
  handler VARBINARY(1020) NOT NULL,
  data MEDIUMTEXT NOT NULL,
  start_time DATETIME(6) NOT NULL,
  expiry DATETIME(6) NULL,
  attempts INT NOT NULL DEFAULT 0,
  max_attempts INT NOT NULL DEFAULT 3,
  KEY ix_floor_start (start_time, job_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
"""
INSERT = f"INSERT INTO {TABLE} (job_id, handler, data, start_time) VALUES (%s, %s, %s, %s)"
CLAIM = (
    f"SELECT job_id, handler, data, expiry, attempts FROM {TABLE} FORCE INDEX (ix_floor_start) "
    f"WHERE start_time <= %s ORDER BY start_time, job_id LIMIT {common.FLOOR_BATCH} "
    "FOR UPDATE SKIP LOCKED"
)
DELETE = f"DELETE FROM {TABLE} WHERE job_id = %s"
HANDLERS = {common.HANDLER: common.noop}


def naive_utc(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(tzinfo=None)


class MariaDBFloor(Implementation):
    name = "floor"
    backend = "mariadb"
    workloads: ClassVar[frozenset[str]] = frozenset({"W1", "W1b", "W2", "W3", "W4"})

    conn: Any = None

    def connect(self, *, autocommit: bool) -> Any:
        conn = pymysql.connect(
            **common.mysql_params(self.target),
            autocommit=autocommit,
            client_flag=CLIENT.MULTI_STATEMENTS,
        )
        with conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cur.execute("SET time_zone = '+00:00'")
        return conn

    # -- set-up ---------------------------------------------------------------------------------

    def create(self, workload: str) -> None:
        conn = self.connect(autocommit=True)
        with conn.cursor() as cur:
            cur.execute(DDL)
        conn.close()

    def _insert_many(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        with conn.cursor() as cur:
            for i in range(0, len(rows), 1000):
                cur.executemany(INSERT, rows[i : i + 1000])

    def load_due(self, job_ids: list[str]) -> None:
        due = naive_utc(common.utcnow() - common.DUE_AGO)
        conn = self.connect(autocommit=False)
        rows = [
            (job_id, common.HANDLER, common.payload_json(i), due)
            for i, job_id in enumerate(job_ids)
        ]
        self._insert_many(conn, rows)
        conn.commit()
        conn.close()

    def load_future(self, seeds: int, factor: int) -> None:
        now = common.utcnow()
        conn = self.connect(autocommit=False)
        rows = [
            (f"fut-{k:05d}", common.HANDLER, common.payload_json(k),
             naive_utc(common.seed_start(k, seeds, now)))
            for k in range(seeds)
        ]  # fmt: skip
        self._insert_many(conn, rows)
        conn.commit()
        multiply_mysql(conn, TABLE, "job_id", factor)
        conn.close()

    def remaining(self) -> int:
        conn = self.connect(autocommit=True)
        try:
            return self._count(conn)
        finally:
            conn.close()

    @staticmethod
    def _count(conn: Any, where: str = "", *params: Any) -> int:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {TABLE} {where}", params)
            return int(cur.fetchone()[0])

    # -- in the child ---------------------------------------------------------------------------

    def open(self, workload: str) -> None:
        self.conn = self.connect(autocommit=workload == "W1")
        with self.conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchall()

    def schedule_each(self, job_ids: list[str], starts: list[datetime]) -> None:
        with self.conn.cursor() as cur:
            for i, (job_id, start) in enumerate(zip(job_ids, starts, strict=True)):
                cur.execute(
                    INSERT, (job_id, common.HANDLER, common.payload_json(i), naive_utc(start))
                )

    def schedule_bulk(self, job_ids: list[str], starts: list[datetime]) -> None:
        rows = [
            (job_id, common.HANDLER, common.payload_json(i), naive_utc(start))
            for i, (job_id, start) in enumerate(zip(job_ids, starts, strict=True))
        ]
        self._insert_many(self.conn, rows)
        self.conn.commit()

    def run_pass(self, expected: int, deadline: float) -> None:
        conn = self.conn
        cur = conn.cursor()
        while True:
            now = naive_utc(common.utcnow())
            cur.execute(CLAIM, (now,))
            rows = cur.fetchall()
            if not rows:
                conn.commit()
                break
            for job_id, handler, data, expiry, _attempts in rows:
                if expiry is not None and expiry < now:
                    continue  # expired: deleted without running
                HANDLERS[handler.decode()](job_id.decode(), json.loads(data))
            cur.execute(";".join(cur.mogrify(DELETE, (row[0],)) for row in rows))
            while cur.nextset():
                pass
            conn.commit()
        cur.close()

    def run_runner(self, deadline: float) -> None:
        self.run_pass(0, deadline)

    def due_left(self) -> int:
        self.conn.commit()
        return self._count(self.conn, "WHERE start_time <= %s", naive_utc(common.utcnow()))

    def count(self) -> int:
        self.conn.commit()
        return self._count(self.conn)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
