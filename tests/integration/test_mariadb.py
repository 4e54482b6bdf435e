"""MariaDB specifics: the claim's index, DATETIME(6), exact ids, utf8mb4, server versions,
and racing schedules inside callers' REPEATABLE READ transactions.

Every test here runs against the MariaDB test database, whose sessions use a -08:00 time zone.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
import storeops

from jobsched import FakeClock, Job, Mode, Scheduler
from jobsched.handlers import Registry
from jobsched.store.dialect import supports_skip_locked
from jobsched.store.sql import SqlStore

pytestmark = pytest.mark.mariadb


@pytest.fixture(params=["mysql+pymysql", "mariadb+pymysql"])
def scheduler_engine(
    request: pytest.FixtureRequest, mysql_url: str, mysql_engine: sa.Engine
) -> Iterator[sa.Engine]:
    """The -08:00 session engine on the emptied test database, through both URL spellings."""
    if request.param == mysql_engine.url.drivername:
        yield mysql_engine
        return
    engine = sa.create_engine(mysql_engine.url.set(drivername=request.param), pool_pre_ping=True)

    @sa.event.listens_for(engine, "connect")
    def set_zone(dbapi_conn: Any, record: object) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("SET time_zone = '-08:00'")
        cursor.close()

    yield engine
    engine.dispose()


@pytest.fixture
def scheduler(
    scheduler_engine: sa.Engine, clock: FakeClock, registry: Registry
) -> Iterator[Scheduler]:
    """A scheduler on the emptied MariaDB test database, through a -08:00 session engine."""
    scheduler = Scheduler(scheduler_engine, clock=clock, registry=registry)
    yield scheduler
    scheduler.close()


def sql_store(scheduler: Scheduler) -> SqlStore:
    assert isinstance(scheduler.store, SqlStore)
    return scheduler.store


def raw(engine: sa.Engine, sql: str, **params: Any) -> list[sa.Row[Any]]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


# -- a pass beside other runners ------------------------------------------------------------------


def test_a_pass_whose_claim_skips_rows_another_runner_locks_goes_on_claiming(
    scheduler: Scheduler, mysql_engine: sa.Engine
) -> None:
    # Another runner's claim transaction holds the last six due rows locked: this pass's first
    # claim skips them (SKIP LOCKED) and comes back short. The other runner then lets go (its
    # claim rolled back). The pass must not take a short claim for the end of the due jobs
    # (with two runners, one of them would go home early and leave the other the rest).
    ran: list[str] = []
    other = mysql_engine.connect()
    other.begin()

    def handle(job: Job) -> None:
        ran.append(job.job_id)
        if other.in_transaction():
            other.rollback()

    scheduler.registry.register("h", handle)
    for i in range(12):
        scheduler.schedule_job(f"job-{i:02d}", timedelta(seconds=i - 12), "h")
    try:
        other.exec_driver_sql(
            "SELECT job_id FROM jobs ORDER BY start_time DESC, job_id DESC LIMIT 6 FOR UPDATE"
        ).all()
        report = scheduler.run_due_jobs()
    finally:
        other.close()
    assert report.succeeded == 12
    assert ran == [f"job-{i:02d}" for i in range(12)]


# -- the claim query ----------------------------------------------------------------------------


def captured_claim_selects(scheduler: Scheduler, **claim_args: Any) -> list[tuple[str, Any]]:
    """The SELECT statements (SQL text and parameters) SqlStore.claim sends, as sent."""
    store = sql_store(scheduler)
    seen: list[tuple[str, Any]] = []

    def capture(
        conn: sa.Connection, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FOR UPDATE" in statement:
            seen.append((statement, params))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        storeops.claim(
            store, scheduler.now(), runner="explain-test", lease=timedelta(minutes=5), **claim_args
        )
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)
    return seen


def explain(engine: sa.Engine, statement: str, params: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute("EXPLAIN " + statement, params)
            names = [d[0].lower() for d in cursor.description]
            plan = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            cursor.close()
        conn.rollback()
    return plan


@pytest.mark.parametrize("after", [False, True], ids=["first-batch", "next-batch"])
def test_the_claim_query_uses_the_start_time_index(
    scheduler: Scheduler, clock: FakeClock, mysql_engine: sa.Engine, after: bool
) -> None:
    # Every row due (a catch-up): without the index hint MariaDB plans a full scan plus sort here.
    now = clock.now()
    scheduler.schedule_jobs(
        {"job_id": f"job-{i:04}", "start": now - timedelta(seconds=i), "handler": "h"}
        for i in range(400)
    )
    cursor = (now - timedelta(seconds=350), "job-0350") if after else None
    [(statement, params)] = captured_claim_selects(scheduler, limit=50, after=cursor)
    assert "SKIP LOCKED" in statement.upper()
    plan = explain(mysql_engine, statement, params)
    [step] = [row for row in plan if row["table"] == "jobs"]
    assert step["key"] == "ix_jobs_start", plan
    assert "filesort" not in str(step.get("extra") or "").lower(), plan


# -- times --------------------------------------------------------------------------------------


def test_the_session_time_zone_is_not_utc(scheduler_engine: sa.Engine) -> None:
    [(zone,)] = raw(scheduler_engine, "SELECT @@session.time_zone")
    assert zone == "-08:00"


@pytest.mark.parametrize(
    "start",
    [
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 6, 30, 23, 59, 59, 500000, tzinfo=UTC),
        datetime(2026, 3, 1, 0, 0, 0, 1, tzinfo=UTC),
    ],
    ids=["last-microsecond-of-year", "half-second-before-midnight", "one-microsecond"],
)
def test_datetime6_round_trips_to_the_microsecond(
    scheduler: Scheduler, mysql_engine: sa.Engine, start: datetime
) -> None:
    scheduler.schedule_job("t", start, "h", None, expiry=start + timedelta(microseconds=1))
    job = scheduler.get_job("t")
    assert job is not None
    assert job.start == start
    assert job.start.tzinfo == UTC
    assert job.expiry == start + timedelta(microseconds=1)
    [(stored,)] = raw(mysql_engine, "SELECT CAST(start_time AS CHAR) FROM jobs")
    assert stored == start.strftime("%Y-%m-%d %H:%M:%S.%f")


def test_a_plus_0530_time_is_stored_as_utc_under_a_minus_0800_session(
    scheduler: Scheduler, mysql_engine: sa.Engine
) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    start = datetime(2026, 3, 2, 17, 30, 0, 123456, tzinfo=india)
    scheduler.schedule_job("ist", start, "h", None)
    job = scheduler.get_job("ist")
    assert job is not None
    assert job.start == start
    assert job.start.tzinfo == UTC
    assert job.start == datetime(2026, 3, 2, 12, 0, 0, 123456, tzinfo=UTC)
    [(stored,)] = raw(mysql_engine, "SELECT CAST(start_time AS CHAR) FROM jobs")
    assert stored == "2026-03-02 12:00:00.123456"


# -- ids and text -------------------------------------------------------------------------------


def test_ids_compare_exactly_under_the_servers_default_collation(
    scheduler: Scheduler, mysql_engine: sa.Engine
) -> None:
    # The server itself folds case and pads spaces, so the schema must not rely on it.
    [(folds_case, pads_space)] = raw(mysql_engine, "SELECT 'a' = 'A', 'a' = 'a '")
    assert (folds_case, pads_space) == (1, 1)
    for job_id in ("a", "A", "a ", "ä"):
        scheduler.schedule_job(job_id, timedelta(0), "h", {"id": job_id})
    assert scheduler.count_jobs() == 4
    for job_id in ("a", "A", "a ", "ä"):
        job = scheduler.get_job(job_id)
        assert job is not None
        assert job.job_id == job_id
        assert job.data == {"id": job_id}
    assert scheduler.remove_job("a") is True
    assert scheduler.get_job("a") is None
    assert scheduler.get_job("A") is not None
    assert scheduler.get_job("a ") is not None
    assert scheduler.get_job("á") is None


def test_an_emoji_payload_round_trips_on_a_utf8mb4_connection(
    scheduler: Scheduler, scheduler_engine: sa.Engine, registry: Registry
) -> None:
    [(charset,)] = raw(scheduler_engine, "SELECT @@character_set_connection")
    assert charset == "utf8mb4"
    data = {"text": "party 🎉, clef 𝄞, 漢字", "list": ["🚀" * 100]}
    scheduler.schedule_job("🎉-job", timedelta(0), "h🎉", data)
    job = scheduler.get_job("🎉-job")
    assert job is not None
    assert job.data == data
    assert job.handler == "h🎉"

    def fails(job: Any) -> None:
        raise RuntimeError("broken 💥 handler")

    registry.register("h🎉", fails)
    report = scheduler.run_due_jobs()
    assert report.retried == 1
    job = scheduler.get_job("🎉-job")
    assert job is not None
    assert job.last_error is not None
    assert "broken 💥 handler" in job.last_error


# -- server versions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("10.5.1-MariaDB", False),
        ("10.6.0-MariaDB", True),
        ("10.11.19-MariaDB-0+deb12u1", True),
        ("8.0.0", False),
        ("8.0.1", True),
        ("5.7.40", False),
    ],
)
def test_servers_without_skip_locked_are_recognised(version: str, supported: bool) -> None:
    assert supports_skip_locked(version) is supported


def test_the_test_server_supports_skip_locked(mysql_engine: sa.Engine) -> None:
    [(version,)] = raw(mysql_engine, "SELECT VERSION()")
    assert supports_skip_locked(str(version))


# -- racing schedules inside callers' transactions -------------------------------------------------

THREADS = 16


@pytest.fixture
def caller_engine(mysql_url: str) -> Iterator[sa.Engine]:
    """The web app's own engine: a connection per request thread."""
    engine = sa.create_engine(mysql_url, pool_size=THREADS, max_overflow=4, pool_pre_ping=True)
    yield engine
    engine.dispose()


