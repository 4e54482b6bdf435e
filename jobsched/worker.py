"""The long-running worker: one pass that keeps going until it is stopped.

A worker claims through the same path as ``run-due`` (the same batches, claims, heartbeat and
outbox: see ``runner``). When nothing is due it waits until the next job is due, but never longer
than ``poll`` seconds, so a job scheduled for now starts within about that long. A database that
goes away ends the pass it was running (its unstarted jobs' claims run out; jobs whose outcome
was not written run again, as ``docs/reliability.md`` says); the worker waits it out, backing off
from one second to thirty, and starts a fresh pass. Bookkeeping errors never count against jobs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from jobsched.errors import DatabaseError
from jobsched.model import Outcome, RunReport
from jobsched.runner import Pass
from jobsched.store.base import Op

log = logging.getLogger("jobsched")

#: The default ``--poll``: the longest a worker waits before looking for due jobs again.
DEFAULT_POLL = 0.5
#: The default ``--prefetch``: the most claimed jobs a worker holds unstarted.
DEFAULT_PREFETCH = 100
#: Waiting out a database that went away: the first pause, doubled up to the last.
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
#: A pass that ran this long before the database went away starts the backoff afresh.
BACKOFF_RESET_AFTER = 60.0
#: A worker's own bookkeeping between rounds (history pruning) runs at most this often.
CHORES_EVERY = 60.0


def run_worker(
    new_pass: Callable[[Callable[[], None]], Pass],
    *,
    stop: threading.Event,
    chores: Callable[[], None] | None = None,
    on_round: Callable[[], None] | None = None,
) -> RunReport:
    """Run passes made by ``new_pass(on_round)`` (each runs until stopped, or until the
    database fails it) until ``stop`` is set; returns what they did, added up. The outcomes a
    failed pass could not write are handed to the next one.
    ``on_round`` hears of each round (each look for due jobs); ``chores`` runs at most every
    ``CHORES_EVERY`` seconds between rounds."""
    total = RunReport(keep_results=False)
    backoff = BACKOFF_FIRST
    last_chores = time.monotonic()

    def each_round() -> None:
        nonlocal last_chores
        if on_round is not None:
            on_round()
        if chores is not None and time.monotonic() - last_chores >= CHORES_EVERY:
            last_chores = time.monotonic()
            chores()

    carried: list[Op] = []
    while not stop.is_set():
        began = time.monotonic()
        pass_ = new_pass(each_round)
        for op in carried:
            pass_.outbox.put(op)
        try:
            pass_.run()
        except DatabaseError as e:
            # The outcomes it could not write go with the next pass, before its first claim:
            # this runner does not take its own jobs over as if it had died.
            carried = pass_.outbox.leftover()
            _add(total, pass_.report)
            if time.monotonic() - began >= BACKOFF_RESET_AFTER:
                backoff = BACKOFF_FIRST
            log.warning("database unavailable (%s); retrying in %gs", _one_line(e), backoff)
            stop.wait(backoff)
            backoff = min(2 * backoff, BACKOFF_MAX)
            continue
        _add(total, pass_.report)
    return total


def _add(total: RunReport, report: RunReport) -> None:
    for outcome in Outcome:
        setattr(
            total, outcome.value, getattr(total, outcome.value) + getattr(report, outcome.value)
        )
    total.ran += report.ran
    total.duration += report.duration
    total.retries += report.retries


def _one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
