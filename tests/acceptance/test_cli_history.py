"""The history commands end to end, as real processes: ``show`` (status, progress, last run),
``history``, ``failed``, ``retry``, ``prune``, ``stats``, and ``run-due --metrics-file`` /
``--log-format json``.

Most tests make their history in this process (a pass through the API, with handlers like those
of ``apps/history_app.py``) and run only the command under test as a process; the key paths run
the pass as a ``jobsched run-due`` process too, on SQLite and MariaDB.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from acceptance.test_cli import (
    APPS,
    FUTURE,
    JOBSCHED,
    SUMMARY,
    UNREACHABLE_URL,
    fails,
    ok,
    run,
)
from jobsched import Job, Scheduler
from jobsched.handlers import Registry

HOST = socket.gethostname()
#: The fields of a history row in JSON (``history --json``, ``failed --json``, ``last_run``).
RUN_KEYS = {
    "run_id", "job_id", "handler", "outcome", "attempt", "max_attempts", "runner",
    "scheduled_start", "started_at", "finished_at", "duration_seconds", "error", "data",
    "data_recorded", "superseded", "retried_at",
}  # fmt: skip
#: ``show --json``'s fields of an existing job before history (``list --json`` has these).
JOB_KEYS = {
    "job_id", "handler", "data", "start", "expiry", "attempts", "max_attempts",
    "created_at", "last_error", "state", "claimed_by", "claimed_until", "started_at",
}  # fmt: skip


def _boom(job: Job) -> None:
    raise RuntimeError(f"boom in {job.job_id}")


def _other_boom(job: Job) -> None:
    raise RuntimeError(f"other boom in {job.job_id}")


def _moved(job: Job) -> None:
    """Moves its own job an hour later while it runs (through the database ``job.data``), so
    the newer state wins and its outcome is not written to the job."""
    other = Scheduler(str(job.data))
    try:
        later = job.start + timedelta(hours=1)
        other.update_job(
            job.job_id, lambda j: (None if j is None else replace(j, start=later), None)
        )
    finally:
        other.close()


#: The handlers of ``apps/history_app.py`` (and ``moved``), for passes run in this process.
REGISTRY = Registry()
REGISTRY.register("ok", lambda job: None)
REGISTRY.register("boom", _boom)
REGISTRY.register("other_boom", _other_boom)
REGISTRY.register("moved", _moved)

#: (job id, handler, data, max_attempts): a pass over them, in this order, leaves a succeeded
#: run (a), two failed ones (f1, f2) and a retried one (g, still scheduled an hour later).
FOUR_JOBS = [
    ("a", "ok", {"n": 0}, 3),
    ("f1", "boom", {"n": 1}, 1),
    ("f2", "other_boom", {"n": 2}, 1),
    ("g", "boom", {"n": 3}, 2),
]


def schedule(url: str, jobs: list[tuple[str, str, Any, int]]) -> None:
    """Schedule ``jobs`` due now, one second apart in their order (a pass takes them so)."""
    scheduler = Scheduler(url)
    try:
        now = scheduler.now()
        for i, (job_id, handler, data, max_attempts) in enumerate(jobs):
            start = now - timedelta(seconds=len(jobs) - i)
            scheduler.schedule_job(job_id, start, handler, data, max_attempts=max_attempts)
    finally:
        scheduler.close()


def run_pass_here(url: str) -> None:
    """One pass in this process (its runner is this process)."""
    scheduler = Scheduler(url, registry=REGISTRY)
    try:
        scheduler.run_due_jobs()
    finally:
        scheduler.close()


def run_pass(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``jobsched --app history_app run-due ARGS``, which must exit 0."""
    result = run("--app", "history_app", "run-due", *args, url=url)
    assert result.returncode == 0, result.stderr
    return result


def seed(url: str, jobs: list[tuple[str, str, Any, int]] = FOUR_JOBS) -> None:
    schedule(url, jobs)
    run_pass_here(url)


