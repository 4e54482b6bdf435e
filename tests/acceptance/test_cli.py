"""The ``jobsched`` command end to end, as real processes.

Exit codes: 0 the command did its work (a pass whose jobs failed included); 1 the environment
failed (database unreachable, schema missing, app module not importable); 2 a user mistake.
Errors are one line on stderr, never a traceback, and arguments are checked before the database
is touched.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

JOBSCHED = Path(sys.executable).parent / "jobsched"
APPS = Path(__file__).parent / "apps"
#: Nothing listens on port 1: connecting fails at once.
UNREACHABLE_URL = "mysql+pymysql://root@127.0.0.1:1/x"
PAST = "2020-01-01T00:00:00Z"
FUTURE = "2099-01-01T00:00:00Z"
SUMMARY = re.compile(
    r"^jobsched run-due: took (?P<taken>\d+) jobs?(?: \((?P<counts>[a-z0-9, ]+)\))?: "
    r"ran (?P<ran>\d+)(?P<not_run>(?:, \d+ [a-z]+ without running)*)"
    r"(?:; (?P<notes>[a-z0-9, ()]+))? in \d+\.\d\ds$"
)


def run(
    *args: str,
    url: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``jobsched [--database-url URL] ARGS`` with a clean jobsched environment."""
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_") and k != "PYTHONPATH"
    }
    environ.update(env or {})
    argv = [str(JOBSCHED)] + (["--database-url", url] if url else []) + list(args)
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=cwd or APPS, env=environ, timeout=120, input=stdin
    )


def ok(result: subprocess.CompletedProcess[str], *, handler_failed: bool = False) -> str:
    """Check a successful exit. Only a failing handler's own traceback may be logged."""
    assert result.returncode == 0, result.stderr
    if handler_failed:
        assert "Traceback" in result.stderr
        assert str(APPS / "cli_app.py") in result.stderr
    else:
        assert "Traceback" not in result.stderr
    return result.stdout


