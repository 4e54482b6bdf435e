"""MariaDB: the schedule path of a scheduler on a URL (jobsched's own engines).

One job outside a caller's transaction is one round trip; a connection used a moment ago is
not pinged; a dropped connection is retried once, and an insert whose answer was lost is found
by the version it wrote. Faults are real: ``KILL CONNECTION`` on the server, and a TCP proxy
that cuts connections (``droppy``). Sessions use a -08:00 time zone, as in every MariaDB test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pymysql
import pytest
import sqlalchemy as sa
from pymysql.constants import COMMAND, FIELD_TYPE

from integration.droppy import DroppingProxy, dropping_proxy
from jobsched import DatabaseError, Job, JobExistsError, Mode, Scheduler, rules
from jobsched.schema import jobs
from jobsched.store import dialect
from jobsched.store.sql import SqlStore

pytestmark = pytest.mark.mariadb

SESSION = "SET time_zone = '-08:00'"


def with_session(url: str, init: str = SESSION) -> str:
    return f"{url}?init_command={quote(init)}"


def store_of(scheduler: Scheduler) -> SqlStore:
    assert isinstance(scheduler.store, SqlStore)
    return scheduler.store


class Commands:
    """Counts the commands (queries and pings: each a round trip) jobsched's connections send."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.sent: list[str] = []
        store = store_of(scheduler)
        for engine in {store.engine, store.autocommit}:
            assert engine is not None
            sa.event.listen(engine, "connect", self._wrap)

    def _wrap(self, dbapi_conn: Any, record: Any) -> None:
        send = dbapi_conn._execute_command

        def counted(command: int, sql: Any) -> Any:
            if command == COMMAND.COM_PING:
                self.sent.append("PING")
            elif command == COMMAND.COM_QUERY:
                text = sql.decode(errors="replace") if isinstance(sql, bytes) else sql
                self.sent.append(text.split()[0].upper())
            return send(command, sql)

        dbapi_conn._execute_command = counted

    def during(self, work: Any) -> list[str]:
        self.sent.clear()
        work()
        return list(self.sent)


@pytest.fixture
def url(mysql_url: str) -> str:
    return with_session(mysql_url)


@pytest.fixture
def scheduler(url: str) -> Iterator[Scheduler]:
    scheduler = Scheduler(url)
    yield scheduler
    scheduler.close()


@pytest.fixture
def commands(scheduler: Scheduler) -> Commands:
    counter = Commands(scheduler)
    scheduler.count_jobs()  # the schema checked, a first connection made
    scheduler.schedule_job("warm-up", timedelta(hours=1), "h")  # and one of the autocommit pool
    return counter


def admin(mysql_engine: sa.Engine, sql: str) -> list[Any]:
    with mysql_engine.connect() as conn:
        result = conn.exec_driver_sql(sql)
        return list(result.scalars()) if result.returns_rows else []


# -- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(Mode), ids=lambda m: m.value)
def test_one_new_job_outside_a_transaction_is_one_round_trip(
    scheduler: Scheduler, commands: Commands, mode: Mode
) -> None:
    sent = commands.during(
        lambda: scheduler.schedule_job("a", timedelta(hours=1), "h", {"n": 1}, mode=mode)
    )
    assert sent == ["INSERT"]
    assert scheduler.get_job("a") is not None


def test_with_a_callers_engine_one_new_job_is_one_round_trip_on_a_copy_of_its_pool(
    url: str,
) -> None:
    # Borrowing the caller's pool would cost four more: autocommit (or an isolation level)
    # set on checkout and reset on checkin, and a rollback.
    theirs = sa.create_engine(url)
    scheduler = Scheduler(theirs)
    try:
        counter = Commands(scheduler)
        scheduler.count_jobs()
        scheduler.schedule_job("warm-up", timedelta(hours=1), "h")
        sent = counter.during(lambda: scheduler.schedule_job("a", timedelta(hours=1), "h"))
        assert sent == ["INSERT"]
        assert store_of(scheduler).autocommit.pool is not theirs.pool  # type: ignore[union-attr]
        with theirs.connect() as conn:  # the caller's connections are left as they were
            assert conn.exec_driver_sql("SELECT @@autocommit").scalar() == 0
    finally:
        scheduler.close()
        theirs.dispose()


def test_rescheduling_an_existing_job_is_one_round_trip(
    scheduler: Scheduler, commands: Commands
) -> None:
    scheduler.schedule_job("a", timedelta(hours=1), "h", {"n": 1})
    sent = commands.during(
        lambda: scheduler.schedule_job("a", timedelta(hours=2), "h", {"n": 2}, mode=Mode.RESCHEDULE)
    )
    assert sent == ["INSERT"]
    job = scheduler.get_job("a")
    assert job is not None and job.data == {"n": 2}


