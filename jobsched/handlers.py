"""The handler registry: job handler names mapped to the functions that run them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from jobsched.errors import InvalidJobError
from jobsched.model import Job

log = logging.getLogger("jobsched")

#: How long a handler may hold its job (its claim) unless ``timeout`` says otherwise.
DEFAULT_TIMEOUT = timedelta(minutes=5)

HandlerFn = Callable[[Job], bool | None]
F = TypeVar("F", bound=HandlerFn)


@dataclass(frozen=True, slots=True)
class Handler:
    name: str
    fn: HandlerFn
    timeout: timedelta


class Registry:
    """Handlers by name. Thread-safe; registering a name again replaces the earlier handler."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()

    def register(
        self, name: str, fn: HandlerFn, timeout: timedelta | float | None = None
    ) -> Handler:
        if not isinstance(name, str) or not name:
            raise InvalidJobError("handler", "a handler name must be a non-empty string")
        entry = Handler(name, fn, _as_timeout(timeout))
        with self._lock:
            old = self._handlers.get(name)
            self._handlers[name] = entry
        if old is not None and old.fn is not fn:
            log.warning(
                "handler %r registered again: %s replaces %s", name, _qual(fn), _qual(old.fn)
            )
        return entry

    def get(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def timeout_for(self, name: str) -> timedelta:
        entry = self._handlers.get(name)
        return DEFAULT_TIMEOUT if entry is None else entry.timeout

    def unregister(self, name: str) -> None:
        with self._lock:
            self._handlers.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._handlers)


def _as_timeout(value: timedelta | float | None) -> timedelta:
    if value is None:
        return DEFAULT_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, timedelta | int | float):
        raise InvalidJobError("timeout", f"expected a timedelta or seconds, got {value!r}")
    timeout = value if isinstance(value, timedelta) else timedelta(seconds=value)
    if timeout <= timedelta(0):
        raise InvalidJobError("timeout", f"must be positive, got {timeout}")
    return timeout


def _qual(fn: object) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


#: The process-wide registry that ``@jobsched.handler`` fills.
registry = Registry()


def handler(name: str, timeout: timedelta | float | None = None) -> Callable[[F], F]:
    """Register the decorated function as the handler for jobs named ``name``.

    ``fn(job)`` returns None or True when the job is done (it is removed), False to keep it
    (for instance after rescheduling itself), or raises to have it retried an hour later.
    ``timeout`` (default 5 minutes) is how long one attempt may hold its job.
    """

    def register(fn: F) -> F:
        registry.register(name, fn, timeout)
        return fn

    return register
