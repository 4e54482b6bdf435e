"""Event loops for ``async def`` handlers: one per thread that runs handlers, for one pass.

A handler may be a coroutine function, or return any awaitable: the pass awaits it to completion
in the event loop of the thread running the handler, so an async handler has the same outcomes
and timeout as a plain one, and an awaitable is never mistaken for a result.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import Awaitable
from typing import Any


class EventLoops:
    """A lazily made ``asyncio.Runner`` per thread; ``close`` ends them all. Thread-safe."""

    def __init__(self) -> None:
        self._local: threading.local | None = None
        self._runners: list[asyncio.Runner] = []
        self._lock = threading.Lock()

    def resolve(self, result: object) -> object:
        """``result`` itself, or what it gives when awaited if it is awaitable."""
        if result is None or result is True or result is False or not inspect.isawaitable(result):
            return result
        with self._lock:
            if self._local is None:
                self._local = threading.local()
        runner: asyncio.Runner | None = getattr(self._local, "runner", None)
        if runner is None:
            runner = asyncio.Runner()
            self._local.runner = runner
            with self._lock:
                self._runners.append(runner)
        # In the caller's context (a runner's default one is that of its first use).
        return runner.run(_awaited(result), context=contextvars.copy_context())

    def close(self) -> None:
        with self._lock:
            runners, self._runners = self._runners, []
        for runner in runners:
            runner.close()


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
