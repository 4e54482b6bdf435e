"""The metrics file of ``run-due --metrics-file``: what PassMetrics writes, read back with
prometheus_client's own parser, on real files (and real processes where passes overlap)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from jobsched import JobschedError, Outcome, RunReport
from jobsched.errors import UsageError
from jobsched.metrics import BUCKETS, PassMetrics, Totals, registry
from jobsched.model import JobResult

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NO_BACKLOG: tuple[int, datetime | None] = (0, None)
FIRST = "jobsched_jobs_finished_total"
SENT = frozenset({"handler": "send", "outcome": "succeeded"}.items())


def result(handler: str, outcome: Outcome, duration: float | None = 0.02) -> JobResult:
    return JobResult("job-1", handler, 1, outcome, NOW, duration=duration)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the text format, by name and labels, as the parser reads them."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(path: Path, name: str, **labels: str) -> float:
    return samples(path.read_text())[name, frozenset(labels.items())]


def one_pass(path: Path, *results: JobResult, retries: int = 0) -> None:
    """What one cron pass does: a new PassMetrics, its results, one write."""
    metrics = PassMetrics(path)
    for r in results:
        metrics.observe(r)
    metrics.write(RunReport(duration=0.5, retries=retries), NO_BACKLOG, NOW)


def test_the_file_parses_and_has_the_counts_of_the_results_observed(tmp_path: Path) -> None:
    path = tmp_path / "jobsched.prom"
    metrics = PassMetrics(path)
    for r in (
        result("send", Outcome.SUCCEEDED, 0.003),
        result("send", Outcome.SUCCEEDED, 0.2),
        result("send", Outcome.RETRIED, 12.0),
        result("feed", Outcome.EXPIRED, None),
    ):
        metrics.observe(r)
    metrics.write(
        RunReport(duration=1.25, retries=2), (7, NOW - timedelta(seconds=90)), NOW + timedelta(1)
    )

    families = {f.name: f.type for f in text_string_to_metric_families(path.read_text())}
    assert families == {
        "jobsched_jobs_finished": "counter",
        "jobsched_job_run_seconds": "histogram",
        "jobsched_passes": "counter",
        "jobsched_bookkeeping_retries": "counter",
        "jobsched_due_jobs": "gauge",
        "jobsched_oldest_due_lateness_seconds": "gauge",
        "jobsched_last_pass_timestamp_seconds": "gauge",
        "jobsched_last_pass_duration_seconds": "gauge",
    }
    finished = "jobsched_jobs_finished_total"
    assert value(path, finished, handler="send", outcome="succeeded") == 2
    assert value(path, finished, handler="send", outcome="retried") == 1
    assert value(path, finished, handler="send", outcome="failed") == 0  # there, at 0
    assert value(path, finished, handler="feed", outcome="expired") == 1
    bucket = "jobsched_job_run_seconds_bucket"
    assert value(path, bucket, handler="send", le="0.005") == 1
    assert value(path, bucket, handler="send", le="0.25") == 2
    assert value(path, bucket, handler="send", le="+Inf") == 3
    assert value(path, "jobsched_job_run_seconds_count", handler="send") == 3
    assert value(path, "jobsched_job_run_seconds_sum", handler="send") == pytest.approx(12.203)
    assert value(path, "jobsched_passes_total") == 1
    assert value(path, "jobsched_bookkeeping_retries_total") == 2
    assert value(path, "jobsched_due_jobs") == 7
    assert value(path, "jobsched_oldest_due_lateness_seconds") == 86400 + 90
    assert value(path, "jobsched_last_pass_timestamp_seconds") == (NOW + timedelta(1)).timestamp()
    assert value(path, "jobsched_last_pass_duration_seconds") == 1.25


def test_results_whose_handler_did_not_run_are_not_in_the_run_time_histogram(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobsched.prom"
    one_pass(path, result("feed", Outcome.EXPIRED, None), result("feed", Outcome.DEFERRED, None))

    names = {name for name, _ in samples(path.read_text())}
    assert not any(n.startswith("jobsched_job_run_seconds") for n in names)
    assert value(path, "jobsched_jobs_finished_total", handler="feed", outcome="deferred") == 1


def test_the_histogram_buckets_go_from_5_ms_to_an_hour(tmp_path: Path) -> None:
    path = tmp_path / "jobsched.prom"
    one_pass(path, result("send", Outcome.SUCCEEDED, 7200.0))

    les = [
        dict(labels)["le"]
        for name, labels in samples(path.read_text())
        if name == "jobsched_job_run_seconds_bucket"
    ]
    assert les[0] == "0.005"
    assert les[-2:] == ["3600.0", "+Inf"]
    assert len(les) == len(BUCKETS) + 1
    assert value(path, "jobsched_job_run_seconds_bucket", handler="send", le="3600.0") == 0
    assert value(path, "jobsched_job_run_seconds_bucket", handler="send", le="+Inf") == 1


def test_lateness_is_zero_when_no_job_is_due(tmp_path: Path) -> None:
    path = tmp_path / "jobsched.prom"
    one_pass(path)

    assert value(path, "jobsched_due_jobs") == 0
    assert value(path, "jobsched_oldest_due_lateness_seconds") == 0


def test_counters_carry_over_from_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "jobsched.prom"
    one_pass(path, result("send", Outcome.SUCCEEDED, 0.003), retries=1)
    second = PassMetrics(path)  # as the next cron pass, a new process, would make it
    second.observe(result("send", Outcome.SUCCEEDED, 2.0))
    second.observe(result("send", Outcome.FAILED, 0.003))
    second.write(RunReport(duration=3.0, retries=2), (1, NOW - timedelta(seconds=5)), NOW)

    finished = "jobsched_jobs_finished_total"
    assert value(path, finished, handler="send", outcome="succeeded") == 2
    assert value(path, finished, handler="send", outcome="failed") == 1
    assert value(path, "jobsched_job_run_seconds_bucket", handler="send", le="0.005") == 2
    assert value(path, "jobsched_job_run_seconds_bucket", handler="send", le="2.5") == 3
    assert value(path, "jobsched_job_run_seconds_count", handler="send") == 3
    assert value(path, "jobsched_job_run_seconds_sum", handler="send") == pytest.approx(2.006)
    assert value(path, "jobsched_passes_total") == 2
    assert value(path, "jobsched_bookkeeping_retries_total") == 3
    # The gauges are the last pass's.
    assert value(path, "jobsched_due_jobs") == 1
    assert value(path, "jobsched_oldest_due_lateness_seconds") == 5
    assert value(path, "jobsched_last_pass_duration_seconds") == 3


def test_a_second_write_of_one_pass_metrics_adds_only_what_was_observed_since(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobsched.prom"
    metrics = PassMetrics(path)
    metrics.observe(result("send", Outcome.SUCCEEDED))
    metrics.write(RunReport(), NO_BACKLOG, NOW)
    metrics.write(RunReport(), NO_BACKLOG, NOW)

    assert value(path, "jobsched_jobs_finished_total", handler="send", outcome="succeeded") == 1
    assert value(path, "jobsched_passes_total") == 2


_WRITER = """
import sys
from datetime import UTC, datetime
from jobsched import Outcome, RunReport
from jobsched.metrics import PassMetrics
from jobsched.model import JobResult

