"""Every database difference lives behind the dialect seam (``jobsched.store.dialect``): the
store's SQL and the schema name no database, and each database's column types, table options,
engine and pragmas come from its dialect class."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.schema import CreateTable

import jobsched
from jobsched.schema import jobs
from jobsched.store.dialect import MysqlDialect, SqliteDialect, dialect_for, table_options
from jobsched.store.sql import create_engine

PACKAGE = Path(jobsched.__file__).resolve().parent
BACKEND_NAMES = {"sqlite", "mysql", "mariadb", "postgresql"}


def backend_names_in_code(path: Path) -> list[str]:
    """String constants in ``path`` that name a backend, docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        f"line {node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and node.value.lower() in BACKEND_NAMES
    ]


@pytest.mark.parametrize("module", ["store/sql.py", "schema.py"])
def test_the_store_and_the_schema_name_no_database(module: str) -> None:
    assert backend_names_in_code(PACKAGE / module) == []


def create_table(dialect: sa.Dialect) -> str:
    return str(CreateTable(jobs).compile(dialect=dialect))


@pytest.mark.parametrize("name", ["mysql", "mariadb"])
def test_mysql_column_types_come_from_the_mysql_dialect(name: str) -> None:
    dialect = mysql.dialect()
    dialect.name = name  # what a mariadb+pymysql:// engine's dialect is called
    ddl = create_table(dialect)
    assert "job_id VARBINARY(1020) NOT NULL" in ddl
    assert "start_time DATETIME(6) NOT NULL" in ddl
    assert "data MEDIUMTEXT NOT NULL" in ddl


def test_sqlite_column_types_come_from_the_sqlite_dialect() -> None:
    ddl = create_table(sqlite.dialect())
    assert "job_id VARCHAR(255) NOT NULL" in ddl
    assert "start_time DATETIME NOT NULL" in ddl
    assert "data TEXT NOT NULL" in ddl


def test_sql_compiled_for_display_uses_generic_types() -> None:
    assert "FROM jobs" in str(sa.select(jobs).where(jobs.c.job_id == "x"))


def test_the_table_options_of_every_dialect_reach_the_migrations() -> None:
    options = table_options()
    for prefix in ("mysql", "mariadb"):  # the mariadb dialect ignores mysql_* options
        assert options[f"{prefix}_engine"] == "InnoDB"
        assert options[f"{prefix}_charset"] == "utf8mb4"
        assert options[f"{prefix}_collate"] == "utf8mb4_bin"


@pytest.mark.parametrize(
    ("url", "dialect"),
    [
        ("sqlite:///jobs.db", SqliteDialect),
        ("mysql+pymysql://u@h/db", MysqlDialect),
        ("mariadb+pymysql://u@h/db", MysqlDialect),
    ],
)
def test_each_database_has_one_dialect_class(url: str, dialect: type) -> None:
    engine = create_engine(sa.make_url(url))
    try:
        assert type(dialect_for(engine.dialect.name)) is dialect
    finally:
        engine.dispose()


def test_mysql_engines_run_read_committed_and_talk_utf8mb4() -> None:
    engine = create_engine(sa.make_url("mysql+pymysql://u@h/db"))
    try:
        assert engine.url.query["charset"] == "utf8mb4"
        assert engine.dialect._on_connect_isolation_level == "READ COMMITTED"  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_a_callers_mysql_engine_is_adopted_read_committed_on_its_own_pool() -> None:
    theirs = sa.create_engine("mysql+pymysql://u@h/db")
    try:
        adopted = MysqlDialect().adopt_engine(theirs)
        assert adopted.pool is theirs.pool
        assert adopted.get_execution_options()["isolation_level"] == "READ COMMITTED"
    finally:
        theirs.dispose()


def test_sqlite_files_are_put_in_wal_mode_by_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    scheduler = jobsched.Scheduler(url)
    try:
        scheduler.migrate()
    finally:
        scheduler.close()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()
