"""One measured run, in a fresh process: ``python -m bench.child '<spec as JSON>'``.

The parent has made the database or file and loaded the jobs. This process imports the
implementation and opens its first connection (untimed), times the workload with
``time.perf_counter`` and reads its peak RSS (reset just before the timed part), checks the
outcome (untimed), and prints one ``BENCH-RESULT <json>`` line. A W4 runner prints
``BENCH-READY`` once connected and waits for ``GO`` on stdin before it starts.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common

READY = "BENCH-READY"
GO = "GO"
RESULT = "BENCH-RESULT "


def measure(spec: dict[str, Any], work: Callable[[], Any]) -> tuple[float, int, Any]:
    """Run ``work`` timed; returns (seconds, peak RSS in KiB of this process during it, value)."""
    profiling = ThreadProfiles() if spec.get("profile") else None
    reset = common.reset_peak_rss()
    if profiling is not None:
        profiling.start()
    began = time.perf_counter()
    value = work()
    seconds = time.perf_counter() - began
    if profiling is not None:
        profiling.stop()
        profiling.save(Path(spec["profile"]))
    rss = common.peak_rss_kib() if reset else -1
    return seconds, rss, value


class ThreadProfiles:
    """pyinstrument on the calling thread and on every thread started while it runs (jobsched
    runs handlers in a thread pool, and a profile of the main thread alone shows only waiting),
    merged into one profile."""

    def __init__(self) -> None:
        from pyinstrument import Profiler

        self.profiler_class = Profiler
        self.main = Profiler(interval=0.001)
        self.sessions: list[Any] = []
        self.original_run = threading.Thread.run

    def start(self) -> None:
        profiles = self
        original_run = self.original_run

        def run(thread: threading.Thread) -> None:
            profiler = profiles.profiler_class(interval=0.001)
            profiler.start()
            try:
                original_run(thread)
            finally:
                profiler.stop()
                profiles.sessions.append(profiler.last_session)

        threading.Thread.run = run  # type: ignore[method-assign,assignment]
        self.main.start()

    def stop(self) -> None:
        self.main.stop()
        threading.Thread.run = self.original_run  # type: ignore[method-assign]

    def save(self, out: Path) -> None:
        from pyinstrument.renderers import ConsoleRenderer, HTMLRenderer
        from pyinstrument.session import Session

        session = self.main.last_session
        assert session is not None
        for other in self.sessions:
            if other is not None:
                session = Session.combine(session, other)
        out.parent.mkdir(parents=True, exist_ok=True)
        text = ConsoleRenderer(unicode=True, color=False, time="seconds").render(session)
        flat = ConsoleRenderer(unicode=True, color=False, flat=True, show_all=True).render(session)
        text += "\nThe functions that took most time themselves (all threads, libraries shown):\n"
        text += "\n".join(line for line in flat.splitlines()[5:45] if line.strip()) + "\n"
        threads = len(self.sessions)
        note = (
            f"(the main thread and {threads} thread(s) it started, merged: times add up across "
            "threads, so a thread's work and the main thread's wait for it both count)\n"
        )
        out.with_suffix(".txt").write_text(note + text)
        out.with_suffix(".html").write_text(HTMLRenderer().render(session))
        print(note + text, file=sys.stderr)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    workload = spec["workload"]
    if workload in ("W5", "W5b"):
        return simulate(spec)

    from bench.impls import implementation

    impl = implementation(spec["backend"], spec["impl"], spec["target"])
    impl.worker_args = tuple(spec.get("worker_args") or ())  # type: ignore[attr-defined]
    jobs = int(spec["jobs"])
    deadline_s = float(spec.get("deadline_s", 600))
    try:
        impl.open(workload)
        result: dict[str, Any] = {}
        if workload in ("W1", "W1b", "W6"):
            job_ids = common.ids(workload.lower(), jobs)
            now = common.utcnow()
            starts = [common.future_start(i, now) for i in range(jobs)]
            method = {
                "W1": impl.schedule_each,
                "W1b": impl.schedule_bulk,
                "W6": impl.schedule_in_transaction,
            }[workload]
            seconds, rss, _ = measure(spec, lambda: method(job_ids, starts))
            result["count"] = impl.count()
            result["missing"] = jobs - result["count"]
            if workload == "W6":
                result["app_rows"] = impl.app_rows_count()  # type: ignore[attr-defined]
                result["missing"] += jobs - result["app_rows"]
        elif workload in ("W2", "W3"):
            expected = common.ids("due", jobs)
            deadline = time.monotonic() + deadline_s
            seconds, rss, _ = measure(spec, lambda: impl.run_pass(jobs, deadline))
            if impl.finished_at is not None and impl.started_at is not None:
                # A worker: until the table was drained, not until it had stopped.
                seconds = min(seconds, impl.finished_at - impl.started_at)
            result.update(common.tally(common.RUNS, expected))
            result["due_left"] = impl.due_left()
            result["history_rows"] = impl.history_rows()
        elif workload == "W4":
            print(READY, flush=True)
            line = sys.stdin.readline().strip()
            if line != GO:
                raise RuntimeError(f"expected {GO!r} from the harness, got {line!r}")
            began = time.monotonic()
            seconds, rss, _ = measure(spec, lambda: impl.run_runner(time.monotonic() + deadline_s))
            ended = time.monotonic()
            if impl.finished_at is not None:
                ended = min(ended, impl.finished_at)
            result.update(began=began, ended=ended, runs=common.RUNS)
        else:
            raise ValueError(f"unknown workload {workload!r}")
        result.update(seconds=seconds, rss_kib=rss, notes=impl.notes)
        return result
    finally:
        impl.close()


def simulate(spec: dict[str, Any]) -> dict[str, Any]:
    from bench.simulate_year import simulate as simulate_year

    out: dict[str, Any] = {}

    def work() -> None:
        out.update(
            simulate_year(
                int(spec["jobs"]), int(spec.get("days", 365)), history=spec.get("history", True)
            )
        )

    _, rss, _ = measure(spec, work)
    outcomes = out["outcomes"]
    # Every job ends SUCCEEDED once (after a retry, or after rescheduling itself).
    out["missing"] = int(spec["jobs"]) - outcomes.get("succeeded", 0)
    out["rss_kib"] = rss
    return out


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    try:
        result = run(spec)
        code = 0
    except BaseException as e:
        result = {
            "error": f"{type(e).__name__}: {e}"[:2000],
            "traceback": traceback.format_exc()[-6000:],
        }
        code = 1
    sys.stdout.flush()
    print(RESULT + json.dumps(result), flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
