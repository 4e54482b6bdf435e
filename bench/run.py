"""The benchmark harness: every workload, for each implementation, in one invocation.

    make bench                                   # = .venv/bin/python -m bench
    .venv/bin/python -m bench --only W2,W4 --backends sqlite --runs 3
    .venv/bin/python -m bench --tiny             # seconds: a smoke run at a tiny size
    .venv/bin/python -m bench --profile W2       # jobsched's W2 under pyinstrument

See bench/README.md for the workloads, the implementations and how long a full run takes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from bench import common
from bench.child import GO, READY, RESULT
from bench.impls import (
    BACKEND_LABELS,
    IMPLEMENTATIONS,
    LABELS,
    MEMORY,
    PEERS,
    implementation,
    tables_of,
    workloads_of,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
DEFAULT_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/jobsched_bench"

ALL_WORKLOADS = ["W1", "W1b", "W6", "W2", "W3", "W4", "W7", "W7b", "W5", "W5b"]
TITLES = {
    "W1": "{jobs} `schedule_job` calls, one commit each",
    "W1b": "{bulk} jobs through `schedule_jobs`",
    "W2": "one pass over {jobs} due no-op jobs",
    "W3": "one pass over {due} due jobs among {future} future ones",
    "W4": "two runner processes over {jobs} due jobs",
    "W7": "latency of a stream of {rate} jobs/s due now for {stream} s, 1 worker process",
    "W7b": "latency of a stream of {rate} jobs/s due now for {stream} s, 4 worker processes",
    "W5": "a simulated year of per-minute passes over {sim} jobs (memory)",
    "W5b": "a simulated year of per-minute passes over {sim_large} jobs (memory)",
    "W6": "{jobs} `schedule_job(conn=...)` in the caller's transaction with an app row",
}
#: Every implementation, in the harness's order; those a run without ``--impls`` measures.
ALL_IMPLS = [
    "floor",
    "apscheduler",
    "huey",
    "jobsched",
    "jobsched-nohistory",
    "jobsched-run-due",
    "jobsched-worker",
]
DEFAULT_IMPLS = ALL_IMPLS
#: jobsched with its history of attempts off (issue 13 compares it with jobsched's default).
NO_HISTORY = "jobsched-nohistory"
#: What each workload reports, and whether more is better.
UNITS = {"W3": "ms", "W5": "s", "W5b": "s", "W7": "ms", "W7b": "ms"}
#: Issue 14: W2 and W3 through ``jobsched worker`` against ``jobsched run-due``, and W7's latency.
RUN_DUE = "jobsched-run-due"
WORKER = "jobsched-worker"
#: W7's workers: worker processes, each with the command's defaults (``--poll 0.5``).
LATENCY_WORKERS = {"W7": 1, "W7b": 4}


def unit(workload: str) -> str:
    return UNITS.get(workload, "jobs/s")


def higher_is_better(workload: str) -> bool:
    return unit(workload) == "jobs/s"


@dataclass
class Sizes:
    jobs: int = 5000
    bulk: int = 100_000
    w3_due: int = 100
    w3_future: int = 1_000_000
    sim: int = 10_000
    sim_large: int = 100_000
    sim_days: int = 365
    latency_rate: float = 20.0
    latency_seconds: float = 20.0
    #: Before W7's measured stream, the same stream (not counted) while the workers connect.
    latency_warmup: float = 2.0

    def jobs_for(self, workload: str) -> int:
        return {
            "W1b": self.bulk,
            "W3": self.w3_due,
            "W5": self.sim,
            "W5b": self.sim_large,
            "W7": self.latency_jobs,
            "W7b": self.latency_jobs,
        }.get(workload, self.jobs)

    @property
    def latency_jobs(self) -> int:
        """How many jobs W7's measured stream schedules."""
        return max(2, round(self.latency_rate * self.latency_seconds))

    def title(self, workload: str) -> str:
        seeds, factor = common.split_future(self.w3_future)
        return TITLES[workload].format(
            jobs=f"{self.jobs:,}",
            bulk=f"{self.bulk:,}",
            due=f"{self.w3_due:,}",
            future=f"{seeds * factor:,}",
            sim=f"{self.sim:,}",
            sim_large=f"{self.sim_large:,}",
            rate=f"{self.latency_rate:g}",
            stream=f"{self.latency_seconds:g}",
        )


TINY = Sizes(
    jobs=30,
    bulk=300,
    w3_due=10,
    w3_future=3000,
    sim=200,
    sim_large=400,
    sim_days=30,
    latency_rate=10.0,
    latency_seconds=1.0,
    latency_warmup=0.5,
)


@dataclass
class Record:
    """One run of one implementation on one workload."""

    workload: str
    backend: str
    impl: str
    run: int
    jobs: int
    seconds: float | None = None
    value: float | None = None  # in unit(workload)
    rss_kib: int | None = None
    ran: int | None = None
    duplicates: int = 0
    extra_runs: int = 0
    missing: int = 0
    unexpected: int = 0
    left: int = 0  # due jobs (W2/W3) or jobs (W4) still in the table afterwards
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def exactly_once(self) -> bool:
        return not (self.duplicates or self.missing or self.unexpected or self.left)


