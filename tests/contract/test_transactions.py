"""schedule_job(conn=...): the job is written inside the caller's transaction (SQL backends)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from jobsched import JobExistsError, JobSpec, Mode, Scheduler
from jobsched.store.sql import SqlStore


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
