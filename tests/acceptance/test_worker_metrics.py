"""A worker's Prometheus metrics over HTTP (``start_worker_metrics``, ``jobsched worker
--metrics-port``): served on a real port, scraped with urllib and read with prometheus_client's own
parser, with the results of real passes on every backend, and the backlog read at each scrape.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from acceptance.test_cli import APPS, JOBSCHED, fails, run
from jobsched import FakeClock, Job, Scheduler
from jobsched.errors import UsageError
from jobsched.handlers import Registry
from jobsched.metrics import WorkerMetrics, start_worker_metrics
from jobsched.model import JobResult, Outcome

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
FINISHED = "jobsched_jobs_finished_total"


def scrape(metrics: WorkerMetrics | int, path: str = "/metrics") -> Samples:
    """Every sample the endpoint (of ``metrics``, or on that port) serves, by name and labels,
    as Prometheus's parser reads them."""
    port = metrics if isinstance(metrics, int) else metrics.port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def of(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def _boom(job: Job) -> None:
    raise RuntimeError("boom")


@pytest.fixture
def served(scheduler: Scheduler) -> Iterator[WorkerMetrics]:
    """The scheduler's metrics served on a free port of 127.0.0.1, as the worker serves them."""
    metrics = start_worker_metrics("127.0.0.1", 0, backlog=scheduler.backlog, now=scheduler.now)
    yield metrics
    metrics.close()


def test_the_endpoint_serves_the_results_of_passes_and_the_backlog_at_scrape_time(
    scheduler: Scheduler, registry: Registry, clock: FakeClock, served: WorkerMetrics
) -> None:
    registry.register("send", lambda job: None)
    registry.register("boom", _boom)
    now = clock.now()
    scheduler.schedule_job("a", now - timedelta(seconds=5), "send", None)
    scheduler.schedule_job("b", now - timedelta(seconds=5), "send", None)
    scheduler.schedule_job("f", now - timedelta(seconds=5), "boom", None, max_attempts=1)
    scheduler.run_due_jobs(on_result=served.observe, concurrency=2)
    scheduler.schedule_job("late", now - timedelta(seconds=90), "send", None)
    clock.advance(timedelta(seconds=10))

    samples = scrape(served)

    assert of(samples, FINISHED, handler="send", outcome="succeeded") == 2
    assert of(samples, FINISHED, handler="send", outcome="failed") == 0
    assert of(samples, FINISHED, handler="boom", outcome="failed") == 1
    assert of(samples, "jobsched_job_run_seconds_count", handler="send") == 2
    assert of(samples, "jobsched_job_run_seconds_bucket", handler="boom", le="+Inf") == 1
    # Read from the database at the scrape, on the scheduler's clock.
    assert of(samples, "jobsched_due_jobs") == 1
    assert of(samples, "jobsched_oldest_due_lateness_seconds") == 100
    assert of(samples, "jobsched_bookkeeping_retries_total") == 0

    scheduler.run_due_jobs(on_result=served.observe)
    samples = scrape(served, "/")
    assert of(samples, FINISHED, handler="send", outcome="succeeded") == 3
    assert of(samples, "jobsched_due_jobs") == 0
    assert of(samples, "jobsched_oldest_due_lateness_seconds") == 0


def test_each_round_counts_as_a_pass_and_stamps_the_last_pass_time(
    scheduler: Scheduler, clock: FakeClock, served: WorkerMetrics
) -> None:
    assert ("jobsched_last_pass_timestamp_seconds", frozenset()) not in scrape(served)
    served.round()
    clock.advance(timedelta(seconds=30))
    served.round()
    samples = scrape(served)
    assert of(samples, "jobsched_passes_total") == 2
    assert of(samples, "jobsched_last_pass_timestamp_seconds") == clock.now().timestamp()
    assert ("jobsched_last_pass_duration_seconds", frozenset()) not in samples


def test_the_endpoint_serves_the_process_metrics_too(served: WorkerMetrics) -> None:
    samples = scrape(served)
    assert of(samples, "process_start_time_seconds") > 0
    assert of(samples, "process_resident_memory_bytes") > 0


def test_results_observed_from_many_threads_are_all_counted(served: WorkerMetrics) -> None:
    at = datetime(2026, 1, 5, tzinfo=UTC)

    def observe() -> None:
        for i in range(500):
            served.observe(JobResult(f"j{i}", "send", 1, Outcome.SUCCEEDED, at, duration=0.001))

    threads = [threading.Thread(target=observe) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    samples = scrape(served)
    assert of(samples, FINISHED, handler="send", outcome="succeeded") == 4000
    assert of(samples, "jobsched_job_run_seconds_bucket", handler="send", le="0.005") == 4000


def test_a_scrape_the_database_cannot_answer_serves_the_rest_and_logs_why(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = Scheduler(sqlite_url)
    scheduler.schedule_job("a", scheduler.now() - timedelta(seconds=1), "send", None)
    path = sqlite_url.removeprefix("sqlite:///")
    metrics = start_worker_metrics("127.0.0.1", 0, backlog=scheduler.backlog, now=scheduler.now)
    try:
        metrics.observe(JobResult("x", "send", 1, Outcome.SUCCEEDED, scheduler.now(), None, 0.1))
        with sqlite3.connect(path) as conn:
            conn.execute("ALTER TABLE jobs RENAME TO jobs_away")
        with caplog.at_level(logging.DEBUG, logger="jobsched"):
            first, second = scrape(metrics), scrape(metrics)
        for samples in (first, second):
            assert of(samples, FINISHED, handler="send", outcome="succeeded") == 1
            assert ("jobsched_due_jobs", frozenset()) not in samples
            assert ("jobsched_oldest_due_lateness_seconds", frozenset()) not in samples
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # once, not at every scrape
        assert "cannot read the backlog" in warnings[0].getMessage()

        with sqlite3.connect(path) as conn:
            conn.execute("ALTER TABLE jobs_away RENAME TO jobs")
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="jobsched"):
            samples = scrape(metrics)
        assert of(samples, "jobsched_due_jobs") == 1
        assert any("can be read again" in r.getMessage() for r in caplog.records)
    finally:
        metrics.close()
        scheduler.close()


def test_a_port_in_use_is_a_usage_error_that_names_the_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match=f"port {port} is in use"):
            start_worker_metrics("127.0.0.1", port, backlog=lambda: (0, None), now=_now)


def test_a_host_that_is_not_an_address_of_this_host_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"192\.0\.2\.1.* not an address of this host"):
        start_worker_metrics("192.0.2.1", 0, backlog=lambda: (0, None), now=_now)


