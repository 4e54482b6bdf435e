"""Handlers of the ``max_running`` fault test (imported with ``--app``).

``limited.two`` may run at most two attempts at once across every runner (``max_running=2``);
``limited.free`` has no limit. Both behave as the recorder's handlers do (``recorder.behave``):
each records its start and its end in the ``runs`` table (job id, attempt, pid, ``time.time()``),
and sleeps ``data["sleep"]`` seconds in between.
"""

from __future__ import annotations

import jobsched
from faults.apps.recorder import behave


@jobsched.handler("limited.two", max_running=2)
def two(job: jobsched.Job) -> bool | None:
    return behave(job)


@jobsched.handler("limited.free")
def free(job: jobsched.Job) -> bool | None:
    return behave(job)
