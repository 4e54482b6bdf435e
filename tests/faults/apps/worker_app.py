"""Handlers of the worker fault tests (imported with ``--app``): the recorder's (``fault.work``
and the others, see ``recorder``), and an isolated one whose attempts run in child processes.

``worker.isolated`` (``isolate=True``, a 1 s timeout) appends ``job_id attempt pid`` to
``data["file"]`` when it starts (a child process writes no database row), then, as ``data``
says:

- ``sleep``: seconds to sleep (past the timeout, the child is killed)
- ``segv``: the child kills itself with SIGSEGV
- ``exit``: an exit code; the child ends at once with ``os._exit``
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import jobsched
from faults.apps import recorder

__all__ = ["isolated", "recorder"]


@jobsched.handler("worker.isolated", timeout=1, isolate=True)
def isolated(job: jobsched.Job) -> None:
    data: dict[str, Any] = dict(job.data or {})
    if data.get("file"):
        with open(data["file"], "a", encoding="utf-8") as f:
            f.write(f"{job.job_id} {job.attempts} {os.getpid()}\n")
    if data.get("sleep"):
        time.sleep(float(data["sleep"]))
    if data.get("segv"):
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(10)  # (the signal is delivered at once; never reached)
    if data.get("exit") is not None:
        os._exit(int(data["exit"]))