@pytest.mark.parametrize("port", [-1, 65536, True])
def test_a_port_out_of_range_is_a_usage_error(port: int) -> None:
    with pytest.raises(UsageError, match="from 1 to 65535"):
        start_worker_metrics("127.0.0.1", port, backlog=lambda: (0, None), now=_now)


def test_close_stops_serving_and_frees_the_port() -> None:
    metrics = start_worker_metrics("127.0.0.1", 0, backlog=lambda: (0, None), now=_now)
    port = metrics.port
    assert metrics.url == f"http://127.0.0.1:{port}/metrics"
    metrics.close()
    metrics.close()  # again: nothing
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
    again = start_worker_metrics("127.0.0.1", port, backlog=lambda: (0, None), now=_now)
    again.close()


def _now() -> datetime:
    return datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


# -- jobsched worker --metrics-port, a real process ------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_worker_metrics_port_serves_what_the_worker_does_until_it_stops(db_url: str) -> None:
    scheduler = Scheduler(db_url)
    now = scheduler.now()
    for i in range(3):
        scheduler.schedule_job(f"ok-{i}", now - timedelta(seconds=1), "ok", None)
    scheduler.schedule_job("f", now - timedelta(seconds=1), "boom", None, max_attempts=1)
    scheduler.schedule_job("later", now + timedelta(hours=1), "ok", None)
    port = free_port()
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_") and k != "PYTHONPATH"
    }
    worker = subprocess.Popen(
        [str(JOBSCHED), "--database-url", db_url, "--app", "history_app", "worker",
         "--metrics-port", str(port), "--poll", "0.2"],
        cwd=APPS, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        samples: Samples = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                samples = scrape(port)
            except (urllib.error.URLError, ConnectionError):
                samples = {}  # not listening yet
            done = (FINISHED, frozenset({("handler", "ok"), ("outcome", "succeeded")}))
            if samples.get(done) == 3 and samples.get(("jobsched_due_jobs", frozenset())) == 0:
                break
            assert worker.poll() is None, worker.communicate()
            time.sleep(0.1)
        assert of(samples, FINISHED, handler="ok", outcome="succeeded") == 3
        assert of(samples, FINISHED, handler="boom", outcome="failed") == 1
        assert of(samples, "jobsched_job_run_seconds_count", handler="ok") == 3
        assert of(samples, "jobsched_due_jobs") == 0
        assert of(samples, "jobsched_oldest_due_lateness_seconds") == 0
        assert of(samples, "process_start_time_seconds") > 0
        # Each look for due jobs counts as a pass, stamped with its time.
        assert of(samples, "jobsched_passes_total") >= 1
        assert of(samples, "jobsched_last_pass_timestamp_seconds") > now.timestamp() - 60
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
        scheduler.close()
    assert worker.returncode == 0, err
    assert err.count("Traceback") == 1, err  # the failing handler's own, logged
    with pytest.raises(urllib.error.URLError):  # the port was closed with the worker
        scrape(port)


def test_worker_metrics_port_in_use_exits_2_before_taking_a_job(sqlite_url: str) -> None:
    scheduler = Scheduler(sqlite_url)
    scheduler.schedule_job("a", scheduler.now() - timedelta(seconds=1), "ok", None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("--app", "history_app", "worker", "--metrics-port", str(port), url=sqlite_url)
    fails(result, 2, f"port {port} is in use")
    assert [job.job_id for job in scheduler.list_jobs(due=True)] == ["a"]  # not taken
    scheduler.close()
