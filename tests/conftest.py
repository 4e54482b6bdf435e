"""Fixtures shared by every test: fake clocks, and schedulers on each backend.

The contract suite takes ``scheduler``, parametrised over every backend. MariaDB tests run in a
fresh utf8mb4 database made for this test run, on connections whose session time zone is -08:00
(so code that leans on the session zone fails). Outside CI an unreachable MariaDB skips its
tests; under CI=true it fails them.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobsched import FakeClock, Scheduler
from jobsched.handlers import Registry

#: Where the fake clock of every test starts.
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SERVER_URL = os.environ.get("JOBSCHED_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
SESSION_TIME_ZONE = "-08:00"

BACKENDS = ["sqlite", "mariadb"]
if importlib.util.find_spec("jobsched.store.memory") is not None:
    BACKENDS.insert(0, "memory")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"MariaDB is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"MariaDB not reachable ({reason}); set JOBSCHED_TEST_MYSQL_URL")


@pytest.fixture(scope="session")
def mysql_database_url() -> Iterator[str]:
    """A fresh utf8mb4 database with the jobsched schema, for this test run; dropped after."""
    server = sa.make_url(SERVER_URL)
    name = f"jobsched_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    except sa.exc.DBAPIError as e:
        admin.dispose()
        _unavailable(str(e.orig))
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


@pytest.fixture(scope="session")
def mysql_engine(mysql_database_url: str) -> Iterator[sa.Engine]:
    """An engine on the test database whose sessions use a non-UTC time zone."""
    engine = sa.create_engine(mysql_database_url, pool_pre_ping=True)

    @sa.event.listens_for(engine, "connect")
    def set_zone(dbapi_conn: object, record: object) -> None:
        cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
        cursor.execute(f"SET time_zone = '{SESSION_TIME_ZONE}'")
        cursor.close()

    yield engine
    engine.dispose()


@pytest.fixture
def mysql_url(mysql_database_url: str, mysql_engine: sa.Engine) -> str:
    """The MariaDB test database's URL, emptied for this test."""
    with mysql_engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM jobs")
        conn.exec_driver_sql("DELETE FROM job_runs")
        conn.exec_driver_sql("DELETE FROM runners")
        conn.exec_driver_sql("UPDATE jobsched_meta SET at = NULL")
    return mysql_database_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite file of this test's own."""
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    scheduler = Scheduler(url)
    scheduler.migrate()
    scheduler.close()
    return url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def registry() -> Registry:
    """A handler registry of the test's own (the global one is left alone)."""
    return Registry()


def make_scheduler(
    backend: str, request: pytest.FixtureRequest, clock: FakeClock, registry: Registry
) -> Scheduler:
    if backend == "memory":
        return Scheduler("memory://", clock=clock, registry=registry)
    if backend == "sqlite":
        return Scheduler(request.getfixturevalue("sqlite_url"), clock=clock, registry=registry)
    request.getfixturevalue("mysql_url")
    engine = request.getfixturevalue("mysql_engine")
    return Scheduler(engine, clock=clock, registry=registry)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def scheduler(
    backend: str, request: pytest.FixtureRequest, clock: FakeClock, registry: Registry
) -> Iterator[Scheduler]:
    """A scheduler on a fake clock, on each backend in turn, with an empty jobs table."""
    scheduler = make_scheduler(backend, request, clock, registry)
    yield scheduler
    scheduler.close()


@pytest.fixture(params=[b for b in BACKENDS if b != "memory"])
def sql_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sql_scheduler(
    sql_backend: str, request: pytest.FixtureRequest, clock: FakeClock, registry: Registry
) -> Iterator[Scheduler]:
    """Like ``scheduler``, on the SQL backends only (transactions, connections, processes)."""
    scheduler = make_scheduler(sql_backend, request, clock, registry)
    yield scheduler
    scheduler.close()


@pytest.fixture(params=[b for b in BACKENDS if b != "memory"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A URL of an empty, migrated database on each SQL backend (for subprocess tests)."""
    fixture = "sqlite_url" if request.param == "sqlite" else "mysql_url"
    return str(request.getfixturevalue(fixture))
