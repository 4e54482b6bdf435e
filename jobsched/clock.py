"""The one source of time. Every module asks the scheduler's clock; nothing calls datetime.now().

``FakeClock`` lets tests and the simulator move time by hand.
"""

from __future__ import annotations

import threading
import time as _time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """A source of aware UTC datetimes."""

    #: False for clocks that tests move by hand.
    is_real: bool

    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        ...


class RealClock:
    """The system's wall clock. Hosts that share a database must keep it in sync (NTP)."""

    is_real = True

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        #: A fixed offset added to the system time (for tests of clock skew between hosts).
        self.offset = offset

    def now(self) -> datetime:
        now = datetime.fromtimestamp(_time.time(), UTC)
        return now + self.offset if self.offset else now

    def __repr__(self) -> str:
        return f"RealClock(offset={self.offset!r})" if self.offset else "RealClock()"


class FakeClock:
    """A clock that stands still until moved with ``set`` or ``advance``. Thread-safe."""

    is_real = False

    def __init__(self, start: datetime) -> None:
        self._now = require_aware(start, "start")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        """Move the clock to ``when`` (an aware datetime; moving backwards is allowed)."""
        when = require_aware(when, "when")
        with self._lock:
            self._now = when

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock forward by ``delta`` (a timedelta or seconds); returns the new time."""
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        with self._lock:
            self._now += delta
            return self._now

    def __repr__(self) -> str:
        return f"FakeClock({self.now().isoformat()})"


def require_aware(value: datetime, name: str) -> datetime:
    """``value`` converted to UTC; a naive datetime is refused with a ValueError."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{name} must be timezone-aware (for example datetime(..., tzinfo=UTC))")
    return value.astimezone(UTC)