def race_in_caller_transactions(scheduler: Scheduler, engine: sa.Engine, mode: Mode) -> list[str]:
    """Schedule one id from THREADS threads at once, each in its own REPEATABLE READ
    transaction that commits; returns the errors that reached the callers."""
    barrier = threading.Barrier(THREADS)
    errors: list[str] = []

    def request(n: int) -> None:
        try:
            with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
                conn.exec_driver_sql("SELECT 1")  # the request's own earlier work
                barrier.wait()
                scheduler.schedule_job(
                    "same-id", timedelta(minutes=10), "h", {"from": n}, mode=mode, conn=conn
                )
                time.sleep(0.01)  # the rest of the request, transaction still open
                conn.commit()
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=request, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return errors


@pytest.mark.parametrize("mode", [Mode.IGNORE_IF_EXISTS, Mode.RESCHEDULE])
@pytest.mark.parametrize("existing", [False, True], ids=["new-id", "existing-id"])
def test_racing_schedules_of_one_id_in_repeatable_read_transactions_never_deadlock(
    scheduler: Scheduler,
    caller_engine: sa.Engine,
    mysql_engine: sa.Engine,
    mode: Mode,
    existing: bool,
) -> None:
    [(isolation,)] = raw(caller_engine, "SELECT @@global.tx_isolation")
    assert isolation == "REPEATABLE-READ"
    scheduler.get_job("warm-up")  # checks the schema once, outside the race
    for _ in range(5):
        if existing:
            scheduler.schedule_job("same-id", timedelta(minutes=5), "h", {"from": "before"})
        errors = race_in_caller_transactions(scheduler, caller_engine, mode)
        assert errors == []
        [(rows,)] = raw(mysql_engine, "SELECT COUNT(*) FROM jobs")
        assert rows == 1
        job = scheduler.get_job("same-id")
        assert job is not None
        if mode is Mode.IGNORE_IF_EXISTS and existing:
            assert job.data == {"from": "before"}
        else:
            assert job.data != {"from": "before"}
        scheduler.remove_job("same-id")