def show_json(url: str, job_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(ok(run("show", job_id, "--json", url=url)))
    return shown


def history_json(url: str, *args: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = json.loads(ok(run("history", "--json", *args, url=url)))
    return runs


def failed_ids(url: str, *args: str) -> list[str]:
    return [r["job_id"] for r in json.loads(ok(run("failed", "--json", *args, url=url)))]


def columns(line: str) -> list[str]:
    """A table line's cells (cells are separated by two spaces or more)."""
    return re.split(r"\s{2,}", line.strip())


@pytest.fixture
def db(sqlite_url: str) -> str:
    """A migrated SQLite database of this test's own."""
    return sqlite_url


@pytest.fixture
def url(db_url: str) -> str:
    """An empty, migrated database on each SQL backend (SQLite, MariaDB)."""
    return db_url


@pytest.fixture
def seeded(db: str) -> str:
    """``db`` after a pass over ``FOUR_JOBS`` in this process."""
    seed(db)
    return db


# -- show ---------------------------------------------------------------------------------------


def test_show_prints_the_last_run_of_a_finished_job_and_exits_0(url: str) -> None:
    schedule(url, [("f", "boom", {"order": 7}, 1)])
    run_pass(url)
    text = ok(run("show", "f", url=url))
    lines = text.splitlines()
    assert lines[0] == "job f"
    assert "  status:     finished: its row is gone; its last run in the history" in lines
    assert "  handler:    boom" in lines
    assert "  outcome:    failed" in lines
    assert "  attempt:    1 of 1" in lines
    [runner_line] = [line for line in lines if line.startswith("  runner:")]
    assert re.fullmatch(rf"  runner:     {re.escape(HOST)}:\d+", runner_line)
    assert "  error:      RuntimeError: boom in f" in lines
    assert '  data:       {"order": 7}' in lines
    assert "  retried:    no (jobsched retry f)" in lines
    started = datetime.fromisoformat(_value(lines, "started"))
    finished = datetime.fromisoformat(_value(lines, "finished"))
    assert started <= finished


def _value(lines: list[str], label: str) -> str:
    [line] = [line for line in lines if line.startswith(f"  {label}:")]
    return line.split(":", 1)[1].strip()


def test_show_json_of_a_finished_job_gives_its_status_and_last_run(db: str) -> None:
    schedule(db, [("f", "boom", [1, "two"], 1)])
    run_pass(db)
    shown = show_json(db, "f")
    assert set(shown) == {"job_id", "status", "progress", "last_run"}
    assert (shown["job_id"], shown["status"], shown["progress"]) == ("f", "finished", None)
    last = shown["last_run"]
    assert set(last) == RUN_KEYS
    assert (last["job_id"], last["handler"], last["outcome"]) == ("f", "boom", "failed")
    assert (last["attempt"], last["max_attempts"]) == (1, 1)
    assert last["runner"].startswith(f"{HOST}:")
    assert last["error"] == "RuntimeError: boom in f"
    assert (last["data"], last["data_recorded"]) == ([1, "two"], True)
    assert (last["superseded"], last["retried_at"]) == (False, None)
    started = datetime.fromisoformat(last["started_at"])
    finished = datetime.fromisoformat(last["finished_at"])
    assert started <= finished
    assert last["duration_seconds"] == pytest.approx((finished - started).total_seconds())


def test_show_prints_the_status_and_last_run_of_an_existing_job(seeded: str) -> None:
    lines = ok(run("show", "g", url=seeded)).splitlines()
    assert lines[0] == "job g"
    assert "  attempts:   1 of 2" in lines
    assert "  status:     scheduled" in lines
    last = _value(lines, "last run")
    match = re.fullmatch(
        rf"retried at (\S+) \(attempt 1 of 2 on {re.escape(HOST)}:{os.getpid()}\): "
        r"RuntimeError: boom in g",
        last,
    )
    assert match, last
    datetime.fromisoformat(match[1])


def test_show_of_a_job_not_run_yet_says_its_status_and_no_last_run(db: str) -> None:
    ok(run("schedule", "s", "ok", "--at", FUTURE, url=db))
    lines = ok(run("show", "s", url=db)).splitlines()
    assert "  status:     scheduled" in lines
    assert not [line for line in lines if line.startswith("  last run:")]


def test_show_json_of_an_existing_job_adds_status_progress_and_last_run(seeded: str) -> None:
    shown = show_json(seeded, "g")
    assert set(shown) == JOB_KEYS | {"status", "progress", "last_run"}
    assert (shown["job_id"], shown["state"], shown["attempts"]) == ("g", "scheduled", 1)
    assert (shown["status"], shown["progress"]) == ("scheduled", None)
    assert shown["last_run"]["outcome"] == "retried"
    assert shown["last_run"]["runner"] == f"{HOST}:{os.getpid()}"
    [listed] = json.loads(ok(run("list", "--json", url=seeded)))
    assert {key: shown[key] for key in JOB_KEYS} == listed


def test_show_of_an_id_neither_table_knows_exits_2(seeded: str) -> None:
    fails(run("show", "ghost", url=seeded), 2, "no job 'ghost'")


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_show_prints_the_runner_start_and_progress_of_a_running_job(
    url: str, tmp_path: Path
) -> None:
    started, gate = tmp_path / "started", tmp_path / "gate"
    schedule(url, [("p", "progress", {"started": str(started), "gate": str(gate)}, 3)])
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
    argv = [str(JOBSCHED), "--database-url", url, "--app", "history_app", "run-due"]
    runner = subprocess.Popen(
        argv, cwd=APPS, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(started, runner)
        scheduler = Scheduler(url)
        try:
            deadline = time.monotonic() + 10
            while scheduler.status("p").progress is None:
                assert time.monotonic() < deadline, "the progress never reached the table"
                time.sleep(0.05)
        finally:
            scheduler.close()
        shown = show_json(url, "p")
        assert shown["status"] == "running"
        assert shown["progress"] == {"done": 3, "total": 10, "note": "copying"}
        assert shown["claimed_by"] == f"{HOST}:{runner.pid}"
        assert shown["last_run"] is None
        text = ok(run("show", "p", url=url))
        status = f"running on {HOST}:{runner.pid} since {shown['started_at']}"
        assert f"  status:     {status}, progress 3/10 (30%) copying" in text.splitlines()
    finally:
        gate.touch()
        _, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    assert show_json(url, "p")["last_run"]["outcome"] == "succeeded"


# -- history ------------------------------------------------------------------------------------


def test_history_lists_every_run_newest_first(url: str) -> None:
    schedule(url, FOUR_JOBS)
    runner = run_pass(url)
    assert "took 4 jobs" in runner.stdout
    lines = ok(run("history", url=url)).splitlines()
    rows = [columns(line) for line in lines]
    assert [row[1] for row in rows] == ["g", "f2", "f1", "a"]
    assert [row[3] for row in rows] == ["retried", "failed", "failed", "succeeded"]
    assert [row[4] for row in rows] == ["attempt 1/2", "attempt 1/1", "attempt 1/1", "attempt 1/3"]
    assert {row[5] for row in rows} == {row[5] for row in rows[:1]}
    assert rows[0][5].startswith(f"{HOST}:")
    assert rows[0][7] == "error: RuntimeError: boom in g"
    assert rows[1][7] == "error: RuntimeError: other boom in f2"
    assert len(rows[3]) == 7  # succeeded: no error
    finished = [datetime.fromisoformat(row[0]) for row in rows]
    assert finished == sorted(finished, reverse=True)
    # Aligned: each column starts at the same place on every line.
    for cell in (1, 3, 4):
        assert len({line.index(row[cell]) for line, row in zip(lines, rows, strict=True)}) == 1


def test_history_of_one_job_lists_only_its_runs(seeded: str) -> None:
    ok(run("reschedule", "g", "--in", "0s", url=seeded))
    run_pass_here(seeded)
    rows = [columns(line) for line in ok(run("history", "g", url=seeded)).splitlines()]
    assert [(row[1], row[3], row[4]) for row in rows] == [
        ("g", "failed", "attempt 2/2"),
        ("g", "retried", "attempt 1/2"),
    ]


def test_history_filters_by_handler_outcome_and_since(seeded: str) -> None:
    def ids(*args: str) -> list[str]:
        return [r["job_id"] for r in history_json(seeded, *args)]

    assert ids("--handler", "boom") == ["g", "f1"]
    assert ids("--outcome", "failed") == ["f2", "f1"]
    assert ids("--handler", "boom", "--outcome", "failed") == ["f1"]
    assert ids("--since", "1h") == ["g", "f2", "f1", "a"]
    assert ids("--since", FUTURE) == []


def test_history_limit_takes_the_newest_runs(seeded: str) -> None:
    assert [r["job_id"] for r in history_json(seeded, "--limit", "2")] == ["g", "f2"]


def test_history_json_prints_an_array_of_runs(seeded: str) -> None:
    runs = history_json(seeded)
    assert [set(r) for r in runs] == [RUN_KEYS] * 4
    by_id = {r["job_id"]: r for r in runs}
    assert by_id["f1"]["data"] == {"n": 1}
    assert by_id["a"]["data"] == {"n": 0}
    # A retried run keeps no payload (its job still has it).
    assert (by_id["g"]["data"], by_id["g"]["data_recorded"]) == (None, False)
    assert by_id["a"]["error"] is None
    assert all(r["duration_seconds"] >= 0 for r in runs)


def test_history_of_a_job_expired_without_running_has_no_start_or_duration(db: str) -> None:
    ok(run("schedule", "x", "ok", "--at", "2020-01-01T00:00:00Z", "--expiry", "1s", url=db))
    run_pass_here(db)
    [line] = ok(run("history", url=db)).splitlines()
    row = columns(line)
    assert (row[1], row[3], row[6]) == ("x", "expired", "-")
    [expired] = history_json(db)
    assert (expired["started_at"], expired["duration_seconds"]) == (None, None)
    assert "- (not run)" in ok(run("show", "x", url=db))


def test_history_and_show_mark_a_run_whose_outcome_a_newer_state_superseded(db: str) -> None:
    schedule(db, [("m", "moved", db, 3)])
    run_pass_here(db)
    [line] = ok(run("history", url=db)).splitlines()
    row = columns(line)
    assert (row[1], row[3], row[7]) == ("m", "succeeded", "superseded")
    [superseded] = history_json(db)
    assert superseded["superseded"] is True
    last = _value(ok(run("show", "m", url=db)).splitlines(), "last run")
    assert last.startswith("succeeded at ") and last.endswith(", superseded")


def test_history_of_an_empty_table_prints_nothing(db: str) -> None:
    result = run("history", url=db)
    assert ok(result) == ""
    assert result.stderr == "0 run(s)\n"
    assert history_json(db) == []


# -- failed -------------------------------------------------------------------------------------


def test_failed_lists_the_failed_jobs_not_yet_retried_with_error_and_data(url: str) -> None:
    schedule(url, FOUR_JOBS)
    run_pass(url)
    lines = ok(run("failed", url=url)).splitlines()
    rows = [columns(line) for line in lines]
    assert [row[1] for row in rows] == ["f2", "f1"]
    assert rows[0][2:4] == ["other_boom", "attempt 1/1"]
    assert rows[0][4].startswith(f"{HOST}:")
    assert rows[0][5:] == ["error: RuntimeError: other boom in f2", 'data: {"n": 2}']
    assert rows[1][5:] == ["error: RuntimeError: boom in f1", 'data: {"n": 1}']
    ok(run("retry", "f1", url=url))
    assert failed_ids(url) == ["f2"]


def test_failed_json_prints_an_array_of_runs(seeded: str) -> None:
    runs = json.loads(ok(run("failed", "--json", url=seeded)))
    assert [set(r) for r in runs] == [RUN_KEYS] * 2
    assert [(r["job_id"], r["outcome"], r["data"]) for r in runs] == [
        ("f2", "failed", {"n": 2}),
        ("f1", "failed", {"n": 1}),
    ]


def test_failed_filters_by_handler_and_since(seeded: str) -> None:
    assert failed_ids(seeded, "--handler", "boom") == ["f1"]
    assert failed_ids(seeded, "--since", "1h") == ["f2", "f1"]
    assert failed_ids(seeded, "--since", FUTURE) == []


# -- retry --------------------------------------------------------------------------------------


def test_retry_schedules_a_failed_job_again_from_its_history(url: str) -> None:
    schedule(url, [("f", "boom", {"order": 7}, 1)])
    run_pass(url)
    lines = ok(run("retry", "f", url=url)).splitlines()
    assert lines[0] == "job f"
    assert "  attempts:   0 of 1" in lines
    job = show_json(url, "f")
    assert (job["handler"], job["data"], job["attempts"], job["max_attempts"]) == (
        "boom",
        {"order": 7},
        0,
        1,
    )
    assert (job["status"], job["expiry"], job["last_error"]) == ("due", None, None)
    failed = job["last_run"]
    assert (failed["outcome"], failed["data"]) == ("failed", {"order": 7})
    assert failed["retried_at"] is not None
    assert datetime.fromisoformat(job["start"]) >= datetime.fromisoformat(failed["finished_at"])
    assert failed_ids(url) == []


def test_retry_at_a_time_and_with_an_expiry_after_it(seeded: str) -> None:
    ok(run("retry", "f1", "--at", FUTURE, "--expiry", "1h", url=seeded))
    job = show_json(seeded, "f1")
    assert (job["start"], job["expiry"]) == (
        "2099-01-01T00:00:00+00:00",
        "2099-01-01T01:00:00+00:00",
    )
    assert job["status"] == "scheduled"


def test_retry_in_a_duration_starts_that_long_from_now(seeded: str) -> None:
    before = datetime.now().astimezone()
    ok(run("retry", "f1", "--in", "2h", url=seeded))
    start = datetime.fromisoformat(show_json(seeded, "f1")["start"])
    assert before + timedelta(hours=2) <= start <= before + timedelta(hours=2, minutes=1)


def test_retry_of_a_job_that_exists_again_exits_2_and_writes_nothing(seeded: str) -> None:
    ok(run("schedule", "f1", "ok", "--at", FUTURE, url=seeded))
    before = show_json(seeded, "f1")
    line = fails(run("retry", "f1", url=seeded), 2, "f1", "exists", "nothing was written")
    assert "Traceback" not in line
    assert show_json(seeded, "f1") == before


@pytest.mark.parametrize("job_id", ["a", "ghost", "retried-already"])
def test_retry_of_a_job_with_no_failed_run_waiting_exits_2(seeded: str, job_id: str) -> None:
    if job_id == "retried-already":
        job_id = "f1"
        ok(run("retry", "f1", url=seeded))
        ok(run("remove", "f1", url=seeded))
    fails(run("retry", job_id, url=seeded), 2, repr(job_id), "no failed run")


def test_retry_failed_retries_every_failed_job_and_names_those_skipped(url: str) -> None:
    seed(url)
    schedule(url, [("f2", "ok", None, 3)])  # the id exists again
    lines = ok(run("retry", "--failed", url=url)).splitlines()
    rows = [columns(line) for line in lines[:-1]]
    assert [row[:3] for row in rows] == [
        ["scheduled", "f1", "boom"],
        ["skipped", "f2", "a job with this id exists again"],
    ]
    assert lines[-1] == "retried 1 failed job(s), skipped 1"
    assert show_json(url, "f1")["status"] == "due"
    assert show_json(url, "f2")["handler"] == "ok"


def test_retry_failed_takes_only_the_jobs_its_handler_and_since_name(seeded: str) -> None:
    out = ok(run("retry", "--failed", "--since", FUTURE, url=seeded))
    assert out == "retried 0 failed job(s), skipped 0\n"
    out = ok(run("retry", "--failed", "--handler", "other_boom", url=seeded))
    assert [columns(line)[:2] for line in out.splitlines()[:-1]] == [["scheduled", "f2"]]
    assert failed_ids(seeded) == ["f1"]


# -- prune --------------------------------------------------------------------------------------


def test_prune_keeps_the_history_younger_than_the_retention(seeded: str) -> None:
    out = ok(run("prune", url=seeded))
    assert out == (
        "jobsched prune: deleted 0 history row(s) older than the retention (14d; failed runs 30d)\n"
    )
    assert len(history_json(seeded)) == 4


def test_prune_older_than_deletes_every_older_row_failed_runs_included(seeded: str) -> None:
    out = ok(run("prune", "--older-than", "0s", url=seeded))
    assert out == "jobsched prune: deleted 4 history row(s) older than 0s\n"
    assert history_json(seeded) == []
    assert failed_ids(seeded) == []


# -- stats --------------------------------------------------------------------------------------


def stats_jobs(url: str) -> None:
    """FOUR_JOBS run; a job of a handler nobody runs, due five minutes ago; one to come."""
    seed(url)
    scheduler = Scheduler(url)
    try:
        now = scheduler.now()
        scheduler.schedule_job("late", now - timedelta(minutes=5), "elsewhere")
        scheduler.schedule_job("later", now + timedelta(hours=1), "ok")
    finally:
        scheduler.close()


def test_stats_prints_a_row_per_handler_and_the_oldest_lateness(url: str) -> None:
    stats_jobs(url)
    lines = ok(run("stats", url=url)).splitlines()
    assert lines[0].startswith("jobsched stats at ")
    datetime.fromisoformat(lines[0].removeprefix("jobsched stats at "))
    header = columns(lines[1])
    assert header == [
        "handler", "scheduled", "due", "running", "deferred", "lateness", "p50", "p95",
        "last hour", "last day",
    ]  # fmt: skip
    rows = {columns(line)[0]: dict(zip(header, columns(line), strict=True)) for line in lines[2:-1]}
    assert set(rows) == {"boom", "elsewhere", "ok", "other_boom"}
    assert rows["boom"]["scheduled"] == "1"  # g, retried an hour later
    assert rows["boom"]["last hour"] == "1 retried, 1 failed"
    assert rows["boom"]["last day"] == "1 retried, 1 failed"
    assert rows["ok"]["scheduled"] == "1"
    assert rows["ok"]["last hour"] == "1 succeeded"
    assert rows["ok"]["p50"].endswith("s") and rows["ok"]["p95"] != "-"
    assert rows["elsewhere"]["due"] == "1"
    assert re.fullmatch(r"5m(\d+s)?", rows["elsewhere"]["lateness"])  # 5m, or 5m1s if slow
    assert (rows["elsewhere"]["p50"], rows["elsewhere"]["last day"]) == ("-", "-")
    assert re.fullmatch(r"oldest due job: 5m(\d+s)? late \(1 due\)", lines[-1])


def test_stats_json_prints_an_object(db: str) -> None:
    stats_jobs(db)
    stats = json.loads(ok(run("stats", "--json", url=db)))
    assert set(stats) == {"at", "due", "lateness_seconds", "handlers"}
    assert stats["due"] == 1
    assert 300 <= stats["lateness_seconds"] < 360
    by_name = {h["handler"]: h for h in stats["handlers"]}
    assert list(by_name) == ["boom", "elsewhere", "ok", "other_boom"]
    assert set(by_name["boom"]) == {
        "handler", "scheduled", "due", "running", "deferred", "lateness_seconds",
        "last_hour", "last_day", "p50_seconds", "p95_seconds",
    }  # fmt: skip
    assert by_name["boom"]["last_hour"] == {"retried": 1, "failed": 1}
    assert by_name["other_boom"]["last_day"] == {"failed": 1}
    assert by_name["ok"]["p50_seconds"] >= 0
    assert by_name["elsewhere"]["p50_seconds"] is None
    assert by_name["elsewhere"]["lateness_seconds"] == stats["lateness_seconds"]


def test_stats_with_no_jobs_and_no_history_says_so(db: str) -> None:
    lines = ok(run("stats", url=db)).splitlines()
    assert lines[1:] == ["no jobs, and no runs in the last day", "no job is due"]


# -- run-due: metrics and JSON logs ---------------------------------------------------------------


def test_run_due_writes_the_metrics_file_after_the_pass(db: str, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    schedule(db, [("a", "ok", None, 3), ("f", "boom", None, 1)])
    path = tmp_path / "jobsched.prom"
    out = run_pass(db, "--metrics-file", str(path)).stdout
    assert SUMMARY.match(out.strip()), out
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(path.read_text())
        for sample in family.samples
    }
    finished = "jobsched_jobs_finished_total"
    assert samples[(finished, (("handler", "ok"), ("outcome", "succeeded")))] == 1
    assert samples[(finished, (("handler", "boom"), ("outcome", "failed")))] == 1
    assert samples[("jobsched_passes_total", ())] == 1
    assert samples[("jobsched_due_jobs", ())] == 0


def test_run_due_metrics_file_without_prometheus_client_exits_2_before_any_job_runs(
    db: str, tmp_path: Path
) -> None:
    fake = tmp_path / "site" / "prometheus_client"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("prometheus_client hidden by the test")\n')
    schedule(db, [("a", "ok", None, 3)])
    result = run(
        "--app",
        "history_app",
        "run-due",
        "--metrics-file",
        str(tmp_path / "m.prom"),
        url=db,
        env={"PYTHONPATH": str(tmp_path / "site")},
    )
    fails(result, 2, "prometheus_client", "jobsched[metrics]")
    assert show_json(db, "a")["status"] == "due"
    assert not (tmp_path / "m.prom").exists()


def test_run_due_log_format_json_logs_one_json_object_a_line(db: str) -> None:
    schedule(db, [("a", "ok", None, 3), ("f", "boom", {"k": 1}, 1)])
    result = run_pass(db, "--log-format", "json")
    assert SUMMARY.match(result.stdout.strip()), result.stdout
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert entries
    assert all({"time", "level", "message"} <= set(entry) for entry in entries)
    [failure] = [entry for entry in entries if entry.get("job_id") == "f"]
    assert (failure["level"], failure["handler"], failure["outcome"]) == ("ERROR", "boom", "failed")
    assert "boom in f" in failure["error"]


def test_run_due_verbose_log_format_json_logs_every_outcome(db: str) -> None:
    schedule(db, [("a", "ok", None, 3)])
    result = run("-v", "--app", "history_app", "run-due", "--log-format", "json", url=db)
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    [done] = [entry for entry in entries if entry.get("job_id") == "a"]
    assert (done["level"], done["outcome"]) == ("INFO", "succeeded")


# -- mistakes and failures ------------------------------------------------------------------------

MISTAKES = {
    "outcome-released": (["history", "--outcome", "released"], "--outcome"),
    "since-without-a-zone": (["history", "--since", "2026-01-05T09:00:00"], "time zone"),
    "retry-nothing": (["retry"], "exactly one of JOB_ID and --failed"),
    "retry-both": (["retry", "x", "--failed"], "exactly one of JOB_ID and --failed"),
    "retry-id-with-handler": (["retry", "x", "--handler", "boom"], "--handler"),
    "retry-id-with-since": (["retry", "x", "--since", "1h"], "--since"),
    "retry-at-and-in": (["retry", "x", "--at", FUTURE, "--in", "1h"], "--at"),
    "prune-bad-duration": (["prune", "--older-than", "a while"], "--older-than"),
    "log-format-unknown": (["run-due", "--log-format", "xml"], "--log-format"),
    "metrics-file-in-a-missing-directory": (
        ["run-due", "--metrics-file", "/no/such/dir/jobsched.prom"],
        "/no/such/dir",
    ),
}


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_a_mistake_exits_2_before_the_database_is_touched(case: str) -> None:
    args, word = MISTAKES[case]
    fails(run("--app", "history_app", *args, url=UNREACHABLE_URL), 2, word)


@pytest.mark.parametrize(
    "args",
    [
        ["history"],
        ["failed"],
        ["retry", "x"],
        ["prune"],
        ["stats"],
    ],
    ids=" ".join,
)
def test_an_unreachable_database_exits_1(args: list[str]) -> None:
    fails(run(*args, url=UNREACHABLE_URL), 1, "127.0.0.1")


def test_on_a_database_of_the_previous_revision_the_history_commands_ask_for_migrate(
    tmp_path: Path,
) -> None:
    from alembic import command
    from alembic.config import Config

    from jobsched.store.migrations import migrations_dir

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")  # the jobs table, no job_runs
    engine.dispose()
    for args in (["history"], ["stats"], ["show", "x"]):
        fails(run(*args, url=url), 1, "jobsched migrate")
    assert "upgraded the schema" in ok(run("migrate", url=url))
    assert ok(run("history", url=url)) == ""
