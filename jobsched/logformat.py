"""How jobsched's log lines look on stderr: plain (the default) or one JSON object a line.

``--log-format json`` is for log shippers. Each line is an object with ``time`` (ISO 8601, UTC,
milliseconds: ``2026-01-05T09:00:00.123Z``), ``level`` (``INFO``, ``WARNING``, ``ERROR``...),
``logger``, ``message``, and for job events the fields the runner passes as ``extra`` that are
set: ``job_id``, ``handler``, ``attempt``, ``outcome`` (an ``Outcome`` value), ``duration``
(seconds the handler ran) and ``error``. A traceback logged with ``exc_info`` goes in
``traceback``. Newlines inside a value are escaped, so an entry is always one line; the output
is ASCII (other characters escaped as ``\\uXXXX``).
"""

from __future__ import annotations

import enum
import json
import logging
import math
import sys
from datetime import UTC, datetime
from typing import Any

#: The plain format (the default).
PLAIN_FORMAT = "jobsched: %(levelname)s: %(message)s"

#: The fields of a job event, in the order they are written, when a record has them.
JOB_FIELDS = ("job_id", "handler", "attempt", "outcome", "duration", "error", "cause", "pid")


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in JOB_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = _plain(value)
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["traceback"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def _utc_time(created: float) -> str:
    stamp = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return stamp.removesuffix("+00:00") + "Z"


def _plain(value: object) -> object:
    """``value`` as JSON should say it: an enum by its value, a datetime in ISO 8601, a number
    that JSON cannot say (nan, inf) as text; anything else as it is (``default=str`` then
    turns what json cannot write into text)."""
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def configure_logging(verbose: bool, json_format: bool) -> None:
    """Send log records to stderr, from INFO up if ``verbose`` else from WARNING up, in the
    plain format or as JSON lines; replaces the root logger's handlers (those an earlier
    ``logging.basicConfig`` installed too)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_format else logging.Formatter(PLAIN_FORMAT))
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, handlers=[handler], force=True
    )
