"""Handlers for the history CLI tests, imported with ``jobsched --app history_app``."""

from __future__ import annotations

import time
from pathlib import Path

import jobsched


@jobsched.handler("ok")
def ok(job: jobsched.Job) -> None:
    """Succeeds."""


@jobsched.handler("boom")
def boom(job: jobsched.Job) -> None:
    """Fails every attempt."""
    raise RuntimeError(f"boom in {job.job_id}")


@jobsched.handler("other_boom")
def other_boom(job: jobsched.Job) -> None:
    """Fails every attempt too (another handler, for filters)."""
    raise RuntimeError(f"other boom in {job.job_id}")


@jobsched.handler("progress", timeout=600)
def progress(job: jobsched.Job) -> None:
    """Reports 3 of 10 done, creates ``data["started"]``, then waits (at most 60 s) until
    ``data["gate"]`` exists."""
    jobsched.progress(3, 10, "copying")
    Path(job.data["started"]).touch()
    deadline = time.monotonic() + 60
    while not Path(job.data["gate"]).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the gate never opened")
        time.sleep(0.01)
