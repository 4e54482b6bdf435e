"""The Alembic revisions build exactly the schema the code expects, on SQLite and MariaDB."""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
import sys
import venv
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from jobsched import DatabaseError, MigrateResult, Scheduler, SchemaError
from jobsched.presence import Runner
from jobsched.schema import SCHEMA_REVISION, VERSION_TABLE, metadata
from jobsched.store.migrations import migrations_dir, result_of

CHECKOUT = Path(__file__).resolve().parents[2]

MakeDatabase = Callable[[str], str]


@pytest.fixture
def make_mysql_database(mysql_database_url: str) -> Iterator[MakeDatabase]:
    """Creates empty utf8mb4 databases on the test server; ``make(driver)`` returns a URL."""
    server = sa.make_url(mysql_database_url)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make(drivername: str = "mysql+pymysql") -> str:
        name = f"jobsched_mig_{secrets.token_hex(4)}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        made.append(name)
        url = server.set(drivername=drivername, database=name)
        return url.render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    admin.dispose()


@pytest.fixture(params=["sqlite", "mariadb"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of a database with no tables: an empty SQLite file, or a new MariaDB database."""
    if request.param == "sqlite":
        path = tmp_path / "empty.db"
        sqlite3.connect(path).close()
        assert path.exists()
        return f"sqlite:///{path}"
    make: MakeDatabase = request.getfixturevalue("make_mysql_database")
    return make("mysql+pymysql")


def alembic_config(conn: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["connection"] = conn
    return config


def revisions_oldest_first() -> list[str]:
    script = ScriptDirectory(str(migrations_dir()))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def schema_diffs(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        return list(compare_metadata(context, metadata))


def version_rows(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())


def test_upgrading_through_every_migration_yields_the_metadata_schema(empty_url: str) -> None:
    engine = sa.create_engine(empty_url)
    try:
        for revision in revisions_oldest_first():
            with engine.begin() as conn:
                command.upgrade(alembic_config(conn), revision)
        assert schema_diffs(engine) == []
        assert version_rows(engine) == [SCHEMA_REVISION]
    finally:
        engine.dispose()


def test_migrate_yields_the_metadata_schema(empty_url: str) -> None:
    scheduler = Scheduler(empty_url)
    scheduler.migrate()
    scheduler.close()
    engine = sa.create_engine(empty_url)
    try:
        assert schema_diffs(engine) == []
    finally:
        engine.dispose()


def show_create_jobs(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql("SHOW CREATE TABLE jobs").one()[1])
    finally:
        engine.dispose()


def column_types(url: str) -> dict[str, str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT column_name, column_type, character_set_name "
                "FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND table_name = 'jobs'"
            ).all()
        return {name: f"{ctype} {charset}" for name, ctype, charset in rows}
    finally:
        engine.dispose()


def table_options(url: str) -> tuple[str, str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.exec_driver_sql(
                "SELECT engine, table_collation FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name = 'jobs'"
            ).one()
        return str(row[0]), str(row[1])
    finally:
        engine.dispose()


def test_mysql_and_mariadb_urls_build_identical_tables(make_mysql_database: MakeDatabase) -> None:
    urls = [make_mysql_database("mysql+pymysql"), make_mysql_database("mariadb+pymysql")]
    for url in urls:
        scheduler = Scheduler(url)
        scheduler.migrate()
        scheduler.close()
    mysql_ddl, mariadb_ddl = (show_create_jobs(url) for url in urls)
    assert mysql_ddl == mariadb_ddl
    for url in urls:
        types = column_types(url)
        assert types["job_id"].startswith("varbinary(")
        assert types["handler"].startswith("varbinary(")
        assert types["data"] == "mediumtext utf8mb4"
        assert types["last_error"].endswith("utf8mb4")
        for name in ("start_time", "expiry", "created_at", "claimed_until", "started_at"):
            assert types[name].startswith("datetime(6)"), name
        engine, collation = table_options(url)
        assert engine == "InnoDB"
        assert collation.startswith("utf8mb4_")


def test_migrate_is_idempotent(empty_url: str) -> None:
    scheduler = Scheduler(empty_url)
    try:
        scheduler.migrate()
        scheduler.schedule_job("kept", timedelta(hours=1), "h", {"n": 1})
        scheduler.migrate()
        scheduler.migrate()
        job = scheduler.get_job("kept")
        assert job is not None
        assert job.data == {"n": 1}
    finally:
        scheduler.close()
    engine = sa.create_engine(empty_url)
    try:
        assert version_rows(engine) == [SCHEMA_REVISION]
        assert schema_diffs(engine) == []
    finally:
        engine.dispose()


def test_migrate_says_whether_it_created_the_schema_or_found_it_current(empty_url: str) -> None:
    scheduler = Scheduler(empty_url)
    try:
        assert scheduler.migrate() is MigrateResult.CREATED
        assert scheduler.migrate() is MigrateResult.CURRENT
    finally:
        scheduler.close()


@pytest.mark.parametrize(
    ("before", "result"),
    [
        (None, MigrateResult.CREATED),
        ("0000_older", MigrateResult.UPGRADED),
        (SCHEMA_REVISION, MigrateResult.CURRENT),
    ],
)
def test_migrate_reports_an_older_revision_as_upgraded(
    before: str | None, result: MigrateResult
) -> None:
    assert result_of(before) is result


def test_a_sqlite_file_in_a_missing_directory_is_a_database_error_saying_so(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "no-such-dir"
    scheduler = Scheduler(f"sqlite:///{missing / 'jobs.db'}")
    try:
        with pytest.raises(DatabaseError, match=f"{missing} .*does not exist"):
            scheduler.get_job("any")
        with pytest.raises(DatabaseError, match=f"{missing} .*does not exist"):
            scheduler.migrate()
    finally:
        scheduler.close()
    assert not missing.exists()


def test_version_table_is_jobsched_own_and_the_host_alembic_version_is_untouched(
    empty_url: str,
) -> None:
    engine = sa.create_engine(empty_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('hostapp42')")
    scheduler = Scheduler(empty_url)
    scheduler.migrate()
    scheduler.close()
    try:
        assert VERSION_TABLE == "jobsched_alembic_version"
        assert sa.inspect(engine).has_table("jobsched_alembic_version")
        assert version_rows(engine) == [SCHEMA_REVISION]
        with engine.connect() as conn:
            host = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
        assert host == ["hostapp42"]
    finally:
        engine.dispose()


def test_schema_revision_is_the_alembic_head() -> None:
    script = ScriptDirectory(str(migrations_dir()))
    assert script.get_heads() == [SCHEMA_REVISION]


def test_a_database_without_the_schema_raises_schema_error_naming_migrate(empty_url: str) -> None:
    scheduler = Scheduler(empty_url)
    try:
        with pytest.raises(SchemaError, match="jobsched migrate"):
            scheduler.get_job("any")
        with pytest.raises(SchemaError, match="jobsched migrate"):
            scheduler.schedule_job("any", timedelta(0), "h", None)
    finally:
        scheduler.close()


def test_a_sqlite_url_to_a_missing_file_raises_schema_error_and_creates_no_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mistyped.db"
    scheduler = Scheduler(f"sqlite:///{path}")
    try:
        with pytest.raises(SchemaError, match="jobsched migrate"):
            scheduler.get_job("any")
        with pytest.raises(SchemaError, match="jobsched migrate"):
            scheduler.schedule_job("any", timedelta(0), "h", None)
        with pytest.raises(SchemaError):
            list(scheduler.list_jobs())
    finally:
        scheduler.close()
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_only_migrate_creates_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    scheduler = Scheduler(f"sqlite:///{path}")
    try:
        scheduler.migrate()
        assert path.exists()
        assert scheduler.get_job("any") is None
    finally:
        scheduler.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_installed_wheel_migrates_without_a_checkout_and_is_typed(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(CHECKOUT)],
        check=True,
        capture_output=True,
        cwd=CHECKOUT,
    )
    [wheel] = dist.glob("jobsched-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    db = tmp_path / "x.db"
    result = subprocess.run(
        [str(env_dir / "bin" / "jobsched"), "--database-url", f"sqlite:///{db}", "migrate"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    conn = sqlite3.connect(db)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert {"jobs", "jobsched_alembic_version"} <= tables
    assert not (elsewhere / "jobsched.db").exists()
    # The wheel is typed (PEP 561): a user's mypy sees jobsched's types, not Any.
    located = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", "import jobsched; print(jobsched.__file__)"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        check=True,
    )
    installed = Path(located.stdout.strip()).parent
    assert installed.is_relative_to(env_dir)
    assert (installed / "py.typed").is_file()
    # `python -m jobsched` is the jobsched command.
    module = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "jobsched", "--database-url", f"sqlite:///{db}",
         "list", "--json"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
    )  # fmt: skip
    assert (module.returncode, module.stdout.strip()) == (0, "[]"), module.stderr


def test_a_revision_0001_database_upgrades_to_the_history_schema_keeping_its_jobs(
    empty_url: str,
) -> None:
    engine = sa.create_engine(empty_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0001")
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO jobs (job_id, handler, data, start_time, attempts, max_attempts, "
                "created_at, version) VALUES ('kept', 'h', '{\"n\": 1}', "
                "'2026-01-05 09:00:00.000000', 1, 3, '2026-01-05 08:00:00.000000', 7)"
            )
        scheduler = Scheduler(empty_url)
        try:
            assert scheduler.migrate() is MigrateResult.UPGRADED
            job = scheduler.get_job("kept")
            assert job is not None and (job.data, job.attempts) == ({"n": 1}, 1)
            assert scheduler.status("kept").job == job
            assert scheduler.history() == []
        finally:
            scheduler.close()
        assert schema_diffs(engine) == []
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0001")
        assert not sa.inspect(engine).has_table("job_runs")
    finally:
        engine.dispose()


def test_jobsched_migrate_upgrades_a_revision_0002_database_to_the_runners_table_keeping_its_rows(
    empty_url: str,
) -> None:
    engine = sa.create_engine(empty_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0002")
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO jobs (job_id, handler, data, start_time, attempts, max_attempts, "
                "created_at, version) VALUES ('kept', 'h', '{\"n\": 1}', "
                "'2026-01-05 09:00:00.000000', 0, 3, '2026-01-05 08:00:00.000000', 7)"
            )
        scheduler = Scheduler(empty_url)
        try:
            with pytest.raises(SchemaError, match="revision 0002, this version needs 0003"):
                scheduler.store.list_runners(scheduler.now())
        finally:
            scheduler.close()
        migrate = subprocess.run(
            [str(Path(sys.executable).parent / "jobsched"), "--database-url", empty_url, "migrate"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrate.returncode == 0, migrate.stderr
        assert "upgraded the schema to revision 0003" in migrate.stdout
        assert schema_diffs(engine) == []
        assert version_rows(engine) == ["0003"]
        scheduler = Scheduler(empty_url)
        try:
            job = scheduler.get_job("kept")
            assert job is not None and job.data == {"n": 1}
            now = scheduler.now()
            scheduler.store.register_runner(
                Runner("host:1", "host", 1, "worker", "1.0", now, now, 2)
            )
            [(runner, jobs)] = scheduler.store.list_runners(now)
            assert (runner.name, runner.started_at, jobs) == ("host:1", now, ())
        finally:
            scheduler.close()
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0002")
        assert not sa.inspect(engine).has_table("runners")
        assert sa.inspect(engine).has_table("job_runs")
        assert version_rows(engine) == ["0002"]
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT job_id FROM jobs").scalars().all() in (
                ["kept"],
                [b"kept"],
            )
    finally:
        engine.dispose()