class Harness:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes: Sizes = args.sizes
        self.records: list[Record] = []
        self.skipped: dict[str, str] = {}
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="jobsched-bench-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.templates: dict[tuple[str, str], Path] = {}
        self.mysql_url: str = args.mysql_url
        self.mysql_version: str | None = None
        self.lock_conn: Any = None
        self.log: TextIO = sys.stderr

    # -- the plan -------------------------------------------------------------------------------

    def backends(self) -> list[str]:
        chosen = [b for b in self.args.backends if b in ("mariadb", "sqlite")]
        if "mariadb" in chosen:
            reason = self.check_mariadb()
            if reason is not None:
                if self.args.require_mariadb:
                    raise SystemExit(f"bench: MariaDB is required but unreachable: {reason}")
                self.skipped["mariadb"] = reason
                self.say(f"MariaDB skipped: {reason}")
                chosen.remove("mariadb")
        return chosen

    def impls(self, workload: str, backend: str) -> list[str]:
        names = [
            name
            for (b, name) in IMPLEMENTATIONS
            if b == backend and name in self.args.impls and workload in workloads_of(b, name)
        ]
        return names

    def plan(self) -> list[tuple[str, str, list[str]]]:
        backends = self.backends()
        steps: list[tuple[str, str, list[str]]] = []
        for workload in self.args.only:
            if workload in ("W5", "W5b"):
                names = [name for name in MEMORY if name in self.args.impls]
                if names and "memory" in self.args.backends:
                    steps.append((workload, "memory", names))
                continue
            for backend in backends:
                names = self.impls(workload, backend)
                if names:
                    steps.append((workload, backend, names))
        return steps

    # -- running --------------------------------------------------------------------------------

    def run_all(self) -> None:
        steps = self.plan()
        total = sum(len(names) for _, _, names in steps) * self.args.runs
        done = 0
        for workload, backend, names in steps:
            for run in range(self.args.runs):
                # Interleaved run by run, starting with a different implementation each time.
                shift = run % len(names)
                for name in names[shift:] + names[:shift]:
                    done += 1
                    record = self.run_one(workload, backend, name, run)
                    self.records.append(record)
                    self.say(f"[{done}/{total}] {describe(record)}")

    def run_one(self, workload: str, backend: str, name: str, run: int) -> Record:
        jobs = self.sizes.jobs_for(workload)
        record = Record(workload, backend, name, run + 1, jobs)
        try:
            if backend == "memory":
                result = self.child(
                    {
                        "workload": workload,
                        "jobs": jobs,
                        "days": self.sizes.sim_days,
                        "history": MEMORY[name],
                    }
                )
            else:
                target = self.prepare(workload, backend, name, run)
                spec = {
                    "workload": workload,
                    "backend": backend,
                    "impl": name,
                    "target": target,
                    "jobs": jobs,
                    "deadline_s": self.args.timeout,
                    "worker_args": self.args.worker_args,
                }
                if workload in LATENCY_WORKERS:
                    result = self.latency(spec)
                elif workload == "W4":
                    result = self.two_runners(spec)
                    impl = implementation(backend, name, target)
                    result["left"] = impl.remaining()
                    result["history_rows"] = impl.history_rows()
                else:
                    result = self.child(spec)
                self.cleanup(backend, target)
            fill(record, result)
        except Exception as e:
            message = f"{type(e).__name__}: {e}".strip().splitlines()[0]
            record.error = message[:300] + ("..." if len(message) > 300 else "")
            if isinstance(e, ChildError) and self.args.verbose:
                self.say(e.details)
        return record

    def prepare(self, workload: str, backend: str, name: str, run: int) -> str:
        """A fresh database (MariaDB) or file (SQLite) with this implementation's tables and the
        workload's jobs in it (untimed)."""
        if backend == "mariadb":
            self.fresh_database()
            target = self.mysql_url
        else:
            path = self.workdir / f"{name}-{workload}-{run + 1}.db"
            remove_sqlite(path)
            target = str(path)
        impl = implementation(backend, name, target)
        impl.prior_pass = not self.args.first_pass
        if workload == "W3":
            seeds, factor = common.split_future(self.sizes.w3_future)
            if backend == "sqlite":
                shutil.copyfile(self.template(tables_of(backend, name), seeds, factor), target)
            else:
                impl.create(workload)
                impl.load_future(seeds, factor)
        else:
            impl.create(workload)
        if workload in ("W2", "W3", "W4"):
            impl.load_due(common.ids("due", self.sizes.jobs_for(workload)))
        return target

    def template(self, name: str, seeds: int, factor: int) -> Path:
        """W3's future rows for an SQLite implementation, loaded once and copied for each run."""
        key = ("sqlite", name)
        if key not in self.templates:
            path = self.workdir / f"template-{name}-W3.db"
            remove_sqlite(path)
            self.say(f"loading {seeds * factor:,} future jobs for {name} on SQLite (once)")
            impl = implementation("sqlite", name, str(path))
            impl.create("W3")
            impl.load_future(seeds, factor)
            for suffix in ("-wal", "-shm"):
                if Path(f"{path}{suffix}").exists():
                    raise RuntimeError(f"{path}{suffix} left open after loading the template")
            self.templates[key] = path
        return self.templates[key]

    def cleanup(self, backend: str, target: str) -> None:
        if backend == "sqlite":
            remove_sqlite(Path(target))

    def child(self, spec: dict[str, Any]) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.child", json.dumps(spec)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=self.args.timeout + 120,
            env=child_env(),
        )
        if proc.stderr.strip() and (self.args.verbose or spec.get("profile")):
            self.say(proc.stderr.rstrip())
        return parse_result(proc.stdout, proc.stderr, proc.returncode)

    def two_runners(self, spec: dict[str, Any]) -> dict[str, Any]:
        """W4: start two runner processes; once both are connected, tell both to go; the time is
        from the go to the end of the later one."""
        procs: list[subprocess.Popen[str]] = []
        lines: list[queue.Queue[str | None]] = []
        errs: list[Any] = []
        with contextlib.ExitStack() as stack:
            stack.callback(stop_all, procs)
            for role in range(2):
                child_spec = dict(spec, role=role)
                if role and child_spec.get("profile"):
                    child_spec.pop("profile")
                err = stack.enter_context(tempfile.TemporaryFile("w+"))
                proc = subprocess.Popen(
                    [sys.executable, "-m", "bench.child", json.dumps(child_spec)],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                    env=child_env(),
                )
                out: queue.Queue[str | None] = queue.Queue()
                threading.Thread(target=pump, args=(proc.stdout, out), daemon=True).start()
                procs.append(proc)
                lines.append(out)
                errs.append(err)
            stdout = [wait_for(out, READY, timeout=120) for out in lines]
            go = time.monotonic()
            for proc in procs:
                assert proc.stdin is not None
                with contextlib.suppress(BrokenPipeError):  # it failed: its result says why
                    proc.stdin.write(GO + "\n")
                    proc.stdin.flush()
            results = []
            for role, proc in enumerate(procs):
                proc.wait(timeout=self.args.timeout + 120)
                stdout[role] += drain(lines[role])
                errs[role].seek(0)
                stderr = errs[role].read()
                if stderr.strip() and (self.args.verbose or spec.get("profile")):
                    self.say(stderr.rstrip())
                results.append(parse_result(stdout[role], stderr, proc.returncode))
        runs = [job for result in results for job in result["runs"]]
        tallied = common.tally(runs, common.ids("due", spec["jobs"]))
        return {
            **tallied,
            "seconds": max(r["ended"] for r in results) - go,
            "rss_kib": max(r["rss_kib"] for r in results),
            "per_runner": [len(r["runs"]) for r in results],
            "notes": sorted({note for r in results for note in r.get("notes", [])}),
        }

    def latency(self, spec: dict[str, Any]) -> dict[str, Any]:
        """W7: start ``jobsched worker`` processes (1 or 4, default options); once each has
        imported the app, schedule a stream of jobs due now at a steady rate (a warm-up stream
        first, not counted), wait until every job ran and none is left, stop the workers with
        SIGTERM (each must exit 0). Each handler run logs the job's start and when the handler
        began (``bench.jobsched_app``); the latency is the one minus the other."""
        from bench.jobsched_app import LATENCY_DIR, LATENCY_HANDLER
        from bench.with_jobsched import CLI_APP
        from jobsched import Scheduler

        workers = LATENCY_WORKERS[spec["workload"]]
        url = implementation(spec["backend"], spec["impl"], spec["target"]).url  # type: ignore[attr-defined]
        count, rate = int(spec["jobs"]), self.sizes.latency_rate
        logs = Path(tempfile.mkdtemp(prefix="w7-", dir=self.workdir))
        env = dict(child_env(), **{LATENCY_DIR: str(logs)})
        expected = common.ids("lat", count)
        procs: list[subprocess.Popen[str]] = []
        outputs: list[Any] = []
        scheduler = Scheduler(url)
        with contextlib.ExitStack() as stack:
            stack.callback(shutil.rmtree, logs, True)
            stack.callback(scheduler.close)
            stack.callback(stop_all, procs)
            for _ in range(workers):
                out = stack.enter_context(tempfile.TemporaryFile("w+"))
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "jobsched", "--database-url", url,
                         "--app", CLI_APP, "worker", *self.args.worker_args],
                        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                        stderr=subprocess.STDOUT, text=True,
                    )
                )  # fmt: skip
                outputs.append(out)

            def exited() -> None:
                for proc, out in zip(procs, outputs, strict=True):
                    if proc.poll() is not None:
                        out.seek(0)
                        raise ChildError(
                            f"a worker exited {proc.returncode} before it was stopped",
                            out.read()[-3000:],
                        )

            deadline = time.monotonic() + 120
            while len(list(logs.glob("ready-*"))) < workers:
                exited()
                if time.monotonic() > deadline:
                    raise RuntimeError("the workers did not import the app within 120 s")
                time.sleep(0.02)
            warm = max(1, round(rate * self.sizes.latency_warmup))
            stream(scheduler, "warm", warm, rate, LATENCY_HANDLER)
            began = time.monotonic()
            stream(scheduler, "lat", count, rate, LATENCY_HANDLER)
            streamed = time.monotonic() - began
            deadline = time.monotonic() + 60
            while latency_runs(logs, "lat-") < count or due_any(scheduler):
                exited()
                if time.monotonic() > deadline:
                    break  # the tally says which never ran
                time.sleep(0.02)
            exited()
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            codes = [proc.wait(timeout=self.args.timeout) for proc in procs]
            texts = []
            for out in outputs:
                out.seek(0)
                texts.append(out.read())
            if any(codes):
                raise ChildError(f"workers exited {codes} after SIGTERM (expected 0)", texts[0])
            runs = read_latency_runs(logs)
            left = scheduler.count_jobs()
        measured = [(job, lag) for job, lag, _ in runs if job.startswith("lat-")]
        tallied = common.tally([job for job, _ in measured], expected)
        first: dict[str, float] = {}
        for job, lag in measured:
            first.setdefault(job, lag)
        lags = sorted(first.values())
        per_runner: dict[str, int] = {}
        for job, _, pid in runs:
            if job.startswith("lat-"):
                per_runner[pid] = per_runner.get(pid, 0) + 1
        return {
            **tallied,
            "seconds": streamed,
            "rss_kib": -1,
            "left": left,
            "latency": percentiles(lags),
            "per_runner": sorted(per_runner.values(), reverse=True),
        }

    # -- MariaDB --------------------------------------------------------------------------------

    def mysql(self, *, database: bool = False) -> Any:
        import pymysql

        params = common.mysql_params(self.mysql_url)
        if not database:
            params.pop("database", None)
        return pymysql.connect(**params, autocommit=True, connect_timeout=5)

    def check_mariadb(self) -> str | None:
        name = common.mysql_database(self.mysql_url)
        if not name or "bench" not in name:
            raise SystemExit(
                f"bench: --mysql-url must name a database of the benchmark's own (its name "
                f"containing 'bench'; it is dropped and made again for every run), got {name!r}"
            )
        try:
            conn = self.mysql()
        except Exception as e:
            return f"{type(e).__name__}: {e}"
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            self.mysql_version = str(cur.fetchone()[0])
            # Held until this process ends: two invocations on one database would drop each
            # other's tables.
            cur.execute("SELECT GET_LOCK(%s, 0)", (f"jobsched-bench:{name}"[:64],))
            if cur.fetchone()[0] != 1:
                conn.close()
                raise SystemExit(
                    f"bench: another benchmark is running on the database {name!r}; wait for it "
                    "or give --mysql-url another database (its name containing 'bench')"
                )
        self.lock_conn = conn
        return None

    def fresh_database(self) -> None:
        name = common.mysql_database(self.mysql_url)
        conn = self.mysql()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        conn.close()

    def say(self, message: str) -> None:
        print(message, file=self.log, flush=True)


