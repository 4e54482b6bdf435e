"""`make demo`'s steps, as real processes on a database of the test's own: its output names each
job and its outcome, and the summary line adds up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
EXAMPLES = CHECKOUT / "examples"
JOBSCHED = Path(sys.executable).parent / "jobsched"

OUTCOMES = {
    "welcome-ada": "succeeded",
    "sync-berlin": "retried",
    "flash-sale-reminder-7": "expired",
    "poll-payment-99": "kept",
}


def step(argv: list[str], url: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
    environ["JOBSCHED_DATABASE_URL"] = url
    result = subprocess.run(
        argv, capture_output=True, text=True, cwd=EXAMPLES, env=environ, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result


def test_the_demo_names_each_job_and_its_outcome_and_its_summary_adds_up(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    step([str(JOBSCHED), "migrate"], url)
    step([sys.executable, "schedule_demo_jobs.py"], url)
    passed = step([str(JOBSCHED), "--verbose", "--app", "shop", "run-due"], url)
    for job_id, outcome in OUTCOMES.items():
        assert f"job {job_id!r} (" in passed.stderr
        assert any(
            f"job {job_id!r} (" in line and line.endswith(f": {outcome}")
            for line in passed.stderr.splitlines()
        ), (job_id, outcome, passed.stderr)
    [summary] = [line for line in passed.stdout.splitlines() if "run-due:" in line]
    assert summary.startswith(
        "jobsched run-due: took 4 jobs (succeeded 1, kept 1, retried 1, expired 1): ran 3, "
        "1 expired without running in "
    ), summary
    for job_id in ("welcome-ada", "poll-payment-99"):
        assert f"  {job_id}: " in passed.stdout  # the handlers' own lines name their job


def test_make_demo_runs_the_pass_verbosely() -> None:
    makefile = (CHECKOUT / "Makefile").read_text()
    assert "$(JOBSCHED) --verbose --app shop run-due" in makefile
