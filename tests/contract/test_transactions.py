"""conn=: jobs are written, read, removed and updated inside the caller's transaction (SQL)."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

import jobsched
from jobsched import Job, JobExistsError, JobSpec, Mode, Scheduler
from jobsched.store.sql import SqlStore

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def engine_of(scheduler: Scheduler) -> sa.Engine:
    assert isinstance(scheduler.store, SqlStore)
    return scheduler.store.engine


class Rollback(Exception):
    pass


def test_a_job_scheduled_in_a_transaction_that_commits_exists(sql_scheduler: Scheduler) -> None:
    with engine_of(sql_scheduler).begin() as conn:
        job = sql_scheduler.schedule_job("a", timedelta(0), "h", {"order": 1}, conn=conn)
    assert sql_scheduler.get_job("a") == job


def test_a_job_scheduled_in_a_transaction_that_rolls_back_does_not_exist(
    sql_scheduler: Scheduler,
) -> None:
    with engine_of(sql_scheduler).connect() as conn, conn.begin() as tx:
        sql_scheduler.schedule_job("a", timedelta(0), "h", conn=conn)
        tx.rollback()
    assert not sql_scheduler.job_exists("a")


def test_an_exception_in_the_caller_transaction_leaves_no_job(sql_scheduler: Scheduler) -> None:
    with pytest.raises(Rollback), engine_of(sql_scheduler).begin() as conn:
        sql_scheduler.schedule_job("a", timedelta(0), "h", conn=conn)
        raise Rollback
    assert not sql_scheduler.job_exists("a")


def test_the_job_is_invisible_to_others_until_the_commit(sql_scheduler: Scheduler) -> None:
    with engine_of(sql_scheduler).begin() as conn:
        sql_scheduler.schedule_job("a", timedelta(0), "h", conn=conn)
        seen_inside = conn.execute(sa.text("SELECT COUNT(*) FROM jobs")).scalar()
        assert seen_inside == 1
        assert not sql_scheduler.job_exists("a")
    assert sql_scheduler.job_exists("a")


@pytest.mark.parametrize("mode", list(Mode))
def test_every_mode_follows_the_caller_transaction(sql_scheduler: Scheduler, mode: Mode) -> None:
    sql_scheduler.schedule_job("a", timedelta(0), "h", "before")
    with engine_of(sql_scheduler).connect() as conn, conn.begin() as tx:
        sql_scheduler.schedule_job("b", timedelta(0), "h", "new", mode=mode, conn=conn)
        if mode is not Mode.NEW:
            sql_scheduler.schedule_job("a", timedelta(0), "h", "changed", mode=mode, conn=conn)
        tx.rollback()
    assert not sql_scheduler.job_exists("b")
    job = sql_scheduler.get_job("a")
    assert job is not None and job.data == "before"


def test_ignore_if_exists_in_a_transaction_returns_the_existing_job(
    sql_scheduler: Scheduler,
) -> None:
    existing = sql_scheduler.schedule_job("a", timedelta(hours=1), "h", "first")
    with engine_of(sql_scheduler).begin() as conn:
        got = sql_scheduler.schedule_job(
            "a", timedelta(0), "h", "second", mode=Mode.IGNORE_IF_EXISTS, conn=conn
        )
    assert got == existing
    assert sql_scheduler.get_job("a") == existing


def test_reschedule_in_a_transaction_that_commits_replaces_the_job(
    sql_scheduler: Scheduler,
) -> None:
    sql_scheduler.schedule_job("a", timedelta(hours=1), "h", "first")
    with engine_of(sql_scheduler).begin() as conn:
        new = sql_scheduler.schedule_job(
            "a", timedelta(hours=2), "h", "second", mode=Mode.RESCHEDULE, conn=conn
        )
    assert sql_scheduler.get_job("a") == new


def test_new_with_an_existing_id_in_a_transaction_raises(sql_scheduler: Scheduler) -> None:
    existing = sql_scheduler.schedule_job("a", timedelta(0), "h", "first")
    with pytest.raises(JobExistsError), engine_of(sql_scheduler).begin() as conn:
        sql_scheduler.schedule_job("a", timedelta(0), "h", "second", conn=conn)
    assert sql_scheduler.get_job("a") == existing


def test_schedule_jobs_follows_the_caller_transaction(sql_scheduler: Scheduler) -> None:
    specs = [JobSpec(f"j{i}", timedelta(0), "h") for i in range(5)]
    with engine_of(sql_scheduler).connect() as conn, conn.begin() as tx:
        assert sql_scheduler.schedule_jobs(specs, conn=conn) == 5
        tx.rollback()
    assert list(sql_scheduler.list_jobs()) == []
    with engine_of(sql_scheduler).begin() as conn:
        sql_scheduler.schedule_jobs(specs, conn=conn)
    assert len(list(sql_scheduler.list_jobs())) == 5


def test_add_job_follows_the_caller_transaction(sql_scheduler: Scheduler) -> None:
    job = sql_scheduler.schedule_job("a", timedelta(0), "h", "x")
    sql_scheduler.remove_job("a")
    with engine_of(sql_scheduler).connect() as conn, conn.begin() as tx:
        sql_scheduler.add_job(job, conn=conn)
        tx.rollback()
    assert not sql_scheduler.job_exists("a")
    with engine_of(sql_scheduler).begin() as conn:
        sql_scheduler.add_job(job, conn=conn)
    assert sql_scheduler.get_job("a") == job


def test_a_committed_job_runs(sql_scheduler: Scheduler) -> None:
    ran: list[str] = []
    sql_scheduler.registry.register("h", lambda job: ran.append(job.job_id))
    with engine_of(sql_scheduler).begin() as conn:
        sql_scheduler.schedule_job("a", timedelta(0), "h", conn=conn)
    assert sql_scheduler.run_due_jobs().succeeded == 1
    assert ran == ["a"]


# -- reading, removing and updating inside the caller's transaction -------------------------------


def caller_connection(scheduler: Scheduler) -> sa.Connection:
    """A connection as a web app opens one: REPEATABLE READ on MariaDB (the server's default;
    the scheduler's own engine reads committed)."""
    conn = engine_of(scheduler).connect()
    if conn.dialect.name == "mysql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def bump(job: Job | None) -> tuple[Job | None, int]:
    """update_job's fn: add one to the job's count (a missing job is created with count 1)."""
    if job is None:
        return Job("counter", "h", {"n": 1}, T0), 1
    n = job.data["n"] + 1
    return dataclasses.replace(job, data={"n": n}), n


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
def test_a_job_removed_in_a_transaction_is_gone_iff_it_commits(
    sql_scheduler: Scheduler, commit: bool
) -> None:
    job = sql_scheduler.schedule_job("reminder-7", timedelta(hours=1), "h")
    with caller_connection(sql_scheduler) as conn:
        assert sql_scheduler.remove_job("reminder-7", conn=conn) is True
        assert sql_scheduler.remove_job("reminder-7", conn=conn) is False
        conn.commit() if commit else conn.rollback()
    assert sql_scheduler.get_job("reminder-7") == (None if commit else job)


def test_get_job_and_job_exists_see_the_caller_transaction(sql_scheduler: Scheduler) -> None:
    with caller_connection(sql_scheduler) as conn:
        job = sql_scheduler.schedule_job("a", timedelta(0), "h", {"x": 1}, conn=conn)
        assert sql_scheduler.get_job("a", conn=conn) == job
        assert sql_scheduler.job_exists("a", conn=conn)
        assert sql_scheduler.remove_job("a", conn=conn)
        assert sql_scheduler.get_job("a", conn=conn) is None
        assert not sql_scheduler.job_exists("a", conn=conn)
        conn.rollback()


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
def test_an_update_in_a_transaction_exists_iff_it_commits(
    sql_scheduler: Scheduler, commit: bool
) -> None:
    before = sql_scheduler.schedule_job("counter", timedelta(hours=1), "h", {"n": 1})
    with caller_connection(sql_scheduler) as conn:
        assert sql_scheduler.update_job("counter", bump, conn=conn) == 2
        job = sql_scheduler.get_job("counter", conn=conn)
        assert job is not None and job.data == {"n": 2}
        assert sql_scheduler.get_job("counter") == before  # invisible to others until the commit
        conn.commit() if commit else conn.rollback()
    job = sql_scheduler.get_job("counter")
    assert job is not None and job.data == {"n": 2 if commit else 1}


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
def test_a_job_created_by_update_job_in_a_transaction_exists_iff_it_commits(
    sql_scheduler: Scheduler, commit: bool
) -> None:
    with caller_connection(sql_scheduler) as conn:
        assert sql_scheduler.update_job("counter", bump, conn=conn) == 1
        conn.commit() if commit else conn.rollback()
    assert sql_scheduler.job_exists("counter") is commit


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
def test_a_job_removed_by_update_job_in_a_transaction_is_gone_iff_it_commits(
    sql_scheduler: Scheduler, commit: bool
) -> None:
    sql_scheduler.schedule_job("a", timedelta(hours=1), "h")
    with caller_connection(sql_scheduler) as conn:
        assert sql_scheduler.update_job("a", lambda job: (None, "gone"), conn=conn) == "gone"
        conn.commit() if commit else conn.rollback()
    assert sql_scheduler.job_exists("a") is not commit


def test_update_job_in_a_transaction_that_finds_nothing_writes_nothing(
    sql_scheduler: Scheduler,
) -> None:
    with caller_connection(sql_scheduler) as conn:
        assert sql_scheduler.update_job("nope", lambda job: (job, job), conn=conn) is None
        conn.commit()
    assert list(sql_scheduler.list_jobs()) == []


def test_update_job_in_a_transaction_reads_the_newest_commit(sql_scheduler: Scheduler) -> None:
    sql_scheduler.schedule_job("counter", timedelta(hours=1), "h", {"n": 0})
    with caller_connection(sql_scheduler) as conn:
        # The caller's transaction has read already: on MariaDB its snapshot is taken.
        assert conn.execute(sa.text("SELECT COUNT(*) FROM jobs")).scalar() == 1
        assert sql_scheduler.update_job("counter", bump) == 1  # another writer commits
        assert sql_scheduler.update_job("counter", bump, conn=conn) == 2
        conn.commit()
    job = sql_scheduler.get_job("counter")
    assert job is not None and job.data == {"n": 2}


@pytest.mark.parametrize("existing", [True, False], ids=["existing", "created"])
def test_concurrent_updates_in_callers_transactions_lose_no_increment(
    sql_scheduler: Scheduler, existing: bool
) -> None:
    if existing:
        sql_scheduler.schedule_job("counter", timedelta(hours=1), "h", {"n": 0})
    threads, rounds = 4, 10
    errors: list[BaseException] = []
    calls: list[int] = []
    barrier = threading.Barrier(threads)

    def counted(job: Job | None) -> tuple[Job | None, int]:
        calls.append(1)
        return bump(job)

    def request() -> None:
        try:
            barrier.wait(10)
            for _ in range(rounds):
                with caller_connection(sql_scheduler) as conn:
                    conn.execute(sa.text("SELECT 1"))  # the request's own earlier work
                    sql_scheduler.update_job("counter", counted, conn=conn)
                    conn.commit()
        except BaseException as e:
            errors.append(e)

    workers = [threading.Thread(target=request) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert errors == []
    job = sql_scheduler.get_job("counter")
    assert job is not None and job.data == {"n": threads * rounds}
    if existing:  # read under a lock, fn runs once per update (a creation may race: twice)
        assert len(calls) == threads * rounds


def test_an_update_in_a_transaction_while_the_handler_runs_wins_over_its_finish(
    sql_scheduler: Scheduler,
) -> None:
    seen: list[object] = []

    def handler(job: Job) -> None:
        seen.append(job.data)
        with caller_connection(sql_scheduler) as conn:  # the web app changes the job meanwhile
            sql_scheduler.update_job("a", lambda j: (Job("a", "h", "changed", T0), None), conn=conn)
            conn.commit()

    sql_scheduler.registry.register("h", handler)
    sql_scheduler.schedule_job("a", timedelta(0), "h", "first")
    assert sql_scheduler.run_due_jobs().ran == 1
    job = sql_scheduler.get_job("a")
    assert seen == ["first"] and job is not None and job.data == "changed"


def test_the_module_functions_take_conn(sql_scheduler: Scheduler) -> None:
    with jobsched.use_scheduler(sql_scheduler), caller_connection(sql_scheduler) as conn:
        jobsched.schedule_job("counter", timedelta(0), "h", {"n": 1}, conn=conn)
        assert jobsched.update_job("counter", bump, conn=conn) == 2
        job = jobsched.get_job("counter", conn=conn)
        assert job is not None and job.data == {"n": 2}
        assert jobsched.job_exists("counter", conn=conn)
        assert jobsched.remove_job("counter", conn=conn)
        assert not jobsched.job_exists("counter", conn=conn)
        conn.commit()
    assert not sql_scheduler.job_exists("counter")
