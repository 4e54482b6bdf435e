"""Throughput of one run-due pass: N due jobs with a no-op handler, per backend and setting.

    .venv/bin/python bench/run_due.py [--jobs 2000] [--mysql-url URL]

Prints jobs per second for scheduling (schedule_jobs) and for one pass (run_due_jobs), on SQLite
with synchronous=FULL (the default jobsched keeps) and synchronous=NORMAL, and on MariaDB when it
answers. Figures only: nothing here asserts on wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from jobsched import Scheduler
from jobsched.handlers import Registry
from jobsched.store.sql import SqlStore


def sqlite_engine(path: Path, synchronous: str) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def pragma(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.execute(f"PRAGMA synchronous={synchronous}")

    return engine


def measure(label: str, target: str | sa.Engine, jobs: int) -> None:
    registry = Registry()
    registry.register("noop", lambda job: None)
    scheduler = Scheduler(target, registry=registry)
    scheduler.migrate()
    assert isinstance(scheduler.store, SqlStore)
    with scheduler.store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM jobs")
    specs = [
        {"job_id": f"job-{i:06d}", "start": timedelta(seconds=-1), "handler": "noop", "data": i}
        for i in range(jobs)
    ]
    began = time.perf_counter()
    scheduler.schedule_jobs(specs)
    scheduled = time.perf_counter() - began
    began = time.perf_counter()
    report = scheduler.run_due_jobs(keep_results=False)
    ran = time.perf_counter() - began
    assert report.succeeded == jobs, report
    print(
        f"{label:<28} schedule_jobs {jobs / scheduled:9.0f} jobs/s   "
        f"run-due pass {jobs / ran:7.0f} jobs/s"
    )
    scheduler.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--mysql-url", default="mysql+pymysql://root@127.0.0.1:3306/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for synchronous in ("FULL", "NORMAL"):
            path = Path(tmp) / f"bench-{synchronous}.db"
            Scheduler(f"sqlite:///{path}").migrate()
            measure(
                f"sqlite synchronous={synchronous}", sqlite_engine(path, synchronous), args.jobs
            )
    try:
        measure("mariadb", args.mysql_url, args.jobs)
    except Exception as e:
        print(f"mariadb: skipped ({e})")


if __name__ == "__main__":
    main()
