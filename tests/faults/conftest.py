"""Helpers of the fault-injection suite: run-due processes, a handle on the test database,
round counts, and a private MariaDB server that tests may stop and restart.

Round counts: ``$JOBSCHED_FAULT_ROUNDS`` (``make faults`` sets 20), else a small default (3)
that keeps the suite within CI's time limit.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from faults.apps.recorder import runs
from jobsched import JobSpec, Scheduler
from jobsched.schema import jobs

#: Rounds of the randomised fault tests (``make faults`` runs 20).
ROUNDS = int(os.environ.get("JOBSCHED_FAULT_ROUNDS") or 3)
#: Overdue jobs of the catch-up test: the issue's 100,000 unless ``$JOBSCHED_FAULT_BACKLOG`` says
#: otherwise (draining runs some 500-1,000 jobs a second here: a few minutes per backend).
BACKLOG = int(os.environ.get("JOBSCHED_FAULT_BACKLOG") or 100_000)
#: The run-due command of this virtualenv.
JOBSCHED = Path(sys.executable).parent / "jobsched"
#: The directory that holds the ``faults`` package (so ``--app faults.apps.recorder`` imports).
TESTS_DIR = Path(__file__).resolve().parent.parent
APP = "faults.apps.recorder"


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.01) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)
        time.sleep(step)


class Runner:
    """One ``jobsched run-due`` process, its output in files, its exit code and peak memory."""

    def __init__(
        self, url: str, args: Sequence[str], workdir: Path, name: str, *, verbose: bool = True
    ) -> None:
        self.name = name
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH")) if p
        )
        command = [str(JOBSCHED), "--database-url", url, "--app", APP]
        command += ["-v"] if verbose else []
        command += ["run-due", *args]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=workdir)
        self.pid = self.proc.pid
        self.code: int | None = None
        #: Peak resident memory in KiB: the last VmHWM seen while waiting for the process (wait4's
        #: ru_maxrss would also count the test process's memory copied at fork, before exec).
        self.peak_rss_kib = 0

    def poll(self) -> int | None:
        if self.code is None:
            self._sample_memory()
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reaped(status)
        return self.code

    def _sample_memory(self) -> None:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        if match:
            self.peak_rss_kib = max(self.peak_rss_kib, int(match.group(1)))

    def wait(self, timeout: float = 60) -> int:
        """The exit code (negative: killed by that signal); fails the test after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(
                    f"{self.name} still running after {timeout}s; stderr:\n{self.stderr[-3000:]}",
                    pytrace=False,
                )
            time.sleep(0.01)
        assert self.code is not None
        return self.code

    def _reaped(self, status: int) -> None:
        self.code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.code

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            _, status = os.waitpid(self.pid, 0)
            self._reaped(status)

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def summary(self, outcome: str = "ran") -> int:
        """A count from the pass's summary line (``ran N (succeeded N, ...)``), 0 if absent."""
        match = re.search(rf"\b{outcome} (\d+)", self.stdout)
        return int(match.group(1)) if match else 0

    def expect(self, code: int, timeout: float = 60) -> Runner:
        """Wait for the exit and check its code (the output is shown when it differs)."""
        got = self.wait(timeout)
        assert got == code, (
            f"{self.name} exited {got}, expected {code}\nstdout:\n{self.stdout[-2000:]}\n"
            f"stderr:\n{self.stderr[-4000:]}"
        )
        if code:  # a failing pass explains itself in one line, never with a traceback
            assert "Traceback" not in self.stderr, self.stderr[-4000:]
        return self


@dataclass(frozen=True)
class Run:
    job_id: str
    attempt: int
    pid: int
    phase: str
    at: float


