"""What identifies a database, for checking a caller's conn= against the scheduler's database."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from jobsched.store.dialect import MysqlDialect, SqliteDialect, sqlite_file


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///jobs.db", "jobs.db"),
        ("sqlite:////var/lib/app/jobs.db", "/var/lib/app/jobs.db"),
        ("sqlite:///file:jobs.db?uri=true&mode=ro", "jobs.db"),
        ("sqlite:///file:///var/lib/app/my%20jobs.db?uri=true", "/var/lib/app/my jobs.db"),
        ("sqlite:///file:mem?mode=memory&cache=shared&uri=true", None),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
    ],
)
def test_the_file_a_sqlite_url_opens(url: str, expected: str | None) -> None:
    assert sqlite_file(sa.make_url(url)) == expected


def test_sqlite_files_are_compared_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    dialect = SqliteDialect()
    spellings = [f"sqlite:///{tmp_path}/jobs.db", "sqlite:///jobs.db", "sqlite:///sub/../jobs.db"]
    assert len({dialect.database_of(sa.create_engine(url)) for url in spellings}) == 1
    other = dialect.database_of(sa.create_engine("sqlite:///sub/jobs.db"))
    assert other != dialect.database_of(sa.create_engine("sqlite:///jobs.db"))


def test_each_in_memory_sqlite_engine_is_a_database_of_its_own() -> None:
    dialect = SqliteDialect()
    one, two = sa.create_engine("sqlite://"), sa.create_engine("sqlite://")
    assert dialect.database_of(one) != dialect.database_of(two)
    assert dialect.database_of(one) == dialect.database_of(one.execution_options(x=1))


@pytest.mark.parametrize(
    "url",
    [
        "mysql+pymysql://root@127.0.0.1:3306/shop",
        "mysql+pymysql://app:secret@localhost/shop",
        "mariadb+pymysql://other@LOCALHOST:3306/shop?charset=utf8mb4",
        "mysql+pymysql://app@[::1]/shop",
    ],
)
def test_mysql_databases_are_the_same_whatever_user_driver_or_loopback_name(url: str) -> None:
    dialect = MysqlDialect()
    reference = dialect.database_of(sa.create_engine("mysql+pymysql://root@127.0.0.1/shop"))
    assert dialect.database_of(sa.create_engine(url)) == reference


@pytest.mark.parametrize(
    "url",
    [
        "mysql+pymysql://root@127.0.0.1:3307/shop",
        "mysql+pymysql://root@db.example/shop",
        "mysql+pymysql://root@127.0.0.1/Shop",
        "mysql+pymysql://root@127.0.0.1/",
    ],
)
def test_another_port_host_or_database_is_another_mysql_database(url: str) -> None:
    dialect = MysqlDialect()
    reference = dialect.database_of(sa.create_engine("mysql+pymysql://root@127.0.0.1/shop"))
    assert dialect.database_of(sa.create_engine(url)) != reference
