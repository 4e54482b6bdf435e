"""A handler that runs until the test lets it end: ``{"started": PATH, "gate": PATH}``.

It creates ``started`` once it runs, then waits (at most 60 s) until ``gate`` exists.
"""

from __future__ import annotations

import time
from pathlib import Path

import jobsched


@jobsched.handler("gated", timeout=600)
def gated(job: jobsched.Job) -> None:
    Path(job.data["started"]).touch()
    deadline = time.monotonic() + 60
    while not Path(job.data["gate"]).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the gate never opened")
        time.sleep(0.01)