def test_ignore_if_exists_of_an_existing_job_is_an_insert_and_one_read(
    scheduler: Scheduler, commands: Commands
) -> None:
    scheduler.schedule_job("a", timedelta(hours=1), "h", {"n": 1})
    returned: list[Job] = []
    sent = commands.during(
        lambda: returned.append(
            scheduler.schedule_job(
                "a", timedelta(hours=2), "h", {"n": 2}, mode=Mode.IGNORE_IF_EXISTS
            )
        )
    )
    assert sent == ["INSERT", "SELECT"]
    assert returned[0].data == {"n": 1}


def test_a_new_job_with_an_existing_id_is_refused_by_its_insert_alone(
    scheduler: Scheduler, commands: Commands
) -> None:
    scheduler.schedule_job("a", timedelta(hours=1), "h", {"n": 1})
    with pytest.raises(JobExistsError):
        commands.during(lambda: scheduler.schedule_job("a", timedelta(hours=2), "h", {"n": 2}))
    assert commands.sent == ["INSERT"]
    job = scheduler.get_job("a")
    assert job is not None and job.data == {"n": 1}


def specs(n: int, prefix: str = "j") -> list[dict[str, Any]]:
    return [
        {"job_id": f"{prefix}{i:05}", "start": timedelta(hours=1), "handler": "h"} for i in range(n)
    ]


@pytest.mark.parametrize("mode", [Mode.NEW, Mode.RESCHEDULE], ids=lambda m: m.value)
def test_a_batch_that_fits_one_statement_is_one_round_trip(
    scheduler: Scheduler, commands: Commands, mode: Mode
) -> None:
    assert commands.during(lambda: scheduler.schedule_jobs(specs(1000), mode=mode)) == ["INSERT"]
    assert scheduler.count_jobs() == 1001


def test_a_batch_of_several_statements_is_one_transaction(
    scheduler: Scheduler, commands: Commands
) -> None:
    sent = commands.during(
        lambda: scheduler.schedule_jobs(specs(2 * dialect.MysqlDialect.batch_rows + 1))
    )
    # And no ROLLBACK when the connection goes back to the pool: the transaction ended.
    assert sent == ["INSERT", "INSERT", "INSERT", "COMMIT"]


def test_a_transaction_whose_work_raises_is_rolled_back_before_its_connection_is_pooled(
    scheduler: Scheduler, commands: Commands
) -> None:
    scheduler.schedule_job("held", timedelta(hours=1), "h")
    store = store_of(scheduler)

    def fail(conn: sa.Connection) -> None:
        conn.execute(jobs.update().where(jobs.c.job_id == "held").values(attempts=5))
        raise RuntimeError("the work failed")

    def run() -> None:
        with pytest.raises(RuntimeError):
            store.transaction(fail, write=True)

    assert commands.during(run) == ["UPDATE", "ROLLBACK"]
    job = scheduler.get_job("held")
    assert job is not None and job.attempts == 0


def test_ignore_if_exists_reads_back_only_ids_and_versions_in_its_transaction(
    scheduler: Scheduler, commands: Commands
) -> None:
    statements: list[str] = []
    store = store_of(scheduler)
    sa.event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    sent = commands.during(lambda: scheduler.schedule_jobs(specs(10), mode=Mode.IGNORE_IF_EXISTS))
    assert sent == ["INSERT", "SELECT", "COMMIT"]
    [select] = [s for s in statements if s.startswith("SELECT")]
    assert " ".join(select.split()).startswith("SELECT jobs.job_id, jobs.version FROM jobs WHERE")


def test_a_connection_used_a_moment_ago_is_not_pinged(
    scheduler: Scheduler, commands: Commands
) -> None:
    def twice() -> None:
        scheduler.schedule_job("a", timedelta(hours=1), "h")
        scheduler.schedule_job("b", timedelta(hours=1), "h")

    assert commands.during(twice) == ["INSERT", "INSERT"]


def test_a_connection_idle_longer_than_the_threshold_is_pinged_before_use(
    scheduler: Scheduler, commands: Commands, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dialect, "IDLE_PING_SECONDS", 0.05)
    time.sleep(0.1)
    sent = commands.during(lambda: scheduler.schedule_job("a", timedelta(hours=1), "h"))
    assert sent == ["PING", "INSERT"]


# -- dropped connections ------------------------------------------------------------------------