def fails(result: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """Check an error exit: the code, one line on stderr naming ``words``, no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    [line] = lines
    assert line.startswith("jobsched: error: "), line
    for word in words:
        assert word.lower() in line.lower(), line
    return line


def show(url: str, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = json.loads(ok(run("show", job_id, "--json", url=url)))
    return job


def without_history(job: dict[str, Any]) -> dict[str, Any]:
    """``show --json`` of an existing job less what only ``show`` has (status, progress and
    last run): ``list --json`` has exactly the rest."""
    return {k: v for k, v in job.items() if k not in ("status", "progress", "last_run")}


def summary(stdout: str) -> tuple[int, dict[str, int]]:
    """``(ran, {outcome: count})`` from run-due's summary line, checking that it adds up: the
    jobs taken are the sum of their outcomes, and those that ran plus those that did not."""
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout
    match = SUMMARY.match(lines[0])
    assert match, lines[0]
    counts = {}
    for part in (match["counts"] or "").split(", "):
        if part:
            name, number = part.split()
            counts[name] = int(number)
    taken, ran = int(match["taken"]), int(match["ran"])
    assert taken == sum(counts.values()), lines[0]
    not_run = [int(n) for n in re.findall(r", (\d+) [a-z]+ without running", match["not_run"])]
    assert taken == ran + sum(not_run), lines[0]
    for name, number in re.findall(r"([a-z]+) (\d+) \(", match["notes"] or ""):
        counts[name] = int(number)
    return ran, counts


@pytest.fixture
def db(sqlite_url: str) -> str:
    """A migrated SQLite database of this test's own."""
    return sqlite_url


# -- migrate ------------------------------------------------------------------------------------


def test_migrate_creates_the_schema_and_can_run_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert "created the schema" in ok(run("migrate", url=url))
    again = ok(run("migrate", url=url))
    assert "schema is current" in again
    assert "nothing to do" in again
    assert ok(run("list", url=url)) == ""


def test_migrate_on_mariadb(mysql_url: str) -> None:
    ok(run("migrate", url=mysql_url))
    ok(run("schedule", "m1", "ok", "--at", FUTURE, url=mysql_url))
    ok(run("migrate", url=mysql_url))
    assert show(mysql_url, "m1")["job_id"] == "m1"


def test_without_a_url_the_default_is_jobsched_db_in_the_current_directory(
    tmp_path: Path,
) -> None:
    ok(run("migrate", cwd=tmp_path))
    assert (tmp_path / "jobsched.db").exists()
    ok(run("schedule", "d1", "ok", "--in", "1h", cwd=tmp_path))
    assert json.loads(ok(run("show", "d1", "--json", cwd=tmp_path)))["job_id"] == "d1"


def test_the_database_url_comes_from_the_environment(db: str, tmp_path: Path) -> None:
    ok(run("schedule", "e1", "ok", "--in", "1h", cwd=tmp_path, env={"JOBSCHED_DATABASE_URL": db}))
    assert show(db, "e1")["handler"] == "ok"
    assert not (tmp_path / "jobsched.db").exists()


# -- schedule -----------------------------------------------------------------------------------


def test_schedule_at_a_utc_time_prints_the_job(db_url: str) -> None:
    out = ok(run("schedule", "s1", "ok", "--at", "2026-11-23T09:00:00Z", url=db_url))
    assert "s1" in out
    assert "2026-11-23T09:00:00+00:00" in out
    job = show(db_url, "s1")
    assert job["start"] == "2026-11-23T09:00:00+00:00"
    assert job["handler"] == "ok"
    assert job["data"] is None
    assert job["attempts"] == 0
    assert job["max_attempts"] == 3


def test_schedule_at_a_time_with_an_offset_stores_it_in_utc(db_url: str) -> None:
    ok(run("schedule", "s2", "ok", "--at", "2026-11-23T09:00:00.250000+01:00", url=db_url))
    assert show(db_url, "s2")["start"] == "2026-11-23T08:00:00.250000+00:00"


def test_schedule_in_a_duration_starts_that_long_from_now(db: str) -> None:
    before = datetime.now(UTC)
    ok(run("schedule", "s3", "ok", "--in", "2h", url=db))
    after = datetime.now(UTC)
    start = datetime.fromisoformat(show(db, "s3")["start"])
    assert before + timedelta(hours=2) <= start <= after + timedelta(hours=2)


def test_schedule_with_data_expiry_and_max_attempts(db_url: str) -> None:
    data = {"email": "ada@example.com", "tags": ["é", "🎉"], "n": 1.5, "ok": True}
    ok(
        run(
            "schedule", "s4", "ok",
            "--at", "2026-11-23T09:00:00Z",
            "--data", json.dumps(data, ensure_ascii=False),
            "--expiry", "2026-11-23T10:30:00+01:00",
            "--max-attempts", "5",
            url=db_url,
        )
    )  # fmt: skip
    job = show(db_url, "s4")
    assert job["data"] == data
    assert job["expiry"] == "2026-11-23T09:30:00+00:00"
    assert job["max_attempts"] == 5


def test_an_expiry_duration_counts_from_the_start(db: str) -> None:
    ok(run("schedule", "s7", "ok", "--at", "2099-11-24T09:00:00+01:00", "--expiry", "30m", url=db))
    assert show(db, "s7")["expiry"] == "2099-11-24T08:30:00+00:00"


def test_schedule_mode_new_refuses_an_existing_id(db: str) -> None:
    ok(run("schedule", "s5", "ok", "--at", FUTURE, url=db))
    fails(run("schedule", "s5", "ok", "--at", PAST, url=db), 2, "s5")
    fails(run("schedule", "s5", "ok", "--at", PAST, "--mode", "new", url=db), 2, "s5")
    assert show(db, "s5")["start"] == "2099-01-01T00:00:00+00:00"


def test_the_duplicate_id_message_spells_the_modes_as_the_cli_takes_them(db: str) -> None:
    ok(run("schedule", "s5", "ok", "--at", FUTURE, url=db))
    line = fails(run("schedule", "s5", "ok", "--at", PAST, url=db), 2, "s5", "exists")
    assert "--mode ignore-if-exists" in line
    assert "--mode reschedule" in line
    assert "IGNORE_IF_EXISTS" not in line
    assert "RESCHEDULE" not in line


def test_schedule_mode_ignore_if_exists_keeps_the_existing_job(db: str) -> None:
    ok(run("schedule", "s6", "ok", "--at", FUTURE, "--data", '{"v": 1}', url=db))
    out = ok(
        run("schedule", "s6", "ok", "--at", PAST, "--data", '{"v": 2}', "--mode",
            "ignore-if-exists", url=db)
    )  # fmt: skip
    assert "2099-01-01T00:00:00+00:00" in out
    job = show(db, "s6")
    assert job["data"] == {"v": 1}
    assert job["start"] == "2099-01-01T00:00:00+00:00"


def test_schedule_mode_reschedule_replaces_the_existing_job(db: str) -> None:
    ok(run("schedule", "s7", "ok", "--at", FUTURE, "--data", '{"v": 1}', url=db))
    ok(
        run("schedule", "s7", "other", "--at", PAST, "--data", '{"v": 2}', "--mode", "reschedule",
            url=db)
    )  # fmt: skip
    job = show(db, "s7")
    assert job["data"] == {"v": 2}
    assert job["handler"] == "other"
    assert job["start"] == "2020-01-01T00:00:00+00:00"


def test_schedule_reads_data_too_big_for_a_command_line_from_a_file(
    db: str, tmp_path: Path
) -> None:
    data = {"rows": ["é" * 1000] * 500}  # about 1 MB of UTF-8: more than one argument may hold
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    ok(run("schedule", "f1", "ok", "--in", "1h", "--data", f"@{path}", url=db))
    assert show(db, "f1")["data"] == data


def test_schedule_reads_data_from_standard_input(db: str) -> None:
    data = {"user": 42, "tags": ["🎉"] * 50_000}
    stdin = json.dumps(data, ensure_ascii=False)
    ok(run("schedule", "f2", "ok", "--in", "1h", "--data", "-", url=db, stdin=stdin))
    assert show(db, "f2")["data"] == data


def test_a_missing_data_file_exits_2_naming_it(db: str, tmp_path: Path) -> None:
    path = tmp_path / "missing.json"
    line = fails(run("schedule", "f3", "ok", "--in", "1h", "--data", f"@{path}", url=db), 2)
    assert str(path) in line
    assert "No such file" in line
    assert ok(run("list", url=db)) == ""


def test_bad_json_in_a_data_file_exits_2_naming_the_file_not_its_text(
    db: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"secret-ish": "x"' + " " * 10_000, encoding="utf-8")
    line = fails(run("schedule", "f4", "ok", "--in", "1h", "--data", f"@{path}", url=db), 2)
    assert str(path) in line
    assert "JSON" in line
    assert "secret-ish" not in line


# -- show, list, remove -------------------------------------------------------------------------


def test_show_prints_the_job(db: str) -> None:
    ok(run("schedule", "v1", "ok", "--at", FUTURE, "--data", '{"k": "v"}', url=db))
    out = ok(run("show", "v1", url=db))
    assert "v1" in out
    assert "ok" in out
    assert "2099-01-01T00:00:00+00:00" in out
    assert '{"k": "v"}' in out


def test_show_json_prints_every_field(db: str) -> None:
    ok(run("schedule", "v2", "ok", "--at", FUTURE, "--data", "[1, 2]", url=db))
    job = show(db, "v2")
    assert set(job) == {
        "job_id", "handler", "data", "start", "expiry", "attempts", "max_attempts",
        "created_at", "last_error", "state", "claimed_by", "claimed_until", "started_at",
        "status", "progress", "last_run",
    }  # fmt: skip
    assert (job["status"], job["progress"], job["last_run"]) == ("scheduled", None, None)
    assert job["data"] == [1, 2]
    assert job["expiry"] is None
    assert job["last_error"] is None
    assert job["state"] == "scheduled"
    assert (job["claimed_by"], job["claimed_until"], job["started_at"]) == (None, None, None)


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_show_and_list_say_a_running_job_runs_on_whom_since_and_until_when(
    db: str, tmp_path: Path
) -> None:
    started, gate = tmp_path / "started", tmp_path / "gate"
    data = json.dumps({"started": str(started), "gate": str(gate)})
    ok(run("schedule", "g", "gated", "--at", PAST, "--data", data, url=db))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
    argv = [str(JOBSCHED), "--database-url", db, "--app", "gated_app", "run-due"]
    runner = subprocess.Popen(
        argv, cwd=APPS, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(started, runner)
        job = show(db, "g")
        assert job["state"] == "running"
        assert job["claimed_by"] == f"{socket.gethostname()}:{runner.pid}"
        since = datetime.fromisoformat(job["started_at"])
        until = datetime.fromisoformat(job["claimed_until"])
        assert since < until <= since + timedelta(seconds=600)
        assert job["attempts"] == 1
        text = ok(run("show", "g", url=db))
        assert f"running on {job['claimed_by']} since {job['started_at']}" in text
        assert f"claimed until {job['claimed_until']}" in text
        [line] = ok(run("list", url=db)).splitlines()
        assert line.split()[3] == "running"
        assert f"on {job['claimed_by']} since {job['started_at']}" in line
        [listed] = json.loads(ok(run("list", "--json", url=db)))
        assert listed == without_history(job)
    finally:
        gate.touch()
        _, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    assert ok(run("list", url=db)) == ""


def test_show_and_list_say_a_job_is_deferred_due_or_scheduled_with_its_last_error(
    db: str,
) -> None:
    ok(run("schedule", "d", "no-such-handler", "--at", PAST, url=db))
    summary(ok(run("--app", "cli_app", "run-due", url=db)))
    ok(run("schedule", "now", "ok", "--at", PAST, url=db))
    ok(run("schedule", "later", "ok", "--at", FUTURE, url=db))
    jobs = {job["job_id"]: job for job in json.loads(ok(run("list", "--json", url=db)))}
    assert {job_id: job["state"] for job_id, job in jobs.items()} == {
        "d": "deferred",
        "now": "due",
        "later": "scheduled",
    }
    assert "no-such-handler" in jobs["d"]["last_error"]
    lines = {line.split()[1]: line for line in ok(run("list", url=db)).splitlines()}
    assert lines["d"].split()[3] == "deferred"
    assert "last error: no handler registered for 'no-such-handler'" in lines["d"]
    assert lines["now"].split()[3] == "due"
    assert lines["later"].split()[3] == "scheduled"
    assert "last error" not in lines["later"]
    text = ok(run("show", "d", url=db))
    assert "state:      deferred" in text
    assert "no-such-handler" in text
    assert without_history(show(db, "d")) == jobs["d"]


@pytest.fixture
def three_jobs(db: str) -> str:
    ok(run("schedule", "late", "ok", "--at", FUTURE, url=db))
    ok(run("schedule", "early", "ok", "--at", "2020-01-01T00:00:00Z", url=db))
    ok(run("schedule", "middle", "other", "--at", "2021-06-01T00:00:00Z", url=db))
    return db


def listed_ids(stdout: str) -> list[str]:
    return [line.split()[1] for line in stdout.strip().splitlines()]


def test_list_shows_jobs_by_start_time(three_jobs: str) -> None:
    out = ok(run("list", url=three_jobs))
    assert listed_ids(out) == ["early", "middle", "late"]


def test_list_due_shows_only_jobs_whose_time_has_come(three_jobs: str) -> None:
    assert listed_ids(ok(run("list", "--due", url=three_jobs))) == ["early", "middle"]


def test_list_handler_filters_by_handler(three_jobs: str) -> None:
    assert listed_ids(ok(run("list", "--handler", "other", url=three_jobs))) == ["middle"]


def test_list_limit_takes_the_first_jobs(three_jobs: str) -> None:
    assert listed_ids(ok(run("list", "--limit", "2", url=three_jobs))) == ["early", "middle"]


def test_list_json_prints_an_array(three_jobs: str) -> None:
    jobs = json.loads(ok(run("list", "--json", url=three_jobs)))
    assert [job["job_id"] for job in jobs] == ["early", "middle", "late"]
    assert jobs[1]["handler"] == "other"
    jobs = json.loads(ok(run("list", "--json", "--due", "--limit", "1", url=three_jobs)))
    assert [job["job_id"] for job in jobs] == ["early"]


def test_list_json_of_no_jobs_is_an_empty_array(db: str) -> None:
    assert json.loads(ok(run("list", "--json", url=db))) == []


def test_remove_removes_the_job(db: str) -> None:
    ok(run("schedule", "r1", "ok", "--at", FUTURE, url=db))
    assert "r1" in ok(run("remove", "r1", url=db))
    fails(run("show", "r1", url=db), 2, "r1")


# -- reschedule ---------------------------------------------------------------------------------


def test_reschedule_moves_the_start_and_keeps_everything_else(db: str) -> None:
    ok(
        run("schedule", "r1", "boom", "--at", PAST, "--expiry", FUTURE, "--max-attempts", "5",
            "--data", '{"user": 42}', url=db)
    )  # fmt: skip
    ok(run("--app", "cli_app", "run-due", url=db), handler_failed=True)
    before = show(db, "r1")
    assert (before["attempts"], before["state"]) == (1, "scheduled")
    out = ok(run("reschedule", "r1", "--at", "2021-06-01T12:00:00+02:00", url=db))
    assert "2021-06-01T10:00:00+00:00" in out
    assert "due" in out
    after = show(db, "r1")
    assert after["start"] == "2021-06-01T10:00:00+00:00"
    assert after["state"] == "due"
    unchanged = (
        "handler",
        "data",
        "expiry",
        "attempts",
        "max_attempts",
        "created_at",
        "last_error",
    )
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}


def test_reschedule_in_a_duration_counts_from_now(db: str) -> None:
    ok(run("schedule", "r2", "ok", "--at", FUTURE, url=db))
    before = datetime.now(UTC)
    ok(run("reschedule", "r2", "--in", "0s", url=db))
    after = datetime.now(UTC)
    job = show(db, "r2")
    assert before <= datetime.fromisoformat(job["start"]) <= after
    assert job["state"] == "due"
    assert summary(ok(run("--app", "cli_app", "run-due", url=db)))[0] == 1


def test_reschedule_of_a_missing_job_exits_2(db: str) -> None:
    fails(run("reschedule", "ghost", "--in", "0s", url=db), 2, "ghost")
    assert ok(run("list", url=db)) == ""


def test_reschedule_past_the_expiry_exits_2_and_changes_nothing(db: str) -> None:
    ok(run("schedule", "r3", "ok", "--at", PAST, "--expiry", "2020-01-02T00:00:00Z", url=db))
    line = fails(run("reschedule", "r3", "--at", FUTURE, url=db), 2, "r3", "expiry")
    assert "2020-01-02T00:00:00+00:00" in line
    assert show(db, "r3")["start"] == "2020-01-01T00:00:00+00:00"


# -- run-due ------------------------------------------------------------------------------------


def test_run_due_prints_one_summary_line(db_url: str) -> None:
    for job_id in ("a", "b"):
        ok(run("schedule", job_id, "ok", "--at", PAST, url=db_url))
    ok(run("schedule", "not-yet", "ok", "--at", FUTURE, url=db_url))
    ran, counts = summary(ok(run("--app", "cli_app", "run-due", url=db_url)))
    assert (ran, counts) == (2, {"succeeded": 2})
    assert listed_ids(ok(run("list", url=db_url))) == ["not-yet"]


def test_run_due_summary_adds_up_when_a_job_expired_without_running(db: str) -> None:
    ok(run("schedule", "fresh", "ok", "--at", PAST, url=db))
    ok(run("schedule", "stale", "ok", "--at", PAST, "--expiry", "2020-01-01T00:00:01Z", url=db))
    out = ok(run("--app", "cli_app", "run-due", url=db))
    assert summary(out) == (1, {"succeeded": 1, "expired": 1})
    assert "took 2 jobs (succeeded 1, expired 1): ran 1, 1 expired without running in" in out


def test_run_due_limit_bounds_the_pass(db: str) -> None:
    for job_id in ("a", "b", "c"):
        ok(run("schedule", job_id, "ok", "--at", PAST, url=db))
    ran, counts = summary(ok(run("--app", "cli_app", "run-due", "--limit", "2", url=db)))
    assert (ran, counts) == (2, {"succeeded": 2})
    assert listed_ids(ok(run("list", url=db))) == ["c"]


def test_run_due_exits_0_when_jobs_fail(db: str) -> None:
    ok(run("schedule", "retry-me", "boom", "--at", PAST, url=db))
    ok(run("schedule", "fail-me", "boom", "--at", PAST, "--max-attempts", "1", url=db))
    result = run("--app", "cli_app", "run-due", url=db)
    ran, counts = summary(ok(result, handler_failed=True))
    assert (ran, counts) == (2, {"retried": 1, "failed": 1})
    assert "boom in retry-me" in result.stderr
    job = show(db, "retry-me")
    assert job["attempts"] == 1
    assert "boom in retry-me" in job["last_error"]


def test_run_due_quiet_prints_nothing_when_all_went_well(db: str) -> None:
    ok(run("schedule", "a", "ok", "--at", PAST, url=db))
    result = run("--app", "cli_app", "run-due", "--quiet", url=db)
    assert ok(result) == ""
    assert result.stderr == ""
    assert ok(run("list", url=db)) == ""


def test_run_due_quiet_prints_nothing_when_nothing_is_due(db: str) -> None:
    ok(run("schedule", "a", "ok", "--at", FUTURE, url=db))
    result = run("--app", "cli_app", "run-due", "--quiet", url=db)
    assert ok(result) == ""
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("handler", "extra", "outcome"),
    [
        ("boom", [], "retried"),
        ("boom", ["--max-attempts", "1"], "failed"),
        ("no-such-handler", [], "deferred"),
    ],
)
def test_run_due_quiet_prints_the_summary_when_there_was_trouble(
    db: str, handler: str, extra: list[str], outcome: str
) -> None:
    ok(run("schedule", "a", "ok", "--at", PAST, url=db))
    ok(run("schedule", "t", handler, "--at", PAST, *extra, url=db))
    result = run("--app", "cli_app", "run-due", "--quiet", url=db)
    _, counts = summary(ok(result, handler_failed=handler == "boom"))
    assert counts == {"succeeded": 1, outcome: 1}


# -- app modules --------------------------------------------------------------------------------


def test_without_an_app_module_run_due_exits_1_and_takes_nothing(db: str) -> None:
    ok(run("schedule", "a", "ok", "--at", PAST, url=db))
    fails(run("run-due", url=db), 1, "no handlers registered: pass --app or set JOBSCHED_APP")
    job = show(db, "a")
    assert (job["attempts"], job["last_error"], job["start"]) == (
        0,
        None,
        "2020-01-01T00:00:00+00:00",
    )


def test_without_an_app_module_run_due_exits_1_before_touching_the_database() -> None:
    fails(run("run-due", url=UNREACHABLE_URL), 1, "no handlers registered")


def test_a_jobs_handler_missing_from_the_app_modules_is_deferred(db: str) -> None:
    ok(run("schedule", "a", "not_in_cli_app", "--at", PAST, url=db))
    ran, counts = summary(ok(run("--app", "cli_app", "run-due", url=db)))
    assert (ran, counts) == (0, {"deferred": 1})
    assert "not_in_cli_app" in show(db, "a")["last_error"]


def test_run_due_with_handler_options_takes_only_those_handlers_jobs(db: str) -> None:
    ok(run("schedule", "a", "ok", "--at", PAST, url=db))
    ok(run("schedule", "b", "boom", "--at", PAST, url=db))
    ok(run("schedule", "c", "other_apps_handler", "--at", PAST, url=db))
    out = ok(run("--app", "cli_app", "run-due", "--handler", "ok", url=db))
    assert summary(out) == (1, {"succeeded": 1})
    assert show(db, "b")["attempts"] == 0
    assert show(db, "c")["last_error"] is None  # another app's job: not deferred


def test_run_due_with_a_handler_no_app_module_registers_exits_2(db: str) -> None:
    ok(run("schedule", "a", "ok", "--at", PAST, url=db))
    fails(run("--app", "cli_app", "run-due", "--handler", "okk", url=db), 2, "'okk'")
    assert show(db, "a")["attempts"] == 0


def test_a_handler_calling_sys_exit_fails_its_attempt_and_run_due_goes_on(db: str) -> None:
    ok(run("schedule", "1-leaves", "leave", "--at", PAST, url=db))
    ok(run("schedule", "2-ok", "ok", "--at", "2020-01-01T00:00:01Z", url=db))
    result = run("--app", "cli_app", "run-due", url=db)
    assert summary(ok(result, handler_failed=True)) == (2, {"succeeded": 1, "retried": 1})
    assert show(db, "1-leaves")["last_error"] == "the handler called sys.exit(3)"


def test_an_async_handler_runs_from_the_cli(db: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    ok(run("schedule", "a", "async_touch", "--at", PAST, "--data", json.dumps(str(marker)), url=db))
    assert summary(ok(run("--app", "cli_app", "run-due", url=db))) == (1, {"succeeded": 1})
    assert marker.exists()


def test_app_option_imports_handlers_from_the_current_directory(db: str) -> None:
    ok(run("schedule", "a", "ok", "--at", PAST, url=db))
    ok(run("schedule", "b", "extra", "--at", PAST, url=db))
    out = ok(run("--app", "cli_app", "--app", "cli_app_extra", "run-due", url=db, cwd=APPS))
    assert summary(out) == (2, {"succeeded": 2})


def test_jobsched_app_environment_variable_is_comma_separated(db: str) -> None:
    ok(run("schedule", "a", "ok", "--at", PAST, url=db))
    ok(run("schedule", "b", "extra", "--at", PAST, url=db))
    env = {"JOBSCHED_APP": "cli_app, cli_app_extra"}
    assert summary(ok(run("run-due", url=db, env=env))) == (2, {"succeeded": 2})


def test_a_handler_schedules_through_the_scheduler_the_cli_installed(db_url: str) -> None:
    ok(run("schedule", "first", "chain", "--at", PAST, url=db_url))
    assert summary(ok(run("--app", "cli_app", "run-due", url=db_url)))[1] == {"succeeded": 1}
    assert show(db_url, "after-first")["data"] == {"after": "first"}


# -- exit code 1: the environment failed ----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["migrate"],
        ["--app", "cli_app", "run-due"],
        ["list"],
        ["show", "x"],
        ["remove", "x"],
        ["schedule", "x", "ok", "--in", "1h"],
    ],
    ids=lambda args: args[-1] if args[0] == "--app" else args[0],
)
def test_an_unreachable_database_exits_1(args: list[str]) -> None:
    fails(run(*args, url=UNREACHABLE_URL), 1, "127.0.0.1")