# -- child processes ----------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    # JOBSCHED_HISTORY too: each jobsched implementation says whether its history is on.
    for name in ("JOBSCHED_DATABASE_URL", "JOBSCHED_APP", "JOBSCHED_HISTORY"):
        env.pop(name, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def stop_all(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def pump(stream: Any, out: queue.Queue[str | None]) -> None:
    for line in stream:
        out.put(line)
    out.put(None)


def wait_for(out: queue.Queue[str | None], marker: str, timeout: float) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = out.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise RuntimeError(
                f"no {marker} within {timeout:g}s; output so far: {seen!r}"
            ) from None
        if line is None:
            out.put(None)
            return seen  # the child ended early: its result says why
        if line.strip() == marker:
            return seen
        seen += line


def drain(out: queue.Queue[str | None]) -> str:
    text = ""
    while True:
        line = out.get(timeout=30)
        if line is None:
            return text
        text += line


def parse_result(stdout: str, stderr: str, returncode: int) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT):
            result: dict[str, Any] = json.loads(line[len(RESULT) :])
            if "error" in result:
                raise ChildError(result["error"], result.get("traceback", ""))
            return result
    raise ChildError(f"the child exited {returncode} without a result", stderr[-3000:])


class ChildError(Exception):
    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details


def fill(record: Record, result: dict[str, Any]) -> None:
    record.seconds = float(result["seconds"])
    record.rss_kib = int(result["rss_kib"]) if result.get("rss_kib", -1) >= 0 else None
    record.ran = result.get("ran")
    record.duplicates = int(result.get("duplicates", 0))
    record.extra_runs = int(result.get("extra_runs", 0))
    record.missing = int(result.get("missing", 0))
    record.unexpected = int(result.get("unexpected", 0))
    record.left = int(result.get("due_left", result.get("left", 0)))
    if "latency" in result:  # W7: the p95 latency in ms
        record.value = result["latency"]["p95"] * 1000 if result["latency"] else None
    elif unit(record.workload) == "jobs/s":
        record.value = record.jobs / record.seconds if record.seconds > 0 else float("inf")
    elif unit(record.workload) == "ms":
        record.value = record.seconds * 1000
    else:
        record.value = record.seconds
    keep = ("per_runner", "schedule_seconds", "passes", "outcomes", "history_rows")
    record.detail = {k: result[k] for k in keep if k in result}
    for name, seconds in result.get("latency", {}).items():
        record.detail[f"{name}_ms"] = round(seconds * 1000, 1)
    if "schedule_seconds" in record.detail:
        record.detail["schedule_seconds"] = round(record.detail["schedule_seconds"], 3)
    for key in ("count", "app_rows"):  # after W1, W1b, W6: only when some are missing
        if key in result and result[key] != record.jobs:
            record.detail[key] = result[key]
    if record.detail.get("history_rows", 0) is None:
        del record.detail["history_rows"]  # an implementation that keeps no history
    if result.get("notes"):
        record.detail["notes"] = "; ".join(result["notes"])


def stream(scheduler: Any, prefix: str, count: int, rate: float, handler: str) -> None:
    """Schedule ``count`` jobs due now, ``rate`` a second, each at its time (``prefix-0000000``
    and on): a steady stream, as a web app's requests make."""
    began = time.monotonic()
    for i, job_id in enumerate(common.ids(prefix, count)):
        delay = began + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        scheduler.schedule_job(job_id, scheduler.now(), handler, None)


def due_any(scheduler: Any) -> bool:
    """Whether any job whose start has come is in the table (claimed or not)."""
    return next(iter(scheduler.list_jobs(due=True, limit=1)), None) is not None


def read_latency_runs(logs: Path) -> list[tuple[str, float, str]]:
    """Every run W7's workers logged: (job id, seconds from its start to its handler's, pid)."""
    runs = []
    for path in sorted(logs.glob("runs-*.txt")):
        pid = path.stem.removeprefix("runs-")
        for line in path.read_text().splitlines():
            job, start, began = line.split()
            runs.append((job, float(began) - float(start), pid))
    return runs


def latency_runs(logs: Path, prefix: str) -> int:
    """How many runs of jobs whose id starts with ``prefix`` W7's workers have logged so far."""
    return sum(
        1 for path in logs.glob("runs-*.txt") for line in path.read_text().splitlines()
        if line.startswith(prefix)
    )  # fmt: skip


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p95, p99 and the maximum of ``values`` (seconds; the inclusive method)."""
    if not values:
        return {}
    if len(values) == 1:
        return {"p50": values[0], "p95": values[0], "p99": values[0], "max": values[0]}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": max(values)}


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# -- figures ------------------------------------------------------------------------------------


def fmt(value: float | None, workload: str) -> str:
    if value is None:
        return "-"
    u = unit(workload)
    if u == "jobs/s":
        return f"{value:,.0f} jobs/s"
    if u == "ms":
        return f"{value:,.1f} ms"
    return f"{value:,.2f} s"


def describe(record: Record) -> str:
    head = f"{record.workload} {record.backend} {record.impl} run {record.run}: "
    if record.error:
        return head + "ERROR " + record.error
    text = head + fmt(record.value, record.workload)
    if record.seconds is not None and unit(record.workload) == "jobs/s":
        text += f" ({record.seconds:.2f} s)"
    if record.rss_kib:
        text += f", peak RSS {record.rss_kib / 1024:.1f} MiB"
    if not record.exactly_once:
        text += "  " + once_problems([record])
    return text


def once_problems(records: Iterable[Record]) -> str:
    records = list(records)
    parts = []
    for label, attr in (
        ("ran twice", "duplicates"),
        ("never ran", "missing"),
        ("ran though not due", "unexpected"),
        ("left in the table", "left"),
    ):
        bad = [r for r in records if getattr(r, attr)]
        if bad:
            count = sum(getattr(r, attr) for r in bad)
            parts.append(f"{count:,} jobs {label} ({len(bad)} of {len(records)} runs)")
    return "; ".join(parts)


class Summary:
    """Medians, ratios and targets of one invocation's records."""

    def __init__(self, records: list[Record]) -> None:
        self.records = records

    def runs(self, workload: str, backend: str, impl: str) -> list[Record]:
        return [
            r for r in self.records if (r.workload, r.backend, r.impl) == (workload, backend, impl)
        ]

    def median(self, workload: str, backend: str, impl: str) -> float | None:
        values = [r.value for r in self.runs(workload, backend, impl) if r.value is not None]
        return statistics.median(values) if values else None

    def median_rss(self, workload: str, backend: str, impl: str) -> float | None:
        values = [r.rss_kib for r in self.runs(workload, backend, impl) if r.rss_kib]
        return statistics.median(values) / 1024 if values else None

    def ratio(self, workload: str, backend: str, impl: str, other: str) -> float | None:
        """How many times ``impl`` is as fast as ``other`` (>1: faster)."""
        a = self.median(workload, backend, impl)
        b = self.median(workload, backend, other)
        if a is None or b is None or a == 0 or b == 0:
            return None
        return a / b if higher_is_better(workload) else b / a

    def exactly_once(self, workload: str, backend: str, impl: str) -> bool | None:
        runs = [r for r in self.runs(workload, backend, impl) if r.error is None]
        return all(r.exactly_once for r in runs) if runs else None

    def rows(self) -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        for r in self.records:
            if (r.workload, r.backend) not in seen:
                seen.append((r.workload, r.backend))
        return sorted(seen, key=lambda wb: (ALL_WORKLOADS.index(wb[0]), wb[1] != "mariadb"))

    def table(self, sizes: Sizes) -> list[str]:
        lines = [
            "| workload | database | raw floor | peer | jobsched | jobsched / floor "
            "| jobsched / peer | every job exactly once |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for workload, backend in self.rows():
            peer = PEERS.get(backend, "")
            if not any(self.runs(workload, backend, impl) for impl in ("floor", peer, "jobsched")):
                continue  # W7: the worker's own table
            cells = [f"{workload} {sizes.title(workload)}", BACKEND_LABELS[backend]]
            for impl in ("floor", peer, "jobsched"):
                value = self.median(workload, backend, impl) if impl else None
                cell = fmt(value, workload) if value is not None else "-"
                if impl == peer and value is not None:
                    cell = f"{LABELS[peer]} {cell}"
                if self.runs(workload, backend, impl) and any(
                    r.error for r in self.runs(workload, backend, impl)
                ):
                    cell += " (errors)"
                cells.append(cell)
            for other in ("floor", peer):
                ratio = self.ratio(workload, backend, "jobsched", other) if other else None
                cells.append(f"{ratio:.2f}x" if ratio is not None else "-")
            problems = []
            for impl in ("floor", peer, "jobsched"):
                runs = [r for r in self.runs(workload, backend, impl) if r.error is None]
                if runs and not all(r.exactly_once for r in runs):
                    problems.append(f"{LABELS[impl]}: {once_problems(runs)}")
            cells.append("; ".join(problems) if problems else "yes")
            lines.append("| " + " | ".join(cells) + " |")
        return lines

    def rss_table(self) -> list[str]:
        lines = [
            "| database | implementation | W2 peak RSS | W3 peak RSS | W3 - W2 |",
            "|---|---|---|---|---|",
        ]
        for backend, impl in IMPLEMENTATIONS:
            w2 = self.median_rss("W2", backend, impl)
            w3 = self.median_rss("W3", backend, impl)
            if w2 is None and w3 is None:
                continue
            diff = f"{w3 - w2:+.1f} MiB" if w2 is not None and w3 is not None else "-"
            lines.append(
                f"| {BACKEND_LABELS[backend]} | {LABELS[impl]} | {mib(w2)} | {mib(w3)} | {diff} |"
            )
        return lines

    def history_rows(self) -> list[tuple[str, str]]:
        """The (workload, backend) pairs measured with the history both on and off."""
        return [
            (workload, backend)
            for workload, backend in self.rows()
            if self.runs(workload, backend, "jobsched") and self.runs(workload, backend, NO_HISTORY)
        ]

    def paired(
        self, workload: str, backend: str, impl: str = "jobsched", other: str = NO_HISTORY
    ) -> list[float]:
        """Run k of ``impl`` (by default: the history on) against run k of ``other`` (the history
        off; they ran one after the other: interleaved), as speed ratios (>1: ``impl`` is
        faster)."""
        off = {r.run: r.value for r in self.runs(workload, backend, other) if r.value}
        out = []
        for r in self.runs(workload, backend, impl):
            theirs = off.get(r.run)
            if r.value and theirs:
                out.append(r.value / theirs if higher_is_better(workload) else theirs / r.value)
        return out

    def spread(self, workload: str, backend: str, impl: str) -> str:
        values = [r.value for r in self.runs(workload, backend, impl) if r.value is not None]
        if not values:
            return "-"
        median = fmt(statistics.median(values), workload)
        if len(values) < 2:
            return median
        low, high = (fmt(v, workload).split()[0] for v in (min(values), max(values)))
        return f"{median} ({low}-{high})"

    def history_table(self) -> list[str]:
        lines = [
            "| workload | database | history on | history off | on / off (medians) "
            "| on / off (run by run) | target | |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for workload, backend in self.history_rows():
            ratio = self.ratio(workload, backend, "jobsched", NO_HISTORY)
            pairs = self.paired(workload, backend)
            by_run = "-"
            if pairs:
                by_run = f"{statistics.median(pairs):.2f}x"
                if len(pairs) > 1:
                    by_run += f" ({min(pairs):.2f}-{max(pairs):.2f})"
            at_least = HISTORY_TARGETS.get(workload)
            lines.append(
                f"| {workload} | {BACKEND_LABELS[backend]} "
                f"| {self.spread(workload, backend, 'jobsched')} "
                f"| {self.spread(workload, backend, NO_HISTORY)} "
                f"| {'-' if ratio is None else f'{ratio:.2f}x'} | {by_run} "
                f"| {HISTORY_TARGET_TEXT.get(workload, '-')} "
                f"| {met(None if ratio is None or at_least is None else ratio >= at_least)} |"
            )
        return lines

    # -- the worker (issue 14) ------------------------------------------------------------------

    def worker_rows(self) -> list[tuple[str, str]]:
        """The (workload, backend) pairs of W2 and W3 measured through the worker and run-due."""
        return [
            (workload, backend)
            for workload, backend in self.rows()
            if workload in ("W2", "W3")
            and self.runs(workload, backend, WORKER)
            and self.runs(workload, backend, RUN_DUE)
        ]

    def worker_table(self) -> list[str]:
        lines = [
            "| workload | database | `run_due_jobs` (API) | `jobsched run-due` | `jobsched worker` "
            "| worker / run-due (medians) | worker / run-due (run by run) | target | |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for workload, backend in self.worker_rows():
            ratio = self.ratio(workload, backend, WORKER, RUN_DUE)
            pairs = self.paired(workload, backend, WORKER, RUN_DUE)
            by_run = "-"
            if pairs:
                by_run = f"{statistics.median(pairs):.2f}x"
                if len(pairs) > 1:
                    by_run += f" ({min(pairs):.2f}-{max(pairs):.2f})"
            lines.append(
                f"| {workload} | {BACKEND_LABELS[backend]} "
                f"| {self.spread(workload, backend, 'jobsched')} "
                f"| {self.spread(workload, backend, RUN_DUE)} "
                f"| {self.spread(workload, backend, WORKER)} "
                f"| {'-' if ratio is None else f'{ratio:.2f}x'} | {by_run} "
                f"| {WORKER_TARGET_TEXT[workload]} "
                f"| {met(None if ratio is None else ratio >= WORKER_TARGETS[workload])} |"
            )
        return lines

    def latency_rows(self) -> list[tuple[str, str]]:
        return [(w, b) for w, b in self.rows() if w in LATENCY_WORKERS]

    def median_detail(self, workload: str, backend: str, impl: str, key: str) -> float | None:
        values = [
            float(r.detail[key])
            for r in self.runs(workload, backend, impl)
            if r.error is None and key in r.detail
        ]
        return statistics.median(values) if values else None

    def latency_table(self) -> list[str]:
        lines = [
            "| database | worker processes | jobs (per run) | p50 | p95 | p99 | max "
            "| every job exactly once | target p95 < 1 s | |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for workload, backend in self.latency_rows():
            runs = [r for r in self.runs(workload, backend, WORKER) if r.error is None]
            cells = []
            for key in ("p50_ms", "p95_ms", "p99_ms"):
                value = self.median_detail(workload, backend, WORKER, key)
                cells.append("-" if value is None else f"{value:,.0f} ms")
            highest = max((r.detail["max_ms"] for r in runs if "max_ms" in r.detail), default=None)
            cells.append("-" if highest is None else f"{highest:,.0f} ms")
            once = self.exactly_once(workload, backend, WORKER)
            p95 = self.median(workload, backend, WORKER)
            jobs = runs[0].jobs if runs else 0
            lines.append(
                f"| {BACKEND_LABELS[backend]} | {LATENCY_WORKERS[workload]} | {jobs:,} | "
                + " | ".join(cells)
                + f" | {'-' if once is None else 'yes' if once else once_problems(runs)} "
                f"| {'-' if p95 is None else f'{p95:,.0f} ms'} "
                f"| {met(None if p95 is None else p95 < 1000)} |"
            )
        return lines

    # -- the targets --------------------------------------------------------------------

    def targets(self) -> list[tuple[str, str, bool | None]]:
        """(target, what was measured, met: True / False / None when not measured)."""
        out: list[tuple[str, str, bool | None]] = []

        def vs(workload: str, backend: str, other: str, at_least: float, what: str) -> None:
            r = self.ratio(workload, backend, "jobsched", other)
            measured = f"{r:.2f}x" if r is not None else "not measured"
            out.append((what, measured, None if r is None else r >= at_least))

        def absolute(workload: str, backend: str, ok: Callable[[float], bool], what: str) -> None:
            v = self.median(workload, backend, "jobsched")
            out.append((what, fmt(v, workload) if v is not None else "not measured",
                        None if v is None else ok(v)))  # fmt: skip

        def once(workload: str, backend: str, what: str) -> None:
            ok = self.exactly_once(workload, backend, "jobsched")
            runs = [r for r in self.runs(workload, backend, "jobsched") if r.error is None]
            measured = (
                "not measured" if ok is None
                else "yes" if ok else once_problems(runs)
            )  # fmt: skip
            out.append((what, measured, ok))

        vs("W1", "mariadb", "floor", 0.8, "MariaDB W1 >= 0.8x floor")
        absolute("W1b", "mariadb", lambda v: v >= 20_000, "MariaDB W1b >= 20,000 jobs/s")
        vs("W2", "mariadb", "floor", 0.75, "MariaDB W2 >= 0.75x floor")
        vs("W2", "mariadb", "apscheduler", 10, "MariaDB W2 >= 10x APScheduler")
        vs("W4", "mariadb", "floor", 0.6, "MariaDB W4 >= 0.6x floor")
        once("W4", "mariadb", "MariaDB W4 exactly once")
        w4 = self.median("W4", "mariadb", "jobsched")
        w2 = self.median("W2", "mariadb", "jobsched")
        out.append((
            "MariaDB W4 no slower than one runner (jobsched W2)",
            f"{w4 / w2:.2f}x W2" if w4 and w2 else "not measured",
            None if not (w4 and w2) else w4 >= w2,
        ))  # fmt: skip
        w6 = self.median("W6", "mariadb", "jobsched")
        w1 = self.median("W1", "mariadb", "jobsched")
        out.append((
            "MariaDB W6 >= 0.5x W1",
            f"{w6 / w1:.2f}x W1" if w6 and w1 else "not measured",
            None if not (w6 and w1) else w6 >= 0.5 * w1,
        ))  # fmt: skip
        vs("W1", "sqlite", "floor", 0.8, "SQLite W1 >= 0.8x SQLite floor (synchronous=FULL)")
        vs("W2", "sqlite", "huey", 10, "SQLite W2 >= 10x Huey")
        once("W4", "sqlite", "SQLite W4 exactly once")
        for backend in ("mariadb", "sqlite"):
            label = BACKEND_LABELS[backend]
            absolute("W3", backend, lambda v: v < 20, f"{label} W3 under 20 ms")
            w2_rss = self.median_rss("W2", backend, "jobsched")
            w3_rss = self.median_rss("W3", backend, "jobsched")
            out.append((
                f"{label} W3 peak RSS within 10 MiB of W2",
                f"{w3_rss - w2_rss:+.1f} MiB ({mib(w3_rss)} vs {mib(w2_rss)})"
                if w2_rss is not None and w3_rss is not None else "not measured",
                None if w2_rss is None or w3_rss is None else w3_rss - w2_rss <= 10,
            ))  # fmt: skip
        # Issue 14: W2 and W3 through a worker within 10% of run-due; W7's p95 under 1 s.
        for workload in ("W2", "W3"):
            for backend in ("mariadb", "sqlite"):
                r = self.ratio(workload, backend, WORKER, RUN_DUE)
                worker = self.median(workload, backend, WORKER)
                run_due = self.median(workload, backend, RUN_DUE)
                out.append((
                    f"{BACKEND_LABELS[backend]} {workload} through a worker "
                    f"{WORKER_TARGET_TEXT[workload]}",
                    f"{r:.2f}x (worker {fmt(worker, workload)}, run-due {fmt(run_due, workload)})"
                    if r is not None else "not measured",
                    None if r is None else r >= WORKER_TARGETS[workload],
                ))  # fmt: skip
        for workload, workers in LATENCY_WORKERS.items():
            for backend in ("mariadb", "sqlite"):
                p95 = self.median(workload, backend, WORKER)
                out.append((
                    f"{BACKEND_LABELS[backend]} W7 p95 start-to-handler latency under 1 s, "
                    f"{workers} worker{'s' if workers > 1 else ''}",
                    "not measured" if p95 is None else f"{p95:,.0f} ms",
                    None if p95 is None else p95 < 1000,
                ))  # fmt: skip
        absolute("W5", "memory", lambda v: v < 1, "W5 under 1 s (a year, 10,000 jobs)")
        absolute("W5b", "memory", lambda v: v < 10, "W5b under 10 s (a year, 100,000 jobs)")
        # Issue 13: the history of attempts costs W2 at most 10%, W3 and W5 within 10%.
        for workload, backends in (
            ("W2", ("mariadb", "sqlite")),
            ("W3", ("mariadb", "sqlite")),
            ("W5", ("memory",)),
            ("W5b", ("memory",)),
        ):
            for backend in backends:
                on = self.median(workload, backend, "jobsched")
                off = self.median(workload, backend, NO_HISTORY)
                r = self.ratio(workload, backend, "jobsched", NO_HISTORY)
                label = "" if backend == "memory" else BACKEND_LABELS[backend] + " "
                out.append((
                    f"{label}{workload} history on {HISTORY_TARGET_TEXT[workload]}",
                    f"{r:.2f}x (on {fmt(on, workload)}, off {fmt(off, workload)})"
                    if r is not None else "not measured",
                    None if r is None else r >= HISTORY_TARGETS[workload],
                ))  # fmt: skip
        return out


#: Issue 13: how fast jobsched with its history on must be, as a share of it with the history off
#: (W2 at least 0.9x; W3 and W5 "within 10%": their time at most 1.1x, a speed of 1/1.1x).
HISTORY_TARGETS = {"W2": 0.9, "W3": 1 / 1.1, "W5": 1 / 1.1, "W5b": 1 / 1.1}
HISTORY_TARGET_TEXT = {
    "W2": ">= 0.9x history off",
    "W3": "within 10% of history off (time <= 1.1x)",
    "W5": "within 10% of history off (time <= 1.1x)",
    "W5b": "within 10% of history off (time <= 1.1x)",
}


#: Issue 14: W2 and W3 through ``jobsched worker`` "within 10%" of ``jobsched run-due``: W2's
#: speed at least 0.9x, W3's time at most 1.1x (a speed of 1/1.1x).
WORKER_TARGETS = {"W2": 0.9, "W3": 1 / 1.1}
WORKER_TARGET_TEXT = {
    "W2": ">= 0.9x run-due",
    "W3": "within 10% of run-due (time <= 1.1x)",
}


def mib(value: float | None) -> str:
    return f"{value:.1f} MiB" if value is not None else "-"


def met(value: bool | None) -> str:
    return "not measured" if value is None else "met" if value else "NOT MET"


# -- the report ---------------------------------------------------------------------------------


def versions(harness: Harness) -> list[tuple[str, str]]:
    import sqlite3

    out = [("Python", platform.python_version())]
    for package in ("jobsched", "SQLAlchemy", "PyMySQL", "APScheduler", "huey", "pyinstrument"):
        try:
            out.append((package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            out.append((package, "not installed"))
    commit = git("rev-parse", "--short", "HEAD")
    if commit:
        dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--", ".") else ""
        out.append(("jobsched commit", commit + dirty))
    out.append(("MariaDB server", harness.mysql_version or "not reached"))
    out.append(("SQLite library", sqlite3.sqlite_version))
    return out


def git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> list[tuple[str, str]]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return [
        ("host", socket.gethostname()),
        ("system", platform.platform()),
        ("CPUs (nproc)", f"{os.cpu_count()} ({cpu})"),
        ("memory", memory),
    ]


def load_average() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


#: A report file keeps what follows this line when a run writes it again (notes by hand, such as
#: an issue's own measurements).
KEEP_MARKER = "<!-- Kept when `make bench` writes this file again: notes below this line. -->"


def kept_notes(path: Path) -> str:
    """What ``path`` keeps when it is written again: from ``KEEP_MARKER`` to the end."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return ""
    at = text.find(KEEP_MARKER)
    return "" if at < 0 else "\n" + text[at:]


def report(
    harness: Harness, started: datetime, took: float, load_before: str, load_after: str
) -> str:
    args = harness.args
    summary = Summary(harness.records)
    sizes = harness.sizes
    seeds, factor = common.split_future(sizes.w3_future)
    future = seeds * factor
    lines = [
        "# jobsched benchmark results",
        "",
        "Written by `make bench` (`python -m bench`, see [README.md](README.md)); every figure is",
        "the median of the runs listed at the end, each run in a fresh process on a fresh table,",
        "the implementations interleaved run by run. Ratios compare medians of this invocation.",
        "",
        f"- date: {started.isoformat(timespec='seconds')} (took {took / 60:.1f} min)",
        f"- command: `{' '.join(['python -m bench', *args.argv])}`",
        f"- runs per implementation: {args.runs}"
        + (" (fewer than 3: the medians are single runs)" if args.runs < 3 else ""),
        f"- sizes: {sizes.jobs:,} jobs (W1, W2, W4, W6), {sizes.bulk:,} (W1b), W3 "
        f"{sizes.w3_due:,} due among {future:,} future, W5 {sizes.sim:,} / W5b "
        f"{sizes.sim_large:,} jobs over {sizes.sim_days} days, W7 {sizes.latency_rate:g} jobs/s "
        f"for {sizes.latency_seconds:g} s",
        "- jobsched's timed pass (W2-W4): "
        + (
            "the first on its database (`--first-pass`)"
            if args.first_pass
            else "after an untimed pass over the table before its due jobs were loaded"
        ),
        "- `jobsched worker` options (W2, W3, W7): "
        + (f"`{shlex.join(args.worker_args)}`" if args.worker_args else "the defaults"),
        f"- load before: `{load_before}`",
        f"- load after: `{load_after}`",
        "",
        "## Versions",
        "",
    ]
    lines += [f"- {name}: {value}" for name, value in versions(harness)]
    lines += ["", "## Machine", ""]
    lines += [f"- {name}: {value}" for name, value in machine()]
    for backend, reason in harness.skipped.items():
        lines += ["", f"**{BACKEND_LABELS[backend]} skipped**: {reason}"]
    lines += ["", "## Medians", ""]
    lines += summary.table(sizes)
    lines += [
        "",
        "W1, W1b, W2, W4 and W6 in jobs per second (more is better), W3 in milliseconds for the",
        "whole pass, W5 in seconds of wall time for the simulated year (scheduling excluded).",
        "`jobsched / floor` and `jobsched / peer` say how many times as fast jobsched is.",
        "",
        "## Peak RSS of a pass (W2, W3)",
        "",
    ]
    lines += summary.rss_table()
    if summary.history_rows():
        lines += ["", "## History on vs off (issue 13)", ""]
        lines += summary.history_table()
        lines += [
            "",
            "jobsched as it ships (history of attempts on) against `Scheduler(history=False)`",
            "(`JOBSCHED_HISTORY=off` for W4's `jobsched run-due`), interleaved run by run in this",
            "invocation: medians (min-max of the runs); `on / off` says how many times as",
            "fast the history on is (below 1: slower). Run by run: run k on against run k off,",
            "which ran one after the other.",
        ]
    if summary.worker_rows() or summary.latency_rows():
        lines += ["", "## The worker (issue 14)", ""]
    if summary.worker_rows():
        lines += summary.worker_table()
        lines += [
            "",
            "W2 and W3 through `jobsched worker` (timed from the command's call, in a warmed",
            "process, until every due job ran and none is left in the table) against `jobsched",
            "run-due` (from the call to its return), both called in the child's process with",
            "their defaults, interleaved run by run; `run_due_jobs` is jobsched's W2/W3 above, for",
            "reference. Medians (min-max); `worker / run-due` says how many times as fast the",
            "worker is (below 1: slower).",
            "",
        ]
    if summary.latency_rows():
        lines += summary.latency_table()
        lines += [
            "",
            f"W7: {sizes.latency_rate:g} jobs a second, each `schedule_job(..., start=now)`, for "
            f"{sizes.latency_seconds:g} s ({sizes.latency_jobs:,} jobs a run, after a warm-up of",
            f"{sizes.latency_warmup:g} s not counted), to `jobsched worker` processes with their "
            "defaults (`--poll 0.5`);",
            "latency from each job's start to its handler's start. p50, p95 and p99 are medians",
            "over the runs of each run's percentile; max is the highest of any run.",
        ]
    lines += ["", "## The issue's targets", "", "| target | measured | |", "|---|---|---|"]
    lines += [f"| {what} | {measured} | {met(ok)} |" for what, measured, ok in summary.targets()]
    lines += ["", "## Every run", ""]
    lines += [
        "| workload | database | implementation | run | seconds | result | peak RSS "
        "| ran | twice | missing | not due | left | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(
        harness.records,
        key=lambda r: (ALL_WORKLOADS.index(r.workload), r.backend != "mariadb", r.impl, r.run),
    ):
        notes = r.error or ", ".join(f"{k} {v}" for k, v in r.detail.items())
        lines.append(
            f"| {r.workload} | {BACKEND_LABELS[r.backend]} | {LABELS[r.impl]} | {r.run} | "
            f"{'-' if r.seconds is None else f'{r.seconds:.3f}'} | {fmt(r.value, r.workload)} | "
            f"{mib(r.rss_kib / 1024 if r.rss_kib else None)} | "
            f"{'-' if r.ran is None else r.ran} | {r.duplicates} | {r.missing} | "
            f"{r.unexpected} | {r.left} | {notes.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


# -- the command --------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="jobsched's benchmark: every workload for each implementation, in one go.",
    )
    parser.add_argument(
        "--runs", type=int, help="runs per implementation (default 5; 1 with --tiny)"
    )
    parser.add_argument(
        "--only", help="workloads, comma-separated (default all): " + ",".join(ALL_WORKLOADS)
    )
    parser.add_argument("--backends", default="mariadb,sqlite,memory", help="default: all")
    parser.add_argument(
        "--impls",
        default=",".join(DEFAULT_IMPLS),
        help=f"default: {','.join(DEFAULT_IMPLS)} (choose from {','.join(ALL_IMPLS)})",
    )
    parser.add_argument("--jobs", type=int, help="jobs of W1, W2, W4, W6 (default 5,000)")
    parser.add_argument("--bulk-jobs", type=int, help="jobs of W1b (default 100,000)")
    parser.add_argument("--w3-due", type=int, help="due jobs of W3 (default 100)")
    parser.add_argument("--w3-future", type=int, help="future jobs of W3 (default 1,000,000)")
    parser.add_argument("--sim-jobs", type=int, help="jobs of W5 (default 10,000)")
    parser.add_argument("--sim-jobs-large", type=int, help="jobs of W5b (default 100,000)")
    parser.add_argument("--sim-days", type=int, help="days W5 simulates (default 365)")
    parser.add_argument(
        "--latency-rate", type=float, help="W7: jobs a second in the stream (default 20)"
    )
    parser.add_argument(
        "--latency-seconds", type=float, help="W7: seconds the measured stream lasts (default 20)"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny sizes and 1 run: a smoke test")
    parser.add_argument(
        "--mysql-url",
        default=os.environ.get("JOBSCHED_BENCH_MYSQL_URL", DEFAULT_MYSQL_URL),
        help="the benchmark's own MariaDB database, dropped and made again for every run "
        f"[env JOBSCHED_BENCH_MYSQL_URL; default {DEFAULT_MYSQL_URL}]",
    )
    parser.add_argument(
        "--require-mariadb", action="store_true", help="fail (not skip) if MariaDB is unreachable"
    )
    parser.add_argument("--workdir", help="where the SQLite files go (default: a temporary dir)")
    parser.add_argument(
        "--results",
        help="write the Markdown report here (default bench/RESULTS.md for a full run: all "
        "workloads, implementations and backends at the default sizes, 3 runs or more)",
    )
    parser.add_argument("--json", help="also write every run as JSON here")
    parser.add_argument(
        "--profile",
        metavar="WORKLOAD",
        help="run jobsched's WORKLOAD once under pyinstrument (on each of --backends) and save "
        "the profile in bench/profiles/ instead of benchmarking",
    )
    parser.add_argument(
        "--first-pass",
        action="store_true",
        help="W2-W4: no untimed pass before the due jobs are loaded, so jobsched's timed pass is "
        "the first on its database (with the history on, it prunes the history, as a pass does "
        "when none has for ten minutes)",
    )
    parser.add_argument(
        "--worker-args",
        default="",
        metavar="ARGS",
        help="options for jobsched-worker's `jobsched worker` (W2, W3, W7), e.g. "
        "'--prefetch 1000' (default: none, the command's defaults)",
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds one run may take")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the children's stderr")
    args = parser.parse_args(argv)
    args.argv = argv
    args.worker_args = shlex.split(args.worker_args)

    sizes = TINY if args.tiny else Sizes()
    for option, attr in (
        ("jobs", "jobs"),
        ("bulk_jobs", "bulk"),
        ("w3_due", "w3_due"),
        ("w3_future", "w3_future"),
        ("sim_jobs", "sim"),
        ("sim_jobs_large", "sim_large"),
        ("sim_days", "sim_days"),
        ("latency_rate", "latency_rate"),
        ("latency_seconds", "latency_seconds"),
    ):
        value = getattr(args, option)
        if value is not None:
            if value < 1:
                parser.error(f"--{option.replace('_', '-')} must be at least 1")
            sizes = Sizes(**{**asdict(sizes), attr: value})
    args.sizes = sizes
    if args.runs is None:
        args.runs = 1 if args.tiny else 5
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.only = split(args.only, ALL_WORKLOADS, "--only", parser) if args.only else ALL_WORKLOADS
    args.backends = split(args.backends, ["mariadb", "sqlite", "memory"], "--backends", parser)
    args.impls = split(args.impls, ALL_IMPLS, "--impls", parser)
    args.full = (
        args.only == ALL_WORKLOADS
        and len(args.backends) == 3
        and set(args.impls) >= set(DEFAULT_IMPLS)
        and sizes == Sizes()
        and args.runs >= 3
        and not args.first_pass
        and not args.worker_args
    )
    if args.profile:
        if args.profile not in ALL_WORKLOADS:
            parser.error(f"--profile takes one of {', '.join(ALL_WORKLOADS)}")
        args.only, args.impls, args.runs = [args.profile], ["jobsched"], 1
    return args


def split(
    value: str, allowed: list[str], option: str, parser: argparse.ArgumentParser
) -> list[str]:
    items = [item.strip() for item in value.split(",") if item.strip()]
    lower = {a.lower(): a for a in allowed}
    unknown = [item for item in items if item.lower() not in lower]
    if unknown or not items:
        parser.error(
            f"{option}: unknown {', '.join(unknown) or 'empty'}; choose from {', '.join(allowed)}"
        )
    chosen = [lower[item.lower()] for item in items]
    return [a for a in allowed if a in chosen]  # in the harness's order


def profile(harness: Harness) -> int:
    out_dir = BENCH / "profiles"
    workload = harness.args.profile
    steps = harness.plan()
    if not steps:
        harness.say(f"nothing to profile for {workload} on {', '.join(harness.args.backends)}")
        return 1
    for workload, backend, _ in steps:
        path = out_dir / f"{workload}-{backend}"
        jobs = harness.sizes.jobs_for(workload)
        harness.say(f"profiling jobsched {workload} on {backend} ({jobs:,} jobs) ...")
        spec: dict[str, Any] = {"workload": workload, "jobs": jobs, "profile": str(path)}
        if backend == "memory":
            spec["days"] = harness.sizes.sim_days
            result = harness.child(spec)
        else:
            target = harness.prepare(workload, backend, "jobsched", 0)
            spec.update(backend=backend, impl="jobsched", target=target,
                        deadline_s=harness.args.timeout)  # fmt: skip
            result = harness.two_runners(spec) if workload == "W4" else harness.child(spec)
            harness.cleanup(backend, target)
        harness.say(
            f"{workload} {backend}: {result['seconds']:.3f} s; profile in "
            f"{path.with_suffix('.txt')} and {path.with_suffix('.html')}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    harness = Harness(args)
    try:
        if args.profile:
            return profile(harness)
        started = datetime.now().astimezone()
        load_before = load_average()
        began = time.monotonic()
        harness.run_all()
        took = time.monotonic() - began
        text = report(harness, started, took, load_before, load_average())
        summary = Summary(harness.records)
        print("\n".join(summary.table(args.sizes)))
        print()
        if summary.history_rows():
            print("\n".join(summary.history_table()))
            print()
        if summary.worker_rows():
            print("\n".join(summary.worker_table()))
            print()
        if summary.latency_rows():
            print("\n".join(summary.latency_table()))
            print()
        for what, measured, ok in summary.targets():
            if ok is not None or args.full:
                print(f"{met(ok):>12}  {what}: {measured}")
        results = args.results or (str(BENCH / "RESULTS.md") if args.full else None)
        if results:
            Path(results).write_text(text + kept_notes(Path(results)))
            print(f"\nwrote {results} (took {took / 60:.1f} min)")
        else:
            print(f"\ntook {took / 60:.1f} min; no report written (a partial run: give --results)")
        if args.json:
            Path(args.json).write_text(
                json.dumps([asdict(r) for r in harness.records], indent=1) + "\n"
            )
        errors = [r for r in harness.records if r.error]
        for r in errors:
            harness.say(f"error: {describe(r)}")
        return 1 if errors else 0
    finally:
        if not args.workdir:
            shutil.rmtree(harness.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
