"""Handlers for the CLI tests, imported with ``jobsched --app cli_app`` from this directory."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import jobsched


@jobsched.handler("ok")
def ok(job: jobsched.Job) -> None:
    """Succeeds."""


@jobsched.handler("boom")
def boom(job: jobsched.Job) -> None:
    """Fails every attempt."""
    raise RuntimeError(f"boom in {job.job_id}")


@jobsched.handler("chain")
def chain(job: jobsched.Job) -> None:
    """Schedules a follow-up job through the current scheduler (the one the CLI installed)."""
    jobsched.schedule_job(f"after-{job.job_id}", jobsched.now(), "ok", {"after": job.job_id})


@jobsched.handler("leave")
def leave(job: jobsched.Job) -> None:
    """Calls sys.exit(3), which fails its attempt; the pass goes on."""
    sys.exit(3)


@jobsched.handler("async_touch")
async def async_touch(job: jobsched.Job) -> None:
    """An async handler: creates the file named by the job's data after an await."""
    await asyncio.sleep(0.01)
    Path(job.data).touch()
