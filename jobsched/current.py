"""The process-wide current scheduler that the module-level functions act on."""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from jobsched.errors import RealDatabaseWarning

if TYPE_CHECKING:  # imported on first use: the scheduler pulls in SQLAlchemy
    from jobsched.scheduler import Scheduler

_current: Scheduler | None = None
_lock = threading.Lock()


def get_scheduler() -> Scheduler:
    """The current scheduler, created from the environment on first use.

    Under pytest, creating it on a real database warns (``RealDatabaseWarning``).
    """
    global _current
    scheduler = _current
    if scheduler is None:
        with _lock:
            if _current is None:
                from jobsched.scheduler import Scheduler

                made = Scheduler()
                try:
                    _warn_under_pytest(made)
                except BaseException:  # the warning is an error here (-W error): none is made
                    made.close()
                    raise
                _current = made
            scheduler = _current
    return scheduler


def _warn_under_pytest(scheduler: Scheduler) -> None:
    """Warn when a test is about to write real jobs through the default scheduler."""
    if "PYTEST_CURRENT_TEST" not in os.environ or not scheduler.run_jobs_remotely:
        return
    source = (
        "$JOBSCHED_DATABASE_URL"
        if os.environ.get("JOBSCHED_DATABASE_URL")
        else "the default, as $JOBSCHED_DATABASE_URL is not set"
    )
    warnings.warn(
        f"jobsched's default scheduler writes to the real database "
        f"{scheduler.describe()} ({source}) in this test: use the jobsched_sim fixture, "
        "or make a test scheduler current with jobsched.set_scheduler or use_scheduler",
        RealDatabaseWarning,
        stacklevel=_outside_jobsched(),
    )


def _outside_jobsched() -> int:
    """The ``stacklevel`` of the first caller outside the jobsched package (for warnings)."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame: FrameType | None = sys._getframe(2)  # the caller of the function that warns
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


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
