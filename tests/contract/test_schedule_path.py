"""Every way of writing a new job stores the same thing: one job alone, a batch in one statement
or in several, inside a caller's transaction, and through add_job and update_job. Text that looks
like SQL or like driver placeholders is stored exactly, and times agree to the microsecond."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from jobsched import FakeClock, Job, JobSpec, Mode, Scheduler, rules

#: Quotes, backslashes (also before a quote), SQL comment and terminator, driver placeholders.
AWKWARD = "it's 100% \\' done; -- %s %(x)s %% ? :n \"quoted\" \\\\ \\n 😀"

Write = Callable[[Scheduler, str, object], None]


def alone(scheduler: Scheduler, job_id: str, data: object) -> None:
    scheduler.schedule_job(job_id, timedelta(hours=1), "h", data)


def in_a_batch(scheduler: Scheduler, job_id: str, data: object) -> None:
    scheduler.schedule_jobs(
        [JobSpec(f"{job_id}-{i}", timedelta(hours=1), "h", data) for i in range(2)]
        + [JobSpec(job_id, timedelta(hours=1), "h", data)]
    )


def rescheduled(scheduler: Scheduler, job_id: str, data: object) -> None:
    scheduler.schedule_job(job_id, timedelta(hours=2), "h", "before")
    scheduler.schedule_job(job_id, timedelta(hours=1), "h", data, mode=Mode.RESCHEDULE)


def ignored_if_exists(scheduler: Scheduler, job_id: str, data: object) -> None:
    scheduler.schedule_job(job_id, timedelta(hours=1), "h", data, mode=Mode.IGNORE_IF_EXISTS)


def added(scheduler: Scheduler, job_id: str, data: object) -> None:
    start = scheduler.now() + timedelta(hours=1)
    scheduler.add_job(Job(job_id, "h", data, start, attempts=1, last_error=AWKWARD))


WRITES: dict[str, Write] = {
    "alone": alone,
    "in-a-batch": in_a_batch,
    "rescheduled": rescheduled,
    "ignored-if-exists": ignored_if_exists,
    "added": added,
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_text_that_looks_like_sql_or_placeholders_is_stored_exactly(
    scheduler: Scheduler, write: Write
) -> None:
    data = {"text": AWKWARD, AWKWARD: [AWKWARD]}
    write(scheduler, AWKWARD, data)
    job = scheduler.get_job(AWKWARD)
    assert job is not None
    assert job.job_id == AWKWARD
    assert job.data == data
    if write is added:
        assert job.last_error == AWKWARD


def test_a_handler_name_that_looks_like_sql_is_stored_exactly(scheduler: Scheduler) -> None:
    scheduler.schedule_job("a", timedelta(0), AWKWARD)
    scheduler.schedule_jobs([JobSpec("b", timedelta(0), AWKWARD)])
    assert {job.handler for job in scheduler.list_jobs(handler=AWKWARD)} == {AWKWARD}


def test_jobs_written_every_way_order_by_start_to_the_microsecond(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    base = datetime(2026, 1, 5, 8, 59, 59, 999990, tzinfo=UTC)
    at = [base + timedelta(microseconds=i) for i in range(6)]
    # Written out of order, each by another path.
    scheduler.schedule_jobs([JobSpec("t5", at[5], "h"), JobSpec("t1", at[1], "h")])
    scheduler.schedule_job("t3", at[3], "h")
    scheduler.add_job(Job("t0", "h", None, at[0]))
    scheduler.update_job("t4", lambda job: (Job("t4", "h", None, at[4]), None))
    scheduler.schedule_job("t2", at[2] + timedelta(hours=1), "h")
    scheduler.schedule_job("t2", at[2], "h", mode=Mode.RESCHEDULE)
    assert [job.job_id for job in scheduler.list_jobs()] == [f"t{i}" for i in range(6)]
    assert [job.start for job in scheduler.list_jobs()] == at
    clock.set(at[3])
    assert [job.job_id for job in scheduler.list_jobs(due=True)] == ["t0", "t1", "t2", "t3"]


def test_schedule_of_a_batch_in_ignore_if_exists_mode_returns_the_jobs_that_were_there(
    scheduler: Scheduler,
) -> None:
    kept = scheduler.schedule_job("old", timedelta(hours=1), "h", {"n": "old"})
    now = scheduler.now()
    news = [
        rules.new_job(job_id, timedelta(hours=2), "h", {"n": "new"}, now=now)
        for job_id in ("old", "fresh")
    ]
    results = scheduler.store.schedule(news, Mode.IGNORE_IF_EXISTS)
    assert results == [(kept, False), (news[1].job, True)]


def test_a_new_job_is_stored_exactly_as_schedule_job_returns_it(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    returned = scheduler.schedule_job(
        "a",
        timedelta(minutes=5),
        "h",
        {"n": (1, 2)},
        expiry=timedelta(minutes=10),
        max_attempts=7,
    )
    assert returned == Job(
        "a",
        "h",
        {"n": [1, 2]},
        clock.now() + timedelta(minutes=5),
        clock.now() + timedelta(minutes=15),
        0,
        7,
        clock.now(),
        None,
    )
    assert scheduler.get_job("a") == returned
    assert dataclasses.replace(returned) == scheduler.list_jobs().__next__()