def test_racing_new_schedules_of_one_id_create_one_job_and_refuse_the_rest(
    scheduler: Scheduler, caller_engine: sa.Engine, mysql_engine: sa.Engine
) -> None:
    scheduler.get_job("warm-up")
    for _ in range(3):
        errors = race_in_caller_transactions(scheduler, caller_engine, Mode.NEW)
        assert len(errors) == THREADS - 1
        assert all(error.startswith("JobExistsError") for error in errors), errors
        [(rows,)] = raw(mysql_engine, "SELECT COUNT(*) FROM jobs")
        assert rows == 1
        scheduler.remove_job("same-id")


@pytest.mark.parametrize("mode", [Mode.IGNORE_IF_EXISTS, Mode.RESCHEDULE])
def test_schedules_waiting_on_a_caller_that_rolls_back_never_deadlock(
    scheduler: Scheduler, caller_engine: sa.Engine, mysql_engine: sa.Engine, mode: Mode
) -> None:
    scheduler.get_job("warm-up")
    job_id = f"rolled-back-{secrets.token_hex(4)}"  # a key the index has never held
    waiters = THREADS - 1
    errors: list[str] = []
    inserted = threading.Event()

    def request(n: int) -> None:
        try:
            with engine_connection(caller_engine) as conn:
                if n > 0:
                    inserted.wait(30)
                scheduler.schedule_job(
                    job_id, timedelta(minutes=10), "h", {"from": n}, mode=mode, conn=conn
                )
                if n == 0:
                    inserted.set()
                    wait_for_lock_waits(mysql_engine, waiters)  # all queue on our new row
                    conn.rollback()  # the request failed after all: no job from it
                else:
                    conn.commit()
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=request, args=(n,)) for n in range(waiters + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    [(rows,)] = raw(mysql_engine, "SELECT COUNT(*) FROM jobs")
    assert rows == 1
    job = scheduler.get_job(job_id)
    assert job is not None
    assert job.data != {"from": 0}


def wait_for_lock_waits(engine: sa.Engine, count: int) -> None:
    """Wait until ``count`` sessions on this database are blocked scheduling: inside an INSERT
    into jobs (on a row lock) or waiting for jobsched's named lock on the id."""
    deadline = time.monotonic() + 30
    query = (
        "SELECT COUNT(*) FROM information_schema.processlist WHERE db = DATABASE() "
        "AND command = 'Query' "
        "AND (info LIKE 'INSERT INTO jobs%%' OR info LIKE 'DO GET_LOCK%%')"
    )
    while raw(engine, query)[0][0] < count:
        assert time.monotonic() < deadline, "the waiters never queued"
        time.sleep(0.01)
    time.sleep(0.2)


def engine_connection(engine: sa.Engine) -> sa.Connection:
    return engine.connect().execution_options(isolation_level="REPEATABLE READ")


# -- update_job inside a caller's transaction ------------------------------------------------------


def test_update_job_in_a_transaction_calls_fn_again_with_a_job_created_meanwhile(
    scheduler: Scheduler, caller_engine: sa.Engine
) -> None:
    seen: list[Job | None] = []

    def fn(job: Job | None) -> tuple[Job | None, str]:
        seen.append(job)
        if job is None:  # another request creates the job before our insert
            scheduler.schedule_job("a", timedelta(0), "h", {"n": 10})
            return Job("a", "h", {"n": 1}, datetime(2026, 1, 5, tzinfo=UTC)), "created"
        return dataclasses.replace(job, data={"n": job.data["n"] + 1}), "updated"

    with engine_connection(caller_engine) as conn:
        conn.exec_driver_sql("SELECT 1")  # the request's own earlier work: a snapshot
        assert scheduler.update_job("a", fn, conn=conn) == "updated"
        conn.commit()
    assert [None if job is None else job.data for job in seen] == [None, {"n": 10}]
    job = scheduler.get_job("a")
    assert job is not None and job.data == {"n": 11}


def test_update_job_of_a_missing_id_in_a_transaction_holds_up_no_other_insert(
    scheduler: Scheduler, caller_engine: sa.Engine
) -> None:
    # A locking read of a missing row would lock the gap under REPEATABLE READ: scheduling
    # "b" (next to "a" in the index) would then wait for this transaction to end.
    with engine_connection(caller_engine) as conn:
        conn.exec_driver_sql("SELECT 1")
        assert scheduler.update_job("a", lambda job: (None, "absent"), conn=conn) == "absent"
        done = threading.Thread(target=scheduler.schedule_job, args=("b", timedelta(0), "h"))
        done.start()
        done.join(5)
        assert not done.is_alive(), "scheduling another id waited for the caller's transaction"
        conn.commit()
    assert scheduler.job_exists("b")
