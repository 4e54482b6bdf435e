"""Every bad input to schedule_job raises InvalidJobError naming the field, and writes nothing."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from jobsched import InvalidJobError, JobschedError, JobSpec, Mode, Scheduler

NAIVE = datetime(2026, 1, 5, 9, 0)
AWARE = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MIB = 1024 * 1024


def refused(field: str, call: Callable[[], object]) -> InvalidJobError:
    with pytest.raises(InvalidJobError) as info:
        call()
    assert info.value.field == field
    assert field in str(info.value)
    return info.value


BAD_ARGUMENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "naive start": ("start", {"start": NAIVE}),
    "start as text": ("start", {"start": "2026-01-05T09:00:00Z"}),
    "start as a number": ("start", {"start": 1767603600}),
    "start delta past year 9999": ("start", {"start": timedelta(days=999_999_999)}),
    "start past year 9999 in UTC": (
        "start",
        {"start": datetime.max.replace(tzinfo=timezone(timedelta(hours=-8)))},
    ),
    "naive expiry": ("expiry", {"expiry": NAIVE}),
    "expiry delta past year 9999": ("expiry", {"expiry": timedelta(days=999_999_999)}),
    "expiry before start": (
        "expiry",
        {"start": AWARE, "expiry": AWARE - timedelta(microseconds=1)},
    ),
    "negative expiry delta (before the start)": (
        "expiry",
        {"start": timedelta(hours=2), "expiry": timedelta(microseconds=-1)},
    ),
    "object payload": ("data", {"data": object()}),
    "set payload": ("data", {"data": {1, 2}}),
    "bytes payload": ("data", {"data": b"bytes"}),
    "NaN payload": ("data", {"data": math.nan}),
    "Infinity payload": ("data", {"data": math.inf}),
    "-Infinity payload": ("data", {"data": -math.inf}),
    "nested NaN": ("data", {"data": {"a": [1, {"b": float("nan")}]}}),
    "lone surrogate in payload": ("data", {"data": "\ud800"}),
    "payload over the cap": ("data", {"data": "x" * MIB}),
    "payload over the cap in UTF-8 bytes": ("data", {"data": "é" * (MIB // 2)}),
    "empty id": ("job_id", {"job_id": ""}),
    "id too long": ("job_id", {"job_id": "x" * 256}),
    "id not a string": ("job_id", {"job_id": 5}),
    "id None": ("job_id", {"job_id": None}),
    "empty handler": ("handler", {"handler": ""}),
    "handler too long": ("handler", {"handler": "h" * 256}),
    "handler not a string": ("handler", {"handler": print}),
    "newline in id": ("job_id", {"job_id": "a\n"}),
    "tab in id": ("job_id", {"job_id": "a\tb"}),
    "carriage return in id": ("job_id", {"job_id": "a\r"}),
    "NUL in id": ("job_id", {"job_id": "a\x00b"}),
    "escape in id": ("job_id", {"job_id": "\x1b[31mred"}),
    "DEL in id": ("job_id", {"job_id": "a\x7f"}),
    "C1 next-line in id": ("job_id", {"job_id": "a\x85b"}),
    "newline in handler": ("handler", {"handler": "send\n"}),
    "tab in handler": ("handler", {"handler": "send\treminder"}),
    "whitespace-only handler": ("handler", {"handler": "   "}),
    "no-break-space-only handler": ("handler", {"handler": "\u00a0"}),
    "max_attempts 0": ("max_attempts", {"max_attempts": 0}),
    "max_attempts negative": ("max_attempts", {"max_attempts": -1}),
    "max_attempts True": ("max_attempts", {"max_attempts": True}),
    "max_attempts False": ("max_attempts", {"max_attempts": False}),
    "max_attempts float": ("max_attempts", {"max_attempts": 2.0}),
    "max_attempts text": ("max_attempts", {"max_attempts": "3"}),
}


def call_with(scheduler: Scheduler, mode: Mode, **overrides: Any) -> Callable[[], object]:
    args: dict[str, Any] = {"job_id": "a", "start": timedelta(0), "handler": "h", "data": None}
    args.update(overrides)
    job_id, start, handler, data = (args.pop(k) for k in ("job_id", "start", "handler", "data"))
    return lambda: scheduler.schedule_job(job_id, start, handler, data, mode=mode, **args)


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_schedule_job_refuses_bad_input_and_writes_nothing(scheduler: Scheduler, case: str) -> None:
    field, overrides = BAD_ARGUMENTS[case]
    refused(field, call_with(scheduler, Mode.NEW, **overrides))
    assert list(scheduler.list_jobs()) == []


@pytest.mark.parametrize("case", ["naive start", "NaN payload", "expiry before start"])
def test_a_refused_reschedule_leaves_the_existing_job_as_it_was(
    scheduler: Scheduler, case: str
) -> None:
    existing = scheduler.schedule_job("a", timedelta(hours=1), "h", {"keep": True})
    field, overrides = BAD_ARGUMENTS[case]
    refused(field, call_with(scheduler, Mode.RESCHEDULE, **overrides))
    assert scheduler.get_job("a") == existing


def test_invalid_job_error_is_a_jobsched_error_and_a_value_error() -> None:
    assert issubclass(InvalidJobError, JobschedError)
    assert issubclass(InvalidJobError, ValueError)


CONTROLS = [chr(code) for code in range(0x20)] + ["\x7f"]


@pytest.mark.parametrize("field", ["job_id", "handler"])
def test_every_c0_control_character_and_del_is_refused_in_ids_and_handler_names(
    scheduler: Scheduler, field: str
) -> None:
    for char in CONTROLS:
        error = refused(field, call_with(scheduler, Mode.NEW, **{field: f"ab{char}c"}))
        assert f"U+{ord(char):04X}" in str(error) and "index 2" in str(error)
    assert list(scheduler.list_jobs()) == []


def test_a_control_character_is_named_in_the_message(scheduler: Scheduler) -> None:
    error = refused("job_id", call_with(scheduler, Mode.NEW, job_id="reminder-42\n"))
    assert str(error) == (
        "invalid job_id: contains a newline ('\\n', U+000A) at index 11; "
        "ids and handler names must not contain control characters"
    )


@pytest.mark.parametrize("job_id", [" ", "a b", " a ", "\u00a0", "a\u2028b"])
def test_ids_with_spaces_or_other_non_control_characters_are_accepted(
    scheduler: Scheduler, job_id: str
) -> None:
    scheduler.schedule_job(job_id, timedelta(0), "send reminder")
    job = scheduler.get_job(job_id)
    assert job is not None and job.job_id == job_id and job.handler == "send reminder"


@pytest.mark.parametrize("lookup", ["get_job", "job_exists", "remove_job"])
def test_a_lookup_of_an_id_with_a_control_character_is_refused(
    scheduler: Scheduler, lookup: str
) -> None:
    refused("job_id", lambda: getattr(scheduler, lookup)("a\n"))


def test_update_job_refuses_an_id_with_a_control_character(scheduler: Scheduler) -> None:
    refused("job_id", lambda: scheduler.update_job("a\t", lambda job: (None, None)))


def test_an_id_of_255_characters_is_accepted(scheduler: Scheduler) -> None:
    for job_id in ("x" * 255, "😀" * 255):
        scheduler.schedule_job(job_id, timedelta(0), "h")
        assert scheduler.job_exists(job_id)


def test_a_payload_of_exactly_the_cap_is_accepted(scheduler: Scheduler) -> None:
    data = "x" * (MIB - 2)  # the two quotes make it exactly 1 MiB of JSON
    scheduler.schedule_job("a", timedelta(0), "h", data)
    job = scheduler.get_job("a")
    assert job is not None and job.data == data


def test_expiry_equal_to_start_is_accepted(scheduler: Scheduler) -> None:
    job = scheduler.schedule_job("a", AWARE, "h", expiry=AWARE)
    assert job.expiry == job.start


def test_max_attempts_out_of_range_names_both_bounds(scheduler: Scheduler) -> None:
    for value in (0, 2**31, 10**12):
        error = refused("max_attempts", call_with(scheduler, Mode.NEW, max_attempts=value))
        assert "from 1 to 2147483647" in str(error)
    assert not scheduler.job_exists("a")


def test_max_attempts_one_is_accepted(scheduler: Scheduler) -> None:
    assert scheduler.schedule_job("a", timedelta(0), "h", max_attempts=1).max_attempts == 1


def test_schedule_jobs_with_one_bad_job_writes_none(scheduler: Scheduler) -> None:
    specs = [
        JobSpec("good-1", timedelta(0), "h"),
        JobSpec("bad", timedelta(0), "h", data=math.nan),
        JobSpec("good-2", timedelta(0), "h"),
    ]
    refused("data", lambda: scheduler.schedule_jobs(specs))
    assert list(scheduler.list_jobs()) == []


def test_a_refused_batch_names_the_item_by_its_index_and_id(scheduler: Scheduler) -> None:
    specs: list[JobSpec | dict[str, Any]] = [
        JobSpec("a", timedelta(0), "h"),
        {"job_id": "b", "start": timedelta(0), "handler": "h"},
        JobSpec("c", timedelta(0), "h"),
        JobSpec("x", NAIVE, "h"),
    ]
    error = refused("start", lambda: scheduler.schedule_jobs(specs))
    assert str(error).startswith("item 3 (id 'x'): invalid start: 2026-01-05T09:00:00 has no time")
    assert (error.item, error.item_id) == (3, "x")
    assert list(scheduler.list_jobs()) == []


def test_a_refused_batch_item_with_a_bad_id_shows_it(scheduler: Scheduler) -> None:
    specs = [JobSpec("a", timedelta(0), "h"), JobSpec("b\n", timedelta(0), "h")]
    error = refused("job_id", lambda: scheduler.schedule_jobs(specs))
    assert str(error).startswith("item 1 (id 'b\\n'): invalid job_id: contains a newline")


def test_a_refused_batch_item_without_an_id_is_named_by_its_index(scheduler: Scheduler) -> None:
    specs: list[Any] = [JobSpec("a", timedelta(0), "h"), {"start": timedelta(0), "handler": "h"}]
    error = refused("job_id", lambda: scheduler.schedule_jobs(specs))
    assert str(error) == "item 1: invalid job_id: missing from the job spec"
    assert (error.item, error.item_id) == (1, None)
    error = refused("job spec", lambda: scheduler.schedule_jobs([*specs[:1], None]))
    assert str(error).startswith("item 1: invalid job spec: expected a JobSpec or a dict")


def test_schedule_jobs_refuses_unknown_dict_keys(scheduler: Scheduler) -> None:
    bad = {"job_id": "a", "start": timedelta(0), "handler": "h", "payload": 1}
    with pytest.raises(InvalidJobError):
        scheduler.schedule_jobs([bad])
    assert list(scheduler.list_jobs()) == []


@pytest.mark.parametrize("missing", ["job_id", "start", "handler"])
def test_schedule_jobs_refuses_a_dict_without_a_required_key(
    scheduler: Scheduler, missing: str
) -> None:
    spec: dict[str, Any] = {"job_id": "a", "start": timedelta(0), "handler": "h"}
    del spec[missing]
    ok = {"job_id": "b", "start": timedelta(0), "handler": "h"}
    refused(missing, lambda: scheduler.schedule_jobs([ok, spec]))
    assert list(scheduler.list_jobs()) == []


@pytest.mark.parametrize("item", [("a", timedelta(0), "h"), "a", None])
def test_schedule_jobs_refuses_what_is_neither_a_spec_nor_a_dict(
    scheduler: Scheduler, item: object
) -> None:
    with pytest.raises(InvalidJobError):
        scheduler.schedule_jobs([item])  # type: ignore[list-item]
    assert list(scheduler.list_jobs()) == []


def test_schedule_jobs_refuses_a_bad_mode(scheduler: Scheduler) -> None:
    refused("mode", lambda: scheduler.schedule_jobs([], mode="new"))  # type: ignore[arg-type]
