"""The benchmark's app module for jobsched: registers the no-op handler on jobsched's default
registry, as an app's module does (``jobsched --app bench.jobsched_app run-due`` imports it)."""

from __future__ import annotations

import jobsched
from bench import common


@jobsched.handler(common.HANDLER)
def bench_noop(job: jobsched.Job) -> None:
    common.noop(job.job_id, job.data)
