"""A handler that records each run as one line ``JOB_ID PID`` in ``$JOBSCHED_TEST_RUNS_FILE``.

Each line is one ``write`` on an ``O_APPEND`` descriptor, so lines from several processes never
mix. With ``$JOBSCHED_TEST_START_GATE`` set, importing this module announces the process
(``GATE.ready.PID``) and waits until the gate file exists, so that several ``run-due`` processes
begin their passes at the same moment. The handler does no other work but a 3 ms pause, so the
runners spend their time claiming and finishing, where they can collide. (Without the pause, on
SQLite, one runner can take the write lock back so fast after each commit that the other, whose
busy handler polls every few milliseconds, gets in only after the first one has done all the
work: correct, but then the passes did not overlap.)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import jobsched


def _wait_at_the_gate(gate: str, patience: float = 60.0) -> None:
    Path(f"{gate}.ready.{os.getpid()}").touch()
    deadline = time.monotonic() + patience
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise RuntimeError(f"start gate {gate} never opened")
        time.sleep(0.002)


if os.environ.get("JOBSCHED_TEST_START_GATE"):
    _wait_at_the_gate(os.environ["JOBSCHED_TEST_START_GATE"])


@jobsched.handler("record")
def record(job: jobsched.Job) -> None:
    time.sleep(0.003)
    line = f"{job.job_id} {os.getpid()}\n".encode()
    fd = os.open(os.environ["JOBSCHED_TEST_RUNS_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
