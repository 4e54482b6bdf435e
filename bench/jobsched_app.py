"""The benchmark's app module for jobsched: registers the no-op handler on jobsched's default
registry, as an app's module does (``jobsched --app bench.jobsched_app run-due`` imports it).

W7's workers (``jobsched --app bench.jobsched_app worker``, each a process of its own) run
``bench_latency``: it appends the job's id, its scheduled start and the time the handler started
(Unix times) to a file of the process's own in the directory ``JOBSCHED_BENCH_LATENCY_DIR``
names, which the harness reads after the workers have stopped. Importing the module with that
variable set also leaves a ``ready-<pid>`` file there.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TextIO

import jobsched
from bench import common

#: The handler of W7's stream of jobs.
LATENCY_HANDLER = "bench_latency"
LATENCY_DIR = "JOBSCHED_BENCH_LATENCY_DIR"

_log_lock = threading.Lock()
_log: list[TextIO] = []


@jobsched.handler(common.HANDLER)
def bench_noop(job: jobsched.Job) -> None:
    common.noop(job.job_id, job.data)


@jobsched.handler(LATENCY_HANDLER)
def bench_latency(job: jobsched.Job) -> None:
    began = time.time()
    line = f"{job.job_id} {job.start.timestamp():.6f} {began:.6f}\n"
    with _log_lock:
        if not _log:
            path = os.path.join(os.environ[LATENCY_DIR], f"runs-{os.getpid()}.txt")
            _log.append(open(path, "a", encoding="utf-8"))  # noqa: SIM115 (open until exit)
        _log[0].write(line)
        _log[0].flush()


if os.environ.get(LATENCY_DIR):
    with open(os.path.join(os.environ[LATENCY_DIR], f"ready-{os.getpid()}"), "w") as _ready:
        _ready.write("ready\n")
