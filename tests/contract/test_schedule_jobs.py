"""schedule_jobs: many jobs at once, validated first, written in few round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobsched import (
    DEFAULT_MAX_ATTEMPTS,
    FakeClock,
    InvalidJobError,
    Job,
    JobExistsError,
    JobSpec,
    Mode,
    Scheduler,
)


def specs(n: int, prefix: str = "j", data: object = None) -> list[JobSpec]:
    return [JobSpec(f"{prefix}{i:05}", timedelta(minutes=i), "h", data) for i in range(n)]


def ids(scheduler: Scheduler) -> list[str]:
    return sorted(job.job_id for job in scheduler.list_jobs())


def test_schedule_jobs_creates_every_job_and_returns_the_count(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    assert scheduler.schedule_jobs(specs(3)) == 3
    job = scheduler.get_job("j00002")
    assert job == Job(
        "j00002",
        "h",
        None,
        clock.now() + timedelta(minutes=2),
        attempts=0,
        max_attempts=DEFAULT_MAX_ATTEMPTS,
        created_at=clock.now(),
    )
    assert ids(scheduler) == ["j00000", "j00001", "j00002"]


def test_dicts_and_job_specs_can_be_mixed(scheduler: Scheduler, clock: FakeClock) -> None:
    start = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
    count = scheduler.schedule_jobs(
        [
            {"job_id": "d", "start": start, "handler": "h", "data": {"k": "😀"}, "max_attempts": 5},
            JobSpec("s", timedelta(hours=1), "h", [1], expiry=timedelta(hours=2)),
            {"job_id": "minimal", "start": timedelta(0), "handler": "h"},
        ]
    )
    assert count == 3
    d, s, minimal = (scheduler.get_job(i) for i in ("d", "s", "minimal"))
    assert d is not None and (d.start, d.data, d.max_attempts) == (start, {"k": "😀"}, 5)
    assert s is not None and s.expiry == clock.now() + timedelta(hours=1 + 2)
    assert minimal is not None and minimal.data is None


def test_any_iterable_works_including_a_generator(scheduler: Scheduler) -> None:
    count = scheduler.schedule_jobs(JobSpec(f"g{i}", timedelta(0), "h") for i in range(4))
    assert count == 4


def test_an_empty_batch_writes_nothing(scheduler: Scheduler) -> None:
    assert scheduler.schedule_jobs([]) == 0
    assert ids(scheduler) == []


def test_new_with_an_existing_id_names_it_and_writes_nothing(scheduler: Scheduler) -> None:
    existing = scheduler.schedule_job("j00001", timedelta(0), "other", "keep")
    with pytest.raises(JobExistsError) as info:
        scheduler.schedule_jobs(specs(3))
    assert info.value.job_id == "j00001"
    assert "'j00001'" in str(info.value)
    assert ids(scheduler) == ["j00001"]
    assert scheduler.get_job("j00001") == existing


def test_new_with_an_id_repeated_in_the_batch_names_it_and_writes_nothing(
    scheduler: Scheduler,
) -> None:
    batch = [*specs(3), JobSpec("j00001", timedelta(0), "h")]
    with pytest.raises(JobExistsError) as info:
        scheduler.schedule_jobs(batch)
    assert info.value.job_id == "j00001"
    assert ids(scheduler) == []


@pytest.mark.parametrize("mode", [Mode.IGNORE_IF_EXISTS, Mode.RESCHEDULE])
def test_an_id_repeated_in_the_batch_is_refused_naming_both_items(
    scheduler: Scheduler, mode: Mode
) -> None:
    batch = [*specs(3), JobSpec("j00001", timedelta(0), "h")]
    with pytest.raises(InvalidJobError) as info:
        scheduler.schedule_jobs(batch, mode=mode)
    assert str(info.value) == (
        "item 3 (id 'j00001'): invalid job_id: appears more than once in the batch "
        "(first as item 1)"
    )
    assert ids(scheduler) == []


def test_ignore_if_exists_counts_created_jobs_only(scheduler: Scheduler) -> None:
    existing = scheduler.schedule_job("j00001", timedelta(days=9), "other", "keep")
    count = scheduler.schedule_jobs(specs(4, data="new"), mode=Mode.IGNORE_IF_EXISTS)
    assert count == 3
    assert scheduler.get_job("j00001") == existing
    job = scheduler.get_job("j00003")
    assert job is not None and job.data == "new"


def test_ignore_if_exists_of_existing_jobs_only_counts_zero(scheduler: Scheduler) -> None:
    scheduler.schedule_jobs(specs(3))
    assert scheduler.schedule_jobs(specs(3), mode=Mode.IGNORE_IF_EXISTS) == 0


def test_reschedule_counts_created_and_replaced_jobs(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.schedule_job("j00001", timedelta(days=9), "other", "old", max_attempts=8)
    count = scheduler.schedule_jobs(specs(3, data="new"), mode=Mode.RESCHEDULE)
    assert count == 3
    job = scheduler.get_job("j00001")
    assert job is not None
    assert (job.handler, job.data, job.start, job.max_attempts) == (
        "h",
        "new",
        clock.now() + timedelta(minutes=1),
        DEFAULT_MAX_ATTEMPTS,
    )


#: More jobs than one SQL statement takes on any backend (MySQL/MariaDB: 2,000 a statement).
MANY = 2500


def test_a_batch_larger_than_one_sql_batch_is_written_whole(scheduler: Scheduler) -> None:
    assert scheduler.schedule_jobs(specs(MANY, data={"i": "x" * 50})) == MANY
    assert len(ids(scheduler)) == MANY
    job = scheduler.get_job(f"j{MANY - 1:05}")
    assert job is not None and job.data == {"i": "x" * 50}


def test_a_large_batch_with_an_existing_id_near_its_end_writes_nothing(
    scheduler: Scheduler,
) -> None:
    scheduler.schedule_job(f"j{MANY - 50:05}", timedelta(0), "h")
    with pytest.raises(JobExistsError) as info:
        scheduler.schedule_jobs(specs(MANY))
    assert info.value.job_id == f"j{MANY - 50:05}"
    assert ids(scheduler) == [f"j{MANY - 50:05}"]


def test_a_batch_larger_than_one_packet_is_split_by_bytes(scheduler: Scheduler) -> None:
    big = "😀" * (200 * 1024)  # 800 KiB of UTF-8 each; 24 of them are over 16 MiB
    assert scheduler.schedule_jobs(specs(24, data=big)) == 24
    job = scheduler.get_job("j00023")
    assert job is not None and job.data == big


def test_a_batch_larger_than_one_sql_batch_can_be_rescheduled(scheduler: Scheduler) -> None:
    scheduler.schedule_jobs(specs(MANY // 2))
    assert scheduler.schedule_jobs(specs(MANY, data=2), mode=Mode.RESCHEDULE) == MANY
    assert scheduler.schedule_jobs(specs(MANY + 100), mode=Mode.IGNORE_IF_EXISTS) == 100
    job = scheduler.get_job("j00000")
    assert job is not None and job.data == 2
