"""The process-wide current scheduler that the module-level functions act on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported on first use: the scheduler pulls in SQLAlchemy
    from jobsched.scheduler import Scheduler

_current: Scheduler | None = None
_lock = threading.Lock()


def get_scheduler() -> Scheduler:
    """The current scheduler, created from the environment on first use."""
    global _current
    scheduler = _current
    if scheduler is None:
        with _lock:
            if _current is None:
                from jobsched.scheduler import Scheduler

                _current = Scheduler()
            scheduler = _current
    return scheduler


def set_scheduler(scheduler: Scheduler | None) -> Scheduler | None:
    """Make ``scheduler`` current for the whole process; returns the previous one."""
    global _current
    with _lock:
        previous, _current = _current, scheduler
    return previous


@contextmanager
def use_scheduler(scheduler: Scheduler) -> Iterator[Scheduler]:
    """Make ``scheduler`` current inside the block, and restore the previous one after."""
    previous = set_scheduler(scheduler)
    try:
        yield scheduler
    finally:
        set_scheduler(previous)