class FaultDb:
    """The test's database as the test sees it: jobs to add, and the rows to check."""

    def __init__(self, url: str, workdir: Path) -> None:
        self.url = url
        self.workdir = workdir
        self.scheduler = Scheduler(url)
        self.engine: sa.Engine = self.scheduler.store.engine  # type: ignore[attr-defined]
        self.backend = self.engine.dialect.name
        runs.drop(self.engine, checkfirst=True)
        runs.create(self.engine)
        self._runners = 0
        self.started: list[Runner] = []

    def close(self) -> None:
        for runner in self.started:
            runner.kill()
        self.scheduler.close()

    # -- writing --------------------------------------------------------------------------------

    def add(
        self,
        count: int,
        data: Any = None,
        *,
        handler: str = "fault.work",
        prefix: str = "job",
        max_attempts: int | Sequence[int] | None = None,
        overdue: timedelta = timedelta(hours=1),
        datas: Sequence[Any] | None = None,
    ) -> list[str]:
        """``count`` jobs due now, oldest first in id order (``prefix-00000``, ...)."""
        first = datetime.now(UTC) - overdue
        ids = [f"{prefix}-{i:05d}" for i in range(count)]
        attempts = max_attempts if isinstance(max_attempts, Sequence) else [max_attempts] * count
        specs = (
            JobSpec(
                job_id,
                first + timedelta(milliseconds=i),
                handler,
                data if datas is None else datas[i],
                max_attempts=attempts[i],
            )
            for i, job_id in enumerate(ids)
        )
        self.scheduler.schedule_jobs(specs)
        return ids

    def add_backlog(self, count: int, data: Any, *, prefix: str = "old") -> None:
        """``count`` overdue jobs written straight into the table (fast; no validation)."""
        first = datetime.now(UTC) - timedelta(days=1)
        payload = json.dumps(data, separators=(",", ":"))
        rows = (
            {
                "job_id": f"{prefix}-{i:06d}",
                "handler": "fault.work",
                "data": payload,
                "start_time": first + timedelta(milliseconds=i),
                "expiry": None,
                "attempts": 0,
                "max_attempts": 3,
                "created_at": first,
                "last_error": None,
                "version": i + 1,
                "claim_token": None,
                "claimed_by": None,
                "claimed_until": None,
                "started_at": None,
            }
            for i in range(count)
        )
        with self.engine.begin() as conn:
            while chunk := list(itertools.islice(rows, 5000)):
                conn.execute(jobs.insert(), chunk)

    # -- running --------------------------------------------------------------------------------

    def runner(self, *args: str | float, verbose: bool = True, url: str | None = None) -> Runner:
        """Start ``jobsched run-due ARGS`` on this database."""
        self._runners += 1
        runner = Runner(
            url or self.url,
            [str(a) for a in args],
            self.workdir,
            f"runner-{self._runners}",
            verbose=verbose,
        )
        self.started.append(runner)
        return runner

    def run_pass(self, *args: str | float, code: int = 0, timeout: float = 120) -> Runner:
        """One run-due pass to its end; its exit code must be ``code``."""
        return self.runner(*args).expect(code, timeout)

    # -- reading --------------------------------------------------------------------------------

    def runs(self) -> list[Run]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs).order_by(runs.c.id)).all()
        return [Run(r.job_id, r.attempt, r.pid, r.phase, r.at) for r in rows]

    def starts(self) -> Counter[str]:
        """How often each job's handler started."""
        return Counter(run.job_id for run in self.runs() if run.phase == "start")

    def count_runs(self, phase: str = "start") -> int:
        query = sa.select(sa.func.count()).select_from(runs).where(runs.c.phase == phase)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def rows(self) -> dict[str, sa.Row[Any]]:
        """Every row of the jobs table, claim columns included, by id."""
        with self.engine.connect() as conn:
            return {r.job_id: r for r in conn.execute(sa.select(jobs)).all()}

    def row(self, job_id: str) -> sa.Row[Any] | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(jobs).where(jobs.c.job_id == job_id)).first()

    def count_jobs(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one())

    def marked_started(self) -> list[str]:
        """Jobs whose rows show a running attempt (a runner writes a start mark within 50 ms
        of the handler's start)."""
        with self.engine.connect() as conn:
            query = sa.select(jobs.c.job_id).where(jobs.c.started_at.is_not(None))
            return list(conn.execute(query).scalars())

    def claimed(self) -> list[str]:
        with self.engine.connect() as conn:
            query = sa.select(jobs.c.job_id).where(jobs.c.claim_token.is_not(None))
            return list(conn.execute(query).scalars())


@pytest.fixture
def fdb(db_url: str, tmp_path: Path) -> Iterator[FaultDb]:
    """The test's database (SQLite, then MariaDB), with an empty ``runs`` table."""
    db = FaultDb(db_url, tmp_path)
    yield db
    db.close()


@pytest.fixture
def mariadb_fdb(mysql_url: str, tmp_path: Path) -> Iterator[FaultDb]:
    """Like ``fdb``, on MariaDB only (for faults SQLite cannot have)."""
    db = FaultDb(mysql_url, tmp_path)
    yield db
    db.close()


