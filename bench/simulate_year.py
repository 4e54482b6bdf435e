"""Simulate a year of per-minute cron passes over 10,000 jobs spread across it.

    .venv/bin/python -m bench.simulate_year [--jobs 10000] [--days 365] [--seed 1] [--history off]

Workloads W5 and W5b of the benchmark (``python -m bench``) call ``simulate``.

Every tenth job fails its first attempt (retried an hour later) and every twentieth reschedules
itself once a week later, so the run has retries and jobs scheduled by handlers too. Prints the
wall time, the passes run (ticks at which something was due) and the outcomes. ``--history off``
runs the same year with jobsched's history of attempts turned off (``Scheduler(history=False)``).
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from jobsched import FakeClock, Job, JobSpec, Mode, Scheduler
from jobsched.handlers import Registry
from jobsched.testing import Simulator

START = datetime(2030, 1, 1, tzinfo=UTC)


def simulate(jobs: int, days: int = 365, seed: int = 1, *, history: bool = True) -> dict[str, Any]:
    """Schedule ``jobs`` jobs over ``days`` days and simulate per-minute passes until none is left
    (``history``: jobsched's history of attempts on or off).

    Returns the wall times of scheduling and of the simulation (``seconds``), and what it did.
    """
    logging.getLogger("jobsched").setLevel(logging.CRITICAL)  # retries log warnings

    registry = Registry()
    # Simulator.in_memory, with the history setting given.
    scheduler = Scheduler("memory://", clock=FakeClock(START), registry=registry, history=history)
    sim = Simulator(scheduler)

    def work(job: Job) -> bool | None:
        if job.data["fail_once"] and job.attempts == 1:
            raise ConnectionError("first attempt fails")
        if job.data["again"]:
            scheduler.schedule_job(
                job.job_id,
                timedelta(weeks=1),
                "work",
                {"fail_once": False, "again": False},
                mode=Mode.RESCHEDULE,
            )
            return False
        return None

    registry.register("work", work)
    rng = random.Random(seed)
    span = days * 86_400
    specs = [
        JobSpec(
            f"job-{i:05d}",
            START + timedelta(seconds=rng.uniform(0, span)),
            "work",
            {"fail_once": i % 10 == 0, "again": i % 20 == 1},
        )
        for i in range(jobs)
    ]
    began = time.perf_counter()
    scheduler.schedule_jobs(specs)
    scheduled = time.perf_counter() - began

    began = time.perf_counter()
    log = sim.run_until_idle(max_time=timedelta(days=days + 30))
    elapsed = time.perf_counter() - began

    outcomes = Counter(entry.outcome.value for entry in log)
    # What the history holds at the end (the retention prunes it as virtual time passes).
    history_rows = len(scheduler.history(limit=None))
    return {
        "seconds": elapsed,
        "schedule_seconds": scheduled,
        "ticks": int((sim.now() - START) / sim.tick),
        "passes": log.passes,
        "entries": len(log),
        "idle": log.idle,
        "ended": sim.now().isoformat(),
        "outcomes": dict(sorted(outcomes.items())),
        "history_rows": history_rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--history", choices=("on", "off"), default="on")
    args = parser.parse_args()
    result = simulate(args.jobs, args.days, args.seed, history=args.history == "on")
    print(f"scheduled {args.jobs} jobs over {args.days} days in {result['schedule_seconds']:.2f}s")
    print(
        f"simulated {result['ticks']} one-minute ticks in {result['seconds']:.2f}s of wall time: "
        f"{result['passes']} passes run, {result['entries']} log entries, "
        f"idle={result['idle']}, ended {result['ended']}"
    )
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in result["outcomes"].items()))
    print(f"history {args.history}: {result['history_rows']} row(s) at the end")


if __name__ == "__main__":
    main()
