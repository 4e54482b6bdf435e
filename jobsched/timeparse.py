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


def parse_when(text: str) -> datetime:
    """An ISO 8601 time with a zone: ``2026-11-23T09:00:00+01:00`` or ``...Z``."""
    try:
        when = isoparse(text.strip())
    except (ValueError, OverflowError) as e:
        raise UsageError(
            f"{text!r} is not an ISO 8601 time (for example 2026-11-23T09:00:00+01:00): {e}"
        ) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise UsageError(f"{text!r} has no time zone; add one, as in {text}Z or {text}+01:00")
    return when