path, passes, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
now = datetime.now(UTC)
while not __import__("os").path.exists(go):
    pass
for _ in range(passes):
    metrics = PassMetrics(path)
    metrics.observe(JobResult("j", "send", 1, Outcome.SUCCEEDED, now, duration=0.01))
    metrics.write(RunReport(retries=1), (0, None), now)
"""


def test_overlapping_passes_in_two_processes_lose_no_count(tmp_path: Path) -> None:
    path = tmp_path / "jobsched.prom"
    go = tmp_path / "go"
    passes = 100
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(passes), str(go)])
        for _ in range(2)
    ]
    go.touch()  # both start writing at once
    for writer in writers:
        assert writer.wait(timeout=120) == 0

    assert value(path, "jobsched_passes_total") == 2 * passes
    assert value(path, "jobsched_bookkeeping_retries_total") == 2 * passes
    assert (
        value(path, "jobsched_jobs_finished_total", handler="send", outcome="succeeded")
        == 2 * passes
    )
    assert value(path, "jobsched_job_run_seconds_count", handler="send") == 2 * passes


def test_observe_from_many_threads_loses_no_count(tmp_path: Path) -> None:
    path = tmp_path / "jobsched.prom"
    metrics = PassMetrics(path)

    def observe() -> None:
        for _ in range(1000):
            metrics.observe(result("send", Outcome.SUCCEEDED, 0.01))

    threads = [threading.Thread(target=observe) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    metrics.write(RunReport(), NO_BACKLOG, NOW)

    assert value(path, "jobsched_jobs_finished_total", handler="send", outcome="succeeded") == 8000
    assert value(path, "jobsched_job_run_seconds_count", handler="send") == 8000


def test_a_reader_sees_the_whole_file_or_the_previous_one_and_no_temporary_file_remains(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobsched.prom"
    one_pass(path, result("send", Outcome.SUCCEEDED))
    reads = 0
    incomplete: list[str] = []
    done = threading.Event()

    def read() -> None:
        nonlocal reads
        while not done.is_set():
            text = path.read_text()
            reads += 1
            try:  # complete every time: it parses, and its first and last metrics are there
                found = samples(text)
                assert (FIRST, SENT) in found
                assert ("jobsched_last_pass_duration_seconds", frozenset()) in found
            except Exception:
                incomplete.append(text)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(100):
            one_pass(path, result("send", Outcome.SUCCEEDED))
    finally:
        done.set()
        reader.join()

    assert reads
    assert incomplete == []
    assert value(path, "jobsched_passes_total") == 101
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobsched.prom", "jobsched.prom.lock"]


def test_the_file_is_readable_by_other_users(tmp_path: Path) -> None:
    path = tmp_path / "jobsched.prom"
    old = os.umask(0o022)
    try:
        one_pass(path)
    finally:
        os.umask(old)

    assert path.stat().st_mode & 0o777 == 0o644  # node_exporter runs as a user of its own


def test_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        PassMetrics(tmp_path / "nowhere" / "jobsched.prom")


def test_a_directory_that_vanished_before_the_write_is_a_usage_error(tmp_path: Path) -> None:
    directory = tmp_path / "textfiles"
    directory.mkdir()
    metrics = PassMetrics(directory / "jobsched.prom")
    directory.rmdir()

    with pytest.raises(UsageError, match="does not exist"):
        metrics.write(RunReport(), NO_BACKLOG, NOW)


def test_a_file_that_cannot_be_written_is_a_jobsched_error(tmp_path: Path) -> None:
    path = tmp_path / "jobsched.prom"
    (tmp_path / "jobsched.prom.lock").mkdir()  # the lock file cannot be opened

    with pytest.raises(JobschedError, match="cannot write the metrics file"):
        one_pass(path)


def test_a_corrupt_file_starts_the_counters_afresh_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "jobsched.prom"
    path.write_text("jobsched_passes_total{{{ garbage\n")

    with caplog.at_level(logging.WARNING, logger="jobsched"):
        one_pass(path, result("send", Outcome.SUCCEEDED))

    assert "unreadable" in caplog.text
    assert value(path, "jobsched_passes_total") == 1
    assert value(path, "jobsched_jobs_finished_total", handler="send", outcome="succeeded") == 1


def test_impossible_counts_are_a_corrupt_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "jobsched.prom"
    path.write_text("jobsched_passes_total -3\n")

    with caplog.at_level(logging.WARNING, logger="jobsched"):
        one_pass(path)

    assert "unreadable" in caplog.text
    assert value(path, "jobsched_passes_total") == 1


def test_a_histogram_with_other_buckets_starts_again_and_the_rest_carries_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "jobsched.prom"
    path.write_text(
        textwrap.dedent("""\
            # TYPE jobsched_job_run_seconds histogram
            jobsched_job_run_seconds_bucket{handler="send",le="1.0"} 4
            jobsched_job_run_seconds_bucket{handler="send",le="+Inf"} 5
            jobsched_job_run_seconds_count{handler="send"} 5
            jobsched_job_run_seconds_sum{handler="send"} 9.5
            # TYPE jobsched_passes_total counter
            jobsched_passes_total 5
            """)
    )

    with caplog.at_level(logging.WARNING, logger="jobsched"):
        one_pass(path, result("send", Outcome.SUCCEEDED, 0.5))

    assert "other buckets" in caplog.text
    assert value(path, "jobsched_job_run_seconds_count", handler="send") == 1
    assert value(path, "jobsched_job_run_seconds_sum", handler="send") == 0.5
    assert value(path, "jobsched_passes_total") == 6


def test_registry_serves_the_totals_as_they_are_at_each_collection() -> None:
    totals = Totals()
    served = registry(totals)
    totals.observe(result("send", Outcome.SUCCEEDED))
    first = samples(generate_latest(served).decode())
    totals.observe(result("send", Outcome.SUCCEEDED))
    totals.end_pass(RunReport(), (2, NOW - timedelta(seconds=30)), NOW)
    second = samples(generate_latest(served).decode())

    assert (first[FIRST, SENT], second[FIRST, SENT]) == (1, 2)
    assert ("jobsched_due_jobs", frozenset()) not in first  # no pass has ended yet
    assert second["jobsched_oldest_due_lateness_seconds", frozenset()] == 30


_WITHOUT_PROMETHEUS = """
import sys
sys.modules["prometheus_client"] = None  # as if it were not installed
import jobsched.metrics
from jobsched.errors import UsageError
try:
    jobsched.metrics.PassMetrics(sys.argv[1])
except UsageError as e:
    print(e)
"""


def test_jobsched_imports_without_prometheus_client_and_pass_metrics_names_the_extra(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PROMETHEUS, str(tmp_path / "jobsched.prom")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert "pip install 'jobsched[metrics]'" in done.stdout
    assert not (tmp_path / "jobsched.prom").exists()
