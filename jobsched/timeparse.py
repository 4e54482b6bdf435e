"""Parsing times and durations typed by people: ISO 8601 with a zone, and ``90s``/``15m``/``2h``."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from dateutil.parser import isoparse

from jobsched.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``3d``, ``1w``, or several together (``1h30m``)."""
    compact = text.strip().lower().replace(" ", "")
    if not compact or _PART.sub("", compact):
        raise UsageError(
            f"{text!r} is not a duration; use a number and a unit: 90s, 15m, 2h, 3d, 1w (or 1h30m)"
        )
    seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(compact))
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise UsageError(
            f"{text!r} is too long a duration; the longest is {timedelta.max.days} days"
        ) from None


#: A date with no time of day, perhaps followed by a zone: ``2026-12-24``, ``2026-12-24+01:00``.
_DATE_ONLY = re.compile(r"(\d{4}-\d{2}-\d{2}|\d{8})(Z|[+-]\d{2}(?::?\d{2})?)?", re.IGNORECASE)
#: The example every message can fall back on (it parses: a test checks every suggestion).
EXAMPLE = "2026-11-23T09:00:00+01:00"


def parse_when(text: str) -> datetime:
    """An ISO 8601 time with a zone: ``2026-11-23T09:00:00+01:00`` or ``...Z``.

    Every example an error message suggests parses.
    """
    stripped = text.strip()
    date_only = _DATE_ONLY.fullmatch(stripped)
    if date_only:
        raise UsageError(_date_only_message(text, *date_only.groups()))
    try:
        when = isoparse(stripped)
    except (ValueError, OverflowError) as e:
        raise UsageError(f"{text!r} is not an ISO 8601 time (for example {EXAMPLE}): {e}") from None
    if when.tzinfo is None or when.utcoffset() is None:
        examples = _parsing(f"{when.isoformat()}Z", f"{when.isoformat()}+01:00")
        raise UsageError(f"{text!r} has no time zone; add one, as in {' or '.join(examples)}")
    return when


def _date_only_message(text: str, day: str, zone: str | None) -> str:
    try:
        date = isoparse(day).date().isoformat()
    except (ValueError, OverflowError):
        return f"{text!r} is not a valid date; give a time with a zone, for example {EXAMPLE}"
    if zone:
        examples = _parsing(f"{date}T00:00:00{_zone(zone)}")
        return (
            f"{text!r} is a date with a zone but no time of day; give the time too, as in "
            f"{' or '.join(examples)}"
        )
    examples = _parsing(f"{date}T00:00:00Z", f"{date}T09:00:00+01:00")
    return (
        f"{text!r} is a date without a time of day or a zone; give both, as in "
        f"{' or '.join(examples)}"
    )


def _zone(zone: str) -> str:
    """``Z``, ``+01``, ``+0100`` or ``+01:00`` written as ``Z`` or ``+01:00``."""
    if zone.upper() == "Z":
        return "Z"
    digits = zone[1:].replace(":", "")
    return f"{zone[0]}{digits[:2]}:{digits[2:] or '00'}"


def _parsing(*examples: str) -> list[str]:
    """The examples that parse as times with a zone (the general example if none does)."""
    good = []
    for example in examples:
        try:
            when = isoparse(example)
        except (ValueError, OverflowError):
            continue
        if when.tzinfo is not None and when.utcoffset() is not None:
            good.append(example)
    return good or [EXAMPLE]