def test_an_error_message_never_shows_the_database_password() -> None:
    line = fails(run("list", url="mysql+pymysql://root:s3cret-pw@127.0.0.1:1/x"), 1)
    assert "s3cret-pw" not in line


def test_an_unknown_mariadb_database_exits_1(mysql_database_url: str) -> None:
    url = sa.make_url(mysql_database_url).set(database="jobsched_no_such_database")
    fails(run("list", url=url.render_as_string(hide_password=False)), 1, "no_such_database")


@pytest.mark.parametrize(
    "args",
    [
        ["migrate"],
        ["--app", "cli_app", "run-due"],
        ["list"],
        ["show", "x"],
        ["schedule", "x", "ok", "--in", "1h"],
    ],
    ids=lambda args: args[-1] if args[0] == "--app" else args[0],
)
def test_a_sqlite_file_in_a_missing_directory_exits_1_saying_the_directory_does_not_exist(
    tmp_path: Path, args: list[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"
    line = fails(run(*args, url=url), 1, str(tmp_path / "no-such-dir"), "does not exist")
    assert "jobsched migrate" not in line
    assert "unable to open" not in line
    assert not (tmp_path / "no-such-dir").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--app", "cli_app", "run-due"],
        ["list"],
        ["show", "x"],
        ["remove", "x"],
        ["schedule", "x", "ok", "--in", "1h"],
    ],
    ids=lambda args: args[-1] if args[0] == "--app" else args[0],
)
def test_a_database_without_the_schema_exits_1(args: list[str], tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    fails(run(*args, url=f"sqlite:///{path}"), 1, "jobsched migrate")


def test_a_missing_sqlite_file_exits_1_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "mistyped.db"
    fails(run("list", url=f"sqlite:///{path}"), 1, "jobsched migrate")
    fails(run("schedule", "x", "ok", "--in", "1h", url=f"sqlite:///{path}"), 1, "jobsched migrate")
    fails(run("--app", "cli_app", "run-due", url=f"sqlite:///{path}"), 1, "jobsched migrate")
    assert not path.exists()


@pytest.fixture
def empty_mysql_url(mysql_database_url: str) -> Iterator[str]:
    """A new, empty database on the MariaDB test server."""
    server = sa.make_url(mysql_database_url)
    name = f"jobsched_cli_{secrets.token_hex(4)}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


def test_a_database_without_the_schema_exits_1_on_mariadb(empty_mysql_url: str) -> None:
    fails(run("list", url=empty_mysql_url), 1, "jobsched migrate")
    fails(run("--app", "cli_app", "run-due", url=empty_mysql_url), 1, "jobsched migrate")


@pytest.mark.parametrize(
    ("apps", "env"),
    [
        (["--app", "no_such_app_module"], {}),
        (["--app", "broken_app"], {}),
        (["--app", "cli_app", "--app", "no_such_app_module"], {}),
        ([], {"JOBSCHED_APP": "cli_app,no_such_app_module"}),
    ],
    ids=["missing", "failing-import", "second-missing", "environment"],
)
def test_an_app_module_that_cannot_be_imported_exits_1(
    db: str, apps: list[str], env: dict[str, str]
) -> None:
    ok(run("schedule", "a", "ok", "--at", PAST, url=db))
    line = fails(run(*apps, "run-due", url=db, env=env), 1)
    assert "no_such_app_module" in line or "broken_app" in line
    assert show(db, "a")["attempts"] == 0


def line_of(path: Path, text: str) -> int:
    """The number of the first line of ``path`` that contains ``text``."""
    lines = path.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_an_app_module_that_calls_sys_exit_at_import_exits_1_with_a_message(db: str) -> None:
    ok(run("schedule", "a", "ok", "--at", PAST, url=db))
    app = APPS / "exiting_app.py"
    line = fails(run("--app", "exiting_app", "run-due", url=db), 1, "exiting_app", "sys.exit(3)")
    assert f"{app}, line {line_of(app, 'sys.exit(3)')}" in line
    assert show(db, "a")["attempts"] == 0


@pytest.mark.parametrize(
    ("app", "raising_line"),
    [("raising_app", 'os.environ["RAISING_APP'), ("broken_app", "import jobsched_no_such")],
)
def test_an_app_module_that_raises_on_import_names_the_file_and_line_of_the_raising_frame(
    db: str, app: str, raising_line: str
) -> None:
    path = APPS / f"{app}.py"
    line = fails(run("--app", app, "run-due", url=db), 1, app)
    assert f"(at {path}, line {line_of(path, raising_line)})" in line


def test_a_missing_app_module_names_no_frame(db: str) -> None:
    line = fails(run("--app", "no_such_app_module", "run-due", url=db), 1, "no_such_app_module")
    assert "(at " not in line
    assert "importlib" not in line


# -- exit code 2: a user mistake ----------------------------------------------------------------

BAD_ARGUMENTS = {
    "bad-json": (["schedule", "x", "ok", "--in", "1h", "--data", "{bad"], "JSON"),
    "missing-data-file": (
        ["schedule", "x", "ok", "--in", "1h", "--data", "@no-such-payload.json"],
        "no-such-payload.json",
    ),
    "nan-json": (["schedule", "x", "ok", "--in", "1h", "--data", "NaN"], "NaN"),
    "time-without-zone": (["schedule", "x", "ok", "--at", "2026-11-23T09:00:00"], "zone"),
    "not-a-time": (["schedule", "x", "ok", "--at", "next tuesday"], "next tuesday"),
    "unknown-mode": (["schedule", "x", "ok", "--in", "1h", "--mode", "sometimes"], "sometimes"),
    "bad-number": (["schedule", "x", "ok", "--in", "1h", "--max-attempts", "abc"], "abc"),
    "zero-attempts": (["schedule", "x", "ok", "--in", "1h", "--max-attempts", "0"], "0"),
    "bad-duration": (["schedule", "x", "ok", "--in", "5x"], "5x"),
    "no-start": (["schedule", "x", "ok"], "--at"),
    "reschedule-no-start": (["reschedule", "x"], "--at"),
    "reschedule-two-starts": (["reschedule", "x", "--in", "1h", "--at", FUTURE], "--at"),
    "reschedule-bad-time": (["reschedule", "x", "--at", "2026-12-24"], "2026-12-24"),
    "reschedule-bad-duration": (["reschedule", "x", "--in", "soon"], "soon"),
    "two-starts": (["schedule", "x", "ok", "--in", "1h", "--at", FUTURE], "--at"),
    "expiry-before-start": (
        ["schedule", "x", "ok", "--at", "2099-01-01T10:00:00Z", "--expiry", FUTURE],
        "expiry",
    ),
    "empty-id": (["schedule", "", "ok", "--in", "1h"], "job_id"),
    "tab-in-id": (["schedule", "a\tb", "ok", "--in", "1h"], "tab"),
    "whitespace-handler": (["schedule", "x", " ", "--in", "1h"], "whitespace"),
    "bad-expiry-zone": (["schedule", "x", "ok", "--in", "1h", "--expiry", "2099-01-01"], "zone"),
    "bad-run-due-limit": (["run-due", "--limit", "many"], "many"),
    "zero-run-due-limit": (["run-due", "--limit", "0"], "0"),
    "bad-list-limit": (["list", "--limit", "x"], "x"),
    "unknown-option": (["list", "--sideways"], "--sideways"),
    "unknown-command": (["frobnicate"], "frobnicate"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_a_user_mistake_exits_2_with_one_line(db: str, case: str) -> None:
    args, word = BAD_ARGUMENTS[case]
    fails(run(*args, url=db), 2, word)
    assert ok(run("list", url=db)) == ""


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_arguments_are_checked_before_the_database_is_touched(case: str) -> None:
    args, word = BAD_ARGUMENTS[case]
    fails(run(*args, url=UNREACHABLE_URL), 2, word)


@pytest.mark.parametrize(
    "url",
    [
        "memory://",
        "memory:",
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite+pysqlite:///:memory:",
        "sqlite:///file::memory:?cache=shared&uri=true",
        "sqlite:///file:jobs?mode=memory&uri=true",
        "sqlite:///",
    ],
)
@pytest.mark.parametrize(
    "args",
    [["migrate"], ["schedule", "x", "ok", "--in", "1h"], ["list"], ["run-due"]],
    ids=lambda args: args[0],
)
def test_a_database_that_ends_with_the_command_exits_2(url: str, args: list[str]) -> None:
    result = run("--app", "cli_app", *args, url=url)
    fails(result, 2, url, "in memory", "lost", "sqlite:///jobsched.db")
    assert result.stdout == ""


def test_an_in_memory_database_from_the_environment_exits_2() -> None:
    result = run("schedule", "x", "ok", "--in", "1h", env={"JOBSCHED_DATABASE_URL": "memory://"})
    fails(result, 2, "memory://", "lost")


@pytest.mark.parametrize(
    "url",
    [
        "mysql+pymsql://root@127.0.0.1/test",
        "mysql+aiomysql://root@127.0.0.1/test",
        "mysql+mysqldb://root@127.0.0.1/test",
        "postgres://app@127.0.0.1/shop",
        "postgresql://app@127.0.0.1/shop",
    ],
)
@pytest.mark.parametrize("args", [["migrate"], ["list"], ["run-due"]], ids=lambda args: args[0])
def test_an_unsupported_database_url_exits_2_naming_the_supported_ones(
    url: str, args: list[str]
) -> None:
    line = fails(run(*args, url=url), 2, url.split("://")[0] + "://")
    for supported in ("sqlite:///", "mysql+pymysql://", "mariadb+pymysql://"):
        assert supported in line


@pytest.mark.parametrize(
    ("option", "text"),
    [
        ("--at", "2026-12-24"),
        ("--at", "2026-12-24+01:00"),
        ("--at", "2026-12-24T09:00"),
        ("--expiry", "2099-01-01"),
    ],
)
def test_a_time_the_cli_refuses_suggests_an_example_that_it_accepts(
    db: str, option: str, text: str
) -> None:
    start = [] if option == "--at" else ["--at", PAST]
    line = fails(run("schedule", "x", "ok", *start, option, text, url=db), 2, text)
    if "+01:00" in text:
        assert "no time zone" not in line
    examples = re.findall(
        r"\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:\d{2})", line.replace(repr(text), "")
    )
    assert examples, line
    for i, example in enumerate(examples):
        ok(run("schedule", f"x{i}", "ok", *start, option, example, url=db))


NUMERIC_MISTAKES = {
    f"{args[0]} {option} {value}": ([*args, option, value], value)
    for args, option, values in [
        (["run-due"], "--grace", ["nan", "NaN", "inf", "-inf", "-1", "1e9", "x"]),
        (["run-due"], "--max-seconds", ["nan", "inf", "-inf", "0", "-5", "1e9"]),
        (["run-due"], "--limit", ["nan", "inf", "1.5", "0", "-1", "2147483648"]),
        (["run-due"], "--concurrency", ["nan", "inf", "0", "-2", "1001"]),
        (["list"], "--limit", ["nan", "inf", "0", "99999999999999999999"]),
        (["schedule", "x", "ok", "--in", "1h"], "--max-attempts", ["nan", "inf", "-1", "2.5"]),
        (["schedule", "x", "ok"], "--in", ["nan", "infs", "-1h", "99999999999999w"]),
        (["schedule", "x", "ok", "--in", "1h"], "--expiry", ["nans", "99999999999999w"]),
    ]
    for value in values
}


@pytest.mark.parametrize("case", sorted(NUMERIC_MISTAKES))
def test_a_numeric_option_refuses_non_finite_and_out_of_range_values(case: str) -> None:
    args, value = NUMERIC_MISTAKES[case]
    fails(run(*args, url=UNREACHABLE_URL), 2, args[-2], value)


def test_max_attempts_out_of_range_names_both_bounds(db: str) -> None:
    args = ["schedule", "x", "ok", "--in", "1h", "--max-attempts", "1000000000000"]
    line = fails(run(*args, url=db), 2, "--max-attempts", "1000000000000")
    assert "1<=x<=2147483647" in line
    assert ok(run("list", url=db)) == ""


@pytest.mark.parametrize("command", ["show", "remove"])
def test_a_missing_job_exits_2(db: str, command: str) -> None:
    fails(run(command, "ghost", url=db), 2, "ghost")


# -- python -m jobsched ---------------------------------------------------------------------------


def test_python_m_jobsched_is_the_jobsched_command(db: str) -> None:
    ok(run("schedule", "m1", "ok", "--at", FUTURE, url=db))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
    result = subprocess.run(
        [sys.executable, "-m", "jobsched", "--database-url", db, "show", "m1", "--json"],
        capture_output=True, text=True, cwd=APPS, env=environ, timeout=120,
    )  # fmt: skip
    assert json.loads(ok(result))["job_id"] == "m1"
    usage = subprocess.run(
        [sys.executable, "-m", "jobsched", "--help"], capture_output=True, text=True, timeout=120
    )
    assert "Usage: jobsched" in ok(usage)
