"""Handlers in child processes: each attempt of an isolated handler runs in a process of its own,
killed once it runs past its timeout, so that a handler that hangs, crashes or exits costs its
own attempt and never its runner."""

from __future__ import annotations

from collections.abc import Callable

from jobsched.handlers import Handler
from jobsched.model import Job, Progress


def run_isolated(
    handler: Handler,
    job: Job,
    *,
    on_progress: Callable[[Progress], None],
    api: object | None = None,
) -> object:
    """Run ``handler.fn(job)`` in a child process and return what it returned, or raise."""
    raise NotImplementedError
