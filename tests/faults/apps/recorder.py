"""Handlers that record every run, for the fault suite (imported with ``--app``).

Each handler records the start and the end of each run (job id, attempt number, pid) in a
``runs`` table of the same database the runner uses, on the runner's own engine, so the test can
tell exactly which attempts ran, where, and whether they finished. A job's ``data`` says how the
run behaves; ``data["by_attempt"]["2"]`` overrides it for attempt 2:

- ``sleep``: seconds to sleep after recording the start
- ``wait_for``: a path; the handler waits (up to a minute) until the file exists
- ``exit``: an exit code; the process ends at once with ``os._exit`` (no end recorded)
- ``fail``: an exception message to raise (``"1MB-emoji"``: a megabyte of emoji)
- ``keep``: return False (the job is kept)
- ``file``: also append ``job_id attempt pid`` to this file (for when the database is down)
- ``no_record``: do not write to the database at all
- ``progress``: ``[done, total, note]`` reported with ``jobsched.progress`` after the start
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import jobsched

metadata = sa.MetaData()
runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(255), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("phase", sa.String(8), nullable=False),  # "start" or "end"
    sa.Column("at", sa.Double, nullable=False),  # time.time() when it was recorded
)

#: The message a ``"fail": "1MB-emoji"`` job raises: a megabyte (and more) of 4-byte characters.
MEGABYTE_OF_EMOJI = "\N{GRINNING FACE}" * 262_144 + " the end"


def record(job: jobsched.Job, phase: str) -> None:
    """Insert one row into ``runs`` through the current scheduler's engine."""
    engine: sa.Engine = jobsched.get_scheduler().store.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(
            runs.insert().values(
                job_id=job.job_id,
                attempt=job.attempts,
                pid=os.getpid(),
                phase=phase,
                at=time.time(),
            )
        )


def behave(job: jobsched.Job) -> bool | None:
    data: dict[str, Any] = dict(job.data or {})
    data.update((data.pop("by_attempt", None) or {}).get(str(job.attempts), {}))
    if data.get("file"):
        with open(data["file"], "a", encoding="utf-8") as f:
            f.write(f"{job.job_id} {job.attempts} {os.getpid()}\n")
    if not data.get("no_record"):
        record(job, "start")
    if data.get("progress"):
        jobsched.progress(*data["progress"])
    if data.get("sleep"):
        time.sleep(float(data["sleep"]))
    if data.get("wait_for"):
        deadline = time.monotonic() + 60
        while not Path(data["wait_for"]).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    if data.get("exit") is not None:
        os._exit(int(data["exit"]))
    if data.get("fail"):
        message = data["fail"]
        raise RuntimeError(MEGABYTE_OF_EMOJI if message == "1MB-emoji" else message)
    if not data.get("no_record"):
        record(job, "end")
    return False if data.get("keep") else None


@jobsched.handler("fault.work", timeout=2)
def work(job: jobsched.Job) -> bool | None:
    """The usual fault-suite handler: a claim of 2 s, so a dead runner's jobs return quickly."""
    return behave(job)


@jobsched.handler("fault.slow", timeout=1)
def slow(job: jobsched.Job) -> bool | None:
    """Like ``fault.work`` with a 1 s claim, for attempts that outlast their claim."""
    return behave(job)


@jobsched.handler("fault.patient")
def patient(job: jobsched.Job) -> bool | None:
    """Like ``fault.work`` with the default claim length (5 minutes)."""
    return behave(job)
