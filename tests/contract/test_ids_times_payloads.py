"""Exact ids, microsecond and time-zone round trips, and unicode (4-byte UTF-8) payloads."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from jobsched import FakeClock, Job, JobExistsError, Mode, Scheduler

IST = timezone(timedelta(hours=5, minutes=30))
PST = timezone(timedelta(hours=-8))
KIRITIMATI = timezone(timedelta(hours=14))


def test_ids_that_differ_in_case_or_trailing_space_are_three_jobs(scheduler: Scheduler) -> None:
    for job_id in ("a", "A", "a "):
        scheduler.schedule_job(job_id, timedelta(0), "h", {"id": job_id})
    for job_id in ("a", "A", "a "):
        job = scheduler.get_job(job_id)
        assert job is not None and job.job_id == job_id and job.data == {"id": job_id}


@pytest.mark.parametrize(
    "other",
    [
        "A",
        "a ",
        " a",
        "a  ",
        "a\u00a0",  # a no-break space
        "á",
        unicodedata.normalize("NFD", "á"),
        "ａ",  # noqa: RUF001 (fullwidth a: a different id on purpose)
    ],
)
def test_similar_ids_do_not_collide(scheduler: Scheduler, other: str) -> None:
    base = "á" if other == unicodedata.normalize("NFD", "á") else "a"
    scheduler.schedule_job(base, timedelta(0), "h", 1)
    scheduler.schedule_job(other, timedelta(0), "h", 2)
    assert [scheduler.get_job(i).data for i in (base, other)] == [1, 2]  # type: ignore[union-attr]


def test_lookups_compare_ids_exactly(scheduler: Scheduler) -> None:
    scheduler.schedule_job("a", timedelta(0), "h")
    assert scheduler.get_job("A") is None
    assert scheduler.get_job("a ") is None
    assert not scheduler.job_exists("A")
    assert scheduler.remove_job("a ") is False
    assert scheduler.job_exists("a")


def test_modes_compare_ids_exactly(scheduler: Scheduler) -> None:
    scheduler.schedule_job("a", timedelta(0), "h", "lower")
    created = scheduler.schedule_job("A", timedelta(0), "h", "upper", mode=Mode.IGNORE_IF_EXISTS)
    assert created.data == "upper"
    scheduler.schedule_job("a ", timedelta(0), "h", "space", mode=Mode.RESCHEDULE)
    with pytest.raises(JobExistsError):
        scheduler.schedule_job("A", timedelta(0), "h")
    assert [scheduler.get_job(i).data for i in ("a", "A", "a ")] == [  # type: ignore[union-attr]
        "lower",
        "upper",
        "space",
    ]


def test_handler_names_compare_exactly(scheduler: Scheduler) -> None:
    ran: list[str] = []
    scheduler.registry.register("h", lambda job: ran.append(job.job_id))
    scheduler.schedule_job("lower", timedelta(0), "h")
    scheduler.schedule_job("upper", timedelta(0), "H")
    report = scheduler.run_due_jobs()
    assert ran == ["lower"]
    assert report.deferred == 1


def test_microseconds_round_trip(scheduler: Scheduler, clock: FakeClock) -> None:
    clock.set(datetime(2026, 1, 5, 9, 0, 0, 654321, tzinfo=UTC))
    start = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)
    expiry = datetime(2026, 3, 1, 12, 30, 45, 123457, tzinfo=UTC)
    scheduler.schedule_job("a", start, "h", expiry=expiry)
    job = scheduler.get_job("a")
    assert job is not None
    assert (job.start, job.expiry, job.created_at) == (start, expiry, clock.now())
    assert job.start.microsecond == 123456
    assert job.created_at is not None and job.created_at.microsecond == 654321


def test_the_last_microsecond_of_a_day_stays_on_that_day(scheduler: Scheduler) -> None:
    start = datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    scheduler.schedule_job("a", start, "h")
    job = scheduler.get_job("a")
    assert job is not None and job.start == start and job.start.year == 2026


@pytest.mark.parametrize(
    "zone", [IST, PST, KIRITIMATI, UTC], ids=["+05:30", "-08:00", "+14:00", "Z"]
)
def test_times_in_any_zone_come_back_as_the_same_instant_in_utc(
    scheduler: Scheduler, zone: timezone
) -> None:
    start = datetime(2026, 3, 2, 17, 30, 0, 250, tzinfo=zone)
    expiry = datetime(2026, 3, 3, 1, 0, 0, 1, tzinfo=zone)
    returned = scheduler.schedule_job("a", start, "h", expiry=expiry)
    stored = scheduler.get_job("a")
    assert stored == returned
    for job in (returned, stored):
        assert job is not None and job.expiry is not None and job.created_at is not None
        assert job.start == start and job.expiry == expiry
        for value in (job.start, job.expiry, job.created_at):
            assert value.utcoffset() == timedelta(0)
        assert job.start.replace(tzinfo=None) == start.astimezone(UTC).replace(tzinfo=None)


def test_a_zoned_start_is_due_at_its_instant_in_utc(scheduler: Scheduler, clock: FakeClock) -> None:
    ran: list[str] = []
    scheduler.registry.register("h", lambda job: ran.append(job.job_id))
    start = (clock.now() + timedelta(microseconds=1)).astimezone(KIRITIMATI)
    scheduler.schedule_job("a", start, "h")
    assert scheduler.run_due_jobs().ran == 0
    clock.advance(timedelta(microseconds=1))
    assert scheduler.run_due_jobs().succeeded == 1
    assert ran == ["a"]


def test_a_zoned_expiry_holds_to_the_microsecond(scheduler: Scheduler, clock: FakeClock) -> None:
    scheduler.registry.register("h", lambda job: None)
    expiry = clock.now().astimezone(PST)
    scheduler.schedule_job("on-time", timedelta(0), "h", expiry=expiry)
    scheduler.schedule_job("late", timedelta(hours=-1), "h", expiry=expiry - timedelta(hours=1))
    late = scheduler.schedule_job(
        "late-by-1us", timedelta(-1), "h", expiry=expiry - timedelta(microseconds=1)
    )
    assert late.expiry is not None
    report = scheduler.run_due_jobs()
    outcomes = {r.job_id: r.outcome.value for r in report.results}
    assert outcomes == {"on-time": "succeeded", "late": "expired", "late-by-1us": "expired"}


PAYLOADS: list[Any] = [
    {"emoji": "😀🎉👍🏽", "music": "𝄞", "han": "漢字", "math": "∑∞"},
    "🚀" * 1000,
    ["𠜎", "𡃁", {"🔑": "🗝️"}],
    {"nested": {"list": [1, 2.5, -3, True, False, None, "", [], {}]}},
    12345678901234567890,
    0.1,
    -0.0,
    "",
    'quotes " and \\ backslashes \n newlines \u0000 nul',
    True,
    None,
    [],
]


@pytest.mark.parametrize("data", PAYLOADS, ids=range(len(PAYLOADS)))
def test_json_payloads_round_trip(scheduler: Scheduler, data: Any) -> None:
    returned = scheduler.schedule_job("a", timedelta(0), "h", data)
    stored = scheduler.get_job("a")
    assert stored is not None
    assert returned.data == data and stored.data == data
    assert type(stored.data) is type(data)


def test_tuples_come_back_as_lists_also_from_schedule_job(scheduler: Scheduler) -> None:
    returned = scheduler.schedule_job("a", timedelta(0), "h", {"t": (1, 2)})
    assert returned.data == {"t": [1, 2]}
    assert scheduler.get_job("a") == returned


def test_emoji_ids_and_handler_names_round_trip(scheduler: Scheduler) -> None:
    seen: list[Job] = []
    scheduler.registry.register("📧-send", seen.append)
    scheduler.schedule_job("user-🦄-𝄞", timedelta(0), "📧-send", {"to": "ü@例え.jp"})
    scheduler.schedule_job("user-🦄-𝄞 ", timedelta(0), "📧-send", 2)
    job = scheduler.get_job("user-🦄-𝄞")
    assert job is not None and job.handler == "📧-send" and job.data == {"to": "ü@例え.jp"}
    assert scheduler.run_due_jobs().succeeded == 2
    assert sorted(j.job_id for j in seen) == ["user-🦄-𝄞", "user-🦄-𝄞 "]


def test_emoji_error_text_is_kept_in_last_error(scheduler: Scheduler) -> None:
    def fail(job: Job) -> None:
        raise RuntimeError("💥 failed for 𝄞")

    scheduler.registry.register("h", fail)
    scheduler.schedule_job("a", timedelta(0), "h")
    scheduler.run_due_jobs()
    job = scheduler.get_job("a")
    assert job is not None and job.last_error == "RuntimeError: 💥 failed for 𝄞"