def autocommit_connection_id(scheduler: Scheduler) -> int:
    """The server's id of the connection that the next job alone will use."""
    engine = store_of(scheduler).autocommit
    assert engine is not None
    pooled = engine.raw_connection()
    try:
        cursor = pooled.cursor()
        cursor.execute("SELECT CONNECTION_ID()")
        [(connection_id,)] = cursor.fetchall()
        cursor.close()
    finally:
        pooled.close()
    return int(connection_id)


def test_a_connection_killed_between_two_schedule_calls_is_replaced_and_the_call_succeeds(
    scheduler: Scheduler, commands: Commands, mysql_engine: sa.Engine
) -> None:
    scheduler.schedule_job("before", timedelta(hours=1), "h")
    admin(mysql_engine, f"KILL CONNECTION {autocommit_connection_id(scheduler)}")
    sent = commands.during(lambda: scheduler.schedule_job("after", timedelta(hours=1), "h"))
    assert sent == ["INSERT", "INSERT"]  # the first on the killed connection, then again
    assert scheduler.get_job("after") is not None
    assert scheduler.count_jobs() == 3


def test_a_connection_killed_while_idle_is_caught_by_the_ping(
    scheduler: Scheduler,
    commands: Commands,
    mysql_engine: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dialect, "IDLE_PING_SECONDS", 0.05)
    admin(mysql_engine, f"KILL CONNECTION {autocommit_connection_id(scheduler)}")
    time.sleep(0.1)
    sent = commands.during(lambda: scheduler.schedule_job("after", timedelta(hours=1), "h"))
    assert sent == ["PING", "INSERT"]  # the failed ping, then a fresh connection
    assert scheduler.get_job("after") is not None


@pytest.fixture
def proxy(mysql_url: str) -> Iterator[DroppingProxy]:
    server = sa.make_url(mysql_url)
    with dropping_proxy((server.host or "127.0.0.1", server.port or 3306)) as proxy:
        yield proxy


@pytest.fixture
def proxied(proxy: DroppingProxy, mysql_url: str) -> Iterator[Scheduler]:
    """A scheduler whose connections go through the proxy."""
    url = sa.make_url(mysql_url).set(host="127.0.0.1", port=proxy.port)
    scheduler = Scheduler(with_session(url.render_as_string(hide_password=False)))
    scheduler.count_jobs()
    yield scheduler
    scheduler.close()


def test_a_new_job_whose_insert_was_committed_but_not_answered_is_a_success(
    proxied: Scheduler, proxy: DroppingProxy, scheduler: Scheduler
) -> None:
    proxy.arm(b"INSERT INTO jobs", after_reply=True)
    job = proxied.schedule_job("a", timedelta(hours=1), "h", {"n": 1})
    assert proxy.dropped == 1
    assert job.data == {"n": 1}
    stored = scheduler.get_job("a")
    assert stored == job


def test_ignore_if_exists_whose_insert_was_not_answered_says_the_job_was_created(
    proxied: Scheduler, proxy: DroppingProxy
) -> None:
    new = rules.new_job("a", timedelta(hours=1), "h", {"n": 1}, now=proxied.now())
    proxy.arm(b"INSERT INTO jobs", after_reply=True)
    [(job, created)] = store_of(proxied).schedule([new], Mode.IGNORE_IF_EXISTS)
    assert proxy.dropped == 1
    assert (job, created) == (new.job, True)
    # schedule_jobs counts such a job as created, too.
    proxy.arm(b"INSERT INTO jobs", after_reply=True)
    count = proxied.schedule_jobs(
        [{"job_id": "b", "start": timedelta(hours=1), "handler": "h"}],
        mode=Mode.IGNORE_IF_EXISTS,
    )
    assert (proxy.dropped, count) == (2, 1)


def test_a_batch_whose_commit_was_not_answered_is_a_success(
    proxied: Scheduler, proxy: DroppingProxy, scheduler: Scheduler
) -> None:
    specs = [
        {"job_id": f"j{i:04}", "start": timedelta(hours=1), "handler": "h"} for i in range(3000)
    ]
    proxy.arm(b"COMMIT", after_reply=True)
    assert proxied.schedule_jobs(specs) == 3000
    assert proxy.dropped == 1
    assert scheduler.count_jobs() == 3000


def test_an_insert_lost_before_the_server_saw_it_is_written_by_the_retry(
    proxied: Scheduler, proxy: DroppingProxy, scheduler: Scheduler
) -> None:
    proxy.arm(b"INSERT INTO jobs", after_reply=False)
    proxied.schedule_job("a", timedelta(hours=1), "h", {"n": 1})
    assert proxy.dropped == 1
    assert scheduler.count_jobs() == 1


