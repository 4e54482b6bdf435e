"""The benchmark harness (``bench/``, ``make bench``) runs end to end at a tiny size, every workload
for every implementation on every database, so it cannot rot while jobsched's inside changes.

Nothing here looks at wall time. It checks that every run produced a figure and that jobsched and
the raw floors ran every job exactly once; the peers' exactly-once results are reported by the
harness, not asserted (APScheduler runs jobs twice with two schedulers on one table). jobsched's
history holds one row per job a pass ran with the history on, none with it off (jobsched-nohistory).
Issue 14's runs are there too: W2 and W3 through ``jobsched run-due`` and ``jobsched worker``, and
W7's stream of jobs through 1 and 4 worker processes (a second of it: latencies are reported, not
judged).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent

#: W2 and W3 through the commands (issue 14: the worker against run-due).
COMMANDS = ("jobsched-run-due", "jobsched-worker")
EXPECTED = {
    ("W1", "mariadb"): {"floor", "apscheduler", "jobsched"},
    ("W1b", "mariadb"): {"floor", "jobsched"},
    ("W6", "mariadb"): {"jobsched"},
    ("W2", "mariadb"): {"floor", "apscheduler", "jobsched", "jobsched-nohistory", *COMMANDS},
    ("W3", "mariadb"): {"floor", "apscheduler", "jobsched", "jobsched-nohistory", *COMMANDS},
    ("W4", "mariadb"): {"floor", "apscheduler", "jobsched", "jobsched-nohistory"},
    ("W1", "sqlite"): {"floor", "huey", "jobsched"},
    ("W1b", "sqlite"): {"floor", "jobsched"},
    ("W6", "sqlite"): {"jobsched"},
    ("W2", "sqlite"): {"floor", "huey", "jobsched", "jobsched-nohistory", *COMMANDS},
    ("W3", "sqlite"): {"floor", "huey", "jobsched", "jobsched-nohistory", *COMMANDS},
    ("W4", "sqlite"): {"floor", "huey", "jobsched", "jobsched-nohistory"},
    ("W7", "mariadb"): {"jobsched-worker"},
    ("W7b", "mariadb"): {"jobsched-worker"},
    ("W7", "sqlite"): {"jobsched-worker"},
    ("W7b", "sqlite"): {"jobsched-worker"},
    ("W5", "memory"): {"jobsched", "jobsched-nohistory"},
    ("W5b", "memory"): {"jobsched", "jobsched-nohistory"},
}


@pytest.fixture
def bench_mysql_url(mysql_database_url: str) -> Iterator[str]:
    """A MariaDB database of the harness's own (it drops and makes it again for every run);
    ``mysql_database_url`` fails this test under CI=true, skips it elsewhere, if MariaDB is away."""
    name = f"jobsched_bench_test_{os.getpid()}"
    url = sa.make_url(mysql_database_url).set(database=name)
    yield url.render_as_string(hide_password=False)
    admin = sa.create_engine(url.set(database=None), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    admin.dispose()


def test_the_harness_runs_every_workload_for_every_implementation(
    bench_mysql_url: str, tmp_path: Path
) -> None:
    results, runs_json = tmp_path / "RESULTS.md", tmp_path / "runs.json"
    proc = subprocess.run(
        [
            sys.executable, "-m", "bench", "--tiny", "--require-mariadb",
            "--mysql-url", bench_mysql_url, "--workdir", str(tmp_path / "work"),
            "--results", str(results), "--json", str(runs_json),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    runs = json.loads(runs_json.read_text())
    done: dict[tuple[str, str], set[str]] = {}
    for run in runs:
        done.setdefault((run["workload"], run["backend"]), set()).add(run["impl"])
    assert done == EXPECTED
    for run in runs:
        where = f"{run['workload']} {run['backend']} {run['impl']}"
        assert run["error"] is None, where
        assert run["value"] > 0, where
        if run["impl"] in ("jobsched", "jobsched-nohistory", "floor", *COMMANDS):
            assert (run["duplicates"], run["missing"], run["unexpected"], run["left"]) == (
                0, 0, 0, 0,
            ), where  # fmt: skip
        if run["workload"] in ("W2", "W3"):
            assert run["rss_kib"] > 0, where
        if run["impl"] == "jobsched-nohistory":
            assert run["detail"]["history_rows"] == 0, where
        elif run["impl"] == "jobsched" and run["workload"] in ("W2", "W3", "W4"):
            assert run["detail"]["history_rows"] == run["jobs"], where  # one run each
        elif run["impl"] in COMMANDS and run["workload"] in ("W2", "W3"):
            assert run["detail"]["history_rows"] == run["jobs"], where
        if run["workload"] in ("W7", "W7b"):  # the latency of a stream through worker processes
            assert 0 < run["detail"]["p50_ms"] <= run["detail"]["p95_ms"], where
            assert sum(run["detail"]["per_runner"]) == run["jobs"], where

    report = results.read_text()
    for heading in ("## Versions", "## Machine", "## Medians", "## The issue's targets"):
        assert heading in report
    assert "MariaDB W2 >= 10x APScheduler" in report
    assert "SQLite W2 >= 10x Huey" in report
    assert "## History on vs off (issue 13)" in report
    assert "MariaDB W2 history on >= 0.9x history off" in report
    assert "## The worker (issue 14)" in report
    assert "SQLite file W3 through a worker within 10% of run-due" in report
    assert "MariaDB W7 p95 start-to-handler latency under 1 s, 4 workers" in report
