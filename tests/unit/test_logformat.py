"""Log lines on stderr: the plain format, and ``--log-format json`` (one JSON object a line)."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from jobsched import Outcome
from jobsched.logformat import JsonFormatter, configure_logging

log = logging.getLogger("jobsched")


def record(
    msg: str = "job %r: %s",
    args: tuple[Any, ...] = ("j1", "succeeded"),
    level: int = logging.INFO,
    exc_info: Any = None,
    **extra: Any,
) -> logging.LogRecord:
    return log.makeRecord(log.name, level, __file__, 1, msg, args, exc_info, extra=extra)


def formatted(r: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(r)
    assert "\n" not in line
    entry = json.loads(line)
    assert isinstance(entry, dict)
    return entry


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Put the root logger back as it was (configure_logging replaces its handlers)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_job_event_becomes_one_json_line_with_its_fields() -> None:
    entry = formatted(
        record(
            job_id="reminder-42",
            handler="send_reminder",
            attempt=2,
            outcome=Outcome.RETRIED,
            duration=0.25,
            error="ValueError: no such user",
            level=logging.WARNING,
        )
    )

    assert entry == {
        "time": entry["time"],
        "level": "WARNING",
        "logger": "jobsched",
        "message": "job 'j1': succeeded",
        "job_id": "reminder-42",
        "handler": "send_reminder",
        "attempt": 2,
        "outcome": "retried",
        "duration": 0.25,
        "error": "ValueError: no such user",
    }


def test_job_fields_that_are_none_or_absent_are_left_out() -> None:
    entry = formatted(record(job_id="j1", handler="h", error=None, duration=None))

    assert set(entry) == {"time", "level", "logger", "message", "job_id", "handler"}


def test_a_line_without_job_fields_has_time_level_logger_and_message() -> None:
    entry = formatted(record("gave back %d claimed job(s)", (3,)))

    assert set(entry) == {"time", "level", "logger", "message"}
    assert entry["message"] == "gave back 3 claimed job(s)"


def test_time_is_utc_iso_8601_with_milliseconds() -> None:
    r = record()
    r.created = datetime(2026, 1, 5, 9, 0, 1, 234567, tzinfo=UTC).timestamp()

    assert formatted(r)["time"] == "2026-01-05T09:00:01.234Z"


def test_a_traceback_from_exc_info_goes_in_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        r = record("handler failed", (), level=logging.ERROR, exc_info=sys.exc_info())

    entry = formatted(r)

    assert entry["message"] == "handler failed"
    assert entry["traceback"].startswith("Traceback (most recent call last):\n")
    assert entry["traceback"].endswith("ValueError: boom")


def test_a_message_with_a_traceback_in_its_text_stays_one_line() -> None:
    # The runner puts a handler's traceback inside the message today.
    trace = '\nTraceback (most recent call last):\n  File "x.py", line 1\nValueError: boom'
    entry = formatted(record("job %r failed: %s%s", ("j1", "ValueError: boom", trace)))

    assert entry["message"] == "job 'j1' failed: ValueError: boom" + trace


def test_values_json_cannot_write_become_text() -> None:
    entry = formatted(record(job_id=object(), duration=float("nan"), attempt=b"1"))

    assert entry["job_id"].startswith("<object object at")
    assert entry["duration"] == "nan"
    assert entry["attempt"] == "b'1'"


def test_non_ascii_text_is_escaped_and_reads_back() -> None:
    line = JsonFormatter().format(record("job %r", ("café",), error="naïve"))

    assert line.isascii()
    assert json.loads(line)["error"] == "naïve"


@pytest.mark.usefixtures("root_logging")
def test_configure_logging_switches_between_plain_and_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(verbose=False, json_format=True)
    log.warning("first %s", "line", extra={"job_id": "j1"})
    configure_logging(verbose=False, json_format=False)
    log.warning("second line")

    first, second = capsys.readouterr().err.splitlines()
    assert json.loads(first)["message"] == "first line"
    assert json.loads(first)["job_id"] == "j1"
    assert second == "jobsched: WARNING: second line"


@pytest.mark.usefixtures("root_logging")
def test_configure_logging_replaces_the_handler_basic_config_installed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # What the cli group does before run-due knows its --log-format.
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="jobsched: %(levelname)s: %(message)s"
    )
    configure_logging(verbose=False, json_format=True)
    log.warning("once")

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["message"] == "once"


@pytest.mark.usefixtures("root_logging")
def test_configure_logging_logs_info_only_when_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(verbose=False, json_format=False)
    log.info("quiet")
    configure_logging(verbose=True, json_format=False)
    log.info("loud")

    assert capsys.readouterr().err == "jobsched: INFO: loud\n"


@pytest.mark.usefixtures("root_logging")
def test_json_lines_go_to_stderr_and_nothing_to_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(verbose=True, json_format=True)
    log.info("job %r (%s) attempt %d: %s", "j1", "h", 1, "succeeded")

    out, err = capsys.readouterr()
    assert out == ""
    assert re.fullmatch(r"\{.*\}\n", err)