def test_a_new_job_refused_after_a_lost_answer_names_the_job_that_was_there(
    proxied: Scheduler, proxy: DroppingProxy, scheduler: Scheduler
) -> None:
    scheduler.schedule_job("a", timedelta(hours=1), "h", {"n": "first"})
    proxy.arm(b"INSERT INTO jobs", after_reply=True)
    with pytest.raises(JobExistsError):
        proxied.schedule_job("a", timedelta(hours=1), "h", {"n": "second"})
    job = scheduler.get_job("a")
    assert job is not None and job.data == {"n": "first"}


def test_a_connection_dropped_twice_in_one_call_is_an_error_saying_so(
    proxied: Scheduler, proxy: DroppingProxy, scheduler: Scheduler
) -> None:
    proxy.arm(b"INSERT INTO jobs", after_reply=False, times=2)
    with pytest.raises(DatabaseError, match="dropped the connection") as info:
        proxied.schedule_job("a", timedelta(hours=1), "h")
    assert info.value.retryable
    assert proxy.dropped == 2
    assert scheduler.count_jobs() == 0


# -- literals and DATETIME ----------------------------------------------------------------------

AWKWARD = "it's 100% \\' done; %s %(x)s %% -- \"quoted\" \\\\ 😀"


def test_text_that_looks_like_sql_or_placeholders_is_stored_exactly_without_backslash_escapes(
    mysql_url: str,
) -> None:
    # With NO_BACKSLASH_ESCAPES a backslash is an ordinary character in string literals: the
    # literals jobsched renders must follow the connection's mode.
    url = with_session(mysql_url, f"{SESSION}, sql_mode = 'NO_BACKSLASH_ESCAPES'")
    scheduler = Scheduler(url)
    try:
        scheduler.schedule_job(AWKWARD, timedelta(hours=1), "h", {"text": AWKWARD})
        scheduler.schedule_jobs(
            [{"job_id": f"{AWKWARD}{i}", "start": timedelta(0), "handler": "h", "data": AWKWARD}
             for i in range(3)]
        )  # fmt: skip
        job = scheduler.get_job(AWKWARD)
        assert job is not None and job.data == {"text": AWKWARD}
        assert {j.data for j in scheduler.list_jobs(due=True)} == {AWKWARD}
    finally:
        scheduler.close()


def test_jobscheds_connections_share_one_tls_context_and_offer_tls_as_pymysql_does(
    scheduler: Scheduler,
) -> None:
    # PyMySQL 1.2 builds one per connection (16 ms: the system's CA certificates).
    store = store_of(scheduler)
    connections = []
    try:
        for engine in (store.engine, store.engine, store.autocommit):
            assert engine is not None
            connections.append(engine.connect())
        dbapis = [conn.connection.dbapi_connection for conn in connections]
        contexts = {id(getattr(dbapi, "ctx", None)) for dbapi in dbapis}
        assert len(contexts) == 1
        assert all(not getattr(dbapi, "_ssl_required", False) for dbapi in dbapis)
    finally:
        for conn in connections:
            conn.close()


def test_jobscheds_engines_read_datetime_with_fromisoformat(scheduler: Scheduler) -> None:
    store = store_of(scheduler)
    for engine in (store.engine, store.autocommit):
        assert engine is not None
        pooled = engine.raw_connection()
        try:
            decoder = pooled.dbapi_connection.decoders[FIELD_TYPE.DATETIME]  # type: ignore[union-attr]
        finally:
            pooled.close()
        assert decoder is dialect._datetime_from_text


def test_datetime_read_with_fromisoformat_keeps_every_microsecond(scheduler: Scheduler) -> None:
    start = datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    scheduler.schedule_job("a", start, "h", expiry=start + timedelta(microseconds=1))
    scheduler.schedule_job("b", start.replace(microsecond=0), "h")
    a, b = scheduler.get_job("a"), scheduler.get_job("b")
    assert a is not None and a.start == start and a.expiry == start + timedelta(microseconds=1)
    assert b is not None and b.start == start.replace(microsecond=0)


@pytest.mark.parametrize(
    "text", ["0000-00-00 00:00:00", "2026-02-30 10:00:00", "2026-01-05 09:00:00.5"]
)
def test_datetime_text_fromisoformat_cannot_read_is_decoded_as_pymysql_would(text: str) -> None:
    assert dialect._datetime_from_text(text) == pymysql.converters.convert_datetime(text)
