"""The interface every implementation of the benchmark offers.

The parent process calls the set-up side (``create``, ``load_due``, ``load_future``,
``remaining``), untimed, on a fresh database or file; a fresh child process calls ``open`` (imports
and the first connection, untimed) and then one timed operation, then the checks.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

#: Workloads whose timed part schedules jobs, runs a pass, or runs as one of two runners.
SCHEDULING = ("W1", "W1b", "W6")
PASSES = ("W2", "W3")
RUNNERS = ("W4",)


class Unsupported(Exception):
    """This implementation has no such workload."""


class Implementation:
    name: ClassVar[str]
    backend: ClassVar[str]
    workloads: ClassVar[frozenset[str]]
    #: Whose tables it makes and loads, if another implementation's (it shares that one's
    #: W3 template on SQLite); None: its own.
    tables: ClassVar[str | None] = None
    #: W4: when (``time.monotonic()``) the runner's work was done, if earlier than its return.
    #: W2/W3 through a worker: when the table was drained (timed from ``started_at``).
    finished_at: float | None = None
    #: W2/W3 through a worker: when (``time.monotonic()``) ``run_pass`` began.
    started_at: float | None = None

    def __init__(self, target: str) -> None:
        #: A ``mysql+pymysql://.../database`` URL, or the path of an SQLite file.
        self.target = target
        #: jobsched's ``load_due``: first run a pass over the table (no job due yet), untimed,
        #: as cron's previous pass would have, so the timed pass finds the database as passes
        #: leave it (the history pruned a moment ago). False: the timed pass is the first on its
        #: database. The others leave nothing behind a pass would find.
        self.prior_pass = True
        #: What the run should report besides its figures (e.g. a peer's thread that died).
        self.notes: list[str] = []

    # -- set-up, in the parent (untimed) --------------------------------------------------------

    def create(self, workload: str) -> None:
        """Create this implementation's tables in the fresh database or file."""
        raise NotImplementedError

    def load_due(self, job_ids: list[str]) -> None:
        """Add ``job_ids`` as jobs that are due now (start a second ago)."""
        raise NotImplementedError

    def load_future(self, seeds: int, factor: int) -> None:
        """Add ``seeds * factor`` jobs due over the next year (W3), fast."""
        raise NotImplementedError

    def remaining(self) -> int:
        """Jobs left in the table (any start time)."""
        raise NotImplementedError

    def history_rows(self) -> int | None:
        """Rows in its history of attempts (None: it keeps none). Untimed, after the run."""
        return None

    # -- in the child ---------------------------------------------------------------------------

    def open(self, workload: str) -> None:
        """Import what the timed part needs and make the first connection."""
        raise NotImplementedError

    def schedule_each(self, job_ids: list[str], starts: list[datetime]) -> None:
        """W1: one call, one commit per job."""
        raise Unsupported

    def schedule_bulk(self, job_ids: list[str], starts: list[datetime]) -> None:
        """W1b: all jobs through the bulk path."""
        raise Unsupported

    def schedule_in_transaction(self, job_ids: list[str], starts: list[datetime]) -> None:
        """W6: per job, one caller's transaction that inserts an app row and schedules the job."""
        raise Unsupported

    def run_pass(self, expected: int, deadline: float) -> None:
        """W2/W3: run every due job once; return when they all ran and left the table."""
        raise NotImplementedError

    def run_runner(self, deadline: float) -> None:
        """W4: one of two runner processes started together; return when the table is empty."""
        raise NotImplementedError

    def due_left(self) -> int:
        """Due jobs still in the table (after a pass: 0)."""
        raise NotImplementedError

    def count(self) -> int:
        """Jobs in the table, as seen from the child."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop threads and release connections (untimed)."""
