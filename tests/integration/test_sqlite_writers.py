"""SQLite has one writer at a time. A store's own threads (a pass's claims, its outbox flusher,
its heartbeat) queue for it among themselves, so a write waiting behind another thread's
transaction starts as soon as that one ends; in SQLite's busy handler it would sleep between
tries (1, 2, 5, ... 100 ms), and an outcome promised within 50 ms could wait longer than that."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from jobsched import Scheduler
from jobsched.store.sql import SqlStore

#: How long the first transaction holds the write lock: SQLite's busy handler, polling a lock
#: held this long, tries again at 228 and 328 ms, so its waiter gets in about 90 ms late.
HOLD = 0.24


@pytest.fixture
def store(sqlite_url: str) -> Iterator[SqlStore]:
    scheduler = Scheduler(sqlite_url)
    scheduler.count_jobs()
    assert isinstance(scheduler.store, SqlStore)
    yield scheduler.store
    scheduler.close()


def test_a_write_waiting_on_another_thread_of_the_store_starts_when_that_one_commits(
    store: SqlStore,
) -> None:
    times: dict[str, float] = {}
    holding = threading.Event()

    def hold(conn: sa.Connection) -> None:
        conn.exec_driver_sql("UPDATE jobs SET version = version WHERE 0")  # takes the lock
        holding.set()
        time.sleep(HOLD)
        times["first ends"] = time.monotonic()

    def second(conn: sa.Connection) -> None:
        times["second begins"] = time.monotonic()

    first = threading.Thread(target=lambda: store.transaction(hold, write=True))
    first.start()
    assert holding.wait(10)
    store.transaction(second, write=True)
    first.join()
    late = times["second begins"] - times["first ends"]
    print(f"the second write began {late * 1000:.1f} ms after the first committed")
    assert late < 0.04
