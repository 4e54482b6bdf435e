"""The systemd unit example beside crontab.example: it stops the worker the way the worker
expects (SIGTERM, then waits longer than the worker's --grace), and its command line is one
`jobsched worker` accepts."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

from jobsched.cli import worker

UNIT = Path(__file__).resolve().parents[2] / "jobsched-worker.service"


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def test_the_unit_stops_the_worker_with_sigterm_and_restarts_it_on_failure() -> None:
    section = service()
    assert section["KillSignal"] == "SIGTERM"
    assert section["Restart"] == "on-failure"


def test_the_unit_waits_longer_than_the_workers_grace_before_it_kills() -> None:
    section = service()
    grace = re.search(r"--grace (\d+)", section["ExecStart"])
    assert grace is not None
    assert int(section["TimeoutStopSec"]) > int(grace.group(1))


def test_the_units_command_line_is_one_the_worker_accepts() -> None:
    words = shlex.split(service()["ExecStart"])
    assert words[0].endswith("/jobsched") and words[1] == "worker"
    # Parsed and checked as the worker would (an unknown or malformed option raises here).
    context = worker.make_context("worker", words[2:])
    assert context.params["grace"] == 60.0