# -- a private MariaDB server -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateMariaDb:
    """A MariaDB server of the test's own (data directory, port, socket and pid file), which the
    test may stop and start again. The shared server on 3306 is never touched."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.datadir = root / "data"
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        server = Path("/usr/sbin/mariadbd")
        if install is None or not server.exists():
            self._unavailable("mariadb-install-db or /usr/sbin/mariadbd is not installed")
        self.server = server
        result = subprocess.run(
            [
                install or "",
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            self._unavailable(f"mariadb-install-db failed: {result.stderr[-2000:]}")
        self.url = f"mysql+pymysql://root@127.0.0.1:{self.port}/jobsched_private"

    @staticmethod
    def _unavailable(reason: str) -> None:
        if os.environ.get("CI"):
            pytest.fail(f"a private MariaDB is required under CI=true: {reason}", pytrace=False)
        pytest.skip(reason)

    def start(self) -> None:
        command = [
            str(self.server),
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.root / 'sock'}",
            f"--pid-file={self.root / 'pid'}",
            f"--log-error={self.root / 'error.log'}",
            "--skip-grant-tables",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=64M",
        ]
        if os.geteuid() == 0:
            command.append("--user=root")
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        engine = sa.create_engine(f"mysql+pymysql://root@127.0.0.1:{self.port}/")

        def accepting() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                log = (self.root / "error.log").read_text(errors="replace")
                pytest.fail(f"the private MariaDB did not start:\n{log[-3000:]}", pytrace=False)
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql(
                        "CREATE DATABASE IF NOT EXISTS jobsched_private CHARACTER SET utf8mb4"
                    )
                return True
            except sa.exc.OperationalError:
                return False

        try:
            wait_until(accepting, 60, "the private MariaDB to accept connections", step=0.05)
        finally:
            engine.dispose()

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), waiting until the server has exited."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        self.proc = None


@pytest.fixture(scope="session")
def private_mariadb() -> Iterator[PrivateMariaDb]:
    """A running private MariaDB server (started once per test run, removed after)."""
    root = Path(tempfile.mkdtemp(prefix="jobsched-mariadb-"))
    try:
        server = PrivateMariaDb(root)
        server.start()
        yield server
        server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- long-running workers -----------------------------------------------------------------------

#: The app of the worker tests: the recorder's handlers, and isolated ones.
WORKER_APP = "faults.apps.worker_app"


class Worker(Runner):
    """One ``jobsched worker`` process (it runs until stopped), its output in files."""

    def __init__(
        self,
        url: str,
        args: Sequence[str],
        workdir: Path,
        name: str,
        *,
        app: str = WORKER_APP,
        verbose: bool = True,
        session: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        """``session``: in a session (and process group) of its own, as a terminal's foreground
        job is, so the test can signal the whole group (Ctrl-C) with ``os.killpg(pid, sig)``.
        ``env``: variables to add to its environment (see ``faults.apps.worker_app``)."""
        self.name = name
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")} | (env or {})
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH")) if p
        )
        command = [str(JOBSCHED), "--database-url", url, "--app", app]
        command += ["-v"] if verbose else []
        command += ["worker", *args]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=err, env=env, cwd=workdir, start_new_session=session
            )
        self.pid = self.proc.pid
        self.code = None
        self.peak_rss_kib = 0

    def alive(self) -> bool:
        """True while the process runs (a worker never ends on its own)."""
        return self.poll() is None

    def stop(self, sig: int = signal.SIGTERM, code: int = 0, timeout: float = 15) -> Worker:
        """Send ``sig`` and wait for the exit with ``code``."""
        assert self.alive(), f"{self.name} had already exited {self.code}:\n{self.stderr[-3000:]}"
        self.signal(sig)
        self.expect(code, timeout)
        return self

    def took(self) -> int:
        """Jobs taken, from the summary line ``jobsched worker: took N jobs (...)``."""
        match = re.search(r"^jobsched worker: took (\d+) jobs?\b", self.stdout, re.MULTILINE)
        assert match, f"{self.name} printed no summary line:\n{self.stdout[-2000:]}"
        return int(match.group(1))

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Like ``wait_until``, failing at once if the worker exits, and showing its log if
        ``what`` does not happen in time."""
        deadline = time.monotonic() + timeout
        while not (value := predicate()):
            if not self.alive():
                pytest.fail(
                    f"{self.name} exited {self.code} before {what}:\n{self.stderr[-3000:]}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"timed out after {timeout}s waiting for {what}; {self.name}'s stderr:\n"
                    f"{self.stderr[-3000:]}",
                    pytrace=False,
                )
            time.sleep(0.02)
        return value

    def wait_for_log(self, text: str, timeout: float = 15) -> str:
        """The first stderr line containing ``text`` (fails the test if none comes in time)."""

        def found() -> str | None:
            return next((ln for ln in self.stderr.splitlines() if text in ln), None)

        return str(self.wait_for(found, timeout, f"{self.name} to log {text!r}"))


def start_worker(
    fdb: FaultDb,
    *args: str | float,
    url: str | None = None,
    app: str = WORKER_APP,
    verbose: bool = True,
    session: bool = False,
    env: dict[str, str] | None = None,
) -> Worker:
    """Start ``jobsched worker ARGS`` on ``fdb``'s database (killed at the end of the test if it
    still runs)."""
    fdb._runners += 1
    worker = Worker(
        url or fdb.url,
        [str(a) for a in args],
        fdb.workdir,
        f"worker-{fdb._runners}",
        app=app,
        verbose=verbose,
        session=session,
        env=env,
    )
    fdb.started.append(worker)
    return worker


def started_by(fdb: FaultDb, runner: Runner) -> list[Run]:
    """The starts ``runner``'s handlers recorded in the ``runs`` table."""
    return [run for run in fdb.runs() if run.pid == runner.pid and run.phase == "start"]
