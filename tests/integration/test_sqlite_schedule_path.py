"""SQLite: a job alone is one statement, committed when it returns, on every kind of engine
(jobsched's own, a caller's, an in-memory database), durable as the rest (WAL, synchronous FULL),
and it waits for the write lock like any writer."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobsched import JobExistsError, Mode, Scheduler
from jobsched.handlers import Registry
from jobsched.store.sql import SqlStore


def store_of(scheduler: Scheduler) -> SqlStore:
    assert isinstance(scheduler.store, SqlStore)
    return scheduler.store


@pytest.fixture
def path(sqlite_url: str) -> Path:
    return Path(sa.make_url(sqlite_url).database or "")


@pytest.fixture
def scheduler(sqlite_url: str) -> Iterator[Scheduler]:
    scheduler = Scheduler(sqlite_url)
    yield scheduler
    scheduler.close()


def test_jobscheds_own_engine_writes_jobs_alone_in_autocommit_mode_and_durably(
    scheduler: Scheduler,
) -> None:
    store = store_of(scheduler)
    assert store.autocommit is not None and store.autocommit is not store.engine
    scheduler.schedule_job("a", timedelta(hours=1), "h")
    pooled = store.autocommit.raw_connection()
    try:
        dbapi = pooled.dbapi_connection
        assert dbapi is not None
        assert dbapi.isolation_level is None  # type: ignore[attr-defined]
        assert dbapi.execute("PRAGMA synchronous").fetchone() == (2,)  # type: ignore[attr-defined]
        assert dbapi.execute("PRAGMA journal_mode").fetchone() == ("wal",)  # type: ignore[attr-defined]
    finally:
        pooled.close()


def committed_ids(path: Path) -> list[str]:
    """The ids another connection sees (what has been committed)."""
    conn = sqlite3.connect(path)
    try:
        return sorted(row[0] for row in conn.execute("SELECT job_id FROM jobs"))
    finally:
        conn.close()


def test_a_job_alone_is_committed_when_schedule_job_returns(
    scheduler: Scheduler, path: Path
) -> None:
    scheduler.schedule_job("a", timedelta(hours=1), "h")
    scheduler.schedule_job("b", timedelta(hours=1), "h", mode=Mode.IGNORE_IF_EXISTS)
    scheduler.schedule_job("c", timedelta(hours=1), "h", mode=Mode.RESCHEDULE)
    assert committed_ids(path) == ["a", "b", "c"]


def test_a_callers_engine_writes_jobs_alone_committed_and_leaves_no_transaction_open(
    sqlite_url: str, path: Path
) -> None:
    engine = sa.create_engine(sqlite_url)
    scheduler = Scheduler(engine)
    try:
        assert store_of(scheduler).autocommit is engine
        scheduler.schedule_job("a", timedelta(hours=1), "h")
        with pytest.raises(JobExistsError):
            scheduler.schedule_job("a", timedelta(hours=1), "h")
        assert committed_ids(path) == ["a"]
        # Nothing holds the write lock: another writer gets it at once.
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()
    finally:
        scheduler.close()
        engine.dispose()


def test_an_in_memory_database_writes_jobs_alone_through_its_one_pool() -> None:
    scheduler = Scheduler("sqlite://")
    try:
        scheduler.migrate()
        store = store_of(scheduler)
        assert store.autocommit is store.engine  # a second pool would be another database
        scheduler.schedule_job("a", timedelta(hours=1), "h", {"n": 1})
        kept = scheduler.schedule_job("a", timedelta(0), "h", {"n": 2}, mode=Mode.IGNORE_IF_EXISTS)
        assert kept.data == {"n": 1}
        scheduler.schedule_jobs(
            [{"job_id": f"j{i}", "start": timedelta(0), "handler": "h"} for i in range(3)]
        )
        assert scheduler.count_jobs() == 4
    finally:
        scheduler.close()


@pytest.mark.parametrize("concurrency", [1, 4])
def test_an_in_memory_database_is_one_database_for_every_thread_of_a_pass(
    concurrency: int,
) -> None:
    # Claims made ahead, the flusher and handler threads each used a connection of their own:
    # another, empty, in-memory database ("no such table: jobs").
    registry = Registry()
    registry.register("noop", lambda job: None)
    scheduler = Scheduler("sqlite://", registry=registry)
    try:
        scheduler.migrate()
        scheduler.schedule_jobs(
            [{"job_id": f"j{i}", "start": timedelta(0), "handler": "noop"} for i in range(500)]
        )
        report = scheduler.run_due_jobs(concurrency=concurrency)
        assert report.succeeded == 500
        assert scheduler.count_jobs() == 0
    finally:
        scheduler.close()


def test_a_job_alone_waits_for_the_write_lock_and_is_written_when_it_is_released(
    scheduler: Scheduler, path: Path
) -> None:
    scheduler.count_jobs()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    errors: list[BaseException] = []

    def schedule() -> None:
        try:
            scheduler.schedule_job("a", timedelta(hours=1), "h")
        except BaseException as e:
            errors.append(e)

    writer = threading.Thread(target=schedule)
    writer.start()
    time.sleep(0.3)
    assert writer.is_alive(), "the job was written while another writer held the lock"
    holder.execute("COMMIT")
    holder.close()
    writer.join(10)
    assert not writer.is_alive() and errors == []
    assert committed_ids(path) == ["a"]
