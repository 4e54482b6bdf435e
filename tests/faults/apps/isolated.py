"""Isolated handlers that end each in their own way, for the isolation tests (imported with
``--app faults.apps.isolated`` by the fault suite, and registered on a test's own registry by
the integration tests).

Each is registered here with ``isolate=True`` and a one-second timeout. A job's ``data`` may
hold ``file``: a path the handler appends ``<job id> <pid>`` to when it starts (so a test can
find the child's pid), and ``sleep``: seconds to sleep.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import Any

import jobsched

#: The timeout of every handler here, in seconds.
TIMEOUT = 1.0


def _started(job: jobsched.Job) -> dict[str, Any]:
    data: dict[str, Any] = job.data if isinstance(job.data, dict) else {}
    if "file" in data:
        with open(data["file"], "a") as f:
            f.write(f"{job.job_id} {os.getpid()}\n")
    return data


@jobsched.handler("iso_ok", TIMEOUT, isolate=True)
def ok(job: jobsched.Job) -> None:
    data = _started(job)
    time.sleep(data.get("sleep", 0))


@jobsched.handler("iso_keep", TIMEOUT, isolate=True)
def keep(job: jobsched.Job) -> bool:
    _started(job)
    return False


@jobsched.handler("iso_boom", TIMEOUT, isolate=True)
def boom(job: jobsched.Job) -> None:
    _started(job)
    raise ValueError("boom")


@jobsched.handler("iso_permanent", TIMEOUT, isolate=True)
def permanent(job: jobsched.Job) -> None:
    _started(job)
    raise jobsched.PermanentError("no such customer")


@jobsched.handler("iso_sys_exit", TIMEOUT, isolate=True)
def calls_sys_exit(job: jobsched.Job) -> None:
    _started(job)
    sys.exit(3)


@jobsched.handler("iso_hang", TIMEOUT, isolate=True)
def hang(job: jobsched.Job) -> None:
    data = _started(job)
    time.sleep(data.get("sleep", 60))


@jobsched.handler("iso_stubborn", TIMEOUT, isolate=True)
def stubborn(job: jobsched.Job) -> None:
    """Ignores SIGTERM: only SIGKILL ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    data = _started(job)
    time.sleep(data.get("sleep", 60))


@jobsched.handler("iso_segfault", TIMEOUT, isolate=True)
def segfault(job: jobsched.Job) -> None:
    _started(job)
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(5)


@jobsched.handler("iso_os_exit", TIMEOUT, isolate=True)
def os_exit(job: jobsched.Job) -> None:
    _started(job)
    os._exit(3)


@jobsched.handler("iso_schedules", TIMEOUT, isolate=True)
def schedules(job: jobsched.Job) -> None:
    """Schedules a follow-up job (its id: this job's id and ``-next``), reports progress."""
    _started(job)
    jobsched.progress(1, 2, "half way")
    jobsched.schedule_job(f"{job.job_id}-next", jobsched.now(), "iso_ok", {"from": job.job_id})


@jobsched.handler("iso_schedules_twice", TIMEOUT, isolate=True)
def schedules_twice(job: jobsched.Job) -> None:
    """Schedules the same id twice: the second raises ``JobExistsError`` in the child."""
    _started(job)
    jobsched.schedule_job(f"{job.job_id}-next", jobsched.now(), "iso_ok")
    try:
        jobsched.schedule_job(f"{job.job_id}-next", jobsched.now(), "iso_ok")
    except jobsched.JobExistsError as e:
        raise jobsched.PermanentError(f"as expected: {type(e).__name__} {e.job_id}") from e


@jobsched.handler("iso_async", TIMEOUT, isolate=True)
async def async_handler(job: jobsched.Job) -> bool:
    _started(job)
    await asyncio.sleep(0.01)
    jobsched.progress(3, note="async")
    return False


@jobsched.handler("iso_long", 60, isolate=True)
def long_running(job: jobsched.Job) -> None:
    """A minute's timeout: only its runner's death (or kill_children) ends it early."""
    data = _started(job)
    time.sleep(data.get("sleep", 60))


@jobsched.handler("iso_bad_call", TIMEOUT, isolate=True)
def bad_call(job: jobsched.Job) -> None:
    """Passes a function to the runner: it cannot cross the process boundary."""
    _started(job)
    jobsched.schedule_job("never", jobsched.now(), "iso_ok", lambda: None)


@jobsched.handler("plain_ok", TIMEOUT)
def plain_ok(job: jobsched.Job) -> None:
    """Not isolated by itself: ``--isolate`` runs it in a child too."""
    _started(job)
