"""conn= must be a connection to the scheduler's own database (SQL backends).

A connection to another database (another backend, server, database or SQLite file) is refused
with UsageError before anything is done; the caller's own Engine on the same database works.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from jobsched import Job, JobSpec, Mode, Scheduler
from jobsched.errors import UsageError
from jobsched.store.sql import SqlStore

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

#: Every method that takes conn=, called so that it would change the database it reached.
CALLS: dict[str, Callable[[Scheduler, sa.Connection], Any]] = {
    "schedule_job": lambda s, conn: s.schedule_job(
        "a", timedelta(0), "h", "mine", mode=Mode.RESCHEDULE, conn=conn
    ),
    "schedule_jobs": lambda s, conn: s.schedule_jobs(
        [JobSpec("a", timedelta(0), "h", "mine")], mode=Mode.RESCHEDULE, conn=conn
    ),
    "add_job": lambda s, conn: s.add_job(Job("b", "h", "mine", T0), conn=conn),
    "get_job": lambda s, conn: s.get_job("a", conn=conn),
    "job_exists": lambda s, conn: s.job_exists("a", conn=conn),
    "remove_job": lambda s, conn: s.remove_job("a", conn=conn),
    "update_job": lambda s, conn: s.update_job(
        "a", lambda job: (Job("a", "h", "mine", T0), None), conn=conn
    ),
}


@pytest.fixture(scope="session")
def other_mysql_url(mysql_database_url: str) -> Iterator[str]:
    """A second MariaDB database with the jobsched schema, on the same server as the test one."""
    server = sa.make_url(mysql_database_url)
    name = f"{server.database}_other_{secrets.token_hex(2)}"
    # No pooled connection to go stale: fault tests kill the idle connections of the test
    # database, this one's included.
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    url = server.set(database=name).render_as_string(hide_password=False)
    scheduler = Scheduler(url)
    scheduler.migrate()
    scheduler.close()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


@pytest.fixture(params=["another sqlite file", "another mariadb database"])
def other_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scheduler]:
    """A scheduler on another migrated database holding one job, "a"."""
    if request.param == "another sqlite file":
        url = f"sqlite:///{tmp_path / 'other.db'}"
        Scheduler(url).migrate()
    else:
        url = request.getfixturevalue("other_mysql_url")
    other = Scheduler(url)
    for job in list(other.list_jobs()):
        other.remove_job(job.job_id)
    other.schedule_job("a", T0, "h", "theirs")
    yield other
    other.close()


def engine_of(scheduler: Scheduler) -> sa.Engine:
    assert isinstance(scheduler.store, SqlStore)
    return scheduler.store.engine


@pytest.mark.parametrize("call", list(CALLS))
def test_a_connection_to_another_database_is_refused_and_nothing_is_done(
    sql_scheduler: Scheduler, other_database: Scheduler, call: str
) -> None:
    theirs = list(other_database.list_jobs())
    with engine_of(other_database).connect() as conn:
        with pytest.raises(UsageError) as info:
            CALLS[call](sql_scheduler, conn)
        conn.commit()
    message = str(info.value)
    assert other_database.store.describe() in message
    assert sql_scheduler.store.describe() in message
    assert "nothing was done" in message
    assert list(other_database.list_jobs()) == theirs
    assert list(sql_scheduler.list_jobs()) == []


@pytest.fixture
def other_mysql_engine_with_password(other_mysql_url: str) -> Iterator[sa.Engine]:
    """An engine on the other MariaDB database, through a user of its own with a password."""
    url = sa.make_url(other_mysql_url)
    user, password = f"jobsched_{secrets.token_hex(4)}", f"pw-{secrets.token_hex(8)}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'%%' IDENTIFIED BY '{password}'")
        conn.exec_driver_sql(f"GRANT ALL ON {url.database}.* TO '{user}'@'%%'")
    engine = sa.create_engine(url.set(username=user, password=password))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP USER '{user}'@'%%'")
        admin.dispose()


def test_the_refusal_names_the_other_database_without_its_password(
    sql_scheduler: Scheduler, other_mysql_engine_with_password: sa.Engine
) -> None:
    url = other_mysql_engine_with_password.url
    assert url.password
    with other_mysql_engine_with_password.connect() as conn, pytest.raises(UsageError) as info:
        sql_scheduler.get_job("a", conn=conn)
    assert str(url.password) not in str(info.value)
    assert f"{url.username}:***@{url.host}:{url.port}/{url.database}" in str(info.value)


def test_a_connection_of_the_callers_own_engine_on_the_same_database_works(
    sql_scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = engine_of(sql_scheduler).url
    if url.get_backend_name() == "sqlite":
        # The same file by another spelling: relative to the current directory.
        assert url.database is not None
        monkeypatch.chdir(Path(url.database).parent)
        own = sa.create_engine(url.set(database=os.path.join(".", Path(url.database).name)))
    else:
        # Another driver name and "localhost" for 127.0.0.1; the server's default isolation.
        own = sa.create_engine(url.set(drivername="mariadb+pymysql", host="localhost"))
    assert own.url != url
    try:
        with own.begin() as conn:
            sql_scheduler.schedule_job("a", timedelta(0), "h", 1, conn=conn)
            sql_scheduler.update_job("a", lambda job: (Job("a", "h", 2, T0), None), conn=conn)
            assert sql_scheduler.job_exists("a", conn=conn)
        job = sql_scheduler.get_job("a")
        assert job is not None and job.data == 2
        with own.begin() as conn:
            assert sql_scheduler.remove_job("a", conn=conn)
        assert not sql_scheduler.job_exists("a")
    finally:
        own.dispose()
