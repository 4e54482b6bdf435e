"""``jobsched runners`` end to end, as real processes: no runners, a registered runner with the
job it runs (made through the store API), stale runners and ``--all``, the ``--json`` shape,
exit codes, and a real ``jobsched run-due`` process seen while its job runs."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import storeops

from acceptance.test_cli import APPS, JOBSCHED, UNREACHABLE_URL, fails, ok, run
from jobsched import Scheduler
from jobsched.model import OpKind, Progress
from jobsched.presence import STALE_AFTER, Runner, jobsched_version
from jobsched.store.base import Op

HOST = socket.gethostname()
RUNNER_KEYS = {
    "name", "host", "pid", "kind", "version", "started_at", "heartbeat_at",
    "heartbeat_age_seconds", "concurrency", "stale", "jobs",
}  # fmt: skip
JOB_KEYS = {"job_id", "handler", "scheduled_start", "started_at", "progress"}


@pytest.fixture
def url(db_url: str) -> Iterator[str]:
    """A migrated database on each SQL backend with an empty runners table."""
    empty(db_url)
    yield db_url
    empty(db_url)


def empty(url: str) -> None:
    scheduler = Scheduler(url)
    try:
        for runner, _ in scheduler.store.list_runners(scheduler.now()):
            scheduler.store.remove_runner(runner.name)
    finally:
        scheduler.close()


def register(url: str, name: str, *, silent_for: timedelta = timedelta(seconds=2)) -> datetime:
    """Register runner ``name`` (a worker of concurrency 4) whose last heartbeat was
    ``silent_for`` ago; returns when it started."""
    scheduler = Scheduler(url)
    try:
        now = scheduler.now()
        started = now - timedelta(minutes=5)
        host, _, pid = name.rpartition(":")
        runner = Runner(name, host, int(pid), "worker", "9.9.9", started, now - silent_for, 4)
        scheduler.store.register_runner(runner)
        return started
    finally:
        scheduler.close()


def start_job(url: str, runner: str, job_id: str, handler: str) -> dict[str, datetime]:
    """Schedule ``job_id`` due a minute ago and mark it running on ``runner`` with progress
    3/10; returns its scheduled start and start."""
    scheduler = Scheduler(url)
    try:
        now = scheduler.now()
        scheduler.schedule_job(job_id, now - timedelta(minutes=1), handler, None)
        [claim] = storeops.claim(scheduler.store, now, runner=runner, lease=timedelta(hours=1))
        progress = Op(OpKind.PROGRESS, claim, progress=Progress(3, 10, "copying"))
        assert scheduler.store.apply([storeops.start(claim, now), progress]) == [True, True]
        return {"scheduled": claim.job.start, "started": now}
    finally:
        scheduler.close()


def runners_json(url: str, *args: str) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(ok(run("runners", "--json", *args, url=url)))
    return shown


def columns(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_runners_without_any_says_so_and_exits_0(url: str) -> None:
    result = run("runners", url=url)
    assert ok(result) == "no live runners\n"
    shown = runners_json(url)
    assert set(shown) == {"at", "stale_after_seconds", "runners"}
    assert (shown["runners"], shown["stale_after_seconds"]) == ([], STALE_AFTER.total_seconds())
    datetime.fromisoformat(shown["at"])


def test_runners_prints_a_live_runner_and_under_it_the_job_it_runs(url: str) -> None:
    started = register(url, "host-a:101")
    job = start_job(url, "host-a:101", "copy-1", "copier")
    result = run("runners", url=url)
    first, second = ok(result).splitlines()
    assert columns(first) == [
        "host-a:101",
        "worker",
        "version 9.9.9",
        f"started {started.isoformat()}",
        columns(first)[4],
        "concurrency 4",
        "running 1",
    ]
    assert re.fullmatch(r"heartbeat [2-9]s ago", columns(first)[4]), first
    assert second.startswith("  job copy-1")
    assert columns(second) == [
        "job copy-1",
        "copier",
        f"scheduled {job['scheduled'].isoformat()}",
        f"started {job['started'].isoformat()}",
        "progress 3/10 (30%) copying",
    ]
    assert result.stderr == "1 live runner(s)\n"


def test_runners_json_has_each_runner_and_its_jobs(url: str) -> None:
    started = register(url, "host-a:101")
    job = start_job(url, "host-a:101", "copy-1", "copier")
    [runner] = runners_json(url)["runners"]
    assert set(runner) == RUNNER_KEYS
    assert {k: runner[k] for k in RUNNER_KEYS - {"heartbeat_at", "heartbeat_age_seconds"}} == {
        "name": "host-a:101",
        "host": "host-a",
        "pid": 101,
        "kind": "worker",
        "version": "9.9.9",
        "started_at": started.isoformat(),
        "concurrency": 4,
        "stale": False,
        "jobs": [
            {
                "job_id": "copy-1",
                "handler": "copier",
                "scheduled_start": job["scheduled"].isoformat(),
                "started_at": job["started"].isoformat(),
                "progress": {"done": 3, "total": 10, "note": "copying"},
            }
        ],
    }
    assert set(runner["jobs"][0]) == JOB_KEYS
    assert 2 <= runner["heartbeat_age_seconds"] < 30


def test_a_stale_runner_is_listed_only_with_all_and_marked_so(url: str) -> None:
    register(url, "host-a:101", silent_for=STALE_AFTER + timedelta(minutes=4))
    register(url, "host-b:7")
    text = ok(run("runners", url=url))
    assert [columns(line)[0] for line in text.splitlines()] == ["host-b:7"]
    result = run("runners", "--all", url=url)
    lines = ok(result).splitlines()
    assert [columns(line)[0] for line in lines] == ["host-a:101", "host-b:7"]
    assert re.fullmatch(r"heartbeat 5m\d*s? ago \(stale: presumed dead\)", columns(lines[0])[4])
    assert result.stderr == "1 live runner(s), 1 stale\n"
    stale = [r["stale"] for r in runners_json(url, "--all")["runners"]]
    assert stale == [True, False]


def test_runners_with_all_and_none_says_no_runners(url: str) -> None:
    assert ok(run("runners", "--all", url=url)) == "no runners\n"


def test_runners_on_an_unreachable_database_exits_1() -> None:
    fails(run("runners", url=UNREACHABLE_URL), 1, "cannot be reached")
    fails(run("runners", "--json", url=UNREACHABLE_URL), 1, "cannot be reached")


def test_runners_on_a_database_at_revision_0002_exits_1_naming_migrate(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from jobsched.store.migrations import migrations_dir

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(migrations_dir()))
            config.attributes["connection"] = conn
            command.upgrade(config, "0002")
    finally:
        engine.dispose()
    fails(run("runners", url=url), 1, "revision 0002", "jobsched migrate")


def test_runners_refuses_a_memory_url_as_a_user_mistake() -> None:
    fails(run("runners", url="memory://"), 2, "in memory")


# -- a real run-due process ---------------------------------------------------------------------


def wait_until(check: Any, process: subprocess.Popen[str], what: str) -> Any:
    deadline = time.monotonic() + 20
    while True:
        found = check()
        if found:
            return found
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.05)


def test_runners_shows_a_run_due_process_and_the_job_it_is_running(
    url: str, tmp_path: Path
) -> None:
    started, gate = tmp_path / "started", tmp_path / "gate"
    scheduler = Scheduler(url)
    try:
        due = scheduler.now() - timedelta(seconds=1)
        scheduler.schedule_job("p", due, "progress", {"started": str(started), "gate": str(gate)})
    finally:
        scheduler.close()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
    argv = [str(JOBSCHED), "--database-url", url, "--app", "history_app", "run-due"]
    argv += ["--concurrency", "3"]
    process = subprocess.Popen(
        argv, cwd=APPS, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    name = f"{HOST}:{process.pid}"
    try:
        wait_until(started.exists, process, "the handler's start")

        def listed() -> dict[str, Any] | None:
            found = runners_json(url)["runners"]
            if found and found[0]["jobs"] and found[0]["jobs"][0]["progress"]:
                return found[0]  # type: ignore[no-any-return]
            return None

        runner = wait_until(listed, process, "the runner and its job's progress in the table")
        assert (runner["name"], runner["host"], runner["pid"]) == (name, HOST, process.pid)
        assert (runner["kind"], runner["concurrency"], runner["stale"]) == ("run-due", 3, False)
        assert runner["version"] == jobsched_version()
        [job] = runner["jobs"]
        assert (job["job_id"], job["handler"]) == ("p", "progress")
        assert job["scheduled_start"] == due.isoformat()
        assert job["progress"] == {"done": 3, "total": 10, "note": "copying"}
        text = ok(run("runners", url=url)).splitlines()
        assert [columns(line)[:2] for line in text] == [[name, "run-due"], ["job p", "progress"]]
    finally:
        gate.touch()
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert ok(run("runners", "--all", url=url)) == "no runners\n"  # removed on a clean exit
