"""Which database URLs jobsched accepts, and what it says about the others."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobsched import JobschedError, Scheduler, UsageError
from jobsched.store.sql import SqlStore

UNSUPPORTED = [
    "mysql+pymsql://app@db/shop",  # a typo
    "mysql+aiomysql://app@db/shop",  # an async driver
    "mysql+mysqldb://app@db/shop",  # mysqlclient: not switched to PyMySQL behind the user's back
    "mariadb+mariadbconnector://app@db/shop",
    "postgres://app@db/shop",
    "postgresql://app@db/shop",
    "postgresql+psycopg://app@db/shop",
    "sqlite+aiosqlite:///jobs.db",
    "oracle://app@db/shop",
]

IN_MEMORY = [
    "sqlite://",
    "sqlite:///",
    "sqlite:///:memory:",
    "sqlite+pysqlite:///:memory:",
    "sqlite:///:memory:?cache=shared",
    "sqlite:///file::memory:?uri=true",
    "sqlite:///file::memory:?cache=shared&uri=true",
    "sqlite:///file:jobs?mode=memory&cache=shared&uri=true",
]


@pytest.mark.parametrize("url", UNSUPPORTED)
def test_an_unsupported_url_is_a_usage_error_naming_the_supported_urls(url: str) -> None:
    with pytest.raises(UsageError) as raised:
        Scheduler(url)
    message = str(raised.value)
    assert url.split("://")[0] in message
    for supported in ("sqlite:///", "mysql+pymysql://", "mariadb+pymysql://", "memory://"):
        assert supported in message
    assert isinstance(raised.value, JobschedError)


def test_the_unsupported_url_message_says_a_plain_mysql_url_means_pymysql() -> None:
    with pytest.raises(UsageError, match=r"plain mysql:// .*means PyMySQL"):
        Scheduler("mysql+mysqldb://app@db/shop")


@pytest.mark.parametrize(
    ("url", "drivername"),
    [
        ("mysql://app@db/shop", "mysql+pymysql"),
        ("mariadb://app@db/shop", "mariadb+pymysql"),
        ("mysql+pymysql://app@db/shop", "mysql+pymysql"),
        ("MySQL+PyMySQL://app@db/shop", "mysql+pymysql"),
        ("sqlite+pysqlite:///jobs.db", "sqlite+pysqlite"),
    ],
)
def test_a_supported_url_opens_a_sql_store_without_connecting(url: str, drivername: str) -> None:
    scheduler = Scheduler(url)
    try:
        assert isinstance(scheduler.store, SqlStore)
        assert scheduler.store.engine.url.drivername == drivername
    finally:
        scheduler.close()


@pytest.mark.parametrize("url", IN_MEMORY)
def test_an_in_memory_sqlite_database_is_not_persistent(url: str) -> None:
    scheduler = Scheduler(url)
    try:
        assert scheduler.store.persistent is False
    finally:
        scheduler.close()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///jobs.db",
        "sqlite:////var/lib/app/jobs.db",
        "sqlite:///file:jobs.db?uri=true",
        "mysql+pymysql://app@db/shop",
    ],
)
def test_a_file_or_server_database_is_persistent(url: str) -> None:
    scheduler = Scheduler(url)
    try:
        assert scheduler.store.persistent is True
    finally:
        scheduler.close()


def test_the_api_keeps_memory_urls_for_tests() -> None:
    scheduler = Scheduler("memory://")
    assert scheduler.store.persistent is False
    scheduler.schedule_job("a", timedelta(0), "h")
    assert scheduler.job_exists("a")
