"""The handler registry: job handler names mapped to the functions that run them."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from jobsched.errors import InvalidJobError
from jobsched.model import RETRY_DELAY, Job
from jobsched.rules import check_handler_name

log = logging.getLogger("jobsched")

#: How long a handler may hold its job (its claim) unless ``timeout`` says otherwise.
DEFAULT_TIMEOUT = timedelta(minutes=5)

#: A handler: a plain function, or an ``async def`` one (awaited to completion by the pass).
HandlerFn = Callable[[Job], bool | Awaitable[bool | None] | None]
F = TypeVar("F", bound=HandlerFn)


@dataclass(frozen=True, slots=True)
class Handler:
    name: str
    fn: HandlerFn
    #: How long one attempt may hold its job (the claim's length).
    timeout: timedelta
    #: How long after a failed attempt the job runs again.
    retry_delay: timedelta = RETRY_DELAY
    #: Run each attempt in a child process, killed once it runs past ``timeout``.
    isolate: bool = False
    #: At most this many attempts of this handler run at once, across every runner (None: any).
    max_running: int | None = None


class Registry:
    """Handlers by name. Thread-safe; registering a name again replaces the earlier handler."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()

    def register(
        self,
        name: str,
        fn: HandlerFn,
        timeout: timedelta | float | None = None,
        *,
        retry_delay: timedelta | float | None = None,
        isolate: bool = False,
        max_running: int | None = None,
    ) -> Handler:
        check_handler_name(name)
        if not callable(fn):
            raise InvalidJobError("handler", f"{name!r}: expected a function, got {fn!r}")
        if not isinstance(isolate, bool):
            raise InvalidJobError("isolate", f"expected True or False, got {isolate!r}")
        if max_running is not None and (
            isinstance(max_running, bool) or not isinstance(max_running, int) or max_running < 1
        ):
            raise InvalidJobError(
                "max_running", f"expected a positive integer or None, got {max_running!r}"
            )
        entry = Handler(
            name,
            fn,
            _as_duration(timeout, "timeout", DEFAULT_TIMEOUT, zero_ok=False),
            _as_duration(retry_delay, "retry_delay", RETRY_DELAY, zero_ok=True),
            isolate,
            max_running,
        )
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

    def limits(self) -> dict[str, int]:
        """``max_running`` of each handler that has one."""
        return {
            name: entry.max_running
            for name, entry in self._handlers.items()
            if entry.max_running is not None
        }

    def __len__(self) -> int:
        return len(self._handlers)

    def unregister(self, name: str) -> None:
        with self._lock:
            self._handlers.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._handlers)


def _as_duration(
    value: timedelta | float | None, field: str, default: timedelta, *, zero_ok: bool
) -> timedelta:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, timedelta | int | float):
        raise InvalidJobError(field, f"expected a timedelta or seconds, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidJobError(field, f"expected a finite number of seconds, got {value!r}")
    try:
        duration = value if isinstance(value, timedelta) else timedelta(seconds=value)
    except OverflowError:
        raise InvalidJobError(field, f"{value!r} seconds is out of range") from None
    if duration < timedelta(0) or (duration == timedelta(0) and not zero_ok):
        raise InvalidJobError(
            field, f"must be {'zero or more' if zero_ok else 'positive'}, got {duration}"
        )
    return duration


def _qual(fn: object) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


#: The process-wide registry that ``@jobsched.handler`` fills.
registry = Registry()


def handler(
    name: str,
    timeout: timedelta | float | None = None,
    *,
    retry_delay: timedelta | float | None = None,
    isolate: bool = False,
    max_running: int | None = None,
) -> Callable[[F], F]:
    """Register the decorated function as the handler for jobs named ``name``.

    ``fn(job)`` returns None or True when the job is done (it is removed), False to keep it
    (for instance after rescheduling itself), or raises to have it retried ``retry_delay``
    (default one hour) after it failed. ``fn`` may be an ``async def`` function: the pass awaits
    it to completion. ``timeout`` (default 5 minutes) is how long one attempt may hold its job.

    ``isolate=True`` runs each attempt in a child process, killed (SIGTERM, then SIGKILL) once
    it runs past ``timeout``; the attempt then fails as if the handler had raised. Without it a
    handler past its timeout cannot be stopped (a thread cannot be killed): it is logged, and it
    keeps its job until it returns. ``max_running=N``: at most N attempts of this handler run at
    once across every worker and pass sharing the database; the others wait, spending nothing.
    """

    def register(fn: F) -> F:
        registry.register(
            name, fn, timeout, retry_delay=retry_delay, isolate=isolate, max_running=max_running
        )
        return fn

    return register
